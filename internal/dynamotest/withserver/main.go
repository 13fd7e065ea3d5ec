// Command withserver runs a command against a local DynamoDB-protocol server: it starts the
// server the tests would (DYNAFLOW_BACKEND, or the first of DynamoDB Local, dynalite and moto
// that starts), optionally puts the fault proxy in front of it, runs the command with
// AWS_ENDPOINT_URL_DYNAMODB pointing there (and a region and placeholder credentials when none
// are set), stops the server, and exits with the command's status. `make demo` uses it.
//
//	go run ./internal/dynamotest/withserver [-unprocessed 0.2] command [args...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

func main() {
	unprocessed := flag.Float64("unprocessed", 0, "share of writes the fault proxy hands back as UnprocessedItems (0: no proxy)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: withserver [-unprocessed share] command [args...]")
		os.Exit(2)
	}
	os.Exit(run(*unprocessed, flag.Args()))
}

func run(unprocessed float64, args []string) int {
	srv, err := dynamotest.FromEnv(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "no DynamoDB-protocol server: %v\n%s\n", err, dynamotest.HowToGetOne)
		return 1
	}
	defer srv.Stop()
	endpoint := srv.Endpoint
	fmt.Fprintf(os.Stderr, "withserver: %s at %s\n", srv.Backend, endpoint)
	if unprocessed > 0 {
		p := dynaflowtest.NewProxy(srv.Endpoint)
		defer p.Close()
		p.SetUnprocessed(unprocessed)
		endpoint = p.URL
		fmt.Fprintf(os.Stderr, "withserver: fault proxy at %s hands back %.0f%% of writes as UnprocessedItems\n", endpoint, unprocessed*100)
	}
	env := append(os.Environ(), "AWS_ENDPOINT_URL_DYNAMODB="+endpoint)
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"} {
		if os.Getenv(k) == "" {
			env = append(env, k+"="+v)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

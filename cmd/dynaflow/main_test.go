package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
	"github.com/dynaflow-go/dynaflow/internal/leakcheck"
)

// The server the integration tests share, started on first use and stopped by TestMain.
var server dynamotest.Shared

func TestMain(m *testing.M) {
	// The credentials the test clients use (DynamoDB Local keeps tables per access key), and no
	// configuration from the machine.
	os.Setenv("AWS_ACCESS_KEY_ID", "dynaflow")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "dynaflow")
	os.Setenv("AWS_REGION", "us-east-1")
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Unsetenv("AWS_PROFILE")
	code := m.Run()
	server.Stop()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// world is one integration test's: the shared server, a fault and capacity proxy in front of it
// that the CLI talks to, a client around the proxy for setting up and checking, and a working
// directory.
type world struct {
	backend string
	proxy   *dynaflowtest.Proxy
	direct  *dynamodb.Client
	dir     string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := server.Get(t)
	w := &world{backend: srv.Backend, direct: dynamotest.NewClient(srv.Endpoint), dir: t.TempDir()}
	w.proxy = dynaflowtest.NewProxy(srv.Endpoint)
	t.Cleanup(w.proxy.Close)
	return w
}

// table creates a table with a string hash key pk and a number range key sk.
func (w *world) table(t *testing.T) string {
	t.Helper()
	name := dynamotest.TableName("cli")
	if err := dynamotest.CreateTable(context.Background(), w.direct, name, dynamotest.Key{Name: "pk", Type: types.ScalarAttributeTypeS}, &dynamotest.Key{Name: "sk", Type: types.ScalarAttributeTypeN}); err != nil {
		t.Fatal(err)
	}
	return name
}

// path is a file in the world's directory.
func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

// result is what one run of the command line did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line in this process, in the world's directory, against the proxy.
func (w *world) run(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	r := w.runTo(t, stdin, nil, args...)
	checkNoLeaks(t)
	return r
}

// runTo is run with stdout going to out (when not nil), without the check for leaks (for a run
// beside another).
func (w *world) runTo(t *testing.T, stdin io.Reader, out io.Writer, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	if out == nil {
		out = &stdout
	}
	args = append(args, "--endpoint", w.proxy.URL)
	chdir(t, w.dir)
	code := runContext(context.Background(), context.Background(), args, stdin, out, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

var chdirMu sync.Mutex

// chdir moves the test process into dir for the rest of the test (tests here do not run in
// parallel).
func chdir(t *testing.T, dir string) {
	chdirMu.Lock()
	defer chdirMu.Unlock()
	wd, _ := os.Getwd()
	if wd == dir {
		return
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
}

// contents returns every item of table, read around the proxy, by canonical form.
func (w *world) contents(t *testing.T, table string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	dyn := dynaflow.New(w.direct)
	for item, err := range dyn.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)}) {
		if err != nil {
			t.Fatal(err)
		}
		got[canon(item)] = true
	}
	return got
}

// seed writes items to table around the proxy.
func (w *world) seed(t *testing.T, table string, items []dynaflow.Item) {
	t.Helper()
	if err := dynamotest.Seed(context.Background(), w.direct, table, items); err != nil {
		t.Fatal(err)
	}
}

// binary is the dynaflow command built once for the tests that signal a process.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "dynaflow-bin")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "dynaflow")
		out, err := exec.Command("go", "build", "-race", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = &buildError{err, string(out)}
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// writeLines writes items to path in format, gzip when the name ends in .gz.
func writeItems(t *testing.T, path, format string, cols []column, items []dynaflow.Item) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, gz := formatFromName(path)
	o := newOutput(path, f, f, 0, format, gz, []string{"pk", "sk"}, cols, false)
	for _, it := range items {
		if err := o.write(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
}

// readItems reads every item of the file at path (format from its name, gzip detected).
func readItems(t *testing.T, path string, format string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readAll(t, f, format)
}

func readAll(t *testing.T, r io.Reader, format string) map[string]bool {
	t.Helper()
	src, _, closer, err := openSource(r, format, nil, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	got := map[string]bool{}
	for {
		rec, err := src.next()
		if err == io.EOF {
			return got
		}
		if err != nil || rec.err != nil {
			t.Fatalf("line %d: %v %v", rec.line, err, rec.err)
		}
		if got[canon(rec.item)] {
			t.Errorf("item twice: %s", canon(rec.item))
		}
		got[canon(rec.item)] = true
	}
}

func canonSet(items []dynaflow.Item) map[string]bool {
	m := map[string]bool{}
	for _, it := range items {
		m[canon(it)] = true
	}
	return m
}

// yieldBriefly waits a little while polling another process's progress; no result depends on
// how long.
func yieldBriefly() { time.Sleep(5 * time.Millisecond) }

// checkNoLeaks fails t if a goroutine running dynaflow's code (the command's or the library's,
// not the tests') is still alive after a run.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t, "github.com/dynaflow-go/dynaflow.", "github.com/dynaflow-go/dynaflow/cmd/dynaflow.")
}

// Package leakcheck finds goroutines that outlive what started them, for dynaflow's tests. It is
// not part of dynaflow's API.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check fails t if a goroutine has a frame in a non-test file of a package whose function names
// start with one of prefixes (such as "github.com/dynaflow-go/dynaflow."). It gives goroutines
// already on their way out up to five seconds to finish.
func Check(t testing.TB, prefixes ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked := Goroutines(prefixes...)
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running; the first:\n%s", len(leaked), leaked[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Goroutines returns the stacks of the goroutines with a frame in a non-test file of a function
// whose name starts with one of prefixes.
func Goroutines(prefixes ...string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i++ {
			fn, file := lines[i], lines[i+1]
			if strings.HasPrefix(file, "\t") && !strings.Contains(file, "_test.go") && hasPrefix(fn, prefixes) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

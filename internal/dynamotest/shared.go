package dynamotest

import (
	"context"
	"os"
	"sync"
	"testing"
)

// Shared is the one server that a test binary's integration tests share, started on first use
// (so that unit tests and fuzzing do not wait for it). TestMain stops it.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the server, starting it with FromEnv the first time. Without one it skips t, or
// fails it when DYNAFLOW_REQUIRE_SERVER=1.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = FromEnv(context.Background()) })
	if s.err != nil {
		if os.Getenv("DYNAFLOW_REQUIRE_SERVER") == "1" {
			t.Fatalf("no DynamoDB-protocol server: %v", s.err)
		}
		t.Skipf("no DynamoDB-protocol server (%v); to run the integration tests, %s", s.err, HowToGetOne)
	}
	return s.srv
}

// Stop stops the server if Get started one.
func (s *Shared) Stop() {
	if s.srv != nil {
		s.srv.Stop()
	}
}

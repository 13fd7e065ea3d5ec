package dynaflow

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// The server the integration tests share, started on first use (so that unit tests and fuzzing
// do not wait for it) and stopped by TestMain.
var server struct {
	once sync.Once
	srv  *dynamotest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.srv != nil {
		server.srv.Stop()
	}
	os.Exit(code)
}

// env is one integration test's world: a fresh table on the shared server, a fault proxy in
// front of it, and clients through the proxy (api, dyn) and around it (direct).
type env struct {
	backend string
	table   string
	proxy   *dynaflowtest.Proxy
	api     *dynamodb.Client
	direct  *dynamodb.Client
	dyn     *Client
}

// integration returns a new env whose table has a string hash key "pk" and, when rangeType is
// not empty, a range key "sk" of that type. Without a server it skips the test, or fails it when
// DYNAFLOW_REQUIRE_SERVER=1.
func integration(t *testing.T, rangeType types.ScalarAttributeType, optFns ...func(*Options)) *env {
	t.Helper()
	server.once.Do(func() {
		server.srv, server.err = dynamotest.FromEnv(context.Background())
	})
	if server.err != nil {
		if os.Getenv("DYNAFLOW_REQUIRE_SERVER") == "1" {
			t.Fatalf("no DynamoDB-protocol server: %v", server.err)
		}
		t.Skipf("no DynamoDB-protocol server (%v); to run the integration tests, %s", server.err, dynamotest.HowToGetOne)
	}
	e := &env{backend: server.srv.Backend, table: dynamotest.TableName("dynaflow")}
	e.direct = dynamotest.NewClient(server.srv.Endpoint)
	var rng *dynamotest.Key
	if rangeType != "" {
		rng = &dynamotest.Key{Name: "sk", Type: rangeType}
	}
	if err := dynamotest.CreateTable(context.Background(), e.direct, e.table, dynamotest.Key{Name: "pk", Type: types.ScalarAttributeTypeS}, rng); err != nil {
		t.Fatal(err)
	}
	e.proxy = dynaflowtest.NewProxy(server.srv.Endpoint)
	t.Cleanup(e.proxy.Close)
	e.api = dynamotest.NewClient(e.proxy.URL)
	e.dyn = New(e.api, optFns...)
	return e
}

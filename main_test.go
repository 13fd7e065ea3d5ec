package dynaflow

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/dynaflow-go/dynaflow/internal/dynamotest"
)

// The server the integration tests share, started on first use and stopped by TestMain.
var server dynamotest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	server.Stop()
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
	srv := server.Get(t)
	e := &env{backend: srv.Backend, table: dynamotest.TableName("dynaflow")}
	e.direct = dynamotest.NewClient(srv.Endpoint)
	var rng *dynamotest.Key
	if rangeType != "" {
		rng = &dynamotest.Key{Name: "sk", Type: rangeType}
	}
	if err := dynamotest.CreateTable(context.Background(), e.direct, e.table, dynamotest.Key{Name: "pk", Type: types.ScalarAttributeTypeS}, rng); err != nil {
		t.Fatal(err)
	}
	e.proxy = dynaflowtest.NewProxy(srv.Endpoint)
	t.Cleanup(e.proxy.Close)
	e.api = dynamotest.NewClient(e.proxy.URL)
	e.dyn = New(e.api, optFns...)
	return e
}

package dynaflowtest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
)

// A proxy in front of a DynamoDB Local on port 8000 that hands back a fifth of every batch,
// throttles the first three BatchWriteItem calls, and gives the table "orders" 500 write units a
// second. The code under test talks to p.URL instead of the server.
func Example() {
	p := dynaflowtest.NewProxy("http://127.0.0.1:8000")
	defer p.Close()
	p.SetUnprocessed(0.2)
	p.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Count: 3, Fault: dynaflowtest.Throttle})
	p.SetWriteCapacity("orders", 500, 0)

	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")),
		config.WithBaseEndpoint(p.URL),
	)
	if err != nil {
		log.Fatal(err)
	}
	api := dynamodb.NewFromConfig(cfg)
	_, _ = api.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("orders")})
	// ... run the code under test against api, then check what the table went through:
	perSecond, refused := p.WriteCapacityUse("orders")
	fmt.Println(p.Calls("BatchWriteItem"), perSecond, refused)
}

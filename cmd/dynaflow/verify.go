package main

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynaflow-go/dynaflow"
)

// countItems counts a table's items with a parallel Scan that asks for counts only.
func (a *app) countItems(dyn *dynaflow.Client, table string) (int64, error) {
	in := &dynamodb.ScanInput{TableName: aws.String(table), Select: types.SelectCount}
	var n int64
	for page, err := range dyn.ParallelScanPages(a.hard, in, 4) {
		if err != nil {
			return 0, fmt.Errorf("--verify: %w", err)
		}
		n += int64(page.Output.Count)
	}
	return n, nil
}

// verifyCount counts table and compares it with want, what the run wrote: the table must hold
// at least that many items (it may hold others from before).
func (a *app) verifyCount(dyn *dynaflow.Client, table string, want int64, what string) (string, error) {
	n, err := a.countItems(dyn, table)
	if err != nil {
		return "", err
	}
	note := fmt.Sprintf("verify: %s holds %s items; %s: %s", table, count(n), what, count(want))
	if n < want {
		return note, fmt.Errorf("%w: %s holds %s items, fewer than the %s %s", errVerify, table, count(n), count(want), what)
	}
	return note, nil
}

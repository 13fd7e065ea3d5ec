package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// logBuffer is an SDK logger that keeps what it is told.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Logf(c logging.Classification, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, string(c)+" "+format+"\n", v...)
}

func (l *logBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// TestChecksumWhereMissing: with checksumWhereMissing, answers without X-Amz-Crc32 (a refusal, a
// success) log nothing and reach the caller as they were sent, as does one with the right
// checksum, while one with a wrong checksum still warns; without it, a refusal without the header
// warns (the SDK's bug, which this shows the test can see).
func TestChecksumWhereMissing(t *testing.T) {
	const refusal = `{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"Number overflow"}`
	const answer = `{"TableNames":["a"]}`
	var mu sync.Mutex
	var refuse bool
	var sum string // the X-Amz-Crc32 to send; none when empty
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if sum != "" {
			w.Header().Set("X-Amz-Crc32", sum)
		}
		if refuse {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(refusal))
			return
		}
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	var log logBuffer
	newClient := func(fix bool) *dynamodb.Client {
		return dynamodb.New(dynamodb.Options{
			BaseEndpoint: aws.String(srv.URL),
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("x", "x", ""),
			Logger:       &log,
		}, func(o *dynamodb.Options) {
			if fix {
				o.APIOptions = append(o.APIOptions, checksumWhereMissing)
			}
		})
	}
	fixed, plain := newClient(true), newClient(false)
	right := strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(answer))), 10)
	for _, c := range []struct {
		name   string
		client *dynamodb.Client
		refuse bool
		sum    string
		warns  bool
	}{
		{"a refusal without a checksum", fixed, true, "", false},
		{"an answer without a checksum", fixed, false, "", false},
		{"an answer with the right checksum", fixed, false, right, false},
		{"an answer with a wrong checksum", fixed, false, "1", true},
		{"a refusal without a checksum, to the SDK alone", plain, true, "", true},
	} {
		mu.Lock()
		refuse, sum = c.refuse, c.sum
		mu.Unlock()
		out, err := c.client.ListTables(context.Background(), &dynamodb.ListTablesInput{})
		if c.refuse {
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" || api.ErrorMessage() != "Number overflow" {
				t.Errorf("%s: reached the caller as %v", c.name, err)
			}
		} else if err != nil || len(out.TableNames) != 1 || out.TableNames[0] != "a" {
			t.Errorf("%s: reached the caller as %v, %v", c.name, out, err)
		}
		logged := log.take()
		if warned := strings.Contains(logged, "WARN"); warned != c.warns {
			t.Errorf("%s: logged %q; want a warning: %v", c.name, logged, c.warns)
		}
	}
}

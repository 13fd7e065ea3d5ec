package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK checks every DynamoDB response body against its X-Amz-Crc32 header, and one without the
// header against 0 (aws/aws-sdk-go-v2#3545): error answers from DynamoDB Local and dynalite carry
// none, and each then logs "WARN failed to close HTTP response body", one line per refused or
// split call, over the progress bar. checksumWhereMissing gives such a response the checksum of
// the body it has, so the SDK checks what the server sent and nothing else: a header that is
// present is left alone, and a body that does not match it still warns.
func checksumWhereMissing(stack *middleware.Stack) error {
	// Added after the SDK's check, so nearer the wire: it sees the response first.
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("dynaflow:ChecksumWhereMissing",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if err != nil || !ok || resp.Body == nil || resp.Header.Get("X-Amz-Crc32") != "" {
				return out, md, err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return out, md, &smithy.DeserializationError{Err: fmt.Errorf("reading the response: %w", err)}
			}
			resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return out, md, nil
		}), middleware.After)
}

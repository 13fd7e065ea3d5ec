// Package dynaflowtest is a kit for testing code that uses DynamoDB, with dynaflow or without: a
// proxy that sits in front of any DynamoDB-protocol endpoint (DynamoDB Local, dynalite, moto, or
// DynamoDB itself) and makes it behave as DynamoDB does under load, on demand.
//
// Local servers never throttle and never hand back UnprocessedItems, so the code that handles
// those, which is the code that loses data when it is wrong, goes untested. The proxy can:
//
//   - hand back a share of every BatchWriteItem's writes as UnprocessedItems and of every
//     BatchGetItem's keys as UnprocessedKeys, for all tables (SetUnprocessed) or one
//     (SetTableUnprocessed);
//   - fail calls by rule: throttling, 500s, validation errors, 503s, or stall them until Release
//     (AddRule), or answer every call with 503 (SetDown);
//   - enforce a table's capacity like DynamoDB: a token bucket of write units that admits writes
//     one by one and hands back the rest (SetWriteCapacity), and one of read units for Query and
//     Scan (SetReadCapacity), both changeable while calls run;
//   - count what happened, as ground truth that never asks the client: calls per operation
//     (Calls, Forwarded) and per table (TableCalls), and capacity used per second
//     (WriteCapacityUse, ReadCapacityUse).
//
// Every answer carries a correct X-Amz-Crc32 header, as the SDK expects. A Proxy is safe for
// concurrent use. dynaflow itself never imports this package.
package dynaflowtest

package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dynaflow-go/dynaflow"
	"github.com/dynaflow-go/dynaflow/dynaflowtest"
	"github.com/google/go-cmp/cmp"
)

// typed returns n items with every attribute type.
func typed(n int) []dynaflow.Item {
	items := make([]dynaflow.Item, n)
	for i := range items {
		items[i] = allTypes("p"+strconv.Itoa(i%7), i)
	}
	return items
}

// jsonItems are items of the types plain JSON has: no sets, no binaries.
func jsonItems(n int) []dynaflow.Item {
	items := typed(n)
	for _, it := range items {
		for _, k := range []string{"b", "emptyb", "ss", "ns", "bs"} {
			delete(it, k)
		}
	}
	return items
}

var csvColumns = "pk,sk:N,s,n38:N,nfrac:N,b:B,t:BOOL,f:BOOL,null:NULL,ss:SS,ns:NS,bs:BS,l:L,m:M"

// csvItems are items a CSV file holds: no empty strings or binaries (an empty cell is absent).
func csvItems(n int) []dynaflow.Item {
	items := typed(n)
	for _, it := range items {
		delete(it, "empty")
		delete(it, "emptyb")
	}
	return items
}

func TestIntegrationRoundTrip(t *testing.T) {
	for _, format := range []string{formatDDB, formatJSON, formatCSV} {
		for _, gz := range []bool{false, true} {
			name := "items." + format
			if gz {
				name += ".gz"
			}
			t.Run(name, func(t *testing.T) {
				w := newWorld(t)
				table := w.table(t)
				var items []dynaflow.Item
				var cols []column
				switch format {
				case formatDDB:
					items = typed(40)
				case formatJSON:
					items = jsonItems(40)
				case formatCSV:
					items = csvItems(40)
					cols, _ = parseColumns(strings.Split(csvColumns, ","))
				}
				in := w.path(name)
				writeItems(t, in, format, cols, items)
				if r := w.run(t, nil, "load", table, in, "--progress", "none"); r.code != 0 {
					t.Fatalf("load: exit %d: %s", r.code, r.stderr)
				}
				if diff := cmp.Diff(canonSet(items), w.contents(t, table)); diff != "" {
					t.Fatalf("table after load (-want +got):\n%s", diff)
				}
				out := w.path("out-" + name)
				args := []string{"export", table, "-o", out, "--progress", "none"}
				if format == formatCSV {
					args = append(args, "--columns", csvColumns)
				}
				if r := w.run(t, nil, args...); r.code != 0 {
					t.Fatalf("export: exit %d: %s", r.code, r.stderr)
				}
				if gz {
					f, _ := os.Open(out)
					if _, err := gzip.NewReader(f); err != nil {
						t.Errorf("%s is not gzip: %v", out, err)
					}
					f.Close()
				}
				if diff := cmp.Diff(canonSet(items), readItems(t, out, format)); diff != "" {
					t.Errorf("exported file (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestIntegrationExportPipeLoadVerify(t *testing.T) {
	w := newWorld(t)
	src, dst := w.table(t), w.table(t)
	items := typed(300)
	w.seed(t, src, items)
	pr, pw := io.Pipe()
	done := make(chan result)
	go func() {
		r := w.runTo(t, nil, pw, "export", src, "--segments", "3", "--progress", "none")
		pw.Close()
		done <- r
	}()
	load := w.run(t, pr, "load", dst, "-", "--verify", "--progress", "none")
	pr.Close()
	export := <-done
	if export.code != 0 || load.code != 0 {
		t.Fatalf("export exit %d (%s), load exit %d (%s)", export.code, export.stderr, load.code, load.stderr)
	}
	if !strings.Contains(load.stderr, "verify: "+dst+" holds 300 items") {
		t.Errorf("load --verify said: %s", load.stderr)
	}
	if diff := cmp.Diff(canonSet(items), w.contents(t, dst)); diff != "" {
		t.Errorf("destination (-want +got):\n%s", diff)
	}
}

// TestIntegrationLoadsDynamoDBExport loads lines as DynamoDB's export to S3 writes them, in a
// gzip file named .json.gz, with no flags.
func TestIntegrationLoadsDynamoDBExport(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	lines := `{"Item":{"sk":{"N":"1"},"pk":{"S":"order#1"},"total":{"N":"19.99"},"tags":{"SS":["new","gift"]},"lines":{"L":[{"M":{"sku":{"S":"A-1"},"qty":{"N":"2"}}}]},"paid":{"BOOL":true}}}
{"Item":{"pk":{"S":"order#2"},"sk":{"N":"2"},"note":{"NULL":true},"blob":{"B":"3q2+7w=="}}}
`
	path := w.path("AWSDynamoDB-data-abc123.json.gz")
	f, _ := os.Create(path)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(lines))
	zw.Close()
	f.Close()
	if r := w.run(t, nil, "load", table, path, "--progress", "none"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := readAll(t, strings.NewReader(lines), formatDDB)
	if diff := cmp.Diff(want, w.contents(t, table)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// TestIntegrationRejects loads a file with bad lines: each goes to the rejects file naming its
// line, the run exits 2, and the rejects file, fixed, loads cleanly.
func TestIntegrationRejects(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	var b strings.Builder
	for i := 1; i <= 20; i++ {
		item := dynaflow.Item{"pk": S("k" + strconv.Itoa(i)), "sk": N("1")}
		switch i {
		case 5:
			delete(item, "pk")
		case 9:
			item["big"] = S(strings.Repeat("x", 500_000))
		case 12:
			item["pk"] = N("12")
		case 17:
			b.WriteString(`{"Item":{"pk":{"S":"k17"},` + "\n")
			continue
		}
		b.Write(appendDDBLine(nil, item))
	}
	in := w.path("bad.ddb")
	os.WriteFile(in, []byte(b.String()), 0o644)
	r := w.run(t, nil, "load", table, in, "--rejects", "rejects.ddb", "--progress", "none")
	if r.code != exitRejects {
		t.Fatalf("exit %d; want 2: %s", r.code, r.stderr)
	}
	type reject struct {
		Item  map[string]json.RawMessage
		Raw   *string
		Error string
		Line  int
	}
	var rejected []reject
	f, err := os.Open(w.path("rejects.ddb"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		var rj reject
		if err := json.Unmarshal(sc.Bytes(), &rj); err != nil {
			t.Fatalf("a rejects line does not parse: %v", err)
		}
		rejected = append(rejected, rj)
	}
	f.Close()
	byLine := map[int]reject{}
	for _, rj := range rejected {
		byLine[rj.Line] = rj
	}
	if len(rejected) != 4 || !slices.Equal(slices.Sorted(maps.Keys(byLine)), []int{5, 9, 12, 17}) {
		t.Fatalf("rejects name lines %v; want 5, 9, 12, 17", slices.Sorted(maps.Keys(byLine)))
	}
	for line, want := range map[int]string{5: `"pk"`, 9: "400 KB", 12: `"pk" is N`, 17: "line 17"} {
		if !strings.Contains(byLine[line].Error, want) {
			t.Errorf("line %d's reason %q does not say %s", line, byLine[line].Error, want)
		}
	}
	if byLine[17].Raw == nil || byLine[17].Item != nil {
		t.Errorf("line 17 did not parse: its reject should hold the raw line")
	}
	if n := len(w.contents(t, table)); n != 16 {
		t.Errorf("table holds %d items; want the 16 good ones", n)
	}
	// Fix every reject in place, keeping "error" and "line", and load the file as it is.
	var fixed strings.Builder
	for _, rj := range rejected {
		item := dynaflow.Item{"pk": S("k" + strconv.Itoa(rj.Line)), "sk": N("1")}
		if rj.Line == 9 {
			item["big"] = S(strings.Repeat("x", 1000))
		}
		line := appendDDBItem(nil, item)
		fmt.Fprintf(&fixed, `{"Item":%s,"error":%q,"line":%d}`+"\n", line, rj.Error, rj.Line)
	}
	os.WriteFile(w.path("fixed.ddb"), []byte(fixed.String()), 0o644)
	if r := w.run(t, nil, "load", table, "fixed.ddb", "--progress", "none"); r.code != 0 {
		t.Fatalf("loading the fixed rejects: exit %d: %s", r.code, r.stderr)
	}
	if n := len(w.contents(t, table)); n != 20 {
		t.Errorf("table holds %d items; want 20", n)
	}
}

// TestIntegrationRejectsWhatDynamoDBRefuses has the proxy fail every BatchWriteItem with a
// ValidationException: the Batcher splits down to single writes, and each lands in the rejects
// file with its line and DynamoDB's reason.
func TestIntegrationRejectsWhatDynamoDBRefuses(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	items := typed(3)
	writeItems(t, w.path("in.ddb"), formatDDB, nil, items)
	w.proxy.AddRule(dynaflowtest.Rule{Op: "BatchWriteItem", Fault: dynaflowtest.Validation})
	r := w.run(t, nil, "load", table, "in.ddb", "--progress", "none")
	if r.code != exitRejects {
		t.Fatalf("exit %d; want 2: %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(w.path(table + ".rejects.ddb"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d rejects; want 3:\n%s", len(lines), b)
	}
	seen := map[int]bool{}
	for _, l := range lines {
		var rj struct {
			Error string
			Line  int
		}
		json.Unmarshal([]byte(l), &rj)
		seen[rj.Line] = true
		if !strings.Contains(rj.Error, "ValidationException") {
			t.Errorf("reason %q does not carry DynamoDB's error", rj.Error)
		}
	}
	if !seen[1] || !seen[2] || !seen[3] {
		t.Errorf("rejects name lines %v; want 1, 2, 3", seen)
	}
}

// TestIntegrationLoadCountsReplaced: a line with the key of an earlier one replaces it, numbers
// equal in value being one key, and the summary counts it: what was read is written or replaced.
// --verify counts the keys the same way.
func TestIntegrationLoadCountsReplaced(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	in := `{"pk":"a","sk":1,"v":"first"}
{"pk":"a","sk":1.0,"v":"second"}
{"pk":"a","sk":2}
`
	if err := os.WriteFile(w.path("in.json"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	r := w.run(t, nil, "load", table, "in.json", "--progress", "json", "--verify")
	last := lastFigures(t, r.stderr)
	// The first line's write is replaced unless it was sent before the second came.
	if r.code != 0 || last.Read != 3 || last.Written+last.Replaced != 3 || last.Replaced > 1 {
		t.Errorf("exit %d; read %d, written %d, replaced %d; want 0; 3, 3 written or replaced (at most 1 replaced)", r.code, last.Read, last.Written, last.Replaced)
	}
	// Compared as text: moto keeps a number as it was sent ("1.0"), DynamoDB as its value ("1").
	got := slices.Sorted(maps.Keys(w.contents(t, table)))
	if len(got) != 2 || !strings.Contains(got[0], `"v":{"S":"second"}`) || !strings.Contains(got[1], `"sk":{"N":"2"}`) {
		t.Errorf("table holds %q; want the second line's item and the third's", got)
	}
}

// TestIntegrationDryRun writes nothing and reports the counts and the estimated write units.
func TestIntegrationDryRun(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	items := make([]dynaflow.Item, 50)
	for i := range items {
		items[i] = dynaflow.Item{"pk": S("k" + strconv.Itoa(i)), "sk": N("1"), "body": S(strings.Repeat("b", 1500))}
	}
	writeItems(t, w.path("in.ddb"), formatDDB, nil, items)
	r := w.run(t, nil, "load", table, "in.ddb", "--dry-run", "--progress", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	last := lastFigures(t, r.stderr)
	if last.Read != 50 || last.Written != 0 || last.EstUnits != 100 {
		t.Errorf("summary read %d, written %d, estimated units %v; want 50, 0, 100 (2 a 1.5 KB item)", last.Read, last.Written, last.EstUnits)
	}
	if n := len(w.contents(t, table)); n != 0 || w.proxy.Calls("BatchWriteItem") != 0 {
		t.Errorf("a dry run wrote: table holds %d items, %d BatchWriteItem calls", n, w.proxy.Calls("BatchWriteItem"))
	}
}

// TestIntegrationJSONProgressEndsInJSON ends a run with rejects under --progress json: the error
// that ends it is a JSON line too, after the summary, so that every line of stderr parses.
func TestIntegrationJSONProgressEndsInJSON(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	in := `{"pk":"a","sk":1}
{"pk":"b"}
`
	if err := os.WriteFile(w.path("in.json"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	r := w.run(t, nil, "load", table, "in.json", "--progress", "json")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	var end struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil || r.code != exitRejects {
		t.Fatalf("exit %d, last line of stderr %q (%v); want exit 2 and a JSON line", r.code, lines[len(lines)-1], err)
	}
	if end.ExitCode != exitRejects || !strings.Contains(end.Error, "finished with rejects") || !strings.Contains(end.Error, "sk") {
		t.Errorf("error line %+v; want exit_code 2 and the rejects error naming sk", end)
	}
	last := lastFigures(t, strings.Join(lines[:len(lines)-1], "\n"))
	if last.Read != 2 || last.Written != 1 || last.Rejected != 1 {
		t.Errorf("summary read %d, written %d, rejected %d; want 2, 1, 1", last.Read, last.Written, last.Rejected)
	}
}

// lastFigures checks that every line of stderr is a JSON progress object and returns the last,
// which must be the summary.
func lastFigures(t *testing.T, stderr string) figures {
	t.Helper()
	var all []figures
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var f figures
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("progress line %q is not JSON: %v", line, err)
		}
		all = append(all, f)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Read < all[i-1].Read || all[i].Written < all[i-1].Written {
			t.Errorf("progress went back: %+v then %+v", all[i-1], all[i])
		}
	}
	last := all[len(all)-1]
	if !last.Summary {
		t.Fatalf("the last progress line is not the summary: %+v", last)
	}
	return last
}

// writeBodies writes a ddb file of n items keyed k0, k1, ... (sk 1), each with a body of
// bodyBytes bytes.
func (w *world) writeBodies(t *testing.T, name string, n, bodyBytes int) {
	t.Helper()
	items := make([]dynaflow.Item, n)
	for i := range items {
		items[i] = dynaflow.Item{"pk": S("k" + strconv.Itoa(i)), "sk": N("1"), "body": S(strings.Repeat("b", bodyBytes))}
	}
	writeItems(t, w.path(name), formatDDB, nil, items)
}

// TestIntegrationLoadCapped loads against the capacity proxy with a cap below its capacity: no
// whole second admits more than 5% above the cap, the proxy refuses nothing, and the JSON
// progress lines parse and add up. A window holds whole calls of 25 units, so against a cap of
// 600 a call that lands a little late adds 4%: the 5% asked of the cap is what is left.
func TestIntegrationLoadCapped(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	w.writeBodies(t, "in.ddb", 2000, 900)
	w.proxy.SetWriteCapacity(table, 800, 800)
	r := w.run(t, nil, "load", table, "in.ddb", "--max-write-units", "600", "--in-flight", "16", "--progress", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	perSecond, refused := w.proxy.WriteCapacityUse(table)
	worst, seconds := 0.0, 0
	for i, u := range perSecond {
		if i > 0 && i < len(perSecond)-1 {
			worst, seconds = max(worst, u), seconds+1
		}
	}
	if refused != 0 || seconds < 1 || worst > 600*1.05 {
		t.Errorf("proxy admitted %v a second, refused %d; want no refusal and no whole second above 630", perSecond, refused)
	}
	last := lastFigures(t, r.stderr)
	if last.Read != 2000 || last.Written != 2000 || last.Rejected != 0 || last.Read != last.Written+last.Rejected {
		t.Errorf("summary %+v does not add up to 2000 read and written", last)
	}
	if strings.Count(r.stderr, "\n") < 3 {
		t.Errorf("a load of about three seconds printed %d progress lines; want one a second and the summary", strings.Count(r.stderr, "\n"))
	}
	if n := len(w.contents(t, table)); n != 2000 {
		t.Errorf("table holds %d; want 2000", n)
	}
}

// TestIntegrationLoadAdaptsWithoutCap loads 1,500 items into a table whose capacity in the proxy
// is 300 write units a second, with no --max-write-units: the load lands everything, exits 0 and
// reports the throttling, and past its start few of its calls have writes refused (without
// adaptation, most would: see the library's TestIntegrationBatcherAdaptsToCapacity). The loop
// that waits for the start to pass polls the proxy; it times nothing.
func TestIntegrationLoadAdaptsWithoutCap(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	w.writeBodies(t, "in.ddb", 1500, 100)
	w.proxy.SetWriteCapacity(table, 300, 30)
	done := make(chan result)
	go func() {
		done <- w.runTo(t, nil, nil, "load", table, "in.ddb", "--in-flight", "16", "--progress", "json")
	}()
	// The second half, past the start (16 calls go out before the first comes back, and a few
	// round trips follow before the rate settles): once 750 units, half the load, have landed.
	var calls0, throttled0 int
	for admitted := 0.0; admitted < 750; {
		select {
		case r := <-done:
			t.Fatalf("the load ended before 750 units landed: exit %d: %s", r.code, r.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		perSecond, _ := w.proxy.WriteCapacityUse(table)
		admitted = 0
		for _, u := range perSecond {
			admitted += u
		}
		calls0, throttled0 = w.proxy.WriteCapacityCalls(table)
	}
	r := <-done
	checkNoLeaks(t)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	calls, throttled := w.proxy.WriteCapacityCalls(table)
	if calls, throttled = calls-calls0, throttled-throttled0; calls < 20 || float64(throttled) > 0.2*float64(calls) {
		t.Errorf("in the second half, %d of %d calls had writes refused; want at least 20 calls and at most 20%% refused (without adaptation: over 80%%)", throttled, calls)
	}
	last := lastFigures(t, r.stderr)
	if last.Read != 1500 || last.Written != 1500 || last.Rejected != 0 || last.Throttled == 0 {
		t.Errorf("summary %+v; want 1500 read and written, none rejected, some throttled", last)
	}
	if n := len(w.contents(t, table)); n != 1500 {
		t.Errorf("table holds %d; want 1500", n)
	}
}

// TestIntegrationExportKilledResumes kills an export to a folder with SIGKILL while the proxy
// stalls its scans, then resumes it: the files hold every item exactly once.
func TestIntegrationExportKilledResumes(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	table := w.table(t)
	items := typed(400)
	w.seed(t, table, items)
	w.proxy.AddRule(dynaflowtest.Rule{Op: "Scan", Skip: 8, Fault: dynaflowtest.Stall})
	args := []string{"export", table, "-o", "out/", "--gzip", "--segments", "3", "--page-size", "15", "--checkpoint-every", "1ns", "--progress", "none", "--endpoint", w.proxy.URL}
	cmd := exec.Command(bin, args...)
	cmd.Dir = w.dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	exited := start(t, cmd)
	for w.proxy.Calls("Scan") <= 8 { // the ninth scan is stalled: the export is mid-way
		if isDone(exited) {
			t.Fatalf("export ended before the stall: %s", stderr.String())
		}
		yieldBriefly()
	}
	cmd.Process.Kill()
	<-exited
	cks, _ := filepath.Glob(w.path("out/*.checkpoint"))
	midway := false
	for _, ck := range cks {
		var st exportState
		if _, err := loadCheckpoint(ck, &st); err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Segments {
			midway = midway || s.Start != nil
		}
	}
	if !midway {
		t.Fatalf("no checkpoint in %v holds a place in the scan", cks)
	}
	w.proxy.Reset()
	if r := w.run(t, nil, args[:len(args)-2]...); r.code != exitFailed || !strings.Contains(r.stderr, "--resume") {
		t.Errorf("starting over on an interrupted export: exit %d, %s; want 1 and a word about --resume", r.code, r.stderr)
	}
	if r := w.run(t, nil, append(args[:len(args)-2], "--resume")...); r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	got := map[string]bool{}
	files, _ := filepath.Glob(w.path("out/*.ddb.gz"))
	for _, f := range files {
		for k := range readItems(t, f, formatDDB) {
			if got[k] {
				t.Errorf("an item is in two files")
			}
			got[k] = true
		}
	}
	if diff := cmp.Diff(canonSet(items), got); diff != "" {
		t.Errorf("export after resume (-want +got):\n%s", diff)
	}
	if cks, _ := filepath.Glob(w.path("out/*.checkpoint")); len(cks) != 0 {
		t.Errorf("checkpoints left after a finished export: %v", cks)
	}
}

// TestIntegrationLoadInterruptedResumes interrupts a capped load with SIGINT: it exits 130 with
// a checkpoint, and --resume loads the rest, skipping what landed and missing nothing.
func TestIntegrationLoadInterruptedResumes(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	table := w.table(t)
	items := make([]dynaflow.Item, 2000)
	for i := range items {
		items[i] = dynaflow.Item{"pk": S("k" + strconv.Itoa(i)), "sk": N(strconv.Itoa(i)), "body": S(strings.Repeat("b", 500))}
	}
	writeItems(t, w.path("in.ddb.gz"), formatDDB, nil, items)
	args := []string{"load", table, "in.ddb.gz", "--max-write-units", "400", "--checkpoint-every", "50ms", "--progress", "none", "--endpoint", w.proxy.URL}
	cmd := exec.Command(bin, args...)
	cmd.Dir = w.dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	exited := start(t, cmd)
	ck := w.path("dynaflow-load-" + table + ".checkpoint")
	for {
		var st loadState
		if found, _ := loadCheckpoint(ck, &st); found && st.Line > 0 {
			break
		}
		if isDone(exited) {
			t.Fatalf("load ended before its first checkpoint: %s", stderr.String())
		}
		yieldBriefly()
	}
	cmd.Process.Signal(syscall.SIGINT)
	<-exited
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d; want 130: %s", code, stderr.String())
	}
	var st loadState
	if found, err := loadCheckpoint(ck, &st); !found || err != nil || st.Line <= 0 || st.Line >= 2000 {
		t.Fatalf("checkpoint after the interrupt: %+v, %v; want a line between 1 and 1999", st, err)
	}
	landed := len(w.contents(t, table))
	if int64(landed) < st.Line {
		t.Errorf("%d items landed, but the checkpoint says every line up to %d has", landed, st.Line)
	}
	r := w.run(t, nil, append(args[:len(args)-2], "--resume", "--progress", "json")...)
	if r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	if last := lastFigures(t, r.stderr); last.Read != 2000-st.Line {
		t.Errorf("the resumed load read %d lines; want the %d after the checkpoint", last.Read, 2000-st.Line)
	}
	if diff := cmp.Diff(canonSet(items), w.contents(t, table)); diff != "" {
		t.Errorf("table after resume (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(ck); !os.IsNotExist(err) {
		t.Errorf("checkpoint left after a finished load: %v", err)
	}
}

func TestIntegrationCopy(t *testing.T) {
	w := newWorld(t)
	src := w.table(t)
	items := typed(250)
	w.seed(t, src, items)
	dst := src + "-copy"
	r := w.run(t, nil, "copy", src, dst, "--create", "--verify", "--segments", "4", "--progress", "none")
	if r.code != 0 {
		t.Fatalf("copy: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "created table "+dst) || !strings.Contains(r.stderr, "verify: "+dst+" holds 250 items") {
		t.Errorf("copy said: %s", r.stderr)
	}
	if diff := cmp.Diff(canonSet(items), w.contents(t, dst)); diff != "" {
		t.Errorf("copy (-want +got):\n%s", diff)
	}
	// Again onto the table that now exists: --create leaves it alone.
	if r := w.run(t, nil, "copy", src, dst, "--create", "--progress", "none"); r.code != 0 || strings.Contains(r.stderr, "created") {
		t.Errorf("second copy: exit %d: %s", r.code, r.stderr)
	}
	if r := w.run(t, nil, "copy", src, src+"-missing", "--progress", "none"); r.code != exitFailed || !strings.Contains(r.stderr, "--create") {
		t.Errorf("copy to a missing table without --create: exit %d: %s", r.code, r.stderr)
	}
}

func TestIntegrationExitCodes(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"load", "no-such-table", "-"}, "does not exist"},
		{[]string{"export", "no-such-table"}, "does not exist"},
		{[]string{"load", "some-table", "x.ddb", "--format", "xml"}, "--format"},
		{[]string{"load", "some-table", "x.ddb", "--in-flight", "0"}, "--in-flight"},
		{[]string{"load", "some-table", "x.ddb", "--no-such-flag"}, "no-such-flag"},
	} {
		if r := w.run(t, nil, c.args...); r.code != exitFailed || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// TestIntegrationPlaceholderCredentials runs with no credentials anywhere against a loopback
// endpoint: the tool says it uses placeholders, once, and gets a DynamoDB answer.
func TestIntegrationPlaceholderCredentials(t *testing.T) {
	w := newWorld(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	r := w.run(t, nil, "export", "no-such-table")
	if r.code != exitFailed || strings.Count(r.stderr, "placeholder credentials") != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}

// start starts cmd and returns a channel closed when it has exited.
func start(t *testing.T, cmd *exec.Cmd) chan struct{} {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestIntegrationCopyInterruptedResumes stops a copy (as the first Ctrl-C does) once writes are
// under way: it exits 130 with a checkpoint, and --resume copies the rest. The cap of 100 units
// keeps the Batcher's room at 200 writes, so the scan is still going when the interrupt comes.
func TestIntegrationCopyInterruptedResumes(t *testing.T) {
	w := newWorld(t)
	src, dst := w.table(t), w.table(t)
	items := typed(600)
	w.seed(t, src, items)
	stop, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	go func() {
		for w.proxy.Calls("BatchWriteItem") < 3 && stop.Err() == nil {
			yieldBriefly()
		}
		interrupt()
	}()
	args := []string{"copy", src, dst, "--segments", "2", "--page-size", "20", "--max-write-units", "100", "--checkpoint-every", "20ms", "--progress", "none", "--endpoint", w.proxy.URL}
	chdir(t, w.dir)
	var stderr strings.Builder
	code := runContext(stop, context.Background(), args, strings.NewReader(""), io.Discard, &stderr)
	checkNoLeaks(t)
	if code != exitInterrupted {
		t.Fatalf("exit %d; want 130: %s", code, stderr.String())
	}
	var st copyState
	ck := w.path("dynaflow-copy-" + src + "-" + dst + ".checkpoint")
	if found, err := loadCheckpoint(ck, &st); !found || err != nil {
		t.Fatalf("no checkpoint after the interrupt: %v", err)
	}
	if n := len(w.contents(t, dst)); n == 0 || n == len(items) {
		t.Fatalf("destination holds %d of %d items after the interrupt; want some", n, len(items))
	}
	if r := w.run(t, nil, append(args[:len(args)-2], "--resume")...); r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	if diff := cmp.Diff(canonSet(items), w.contents(t, dst)); diff != "" {
		t.Errorf("destination after resume (-want +got):\n%s", diff)
	}
}

// TestIntegrationProgressBar draws the bar into a buffer (not a terminal, so asked for) and ends
// with the summary line for people.
func TestIntegrationProgressBar(t *testing.T) {
	w := newWorld(t)
	table := w.table(t)
	writeItems(t, w.path("in.ddb"), formatDDB, nil, typed(50))
	r := w.run(t, nil, "load", table, "in.ddb", "--progress", "bar")
	if r.code != 0 || !strings.Contains(r.stderr, "load "+table) || !strings.Contains(r.stderr, "dynaflow load "+table+": read 50, written 50, replaced 0") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("progress went to stdout: %q", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := runContext(context.Background(), context.Background(), []string{"version"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "dynaflow ") {
		t.Errorf("version: exit %d, %q %q", code, out.String(), errb.String())
	}
}

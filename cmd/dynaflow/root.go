package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// app is one run of the command line: its streams, its contexts and its flags.
type app struct {
	stop   context.Context // ends reading: the first interrupt
	hard   context.Context // ends waiting for writes to land: the second interrupt
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	format, columns   string
	gzip              bool
	segments          int
	inFlight          int
	pageSize          int32
	maxWrite, maxRead string
	rejects           string
	checkpoint        string
	checkpointEvery   time.Duration
	landGrace         time.Duration
	resume            bool
	dryRun            bool
	verify            bool
	create            bool
	progress          string
	endpoint, region  string
	profile           string
	yes               bool
	output            string

	cmd          *cobra.Command  // the command running, for Flags().Changed
	progressMode string          // how the run reports progress once it has started: "json", "bar" or "none"
	transport    *http.Transport // the SDK client's, to close its idle connections at the end
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "dynaflow",
		Short: "Load, export and copy DynamoDB tables: streaming, lossless, resumable, capped",
		Long: `dynaflow loads files into DynamoDB tables, exports tables to files and copies tables.

Every item lands or is reported: a write DynamoDB refuses goes to a rejects file that loads again
as it is. An interrupted run (Ctrl-C) lets what it accepted land, writes a checkpoint and exits
130; the same command with --resume continues it. Without a cap, writes slow down when DynamoDB
throttles; --max-write-units and --max-read-units cap them in capacity units per second.

Exit codes: 0 everything landed; 2 finished with rejects, or --verify found a difference;
1 stopped by an error; 130 interrupted.

Formats (--format, default from the file name, else ddb):
  ddb   one item a line in DynamoDB JSON, {"Item":{"pk":{"S":"a"},...}}, the shape of DynamoDB's
        own export to S3; lossless for every type. load also reads bare typed items.
  json  plain JSON lines: strings, numbers (digits kept), booleans, null, arrays (L), objects (M).
        Lossy on export: sets become arrays and binaries base64 strings.
  csv   RFC 4180 with a header whose names may carry types: pk:S,sk:N,active:BOOL,tags:SS
        (untyped is S; an empty cell is an absent attribute; L and M cells are JSON).`,
		Example: `  dynaflow load orders orders.ddb.gz --endpoint http://127.0.0.1:8000
  dynaflow export orders -o backup/ --segments 16 --max-read-units 50%
  dynaflow copy orders orders-staging --create --verify`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stderr)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see dynaflow %s --help)", err, c.Name())
	})
	root.AddCommand(a.loadCmd(), a.exportCmd(), a.copyCmd(), a.versionCmd())
	return root
}

// connFlags are the flags of every command that talks to DynamoDB.
func (a *app) connFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&a.endpoint, "endpoint", "", "DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS's)")
	f.StringVar(&a.region, "region", "", "AWS region (default: the SDK's chain: AWS_REGION, profile)")
	f.StringVar(&a.profile, "profile", "", "shared config profile (default: AWS_PROFILE, else default)")
	f.StringVar(&a.progress, "progress", "auto", "progress on stderr: auto (bar on a terminal, else json), bar, json or none")
	f.BoolVar(&a.yes, "yes", false, "answer yes to prompts (there are none for non-destructive work)")
	f.StringVar(&a.checkpoint, "checkpoint", "", "where to keep the checkpoint for --resume (default: see above)")
	f.DurationVar(&a.checkpointEvery, "checkpoint-every", time.Second, "how often to save the checkpoint")
	f.BoolVar(&a.resume, "resume", false, "continue from the checkpoint of an interrupted run")
}

func (a *app) writeFlags(c *cobra.Command) {
	f := c.Flags()
	f.IntVar(&a.inFlight, "in-flight", 8, "BatchWriteItem calls at once")
	f.StringVar(&a.maxWrite, "max-write-units", "", "cap on write capacity units per second: a number, or P% of the table's provisioned (or on-demand maximum) capacity")
	f.StringVar(&a.rejects, "rejects", "", "file for the items that could not be written, in ddb format (default: TABLE.rejects.ddb, made only when needed)")
	f.BoolVar(&a.verify, "verify", false, "count the destination afterwards and compare")
	f.DurationVar(&a.landGrace, "land-grace", 10*time.Second, "after an interrupt, how long to wait for accepted writes to land")
}

func (a *app) readFlags(c *cobra.Command) {
	f := c.Flags()
	f.IntVar(&a.segments, "segments", 0, "parallel scan segments (default: one per 2 GB of the table, 4 to 64)")
	f.StringVar(&a.maxRead, "max-read-units", "", "cap on read capacity units per second: a number, or P% of the table's provisioned (or on-demand maximum) capacity")
	f.Int32Var(&a.pageSize, "page-size", 0, "items per Scan page (default: DynamoDB's 1 MB pages)")
}

// formatFlags are --format and --gzip, with what the command does when they are not given.
func (a *app) formatFlags(c *cobra.Command, formatDefault, gzipDefault string) {
	f := c.Flags()
	f.StringVar(&a.format, "format", "", "ddb, json or csv (default: "+formatDefault+")")
	f.BoolVar(&a.gzip, "gzip", false, "gzip (default: "+gzipDefault+")")
}

// changed reports whether the flag name was given on the command line.
func (a *app) changed(name string) bool { return a.cmd != nil && a.cmd.Flags().Changed(name) }

// checkFormat checks --format and --progress.
func (a *app) checkFlags() error {
	switch a.format {
	case "", formatDDB, formatJSON, formatCSV:
	default:
		return fmt.Errorf("--format %q: it must be ddb, json or csv", a.format)
	}
	switch a.progress {
	case "auto", "bar", "json", "none":
	default:
		return fmt.Errorf("--progress %q: it must be auto, bar, json or none", a.progress)
	}
	if a.inFlight < 1 {
		return fmt.Errorf("--in-flight %d: it must be at least 1", a.inFlight)
	}
	if a.segments < 0 {
		return fmt.Errorf("--segments %d: it must be at least 1", a.segments)
	}
	if a.checkpointEvery <= 0 {
		return fmt.Errorf("--checkpoint-every %v: it must be positive", a.checkpointEvery)
	}
	return nil
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print dynaflow's version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdout, "dynaflow", version())
			return nil
		},
	}
}

// version is the module version the binary was built from: a tag when installed with go install
// MODULE@VERSION, "(devel)" from a checkout.
func version() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if ok {
		v += " " + bi.GoVersion
	}
	return v
}

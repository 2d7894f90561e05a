// Command benchdoc runs the load-test scenarios that BENCHMARKS.md reports
// and generates BENCHMARKS.md from their JSON results, with a plot of the
// relay's latency distributions. `make bench` runs both steps:
//
//	go run ./cmd/loadtest/benchdoc run        # measure: JSON into cmd/loadtest/benchdata
//	go run ./cmd/loadtest/benchdoc generate   # BENCHMARKS.md and the SVG from that JSON
//
// Run it from the repository root. Nothing in BENCHMARKS.md is written by
// hand: edit the template (benchmarks.md.tmpl) and regenerate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "benchdoc: %v\n", err)
		}
		os.Exit(2)
	}
}

// config is the validated command line.
type config struct {
	cmd      string
	dir      string // results directory
	doc      string // the generated Markdown
	runs     int
	duration time.Duration
}

const usage = `usage: benchdoc run|generate [flags]

  run       build cmd/loadtest and cmd/fakeconnector, run every scenario
            --runs times and write the JSON results and how they were taken
            into --dir
  generate  write --doc and its plot from the JSON in --dir

Flags:
`

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("benchdoc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.dir, "dir", "cmd/loadtest/benchdata", "`directory` of the JSON results and the plot")
	fs.StringVar(&c.doc, "doc", "BENCHMARKS.md", "Markdown `file` to generate")
	fs.IntVar(&c.runs, "runs", 3, "runs of each scenario (verdicts need 3)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each phase of the relay and control-plane scenarios (verdicts need 10s)")
	if len(args) == 0 || (args[0] != "run" && args[0] != "generate") {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil, flag.ErrHelp
		}
		return nil, errors.New("want the command run or generate first")
	}
	c.cmd = args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (every setting is a flag)", fs.Arg(0))
	case c.runs < 1 || c.runs > 20:
		return nil, fmt.Errorf("--runs: want 1 to 20, got %d", c.runs)
	case c.duration <= 0:
		return nil, fmt.Errorf("--duration: must be positive, got %v", c.duration)
	case c.dir == "":
		return nil, errors.New("--dir: must not be empty")
	case c.doc == "":
		return nil, errors.New("--doc: must not be empty")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	if cfg.cmd == "run" {
		return measure(ctx, cfg, stderr)
	}
	return generate(cfg)
}

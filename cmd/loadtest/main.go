// Command loadtest measures the orchestrator against the targets of
// "What fast means here" in the design: relay latency and throughput
// against a runner talking to the fake connector directly and against a
// bare gRPC hop, intake time, memory per idle session, and control-plane
// throughput against a bare gRPC echo. Every comparison is made within one
// run, on the same machine.
//
//	go run ./cmd/loadtest --scenario relay --sessions 200 --interval 50ms --duration 10s
//	go run ./cmd/loadtest --scenario intake --tickets 1000 --json
//	go run ./cmd/loadtest --help
//
// BENCHMARKS.md at the repository root has the figures and how they were
// taken.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	"github.com/obdorch/obdorch/orchestrator/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a scenario failed, or responses were lost
	exitUsage  = 2
)

// runner runs the scenarios with the tool's and the components' loggers.
type runner struct {
	cfg    *config
	stderr io.Writer
	log    *slog.Logger // this tool's progress
	clog   *slog.Logger // the in-process orchestrator, store and fake
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		fmt.Fprintln(stdout, buildinfo.Read().String("loadtest"))
		return exitOK
	}
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return exitUsage
	}
	r := &runner{
		cfg:    cfg,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})),
		clog:   slog.New(telemetry.NewLogHandler(stderr, "text", cfg.orchestratorLevel)),
	}
	reports, err := r.runAll(ctx)
	if err != nil {
		r.log.Error("load test failed", "err", err)
		return exitFailed
	}
	if err := output(stdout, cfg, reports); err != nil {
		r.log.Error("writing the report", "err", err)
		return exitFailed
	}
	for _, rep := range reports {
		if rep.lostCount() > 0 {
			r.log.Error("responses were lost or mismatched", "scenario", rep.name(), "lost", rep.lostCount())
			return exitFailed
		}
	}
	return exitOK
}

// runAll runs the selected scenarios one after the other.
func (r *runner) runAll(ctx context.Context) ([]report, error) {
	var reports []report
	for _, s := range r.cfg.selected() {
		r.log.Info("scenario", "name", s)
		var (
			rep report
			err error
		)
		switch s {
		case "relay":
			rep, err = nonNil(r.runRelay(ctx))
		case "intake":
			rep, err = nonNil(r.runIntake(ctx))
		case "memory":
			rep, err = nonNil(r.runMemory(ctx))
		case "controlplane":
			rep, err = nonNil(r.runControlPlane(ctx))
		}
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		rep.check(r.cfg)
		reports = append(reports, rep)
	}
	return reports, nil
}

// nonNil turns a typed nil result into a nil report, so that a failed
// scenario never yields a non-nil interface holding nil.
func nonNil[T report](rep T, err error) (report, error) {
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// output prints the reports: one JSON object, or the tables.
func output(w io.Writer, cfg *config, reports []report) error {
	if !cfg.json {
		for i, rep := range reports {
			if i > 0 {
				fmt.Fprintln(w)
			}
			rep.printTable(w)
		}
		return nil
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(reports) == 1 {
		return enc.Encode(reports[0])
	}
	all := map[string]any{"scenario": "all"}
	var lost uint64
	for _, rep := range reports {
		all[rep.name()] = rep
		lost += rep.lostCount()
	}
	all["lost"] = lost
	return enc.Encode(all)
}

// profiled runs fn, the measured part of a phase, under the CPU profiler
// when --cpuprofile is set.
func (r *runner) profiled(scenario, phase string, fn func()) {
	if r.cfg.cpuProfile == "" {
		fn()
		return
	}
	path := fmt.Sprintf("%s-%s-%s.pprof", r.cfg.cpuProfile, scenario, strings.ReplaceAll(phase, " ", "-"))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		r.log.Error("CPU profile not written", "err", err)
		fn()
		return
	}
	fn()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		r.log.Error("CPU profile not written", "err", err)
		return
	}
	r.log.Info("CPU profile written", "path", path)
}

// heapProfile writes the heap profile of a scenario when --memprofile is
// set: in use now, and allocated since the start.
func (r *runner) heapProfile(scenario string) {
	if r.cfg.memProfile == "" {
		return
	}
	path := fmt.Sprintf("%s-%s.pprof", r.cfg.memProfile, scenario)
	f, err := os.Create(path)
	if err != nil {
		r.log.Error("heap profile not written", "err", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		r.log.Error("heap profile not written", "err", err)
		return
	}
	r.log.Info("heap profile written", "path", path)
}

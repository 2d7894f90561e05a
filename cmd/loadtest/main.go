// Command loadtest measures the orchestrator against the targets of
// "What fast means here" in the design: relay latency and throughput
// against a runner talking to the fake connector directly and against a
// bare gRPC hop, intake time, memory per idle session, control-plane
// throughput against a bare gRPC echo, and the failover of three replicas
// on an etcd cluster. Every comparison is made within one
// run, on the same machine.
//
//	go run ./cmd/loadtest --scenario relay --sessions 200 --interval 50ms --duration 10s
//	go run ./cmd/loadtest --scenario intake --tickets 1000 --json
//	go run ./cmd/loadtest --scenario failover --tickets 30 --no-fsync
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
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	"github.com/obdorch/obdorch/cmd/loadtest/internal/results"
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
	// run numbers the runs, for the names of profiles.
	run int
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
	defer cfg.gcPercent.Apply()()
	r := &runner{
		cfg:    cfg,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})),
		clog:   slog.New(telemetry.NewLogHandler(stderr, "text", cfg.orchestratorLevel)),
	}
	if cfg.mutexProfile != "" {
		defer runtime.SetMutexProfileFraction(runtime.SetMutexProfileFraction(mutexFraction))
	}
	if cfg.metrics {
		shutdown, err := telemetry.Setup(ctx, telemetry.Config{
			ServiceName: "obdorch-loadtest", Getenv: func(string) string { return "" },
			Prometheus: prometheus.NewRegistry(),
		})
		if err != nil {
			r.log.Error("setting up metrics", "err", err)
			return exitFailed
		}
		defer func() {
			if err := shutdown(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("shutting metrics down", "err", err)
			}
		}()
	}
	all, err := r.runAll(ctx)
	if err != nil {
		r.log.Error("load test failed", "err", err)
		return exitFailed
	}
	if err := output(stdout, cfg, all); err != nil {
		r.log.Error("writing the report", "err", err)
		return exitFailed
	}
	for _, res := range all {
		if res.result.Lost > 0 {
			r.log.Error("responses were lost or mismatched", "scenario", res.result.Scenario, "lost", res.result.Lost)
			return exitFailed
		}
	}
	return exitOK
}

// mutexFraction samples one in this many contention events.
const mutexFraction = 5

// scenarioRuns is one scenario's runs and their summary.
type scenarioRuns struct {
	reports []report
	result  *results.Result
}

// runAll runs the selected scenarios one after the other, each
// cfg.runs times.
func (r *runner) runAll(ctx context.Context) ([]scenarioRuns, error) {
	var all []scenarioRuns
	for _, s := range r.cfg.selected() {
		var sr scenarioRuns
		var raws []json.RawMessage
		for i := range r.cfg.runs {
			r.log.Info("scenario", "name", s, "run", i+1, "of", r.cfg.runs)
			rep, err := r.runOnce(ctx, s)
			if err == nil && ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", s, i+1, err)
			}
			rep.check(r.cfg)
			raw, err := json.Marshal(rep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
			sr.reports = append(sr.reports, rep)
			raws = append(raws, raw)
		}
		var err error
		if sr.result, err = results.NewResult(s, r.cfg.args, raws); err != nil {
			return nil, err
		}
		all = append(all, sr)
	}
	return all, nil
}

// runOnce runs one scenario once.
func (r *runner) runOnce(ctx context.Context, s string) (report, error) {
	r.run++
	switch s {
	case "relay":
		return nonNil(r.runRelay(ctx))
	case "intake":
		return nonNil(r.runIntake(ctx))
	case "memory":
		return nonNil(r.runMemory(ctx))
	case "controlplane":
		return nonNil(r.runControlPlane(ctx))
	case "failover":
		return nonNil(r.runFailover(ctx))
	}
	return nil, fmt.Errorf("unknown scenario %q", s)
}

// nonNil turns a typed nil result into a nil report, so that a failed
// scenario never yields a non-nil interface holding nil.
func nonNil[T report](rep T, err error) (report, error) {
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// output prints each run's table and the summary of the runs, or one JSON
// object; --out also gets the JSON.
func output(w io.Writer, cfg *config, all []scenarioRuns) error {
	var v any
	if len(all) == 1 {
		v = all[0].result
	} else {
		m := map[string]any{"scenario": "all"}
		var lost uint64
		for _, sr := range all {
			m[sr.result.Scenario] = sr.result
			lost += sr.result.Lost
		}
		m["lost"] = lost
		v = m
	}
	if cfg.out != "" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.out, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if cfg.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	for i, sr := range all {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for j, rep := range sr.reports {
			if len(sr.reports) > 1 {
				fmt.Fprintf(w, "--- run %d of %d\n", j+1, len(sr.reports))
			}
			rep.printTable(w)
			fmt.Fprintln(w)
		}
		printSummary(w, sr.result.Scenario, sr.result.Summary)
	}
	return nil
}

// profiled runs fn, the measured part of a phase, under the profilers and
// the tracer the flags ask for.
func (r *runner) profiled(scenario, phase string, fn func()) {
	cfg := r.cfg
	name := func(prefix, ext string) string {
		return fmt.Sprintf("%s-%s%s-%s%s", prefix, scenario, r.runSuffix(), strings.ReplaceAll(phase, " ", "-"), ext)
	}
	var stops []func()
	if cfg.cpuProfile != "" {
		path := name(cfg.cpuProfile, ".pprof")
		if stop, err := startFile(path, pprof.StartCPUProfile, pprof.StopCPUProfile); err != nil {
			r.log.Error("CPU profile not written", "err", err)
		} else {
			stops = append(stops, stop)
		}
	}
	if cfg.trace != "" {
		path := name(cfg.trace, ".trace")
		if stop, err := startFile(path, trace.Start, trace.Stop); err != nil {
			r.log.Error("execution trace not written", "err", err)
		} else {
			stops = append(stops, stop)
		}
	}
	fn()
	for _, stop := range stops {
		stop()
	}
	if cfg.memProfile != "" {
		r.writeProfile("allocs", name(cfg.memProfile, ".allocs.pprof"))
	}
	if cfg.mutexProfile != "" {
		r.writeProfile("mutex", name(cfg.mutexProfile, ".mutex.pprof"))
	}
}

// runSuffix names the run in file names when there are several.
func (r *runner) runSuffix() string {
	if r.cfg.runs == 1 {
		return ""
	}
	return fmt.Sprintf("-run%d", r.run)
}

// startFile creates path and starts writing a profile or trace to it; the
// returned function stops and closes it.
func startFile(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		stop()
		_ = f.Close()
	}, nil
}

// writeProfile writes the named runtime profile to path.
func (r *runner) writeProfile(profile, path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup(profile).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.log.Error("profile not written", "profile", profile, "err", err)
		return
	}
	r.log.Info("profile written", "profile", profile, "path", path)
}

// heapProfile writes the heap profile of a scenario when --memprofile is
// set: in use now, and allocated since the start.
func (r *runner) heapProfile(scenario string) {
	if r.cfg.memProfile == "" {
		return
	}
	path := fmt.Sprintf("%s-%s%s.pprof", r.cfg.memProfile, scenario, r.runSuffix())
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
	gpath := fmt.Sprintf("%s-%s%s.goroutine.pprof", r.cfg.memProfile, scenario, r.runSuffix())
	g, err := os.Create(gpath)
	if err != nil {
		r.log.Error("goroutine profile not written", "err", err)
		return
	}
	defer g.Close()
	if err := pprof.Lookup("goroutine").WriteTo(g, 0); err != nil {
		r.log.Error("goroutine profile not written", "err", err)
		return
	}
	r.log.Info("goroutine profile written", "path", gpath)
}

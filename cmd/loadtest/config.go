package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// Scenarios, in the order "all" runs them.
var scenarios = []string{"relay", "intake", "memory", "controlplane", "failover"}

// config is the validated command line.
type config struct {
	// gcPercent is the process's GC target, cmd/orchestrator's default
	// unless GOGC or --gc-percent says otherwise.
	gcPercent  gcpercent.Value
	scenario   string
	sessions   int
	interval   time.Duration
	duration   time.Duration
	warmup     time.Duration
	busTiming  bool
	openobdTLS bool
	tickets    int
	// storeLeaseTTL is the replicas' store lease (failover).
	storeLeaseTTL time.Duration
	concurrency   int
	settle        time.Duration
	json          bool
	runs          int
	out           string

	// Running processes to measure instead of in-process ones.
	orchestratorAddr string
	openobdAddr      string
	partnerURL       string
	clientID         string
	clientSecret     string
	openobdCA        string

	noFsync           bool
	logLevel          slog.Level
	orchestratorLevel slog.Level
	cpuProfile        string
	memProfile        string
	mutexProfile      string
	trace             string
	metrics           bool
	// args is the command line, recorded in the results.
	args []string
}

// externalFake reports whether the fake Jifeline runs in another process.
func (c *config) externalFake() bool { return c.openobdAddr != "" }

// externalOrchestrator reports whether the orchestrator runs in another
// process.
func (c *config) externalOrchestrator() bool { return c.orchestratorAddr != "" }

// selected returns the scenarios to run.
func (c *config) selected() []string {
	if c.scenario == "all" {
		return scenarios
	}
	return []string{c.scenario}
}

const usageHead = `loadtest measures the orchestrator against the fake connector and prints a
summary table (or one JSON object with --json; logs go to stderr).

By default everything runs in this process: the fake Jifeline (Partner API and
openOBD), an embedded etcd and the orchestrator with its control plane on a
loopback port. --openobd-addr with --partner-url use a running fake instead
(cmd/fakeconnector); --orchestrator-addr a running orchestrator.

Scenarios:
  relay         UDS round trips (22 F1 90 to 0x7E0/0x7E8 on can0) from --sessions
                concurrent sessions: direct to the fake, through the orchestrator,
                and a bare gRPC echo hop, one after the other
  intake        --tickets pending tickets to READY sessions: time, Partner API
                requests, openOBD calls
  memory        RSS and goroutines per idle READY session at --sessions
  controlplane  GetSession and ListSessions throughput against a bare gRPC echo
  failover      three replicas on a three-member embedded etcd cluster share
                --tickets tickets: Send through the owner, forwarded by another
                replica and a bare gRPC hop (--sessions callers); then one
                replica is killed: time until its sessions are READY on the
                survivors, duplicates, and the spread before and after
  all           each of the above with the same flags

Flags:
`

// parseConfig parses and validates the command line. It returns
// flag.ErrHelp after printing the usage for -h.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.scenario, "scenario", "relay", "`scenario` to run: relay, intake, memory, controlplane, failover or all")
	fs.IntVar(&c.sessions, "sessions", 50, "concurrent sessions (relay), idle READY sessions (memory), sessions to query (controlplane)")
	fs.DurationVar(&c.interval, "interval", 50*time.Millisecond, "pause between the requests of one session (relay); 0 sends as fast as each session can")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each phase (relay, controlplane)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before each phase")
	fs.BoolVar(&c.busTiming, "bus-timing", false, "the in-process fake delays answers by their CAN frame time at 500 kbit/s")
	fs.BoolVar(&c.openobdTLS, "openobd-tls", false, "the in-process fake serves openOBD over TLS (generated certificate), as Jifeline does; default plaintext")
	fs.IntVar(&c.tickets, "tickets", 1000, "pending tickets to take in (intake)")
	fs.DurationVar(&c.storeLeaseTTL, "store-lease-ttl", store.DefaultLeaseTTL, "the replicas' store lease, whole seconds (failover; cmd/orchestrator's --store-lease-ttl)")
	fs.IntVar(&c.concurrency, "concurrency", 50, "concurrent callers (controlplane)")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "pause before each memory reading, for new sessions to go idle (memory)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of the tables")
	fs.IntVar(&c.runs, "runs", 0, "runs of each scenario, each on fresh sessions (default 3 in-process, 1 against a running fake or orchestrator); the summary gives medians and ranges, and a target is met only when every run meets it (verdicts need 3)")
	fs.StringVar(&c.out, "out", "", "also write the JSON results to `file`")
	fs.StringVar(&c.orchestratorAddr, "orchestrator-addr", "", "`host:port` of a running orchestrator's control plane (plaintext); default in-process")
	fs.StringVar(&c.openobdAddr, "openobd-addr", "", "`host:port` of a running fake openOBD (cmd/fakeconnector); needs --partner-url")
	fs.StringVar(&c.partnerURL, "partner-url", "", "`URL` of the running fake's Partner API, e.g. http://127.0.0.1:17002")
	fs.StringVar(&c.openobdCA, "openobd-ca", "", "CA certificate `file` of a running fake served with --tls (its --tls-ca-file); without it the running fake is reached in plaintext")
	fs.StringVar(&c.clientID, "client-id", fakejifeline.DefaultClientID, "client id the fake accepts")
	fs.StringVar(&c.clientSecret, "client-secret", fakejifeline.DefaultClientSecret, "client secret the fake accepts")
	fs.BoolVar(&c.metrics, "metrics", true, "record the in-process components' metrics in an OpenTelemetry meter provider read by a Prometheus registry, as cmd/orchestrator does with its admin listener on (its default); false leaves them to the no-op provider")
	gc, err := gcpercent.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	c.gcPercent = gc
	fs.Var(&c.gcPercent, "gc-percent", "garbage collector target in `percent`, or off, of this process (the in-process orchestrator's): cmd/orchestrator's default unless GOGC is set")
	fs.BoolVar(&c.noFsync, "no-fsync", false, "run the embedded etcd without fsync (faster writes; the service default keeps fsync)")
	logLevel := fs.String("log-level", "info", "`level` of this tool's logs: debug, info, warn or error")
	orchLevel := fs.String("orchestrator-log-level", "warn", "`level` of the in-process orchestrator's, store's and fake's logs (info logs every control-plane call)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of each measured phase to `prefix`-<scenario>-<phase>.pprof")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile at the end of each scenario's measurement (memory: with the sessions idle) to `prefix`-<scenario>.pprof with its goroutines in prefix-<scenario>.goroutine.pprof, and the allocations so far at the end of each measured phase to prefix-<scenario>-<phase>.allocs.pprof (cumulative: compare phases with go tool pprof -base)")
	fs.StringVar(&c.mutexProfile, "mutexprofile", "", "sample lock contention and write it at the end of each measured phase to `prefix`-<scenario>-<phase>.mutex.pprof (cumulative, like the allocations)")
	fs.StringVar(&c.trace, "trace", "", "write an execution trace of each measured phase to `prefix`-<scenario>-<phase>.trace (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.args = append([]string{"loadtest"}, args...)
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (every setting is a flag)", fs.Arg(0))
	}
	if c.logLevel, err = parseLevel("log-level", *logLevel); err != nil {
		return nil, err
	}
	if c.orchestratorLevel, err = parseLevel("orchestrator-log-level", *orchLevel); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func parseLevel(flagName, s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--%s: want debug, info, warn or error, got %q", flagName, s)
	}
	return l, nil
}

// validate reports the first invalid setting, naming its flag.
func (c *config) validate() error {
	if c.scenario != "all" && !slices.Contains(scenarios, c.scenario) {
		return fmt.Errorf("--scenario: want one of %s or all, got %q", strings.Join(scenarios, ", "), c.scenario)
	}
	for _, f := range []struct {
		name     string
		v, lo, h int
	}{
		{"sessions", c.sessions, 1, 100_000},
		{"tickets", c.tickets, 1, 100_000},
		{"concurrency", c.concurrency, 1, 10_000},
		{"runs", c.runs, 0, 100},
	} {
		if f.v < f.lo || f.v > f.h {
			return fmt.Errorf("--%s: want %d to %d, got %d", f.name, f.lo, f.h, f.v)
		}
	}
	switch {
	case c.interval < 0:
		return fmt.Errorf("--interval: must not be negative, got %v", c.interval)
	case c.duration <= 0:
		return fmt.Errorf("--duration: must be positive, got %v", c.duration)
	case c.warmup < 0:
		return fmt.Errorf("--warmup: must not be negative, got %v", c.warmup)
	case c.storeLeaseTTL < 2*time.Second || c.storeLeaseTTL > 5*time.Minute || c.storeLeaseTTL%time.Second != 0:
		return fmt.Errorf("--store-lease-ttl: must be whole seconds between 2s and 5m, got %v", c.storeLeaseTTL)
	case c.settle < 0:
		return fmt.Errorf("--settle: must not be negative, got %v", c.settle)
	case (c.openobdAddr == "") != (c.partnerURL == ""):
		return errors.New("--openobd-addr and --partner-url: give both (a running fake) or neither (in-process fake)")
	case c.clientID == "" || c.clientSecret == "":
		return errors.New("--client-id and --client-secret: must not be empty")
	}
	if c.openobdAddr != "" {
		if _, _, err := net.SplitHostPort(c.openobdAddr); err != nil {
			return fmt.Errorf("--openobd-addr: want host:port, got %q", c.openobdAddr)
		}
		if u, err := url.Parse(c.partnerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--partner-url: want an http(s) URL such as http://127.0.0.1:17002, got %q", c.partnerURL)
		}
		if c.busTiming {
			return errors.New("--bus-timing: applies to the in-process fake only; start cmd/fakeconnector with --bus-timing instead")
		}
		if c.openobdTLS {
			return errors.New("--openobd-tls: applies to the in-process fake only; for a running fake started with --tls give --openobd-ca")
		}
	} else if c.openobdCA != "" {
		return errors.New("--openobd-ca: applies to a running fake (--openobd-addr); the in-process fake uses --openobd-tls")
	}
	if c.openobdAddr != "" && slices.Contains(c.selected(), "failover") {
		return errors.New("--openobd-addr: the failover scenario seeds tickets into the in-process fake after its replicas start; drop --openobd-addr and --partner-url")
	}
	external := c.openobdAddr != "" || c.orchestratorAddr != ""
	switch {
	case c.runs == 0 && external:
		c.runs = 1
	case c.runs == 0:
		c.runs = 3
	case c.runs > 1 && external:
		return errors.New("--runs: a running fake or orchestrator keeps the state of a run (used tickets, leased sessions); give --runs 1 and restart them between runs")
	}
	if c.orchestratorAddr != "" {
		if _, _, err := net.SplitHostPort(c.orchestratorAddr); err != nil {
			return fmt.Errorf("--orchestrator-addr: want host:port, got %q", c.orchestratorAddr)
		}
		if c.noFsync {
			return errors.New("--no-fsync: applies to the in-process orchestrator's embedded etcd, not to --orchestrator-addr")
		}
		for _, s := range c.selected() {
			switch s {
			case "intake", "memory", "failover":
				return fmt.Errorf("--orchestrator-addr: the %s scenario measures an orchestrator it starts in this process; drop the flag (a running fake may still be given)", s)
			case "relay":
				if !c.externalFake() {
					return errors.New("--orchestrator-addr: the relay scenario compares with the running orchestrator's own fake: give --openobd-addr and --partner-url too")
				}
			}
		}
	}
	return nil
}

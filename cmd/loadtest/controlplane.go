package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// controlPlaneResult is the controlplane scenario's report.
type controlPlaneResult struct {
	Scenario    string  `json:"scenario"`
	Sessions    int     `json:"sessions"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`

	EchoQPS   float64 `json:"echo_qps"`
	EchoP50MS float64 `json:"echo_p50_ms"`
	EchoP99MS float64 `json:"echo_p99_ms"`

	GetSessionQPS   float64 `json:"getsession_qps"`
	GetSessionP50MS float64 `json:"getsession_p50_ms"`
	GetSessionP99MS float64 `json:"getsession_p99_ms"`
	// GetSessionRatio is getsession_qps / echo_qps.
	GetSessionRatio float64 `json:"getsession_ratio"`

	// ListSessions asks for one page of 50 READY sessions.
	ListSessionsQPS   float64 `json:"listsessions_qps"`
	ListSessionsP50MS float64 `json:"listsessions_p50_ms"`
	ListSessionsP99MS float64 `json:"listsessions_p99_ms"`
	ListSessionsRatio float64 `json:"listsessions_ratio"`
	// ListOverGetSession is listsessions_qps / getsession_qps.
	ListOverGetSession float64 `json:"listsessions_over_getsession"`

	// CPU time per call of the whole process (client, server and store).
	EchoCPUPerCallUS         float64 `json:"echo_cpu_us_per_call"`
	GetSessionCPUPerCallUS   float64 `json:"getsession_cpu_us_per_call"`
	ListSessionsCPUPerCallUS float64 `json:"listsessions_cpu_us_per_call"`

	// Lost counts failed calls.
	Lost    uint64        `json:"lost"`
	Targets []targetCheck `json:"targets"`
}

func (r *controlPlaneResult) name() string      { return "controlplane" }
func (r *controlPlaneResult) lostCount() uint64 { return r.Lost }

func (r *controlPlaneResult) check(cfg *config) {
	smoke := shortRun(cfg.duration)
	r.Targets = []targetCheck{
		atLeast("control plane GetSession >= 0.8x bare echo QPS", r.GetSessionRatio, 0.8, "x", smoke),
		atLeast("control plane ListSessions (page of 50) >= 0.1x GetSession QPS", r.ListOverGetSession, 0.1, "x",
			unless(smoke, r.Sessions >= listPageSize, "set for a page of 50 sessions")),
		atMost("control plane failed calls = 0", float64(r.Lost), 0, "", false, nil),
	}
}

func (r *controlPlaneResult) printTable(w io.Writer) {
	fmt.Fprintf(w, "controlplane: %d callers on one connection, %d READY sessions, %s s measured per call\n\n", r.Concurrency, r.Sessions, num(r.DurationS))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "call\tcalls/s\tvs echo\tp50 ms\tp99 ms\tCPU µs/call\t")
	for _, c := range []struct {
		name                      string
		qps, ratio, p50, p99, cpu float64
	}{
		{"bare echo", r.EchoQPS, 1, r.EchoP50MS, r.EchoP99MS, r.EchoCPUPerCallUS},
		{"GetSession", r.GetSessionQPS, r.GetSessionRatio, r.GetSessionP50MS, r.GetSessionP99MS, r.GetSessionCPUPerCallUS},
		{fmt.Sprintf("ListSessions (%d)", listPageSize), r.ListSessionsQPS, r.ListSessionsRatio, r.ListSessionsP50MS, r.ListSessionsP99MS, r.ListSessionsCPUPerCallUS},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", c.name, num(c.qps), num(c.ratio), num(c.p50), num(c.p99), num(c.cpu))
	}
	tw.Flush()
	if r.Lost > 0 {
		fmt.Fprintf(w, "failed calls: %d\n", r.Lost)
	}
	printTargets(w, r.Targets)
}

// listPageSize is the page ListSessions asks for: the API's default.
const listPageSize = 50

// runControlPlane measures GetSession and ListSessions throughput with
// --concurrency callers on one connection, against a bare unary echo on
// the same machine, one phase after the other.
func (r *runner) runControlPlane(ctx context.Context) (*controlPlaneResult, error) {
	cfg, n := r.cfg, r.cfg.sessions
	var fw *fakeWorld
	if !cfg.externalOrchestrator() {
		var err error
		if fw, err = r.startFake(n, 0); err != nil {
			return nil, err
		}
		defer fw.close()
	}
	orch, err := r.prepareOrchestrator(ctx, fw)
	if err != nil {
		return nil, err
	}
	defer orch.close()
	orch.start()
	if orch.inProcess() {
		if err := orch.waitReady(ctx, n, readyTimeout(n)); err != nil {
			return nil, err
		}
	}
	// A running orchestrator is queried on the READY sessions it has.
	ids, err := orch.sessionIDs(ctx, orchestratorv1.SessionState_SESSION_STATE_READY)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("no READY session to query")
	}

	spec := loadSpec{warmup: cfg.warmup, duration: cfg.duration}
	c := cfg.concurrency
	echo, err := startEcho()
	if err != nil {
		return nil, err
	}
	defer echo.close()

	r.log.Info("echo phase", "concurrency", c)
	echoLoad := r.load(ctx, "controlplane", "echo", repeat(c, func(int) exchanger { return echo.unary([]byte(ids[0])) }), spec)

	r.log.Info("GetSession phase", "concurrency", c, "sessions", len(ids))
	getLoad := r.load(ctx, "controlplane", "getsession", repeat(c, func(w int) exchanger {
		i := w
		return exchangeFunc(func(ctx context.Context) error {
			id := ids[i%len(ids)]
			i += c
			resp, err := orch.api.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: id})
			if err != nil {
				return err
			}
			if resp.GetSession().GetId() != id {
				return fmt.Errorf("%w: GetSession(%s) returned %s", errMismatch, id, resp.GetSession().GetId())
			}
			return nil
		})
	}), spec)

	r.log.Info("ListSessions phase", "concurrency", c)
	want := min(listPageSize, len(ids))
	listLoad := r.load(ctx, "controlplane", "listsessions", repeat(c, func(int) exchanger {
		return exchangeFunc(func(ctx context.Context) error {
			resp, err := orch.api.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{
				States: []orchestratorv1.SessionState{orchestratorv1.SessionState_SESSION_STATE_READY}, PageSize: listPageSize,
			})
			if err != nil {
				return err
			}
			if len(resp.GetSessions()) < want {
				return fmt.Errorf("%w: ListSessions returned %d sessions, want %d", errMismatch, len(resp.GetSessions()), want)
			}
			return nil
		})
	}), spec)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.heapProfile("controlplane")

	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return &controlPlaneResult{
		Scenario: "controlplane", Sessions: len(ids), Concurrency: c, DurationS: cfg.duration.Seconds(),
		EchoQPS: echoLoad.rps(), EchoP50MS: ms(echoLoad.hist.quantile(0.5)), EchoP99MS: ms(echoLoad.hist.quantile(0.99)),
		GetSessionQPS: getLoad.rps(), GetSessionP50MS: ms(getLoad.hist.quantile(0.5)), GetSessionP99MS: ms(getLoad.hist.quantile(0.99)),
		GetSessionRatio: ratio(getLoad.rps(), echoLoad.rps()),
		ListSessionsQPS: listLoad.rps(), ListSessionsP50MS: ms(listLoad.hist.quantile(0.5)), ListSessionsP99MS: ms(listLoad.hist.quantile(0.99)),
		ListSessionsRatio:        ratio(listLoad.rps(), echoLoad.rps()),
		ListOverGetSession:       ratio(listLoad.rps(), getLoad.rps()),
		EchoCPUPerCallUS:         us(echoLoad.cpuPerRequest()),
		GetSessionCPUPerCallUS:   us(getLoad.cpuPerRequest()),
		ListSessionsCPUPerCallUS: us(listLoad.cpuPerRequest()),
		Lost:                     echoLoad.lost + getLoad.lost + listLoad.lost,
	}, nil
}

// repeat returns n exchangers made by mk(0..n-1).
func repeat(n int, mk func(i int) exchanger) []exchanger {
	out := make([]exchanger, n)
	for i := range out {
		out[i] = mk(i)
	}
	return out
}

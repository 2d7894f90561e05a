package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/connector"
)

// memoryResult is the memory scenario's report. Per-session figures are
// deltas divided by the number of sessions.
type memoryResult struct {
	Scenario string `json:"scenario"`
	Sessions int    `json:"sessions"`
	// FakeInProcess tells whether the fake Jifeline ran in this process:
	// then the orchestrator's figures include the fake's server side of
	// each session, which the direct_* figures bound (see below).
	FakeInProcess bool `json:"fake_in_process"`
	// GCPercent is the process's GC target (GOGC), -1 for off.
	GCPercent int `json:"gc_percent"`

	// The orchestrator's idle READY sessions: records, claims and raft log
	// in the embedded etcd, the attached openOBD session with its token
	// stream, plus the fake's side when in-process.
	RSSPerSessionKiB     float64 `json:"rss_per_session_kib"`
	HeapPerSessionKiB    float64 `json:"heap_per_session_kib"`
	StackPerSessionKiB   float64 `json:"stack_per_session_kib"`
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
	// The whole process, before the sessions and with them.
	BaselineRSSMiB     float64 `json:"baseline_rss_mib"`
	BaselineGoroutines int     `json:"baseline_goroutines"`
	RSSMiB             float64 `json:"rss_mib"`
	Goroutines         int     `json:"goroutines"`
	IntakeSeconds      float64 `json:"intake_seconds"`

	// Sessions opened straight on the in-process fake with the openOBD
	// client, authenticated and configured like the orchestrator's, with no
	// orchestrator: the fake's server side plus a bare client's side. Zero
	// with a running fake.
	DirectRSSPerSessionKiB     float64 `json:"direct_rss_per_session_kib"`
	DirectHeapPerSessionKiB    float64 `json:"direct_heap_per_session_kib"`
	DirectGoroutinesPerSession float64 `json:"direct_goroutines_per_session"`

	Lost    uint64        `json:"lost"`
	Targets []targetCheck `json:"targets"`
}

func (r *memoryResult) name() string      { return "memory" }
func (r *memoryResult) lostCount() uint64 { return r.Lost }

func (r *memoryResult) check(*config) {
	smoke := unless(nil, !r.FakeInProcess, "the fake runs in this process: its side of each session counts too")
	r.Targets = []targetCheck{
		atMost("memory <= 32 KiB per idle READY session (RSS)", r.RSSPerSessionKiB, 32, "KiB", true, smoke),
		atMost("at most 1 goroutine per idle READY session", r.GoroutinesPerSession, 1, "", true, smoke),
	}
}

func (r *memoryResult) printTable(w io.Writer) {
	where := "a running fake (not in this process)"
	if r.FakeInProcess {
		where = "the fake in this process"
	}
	fmt.Fprintf(w, "memory: %d idle READY sessions, against %s, GC target %s\n\n", r.Sessions, where, gcpercent.Value(r.GCPercent))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "per session\tRSS KiB\tGo heap KiB\tgoroutines\t")
	fmt.Fprintf(tw, "orchestrator\t%s\t%s\t%s\t\n", num(r.RSSPerSessionKiB), num(r.HeapPerSessionKiB), num(r.GoroutinesPerSession))
	if r.FakeInProcess {
		fmt.Fprintf(tw, "direct (fake + openOBD client only)\t%s\t%s\t%s\t\n", num(r.DirectRSSPerSessionKiB), num(r.DirectHeapPerSessionKiB), num(r.DirectGoroutinesPerSession))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nprocess: baseline %s MiB and %d goroutines; with the sessions %s MiB and %d goroutines; intake took %s s\n",
		num(r.BaselineRSSMiB), r.BaselineGoroutines, num(r.RSSMiB), r.Goroutines, num(r.IntakeSeconds))
	if r.FakeInProcess {
		fmt.Fprintln(w, "the orchestrator row includes the fake's server side of its sessions; the direct row is an upper bound of that share")
	}
	printTargets(w, r.Targets)
}

// runMemory measures memory and goroutines per idle READY session: a
// baseline with the fake, etcd and control plane up; then (in-process fake
// only) with n sessions attached directly; then with the orchestrator's n
// READY sessions on top.
func (r *runner) runMemory(ctx context.Context) (*memoryResult, error) {
	cfg, n := r.cfg, r.cfg.sessions
	extra := n
	if cfg.externalFake() {
		extra = 0
	}
	fw, err := r.startFake(n, extra)
	if err != nil {
		return nil, err
	}
	defer fw.close()
	orch, err := r.prepareOrchestrator(ctx, fw)
	if err != nil {
		return nil, err
	}
	defer orch.close()
	res := &memoryResult{Scenario: "memory", Sessions: n, FakeInProcess: !cfg.externalFake(), GCPercent: int(cfg.gcPercent)}

	base, err := settleAndSnapshot(ctx, cfg.settle)
	if err != nil {
		return nil, err
	}
	res.BaselineRSSMiB, res.BaselineGoroutines = float64(base.rss)/(1<<20), base.goroutines

	before := base
	if !cfg.externalFake() {
		r.log.Info("opening direct sessions", "sessions", n)
		oc, err := fw.openOBDClient(r.clog.With("component", "direct-runner"))
		if err != nil {
			return nil, err
		}
		defer oc.Close()
		direct, err := openIdle(ctx, fw, oc, n)
		defer closeDirect(direct, r.log)
		if err != nil {
			return nil, err
		}
		if before, err = settleAndSnapshot(ctx, cfg.settle); err != nil {
			return nil, err
		}
		res.DirectRSSPerSessionKiB = perSessionKiB(before.rss-base.rss, n)
		res.DirectHeapPerSessionKiB = perSessionKiB(before.heapInuse-base.heapInuse, n)
		res.DirectGoroutinesPerSession = float64(before.goroutines-base.goroutines) / float64(n)
	}

	r.log.Info("starting the orchestrator", "pending_tickets", n)
	began := time.Now()
	orch.start()
	if err := orch.waitReady(ctx, n, readyTimeout(n)); err != nil {
		return nil, err
	}
	res.IntakeSeconds = time.Since(began).Seconds()
	// A running fake may hold more pending tickets than --sessions: divide
	// by the sessions the orchestrator actually holds.
	ready, err := orch.countReady(ctx)
	if err != nil {
		return nil, err
	}
	if ready != n {
		r.log.Info("READY sessions differ from --sessions", "ready", ready, "sessions", n)
		n = ready
		res.Sessions = n
	}
	after, err := settleAndSnapshot(ctx, cfg.settle)
	if err != nil {
		return nil, err
	}
	r.heapProfile("memory")
	res.RSSPerSessionKiB = perSessionKiB(after.rss-before.rss, n)
	res.HeapPerSessionKiB = perSessionKiB(after.heapInuse-before.heapInuse, n)
	res.StackPerSessionKiB = perSessionKiB(after.stackInuse-before.stackInuse, n)
	res.GoroutinesPerSession = float64(after.goroutines-before.goroutines) / float64(n)
	res.RSSMiB = float64(after.rss) / (1 << 20)
	res.Goroutines = after.goroutines
	return res, nil
}

// openIdle opens n authenticated, configured sessions on the fake's
// set-aside tickets, without ISO-TP channels: idle like READY sessions.
func openIdle(ctx context.Context, fw *fakeWorld, oc *connector.Client, n int) ([]*directSession, error) {
	targets, err := fw.directTargets(ctx, 0, n)
	if err != nil {
		return nil, err
	}
	sessions := make([]*directSession, n)
	err = parallel(n, setupWidth, func(i int) error {
		s, err := openDirect(ctx, oc, targets[i], false)
		sessions[i] = s
		return err
	})
	return sessions, err
}

// settleAndSnapshot waits for settle (new sessions finish their start-up
// work: first token, monitor ticks), then reads memory after a full GC.
func settleAndSnapshot(ctx context.Context, settle time.Duration) (memSnapshot, error) {
	t := time.NewTimer(settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return memSnapshot{}, ctx.Err()
	case <-t.C:
	}
	return snapshotMemory()
}

func perSessionKiB(delta int64, n int) float64 { return float64(delta) / 1024 / float64(n) }

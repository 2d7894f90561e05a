package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// intakeResult is the intake scenario's report.
type intakeResult struct {
	Scenario string `json:"scenario"`
	Tickets  int    `json:"tickets"`
	// IntakeSeconds runs from the core's start to the last READY session.
	IntakeSeconds     float64 `json:"intake_seconds"`
	SessionsPerSecond float64 `json:"sessions_per_second"`
	// StoreStartSeconds is the embedded etcd's start and the store's open,
	// which precede the core's start.
	StoreStartSeconds float64 `json:"store_start_seconds"`
	// CPUSeconds is the process's CPU time during the intake (the
	// in-process fake's included).
	CPUSeconds           float64        `json:"cpu_seconds"`
	PartnerRequests      int            `json:"partner_requests"`
	PartnerRequestsByURL map[string]int `json:"partner_requests_by_path"`
	OpenOBDCalls         int            `json:"openobd_calls"`
	OpenOBDCallsByMethod map[string]int `json:"openobd_calls_by_method"`
	// StoreWrites counts the write transactions of the store during the
	// intake (its revision's growth).
	StoreWrites int64 `json:"store_writes"`
	// StoreWritesPerSession is store_writes / tickets.
	StoreWritesPerSession float64       `json:"store_writes_per_session"`
	Fsync                 bool          `json:"fsync"`
	Lost                  uint64        `json:"lost"`
	Targets               []targetCheck `json:"targets"`
}

func (r *intakeResult) name() string      { return "intake" }
func (r *intakeResult) lostCount() uint64 { return r.Lost }

func (r *intakeResult) check(*config) {
	smoke := unless(nil, r.Tickets == 1000, "set for 1,000 tickets")
	r.Targets = []targetCheck{
		atMost("intake 1,000 tickets to READY <= 2 s", r.IntakeSeconds, 2, "s", false, smoke),
		atMost("intake store writes <= 3 per session", r.StoreWritesPerSession, 3, "", false, nil),
	}
}

func (r *intakeResult) printTable(w io.Writer) {
	fsync := "on"
	if !r.Fsync {
		fsync = "off (--no-fsync)"
	}
	fmt.Fprintf(w, "intake: %d pending tickets, zero-latency fake, etcd fsync %s\n\n", r.Tickets, fsync)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "start to all READY\t%s s\t(%s sessions/s)\n", num(r.IntakeSeconds), num(r.SessionsPerSecond))
	fmt.Fprintf(tw, "embedded etcd and store start (before)\t%s s\t\n", num(r.StoreStartSeconds))
	fmt.Fprintf(tw, "process CPU during intake\t%s s\t\n", num(r.CPUSeconds))
	fmt.Fprintf(tw, "Partner API requests\t%d\t(%s per ticket)\n", r.PartnerRequests, num(float64(r.PartnerRequests)/float64(r.Tickets)))
	for _, k := range sortedKeys(r.PartnerRequestsByURL) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, r.PartnerRequestsByURL[k])
	}
	fmt.Fprintf(tw, "store write transactions\t%d\t(%s per ticket)\n", r.StoreWrites, num(float64(r.StoreWrites)/float64(r.Tickets)))
	fmt.Fprintf(tw, "openOBD calls\t%d\t(%s per ticket)\n", r.OpenOBDCalls, num(float64(r.OpenOBDCalls)/float64(r.Tickets)))
	for _, k := range sortedKeys(r.OpenOBDCallsByMethod) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, r.OpenOBDCallsByMethod[k])
	}
	tw.Flush()
	printTargets(w, r.Targets)
}

func sortedKeys(m map[string]int) []string {
	return slices.Sorted(maps.Keys(m))
}

// runIntake times the in-process orchestrator from its start until every
// pending ticket has a READY session, and counts the calls it made.
func (r *runner) runIntake(ctx context.Context) (*intakeResult, error) {
	cfg, k := r.cfg, r.cfg.tickets
	fw, err := r.startFake(k, 0)
	if err != nil {
		return nil, err
	}
	defer fw.close()
	orch, err := r.prepareOrchestrator(ctx, fw)
	if err != nil {
		return nil, err
	}
	defer orch.close()
	partner0, openobd0, err := fw.counters(ctx)
	if err != nil {
		return nil, err
	}

	r.log.Info("starting the orchestrator", "pending_tickets", k)
	var took, cpu time.Duration
	r.profiled("intake", "intake", func() {
		cpu0 := cpuTime()
		began := time.Now()
		orch.start()
		err = orch.waitReady(ctx, k, readyTimeout(k))
		took, cpu = time.Since(began), cpuTime()-cpu0
	})
	if err != nil {
		return nil, err
	}

	partner1, openobd1, err := fw.counters(ctx)
	if err != nil {
		return nil, err
	}
	rev, err := orch.st.Revision(ctx)
	if err != nil {
		return nil, err
	}
	r.heapProfile("intake")
	res := &intakeResult{
		Scenario: "intake", Tickets: k,
		IntakeSeconds: took.Seconds(), SessionsPerSecond: float64(k) / took.Seconds(),
		StoreStartSeconds: orch.storeStart.Seconds(), CPUSeconds: cpu.Seconds(),
		PartnerRequestsByURL:  diffCounts(partner0, partner1),
		OpenOBDCallsByMethod:  diffCounts(openobd0, openobd1),
		StoreWrites:           rev - orch.startRev,
		StoreWritesPerSession: float64(rev-orch.startRev) / float64(k),
		Fsync:                 !cfg.noFsync,
	}
	for _, v := range res.PartnerRequestsByURL {
		res.PartnerRequests += v
	}
	for _, v := range res.OpenOBDCallsByMethod {
		res.OpenOBDCalls += v
	}
	return res, nil
}

// diffCounts returns after-before per key, leaving out keys that did not
// change. Partner API paths with an id are grouped under their pattern.
func diffCounts(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[pathPattern(k)] += d
		}
	}
	return out
}

// pathPattern replaces the ids in a Partner API path with {id}, e.g.
// /v2/tickets/<uuid> becomes /v2/tickets/{id}.
func pathPattern(p string) string {
	b := []byte(p)
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '/' {
			i++
		}
		seg := b[:i]
		if isID(seg) {
			out = append(out, "{id}"...)
		} else {
			out = append(out, seg...)
		}
		if i < len(b) {
			out = append(out, '/')
			i++
		}
		b = b[i:]
	}
	return string(out)
}

// isID reports whether a path segment is a UUID or a number.
func isID(seg []byte) bool {
	if len(seg) == 0 {
		return false
	}
	digits := true
	for _, c := range seg {
		if c < '0' || c > '9' {
			digits = false
		}
	}
	return digits || (len(seg) == 36 && seg[8] == '-' && seg[13] == '-' && seg[18] == '-' && seg[23] == '-')
}

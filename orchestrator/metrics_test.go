package orchestrator_test

import (
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
)

// TestMetrics proves the core reports sessions by state and relayed
// requests by outcome with their latency.
func TestMetrics(t *testing.T) {
	reader := orchestrator.GlobalMeterReader(t)

	w := newWorld(t, worldOptions{tickets: 2})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 2)
	acq, err := r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "metrics"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.client.Send(ctx, vinRequest(acq)); err != nil {
			t.Fatal(err)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]map[string]int64{} // metric -> attribute value -> sum
	histCount := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					for _, kv := range p.Attributes.ToSlice() {
						if sums[m.Name] == nil {
							sums[m.Name] = map[string]int64{}
						}
						sums[m.Name][kv.Value.String()] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					histCount[m.Name] += p.Count
				}
			}
		}
	}
	if got := sums["obdorch.sessions"]["READY"]; got != 1 {
		t.Errorf("obdorch.sessions{state=READY} = %d, want 1", got)
	}
	if got := sums["obdorch.sessions"]["RUNNING"]; got != 1 {
		t.Errorf("obdorch.sessions{state=RUNNING} = %d, want 1", got)
	}
	if got := sums["obdorch.relay.requests"]["positive"]; got != 3 {
		t.Errorf("obdorch.relay.requests{outcome=positive} = %d, want 3", got)
	}
	if got := histCount["obdorch.relay.duration"]; got != 9 { // total, ecu and added per request
		t.Errorf("obdorch.relay.duration has %d samples, want 9", got)
	}
	if got := histCount["obdorch.relay.queue_wait"]; got != 0 { // one request at a time: never a busy channel
		t.Errorf("obdorch.relay.queue_wait has %d samples, want 0", got)
	}
	if sums["obdorch.reconciles"]["ok"] == 0 {
		t.Error("no successful reconcile counted")
	}
}

// TestIntakePassesSkipTicketsWithSessions: once every listed ticket has its
// session, an intake pass queues nothing but itself, instead of one key per
// ticket whose reconcile would find the session and stop.
func TestIntakePassesSkipTicketsWithSessions(t *testing.T) {
	reader := orchestrator.GlobalMeterReader(t)
	adds := func() int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "obdorch.queue.adds" {
					for _, p := range d.DataPoints {
						n += p.Value
					}
				}
			}
		}
		return n
	}

	const tickets = 5
	w := newWorld(t, worldOptions{tickets: tickets})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, tickets)
	passes := func() int { return w.jf.Partner.Requests()["/v2/tickets/tickets"] }
	p0, a0 := passes(), adds()
	poll(ctx, t, "four more intake passes", func() bool { return passes() >= p0+4 })
	p1, a1 := passes(), adds()
	// Each pass adds its own key; the few other adds allowed are a
	// session's own looks (none is due in this time). One key per ticket
	// and pass would be at least tickets*(p1-p0) more.
	if got, most := a1-a0, int64(p1-p0+1)+tickets; got > most {
		t.Errorf("%d keys queued during %d intake passes over %d tickets with sessions, want at most %d", got, p1-p0, tickets, most)
	}
}

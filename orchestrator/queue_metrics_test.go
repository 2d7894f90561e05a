package orchestrator

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestQueueMetrics proves the reconcile queue reports its depth, the keys
// added and the retries scheduled, and stops reporting its depth once closed.
func TestQueueMetrics(t *testing.T) {
	reader := GlobalMeterReader(t)
	collect := func() map[string]int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, p := range d.DataPoints {
						got[m.Name] += p.Value
					}
				case metricdata.Gauge[int64]:
					for _, p := range d.DataPoints {
						got[m.Name] += p.Value
					}
				}
			}
		}
		return got
	}

	q := newQueue(time.Hour, time.Hour) // the retry stays pending
	q.Add(ticketKey("a"))
	q.Add(ticketKey("a")) // already queued: not an add
	q.Add(sessionKey("b"))
	q.Retry(sessionKey("c"))
	got := collect()
	want := map[string]int64{"obdorch.queue.adds": 2, "obdorch.queue.retries": 1, "obdorch.queue.depth": 2}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %d, want %d", name, got[name], w)
		}
	}
	q.Close()
	if _, ok := collect()["obdorch.queue.depth"]; ok {
		t.Error("obdorch.queue.depth still observed after Close")
	}
}

package orchestrator_test

import (
	"testing"
	"time"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// BenchmarkIntake measures 1,000 pending tickets (fake Partner API and
// openOBD without latency) becoming 1,000 READY sessions, and the Partner
// API requests that took.
//
//	go test -run '^$' -bench Intake -benchtime 1x ./orchestrator/
func BenchmarkIntake(b *testing.B) {
	const tickets = 1000
	for b.Loop() {
		b.StopTimer()
		w := newWorld(b, worldOptions{tickets: tickets})
		w.jf.Partner.ResetRequests()
		b.StartTimer()
		start := time.Now()
		r := w.startReplica("bench", replicaOptions{})
		r.waitSessions(testCtx(b), b, orchestratorv1.SessionState_SESSION_STATE_READY, tickets)
		elapsed := time.Since(start)
		b.StopTimer()
		requests := 0
		for _, n := range w.jf.Partner.Requests() {
			requests += n
		}
		b.ReportMetric(elapsed.Seconds(), "s/1000-tickets")
		b.ReportMetric(float64(requests), "partner-requests")
		r.stop()
		b.StartTimer()
	}
}

package orchestrator_test

import (
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
)

// BenchmarkRelay measures one request (22 F1 90) relayed by the core on a
// leased session: the lease check, the channel's turn, the openOBD ISO-TP
// round trip to the in-process fake and the relay's metrics, recorded into
// an SDK meter provider as the service records them. The fake runs in this
// process, so allocs/op counts its share too; compare runs of this
// benchmark, not its absolute figures. cpu-ns/op is the process's CPU time
// (user and system) per request.
//
//	go test -run '^$' -bench Relay -count 6 ./orchestrator/
func BenchmarkRelay(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	b.Cleanup(func() {
		otel.SetMeterProvider(prev)
		_ = mp.Shutdown(b.Context())
	})
	w := newWorld(b, worldOptions{tickets: 1})
	r := w.startReplica("bench", replicaOptions{})
	ctx := testCtx(b)
	r.waitSessions(ctx, b, orchestratorv1.SessionState_SESSION_STATE_READY, 1)
	acq, err := r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "bench"})
	if err != nil {
		b.Fatalf("AcquireSession: %v", err)
	}
	ch, _, err := r.core.OpenChannel(ctx, acq.GetSession().GetId(), acq.GetLeaseId(),
		orchestrator.Channel{BusName: "can0", RequestID: 0x7E0, ResponseID: 0x7E8})
	if err != nil {
		b.Fatalf("OpenChannel: %v", err)
	}
	defer ch.Close()
	req := orchestrator.Request{Payload: []byte{0x22, 0xF1, 0x90}}
	if _, err := ch.Do(ctx, req); err != nil { // warm up the stream
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		resp, err := ch.Do(ctx, req)
		if err != nil || resp.Negative {
			b.Fatalf("Do = %+v, %v; want a positive answer", resp, err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time (user and system) of the whole process so far:
// on a machine shared with other work it says more about a request's cost
// than the wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

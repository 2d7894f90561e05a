package orchestratortest_test

import (
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator/orchestratortest"
	"github.com/obdorch/obdorch/sdk"
)

// cpuTime returns the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSDKOverhead compares a runner's request through the SDK with
// the same request on a raw Exchange stream, both relayed by a whole
// in-process orchestrator to the fake vehicle (22 F1 90 to the engine ECU).
// cpu-ns/op is the CPU time of the whole process (runner, orchestrator,
// fake) per request. Each sub-benchmark uses a session of its own; run the
// binary several times to interleave them:
//
//	go test -c -o /tmp/ot.test ./orchestrator/orchestratortest
//	for i in 1 2 3 4 5 6; do /tmp/ot.test -test.run '^$' -test.bench SDKOverhead -test.benchtime 3000x; done
func BenchmarkSDKOverhead(b *testing.B) {
	env := orchestratortest.Start(b, orchestratortest.Options{Tickets: 2})
	ctx := b.Context()
	c, err := sdk.Dial(env.Addr, sdk.WithInsecure(), sdk.WithRunnerName("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := []byte{0x22, 0xF1, 0x90}

	// The sessions and streams are set up once: the sub-benchmarks run more
	// than once (b.N = 1 first).
	acq, err := c.API().AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "bench-raw", LeaseTtl: durationpb.New(10 * time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	stream, err := c.API().Exchange(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
	}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stream.CloseSend()
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
	}()
	s, err := c.Acquire(ctx, sdk.AcquireOptions{LeaseTTL: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Release(ctx) }()
	ch, err := s.Channel(ctx, engineSpec)
	if err != nil {
		b.Fatal(err)
	}
	var id uint64
	raw := func() {
		id++
		if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{
			CorrelationId: id, Payload: payload,
		}}}); err != nil {
			b.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || m.GetResponse().GetCorrelationId() != id || m.GetResponse().GetPayload()[0] != 0x62 {
			b.Fatalf("response %v, %v", m, err)
		}
	}
	viaSDK := func() {
		resp, err := ch.Request(ctx, payload)
		if err != nil || resp.Payload[0] != 0x62 {
			b.Fatalf("Request = %v, %v", resp, err)
		}
	}
	// Warm both paths up (connections, buffers, the heap) before measuring
	// either, so that the first one measured is not penalised.
	for range 300 {
		raw()
		viaSDK()
	}

	b.Run("raw-exchange", func(b *testing.B) {
		start := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			raw()
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	})

	b.Run("sdk-request", func(b *testing.B) {
		start := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			viaSDK()
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	})
}

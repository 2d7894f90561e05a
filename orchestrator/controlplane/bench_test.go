package controlplane

import (
	"context"
	"testing"
	"time"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// echoChannel answers every request at once with a positive response: the
// relay without openOBD, so that a benchmark measures the control plane.
type echoChannel struct{ done chan struct{} }

func (echoChannel) Do(_ context.Context, req orchestrator.Request) (orchestrator.Response, error) {
	return orchestrator.Response{Payload: append([]byte{req.Payload[0] + 0x40}, req.Payload[1:]...), Attempts: 1,
		ECUTime: 100 * time.Microsecond, TotalTime: 120 * time.Microsecond}, nil
}
func (c echoChannel) Done() <-chan struct{} { return c.done }
func (echoChannel) Err() error              { return nil }
func (echoChannel) Close() error            { return nil }

// echoCore opens echo channels on a READY session.
type echoCore struct{ stubCore }

func (*echoCore) OpenChannel(context.Context, string, string, orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error) {
	return echoChannel{done: make(chan struct{})}, &session.Record{ID: "s1", State: session.StateReady}, nil
}

// BenchmarkExchange measures one request and its answer on an Exchange
// stream through the control-plane server (interceptors, stats handler,
// bufconn) with a relay that answers at once. allocs/op counts both sides
// of the stream.
func BenchmarkExchange(b *testing.B) {
	_, conn := startServer(b, &echoCore{})
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	stream, err := orchestratorv1.NewOrchestratorServiceClient(conn).Exchange(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
		SessionId: "s1", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
	}}}); err != nil {
		b.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetOpened() == nil {
		b.Fatalf("open: %v, %v", m, err)
	}
	req := &orchestratorv1.UdsRequest{Payload: []byte{0x22, 0xF1, 0x90}}
	msg := &orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: req}}
	b.ReportAllocs()
	for b.Loop() {
		req.CorrelationId++
		if err := stream.Send(msg); err != nil {
			b.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || m.GetResponse().GetCorrelationId() != req.CorrelationId {
			b.Fatalf("response %v, %v; want correlation id %d", m, err, req.CorrelationId)
		}
	}
}

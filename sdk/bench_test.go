package sdk

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// echoServer is a control plane whose Exchange answers every request at
// once with a positive response (the request with SID + 0x40): it isolates
// the client's cost per request from any real relay.
type echoServer struct {
	orchestratorv1.UnimplementedOrchestratorServiceServer
}

func (echoServer) AcquireSession(_ context.Context, req *orchestratorv1.AcquireSessionRequest) (*orchestratorv1.AcquireSessionResponse, error) {
	return &orchestratorv1.AcquireSessionResponse{
		Session: &orchestratorv1.Session{Id: "s1"}, LeaseId: "lease-1",
		ExpireTime: timestamppb.New(time.Now().Add(req.GetLeaseTtl().AsDuration())),
	}, nil
}

func (echoServer) Exchange(stream grpc.BidiStreamingServer[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := stream.Send(&orchestratorv1.ExchangeResponse{Kind: &orchestratorv1.ExchangeResponse_Opened{
		Opened: &orchestratorv1.ChannelOpened{Channel: first.GetOpen().GetChannel()},
	}}); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		req := m.GetRequest()
		payload := append([]byte{req.GetPayload()[0] + 0x40}, req.GetPayload()[1:]...)
		if err := stream.Send(&orchestratorv1.ExchangeResponse{Kind: &orchestratorv1.ExchangeResponse_Response{
			Response: &orchestratorv1.UdsResponse{CorrelationId: req.GetCorrelationId(), Payload: payload},
		}}); err != nil {
			return err
		}
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the process's CPU time per request since start, client and
// in-process server together, as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

var benchPayload = []byte{0x22, 0xF1, 0x90}

// BenchmarkRequestOverhead compares a request through the SDK's Channel
// with the same request sent and received directly on an Exchange stream,
// against a control plane that answers at once, so that the SDK's own cost
// is as large a share as it can be. Compare the pair from one run; run the
// binary several times to interleave them:
//
//	go test -c -o /tmp/sdk.test . && for i in 1 2 3 4 5 6; do /tmp/sdk.test -test.run '^$' -test.bench RequestOverhead -test.benchtime 20000x; done
func BenchmarkRequestOverhead(b *testing.B) {
	c := serveTB(b, echoServer{})
	ctx := b.Context()

	// Both paths are set up and warmed up once, before either is measured.
	stream, err := c.API().Exchange(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
		SessionId: "s1", LeaseId: "lease-1", Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
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
	s, err := c.Acquire(ctx, AcquireOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Release(ctx) }()
	ch, err := s.Channel(ctx, ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8})
	if err != nil {
		b.Fatal(err)
	}
	var id uint64
	raw := func() {
		id++
		if err := stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{
			CorrelationId: id, Payload: benchPayload,
		}}}); err != nil {
			b.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || m.GetResponse().GetCorrelationId() != id {
			b.Fatalf("response %v, %v", m, err)
		}
	}
	viaSDK := func() {
		resp, err := ch.Request(ctx, benchPayload)
		if err != nil || resp.Payload[0] != 0x62 {
			b.Fatalf("Request = %v, %v", resp, err)
		}
	}
	for range 1000 {
		raw()
		viaSDK()
	}

	b.Run("raw-exchange", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			raw()
		}
		b.StopTimer()
		reportCPU(b, start)
	})
	b.Run("sdk-request", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			viaSDK()
		}
		b.StopTimer()
		reportCPU(b, start)
	})
}

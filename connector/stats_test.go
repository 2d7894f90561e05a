package connector

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// tokenServer answers authenticate and sends one token on the token stream.
type tokenServer struct {
	openobdv1.UnimplementedSessionServer
}

func (tokenServer) Authenticate(context.Context, *openobdv1.EmptyMessage) (*openobdv1.SessionToken, error) {
	return &openobdv1.SessionToken{Value: "t1"}, nil
}

func (tokenServer) OpenSessionTokenStream(_ *openobdv1.EmptyMessage, stream grpc.ServerStreamingServer[openobdv1.SessionToken]) error {
	return stream.Send(&openobdv1.SessionToken{Value: "t2"})
}

// TestStatsHandlerLeavesOutTokenStream: the client's OpenTelemetry handler
// records a span and a call duration for authenticate, and neither for the
// session token stream.
func TestStatsHandlerLeavesOutTokenStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	openobdv1.RegisterSessionServer(srv, tokenServer{})
	go srv.Serve(lis)
	defer srv.Stop()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	h := withoutTokenStream{otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp))}
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(h))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := openobdv1.NewSessionClient(cc)

	if _, err := client.Authenticate(ctx, &openobdv1.EmptyMessage{}); err != nil {
		t.Fatalf("authenticate = %v", err)
	}
	stream, err := client.OpenSessionTokenStream(ctx, &openobdv1.EmptyMessage{})
	if err != nil {
		t.Fatalf("openSessionTokenStream = %v", err)
	}
	if tok, err := stream.Recv(); err != nil || tok.GetValue() != "t2" {
		t.Fatalf("Recv() = %v, %v; want t2", tok, err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("second Recv() = nil error, want the end of the stream")
	}

	var names []string
	for _, s := range spans.Ended() {
		names = append(names, s.Name())
	}
	if len(names) != 1 || !strings.HasSuffix(names[0], "/authenticate") {
		t.Errorf("spans = %q, want only authenticate's", names)
	}
	for _, s := range spans.Started() {
		if strings.HasSuffix(s.Name(), "/openSessionTokenStream") {
			t.Errorf("a span was started for the token stream: %s", s.Name())
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			hist, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			for _, dp := range hist.DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("rpc.method"))
				methods = append(methods, m.Name+" "+v.AsString())
			}
		}
	}
	if len(methods) == 0 {
		t.Fatal("no call duration recorded")
	}
	for _, m := range methods {
		if !strings.HasSuffix(m, "authenticate") {
			t.Errorf("call duration recorded for %s, want authenticate only", m)
		}
	}
}

package controlplane

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// panicCore panics in GetSession and answers everything else like stubCore.
type panicCore struct{ stubCore }

func (*panicCore) GetSession(context.Context, string) (*session.Record, error) {
	panic("handler bug")
}

func startServer(t testing.TB, core Core) (*Server, *grpc.ClientConn) {
	t.Helper()
	srv := NewServer(NewService(core, Options{}), ServerOptions{})
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, conn
}

// TestPanicIsInternalAndServerKeepsServing proves a panicking handler costs
// one call, not the process.
func TestPanicIsInternalAndServerKeepsServing(t *testing.T) {
	_, conn := startServer(t, &panicCore{})
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	ctx := testContext(t)
	_, err := client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: "s1"})
	if status.Code(err) != codes.Internal {
		t.Fatalf("GetSession on a panicking core = %v, want INTERNAL", err)
	}
	if msg := status.Convert(err).Message(); msg != "internal error" {
		t.Errorf("panic message leaked to the client: %q", msg)
	}
	// The stub core answers NOT_FOUND: any answer from the core will do.
	if _, err := client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("ListSessions after a panic = %v, want the stub core's NOT_FOUND (server still serving)", err)
	}
}

// TestHealthTransitions proves health starts NOT_SERVING, follows
// SetServing, and stays NOT_SERVING once shut down for a drain.
func TestHealthTransitions(t *testing.T) {
	srv, conn := startServer(t, &stubCore{})
	health := healthpb.NewHealthClient(conn)
	ctx := testContext(t)
	check := func(want healthpb.HealthCheckResponse_ServingStatus, what string) {
		t.Helper()
		for _, svc := range []string{"", orchestratorv1.OrchestratorService_ServiceDesc.ServiceName} {
			r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != want {
				t.Errorf("%s: Check(%q) = %v, %v; want %s", what, svc, r.GetStatus(), err, want)
			}
		}
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING, "at start")
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch first = %v, %v; want NOT_SERVING", r, err)
	}
	srv.SetServing(true)
	check(healthpb.HealthCheckResponse_SERVING, "after the first intake pass")
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch after SetServing(true) = %v, %v; want SERVING", r, err)
	}
	srv.SetServing(false)
	check(healthpb.HealthCheckResponse_NOT_SERVING, "during an outage")
	srv.SetServing(true)
	srv.Health.Shutdown()
	srv.SetServing(true) // intake may still report health during the drain
	check(healthpb.HealthCheckResponse_NOT_SERVING, "during the drain")
}

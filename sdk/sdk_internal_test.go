package sdk

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

func withInfo(code codes.Code, msg, reason string, md map[string]string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: reason, Metadata: md})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestSessionErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		gone bool
		is   error
		ie   *InterruptedError
	}{
		{"interrupted", withInfo(codes.Aborted, "x", "ERROR_REASON_SESSION_INTERRUPTED", map[string]string{"session_id": "s2", "actor": "engineer", "reason": "done"}),
			true, nil, &InterruptedError{SessionID: "s2", Actor: "engineer", Reason: "done"}},
		{"aborted without detail", status.Error(codes.Aborted, "session s1 interrupted by openOBD: gone"), true, nil,
			&InterruptedError{SessionID: "s1", Reason: "session s1 interrupted by openOBD: gone"}},
		{"lease", withInfo(codes.FailedPrecondition, "lease expired", "ERROR_REASON_LEASE_REQUIRED", nil), true, ErrLeaseLost, nil},
		{"not live", withInfo(codes.FailedPrecondition, "finished", "ERROR_REASON_SESSION_NOT_LIVE", nil), true, ErrSessionEnded, nil},
		{"other domain", func() error {
			st, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{Domain: "other", Reason: "ERROR_REASON_LEASE_REQUIRED"})
			return st.Err()
		}(), false, nil, nil},
		{"unavailable", status.Error(codes.Unavailable, "down"), false, nil, nil},
		{"plain", errors.New("x"), false, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gone := sessionErr("s1", tc.err)
			if gone != tc.gone {
				t.Fatalf("sessionErr(%v) gone = %v, want %v", tc.err, gone, tc.gone)
			}
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Errorf("sessionErr(%v) = %v, want %v", tc.err, got, tc.is)
			}
			if tc.ie != nil {
				var ie *InterruptedError
				if !errors.As(got, &ie) || *ie != *tc.ie {
					t.Errorf("sessionErr(%v) = %#v, want %#v", tc.err, got, tc.ie)
				}
			}
			if !gone && got != tc.err {
				t.Errorf("sessionErr(%v) = %v, want it unchanged", tc.err, got)
			}
		})
	}
}

func TestRequestErrorIs(t *testing.T) {
	tests := []struct {
		code orchestratorv1.RequestErrorCode
		want error
	}{
		{orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT, ErrTimeout},
		{orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_QUEUE_TIMEOUT, ErrChannelBusy},
		{orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_UNAVAILABLE, ErrLinkUnavailable},
	}
	for _, tc := range tests {
		err := error(&RequestError{Code: tc.code, Message: "m"})
		if !errors.Is(err, tc.want) {
			t.Errorf("RequestError(%v) is not %v", tc.code, tc.want)
		}
		if errors.Is(err, ErrLeaseLost) {
			t.Errorf("RequestError(%v) is ErrLeaseLost", tc.code)
		}
	}
}

func TestDialNeedsCredentials(t *testing.T) {
	if _, err := Dial("127.0.0.1:1"); err == nil {
		t.Error("Dial without WithInsecure or WithTLS = nil error")
	}
	if _, err := Dial("", WithInsecure()); err == nil {
		t.Error("Dial without a target = nil error")
	}
}

// leaseServer answers AcquireSession: the first call leases session s1,
// renewals get renewErr (nil: renewed).
type leaseServer struct {
	orchestratorv1.UnimplementedOrchestratorServiceServer
	renewErr error
	renewals atomic.Int32
	renewed  chan struct{} // if set, receives one value per renewal (never blocks)
}

func (l *leaseServer) AcquireSession(_ context.Context, req *orchestratorv1.AcquireSessionRequest) (*orchestratorv1.AcquireSessionResponse, error) {
	if req.GetRenewLeaseId() == "" {
		return &orchestratorv1.AcquireSessionResponse{
			Session: &orchestratorv1.Session{Id: "s1"}, LeaseId: "lease-1",
			ExpireTime: timestamppb.New(time.Now().Add(req.GetLeaseTtl().AsDuration())),
		}, nil
	}
	l.renewals.Add(1)
	if l.renewed != nil {
		select {
		case l.renewed <- struct{}{}:
		default:
		}
	}
	if req.GetRenewLeaseId() != "lease-1" {
		return nil, status.Error(codes.InvalidArgument, "wrong lease")
	}
	return &orchestratorv1.AcquireSessionResponse{Session: &orchestratorv1.Session{Id: "s1"}, LeaseId: "lease-1"}, l.renewErr
}

func serve(t *testing.T, srv orchestratorv1.OrchestratorServiceServer) *Client {
	t.Helper()
	return serveTB(t, srv)
}

// serveTB serves srv on an in-memory listener and returns a client of it.
func serveTB(t testing.TB, srv orchestratorv1.OrchestratorServiceServer) *Client {
	t.Helper()
	lis := bufconn.Listen(1 << 16)
	gs := grpc.NewServer()
	orchestratorv1.RegisterOrchestratorServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	c, err := Dial("passthrough:///bufconn", WithInsecure(), WithDialOptions(
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestLeaseLostWhenRenewalsFailUntilExpiry(t *testing.T) {
	ls := &leaseServer{renewErr: status.Error(codes.Unavailable, "orchestrator restarting")}
	c := serve(t, ls)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Acquire(ctx, AcquireOptions{LeaseTTL: 300 * time.Millisecond, RenewEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Release(ctx) }()
	select {
	case <-s.Lost():
	case <-ctx.Done():
		t.Fatal("Lost not closed after the lease expired unrenewed")
	}
	if err := s.Err(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", err)
	}
	if n := ls.renewals.Load(); n < 2 {
		t.Errorf("renewal attempts = %d, want retries before giving up", n)
	}
	if _, err := s.Channel(ctx, ChannelSpec{RequestID: 1, ResponseID: 2}); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Channel after the loss = %v, want ErrLeaseLost", err)
	}
}

func TestLeaseLostAtOnceWhenRenewalRefused(t *testing.T) {
	ls := &leaseServer{renewErr: withInfo(codes.FailedPrecondition, "lease not found or expired", "ERROR_REASON_LEASE_REQUIRED", nil)}
	c := serve(t, ls)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Acquire(ctx, AcquireOptions{LeaseTTL: time.Hour, RenewEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Release(ctx) }()
	select {
	case <-s.Lost():
	case <-ctx.Done():
		t.Fatal("Lost not closed after a refused renewal")
	}
	if err := s.Err(); !errors.Is(err, ErrLeaseLost) || ls.renewals.Load() != 1 {
		t.Fatalf("Err() = %v after %d renewals, want ErrLeaseLost after one", err, ls.renewals.Load())
	}
}

func TestRenewalsContinue(t *testing.T) {
	ls := &leaseServer{renewed: make(chan struct{}, 1)}
	c := serve(t, ls)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Acquire(ctx, AcquireOptions{LeaseTTL: 100 * time.Millisecond, RenewEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Renewals go on for longer than the lease lasts: at 10 ms apart, 15 of
	// them outlive the 100 ms lease.
	for range 15 {
		select {
		case <-s.Lost():
			t.Fatalf("lost: %v", s.Err())
		case <-ctx.Done():
			t.Fatal("renewals stopped")
		case <-ls.renewed:
		}
	}
	if err := s.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Err(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Err() after Release = %v, want ErrReleased", err)
	}
}

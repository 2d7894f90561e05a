package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
)

const (
	clusterToken = "replica-token-0123456789"
	adminToken   = "admin-token-0123456789ab"
	runnerToken  = "runner-token-0123456789a"
	runner2Token = "runner2-token-0123456789"
)

func clusterTokens(t *testing.T) *controlplane.Tokens {
	t.Helper()
	tokens, err := controlplane.ParseTokensEnv(adminToken + ":admin:alice," + runnerToken + ":runner:runner-1," +
		runner2Token + ":runner:runner-2," + clusterToken + ":replica:cluster")
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// notOwnerDetail returns the NotOwnerDetail of a status error, or nil.
func notOwnerDetail(err error) *orchestratorv1.NotOwnerDetail {
	for _, d := range status.Convert(err).Details() {
		if nd, ok := d.(*orchestratorv1.NotOwnerDetail); ok {
			return nd
		}
	}
	return nil
}

// TestForwardToOwner runs replicas on one store: a holds every session, b
// and c hold none, and the runners and the engineer talk to b and c. Every
// call that needs the live session is served by a through them, as the
// caller.
func TestForwardToOwner(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	w := newWorld(t, worldOptions{tickets: 3})
	opts := replicaOptions{replicaToken: clusterToken, tokens: clusterTokens(t)}
	a := w.startReplica("a", opts)
	ready := a.waitSessions(as(ctx, adminToken), t, orchestratorv1.SessionState_SESSION_STATE_READY, 3)
	b := w.startReplica("b", opts)
	runner, admin := as(ctx, runnerToken), as(ctx, adminToken)
	for _, s := range ready {
		if s.GetOwner() != "a" {
			t.Fatalf("session %s is owned by %q, want a", s.GetId(), s.GetOwner())
		}
	}
	first, second, third := ready[0], ready[1], ready[2]

	// AcquireSession on b, which holds nothing, leases a's session.
	acq, err := b.client.AcquireSession(runner, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", TicketId: first.GetTicketId()})
	if err != nil {
		t.Fatalf("AcquireSession on b = %v", err)
	}
	if acq.GetSession().GetId() != first.GetId() || acq.GetSession().GetOwner() != "a" || acq.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING {
		t.Fatalf("AcquireSession on b leased %s (owner %q, %s), want %s RUNNING on a", acq.GetSession().GetId(), acq.GetSession().GetOwner(), acq.GetSession().GetState(), first.GetId())
	}
	id, lease := first.GetId(), acq.GetLeaseId()

	// ConfigureBus through b.
	cb, err := b.client.ConfigureBus(runner, &orchestratorv1.ConfigureBusRequest{SessionId: id, LeaseId: lease, Buses: first.GetBuses()})
	if err != nil || len(cb.GetSession().GetBuses()) != len(first.GetBuses()) {
		t.Fatalf("ConfigureBus through b = %v, %v; want the session with its buses", cb, err)
	}

	// Send through b.
	sent, err := b.client.Send(runner, &orchestratorv1.SendRequest{SessionId: id, LeaseId: lease, Channel: ecuChannel(engineRequestID), Payload: readVIN})
	if err != nil {
		t.Fatalf("Send through b = %v", err)
	}
	if string(sent.GetPayload()) != string(vinAnswer(first.GetVin())) {
		t.Errorf("Send through b answered % X, want the VIN", sent.GetPayload())
	}
	// A wrong lease is the owner's answer, passed on as it is.
	if _, err := b.client.Send(runner, &orchestratorv1.SendRequest{SessionId: id, LeaseId: "not-the-lease-id", Channel: ecuChannel(engineRequestID), Payload: readVIN}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Send through b with a wrong lease = %v, want FAILED_PRECONDITION", err)
	}

	// Exchange through b: requests in order, a half-close ends the stream
	// after the last answer.
	ex := openExchange(runner, t, b.client, acq, ecuChannel(engineRequestID))
	for cid := range uint64(3) {
		wantVIN(t, "Exchange through b", ex.roundTrip(cid, readVIN, 0), first.GetVin())
	}
	if err := ex.request(3, readVIN, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := ex.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	last, err := ex.recv()
	if err != nil || last.GetCorrelationId() != 3 {
		t.Fatalf("answer to the request sent before the half-close = %v, %v", last, err)
	}
	if _, err := ex.s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Exchange through b after the half-close ended with %v, want EOF", err)
	}

	// Lease renewal through b.
	ren, err := b.client.AcquireSession(runner, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", RenewLeaseId: lease, LeaseTtl: durationpb.New(time.Minute)})
	if err != nil || ren.GetLeaseId() != lease {
		t.Fatalf("renewal through b = %v, %v; want lease %s", ren, err, lease)
	}

	// FinishSession through b.
	fin, err := b.client.FinishSession(runner, &orchestratorv1.FinishSessionRequest{SessionId: id, LeaseId: lease, Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}}})
	if err != nil || fin.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_FINISHED {
		t.Fatalf("FinishSession through b = %v, %v; want FINISHED", fin, err)
	}

	// The owner cannot be reached: UNAVAILABLE naming it.
	dead := deadAddress(t)
	if err := a.store.Register(ctx, dead); err != nil {
		t.Fatal(err)
	}
	seesAddress(ctx, t, b, "a", dead)
	_, err = b.client.Send(admin, &orchestratorv1.SendRequest{SessionId: second.GetId(), Channel: ecuChannel(engineRequestID), Payload: readVIN})
	if d := notOwnerDetail(err); status.Code(err) != codes.Unavailable || d.GetOwner() != "a" || d.GetOwnerAddress() != dead {
		t.Errorf("Send through b to an unreachable owner = %v (detail %v), want UNAVAILABLE naming a at %s", err, d, dead)
	}
	if err := a.store.Register(ctx, a.addr); err != nil {
		t.Fatal(err)
	}
	seesAddress(ctx, t, b, "a", a.addr)

	// A forwarded call is never forwarded again: b answers a call another
	// replica forwarded to it with the owner's name instead.
	again := metadata.AppendToOutgoingContext(as(ctx, clusterToken), controlplane.ForwardedForHeader, "runner-1")
	_, err = b.client.Send(again, &orchestratorv1.SendRequest{SessionId: second.GetId(), Channel: ecuChannel(engineRequestID), Payload: readVIN})
	if d := notOwnerDetail(err); status.Code(err) != codes.Unavailable || d.GetOwner() != "a" || d.GetOwnerAddress() != a.addr {
		t.Errorf("Send forwarded to b, which does not own the session = %v (detail %v), want UNAVAILABLE naming a at %s", err, d, a.addr)
	}

	// InterruptSession through a third replica keeps the engineer's name
	// and reason.
	c := w.startReplica("c", opts)
	in, err := c.client.InterruptSession(admin, &orchestratorv1.InterruptSessionRequest{SessionId: second.GetId(), Reason: "vehicle left"})
	if err != nil {
		t.Fatalf("InterruptSession through c = %v", err)
	}
	if s := in.GetSession(); s.GetState() != orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED || s.GetActor() != "alice" || s.GetReason() != "vehicle left" {
		t.Errorf("InterruptSession through c = %s by %q (%q), want INTERRUPTED by alice (vehicle left)", s.GetState(), s.GetActor(), s.GetReason())
	}

	// A caller that is not a replica may not speak for another.
	forged := metadata.AppendToOutgoingContext(runner, controlplane.ForwardedForHeader, "alice")
	_, err = a.client.InterruptSession(forged, &orchestratorv1.InterruptSessionRequest{SessionId: third.GetId(), Reason: "forged"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("InterruptSession with a runner's token naming alice as the caller = %v, want PERMISSION_DENIED", err)
	}

	// AcquireSession on b waits while the only matching session is leased,
	// and gets it when its lease expires on a: the wait is woken by b's
	// watch of the store.
	held, err := a.client.AcquireSession(runner, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", TicketId: third.GetTicketId(), LeaseTtl: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatalf("AcquireSession on a = %v", err)
	}
	got, err := b.client.AcquireSession(as(ctx, runner2Token), &orchestratorv1.AcquireSessionRequest{Runner: "runner-2", TicketId: third.GetTicketId()})
	if err != nil {
		t.Fatalf("AcquireSession on b while a's runner held the session = %v", err)
	}
	if got.GetSession().GetId() != third.GetId() || got.GetLeaseId() == held.GetLeaseId() || got.GetSession().GetLease().GetHolder() != "runner-2" {
		t.Errorf("AcquireSession on b = %s with lease held by %q, want %s with a new lease for runner-2", got.GetSession().GetId(), got.GetSession().GetLease().GetHolder(), third.GetId())
	}

	// The owner ending an Exchange ends the stream through b with the
	// owner's status: an engineer interrupts the session on a.
	ex = openExchange(as(ctx, runner2Token), t, b.client, got, ecuChannel(engineRequestID))
	wantVIN(t, "Exchange through b", ex.roundTrip(0, readVIN, 0), third.GetVin())
	if _, err := a.client.InterruptSession(admin, &orchestratorv1.InterruptSessionRequest{SessionId: third.GetId(), Reason: "bay closed"}); err != nil {
		t.Fatalf("InterruptSession on a = %v", err)
	}
	if _, err := ex.s.Recv(); status.Code(err) != codes.Aborted {
		t.Errorf("Exchange through b after an interrupt on a ended with %v, want ABORTED", err)
	}
}

// TestForwardedIdentityWithoutAuth: with authentication off, only a call
// presenting the replica token may name the caller it speaks for.
func TestForwardedIdentityWithoutAuth(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	w := newWorld(t, worldOptions{tickets: 1})
	a := w.startReplica("a", replicaOptions{replicaToken: clusterToken})
	s := a.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 1)[0]
	for _, c := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no token", metadata.AppendToOutgoingContext(ctx, controlplane.ForwardedForHeader, "alice"), codes.PermissionDenied},
		{"wrong token", metadata.AppendToOutgoingContext(as(ctx, "not-the-replica-token"), controlplane.ForwardedForHeader, "alice"), codes.PermissionDenied},
		{"replica token", metadata.AppendToOutgoingContext(as(ctx, clusterToken), controlplane.ForwardedForHeader, "alice"), codes.OK},
	} {
		_, err := a.client.GetSession(c.ctx, &orchestratorv1.GetSessionRequest{SessionId: s.GetId()})
		if status.Code(err) != c.want {
			t.Errorf("%s: GetSession naming alice = %v, want %s", c.name, err, c.want)
		}
	}
	// Served as the named caller.
	fwd := metadata.AppendToOutgoingContext(as(ctx, clusterToken), controlplane.ForwardedForHeader, "alice")
	in, err := a.client.InterruptSession(fwd, &orchestratorv1.InterruptSessionRequest{SessionId: s.GetId(), Reason: "test"})
	if err != nil || in.GetSession().GetActor() != "alice" {
		t.Errorf("InterruptSession forwarded for alice = %v, %v; want actor alice", in, err)
	}
}

// deadAddress returns a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestAcquireNamedSession: an acquire naming a session (as a replica
// forwarding a cluster-wide acquire does) leases that session or none, and
// never waits.
func TestAcquireNamedSession(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	w := newWorld(t, worldOptions{tickets: 2})
	a := w.startReplica("a", replicaOptions{})
	ready := a.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 2)
	for _, i := range []int{1, 0} {
		id := ready[i].GetId()
		got, err := a.core.AcquireSession(ctx, orchestrator.AcquireRequest{Runner: "runner-1", SessionID: id, NoWait: true})
		if err != nil || got.Session.ID != id {
			t.Fatalf("AcquireSession naming %s = %v, %v; want that session", id, got.Session, err)
		}
	}
	for _, id := range []string{ready[0].GetId(), "no-such-session"} {
		if _, err := a.core.AcquireSession(ctx, orchestrator.AcquireRequest{Runner: "runner-2", SessionID: id, NoWait: true}); !errors.Is(err, orchestrator.ErrNoSession) {
			t.Errorf("AcquireSession naming %s (leased or unknown) = %v, want ErrNoSession", id, err)
		}
	}
}

// seesAddress waits until r's view of the replica registry (fed by its
// watch) gives addr for replica name.
func seesAddress(ctx context.Context, t *testing.T, r *replica, name, addr string) {
	t.Helper()
	poll(ctx, t, "replica "+r.name+" sees "+name+" at "+addr, func() bool {
		got, ok, err := r.store.ReplicaAddress(ctx, name)
		return err == nil && ok && got == addr
	})
}

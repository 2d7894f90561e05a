package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// The recovery rules, each with the crash injected at its step. A replica
// "crashes" by stopping without releasing its store lease (as kill -9
// would); the fake's faults hold it at the awkward moment.

const stateFailed = orchestratorv1.SessionState_SESSION_STATE_FAILED

// openOBDClient is a client of the fake openOBD with the partner's
// credentials, standing for a process other than the replicas.
func (w *world) openOBDClient(t *testing.T) *connector.Client {
	t.Helper()
	host, port := splitHostPort(t, w.jf.OpenOBDAddr)
	oc, err := connector.New(connector.Config{
		ClientID: w.jf.ClientID, ClientSecret: w.jf.ClientSecret, Host: host, Port: port, RootCAs: w.jf.Certificate.RootCAs(), Logger: quiet,
	})
	if err != nil {
		t.Fatalf("connector.New: %v", err)
	}
	t.Cleanup(func() { _ = oc.Close() })
	return oc
}

// readRecord reads a session record straight from the store.
func (w *world) readRecord(t *testing.T, id string) *session.Record {
	t.Helper()
	st, err := store.Open(testCtx(t), store.Config{Endpoints: w.etcd.Endpoints(), Replica: "probe"})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	defer st.Close()
	rec, err := st.Get(testCtx(t), id)
	if err != nil {
		t.Fatalf("store Get(%s): %v", id, err)
	}
	return rec
}

func historyHas(s *orchestratorv1.Session, actor, text string) bool {
	for _, h := range s.GetHistory() {
		if (actor == "" || h.GetActor() == actor) && strings.Contains(h.GetReason(), text) {
			return true
		}
	}
	return false
}

// TestCrashDuringStartInterruptsOurOrphan: the process dies while
// startSessionOnTicket is in flight, so openOBD has a session that no
// record names and every new start answers "Resource already in use". The
// next owner finds that orphan (available, created after the record, named
// by no record), interrupts it, starts again, and writes what it did into
// the history, as well as the adoption.
func TestCrashDuringStartInterruptsOurOrphan(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	ticket := w.jf.Tickets[0]
	cfg := orchestrator.Config{OrphanSettle: 100 * time.Millisecond}
	faults := w.jf.OpenOBD.Faults()
	// Every call is slow: the crash lands while the start call is in
	// flight.
	faults.SetCallLatency(5 * time.Second)
	a := w.startReplica("a", replicaOptions{cfg: cfg, storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	pending := a.waitSessions(ctx, t, statePending, 1)[0]
	poll(ctx, t, "the start call reaches openOBD", func() bool { return startCalls(w) >= 1 })
	a.crash()
	faults.SetCallLatency(0)
	// What the dead process's call did on openOBD's side.
	orphan, err := w.openOBDClient(t).StartSessionOnTicket(ctx, ticket.ID)
	if err != nil {
		t.Fatalf("start the orphan: %v", err)
	}

	b := w.startReplica("b", replicaOptions{cfg: cfg})
	got := b.waitState(ctx, t, pending.GetId(), stateReady)
	if s, _ := w.jf.OpenOBD.Session(orphan.ID); s.State != fake.StateInterrupted {
		t.Errorf("orphan %s is %s, want interrupted", orphan.ID, s.State)
	}
	if got.GetOpenobdSessionId() == orphan.ID || got.GetOpenobdSessionId() == "" {
		t.Errorf("session runs on openOBD session %q, want a new one", got.GetOpenobdSessionId())
	}
	if n := w.liveOpenOBD(ticket.ID); n != 1 {
		t.Errorf("ticket has %d live openOBD sessions, want 1", n)
	}
	if !historyHas(got, "b", "adopted by replica b") {
		t.Errorf("history %v does not record the adoption by b", got.GetHistory())
	}
	if !historyHas(got, "b", "interrupted openOBD session "+orphan.ID) {
		t.Errorf("history %v does not record the orphan's interrupt", got.GetHistory())
	}
	if rec := w.readRecord(t, got.GetId()); rec.StartAttempts < 2 {
		t.Errorf("record counts %d start attempts, want at least 2 (the crashed one and the next)", rec.StartAttempts)
	}
}

// TestActiveSessionIsNeverTakenForAnOrphan: a session someone else
// authenticated on the ticket is not ours to interrupt; starts fail until
// the attempts (counted in the record) run out, and the session says why.
func TestActiveSessionIsNeverTakenForAnOrphan(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	ticket := w.jf.Tickets[0]
	ctx := testCtx(t)
	oc := w.openOBDClient(t)
	info, err := oc.StartSessionOnTicket(ctx, ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := oc.Attach(ctx, info)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()

	r := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{MaxStartAttempts: 3, OrphanSettle: time.Millisecond}})
	failed := r.waitSessions(ctx, t, stateFailed, 1)[0]
	if !strings.Contains(failed.GetReason(), "after 3 attempts") || !strings.Contains(failed.GetReason(), "not ours") {
		t.Errorf("FAILED reason %q, want it to say the attempts ran out on a session that is not ours", failed.GetReason())
	}
	if s, _ := w.jf.OpenOBD.Session(info.ID); s.State != fake.StateActive {
		t.Errorf("the stranger's session is %s, want still active", s.State)
	}
}

// TestCrashAfterAuthenticateStartsAFreshSession: the process dies after
// authenticate spent the one-time token and before the session token was
// stored. Nobody can use that session: the next owner interrupts it,
// records FAILED saying so in plain words, and starts a new session for the
// ticket, never with two live openOBD sessions for it.
func TestCrashAfterAuthenticateStartsAFreshSession(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	ticket := w.jf.Tickets[0]
	faults := w.jf.OpenOBD.Faults()
	// Every call takes a while: the crash lands between authenticate and
	// the READY write (configureBus is still under way).
	faults.SetCallLatency(400 * time.Millisecond)
	a := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	first := a.waitSessions(ctx, t, statePending, 1)[0]
	var spent string
	poll(ctx, t, "openOBD session authenticated", func() bool {
		for _, s := range w.jf.OpenOBD.Sessions() {
			if s.TicketID == ticket.ID && s.State == fake.StateActive {
				spent = s.ID
				return true
			}
		}
		return false
	})
	a.crash()
	if rec := w.readRecord(t, first.GetId()); rec.State != session.StateStarting || rec.OpenOBD.Token != "" {
		t.Fatalf("after the crash the record is %s with a stored token %v: the crash missed its window", rec.State, rec.OpenOBD.Token != "")
	}
	faults.SetCallLatency(0)

	b := w.startReplica("b", replicaOptions{})
	maxLive := 0
	var fresh []*orchestratorv1.Session
	poll(ctx, t, "a fresh session READY after the lost token", func() bool {
		maxLive = max(maxLive, w.liveOpenOBD(ticket.ID))
		fresh = nil
		resp, err := b.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{States: []orchestratorv1.SessionState{stateReady}})
		if err == nil {
			fresh = resp.GetSessions()
		}
		return len(fresh) == 1
	})
	lost := b.waitState(ctx, t, first.GetId(), stateFailed)
	if !strings.Contains(lost.GetReason(), "session token was lost") || !strings.Contains(lost.GetReason(), "new session is started") {
		t.Errorf("FAILED reason %q, want it to say the token was lost and a new session is started", lost.GetReason())
	}
	if s, _ := w.jf.OpenOBD.Session(spent); s.State != fake.StateInterrupted {
		t.Errorf("the session whose token was lost is %s, want interrupted", s.State)
	}
	if fresh[0].GetId() == first.GetId() || fresh[0].GetTicketId() != ticket.ID {
		t.Errorf("fresh session %v, want a new session for ticket %s", fresh[0], ticket.ID)
	}
	if maxLive > 1 || w.liveOpenOBD(ticket.ID) != 1 {
		t.Errorf("saw %d live openOBD sessions for the ticket at once (now %d), want at most 1", maxLive, w.liveOpenOBD(ticket.ID))
	}
}

// TestInterruptHoldsIntake: after an engineer's InterruptSession, intake
// leaves the ticket alone (the record says so) until StartSession is
// called for it again.
func TestInterruptHoldsIntake(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	ticket := w.jf.Tickets[0]
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	s := r.waitSessions(ctx, t, stateReady, 1)[0]
	got, err := r.client.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: s.GetId(), Reason: "wrong car"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSession().GetReason() != "wrong car" || !historyHas(got.GetSession(), "", "intake leaves ticket "+itoa(ticket.TicketNumber)+" alone") {
		t.Errorf("interrupted session (reason %q, history %v): want the caller's reason and a history entry saying intake leaves the ticket alone",
			got.GetSession().GetReason(), got.GetSession().GetHistory())
	}
	// Several intake passes list the still-pending ticket.
	w.jf.Partner.ResetRequests()
	poll(ctx, t, "three intake passes", func() bool { return w.jf.Partner.Requests()["/v2/tickets/tickets"] >= 3 })
	resp, err := r.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{TicketId: ticket.ID})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetSessions()); n != 1 || w.liveOpenOBD(ticket.ID) != 0 {
		t.Fatalf("ticket has %d sessions and %d live openOBD sessions after intake passes, want the interrupted one only", n, w.liveOpenOBD(ticket.ID))
	}
	started, err := r.client.StartSession(ctx, &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: ticket.ID}})
	if err != nil || !started.GetCreated() {
		t.Fatalf("StartSession after the interrupt = %v, %v; want a new session", started, err)
	}
	r.waitState(ctx, t, started.GetSession().GetId(), stateReady)
}

// TestStartSessionIdempotencyRules: a request id belongs to one target; a
// FINISHED ticket needs force; validate_only starts nothing.
func TestStartSessionIdempotencyRules(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 2})
	r := w.startReplica("a", replicaOptions{cfg: intakeOff()})
	ctx := testCtx(t)
	t0, t1 := w.jf.Tickets[0], w.jf.Tickets[1]
	start := func(ticket, requestID string, force, dry bool) (*orchestratorv1.StartSessionResponse, error) {
		return r.client.StartSession(ctx, &orchestratorv1.StartSessionRequest{
			Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: ticket}, RequestId: requestID,
			Force: force, ValidateOnly: dry,
		})
	}

	dry, err := start(t0.ID, "", false, true)
	if err != nil || dry.GetSession() != nil || !strings.Contains(dry.GetValidationSummary(), "would start") {
		t.Fatalf("validate_only StartSession = %v, %v; want a summary and no session", dry, err)
	}
	if n := startCalls(w); n != 0 {
		t.Fatalf("validate_only made %d openOBD start calls, want 0", n)
	}

	first, err := start(t0.ID, "req-1", false, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := start(t0.ID, "req-1", false, false)
	if err != nil || again.GetSession().GetId() != first.GetSession().GetId() {
		t.Errorf("retried StartSession = %v, %v; want session %s", again.GetSession().GetId(), err, first.GetSession().GetId())
	}
	_, err = start(t1.ID, "req-1", false, false)
	wantCode(t, "StartSession reusing a request_id for another ticket", err, codes.AlreadyExists, "request_id", "req-1")

	// Finish the session: the ticket is then served.
	r.waitState(ctx, t, first.GetSession().GetId(), stateReady)
	acq, err := r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", TicketId: t0.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.FinishSession(ctx, &orchestratorv1.FinishSessionRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}},
	}); err != nil {
		t.Fatal(err)
	}
	_, err = start(t0.ID, "", false, false)
	wantCode(t, "StartSession on a finished ticket", err, codes.FailedPrecondition, "force")
	forced, err := start(t0.ID, "", true, false)
	if err != nil || !forced.GetCreated() {
		t.Errorf("StartSession with force = %v, %v; want a new session", forced, err)
	}
}

// TestLeaseIsDurable: traffic renews the stored lease (GetSession shows an
// expiry ahead of now while the runner is busy); a restart keeps the lease
// with its TTL and a current expiry, and the runner carries on; Drain
// keeps leases from expiring during shutdown.
func TestLeaseIsDurable(t *testing.T) {
	const ttl = 5 * time.Second
	w := newWorld(t, worldOptions{tickets: 1})
	r := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	r.waitSessions(ctx, t, stateReady, 1)
	acq, err := r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", LeaseTtl: durationpb.New(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	send := func(c orchestratorv1.OrchestratorServiceClient) error {
		_, err := c.Send(ctx, vinRequest(acq))
		return err
	}
	// Busy for longer than half the TTL (a renewal falls due once a third to
	// a half of it has passed): a renewal is written.
	poll(ctx, t, "a renewal written by traffic", func() bool {
		if err := send(r.client); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := r.getSession(ctx, t, acq.GetSession().GetId())
		return got.GetLease().GetExpireTime().AsTime().After(acq.GetExpireTime().AsTime())
	})
	got := r.getSession(ctx, t, acq.GetSession().GetId())
	if exp := got.GetLease().GetExpireTime().AsTime(); !exp.After(time.Now()) {
		t.Errorf("GetSession shows lease expiry %s, in the past while the runner is busy", exp)
	}

	r.crash()
	b := w.startReplica("a", replicaOptions{})
	poll(ctx, t, "the runner's Send succeeds after the restart", func() bool {
		err := send(b.client)
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("Send after the restart = %v, want success or, until re-attached, UNAVAILABLE", err)
		}
		return err == nil
	})
	adopted := b.getSession(ctx, t, acq.GetSession().GetId())
	var adoption *orchestratorv1.Transition
	for _, h := range adopted.GetHistory() {
		if strings.Contains(h.GetReason(), "adopted") {
			adoption = h
		}
	}
	if adoption == nil {
		t.Fatalf("history %v has no adoption", adopted.GetHistory())
	}
	if d := adopted.GetLease().GetExpireTime().AsTime().Sub(adoption.GetTime().AsTime()); d < ttl {
		t.Errorf("after the restart the lease expires %s after the adoption, want at least its TTL %s", d, ttl)
	}

	// Shutdown begins: the lease outlives its expiry.
	b.core.Drain()
	expiry := b.getSession(ctx, t, acq.GetSession().GetId()).GetLease().GetExpireTime().AsTime()
	time.Sleep(time.Until(expiry) + 500*time.Millisecond)
	if s := b.getSession(ctx, t, acq.GetSession().GetId()); s.GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING {
		t.Errorf("during shutdown the session became %s, want RUNNING (leases do not expire while draining)", s.GetState())
	}
}

// TestCallerErrors: lease errors say which is wrong, a call on another
// replica's session names the owner, an Exchange closed without messages
// ends OK, and AcquireSession without a deadline waits at most the
// server's limit.
func TestCallerErrors(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	a := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{AcquireMaxWait: 300 * time.Millisecond}})
	ctx := testCtx(t)
	s := a.waitSessions(ctx, t, stateReady, 1)[0]
	send := func(c orchestratorv1.OrchestratorServiceClient, lease string) error {
		_, err := c.Send(ctx, &orchestratorv1.SendRequest{SessionId: s.GetId(), LeaseId: lease, Channel: ecuChannel(engineRequestID), Payload: readVIN})
		return err
	}
	wantCode(t, "Send with a lease id on a session nobody leases", send(a.client, "not-a-lease"), codes.FailedPrecondition, "not leased")
	acq, err := a.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1"})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Send without the lease id", send(a.client, ""), codes.FailedPrecondition, "lease id is required")
	wantCode(t, "Send with another lease id", send(a.client, "not-a-lease"), codes.FailedPrecondition, "not this session's lease")
	if err := send(a.client, acq.GetLeaseId()); err != nil {
		t.Fatalf("Send with the lease: %v", err)
	}

	// Nothing else is READY: the server's limit ends the wait.
	_, err = a.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-2"})
	wantCode(t, "AcquireSession with nothing READY and no deadline", err, codes.DeadlineExceeded, "server's limit")

	// An Exchange closed before opening a channel ends OK.
	ex, err := a.client.Exchange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Exchange closed without messages ended with %v, want OK (io.EOF)", err)
	}

	// Another replica names the owner.
	b := w.startReplica("b", replicaOptions{cfg: intakeOff()})
	err = send(b.client, acq.GetLeaseId())
	wantCode(t, "Send on replica b for a's session", err, codes.Unavailable, `"a"`)
	var detail *orchestratorv1.NotOwnerDetail
	for _, d := range status.Convert(err).Details() {
		if nd, ok := d.(*orchestratorv1.NotOwnerDetail); ok {
			detail = nd
		}
	}
	if detail.GetOwner() != "a" || detail.GetSessionId() != s.GetId() {
		t.Errorf("NotOwnerDetail = %v, want owner a of session %s", detail, s.GetId())
	}
}

// TestTokenSaveIsRetried: a token that arrives while the store cannot be
// reached is saved once it can, even if no newer token comes: the stored
// token is never older than the newest one received. The outage lasts
// longer than any single store call may wait (10 s), so only a retried
// save stores the token, and shorter than the replica's store lease.
func TestTokenSaveIsRetried(t *testing.T) {
	t.Parallel()
	const outage = 12 * time.Second
	w := newWorld(t, worldOptions{tickets: 1, openobd: fake.Options{TokenRotation: 200 * time.Millisecond}})
	r := w.startReplica("a", replicaOptions{storeLeaseTTL: 2 * outage})
	ctx := testCtx(t)
	s := r.waitSessions(ctx, t, stateReady, 1)[0]
	newest := w.tokenDuringOutage(ctx, t, s.GetOpenobdSessionId())
	select { // the outage itself, not a wait for an event
	case <-time.After(outage):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	w.startEtcd()
	poll(ctx, t, "the newest token is stored after the outage", func() bool {
		rec, err := r.store.Get(ctx, s.GetId())
		return err == nil && rec.OpenOBD.Token == newest
	})
}

// TestFailoverFollowsReleasedClaims: a replica adopts the sessions of a
// crashed one as soon as the crashed one's store lease ends, without
// waiting for its next intake pass (here an hour away).
func TestFailoverFollowsReleasedClaims(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 2})
	a := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	sessions := a.waitSessions(ctx, t, stateReady, 2)
	b := w.startReplica("b", replicaOptions{cfg: orchestrator.Config{ResyncInterval: time.Hour}})
	b.waitSessions(ctx, t, stateReady, 2) // b's cache has them, owned by a
	a.crash()
	for _, s := range sessions {
		poll(ctx, t, "session "+s.GetId()+" READY on b", func() bool {
			got, err := b.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: s.GetId()})
			return err == nil && got.GetSession().GetOwner() == "b" && got.GetSession().GetState() == stateReady
		})
	}
	if n := startCalls(w); n != 2 {
		t.Errorf("openOBD got %d start calls, want 2 (the failover re-attached with the stored tokens)", n)
	}
}

// TestLostStoreLeaseIsRegained: a replica whose store lease ends (here
// revoked, as after a pause past its TTL) stops acting, takes a new lease,
// and adopts its former sessions again with their stored tokens; it keeps
// running throughout.
func TestLostStoreLeaseIsRegained(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 2})
	healthy := make(chan bool, 16)
	a := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{OnHealth: func(ok bool, _ string) {
		select {
		case healthy <- ok:
		default:
		}
	}}})
	ctx := testCtx(t)
	sessions := a.waitSessions(ctx, t, stateReady, 2)
	cli, err := clientv3.New(clientv3.Config{Endpoints: w.etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	leases, err := cli.Leases(ctx)
	if err != nil || len(leases.Leases) == 0 {
		t.Fatalf("Leases = %v, %v; want the replica's", leases, err)
	}
	for _, l := range leases.Leases {
		if _, err := cli.Revoke(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	for ok := true; ok; {
		select {
		case ok = <-healthy:
		case <-ctx.Done():
			t.Fatal("the replica never reported itself unhealthy after losing its store lease")
		}
	}
	for _, s := range sessions {
		poll(ctx, t, "session "+s.GetId()+" READY again", func() bool {
			got, err := a.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: s.GetId()})
			return err == nil && got.GetSession().GetState() == stateReady && historyHas(got.GetSession(), "a", "adopted by replica a")
		})
	}
	if n := startCalls(w); n != 2 {
		t.Errorf("openOBD got %d start calls, want 2 (sessions re-attached with their stored tokens)", n)
	}
}

// TestTokenKeptAcrossLostStoreLease: a token received while the store is
// unreachable, and still unsaved when the replica's store lease ends, is
// stored when the replica adopts the session again: the stored token is
// never older than the newest one received.
func TestTokenKeptAcrossLostStoreLease(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{tickets: 1, openobd: fake.Options{TokenRotation: 200 * time.Millisecond}})
	healthy := make(chan bool, 16)
	r := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL, cfg: orchestrator.Config{OnHealth: func(ok bool, _ string) {
		select {
		case healthy <- ok:
		default:
		}
	}}})
	ctx := testCtx(t)
	s := r.waitSessions(ctx, t, stateReady, 1)[0]
	newest := w.tokenDuringOutage(ctx, t, s.GetOpenobdSessionId())
	for ok := true; ok; { // the store lease ends during the outage
		select {
		case ok = <-healthy:
		case <-ctx.Done():
			t.Fatal("the replica never reported itself unhealthy after losing its store lease")
		}
	}
	w.startEtcd()
	poll(ctx, t, "the newest token is stored by the adoption after the outage", func() bool {
		rec, err := r.store.Get(ctx, s.GetId())
		return err == nil && rec.OpenOBD.Token == newest && rec.Owner == "a"
	})
}

// tokenDuringOutage stops etcd, waits for openOBD to issue a token while the
// store is unreachable, then makes openOBD hang (no more tokens, no
// re-attach) and cuts the session's streams. It returns the newest token;
// etcd stays stopped.
func (w *world) tokenDuringOutage(ctx context.Context, t *testing.T, openOBDSessionID string) string {
	t.Helper()
	faults := w.jf.OpenOBD.Faults()
	w.stopEtcd()
	issued := len(w.jf.OpenOBD.IssuedTokens())
	poll(ctx, t, "a token issued during the outage", func() bool { return len(w.jf.OpenOBD.IssuedTokens()) > issued })
	faults.Hang(true)
	t.Cleanup(func() { faults.Hang(false) })
	if err := faults.DropStreams(openOBDSessionID); err != nil {
		t.Fatal(err)
	}
	all := w.jf.OpenOBD.IssuedTokens()
	return all[len(all)-1]
}

// TestReadyRecordedAfterFailedWrite: when the READY write of a session that
// is attached and configured fails (the store unreachable for a moment),
// the retried reconcile records READY, with the session token, from the
// attachment it kept: no second authenticate, no second openOBD session.
func TestReadyRecordedAfterFailedWrite(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{tickets: 1})
	faults := w.jf.OpenOBD.Faults()
	faults.Hang(true)
	t.Cleanup(func() { faults.Hang(false) })
	r := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		ReconcileTimeout: 2 * time.Second, // a write to the stopped etcd waits this long
	}})
	ctx := testCtx(t)
	calls := func(m string) int { return w.jf.OpenOBD.Calls()[m] }
	total := func() (n int) {
		for _, c := range w.jf.OpenOBD.Calls() {
			n += c
		}
		return n
	}
	// Let the calls through one by one until configureBus waits.
	for entered := 0; calls(openobdv1.Config_ConfigureBus_FullMethodName) == 0; {
		poll(ctx, t, "the next openOBD call", func() bool { return total() > entered })
		entered = total()
		if calls(openobdv1.Config_ConfigureBus_FullMethodName) == 0 {
			faults.Hang(false)
			faults.Hang(true)
		}
	}
	w.stopEtcd()
	faults.Hang(false)
	poll(ctx, t, "the READY write to fail", func() bool {
		w.log.mu.Lock()
		defer w.log.mu.Unlock()
		return strings.Contains(w.log.buf.String(), "reconcile failed, will retry")
	})
	w.startEtcd()
	s := r.waitSessions(ctx, t, stateReady, 1)[0]
	if n := calls(openobdv1.Session_Authenticate_FullMethodName); n != 1 {
		t.Errorf("authenticate called %d times, want 1", n)
	}
	if n := startCalls(w); n != 1 {
		t.Errorf("startSessionOnTicket called %d times, want 1", n)
	}
	rec, err := r.store.Get(ctx, s.GetId())
	if err != nil || rec.OpenOBD.Token == "" || rec.OpenOBD.AuthToken != "" {
		t.Errorf("stored READY record: %v; want the session token and no authentication token", err)
	}
}

// TestConfigureBusRetriedWithoutReauthenticating: a bus configuration that
// fails for a moment after authenticate (the one-time token spent) is
// retried on the attached session; the session is not failed for a lost
// token and no second openOBD session is started.
func TestConfigureBusRetriedWithoutReauthenticating(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{tickets: 1})
	w.jf.OpenOBD.Faults().FailCalls(openobdv1.Config_ConfigureBus_FullMethodName, 2, status.Error(codes.Unavailable, "try again"))
	r := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	}})
	ctx := testCtx(t)
	s := r.waitSessions(ctx, t, stateReady, 1)[0]
	calls := w.jf.OpenOBD.Calls()
	if n := calls[openobdv1.Config_ConfigureBus_FullMethodName]; n != 3 {
		t.Errorf("configureBus called %d times, want 3 (two failed)", n)
	}
	if n := calls[openobdv1.Session_Authenticate_FullMethodName]; n != 1 {
		t.Errorf("authenticate called %d times, want 1", n)
	}
	if n := startCalls(w); n != 1 {
		t.Errorf("startSessionOnTicket called %d times, want 1", n)
	}
	rec, err := r.store.Get(ctx, s.GetId())
	if err != nil || rec.OpenOBD.Token == "" || len(rec.Buses) == 0 {
		t.Errorf("stored READY record: %v, %+v; want the session token and the buses", err, rec)
	}
}

package orchestrator_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/internal/leakcheck"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// leakOptions ignore what the gRPC and etcd client packages start once per
// process.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
}

func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, leakOptions...)
}

func TestDemoTicketsBecomeReady(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 5})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	sessions := r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 5)
	for _, s := range sessions {
		if s.GetOpenobdSessionId() == "" || s.GetVin() == "" || len(s.GetBuses()) != 1 {
			t.Errorf("READY session %s lacks openOBD id, VIN or buses: %v", s.GetId(), s)
		}
		var states []orchestratorv1.SessionState
		for _, h := range s.GetHistory() {
			states = append(states, h.GetTo())
		}
		want := []orchestratorv1.SessionState{
			orchestratorv1.SessionState_SESSION_STATE_PENDING,
			orchestratorv1.SessionState_SESSION_STATE_STARTING,
			orchestratorv1.SessionState_SESSION_STATE_READY,
		}
		if len(states) != len(want) {
			t.Errorf("session %s history = %v, want %v", s.GetId(), states, want)
		}
	}
	for _, tk := range w.jf.Tickets {
		if n := w.liveOpenOBD(tk.ID); n != 1 {
			t.Errorf("ticket %s has %d live openOBD sessions, want 1", tk.ID, n)
		}
	}
	// The intake view joins tickets with their sessions.
	tickets, err := r.client.ListTickets(ctx, &orchestratorv1.ListTicketsRequest{})
	if err != nil {
		t.Fatalf("ListTickets: %v", err)
	}
	for _, tk := range tickets.GetTickets() {
		if tk.GetSessionId() == "" || tk.GetSessionState() != orchestratorv1.SessionState_SESSION_STATE_READY {
			t.Errorf("ticket %s: session %q in %s, want a READY session", tk.GetId(), tk.GetSessionId(), tk.GetSessionState())
		}
	}
}

func TestStartSessionIsIdempotent(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	// No intake: tickets are started only through the control plane.
	r := w.startReplica("a", replicaOptions{cfg: intakeOff()})
	ctx := testCtx(t)
	ticket := w.jf.Tickets[0]

	const callers = 8
	ids := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := ticket.ID
			if i%2 == 1 {
				target = itoa(ticket.TicketNumber) // by number as well as by UUID
			}
			resp, err := r.client.StartSession(ctx, &orchestratorv1.StartSessionRequest{
				Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: target},
			})
			if err != nil {
				t.Errorf("StartSession #%d: %v", i, err)
				return
			}
			ids[i] = resp.GetSession().GetId()
		}()
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("StartSession returned sessions %q and %q for one ticket", ids[0], ids[i])
		}
	}
	r.waitState(ctx, t, ids[0], orchestratorv1.SessionState_SESSION_STATE_READY)
	if n := w.liveOpenOBD(ticket.ID); n != 1 {
		t.Errorf("ticket has %d live openOBD sessions, want exactly 1", n)
	}
	if got := w.jf.OpenOBD.Calls()[openobdv1.SessionController_StartSessionOnTicket_FullMethodName]; got != 1 {
		t.Errorf("startSessionOnTicket called %d times, want 1", got)
	}

	// A request id makes a retried call return the same session too.
	resp, err := r.client.StartSession(ctx, &orchestratorv1.StartSessionRequest{
		Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: ticket.ID}, RequestId: "req-1",
	})
	if err != nil || resp.GetSession().GetId() != ids[0] || resp.GetCreated() {
		t.Errorf("StartSession(live ticket) = %v, created %v, %v; want session %s, not created", resp.GetSession().GetId(), resp.GetCreated(), err, ids[0])
	}
}

func TestStartSessionErrors(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	r := w.startReplica("a", replicaOptions{cfg: intakeOff()})
	ctx := testCtx(t)
	tests := []struct {
		name string
		req  *orchestratorv1.StartSessionRequest
		want codes.Code
	}{
		{"no target", &orchestratorv1.StartSessionRequest{}, codes.InvalidArgument},
		{"empty ticket", &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_TicketId{}}, codes.InvalidArgument},
		{"unknown ticket", &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: "00000000-0000-4000-8000-000000000000"}}, codes.NotFound},
		{"unknown ticket number", &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: "99999999"}}, codes.NotFound},
		{"unknown connector", &orchestratorv1.StartSessionRequest{Target: &orchestratorv1.StartSessionRequest_ConnectorId{ConnectorId: "00000000-0000-4000-8000-000000000000"}}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.client.StartSession(ctx, tt.req)
			if got := status.Code(err); got != tt.want {
				t.Errorf("StartSession(%v) = %v, want %s", tt.req, err, tt.want)
			}
		})
	}
}

func TestInterruptSources(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 3})
	r := w.startReplica("a", replicaOptions{cfg: fastTicketCheck()})
	ctx := testCtx(t)
	sessions := r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 3)
	byTicket := map[string]*orchestratorv1.Session{}
	for _, s := range sessions {
		byTicket[s.GetTicketId()] = s
	}
	t0, t1, t2 := w.jf.Tickets[0], w.jf.Tickets[1], w.jf.Tickets[2]

	// From the control plane.
	s0 := byTicket[t0.ID]
	got, err := r.client.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: s0.GetId(), Reason: "vehicle left the workshop"})
	if err != nil {
		t.Fatalf("InterruptSession: %v", err)
	}
	if got.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED || got.GetSession().GetReason() != "vehicle left the workshop" {
		t.Errorf("interrupted session = %s (%q), want INTERRUPTED with the reason", got.GetSession().GetState(), got.GetSession().GetReason())
	}
	if n := w.liveOpenOBD(t0.ID); n != 0 {
		t.Errorf("openOBD session still live after a control-plane interrupt")
	}

	// From openOBD (the Partner API's interrupt of an openOBD session lands
	// there too).
	s1 := byTicket[t1.ID]
	if _, err := w.jf.OpenOBD.InterruptSession(s1.GetOpenobdSessionId()); err != nil {
		t.Fatalf("fake InterruptSession: %v", err)
	}
	rec := r.waitState(ctx, t, s1.GetId(), orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED)
	if rec.GetActor() != "openobd" {
		t.Errorf("openOBD interrupt recorded actor %q, want openobd", rec.GetActor())
	}

	// From the Partner API: the ticket is cancelled.
	s2 := byTicket[t2.ID]
	if err := w.jf.Partner.SetTicketState(t2.ID, partner.TicketCancelled); err != nil {
		t.Fatal(err)
	}
	rec = r.waitState(ctx, t, s2.GetId(), orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED)
	if rec.GetActor() != "partner-api" {
		t.Errorf("ticket cancellation recorded actor %q, want partner-api", rec.GetActor())
	}
	if n := w.liveOpenOBD(t2.ID); n != 0 {
		t.Errorf("openOBD session still live after the ticket was cancelled")
	}

	// An ended session cannot be interrupted again.
	_, err = r.client.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: s0.GetId(), Reason: "again"})
	if status.Code(err) != codes.Aborted && status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second InterruptSession = %v, want ABORTED or FAILED_PRECONDITION", err)
	}
}

func TestRestartReattaches(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 2})
	a := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	before := a.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 2)
	a.crash()

	b := w.startReplica("a", replicaOptions{}) // same replica name: a restart
	for _, s := range before {
		got := b.waitState(ctx, t, s.GetId(), orchestratorv1.SessionState_SESSION_STATE_READY)
		if got.GetOpenobdSessionId() != s.GetOpenobdSessionId() {
			t.Errorf("after restart session %s has openOBD session %s, want the same %s", s.GetId(), got.GetOpenobdSessionId(), s.GetOpenobdSessionId())
		}
	}
	// Re-attached for real: the session can be acquired and used.
	acq, err := b.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "restart-test"})
	if err != nil {
		t.Fatalf("AcquireSession after restart: %v", err)
	}
	if _, err := b.client.Send(ctx, vinRequest(acq)); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	for _, tk := range w.jf.Tickets {
		if n := w.liveOpenOBD(tk.ID); n != 1 {
			t.Errorf("ticket %s has %d live openOBD sessions after restart, want 1", tk.ID, n)
		}
	}
	if got := w.jf.OpenOBD.Calls()[openobdv1.SessionController_StartSessionOnTicket_FullMethodName]; got != 2 {
		t.Errorf("startSessionOnTicket called %d times, want 2 (no second session per ticket)", got)
	}
}

func TestRestartAfterTokenExpiryFailsCleanly(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1, openobd: fake.Options{
		TokenRotation: time.Hour, TokenValidity: 300 * time.Millisecond,
	}})
	a := w.startReplica("a", replicaOptions{storeLeaseTTL: failoverTTL})
	ctx := testCtx(t)
	s := a.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 1)[0]
	a.crash()
	time.Sleep(400 * time.Millisecond) // the stored token expires while nobody runs

	b := w.startReplica("a", replicaOptions{})
	got := b.waitState(ctx, t, s.GetId(), orchestratorv1.SessionState_SESSION_STATE_FAILED)
	if got.GetReason() == "" {
		t.Error("FAILED session has no reason")
	}
	if n := w.liveOpenOBD(w.jf.Tickets[0].ID); n > 1 {
		t.Errorf("ticket has %d live openOBD sessions, want at most 1", n)
	}
	if fs, ok := w.jf.OpenOBD.Session(s.GetOpenobdSessionId()); ok && fs.State.Live() {
		t.Errorf("the abandoned openOBD session is still %s; want it interrupted", fs.State)
	}
}

func TestWatchResumesWithoutGapsOrDuplicates(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 3})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 3)

	// Read the history from revision 1: three writes per session.
	all := collect(ctx, t, r, 1, 9)
	if len(all) < 9 {
		t.Fatalf("watch from revision 1 gave %d events, want at least 9 (3 sessions x 3 transitions)", len(all))
	}
	transitions := 0
	for i := 1; i < len(all); i++ {
		if all[i].GetRevision() <= all[i-1].GetRevision() {
			t.Fatalf("revisions out of order: %d after %d", all[i].GetRevision(), all[i-1].GetRevision())
		}
	}
	for _, ev := range all {
		if tr := ev.GetTransition(); tr != nil {
			transitions++
			if tr.GetTo() != ev.GetSession().GetState() {
				t.Errorf("event at revision %d: transition to %s on a session in %s", ev.GetRevision(), tr.GetTo(), ev.GetSession().GetState())
			}
		}
	}
	if transitions < 9 {
		t.Errorf("%d events carry their transition, want at least 9 (3 sessions x PENDING, STARTING, READY)", transitions)
	}
	// Resume from the middle: exactly the events after the cut.
	cut := len(all) / 2
	rest := collect(ctx, t, r, all[cut].GetRevision()+1, len(all)-cut-1)
	if len(rest) != len(all)-cut-1 {
		t.Fatalf("resumed watch gave %d events, want %d", len(rest), len(all)-cut-1)
	}
	for i, ev := range rest {
		if want := all[cut+1+i].GetRevision(); ev.GetRevision() != want {
			t.Errorf("resumed event %d has revision %d, want %d", i, ev.GetRevision(), want)
		}
	}
}

// collect reads a watch from start until n events arrived.
func collect(ctx context.Context, t *testing.T, r *replica, start int64, n int) []*orchestratorv1.WatchSessionsResponse {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.client.WatchSessions(wctx, &orchestratorv1.WatchSessionsRequest{StartRevision: start})
	if err != nil {
		t.Fatalf("WatchSessions: %v", err)
	}
	events := make(chan *orchestratorv1.WatchSessionsResponse)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case events <- ev:
			case <-wctx.Done():
				return
			}
		}
	}()
	var out []*orchestratorv1.WatchSessionsResponse
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return out
			}
			out = append(out, ev)
			if len(out) == n {
				return out
			}
		case <-ctx.Done():
			t.Fatalf("watch: %d events before the deadline", len(out))
		}
	}
}

func TestStalledWatcherDoesNotSlowOthers(t *testing.T) {
	const tickets = 150
	w := newWorld(t, worldOptions{tickets: tickets})
	cut := make(chan struct{}, 1)
	r := w.startReplica("a", replicaOptions{svcOpts: controlplane.Options{WatchBuffer: 2, OnSlowWatcher: func() {
		select {
		case cut <- struct{}{}:
		default:
		}
	}}})
	ctx := testCtx(t)
	r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, tickets)

	// The stalled watcher opens its stream and never reads. A fixed, small
	// flow-control window makes its stream block once the window and the
	// server's write quota (64 KiB each) are full: 450 events are well past.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slow := orchestratorv1.NewOrchestratorServiceClient(r.dial(
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	stalled, err := slow.WatchSessions(sctx, &orchestratorv1.WatchSessionsRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A healthy watcher reads the same history in full meanwhile.
	got := collect(ctx, t, r, 1, 3*tickets)
	if len(got) < 3*tickets {
		t.Errorf("healthy watcher got %d events next to a stalled one, want at least %d", len(got), 3*tickets)
	}
	// The stalled watcher is given up on, and ended with a resumable error
	// once it reads.
	select {
	case <-cut:
	case <-ctx.Done():
		t.Fatal("the stalled watcher was never given up on")
	}
	var last int64
	for {
		ev, err := stalled.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("stalled watcher ended with %v, want RESOURCE_EXHAUSTED", err)
			}
			if !containsResume(status.Convert(err).Message(), last+1) {
				t.Errorf("error %q does not name start_revision=%d", status.Convert(err).Message(), last+1)
			}
			break
		}
		last = ev.GetRevision()
	}
}

func containsResume(msg string, rev int64) bool {
	return strings.Contains(msg, "start_revision="+strconv.FormatInt(rev, 10))
}

func intakeOff() orchestrator.Config {
	// An intake state no demo ticket is in.
	return orchestrator.Config{IntakeState: partner.TicketOutsourced}
}

func fastTicketCheck() orchestrator.Config {
	return orchestrator.Config{TicketCheckInterval: time.Millisecond}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func vinRequest(acq *orchestratorv1.AcquireSessionResponse) *orchestratorv1.SendRequest {
	return &orchestratorv1.SendRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
		Payload: []byte{0x22, 0xF1, 0x90},
	}
}

// TestHealthFollowsPartnerAPIOutage proves intake health turns unhealthy
// only when the Partner API stays unreachable beyond the threshold, names
// the reason, and recovers.
func TestHealthFollowsPartnerAPIOutage(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	type report struct {
		healthy bool
		reason  string
	}
	reports := make(chan report, 16)
	cfg := orchestrator.Config{
		HealthThreshold: 300 * time.Millisecond,
		OnHealth:        func(h bool, reason string) { reports <- report{h, reason} },
	}
	w.startReplica("a", replicaOptions{cfg: cfg})
	ctx := testCtx(t)
	next := func() report {
		t.Helper()
		select {
		case r := <-reports:
			return r
		case <-ctx.Done():
			t.Fatal("no health report")
			return report{}
		}
	}
	if r := next(); !r.healthy {
		t.Fatalf("first report = %+v, want healthy after the first intake pass", r)
	}
	if err := w.jf.Partner.SetFaults(partnertest.Faults{ServerErrors: -1, ServerErrorStatus: 503}); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	r := next()
	if r.healthy || !strings.Contains(r.reason, "Partner API") {
		t.Fatalf("report during the outage = %+v, want unhealthy naming the Partner API", r)
	}
	if d := time.Since(outage); d < 300*time.Millisecond {
		t.Errorf("unhealthy after %s, before the 300ms threshold", d)
	}
	w.jf.Partner.ClearFaults()
	if r := next(); !r.healthy {
		t.Fatalf("report after recovery = %+v, want healthy", r)
	}
}

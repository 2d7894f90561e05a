package orchestrator_test

// The fault suite: each test names a failure of a system the orchestrator
// depends on (connector, openOBD, Partner API, ECU, the orchestrator's own
// process) and proves the service survives it without losing anything:
// records stay intact, no ticket gets a second openOBD session, every
// request is answered or fails with a clear status, and no goroutine leaks
// (the package's TestMain checks).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

const (
	stateReady   = orchestratorv1.SessionState_SESSION_STATE_READY
	stateRunning = orchestratorv1.SessionState_SESSION_STATE_RUNNING
	statePending = orchestratorv1.SessionState_SESSION_STATE_PENDING
)

// startCalls is how many times openOBD was asked to start a session on a
// ticket.
func startCalls(w *world) int {
	return w.jf.OpenOBD.Calls()[openobdv1.SessionController_StartSessionOnTicket_FullMethodName]
}

// poll waits until cond holds, checking every few milliseconds, and fails
// the test naming what it waited for when ctx ends first.
func poll(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting until %s", what)
		case <-tick.C:
		}
	}
}

// getSession reads a session through the control plane.
func (r *replica) getSession(ctx context.Context, t *testing.T, id string) *orchestratorv1.Session {
	t.Helper()
	resp, err := r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: id})
	if err != nil {
		t.Fatalf("GetSession(%s): %v", id, err)
	}
	return resp.GetSession()
}

// storedToken returns the session token the store holds for a session.
// Tests compare tokens and never print them.
func (r *replica) storedToken(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	rec, err := r.store.Get(ctx, id)
	if err != nil {
		t.Fatalf("store.Get(%s): %v", id, err)
	}
	return rec.OpenOBD.Token
}

// waitNewToken waits until the store holds a session token other than old
// and returns it.
func (r *replica) waitNewToken(ctx context.Context, t *testing.T, id, old, why string) string {
	t.Helper()
	var tok string
	poll(ctx, t, "the stored session token changes "+why, func() bool {
		tok = r.storedToken(ctx, t, id)
		return tok != "" && tok != old
	})
	return tok
}

// sessionsOf lists every session record of a ticket.
func (r *replica) sessionsOf(ctx context.Context, t *testing.T, ticketID string) []*orchestratorv1.Session {
	t.Helper()
	resp, err := r.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{TicketId: ticketID, PageSize: 100})
	if err != nil {
		t.Fatalf("ListSessions(ticket %s): %v", ticketID, err)
	}
	return resp.GetSessions()
}

// partnerRequests is how many requests the fake Partner API received since
// its counts were last reset, faulted ones included.
func partnerRequests(w *world) int {
	n := 0
	for _, c := range w.jf.Partner.Requests() {
		n += c
	}
	return n
}

// ecuFault returns the active fault of one ECU behind a connector.
func ecuFault(f *fake.Faults, connectorID string, requestID uint32) (fake.ECUFault, bool) {
	for _, e := range f.State().ECUs {
		if e.ConnectorID == connectorID && e.RequestID == requestID {
			return e.Fault, true
		}
	}
	return fake.ECUFault{}, false
}

// wantVIN fails unless an Exchange response carries the VIN.
func wantVIN(t *testing.T, what string, r *orchestratorv1.UdsResponse, vin string) {
	t.Helper()
	if r.GetError() != nil || r.GetNegative() || !bytes.Equal(r.GetPayload(), vinAnswer(vin)) {
		t.Errorf("%s = %v, want the VIN", what, r)
	}
}

// TestFaultConnectorDisconnectMidStream proves the service survives a
// connector that drops off line while a runner has an Exchange stream open:
// requests fail with a TIMEOUT error response (Send with
// DEADLINE_EXCEEDED), each naming the request, while the stream stays open;
// once the connector is back the same stream carries requests again. The
// session stays RUNNING throughout with no transition added, and its one
// openOBD session stays live.
func TestFaultConnectorDisconnectMidStream(t *testing.T) {
	const timeout = 150 * time.Millisecond
	g := newRelayRig(t, rigOptions{})
	ctx := g.ctx
	ex := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	wantVIN(t, "Exchange before the disconnect", ex.roundTrip(1, readVIN, 0), g.vin())
	before := g.r.getSession(ctx, t, g.sessionID())
	if before.GetState() != stateRunning {
		t.Fatalf("leased session is %s, want RUNNING", before.GetState())
	}

	if err := g.faults().DisconnectConnector(g.connectorID()); err != nil {
		t.Fatal(err)
	}
	for cid := uint64(2); cid < 4; cid++ {
		r := ex.roundTrip(cid, readVIN, timeout)
		if r.GetError().GetCode() != orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT ||
			!bytes.Contains([]byte(r.GetError().GetMessage()), []byte("22 F1 90")) || len(r.GetPayload()) != 0 {
			t.Errorf("Exchange while the connector is off line = %v, want error TIMEOUT naming 22 F1 90", r)
		}
	}
	_, err := g.sendTo(ctx, g.acq, engineRequestID, readVIN, timeout)
	wantCode(t, "Send while the connector is off line", err, codes.DeadlineExceeded, "22 F1 90")
	if s := g.r.getSession(ctx, t, g.sessionID()); s.GetState() != stateRunning {
		t.Errorf("session is %s while the connector is off line, want RUNNING", s.GetState())
	}

	if err := g.faults().ReconnectConnector(g.connectorID()); err != nil {
		t.Fatal(err)
	}
	wantVIN(t, "Exchange on the same stream after the reconnect", ex.roundTrip(4, readVIN, 0), g.vin())
	if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), vinAnswer(g.vin())) {
		t.Errorf("Send after the reconnect = % X, want the VIN", r.GetPayload())
	}

	after := g.r.getSession(ctx, t, g.sessionID())
	if after.GetState() != stateRunning || len(after.GetHistory()) != len(before.GetHistory()) {
		t.Errorf("after the reconnect the session is %s with %d transitions, want RUNNING with the same %d",
			after.GetState(), len(after.GetHistory()), len(before.GetHistory()))
	}
	if n := g.w.liveOpenOBD(after.GetTicketId()); n != 1 {
		t.Errorf("ticket has %d live openOBD sessions, want 1", n)
	}
	if err := ex.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Exchange after CloseSend ended with %v, want io.EOF", err)
	}
}

// TestFaultOpenOBDRefusesStarts proves the service survives openOBD
// refusing every start ("no free resources") and then recovering: while
// refused, the tickets' sessions stay PENDING (never FAILED) and starts are
// retried with the configured backoff; once openOBD accepts starts again,
// every ticket becomes READY with exactly one live openOBD session, each
// record going PENDING -> STARTING -> READY. Intake passes are rarer than
// the retries here: the backoff alone paces the starts.
func TestFaultOpenOBDRefusesStarts(t *testing.T) {
	refuseStartsThenRecover(t, 5*time.Second)
}

// TestFaultOpenOBDRefusesStartsFrequentIntake proves the same with intake
// passes far more frequent than the start retries: a pass must not cut the
// backoff of a session waiting to retry its start short, or a long "no free
// resources" spell turns into a start storm that fails the sessions after
// MaxStartAttempts.
func TestFaultOpenOBDRefusesStartsFrequentIntake(t *testing.T) {
	refuseStartsThenRecover(t, 50*time.Millisecond)
}

// refuseStartsThenRecover runs the refused-starts scenario with intake
// passes every resync.
func refuseStartsThenRecover(t *testing.T, resync time.Duration) {
	t.Helper()
	const (
		tickets      = 3
		retryInitial = 500 * time.Millisecond
		retryMax     = time.Second
		refusedFor   = 1200 * time.Millisecond
	)
	w := newWorld(t, worldOptions{tickets: tickets})
	w.jf.OpenOBD.Faults().RefuseStarts(-1)
	began := time.Now()
	r := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{
		ResyncInterval: resync, RetryInitial: retryInitial, RetryMax: retryMax,
	}})
	ctx := testCtx(t)

	// Every ticket gets a record, and the records stay PENDING: until
	// every ticket's start was refused once, and for refusedFor after
	// that, while intake runs every resync.
	pendingOnly := func() {
		resp, err := r.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{PageSize: 100})
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		for _, s := range resp.GetSessions() {
			if s.GetState() != statePending {
				t.Fatalf("session %s is %s (%q) while openOBD refuses starts, want PENDING", s.GetId(), s.GetState(), s.GetReason())
			}
		}
	}
	poll(ctx, t, "every ticket's start refused once", func() bool {
		pendingOnly()
		return startCalls(w) >= tickets
	})
	for end := time.Now().Add(refusedFor); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		pendingOnly()
	}
	r.waitSessions(ctx, t, statePending, tickets)
	refused := startCalls(w)
	elapsed := time.Since(began)
	// The backoff waits at least half of RetryInitial between two starts of
	// one ticket (intervals grow from RetryInitial, randomised by ±50%).
	bound := tickets * (1 + int(elapsed/(retryInitial/2)))
	t.Logf("%d refused starts for %d tickets in %s (backoff allows at most %d)", refused, tickets, elapsed.Round(time.Millisecond), bound)
	if refused < tickets || refused > bound {
		t.Errorf("openOBD got %d start calls for %d tickets in %s, want %d to %d: the retry backoff must hold however often intake runs",
			refused, tickets, elapsed.Round(time.Millisecond), tickets, bound)
	}

	w.jf.OpenOBD.Faults().RefuseStarts(0)
	sessions := r.waitSessions(ctx, t, stateReady, tickets)
	want := []orchestratorv1.SessionState{statePending, orchestratorv1.SessionState_SESSION_STATE_STARTING, stateReady}
	for _, s := range sessions {
		var got []orchestratorv1.SessionState
		for _, h := range s.GetHistory() {
			got = append(got, h.GetTo())
		}
		if !equalStates(got, want) {
			t.Errorf("session %s history = %v, want %v", s.GetId(), got, want)
		}
	}
	for _, tk := range w.jf.Tickets {
		if n := w.liveOpenOBD(tk.ID); n != 1 {
			t.Errorf("ticket %s has %d live openOBD sessions, want 1", tk.ID, n)
		}
		if n := len(r.sessionsOf(ctx, t, tk.ID)); n != 1 {
			t.Errorf("ticket %s has %d session records, want 1", tk.ID, n)
		}
	}
	// One accepted start per ticket; a start already on its way when the
	// refusals ended may have been refused once more.
	if total := startCalls(w); total < refused+tickets || total > refused+2*tickets {
		t.Errorf("openOBD got %d start calls in all after %d refused, want %d to %d", total, refused, refused+tickets, refused+2*tickets)
	}
}

func equalStates(a, b []orchestratorv1.SessionState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFaultTokenStreamDropped proves the service survives openOBD dropping
// a READY session's streams and expiring its session tokens: the session
// stays READY, its token stream is reopened and keeps rotating (the newest
// token is persisted in the record, for a restarted replica), and requests
// afterwards succeed, also on a channel opened after the expiry, which must
// authenticate with a rotated token.
func TestFaultTokenStreamDropped(t *testing.T) {
	g := newRelayRig(t, rigOptions{noAcquire: true, openobd: fake.Options{TokenRotation: 50 * time.Millisecond}})
	ctx := g.ctx
	s := g.r.waitSessions(ctx, t, stateReady, 1)[0]
	id := s.GetId()
	send := func(what string, requestID uint32) {
		t.Helper()
		resp, err := g.r.client.Send(ctx, &orchestratorv1.SendRequest{SessionId: id, Channel: ecuChannel(requestID), Payload: readVIN})
		if err != nil {
			t.Fatalf("Send %s = %v, want the VIN", what, err)
		}
		if !bytes.Equal(resp.GetPayload(), vinAnswer(s.GetVin())) {
			t.Errorf("Send %s = % X, want the VIN", what, resp.GetPayload())
		}
	}
	send("before the faults", engineRequestID)

	tok := g.r.waitNewToken(ctx, t, id, g.r.storedToken(ctx, t, id), "by rotation")
	if err := g.w.jf.OpenOBD.Faults().DropStreams(s.GetOpenobdSessionId()); err != nil {
		t.Fatal(err)
	}
	// Two rotations after the drop: the token stream was reopened.
	for range 2 {
		tok = g.r.waitNewToken(ctx, t, id, tok, "after the token stream was dropped")
	}
	if st := g.r.getSession(ctx, t, id).GetState(); st != stateReady {
		t.Fatalf("session is %s after its streams were dropped, want READY", st)
	}
	send("after the streams were dropped", engineRequestID)

	if n := g.w.jf.OpenOBD.Faults().ExpireSessionTokens(); n == 0 {
		t.Fatal("ExpireSessionTokens expired no token")
	}
	expired := map[string]bool{}
	for _, tok := range g.w.jf.OpenOBD.IssuedTokens() {
		expired[tok] = true
	}
	// Tokens are saved after they arrive: wait for one issued after the
	// expiry (one issued before may still be on its way), so the session
	// has it too.
	poll(ctx, t, "a token issued after the expiry is stored", func() bool {
		tok := g.r.storedToken(ctx, t, id)
		return tok != "" && !expired[tok]
	})
	send("on the open channel after the tokens expired", engineRequestID)
	send("on a channel opened after the tokens expired", transmissionID)

	got := g.r.getSession(ctx, t, id)
	if got.GetState() != stateReady || len(got.GetHistory()) != len(s.GetHistory()) {
		t.Errorf("session is %s with %d transitions after the faults, want READY with the same %d",
			got.GetState(), len(got.GetHistory()), len(s.GetHistory()))
	}
	if n := g.w.liveOpenOBD(s.GetTicketId()); n != 1 {
		t.Errorf("ticket has %d live openOBD sessions, want 1", n)
	}
	if startCalls(g.w) != 1 {
		t.Errorf("openOBD got %d start calls, want 1", startCalls(g.w))
	}
}

// TestFaultPartnerAPIStorm proves the service survives the Partner API
// answering 429 (with Retry-After) and then 5xx to every request for
// several intake intervals: the requests stay within what the client's
// backoff allows (a Retry-After beyond the retry budget ends the call after
// one request; a 5xx is retried at most MaxRetries times per call), sessions
// already READY or RUNNING stay so and usable, and once the Partner API
// recovers intake resumes: a ticket added during the storm becomes READY.
func TestFaultPartnerAPIStorm(t *testing.T) {
	const (
		resync = 100 * time.Millisecond
		phase  = 600 * time.Millisecond
		// Attempts per call of the harness's Partner API client: the first
		// and partner.DefaultMaxRetries retries.
		perCall = 1 + partner.DefaultMaxRetries
	)
	g := newRelayRig(t, rigOptions{tickets: 2, cfg: orchestrator.Config{ResyncInterval: resync}})
	ctx := g.ctx
	ready := g.r.waitSessions(ctx, t, stateReady, 1)[0]
	p := g.w.jf.Partner
	usable := func(when string) {
		t.Helper()
		if r, err := g.send(ctx, readVIN); err != nil || !bytes.Equal(r.GetPayload(), vinAnswer(g.vin())) {
			t.Errorf("Send on the RUNNING session %s = %v, %v; want the VIN", when, r.GetPayload(), err)
		}
		if st := g.r.getSession(ctx, t, ready.GetId()).GetState(); st != stateReady {
			t.Errorf("READY session is %s %s, want READY", st, when)
		}
		if st := g.r.getSession(ctx, t, g.sessionID()).GetState(); st != stateRunning {
			t.Errorf("leased session is %s %s, want RUNNING", st, when)
		}
	}
	// passes bounds the intake passes in d: one per interval, plus the one
	// under way and the one starting.
	passes := func(d time.Duration) int { return int(d/resync) + 2 }

	// storm injects faults for one phase from now and returns when it began.
	storm := func(ft partnertest.Faults) time.Time {
		t.Helper()
		if err := p.SetFaults(ft); err != nil {
			t.Fatal(err)
		}
		p.ResetRequests() // every request counted from here on is faulted
		return time.Now()
	}

	// 429 with a Retry-After longer than the client's retry budget (500 ms):
	// each call gives up after its first request.
	start := storm(partnertest.Faults{RateLimited: -1, RetryAfter: time.Second})
	// Once a faulted request came in, no intake pass that listed tickets
	// before the storm is still under way: the new ticket is seen only after
	// the storm.
	poll(ctx, t, "intake meets the 429 storm", func() bool { return partnerRequests(g.w) > 0 })
	added := p.Seed(1, 99)[0]
	time.Sleep(phase - time.Since(start))
	usable("during the 429 storm")
	limited, d := partnerRequests(g.w), time.Since(start)
	t.Logf("429 storm: %d Partner API requests in %s", limited, d.Round(time.Millisecond))
	if limited > passes(d) {
		t.Errorf("%d Partner API requests in %s of 429 with Retry-After 1s, want at most %d (one per intake pass)",
			limited, d.Round(time.Millisecond), passes(d))
	}

	// 503 without Retry-After: each call retries with backoff, within its
	// budget.
	start = storm(partnertest.Faults{ServerErrors: -1})
	poll(ctx, t, "intake meets the 503 storm", func() bool { return partnerRequests(g.w) > 0 })
	time.Sleep(phase - time.Since(start))
	usable("during the 503 storm")
	failed, d := partnerRequests(g.w), time.Since(start)
	t.Logf("503 storm: %d Partner API requests in %s", failed, d.Round(time.Millisecond))
	if failed > passes(d)*perCall {
		t.Errorf("%d Partner API requests in %s of 503, want at most %d (at most %d per intake pass)",
			failed, d.Round(time.Millisecond), passes(d)*perCall, perCall)
	}
	if n := len(g.r.sessionsOf(ctx, t, added.ID)); n != 0 {
		t.Errorf("the ticket added during the storm has %d sessions before the Partner API recovered, want 0", n)
	}

	p.ClearFaults()
	poll(ctx, t, "the ticket added during the storm is READY", func() bool {
		s := g.r.sessionsOf(ctx, t, added.ID)
		return len(s) == 1 && s[0].GetState() == stateReady
	})
	usable("after the storm")
	for _, tk := range append(g.w.jf.Tickets, added) {
		if n := g.w.liveOpenOBD(tk.ID); n != 1 {
			t.Errorf("ticket %s has %d live openOBD sessions, want 1", tk.ID, n)
		}
	}
}

// TestFaultNRCStorms proves the service survives ECUs that answer "busy,
// repeat request" (0x21) and "response pending" (0x78): a request answered
// 0x21 a few times is re-sent until the real answer comes (its ECU time
// shows the retries); a read answered 0x78 many times succeeds although the
// answer comes after the request's own timeout; and an ECU that answers
// 0x21 forever ends the call within its timeout with the last 7F 22 21 as
// a negative response, never hanging, after a bounded number of re-sends.
func TestFaultNRCStorms(t *testing.T) {
	// Pending answers come spacing apart; the request's own timeout (P2)
	// is longer than one spacing, with room for a loaded machine, and
	// shorter than all of them.
	const spacing = 100 * time.Millisecond
	g := newRelayRig(t, rigOptions{openobd: fake.Options{RoutinePendingSpacing: spacing}})
	ctx := g.ctx
	busyRetry := connector.DefaultBusyRetryInterval // the harness's connector uses the default
	want := vinAnswer(g.vin())
	setFault := func(f fake.ECUFault) {
		t.Helper()
		if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, f); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("busy a few times", func(t *testing.T) {
		const busy = 2
		setFault(fake.ECUFault{BusyRepeat: busy})
		resp, err := g.send(ctx, readVIN)
		if err != nil || resp.GetNegative() || !bytes.Equal(resp.GetPayload(), want) {
			t.Fatalf("Send(22 F1 90) after %d busy answers = %v, %v; want the VIN", busy, resp, err)
		}
		if d := resp.GetEcuTime().AsDuration(); d < busy*busyRetry {
			t.Errorf("ECU time %s, want at least %s (%d re-sends %s apart)", d, busy*busyRetry, busy, busyRetry)
		}
		if _, left := ecuFault(g.faults(), g.connectorID(), engineRequestID); left {
			t.Errorf("the busy fault is still set: the request was not re-sent %d times", busy)
		}
	})

	t.Run("pending many times", func(t *testing.T) {
		const pending = 8
		const timeout = 4 * spacing // shorter than the pending answers take
		setFault(fake.ECUFault{Pending: pending})
		resp, err := g.sendTo(ctx, g.acq, engineRequestID, readVIN, timeout)
		if err != nil || resp.GetNegative() || !bytes.Equal(resp.GetPayload(), want) {
			t.Fatalf("Send(22 F1 90) after %d pending answers = %v, %v; want the VIN", pending, resp, err)
		}
		if d := resp.GetEcuTime().AsDuration(); d < pending*spacing {
			t.Errorf("ECU time %s, want at least %s (%d pending answers)", d, pending*spacing, pending)
		}
		ex := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
		setFault(fake.ECUFault{Pending: pending})
		wantVIN(t, "Exchange(22 F1 90) after pending answers", ex.roundTrip(1, readVIN, timeout), g.vin())
	})

	t.Run("busy forever", func(t *testing.T) {
		const budget = 1000
		const timeout = 500 * time.Millisecond
		// The first request and one re-send per busyRetry within the timeout.
		maxSends := 1 + int(timeout/busyRetry)
		setFault(fake.ECUFault{BusyRepeat: budget})
		sends := func() int {
			f, _ := ecuFault(g.faults(), g.connectorID(), engineRequestID)
			return budget - f.BusyRepeat
		}
		wantBusy := []byte{0x7F, 0x22, 0x21}

		start := time.Now()
		resp, err := g.sendTo(ctx, g.acq, engineRequestID, readVIN, timeout)
		took := time.Since(start)
		if err != nil || !resp.GetNegative() || resp.GetNrc() != 0x21 || !bytes.Equal(resp.GetPayload(), wantBusy) {
			t.Errorf("Send(22 F1 90) to an ECU busy forever = %v, %v; want the negative response 7F 22 21", resp, err)
		}
		if took > timeout+250*time.Millisecond {
			t.Errorf("Send to an ECU busy forever took %s, want it ended within its %s timeout", took, timeout)
		}
		if n := sends(); n < 2 || n > maxSends {
			t.Errorf("the ECU got the request %d times, want 2 to %d", n, maxSends)
		}

		ex := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
		before := sends()
		start = time.Now()
		r := ex.roundTrip(1, readVIN, timeout)
		took = time.Since(start)
		if r.GetError() != nil || !r.GetNegative() || r.GetNrc() != 0x21 || !bytes.Equal(r.GetPayload(), wantBusy) {
			t.Errorf("Exchange(22 F1 90) to an ECU busy forever = %v, want the negative response 7F 22 21", r)
		}
		if took > timeout+250*time.Millisecond {
			t.Errorf("Exchange to an ECU busy forever answered after %s, want within its %s timeout", took, timeout)
		}
		if n := sends() - before; n < 2 || n > maxSends {
			t.Errorf("the ECU got the Exchange request %d times, want 2 to %d", n, maxSends)
		}
		setFault(fake.ECUFault{})
		wantVIN(t, "Exchange on the same stream once the ECU is no longer busy", ex.roundTrip(2, readVIN, 0), g.vin())
	})
}

// TestFaultLateResponsesNeverMisdelivered proves that an ECU answer that
// arrives after its request gave up is never returned to the next request on
// the channel: the next request gets its own answer, on Send and on
// Exchange, whether the late answer was slowed down on the bus or followed
// "response pending" answers past P2*.
func TestFaultLateResponsesNeverMisdelivered(t *testing.T) {
	const (
		late    = 300 * time.Millisecond // when the late answer arrives
		timeout = 100 * time.Millisecond // when its request gives up
	)
	g := newRelayRig(t, rigOptions{
		openobd: fake.Options{RoutinePendingSpacing: late / 2},
		client:  connector.Config{P2Star: 50 * time.Millisecond},
	})
	ctx := g.ctx
	wantResults := []byte{0x71, 0x03, 0xFF, 0x00, 0x00} // 31 03 FF 00: routine results
	// timeOutSlowly sends a VIN read that gives up before the ECU's answer
	// arrives, then lets the answers come in time again.
	timeOutSlowly := func(t *testing.T) {
		t.Helper()
		g.faults().SetIsotpLatency(late)
		_, err := g.sendTo(ctx, g.acq, engineRequestID, readVIN, timeout)
		g.faults().SetIsotpLatency(0)
		wantCode(t, "Send(22 F1 90) to a slow ECU", err, codes.DeadlineExceeded, "22 F1 90")
	}

	t.Run("next request of another service", func(t *testing.T) {
		timeOutSlowly(t)
		resp, err := g.send(ctx, routineResults)
		if err != nil || !bytes.Equal(resp.GetPayload(), wantResults) {
			t.Errorf("Send(31 03 FF 00) after a late VIN answer = % X, %v; want % X", resp.GetPayload(), err, wantResults)
		}
		if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), vinAnswer(g.vin())) {
			t.Errorf("Send(22 F1 90) afterwards = % X, want the VIN", r.GetPayload())
		}
	})

	t.Run("next request of the same service", func(t *testing.T) {
		timeOutSlowly(t)
		resp, err := g.send(ctx, readSerial)
		if err != nil || !bytes.HasPrefix(resp.GetPayload(), []byte{0x62, 0xF1, 0x8C}) {
			t.Errorf("Send(22 F1 8C) after a late answer to 22 F1 90 = % X, %v; want the serial number (62 F1 8C ...)", resp.GetPayload(), err)
		}
	})

	t.Run("Exchange after response pending", func(t *testing.T) {
		ex := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
		// The ECU answers 7F 22 78 at once, again 150 ms later and the VIN
		// 150 ms after that. With P2* at 50 ms the read times out after the
		// first 7F 22 78; the rest arrive while the routine request queued
		// behind it waits for its own answer.
		if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, fake.ECUFault{Pending: 2}); err != nil {
			t.Fatal(err)
		}
		if err := ex.request(1, readVIN, timeout, false); err != nil {
			t.Fatal(err)
		}
		if err := ex.request(2, routineResults, 0, false); err != nil {
			t.Fatal(err)
		}
		for cid := uint64(1); cid <= 2; cid++ {
			r, err := ex.recv()
			if err != nil {
				t.Fatalf("Exchange recv: %v", err)
			}
			if r.GetCorrelationId() != cid {
				t.Fatalf("Exchange answered correlation id %d, want %d", r.GetCorrelationId(), cid)
			}
			switch cid {
			case 1:
				if r.GetError().GetCode() != orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT || len(r.GetPayload()) != 0 {
					t.Errorf("Exchange(22 F1 90) past P2* = %v, want error TIMEOUT", r)
				}
			case 2:
				if r.GetError() != nil || !bytes.Equal(r.GetPayload(), wantResults) {
					t.Errorf("Exchange(31 03 FF 00) after late pending answers = %v, want % X", r, wantResults)
				}
			}
		}
		wantVIN(t, "Exchange(22 F1 90) afterwards", ex.roundTrip(3, readVIN, 0), g.vin())
	})
}

// TestFaultCrashMidTraffic proves the service survives its own process
// being killed (no clean shutdown: the store lease is left to expire) while
// a runner's traffic is in flight on Send and on an Exchange stream: every
// call in flight ends with UNAVAILABLE rather than hanging; the replica
// restarted under the same name re-attaches the session as the record says
// (RUNNING, with the runner's lease) without starting a second openOBD
// session, the history is intact, and the runner carries on with its lease.
func TestFaultCrashMidTraffic(t *testing.T) {
	g := newRelayRig(t, rigOptions{storeLeaseTTL: failoverTTL})
	ctx := g.ctx
	// Answers take a little while, so that requests are at the ECU when the
	// process dies.
	g.faults().SetIsotpLatency(10 * time.Millisecond)
	before := g.r.getSession(ctx, t, g.sessionID())

	// The runner's own connection, not the one the crash closes.
	client := orchestratorv1.NewOrchestratorServiceClient(g.r.dial())
	ex := openExchange(ctx, t, client, g.acq, ecuChannel(engineRequestID))
	want := vinAnswer(g.vin())
	var answered atomic.Int64
	ended := make(chan error, 2)
	go func() {
		for cid := uint64(0); ; cid++ {
			if err := ex.request(cid, readVIN, 0, false); err != nil {
				_, err = ex.s.Recv()
				ended <- err
				return
			}
			r, err := ex.recv()
			if err != nil {
				ended <- err
				return
			}
			if r.GetError() != nil || !bytes.Equal(r.GetPayload(), want) {
				ended <- errors.New("Exchange answered " + r.String())
				return
			}
			answered.Add(1)
		}
	}()
	go func() {
		for {
			r, err := client.Send(ctx, &orchestratorv1.SendRequest{
				SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(), Channel: ecuChannel(transmissionID), Payload: readVIN,
			})
			if err != nil {
				ended <- err
				return
			}
			if !bytes.Equal(r.GetPayload(), want) {
				ended <- errors.New("Send answered " + r.String())
				return
			}
			answered.Add(1)
		}
	}()
	poll(ctx, t, "traffic flows on both calls", func() bool { return answered.Load() >= 10 })
	g.r.crash()
	for range 2 {
		select {
		case err := <-ended:
			if status.Code(err) != codes.Unavailable {
				t.Errorf("call in flight when the replica died ended with %v, want UNAVAILABLE", err)
			}
		case <-ctx.Done():
			t.Fatal("a call in flight when the replica died never ended")
		}
	}

	b := g.w.startReplica("a", replicaOptions{}) // the same name: a restart
	g.faults().SetIsotpLatency(0)
	// Until the session is re-attached calls may be refused, but only with
	// UNAVAILABLE.
	attempts := 0
	poll(ctx, t, "the runner's Send succeeds on the restarted replica", func() bool {
		attempts++
		r, err := b.client.Send(ctx, &orchestratorv1.SendRequest{
			SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(), Channel: ecuChannel(engineRequestID), Payload: readVIN,
		})
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("Send with the runner's lease after the restart = %v, want the VIN or, until re-attached, UNAVAILABLE", err)
		}
		if err == nil && !bytes.Equal(r.GetPayload(), want) {
			t.Fatalf("Send after the restart = % X, want the VIN", r.GetPayload())
		}
		return err == nil
	})
	t.Logf("the runner's Send succeeded at attempt %d after the restart", attempts)
	ex = openExchange(ctx, t, b.client, g.acq, ecuChannel(engineRequestID))
	wantVIN(t, "Exchange after the restart", ex.roundTrip(1, readVIN, 0), g.vin())

	after := b.getSession(ctx, t, g.sessionID())
	if after.GetState() != stateRunning || after.GetLease().GetHolder() != "runner-1" {
		t.Errorf("after the restart the session is %s held by %q, want RUNNING held by runner-1", after.GetState(), after.GetLease().GetHolder())
	}
	if after.GetOpenobdSessionId() != before.GetOpenobdSessionId() {
		t.Errorf("after the restart the session has openOBD session %s, want the same %s", after.GetOpenobdSessionId(), before.GetOpenobdSessionId())
	}
	if len(after.GetHistory()) < len(before.GetHistory()) {
		t.Fatalf("history shrank from %d to %d transitions across the crash", len(before.GetHistory()), len(after.GetHistory()))
	}
	for i, h := range before.GetHistory() {
		if !proto.Equal(h, after.GetHistory()[i]) {
			t.Errorf("transition %d was %v before the crash and is %v after", i, h, after.GetHistory()[i])
		}
	}
	if n := g.w.liveOpenOBD(before.GetTicketId()); n != 1 {
		t.Errorf("ticket has %d live openOBD sessions after the restart, want 1", n)
	}
	if n := startCalls(g.w); n != 1 {
		t.Errorf("openOBD got %d start calls, want 1 (no second session for the ticket)", n)
	}
}

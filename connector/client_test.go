package connector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/test/bufconn"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/uds"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

var readVIN = []byte{0x22, 0xF1, 0x90}

func TestSessionFlow(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	var tokens tokenRecorder
	s, info := e.attach(t, connector.OnToken(tokens.record))

	if info.State != connector.StateAvailable || info.GRPCEndpoint == "" || info.AuthenticationToken == "" {
		t.Errorf("StartSessionOnTicket() = %+v, want an available session with endpoint and token", info)
	}
	if got := tokens.all(); len(got) != 1 || got[0] != s.Token() {
		t.Errorf("OnToken calls = %d, want 1 with the authenticate token", len(got))
	}
	got, err := e.client.GetSession(ctx, info.ID)
	if err != nil || got.State != connector.StateActive {
		t.Fatalf("GetSession() = %v, %v; want an active session", got, err)
	}
	list, err := e.client.ListSessions(ctx)
	if err != nil || !slices.ContainsFunc(list, func(i connector.SessionInfo) bool { return i.ID == info.ID }) {
		t.Errorf("ListSessions() = %v, %v; want it to hold %s", list, err, info.ID)
	}

	ci, err := s.ConnectorInformation(ctx)
	if err != nil || !ci.GetConnected() || !ci.GetHealthy() {
		t.Errorf("ConnectorInformation() = %v, %v; want connected and healthy", ci, err)
	}
	updates := 0
	errStop := errors.New("enough")
	err = s.WatchConnectorInformation(ctx, func(ci *openobdv1.ConnectorInformation) error {
		if updates++; updates == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || updates != 3 {
		t.Errorf("WatchConnectorInformation() = %v after %d updates, want errStop after 3", err, updates)
	}

	ch := openEngine(t, s)
	resp, err := ch.Request(ctx, readVIN)
	if want := append([]byte{0x62, 0xF1, 0x90}, fake.DefaultVIN...); err != nil || string(resp) != string(want) {
		t.Fatalf("Request(22F190) = %q, %v; want %q", resp, err, want)
	}
	resp, err = ch.Request(ctx, []byte{0x10, 0x03})
	if err != nil || resp[0] != 0x50 {
		t.Fatalf("Request(1003) = % X, %v; want 50 03 ...", resp, err)
	}
	if err := ch.Send(ctx, []byte{0x3E, 0x80}); err != nil { // tester present, no answer
		t.Fatalf("Send(3E80) error = %v", err)
	}
	resp, err = ch.Request(ctx, []byte{0x22, 0xFF, 0xFF})
	if nre := (*connector.NegativeResponseError)(nil); !errors.As(err, &nre) || nre.NRC != uds.RequestOutOfRange || len(resp) != 3 {
		t.Errorf("Request(22FFFF) = % X, %v; want 7F 22 31", resp, err)
	}
	if n := ch.Strays(); n != 0 {
		t.Errorf("Strays() = %d, want 0", n)
	}

	err = s.Finish(ctx, connector.ServiceResult{Codes: []int32{int32(openobdv1.Result_RESULT_SUCCESS)}})
	if err != nil {
		t.Fatalf("Finish() error = %v", err)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("Done() not closed after Finish")
	}
	if !errors.Is(s.Err(), connector.ErrInterrupted) {
		t.Errorf("Err() after Finish = %v, want KindInterrupted", s.Err())
	}
	if _, err := ch.Request(ctx, readVIN); !errors.Is(err, connector.ErrChannelClosed) {
		t.Errorf("Request() after Finish = %v, want ErrChannelClosed", err)
	}
	got, err = e.client.GetSession(ctx, info.ID)
	if err != nil || got.State != connector.StateFinished {
		t.Errorf("GetSession() after Finish = %v, %v; want finished", got, err)
	}
	// The server ends the token stream as it finishes the session, often
	// before Finish returns: that is expected, not a broken stream.
	s.Close()
	if strings.Contains(e.logs.String(), "session token stream broken") {
		t.Errorf("Finish logged a broken token stream:\n%s", e.logs)
	}
}

func TestStartSessionVariants(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	byUUID, err := e.client.StartSessionOnTicket(ctx, ticketID)
	if err != nil {
		t.Fatalf("StartSessionOnTicket(UUID) error = %v", err)
	}
	onConnector, err := e.client.StartSessionOnConnector(ctx, connector2)
	if err != nil {
		t.Fatalf("StartSessionOnConnector() error = %v", err)
	}
	for _, id := range []string{byUUID.ID, onConnector.ID} {
		got, err := e.client.InterruptSession(ctx, id)
		if err != nil || got.State != connector.StateInterrupted {
			t.Errorf("InterruptSession(%s) = %v, %v; want interrupted", id, got, err)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	live, err := e.client.StartSessionOnTicket(ctx, ticketNumber)
	if err != nil {
		t.Fatal(err)
	}
	attached, err := e.client.StartSessionOnConnector(ctx, connector2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.client.Attach(ctx, attached)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	badClient := e.newClient(t, func(c *connector.Config) { c.ClientSecret = "wrong-secret-value" })
	unreachable := e.newClient(t, func(c *connector.Config) { c.Port = closedPort(t) })

	tests := []struct {
		name     string
		call     func() error
		want     connector.Kind
		sentinel error
		text     string
	}{
		{"invalid client", func() error {
			_, err := badClient.GetSession(ctx, live.ID)
			return err
		}, connector.KindTerminal, connector.ErrTerminal, "Invalid client"},
		{"unknown ticket", func() error {
			_, err := e.client.StartSessionOnTicket(ctx, "7961425")
			return err
		}, connector.KindTerminal, connector.ErrTerminal, "No ticket found with the ticket number"},
		{"resource in use", func() error {
			_, err := e.client.StartSessionOnTicket(ctx, ticketNumber)
			return err
		}, connector.KindInUse, connector.ErrInUse, "Resource already in use."},
		{"no free resources", func() error {
			e.srv.Faults().RefuseStarts(1)
			_, err := e.client.StartSessionOnConnector(ctx, "23568")
			return err
		}, connector.KindRetryable, connector.ErrRetryable, "no free resources"},
		{"server unreachable", func() error {
			_, err := unreachable.ListSessions(ctx)
			return err
		}, connector.KindRetryable, connector.ErrRetryable, ""},
		{"unknown session", func() error {
			_, err := e.client.GetSession(ctx, "00000000-0000-0000-0000-000000000000")
			return err
		}, connector.KindNotFound, connector.ErrNotFound, "No session found"},
		{"authenticate twice", func() error {
			_, err := e.client.Attach(ctx, attached)
			return err
		}, connector.KindTerminal, connector.ErrTerminal, "already authenticated"},
		{"call after interrupt", func() error {
			if _, err := e.client.InterruptSession(ctx, attached.ID); err != nil {
				return err
			}
			_, err := s.ConnectorInformation(ctx)
			return err
		}, connector.KindInterrupted, connector.ErrInterrupted, ""},
		{"interrupt an ended session", func() error {
			_, err := e.client.InterruptSession(ctx, attached.ID)
			return err
		}, connector.KindInterrupted, connector.ErrInterrupted, "session state is interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := connector.KindOf(err); got != tt.want {
				t.Fatalf("KindOf(%v) = %v, want %v", err, got, tt.want)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Op == "" {
				t.Errorf("error %v is not a *connector.Error with Op", err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), clientSecret) {
				t.Errorf("error %q contains the client secret", err)
			}
		})
	}
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t testing.TB) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	return port
}

func TestControllerTokenRefetchOnUnauthenticated(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	if _, err := e.client.ListSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Faults().ExpireControllerTokens(); n != 1 {
		t.Fatalf("ExpireControllerTokens() = %d, want 1", n)
	}
	if _, err := e.client.ListSessions(ctx); err != nil {
		t.Fatalf("ListSessions() after the token expired = %v, want success after one re-fetch", err)
	}
	calls := e.srv.Calls()
	if n := calls[openobdv1.SessionController_GetSessionControllerToken_FullMethodName]; n != 2 {
		t.Errorf("getSessionControllerToken calls = %d, want 2", n)
	}
	if n := calls[openobdv1.SessionController_GetSessionList_FullMethodName]; n != 3 {
		t.Errorf("getSessionList calls = %d, want 3 (one rejected)", n)
	}
}

func TestControllerTokenRejectedTwiceIsTerminal(t *testing.T) {
	// A fake whose clock jumps forward on every reading issues tokens that
	// are already expired when they are checked.
	var mu sync.Mutex
	now := time.Now()
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.ControllerTokenValidity = time.Second
		fo.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Hour)
			return now
		}
	})
	_, err := e.client.ListSessions(testContext(t))
	if connector.KindOf(err) != connector.KindTerminal || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("ListSessions() = %v, want KindTerminal after the token was rejected twice", err)
	}
	if n := e.srv.Calls()[openobdv1.SessionController_GetSessionControllerToken_FullMethodName]; n != 2 {
		t.Errorf("getSessionControllerToken calls = %d, want 2 (exactly one re-fetch)", n)
	}
}

func TestControllerTokenCachedUntilRefresh(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	e := newEnv(t, func(_ *fake.Options, c *connector.Config) {
		c.Now = clock
		c.TokenLifetime = 100 * time.Second
		c.TokenRefreshMargin = 30 * time.Second
	})
	ctx := testContext(t)
	fetches := func() int {
		return e.srv.Calls()[openobdv1.SessionController_GetSessionControllerToken_FullMethodName]
	}
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{
		{0, 1},
		{60 * time.Second, 1},  // 60 s: still fresh
		{9 * time.Second, 1},   // 69 s
		{time.Second, 2},       // 70 s: 30 s before the assumed expiry
		{69 * time.Second, 2},  // fresh again
		{100 * time.Second, 3}, // long past
	} {
		advance(step.advance)
		if _, err := e.client.ListSessions(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fetches(); got != step.want {
			t.Errorf("after %v more: getSessionControllerToken calls = %d, want %d", step.advance, got, step.want)
		}
	}
}

func TestConcurrentCallersShareOneTokenFetch(t *testing.T) {
	e := newEnv(t)
	e.srv.Faults().SetCallLatency(50 * time.Millisecond) // callers overlap the fetch
	ctx := testContext(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := e.client.ListSessions(ctx); err != nil {
				t.Errorf("ListSessions() error = %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.srv.Calls()[openobdv1.SessionController_GetSessionControllerToken_FullMethodName]; n != 1 {
		t.Errorf("getSessionControllerToken calls = %d, want 1", n)
	}
}

func TestTokenRotation(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.TokenRotation = 20 * time.Millisecond
	})
	ctx := testContext(t)
	var tokens tokenRecorder
	s, _ := e.attach(t, connector.OnToken(tokens.record))
	waitFor(t, "three rotated tokens", func() bool { return len(tokens.all()) >= 4 })
	all := tokens.all()
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Errorf("tokens repeat: %d tokens, want all distinct", len(all))
	}

	// Once every token issued so far is invalid, only the newest one (from
	// the next rotation) works: calls keep succeeding because they use it.
	e.srv.Faults().ExpireSessionTokens()
	expired := map[string]bool{}
	for _, tok := range e.srv.IssuedTokens() { // one may still be on its way
		expired[tok] = true
	}
	waitFor(t, "a token issued after the expiry", func() bool { return !expired[s.Token()] })
	if _, err := s.ConnectorInformation(ctx); err != nil {
		t.Fatalf("ConnectorInformation() with the newest token = %v", err)
	}
	if s.Err() != nil {
		t.Errorf("Err() = %v, want the session to live", s.Err())
	}
}

func TestTokenStreamReopensAfterDrop(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.TokenRotation = 20 * time.Millisecond
	})
	ctx := testContext(t)
	var tokens tokenRecorder
	s, info := e.attach(t, connector.OnToken(tokens.record))
	ch := openEngine(t, s)
	opens := func() int { return e.srv.Calls()[openobdv1.Session_OpenSessionTokenStream_FullMethodName] }
	waitFor(t, "the token stream", func() bool { return opens() == 1 && len(tokens.all()) >= 2 })
	// An answered request proves the fake serves the ISO-TP stream before
	// the drop (a stream it had not yet taken would outlive the drop).
	if _, err := ch.Request(ctx, readVIN); err != nil {
		t.Fatalf("Request() before the drop = %v", err)
	}

	if err := e.srv.Faults().DropStreams(info.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the token stream to reopen", func() bool { return opens() >= 2 })
	n := len(tokens.all())
	waitFor(t, "tokens on the reopened stream", func() bool { return len(tokens.all()) > n })
	if s.Err() != nil {
		t.Fatalf("Err() = %v after a dropped stream, want the session to live", s.Err())
	}
	if _, err := s.ConnectorInformation(ctx); err != nil {
		t.Errorf("ConnectorInformation() after the reopen = %v", err)
	}
	if !strings.Contains(e.logs.String(), "session token stream broken, reopening") {
		t.Error("the reopen was not logged")
	}

	// The dropped ISO-TP stream is not reopened by the channel: it reports
	// a retryable close, and a new channel works.
	_, err := ch.Request(ctx, readVIN)
	if !errors.Is(err, connector.ErrChannelClosed) || connector.KindOf(err) != connector.KindRetryable {
		t.Fatalf("Request() on a dropped channel = %v, want ErrChannelClosed of KindRetryable", err)
	}
	ch2 := openEngine(t, s)
	if _, err := ch2.Request(ctx, readVIN); err != nil {
		t.Errorf("Request() on a reopened channel = %v", err)
	}
}

func TestInterruptWhileRequestWaits(t *testing.T) {
	for _, code := range []codes.Code{codes.Canceled, codes.Unavailable} {
		t.Run(code.String(), func(t *testing.T) {
			// Unavailable is ambiguous: the client confirms with getSession.
			e := newEnv(t, func(fo *fake.Options, _ *connector.Config) { fo.InterruptCode = code })
			ctx := testContext(t)
			s, info := e.attach(t)
			ch := openEngine(t, s)
			if err := e.srv.Faults().SetECUFault("", engine.RequestID, fake.ECUFault{Silent: true}); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := ch.Request(ctx, readVIN, connector.WithResponseTimeout(time.Minute))
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			if _, err := e.client.InterruptSession(ctx, info.ID); err != nil {
				t.Fatal(err)
			}
			err := <-errc
			if d := time.Since(start); d > time.Second {
				t.Errorf("Request() returned %v after the interrupt, want promptly", d)
			}
			if connector.KindOf(err) != connector.KindInterrupted || !errors.Is(err, connector.ErrChannelClosed) {
				t.Fatalf("Request() = %v, want ErrChannelClosed of KindInterrupted", err)
			}
			select {
			case <-s.Done():
			case <-ctx.Done():
				t.Fatal("session Done() not closed after the interrupt")
			}
			if !errors.Is(s.Err(), connector.ErrInterrupted) {
				t.Errorf("session Err() = %v, want KindInterrupted", s.Err())
			}
			if _, err := s.OpenIsotp(ctx, engine); !errors.Is(err, connector.ErrInterrupted) {
				t.Errorf("OpenIsotp() after the interrupt = %v, want KindInterrupted", err)
			}
		})
	}
}

func TestRoutineResponsePending(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, c *connector.Config) {
		fo.RoutinePending = 3
		fo.RoutinePendingSpacing = 150 * time.Millisecond
		c.ResponseTimeout = 100 * time.Millisecond // shorter than one spacing
		c.P2Star = time.Second
	})
	ctx := testContext(t)
	s, _ := e.attach(t)
	ch := openEngine(t, s)
	erase := fake.RoutineErase
	startErase := []byte{0x31, 0x01, byte(erase >> 8), byte(erase)}

	resp, err := ch.Request(ctx, startErase)
	if want := []byte{0x71, 0x01, 0xFF, 0x00, 0x00}; err != nil || string(resp) != string(want) {
		t.Fatalf("Request(3101FF00) = % X, %v; want % X", resp, err, want)
	}
	if ch.Strays() != 0 {
		t.Errorf("Strays() = %d, want 0", ch.Strays())
	}

	// With P2* shorter than the spacing the wait ends after a 0x78.
	_, err = ch.Request(ctx, startErase, connector.WithP2Star(20*time.Millisecond))
	var te *connector.TimeoutError
	if !errors.As(err, &te) || !te.Pending || !errors.Is(err, connector.ErrTimeout) {
		t.Fatalf("Request() with a short P2* = %v, want a pending *TimeoutError", err)
	}
	if string(te.Request) != string(startErase) {
		t.Errorf("TimeoutError.Request = % X, want % X", te.Request, startErase)
	}
	// The request that stopped waiting closed the channel: no late answer
	// can be taken for a later request's. A new channel goes on (the fake
	// answers it after the routine).
	select {
	case <-ch.Done():
	default:
		t.Fatal("Done() not closed after a request stopped waiting")
	}
	if _, err := ch.Request(ctx, readVIN); !errors.Is(err, connector.ErrChannelClosed) || connector.KindOf(err) != connector.KindRetryable {
		t.Errorf("Request() after a timeout = %v, want ErrChannelClosed of KindRetryable", err)
	}
	ch2 := openEngine(t, s)
	if resp, err := ch2.Request(ctx, readVIN, connector.WithResponseTimeout(2*time.Second)); err != nil || resp[0] != 0x62 {
		t.Errorf("Request(22F190) on a new channel = % X, %v; want 62 ...", resp, err)
	}
	if ch2.Strays() != 0 {
		t.Errorf("Strays() of the new channel = %d, want 0", ch2.Strays())
	}
}

func TestBusyRepeatStorm(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	s, _ := e.attach(t)
	ch := openEngine(t, s)

	if err := e.srv.Faults().SetECUFault("", engine.RequestID, fake.ECUFault{BusyRepeat: 3}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := ch.Request(ctx, readVIN)
	if err != nil || resp[0] != 0x62 {
		t.Fatalf("Request() through 3 busy answers = % X, %v; want 62 ...", resp, err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("Request() took %v, want at least 3 retry intervals of 20ms", d)
	}

	// A storm longer than the caller's deadline: the request gives up with
	// the 0x21 answer before the deadline.
	if err := e.srv.Faults().SetECUFault("", engine.RequestID, fake.ECUFault{BusyRepeat: 1000}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = ch.Request(rctx, readVIN)
	if !errors.Is(err, &uds.NegativeResponseError{NRC: uds.BusyRepeatRequest}) {
		t.Fatalf("Request() in a busy storm = %v, want NRC 0x21", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Request() in a busy storm took %v, want it bounded by the 200ms deadline", d)
	}
}

func TestResume(t *testing.T) {
	e := newEnv(t)
	ctx := testContext(t)
	var tokens tokenRecorder
	first, info := e.attach(t, connector.OnToken(tokens.record))
	stored := tokens.last()
	// The token stream opens in the background: let it reach the server
	// before the restart, so that the resumed session's is the second.
	waitFor(t, "the token stream of the first session", func() bool {
		return e.srv.Calls()[openobdv1.Session_OpenSessionTokenStream_FullMethodName] >= 1
	})
	first.Close() // the process "restarts": nothing is finished or interrupted

	other := e.newClient(t, nil)
	s, err := other.Resume(ctx, info, stored)
	if err != nil {
		t.Fatalf("Resume() error = %v", err)
	}
	defer s.Close()
	if s.Token() != stored {
		t.Errorf("Token() = %q…, want the stored token", s.Token()[:4])
	}
	ch, err := s.OpenIsotp(ctx, engine) // the bus configuration survived
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.Request(ctx, readVIN); err != nil {
		t.Fatalf("Request() on a resumed session = %v", err)
	}
	calls := e.srv.Calls()
	if n := calls[openobdv1.Session_Authenticate_FullMethodName]; n != 1 {
		t.Errorf("authenticate calls = %d, want 1", n)
	}
	waitFor(t, "the token stream of the resumed session", func() bool {
		return e.srv.Calls()[openobdv1.Session_OpenSessionTokenStream_FullMethodName] >= 2 // attach and resume
	})

	if _, err := other.Resume(ctx, info, "not-a-token"); connector.KindOf(err) != connector.KindTerminal {
		t.Errorf("Resume(bad token) = %v, want KindTerminal", err)
	}
	if _, err := other.Resume(ctx, info, ""); connector.KindOf(err) != connector.KindTerminal {
		t.Errorf("Resume(no token) = %v, want KindTerminal", err)
	}
	if _, err := e.client.InterruptSession(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Resume(ctx, info, s.Token()); connector.KindOf(err) != connector.KindInterrupted {
		t.Errorf("Resume(interrupted session) = %v, want KindInterrupted", err)
	}
}

func TestExpiredSessionTokenEndsSession(t *testing.T) {
	e := newEnv(t) // tokens rotate every 2 minutes: none arrives in this test
	s, _ := e.attach(t)
	e.srv.Faults().ExpireSessionTokens()
	_, err := s.ConnectorInformation(testContext(t))
	if connector.KindOf(err) != connector.KindTerminal {
		t.Errorf("ConnectorInformation() with an expired token = %v, want KindTerminal", err)
	}
}

func TestContextCancellation(t *testing.T) {
	e := newEnv(t)
	s, info := e.attach(t)
	ch := openEngine(t, s)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	calls := map[string]func(ctx context.Context) error{
		"StartSessionOnTicket": func(ctx context.Context) error {
			_, err := e.client.StartSessionOnTicket(ctx, ticket2Number)
			return err
		},
		"GetSession": func(ctx context.Context) error { _, err := e.client.GetSession(ctx, info.ID); return err },
		"Attach":     func(ctx context.Context) error { _, err := e.client.Attach(ctx, info); return err },
		"Resume":     func(ctx context.Context) error { _, err := e.client.Resume(ctx, info, s.Token()); return err },
		"ConnectorInformation": func(ctx context.Context) error {
			_, err := s.ConnectorInformation(ctx)
			return err
		},
		"ConfigureBus": func(ctx context.Context) error { return s.ConfigureBus(ctx, obdCAN) },
		"WatchConnectorInformation": func(ctx context.Context) error {
			return s.WatchConnectorInformation(ctx, func(*openobdv1.ConnectorInformation) error { return nil })
		},
		"OpenIsotp": func(ctx context.Context) error { _, err := s.OpenIsotp(ctx, engine); return err },
		"Request":   func(ctx context.Context) error { _, err := ch.Request(ctx, readVIN); return err },
		"Send":      func(ctx context.Context) error { return ch.Send(ctx, []byte{0x3E, 0x80}) },
	}
	for name, call := range calls {
		t.Run(name+"/cancelled", func(t *testing.T) {
			if err := call(cancelled); !errors.Is(err, context.Canceled) {
				t.Errorf("%s(cancelled ctx) = %v, want context.Canceled", name, err)
			}
		})
	}

	// With every call hanging on the server, deadlines end them.
	e.srv.Faults().Hang(true)
	defer e.srv.Faults().Hang(false)
	for name, call := range calls {
		t.Run(name+"/deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := call(ctx)
			// Send and OpenIsotp do not wait for the server: the stream opens
			// without an answer.
			if !errors.Is(err, context.DeadlineExceeded) && name != "Send" && name != "OpenIsotp" {
				t.Errorf("%s(hanging server) = %v, want DeadlineExceeded", name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s took %v past a 50ms deadline", name, d)
			}
		})
	}
	if s.Err() != nil {
		t.Errorf("session Err() = %v, want it alive after cancelled calls", s.Err())
	}
}

func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.TokenRotation = 20 * time.Millisecond
	})
	ctx := testContext(t)
	var tokens tokenRecorder
	s, info := e.attach(t, connector.OnToken(tokens.record))
	waitFor(t, "rotated tokens", func() bool { return len(tokens.all()) >= 3 })
	ch := openEngine(t, s)
	if _, err := ch.Request(ctx, readVIN); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Faults().DropStreams(info.ID); err != nil {
		t.Fatal(err)
	}
	var errs []error
	_, err := ch.Request(ctx, readVIN)
	errs = append(errs, err)
	bad := e.newClient(t, func(c *connector.Config) { c.ClientSecret = "wrong-" + clientSecret })
	_, err = bad.ListSessions(ctx)
	errs = append(errs, err)
	_, err = e.client.Attach(ctx, info) // authenticate again: rejected
	errs = append(errs, err)
	if _, err := e.client.InterruptSession(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to end", func() bool { return s.Err() != nil })
	errs = append(errs, s.Err())

	secrets := append([]string{clientSecret, info.AuthenticationToken}, tokens.all()...)
	texts := []string{
		e.logs.String(),
		fmt.Sprint(info), fmt.Sprintf("%v %+v %#v %s", info, info, info, info),
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		texts = append(texts, err.Error())
	}
	for _, text := range texts {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("a secret (%.4s…) appears in %q", secret, text)
			}
		}
	}
	if !strings.Contains(e.logs.String(), "session attached") {
		t.Error("logs are missing: the check above proves nothing")
	}
}

// attachWithTokens starts and attaches a session on ticket and returns
// once n tokens have come (authenticate's, then the token stream's): the
// connection that carries the stream is then up on both sides.
func attachWithTokens(t *testing.T, e *env, ctx context.Context, ticket string, n int) (*connector.Session, connector.SessionInfo) {
	t.Helper()
	info, err := e.client.StartSessionOnTicket(ctx, ticket)
	if err != nil {
		t.Fatal(err)
	}
	tokens := make(chan struct{}, 1)
	s, err := e.client.Attach(ctx, info, connector.OnToken(func(string, time.Time) {
		select {
		case tokens <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for range n {
		select {
		case <-tokens:
		case <-ctx.Done():
			t.Fatal("no token from the token stream")
		}
	}
	return s, info
}

// TestIdleSessionHasNoGoroutine: once the endpoint's connections are up,
// attaching another session and receiving its tokens starts no goroutine:
// its token stream is read by the connection's reader.
func TestIdleSessionHasNoGoroutine(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.TokenRotation = 20 * time.Millisecond
	})
	ctx := testContext(t)
	attachWithTokens(t, e, ctx, ticketNumber, 3) // brings the endpoint's connections up
	before := goleak.IgnoreCurrent()
	attachWithTokens(t, e, ctx, ticket2Number, 3)
	// The in-process fake serves each open stream on a goroutine of its own:
	// that is the server's side, not the session's.
	if err := goleak.Find(before, goleak.IgnoreAnyFunction("google.golang.org/grpc.(*Server).handleStream")); err != nil {
		t.Errorf("an idle session has goroutines of its own: %v", err)
	}
}

func TestNoGoroutineLeftAfterSessionClose(t *testing.T) {
	e := newEnv(t, func(fo *fake.Options, _ *connector.Config) {
		fo.TokenRotation = 20 * time.Millisecond
	})
	ctx := testContext(t)
	s, info := attachWithTokens(t, e, ctx, ticketNumber, 2)
	// Connection goroutines of client and fake, the token streams' one
	// included, exist from here on; an idle session has none of its own.
	before := goleak.IgnoreCurrent()
	if err := s.ConfigureBus(ctx, obdCAN); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ch, err := s.OpenIsotp(ctx, engine)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Request(ctx, readVIN); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	go s.WatchConnectorInformation(wctx, func(*openobdv1.ConnectorInformation) error { return nil })
	defer cancel()
	if err := e.srv.Faults().DropStreams(info.ID); err != nil { // exercise the reopen loop
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	s.Close() // closes the channels left open, too
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after Session.Close: %v", err)
	}
}

func TestClientCloseClosesSessions(t *testing.T) {
	e := newEnv(t)
	s, _ := e.attach(t)
	ch := openEngine(t, s)
	if err := e.client.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	if !errors.Is(s.Err(), connector.ErrClosed) {
		t.Errorf("session Err() after Client.Close = %v, want ErrClosed", s.Err())
	}
	if _, err := ch.Request(testContext(t), readVIN); !errors.Is(err, connector.ErrChannelClosed) {
		t.Errorf("Request() after Client.Close = %v, want ErrChannelClosed", err)
	}
	if _, err := e.client.ListSessions(testContext(t)); err == nil {
		t.Error("ListSessions() after Close = nil error")
	}
}

func TestBufconnDialer(t *testing.T) {
	// The fake behind an in-memory listener; the endpoint is a placeholder
	// address that only the injected dialer understands. Port 443 would mean
	// TLS: Insecure turns it off.
	const endpoint = "127.0.0.1:443"
	srv, err := fake.New(fake.Options{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Directory:    fake.NewStaticDirectory(fake.Target{TicketNumber: ticketNumber, ConnectorID: connectorID}),
		Endpoint:     endpoint,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	srv.Register(gs)
	go gs.Serve(lis)
	defer func() {
		srv.Close()
		gs.Stop()
	}()

	c, err := connector.New(connector.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Host:         "127.0.0.1",
		Insecure:     true,
		Logger:       slog.New(slog.DiscardHandler),
		Dialer: func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testContext(t)
	info, err := c.StartSessionOnTicket(ctx, ticketNumber)
	if err != nil {
		t.Fatalf("StartSessionOnTicket() over bufconn = %v", err)
	}
	s, err := c.Attach(ctx, info)
	if err != nil {
		t.Fatalf("Attach() over bufconn = %v", err)
	}
	if err := s.ConfigureBus(ctx, obdCAN); err != nil {
		t.Fatal(err)
	}
	ch, err := s.OpenIsotp(ctx, engine)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Request(ctx, readVIN); err != nil {
		t.Fatalf("Request() over bufconn = %v", err)
	}
	if err := s.Finish(ctx, connector.ServiceResult{Codes: []int32{int32(openobdv1.Result_RESULT_SUCCESS)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

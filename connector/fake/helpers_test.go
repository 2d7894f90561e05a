package fake_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	clientID     = "test-client"
	clientSecret = "test-secret"
	// waitTimeout bounds every wait for something that should happen.
	waitTimeout = 5 * time.Second
	// quiet is how long a test waits to conclude that nothing arrives.
	quiet = 150 * time.Millisecond
)

var (
	targetA = fake.Target{
		TicketID:      "5f0c5b7e-3c4e-4d7f-9d0e-1a2b3c4d5e6f",
		TicketNumber:  "7848095",
		ConnectorID:   "a1b2c3d4-0000-4000-8000-000000000001",
		ConnectorName: "1001",
		VIN:           "WVWZZZAUZKW123456",
	}
	targetB = fake.Target{
		TicketID:      "6a1d6c8f-4d5f-4e80-8e1f-2b3c4d5e6f70",
		TicketNumber:  "7848096",
		ConnectorID:   "a1b2c3d4-0000-4000-8000-000000000002",
		ConnectorName: "1002",
		VIN:           "WF0XXXGCDX7654321",
	}
	canBus = &openobdv1.BusConfiguration{
		BusName: "bus-6-14",
		BusDefinition: &openobdv1.BusConfiguration_CanBus{CanBus: &openobdv1.CanBus{
			PinPlus:     6,
			PinMin:      14,
			CanProtocol: openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP,
			CanBitRate:  openobdv1.CanBitRate_CAN_BIT_RATE_500,
		}},
	}
	engine = &openobdv1.IsotpChannel{BusName: "bus-6-14", RequestId: 0x7E0, ResponseId: 0x7E8}
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 4, 16, 13, 36, 0, 651e6, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one fake with a plain generated gRPC client.
type env struct {
	t     *testing.T
	srv   *fake.Server
	addr  string
	clock *clock
	dir   *fake.StaticDirectory

	ctrl openobdv1.SessionControllerClient
	sess openobdv1.SessionClient
	cfg  openobdv1.ConfigClient
	can  openobdv1.CanClient
	mon  openobdv1.ConnectionMonitorClient
	conn *grpc.ClientConn
}

func newEnv(t *testing.T, modify ...func(*fake.Options)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), dir: fake.NewStaticDirectory(targetA, targetB)}
	opts := fake.Options{
		ClientID:              clientID,
		ClientSecret:          clientSecret,
		Directory:             e.dir,
		Now:                   e.clock.Now,
		RoutinePendingSpacing: 5 * time.Millisecond,
	}
	for _, m := range modify {
		m(&opts)
	}
	e.srv, e.addr = fake.Listen(t, opts)
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	e.conn = conn
	e.ctrl = openobdv1.NewSessionControllerClient(conn)
	e.sess = openobdv1.NewSessionClient(conn)
	e.cfg = openobdv1.NewConfigClient(conn)
	e.can = openobdv1.NewCanClient(conn)
	e.mon = openobdv1.NewConnectionMonitorClient(conn)
	return e
}

// ctx returns a bounded context carrying the bearer token (if any).
func (e *env) ctx(token string) context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), waitTimeout)
	e.t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return ctx
}

func (e *env) controllerToken() string {
	e.t.Helper()
	tok, err := e.ctrl.GetSessionControllerToken(e.ctx(""), &openobdv1.Authenticate{ClientId: clientID, ClientSecret: clientSecret})
	if err != nil {
		e.t.Fatalf("getSessionControllerToken: %v", err)
	}
	return tok.GetValue()
}

func (e *env) start(ticket string) *openobdv1.SessionInfo {
	e.t.Helper()
	info, err := e.ctrl.StartSessionOnTicket(e.ctx(e.controllerToken()), &openobdv1.TicketId{Value: ticket})
	if err != nil {
		e.t.Fatalf("startSessionOnTicket(%q): %v", ticket, err)
	}
	return info
}

// activate starts and authenticates a session and configures the CAN bus.
func (e *env) activate(ticket string) (*openobdv1.SessionInfo, string) {
	e.t.Helper()
	info := e.start(ticket)
	tok, err := e.sess.Authenticate(e.ctx(info.GetAuthenticationToken()), &openobdv1.EmptyMessage{})
	if err != nil {
		e.t.Fatalf("authenticate: %v", err)
	}
	if err := e.configure(tok.GetValue(), canBus); err != nil {
		e.t.Fatalf("configureBus: %v", err)
	}
	return info, tok.GetValue()
}

func (e *env) configure(token string, buses ...*openobdv1.BusConfiguration) error {
	stream, err := e.cfg.ConfigureBus(e.ctx(token))
	if err != nil {
		return err
	}
	for _, b := range buses {
		if err := stream.Send(b); err != nil {
			break // the error comes with CloseAndRecv
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// stream reads a server stream in the background so tests can wait with a
// timeout.
type stream[T any] struct {
	t    *testing.T
	msgs chan *T
	errc chan error
}

func readStream[T any](t *testing.T, recv func() (*T, error)) *stream[T] {
	s := &stream[T]{t: t, msgs: make(chan *T, 64), errc: make(chan error, 1)}
	go func() {
		for {
			m, err := recv()
			if err != nil {
				s.errc <- err
				return
			}
			select {
			case s.msgs <- m:
			case <-t.Context().Done():
				return
			}
		}
	}()
	return s
}

func (s *stream[T]) next() *T {
	s.t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.errc:
		s.t.Fatalf("stream ended: %v", err)
	case <-time.After(waitTimeout):
		s.t.Fatalf("no message within %v", waitTimeout)
	}
	return nil
}

func (s *stream[T]) nothing() {
	s.t.Helper()
	select {
	case m := <-s.msgs:
		s.t.Fatalf("unexpected message %v", m)
	case err := <-s.errc:
		s.t.Fatalf("stream ended: %v", err)
	case <-time.After(quiet):
	}
}

// end waits for the stream to end, skipping messages, and returns its error.
func (s *stream[T]) end() error {
	s.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case <-s.msgs:
		case err := <-s.errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-deadline:
			s.t.Fatalf("stream did not end within %v", waitTimeout)
			return nil
		}
	}
}

// isotp opens an ISO-TP stream on ch and sends the channel-opening message.
type isotp struct {
	*stream[openobdv1.IsotpMessage]
	send func(*openobdv1.IsotpMessage) error
	ch   *openobdv1.IsotpChannel
}

func (e *env) openIsotp(token string, ch *openobdv1.IsotpChannel) *isotp {
	e.t.Helper()
	s, err := e.can.OpenIsotpStream(e.ctx(token))
	if err != nil {
		e.t.Fatalf("openIsotpStream: %v", err)
	}
	c := &isotp{stream: readStream(e.t, s.Recv), send: s.Send, ch: ch}
	c.request("")
	return c
}

func (c *isotp) request(payload string) {
	c.t.Helper()
	if err := c.send(&openobdv1.IsotpMessage{Channel: c.ch, Payload: payload}); err != nil {
		c.t.Fatalf("send %q: %v", payload, err)
	}
}

// ready makes sure the server handles the stream: a tester present round
// trip (the channel must reach an ECU).
func (c *isotp) ready() {
	c.t.Helper()
	c.request("3E00")
	c.expect("7E00")
}

func (c *isotp) expect(want string) {
	c.t.Helper()
	got := c.next()
	if got.GetPayload() != want {
		c.t.Fatalf("payload = %s, want %s", got.GetPayload(), want)
	}
}

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), code, msg)
	}
}

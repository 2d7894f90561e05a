package connector_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
)

const (
	defaultTestTimeout = 20 * time.Second

	clientID     = "partner-client"
	clientSecret = "partner-secret-c0ffee"

	ticketNumber  = "7848095"
	ticketID      = "2f500382-0f8e-4298-83ee-e205a6a419df"
	connectorID   = "c571e33b-6b12-455a-8388-0c025295564a"
	ticket2Number = "7848096"
	connector2ID  = "d682f44c-7c23-566b-9499-1d1363a6675b"
	connector2    = "23569"
)

// engine is the fake's engine ECU.
var engine = connector.Channel{Bus: "bus0", RequestID: 0x7E0, ResponseID: 0x7E8}

// obdCAN is the usual OBD CAN bus: 500 kbit/s on pins 6 and 14, ISO-TP.
var obdCAN = connector.Bus{Name: "bus0", CAN: &connector.CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}

// env is a fake openOBD served on loopback and a client for it.
type env struct {
	srv    *fake.Server
	client *connector.Client
	cfg    connector.Config // the client's configuration, for more clients
	logs   *syncBuffer
}

type envOption func(*fake.Options, *connector.Config)

// plaintext serves the fake without TLS and turns the client's TLS off.
func plaintext(_ *fake.Options, c *connector.Config) { c.Insecure = true }

// newEnv serves a fake openOBD on a loopback port, over TLS with a
// generated certificate unless the client is Insecure, and returns a
// client for it; both are closed at the end of the test.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	fo := fake.Options{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Directory: fake.NewStaticDirectory(
			fake.Target{TicketID: ticketID, TicketNumber: ticketNumber, ConnectorID: connectorID, ConnectorName: "23568"},
			fake.Target{TicketNumber: ticket2Number, ConnectorID: connector2ID, ConnectorName: connector2},
		),
		InfoPeriod: 20 * time.Millisecond,
	}
	logs := &syncBuffer{}
	// loadedP2 is the tests' response timeout: an answer from the
	// in-process fake can take longer than the default P2 (2 s) on a
	// machine loaded by other work. Tests of timeouts set their own.
	const loadedP2 = 30 * time.Second
	cfg := connector.Config{
		ClientID:          clientID,
		ClientSecret:      clientSecret,
		CallTimeout:       5 * time.Second,
		ResponseTimeout:   loadedP2,
		ReconnectInitial:  10 * time.Millisecond,
		ReconnectMax:      100 * time.Millisecond,
		BusyRetryInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&fo, &cfg)
	}
	var serverOpts []grpc.ServerOption
	if !cfg.Insecure {
		cert, err := fake.NewCertificate("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(cert.ServerConfig())))
		cfg.RootCAs = cert.RootCAs()
	}
	srv, lis := serveFake(t, fo, serverOpts...)
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatalf("connector.New() error = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{srv: srv, client: c, cfg: cfg, logs: logs}
}

// serveFake serves a fake openOBD on a loopback port until the end of t.
func serveFake(t testing.TB, fo fake.Options, serverOpts ...grpc.ServerOption) (*fake.Server, net.Listener) {
	t.Helper()
	srv, err := fake.New(fo)
	if err != nil {
		t.Fatalf("fake.New() error = %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, lis, serverOpts...); err != nil {
			t.Errorf("fake Serve() error = %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return srv, lis
}

// testContext returns a context bounded by the default test timeout.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// attach starts a session on the first ticket, attaches to it and
// configures the OBD CAN bus. The session is closed at the end of t.
func (e *env) attach(t testing.TB, opts ...connector.SessionOption) (*connector.Session, connector.SessionInfo) {
	t.Helper()
	ctx := testContext(t)
	info, err := e.client.StartSessionOnTicket(ctx, ticketNumber)
	if err != nil {
		t.Fatalf("StartSessionOnTicket() error = %v", err)
	}
	s, err := e.client.Attach(ctx, info, opts...)
	if err != nil {
		t.Fatalf("Attach() error = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.ConfigureBus(ctx, obdCAN); err != nil {
		t.Fatalf("ConfigureBus() error = %v", err)
	}
	return s, info
}

// openEngine opens the ISO-TP channel of the engine ECU.
func openEngine(t testing.TB, s *connector.Session) *connector.IsotpChannel {
	t.Helper()
	ch, err := s.OpenIsotp(testContext(t), engine)
	if err != nil {
		t.Fatalf("OpenIsotp() error = %v", err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

// newClient returns another client for the same fake, closed at the end of t.
func (e *env) newClient(t testing.TB, modify func(*connector.Config)) *connector.Client {
	t.Helper()
	cfg := e.cfg
	if modify != nil {
		modify(&cfg)
	}
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatalf("connector.New() error = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tokenRecorder collects the tokens given to connector.OnToken.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) record(token string, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens = append(r.tokens, token)
}

func (r *tokenRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

func (r *tokenRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tokens) == 0 {
		return ""
	}
	return r.tokens[len(r.tokens)-1]
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

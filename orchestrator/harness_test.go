package orchestrator_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

const testTimeout = 90 * time.Second

// storeLeaseTTL is each replica's store lease in tests: long enough that
// keep-alives survive a machine loaded by other processes (a 5 s lease was
// lost under load, and a test that meant nothing of the kind failed over).
const storeLeaseTTL = 20 * time.Second

// failoverTTL is the store lease of a replica that a test crashes or whose
// lease it lets lapse: short, so that its sessions are adopted soon.
const failoverTTL = 5 * time.Second

// world is a fake Jifeline with an embedded etcd; replicas run against it.
type world struct {
	t       testing.TB
	jf      *fakejifeline.Env
	etcd    *store.Embedded
	etcdDir string
	log     *testLog
	// cluster, when set, is the store instead of etcd (cluster_test.go).
	cluster *store.EmbeddedCluster
}

// testLog keeps the replicas' logs of one test and prints them if the test
// fails, so a failure on a loaded machine explains itself.
// OBDORCH_TEST_LOG=1 also prints them as they are written.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logger is a replica's logger (the core names the replica in each line):
// everything is kept for the failure report.
func (l *testLog) logger() *slog.Logger {
	h := slog.Handler(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if os.Getenv("OBDORCH_TEST_LOG") != "" {
		h = slog.NewMultiHandler(h, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(h)
}

// report prints the kept logs when the test failed.
func (l *testLog) report(t testing.TB) {
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("replica logs:\n%s", l.buf.String())
}

// stopEtcd stops the embedded etcd server, as an outage; startEtcd starts
// it again on the same data and socket.
func (w *world) stopEtcd() { _ = w.etcd.Close() }

func (w *world) startEtcd() {
	w.t.Helper()
	emb, err := store.StartEmbedded(w.t.Context(), store.EmbeddedConfig{Dir: w.etcdDir, UnsafeNoFsync: true})
	if err != nil {
		w.t.Fatalf("StartEmbedded again: %v", err)
	}
	w.etcd = emb
}

type worldOptions struct {
	tickets int
	openobd fake.Options
}

func newWorld(t testing.TB, o worldOptions) *world {
	t.Helper()
	w := newFakeWorld(t, o)
	w.etcdDir = t.TempDir()
	emb, err := store.StartEmbedded(t.Context(), store.EmbeddedConfig{Dir: w.etcdDir, UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	w.etcd = emb
	t.Cleanup(func() { _ = w.etcd.Close() })
	return w
}

// newFakeWorld is a world with the fake Jifeline and the test log, and no
// store yet.
func newFakeWorld(t testing.TB, o worldOptions) *world {
	t.Helper()
	jf, err := fakejifeline.Start(context.WithoutCancel(t.Context()), fakejifeline.Options{
		Tickets: o.tickets, Seed: 7, OpenOBD: o.openobd, TLS: true,
	})
	if err != nil {
		t.Fatalf("fakejifeline.Start: %v", err)
	}
	log := &testLog{}
	t.Cleanup(func() { log.report(t) }) // runs last: the replicas have stopped
	t.Cleanup(func() { _ = jf.Close() })
	return &world{t: t, jf: jf, log: log}
}

// replica is one orchestrator process: store session, clients, core and
// control plane on bufconn.
type replica struct {
	w      *world
	name   string
	store  *store.Store
	core   *orchestrator.Orchestrator
	client orchestratorv1.OrchestratorServiceClient
	oc     *connector.Client
	pc     *partner.Client

	cancel context.CancelFunc
	done   chan struct{}
	srv    *controlplane.Server
	lis    *bufconn.Listener
	conn   *grpc.ClientConn
	once   sync.Once
	fwd    *controlplane.Forwarder
	// addr is the replica's TCP control-plane address, when it has one.
	addr string
}

type replicaOptions struct {
	cfg orchestrator.Config
	// client configures the openOBD client beyond the fake's address and
	// credentials (P2, P2*).
	client  connector.Config
	svcOpts controlplane.Options
	// replicaToken makes the replica one of a cluster: it also serves its
	// control plane on a loopback TCP port, registers that address in the
	// store and forwards calls to the other replicas with this token.
	replicaToken string
	// tokens turn authentication on.
	tokens *controlplane.Tokens
	// storeLeaseTTL replaces the default storeLeaseTTL.
	storeLeaseTTL time.Duration
}

func (w *world) startReplica(name string, o replicaOptions) *replica {
	t := w.t
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	leaseTTL := storeLeaseTTL
	if o.storeLeaseTTL > 0 {
		leaseTTL = o.storeLeaseTTL
	}
	st, err := store.Open(ctx, store.Config{Endpoints: w.endpoints(), Replica: name, LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	pc, err := partner.NewClient(partner.Config{
		BaseURL: w.jf.PartnerURL, ClientID: w.jf.ClientID, ClientSecret: w.jf.ClientSecret, AllowTicketWrite: true,
		Logger: quiet, RetryInitialInterval: 10 * time.Millisecond, RetryMaxInterval: 50 * time.Millisecond,
		MaxRetryElapsed: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("partner.NewClient: %v", err)
	}
	host, port := splitHostPort(t, w.jf.OpenOBDAddr)
	occ := o.client
	occ.ClientID, occ.ClientSecret, occ.Host, occ.Port, occ.RootCAs = w.jf.ClientID, w.jf.ClientSecret, host, port, w.jf.Certificate.RootCAs()
	occ.ReconnectInitial, occ.ReconnectMax, occ.Logger = 20*time.Millisecond, 200*time.Millisecond, quiet
	if occ.ResponseTimeout == 0 {
		// An answer from the in-process fake can take longer than the
		// default P2 (2 s) on a loaded machine; tests of timeouts set
		// their own.
		occ.ResponseTimeout = 30 * time.Second
	}
	oc, err := connector.New(occ)
	if err != nil {
		t.Fatalf("connector.New: %v", err)
	}
	cfg := o.cfg
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 200 * time.Millisecond
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = 20 * time.Millisecond
		cfg.RetryMax = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = w.log.logger()
	}
	core, err := orchestrator.New(cfg, st, pc, oc)
	if err != nil {
		t.Fatalf("orchestrator.New: %v", err)
	}
	svcOpts := o.svcOpts
	var srvOpts controlplane.ServerOptions
	if o.tokens != nil {
		unary, stream := controlplane.AuthInterceptors(o.tokens)
		srvOpts.Unary, srvOpts.Stream = append(srvOpts.Unary, unary), append(srvOpts.Stream, stream)
	}
	var fwd *controlplane.Forwarder
	if o.replicaToken != "" {
		if fwd, err = controlplane.NewForwarder(controlplane.ForwardOptions{Replica: name, Token: o.replicaToken, Registry: st, Logger: cfg.Logger}); err != nil {
			t.Fatalf("NewForwarder: %v", err)
		}
		svcOpts.Forwarder = fwd
		unary, stream := fwd.ForwardInterceptors()
		srvOpts.Unary, srvOpts.Stream = append(srvOpts.Unary, unary), append(srvOpts.Stream, stream)
	}
	svc := controlplane.NewService(core, svcOpts)
	srv := controlplane.NewServer(svc, srvOpts)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	cctx, cancel := context.WithCancel(ctx)
	r := &replica{
		w: w, name: name, store: st, core: core, oc: oc, pc: pc,
		cancel: cancel, done: make(chan struct{}), srv: srv, lis: lis, fwd: fwd,
	}
	if fwd != nil {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		go func() { _ = srv.Serve(tcp) }()
		r.addr = tcp.Addr().String()
		if err := st.Register(ctx, r.addr); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	r.conn = r.dial()
	r.client = orchestratorv1.NewOrchestratorServiceClient(r.conn)
	go func() {
		defer close(r.done)
		_ = core.Start(cctx)
	}()
	t.Cleanup(r.stop)
	return r
}

// dial opens a new client connection to the replica's control plane.
func (r *replica) dial(opts ...grpc.DialOption) *grpc.ClientConn {
	r.w.t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return r.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		r.w.t.Fatalf("grpc.NewClient: %v", err)
	}
	r.w.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

var quiet = slog.New(slog.DiscardHandler)

// stop shuts the replica down cleanly (revoking its store lease).
func (r *replica) stop() { r.shutdown(true) }

// crash stops the replica without releasing anything it holds in the
// store, as a kill -9 would: its lease is left to expire.
func (r *replica) crash() { r.shutdown(false) }

func (r *replica) shutdown(clean bool) {
	r.once.Do(func() {
		r.srv.Stop()
		if r.fwd != nil {
			_ = r.fwd.Close()
		}
		_ = r.conn.Close()
		r.cancel()
		<-r.done
		if clean {
			_ = r.store.Close()
		} else {
			_ = r.store.Detach()
		}
		_ = r.oc.Close()
		r.pc.CloseIdleConnections()
	})
}

func splitHostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitSessions polls ListSessions until n sessions are in state.
func (r *replica) waitSessions(ctx context.Context, t testing.TB, state orchestratorv1.SessionState, n int) []*orchestratorv1.Session {
	t.Helper()
	for {
		resp, err := r.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{States: []orchestratorv1.SessionState{state}, PageSize: 1000, View: orchestratorv1.SessionView_SESSION_VIEW_FULL})
		if err == nil && len(resp.GetSessions()) >= n {
			return resp.GetSessions()
		}
		select {
		case <-ctx.Done():
			got := 0
			if resp != nil {
				got = len(resp.GetSessions())
			}
			t.Fatalf("waiting for %d sessions in %s: have %d (last error %v); sessions by state: %v", n, state, got, err, r.census())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// census counts the replica's sessions by state, for failure messages.
func (r *replica) census() map[string]int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.w.t.Context()), 5*time.Second)
	defer cancel()
	out := map[string]int{}
	resp, err := r.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{PageSize: 1000})
	if err != nil {
		out["error: "+err.Error()] = 1
		return out
	}
	for _, s := range resp.GetSessions() {
		out[s.GetState().String()+" "+s.GetReason()]++
	}
	return out
}

// waitState polls GetSession until the session is in state.
func (r *replica) waitState(ctx context.Context, t testing.TB, id string, state orchestratorv1.SessionState) *orchestratorv1.Session {
	t.Helper()
	var last *orchestratorv1.Session
	for {
		resp, err := r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: id})
		if err == nil {
			last = resp.GetSession()
			if last.GetState() == state {
				return last
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("session %s: waiting for %s, last seen %s (%s)", id, state, last.GetState(), last.GetReason())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// liveOpenOBD counts live fake openOBD sessions for a ticket.
func (w *world) liveOpenOBD(ticketID string) int {
	n := 0
	for _, s := range w.jf.OpenOBD.Sessions() {
		if s.TicketID == ticketID && s.State.Live() {
			n++
		}
	}
	return n
}

// waitUntil polls cond until it holds or the test's deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Package orchestratortest runs a whole orchestrator in the test's process:
// the fake Jifeline (Partner API and openOBD with simulated vehicles), an
// embedded etcd, the core and the control plane on a loopback port. Runners
// and tools test against it as they would against `orchestrator --demo`.
//
// It imports the whole orchestrator (etcd, OpenTelemetry...). A runner that
// wants to keep its module graph small imports it from a separate test
// module, never from the runner's own packages.
package orchestratortest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// Options configures Start. Zero fields take the defaults.
type Options struct {
	// Tickets is the number of demo tickets, each with a connector and a
	// vehicle; default 3, as in demo mode.
	Tickets int
	// Core configures the orchestrator core; Now is replaced by Env.Clock.
	Core orchestrator.Config
	// OpenOBD configures the fake openOBD server (faults, timing).
	OpenOBD fake.Options
	// Client configures the orchestrator's openOBD client, such as the UDS
	// timeouts (ResponseTimeout is P2, P2Star is P2*); the fake's address
	// and credentials are filled in. ResponseTimeout defaults to 30 s here
	// (the connector's default is 2 s), so that tests on a machine loaded by
	// other work do not time out waiting for the in-process fake.
	Client connector.Config
	// Logger receives the orchestrator's logs; default discards them.
	Logger *slog.Logger
}

// Env is a running orchestrator with its fakes.
type Env struct {
	// Addr is the control plane's host:port (plaintext, no authentication).
	Addr string
	// Jifeline is the fake Jifeline: OpenOBD.Faults steers faults and
	// OpenOBD.Vehicle reaches a connector's simulated vehicle.
	Jifeline *fakejifeline.Env
	// Core is the orchestrator core.
	Core *orchestrator.Orchestrator
	// Clock is the core's clock; Advance moves it forward (lease expiry).
	Clock *Clock

	closers []func()
}

// Clock is the wall clock plus an offset that tests move forward.
type Clock struct{ offset atomic.Int64 }

// Now returns the wall-clock time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Start builds and starts the orchestrator for tb and stops it, in
// cmd/orchestrator's order, when the test ends.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	e, err := New(context.WithoutCancel(tb.Context()), opts)
	if err != nil {
		tb.Fatalf("orchestratortest: %v", err)
	}
	tb.Cleanup(e.Close)
	return e
}

// New builds and starts the orchestrator; Close stops it. Start is the
// usual way in tests; New serves examples and benchmarks' setup.
func New(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Tickets == 0 {
		opts.Tickets = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Env{Clock: &Clock{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	jf, err := fakejifeline.Start(ctx, fakejifeline.Options{Tickets: opts.Tickets, Seed: 1, OpenOBD: opts.OpenOBD, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("fake Jifeline: %w", err)
	}
	e.Jifeline = jf
	e.onClose(func() { _ = jf.Close() })
	dir, err := os.MkdirTemp("", "orchestratortest-")
	if err != nil {
		return nil, err
	}
	e.onClose(func() { _ = os.RemoveAll(dir) })
	emb, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: dir, UnsafeNoFsync: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	e.onClose(func() { _ = emb.Close() })
	st, err := store.Open(ctx, store.Config{Endpoints: emb.Endpoints(), Replica: "test", Logger: log})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	e.onClose(func() { _ = st.Close() })
	pc, err := partner.NewClient(partner.Config{
		BaseURL: jf.PartnerURL, ClientID: jf.ClientID, ClientSecret: jf.ClientSecret, AllowTicketWrite: true, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("partner API client: %w", err)
	}
	e.onClose(pc.CloseIdleConnections)
	host, portStr, err := net.SplitHostPort(jf.OpenOBDAddr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("openOBD port: %w", err)
	}
	occ := opts.Client
	occ.ClientID, occ.ClientSecret, occ.Host, occ.Port, occ.Insecure = jf.ClientID, jf.ClientSecret, host, port, true
	if occ.Logger == nil {
		occ.Logger = log
	}
	if occ.ResponseTimeout == 0 {
		occ.ResponseTimeout = 30 * time.Second
	}
	oc, err := connector.New(occ)
	if err != nil {
		return nil, fmt.Errorf("openOBD client: %w", err)
	}
	e.onClose(func() { _ = oc.Close() })

	cfg := opts.Core
	cfg.Now = e.Clock.Now
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 200 * time.Millisecond
	}
	var (
		srv       *controlplane.Server
		mu        sync.Mutex
		ready     = make(chan struct{})
		readyOnce sync.Once
	)
	userHealth := cfg.OnHealth
	cfg.OnHealth = func(healthy bool, reason string) {
		mu.Lock()
		if srv != nil {
			srv.SetServing(healthy)
		}
		mu.Unlock()
		if healthy {
			readyOnce.Do(func() { close(ready) })
		}
		if userHealth != nil {
			userHealth(healthy, reason)
		}
	}
	core, err := orchestrator.New(cfg, st, pc, oc)
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	svc := controlplane.NewService(core, controlplane.Options{Logger: log})
	mu.Lock()
	srv = controlplane.NewServer(svc, controlplane.ServerOptions{Logger: log})
	mu.Unlock()
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	coreCtx, stopCore := context.WithCancel(ctx)
	coreDone := make(chan struct{})
	go func() {
		defer close(coreDone)
		_ = core.Start(coreCtx)
	}()
	e.onClose(func() {
		stopCore()
		<-coreDone
	})
	// Serve once the core has started and passed its first intake: calls
	// that reach the core before Start has run are not safe.
	select {
	case <-ready:
	case <-coreDone:
		_ = lis.Close()
		return nil, errors.New("core stopped before it became healthy")
	case <-ctx.Done():
		_ = lis.Close()
		return nil, ctx.Err()
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	e.onClose(func() {
		svc.Drain()
		srv.Stop()
		<-served
	})
	e.Addr, e.Core = lis.Addr().String(), core
	return e, nil
}

func (e *Env) onClose(f func()) { e.closers = append(e.closers, f) }

// Close stops everything New started, in reverse order, and waits for it.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/obdorch/obdorch/connector"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/orchestrator/telemetry"
	"github.com/obdorch/obdorch/partner"
)

// orchestratorProc is the orchestrator under test: built in this process
// as cmd/orchestrator wires it (embedded etcd, Partner API and openOBD
// clients, core, control plane on a loopback port), or a running one.
type orchestratorProc struct {
	log  *slog.Logger
	addr string
	conn *grpc.ClientConn
	api  orchestratorv1.OrchestratorServiceClient

	// In-process parts; nil for a running orchestrator.
	dir      string
	etcd     *store.Embedded
	st       *store.Store
	pc       *partner.Client
	oc       *connector.Client
	core     *orchestrator.Orchestrator
	svc      *controlplane.Service
	srv      *controlplane.Server
	serveErr chan error
	stopCore context.CancelFunc
	coreDone chan struct{}
	// startRev is the store revision before the core started: watching
	// from it sees every session the core creates.
	startRev int64
	// storeStart is how long the embedded etcd and the store took to open.
	storeStart time.Duration
	// interruptOnClose ends the sessions on a running fake when the
	// in-process orchestrator stops; otherwise they would stay live there
	// and hold their tickets against the next run.
	interruptOnClose bool
}

// prepareOrchestrator builds the orchestrator and serves its control plane
// without starting the core (see start), or connects to a running one.
func (r *runner) prepareOrchestrator(ctx context.Context, fw *fakeWorld) (_ *orchestratorProc, err error) {
	cfg, clog := r.cfg, r.clog
	p := &orchestratorProc{log: r.log}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if cfg.externalOrchestrator() {
		p.addr = cfg.orchestratorAddr
		return p, p.dial()
	}
	began := time.Now()
	if p.dir, err = os.MkdirTemp("", "loadtest-etcd-"); err != nil {
		return nil, err
	}
	// etcd warns at every start about its single-node setup: only its
	// errors are worth showing here.
	elog := slog.New(telemetry.NewLogHandler(r.stderr, "text", max(cfg.orchestratorLevel, slog.LevelError)))
	p.etcd, err = store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: p.dir, UnsafeNoFsync: cfg.noFsync, Logger: elog.With("component", "etcd")})
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	p.st, err = store.Open(ctx, store.Config{Embedded: p.etcd, Replica: "loadtest", Logger: clog.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	p.storeStart = time.Since(began)
	if p.startRev, err = p.st.Revision(ctx); err != nil {
		return nil, err
	}
	if p.pc, err = fw.partnerClient(clog.With("component", "partner")); err != nil {
		return nil, err
	}
	if p.oc, err = fw.openOBDClient(clog.With("component", "openobd")); err != nil {
		return nil, err
	}
	p.core, err = orchestrator.New(orchestrator.Config{Logger: clog.With("component", "core"),
		// One replica takes every ticket of the run, however many.
		MaxSessions: max(cfg.tickets, cfg.sessions, orchestrator.DefaultMaxSessions),
		OnHealth: func(healthy bool, _ string) {
			if p.srv != nil {
				p.srv.SetServing(healthy)
			}
		}}, p.st, p.pc, p.oc)
	if err != nil {
		return nil, err
	}
	p.svc = controlplane.NewService(p.core, controlplane.Options{Logger: clog.With("component", "control-plane")})
	p.srv = controlplane.NewServer(p.svc, controlplane.ServerOptions{Logger: clog.With("component", "grpc")})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = lis.Addr().String()
	p.interruptOnClose = fw.jf == nil
	p.serveErr = make(chan error, 1)
	go func() { p.serveErr <- p.srv.Serve(lis) }()
	return p, p.dial()
}

func (p *orchestratorProc) dial() error {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", p.addr, err)
	}
	p.conn, p.api = conn, orchestratorv1.NewOrchestratorServiceClient(conn)
	return nil
}

// inProcess reports whether the orchestrator runs in this process.
func (p *orchestratorProc) inProcess() bool { return p.core != nil }

// start runs the in-process core (intake begins at once); a running
// orchestrator is already started.
func (p *orchestratorProc) start() {
	if !p.inProcess() || p.coreDone != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopCore, p.coreDone = cancel, make(chan struct{})
	go func() {
		defer close(p.coreDone)
		if err := p.core.Start(ctx); err != nil {
			p.log.Error("orchestrator core failed", "err", err)
		}
	}()
}

// close stops what start and prepareOrchestrator started, in
// cmd/orchestrator's order: control plane, core (which detaches its
// sessions), store, clients, etcd.
func (p *orchestratorProc) close() {
	if p.interruptOnClose && p.coreDone != nil {
		p.interruptAll()
	}
	if p.conn != nil {
		_ = p.conn.Close()
	}
	if p.srv != nil {
		p.svc.Drain()
		p.srv.Stop()
		<-p.serveErr
	}
	if p.stopCore != nil {
		p.stopCore()
		<-p.coreDone
	}
	if p.st != nil {
		_ = p.st.Close()
	}
	if p.oc != nil {
		_ = p.oc.Close()
	}
	if p.pc != nil {
		p.pc.CloseIdleConnections()
	}
	if p.etcd != nil {
		_ = p.etcd.Close()
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// interruptAll interrupts the orchestrator's live sessions through its
// control plane.
func (p *orchestratorProc) interruptAll() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []string
	for _, st := range []orchestratorv1.SessionState{
		orchestratorv1.SessionState_SESSION_STATE_PENDING, orchestratorv1.SessionState_SESSION_STATE_STARTING,
		orchestratorv1.SessionState_SESSION_STATE_READY, orchestratorv1.SessionState_SESSION_STATE_RUNNING,
	} {
		more, err := p.sessionIDs(ctx, st)
		if err != nil {
			p.log.Warn("listing sessions to interrupt failed", "err", err)
		}
		ids = append(ids, more...)
	}
	p.log.Info("interrupting the sessions on the running fake", "sessions", len(ids))
	err := parallel(len(ids), setupWidth, func(i int) error {
		_, err := p.api.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: ids[i], Reason: "load test finished"})
		return err
	})
	if err != nil {
		p.log.Warn("interrupting sessions failed", "err", err)
	}
}

// waitReady waits until n sessions have been READY, for at most limit. The
// in-process orchestrator is watched through its store (exact and cheap); a
// running one is polled with ListSessions.
func (p *orchestratorProc) waitReady(ctx context.Context, n int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if p.inProcess() {
		err := p.watchReady(ctx, n)
		if err != nil && p.interruptOnClose {
			err = fmt.Errorf("%w (a running fake may still hold live sessions from an earlier run: restart it)", err)
		}
		return err
	}
	for {
		ready, err := p.countReady(ctx)
		if err == nil && ready >= n {
			return nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %d READY sessions at %s: %d after %v (last error: %v)", n, p.addr, ready, limit, err)
		case <-t.C:
		}
	}
}

// watchReady follows the store's events from before the core started and
// returns once n distinct sessions have reached READY.
func (p *orchestratorProc) watchReady(ctx context.Context, n int) error {
	ready := map[string]bool{}
	failed := map[string]string{}
	for ev, err := range p.core.WatchSessions(ctx, p.startRev+1, orchestrator.SessionFilter{}) {
		if err != nil {
			return fmt.Errorf("waiting for %d READY sessions: %d ready, %d failed (%s): %w", n, len(ready), len(failed), someReason(failed), err)
		}
		r := ev.Session
		switch {
		case r.State == session.StateReady:
			ready[r.ID] = true
		case r.State.Final():
			failed[r.ID] = r.State.String() + ": " + r.Reason
		}
		if len(ready) >= n {
			return nil
		}
	}
	return ctx.Err()
}

func someReason(m map[string]string) string {
	for _, r := range m {
		return r
	}
	return "none"
}

// countReady counts READY sessions through the control plane.
func (p *orchestratorProc) countReady(ctx context.Context) (int, error) {
	ids, err := p.sessionIDs(ctx, orchestratorv1.SessionState_SESSION_STATE_READY)
	return len(ids), err
}

// sessionIDs lists the ids of the sessions in state through the control
// plane, every page.
func (p *orchestratorProc) sessionIDs(ctx context.Context, state orchestratorv1.SessionState) ([]string, error) {
	var ids []string
	token := ""
	for {
		resp, err := p.api.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{
			States: []orchestratorv1.SessionState{state}, PageSize: 1000, PageToken: token,
		})
		if err != nil {
			return ids, err
		}
		for _, s := range resp.GetSessions() {
			ids = append(ids, s.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			return ids, nil
		}
	}
}

// readyTimeout bounds the wait for n sessions to become READY.
func readyTimeout(n int) time.Duration { return 30*time.Second + time.Duration(n)*30*time.Millisecond }

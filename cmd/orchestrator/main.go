// Command orchestrator runs the openOBD session orchestrator: it reads
// tickets from Jifeline's Partner API, opens and keeps openOBD sessions for
// them, and serves the orchestrator.v1 control plane.
//
//	go run ./cmd/orchestrator --demo     # zero-config, against an in-process fake Jifeline
//	go run ./cmd/orchestrator --help     # every flag, grouped, with its environment twin
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/orchestrator/telemetry"
	"github.com/obdorch/obdorch/partner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal exits at once.
		<-ctx.Done()
		stop()
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		<-c
		fmt.Fprintln(os.Stderr, "second signal: exiting now")
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if buildinfo.Requested(args) {
		fmt.Fprintln(stdout, buildinfo.Read().String("orchestrator"))
		return 0
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "orchestrator: configuration: %v\n", err)
		return 2
	}
	defer cfg.gcPercent.Apply()()
	level, _ := parseLevel(cfg.logLevel)
	log := slog.New(telemetry.NewLogHandler(stderr, cfg.logFormat, level))
	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "obdorch", ServiceVersion: buildinfo.Read().Short(), Getenv: getenv,
		Prometheus: cfg.metricsRegistry(), BuildInfo: buildinfo.Read().Attributes(), Console: stderr, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "orchestrator: telemetry: %v\n", err)
		return 2
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTelemetry(sctx); err != nil {
			log.Warn("telemetry shutdown failed", "err", err)
		}
	}()
	if err := serve(ctx, cfg, getenv, log, stdout); err != nil {
		log.Error("orchestrator failed", "err", err)
		return 1
	}
	return 0
}

// serverOptions builds the control plane's transport security and auth
// from the configuration.
func serverOptions(cfg *config, getenv func(string) string, log *slog.Logger) (controlplane.ServerOptions, error) {
	opts := controlplane.ServerOptions{Logger: log.With("component", "grpc")}
	if cfg.tlsCert != "" {
		creds, err := controlplane.ServerTLS(cfg.tlsCert, cfg.tlsKey, cfg.clientCA)
		if err != nil {
			return opts, fmt.Errorf("--tls-cert/--tls-key/--client-ca: %w", err)
		}
		opts.Credentials = creds
	}
	tokens, err := loadTokens(cfg, getenv)
	if err != nil {
		return opts, err
	}
	if tokens != nil {
		if cfg.replicaToken != "" {
			if err := tokens.AddReplicaToken(cfg.replicaToken); err != nil {
				return opts, fmt.Errorf("--replica-token: %w", err)
			}
		}
		unary, stream := controlplane.AuthInterceptors(tokens)
		opts.Unary = append(opts.Unary, unary)
		opts.Stream = append(opts.Stream, stream)
		log.Info("control-plane authentication on", "tokens", tokens.Len())
	} else {
		log.Warn("control-plane authentication off: every caller is admin (give --auth-tokens)")
	}
	return opts, nil
}

// serve wires the parts, runs them until ctx ends and shuts them down in
// order. Each step is a function below; every part it starts is stopped by
// the deferred calls in reverse order.
func serve(ctx context.Context, cfg *config, getenv func(string) string, log *slog.Logger, stdout io.Writer) error {
	srvOpts, err := serverOptions(cfg, getenv, log)
	if err != nil {
		return err
	}
	if cfg.demo {
		stopDemo, err := startDemo(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stopDemo()
	}
	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()
	pc, oc, err := newClients(cfg, log)
	if err != nil {
		return err
	}
	defer pc.CloseIdleConnections()
	defer oc.Close()

	fwd, err := newForwarder(cfg, st, log)
	if err != nil {
		return err
	}
	if fwd != nil {
		defer fwd.Close()
		unary, stream := fwd.ForwardInterceptors()
		srvOpts.Unary, srvOpts.Stream = append(srvOpts.Unary, unary), append(srvOpts.Stream, stream)
	}

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if err := register(ctx, cfg, st, lis.Addr()); err != nil {
		lis.Close()
		return err
	}
	p, err := newParts(cfg, log, st, pc, oc, srvOpts, fwd)
	if err != nil {
		lis.Close()
		return err
	}
	waitAdmin, err := startAdmin(ctx, cfg, getenv, log, stdout, p.core, st.Revision, p.srv.Health)
	if err != nil {
		lis.Close()
		return err
	}
	defer waitAdmin()

	runErr := p.run(ctx, cfg, log, stdout, lis)
	p.shutdown(cfg, log)
	if err := p.stopCore(); err != nil && runErr == nil {
		runErr = err
	}
	log.Info("stopped")
	return runErr
}

// startDemo starts the in-process fake Jifeline and points the
// configuration at it (and, without --etcd-endpoints, at a temporary data
// directory). The fake outlives the signal: it stops after the core.
func startDemo(ctx context.Context, cfg *config, log *slog.Logger) (stop func(), err error) {
	// TLS toward the fake openOBD as toward Jifeline, unless
	// --openobd-insecure asks for plaintext.
	env, err := fakejifeline.Start(context.WithoutCancel(ctx), fakejifeline.Options{
		Tickets: cfg.demoTickets, Seed: 1, TLS: !cfg.openobdInsecure,
	})
	if err != nil {
		return nil, fmt.Errorf("start demo Jifeline: %w", err)
	}
	stops := []func(){func() { _ = env.Close() }}
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	host, port, err := net.SplitHostPort(env.OpenOBDAddr)
	if err != nil {
		stop()
		return nil, err
	}
	cfg.openobdHost = host
	fmt.Sscanf(port, "%d", &cfg.openobdPort)
	if env.Certificate != nil {
		cfg.demoRoots = env.Certificate.RootCAs()
	}
	cfg.partnerURL = env.PartnerURL
	cfg.clientID, cfg.clientSecret = env.ClientID, env.ClientSecret
	cfg.ticketWrite = true
	if cfg.etcdEndpoints == "" {
		dir, err := os.MkdirTemp("", "obdorch-demo-")
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() { _ = os.RemoveAll(dir) })
		cfg.dataDir = dir
	}
	log.Info("demo Jifeline running", "openobd", env.OpenOBDAddr, "partner_api", env.PartnerURL, "tickets", len(env.Tickets))
	return stop, nil
}

// openStore opens the replica's store: on --etcd-endpoints, or on an
// embedded etcd server in --data-dir.
func openStore(ctx context.Context, cfg *config, log *slog.Logger) (*store.Store, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	sc := store.Config{Endpoints: splitList(cfg.etcdEndpoints), Replica: cfg.replica, LeaseTTL: cfg.storeLeaseTTL, Logger: log.With("component", "store")}
	if len(sc.Endpoints) == 0 {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("--data-dir: %w", err)
		}
		emb, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: cfg.dataDir, Logger: log.With("component", "etcd")})
		if err != nil {
			return nil, nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.dataDir, err)
		}
		closers = append(closers, func() { _ = emb.Close() })
		// In process: no gRPC between the store and its own server.
		sc.Embedded = emb
	}
	if err := cfg.etcdSecurity(&sc); err != nil {
		closeAll()
		return nil, nil, err
	}
	st, err := store.Open(ctx, sc)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	closers = append(closers, func() { _ = st.Close() })
	return st, closeAll, nil
}

// newClients builds the Partner API and openOBD clients.
func newClients(cfg *config, log *slog.Logger) (*partner.Client, *connector.Client, error) {
	partnerURL := cfg.partnerURL
	if partnerURL == "" {
		partnerURL = partner.BaseURLForCluster(cfg.clusterID)
	}
	pc, err := partner.NewClient(partner.Config{
		BaseURL: partnerURL, ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		AllowTicketWrite: cfg.ticketWrite, Logger: log.With("component", "partner"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("partner API client: %w", err)
	}
	roots, ca := cfg.demoRoots, "system roots"
	switch {
	case cfg.openobdCA != "":
		if roots, err = loadCertPool(cfg.openobdCA); err != nil {
			pc.CloseIdleConnections()
			return nil, nil, fmt.Errorf("--openobd-ca: %w", err)
		}
		ca = cfg.openobdCA
	case roots != nil:
		ca = "the demo fake's generated CA"
	}
	if cfg.openobdInsecure {
		log.Warn("openOBD connections are INSECURE (--openobd-insecure): plaintext to the session controller and every session endpoint; tokens travel in clear",
			"openobd_host", cfg.openobdHost, "openobd_port", cfg.openobdPort)
	} else {
		log.Info("openOBD connections use TLS", "openobd_host", cfg.openobdHost, "openobd_port", cfg.openobdPort, "openobd_ca", ca)
	}
	oc, err := connector.New(connector.Config{
		ClientID: cfg.clientID, ClientSecret: cfg.clientSecret, ClusterID: cfg.clusterID,
		Host: cfg.openobdHost, Port: cfg.openobdPort, Insecure: cfg.openobdInsecure, RootCAs: roots,
		ResponseTimeout: cfg.requestTimeout, P2Star: cfg.p2Star, Logger: log.With("component", "openobd"),
	})
	if err != nil {
		pc.CloseIdleConnections()
		return nil, nil, fmt.Errorf("openOBD client: %w", err)
	}
	return pc, oc, nil
}

// parts are the core and its control plane.
type parts struct {
	core     *orchestrator.Orchestrator
	svc      *controlplane.Service
	srv      *controlplane.Server
	stopCore func() error
}

// newParts builds the core and the control-plane server over it; health
// follows the core's view of its dependencies.
func newParts(cfg *config, log *slog.Logger, st *store.Store, pc *partner.Client, oc *connector.Client, srvOpts controlplane.ServerOptions, fwd *controlplane.Forwarder) (*parts, error) {
	p := &parts{stopCore: func() error { return nil }}
	processed, anyProcessed := cfg.intakeProcessedFilter()
	core, err := orchestrator.New(orchestrator.Config{
		IntakeState:               partner.TicketState(cfg.intakeState),
		IntakeExternallyProcessed: processed,
		IntakeAnyProcessed:        anyProcessed,
		ResyncInterval:            cfg.resync,
		Workers:                   cfg.workers,
		MaxSessions:               cfg.maxSessions,
		LeaseTTL:                  cfg.leaseTTL,
		FailOnLeaseExpiry:         cfg.failOnLeaseExpiry,
		Logger:                    log.With("component", "core"),
		OnHealth: func(healthy bool, reason string) {
			if p.srv != nil {
				p.srv.SetServing(healthy)
			}
			if !healthy {
				log.Warn("not serving", "reason", reason)
			}
		},
	}, st, pc, oc)
	if err != nil {
		return nil, err
	}
	p.core = core
	p.svc = controlplane.NewService(core, controlplane.Options{Logger: log.With("component", "control-plane"), Forwarder: fwd, AcquireMaxWait: time.Minute})
	p.srv = controlplane.NewServer(p.svc, srvOpts)
	return p, nil
}

// run starts the core and the control plane and waits for the signal or a
// failed server. A lost store lease is not a reason to exit: the core stops
// acting, reports NOT_SERVING and takes a new lease when etcd grants one.
func (p *parts) run(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer, lis net.Listener) error {
	coreCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	coreDone := make(chan error, 1)
	go func() { coreDone <- p.core.Start(coreCtx) }()
	p.stopCore = func() error {
		stop()
		return <-coreDone
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- p.srv.Serve(lis) }()

	addr := lis.Addr().String()
	log.Info("control plane listening", "addr", addr, "replica", cfg.replica)
	printHello(stdout, addr, cfg.demo)
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveDone:
		return fmt.Errorf("control plane: %w", err)
	}
}

// shutdown stops taking work in order: leases stop expiring, health says
// NOT_SERVING, long streams end, calls drain within the grace period and are
// then cut.
func (p *parts) shutdown(cfg *config, log *slog.Logger) {
	log.Info("shutting down", "grace", cfg.shutdownFor)
	p.core.Drain()          // runners keep their leases while calls drain
	p.srv.Health.Shutdown() // NOT_SERVING from now on, whatever intake says
	// Let health watchers (load balancers) hear it before the streams end,
	// so runners resuming their streams are sent elsewhere.
	time.Sleep(min(healthDrainDelay, cfg.shutdownFor/4))
	p.svc.Drain()
	stopped := make(chan struct{})
	go func() {
		p.srv.GracefulStop()
		close(stopped)
	}()
	grace := time.NewTimer(cfg.shutdownFor)
	defer grace.Stop()
	select {
	case <-stopped:
	case <-grace.C:
		log.Warn("grace period over; closing remaining calls")
		p.srv.Stop()
		<-stopped
	}
}

// healthDrainDelay is the pause between announcing NOT_SERVING and ending
// the long-lived streams on shutdown.
const healthDrainDelay = 250 * time.Millisecond

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func printHello(w io.Writer, addr string, demo bool) {
	fmt.Fprintf(w, "orchestrator control plane on %s\n", addr)
	if !demo {
		return
	}
	svc := "orchestrator.v1.OrchestratorService"
	fmt.Fprintf(w, `
Try it with grpcurl (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4):
  grpcurl -plaintext %[1]s list
  grpcurl -plaintext %[1]s %[2]s/ListTickets
  grpcurl -plaintext -d '{"states":["SESSION_STATE_READY"]}' %[1]s %[2]s/ListSessions
  grpcurl -plaintext -d '{"start_revision":1}' %[1]s %[2]s/WatchSessions
Read the VIN of a READY session (22 F1 90 to the engine ECU 0x7E0/0x7E8):
  SESSION_ID=$(grpcurl -plaintext -d '{"states":["SESSION_STATE_READY"],"page_size":1}' %[1]s %[2]s/ListSessions | sed -n 's/^      "id": "\(.*\)",$/\1/p')
  grpcurl -plaintext -d '{"session_id":"'$SESSION_ID'","channel":{"bus_name":"can0","request_id":2016,"response_id":2024},"payload":"IvGQ"}' %[1]s %[2]s/Send
`, addr, svc)
}

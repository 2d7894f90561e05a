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
// order: health, control plane (graceful, then forced), reconciler, store.
func serve(ctx context.Context, cfg *config, getenv func(string) string, log *slog.Logger, stdout io.Writer) error {
	srvOpts, err := serverOptions(cfg, getenv, log)
	if err != nil {
		return err
	}
	if cfg.demo {
		// The fake outlives the signal: it stops after the core, in order.
		env, err := fakejifeline.Start(context.WithoutCancel(ctx), fakejifeline.Options{Tickets: cfg.demoTickets, Seed: 1})
		if err != nil {
			return fmt.Errorf("start demo Jifeline: %w", err)
		}
		defer env.Close()
		host, port, err := net.SplitHostPort(env.OpenOBDAddr)
		if err != nil {
			return err
		}
		cfg.openobdHost = host
		fmt.Sscanf(port, "%d", &cfg.openobdPort)
		cfg.openobdInsecure = true
		cfg.partnerURL = env.PartnerURL
		cfg.clientID, cfg.clientSecret = env.ClientID, env.ClientSecret
		cfg.ticketWrite = true
		if cfg.etcdEndpoints == "" {
			dir, err := os.MkdirTemp("", "obdorch-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			cfg.dataDir = dir
		}
		log.Info("demo Jifeline running", "openobd", env.OpenOBDAddr, "partner_api", env.PartnerURL, "tickets", len(env.Tickets))
	}

	endpoints := splitList(cfg.etcdEndpoints)
	if len(endpoints) == 0 {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		emb, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: cfg.dataDir, Logger: log.With("component", "etcd")})
		if err != nil {
			return fmt.Errorf("start embedded etcd in %s: %w", cfg.dataDir, err)
		}
		defer emb.Close()
		endpoints = emb.Endpoints()
	}
	st, err := store.Open(ctx, store.Config{Endpoints: endpoints, Replica: cfg.replica, Logger: log.With("component", "store")})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	partnerURL := cfg.partnerURL
	if partnerURL == "" {
		partnerURL = partner.BaseURLForCluster(cfg.clusterID)
	}
	pc, err := partner.NewClient(partner.Config{
		BaseURL: partnerURL, ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		AllowTicketWrite: cfg.ticketWrite, Logger: log.With("component", "partner"),
	})
	if err != nil {
		return fmt.Errorf("partner API client: %w", err)
	}
	defer pc.CloseIdleConnections()
	oc, err := connector.New(connector.Config{
		ClientID: cfg.clientID, ClientSecret: cfg.clientSecret, ClusterID: cfg.clusterID,
		Host: cfg.openobdHost, Port: cfg.openobdPort, Insecure: cfg.openobdInsecure,
		ResponseTimeout: cfg.requestTimeout, P2Star: cfg.p2Star, Logger: log.With("component", "openobd"),
	})
	if err != nil {
		return fmt.Errorf("openOBD client: %w", err)
	}
	defer oc.Close()

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var srv *controlplane.Server
	processed, anyProcessed := cfg.intakeProcessedFilter()
	core, err := orchestrator.New(orchestrator.Config{
		IntakeState:               partner.TicketState(cfg.intakeState),
		IntakeExternallyProcessed: processed,
		IntakeAnyProcessed:        anyProcessed,
		ResyncInterval:            cfg.resync,
		Workers:                   cfg.workers,
		LeaseTTL:                  cfg.leaseTTL,
		FailOnLeaseExpiry:         cfg.failOnLeaseExpiry,
		RequestTimeout:            cfg.requestTimeout,
		P2Star:                    cfg.p2Star,
		Logger:                    log.With("component", "core"),
		OnHealth: func(healthy bool, reason string) {
			if srv != nil {
				srv.SetServing(healthy)
			}
			if !healthy {
				log.Warn("not serving", "reason", reason)
			}
		},
	}, st, pc, oc)
	if err != nil {
		lis.Close()
		return err
	}
	svc := controlplane.NewService(core, controlplane.Options{Logger: log.With("component", "control-plane")})
	srv = controlplane.NewServer(svc, srvOpts)
	waitAdmin, err := startAdmin(ctx, cfg, getenv, log, stdout, core, st.Revision, srv.Health)
	if err != nil {
		lis.Close()
		return err
	}
	defer waitAdmin()

	coreCtx, stopCore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCore()
	coreDone := make(chan error, 1)
	go func() { coreDone <- core.Start(coreCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(lis) }()

	addr := lis.Addr().String()
	log.Info("control plane listening", "addr", addr, "replica", cfg.replica)
	printHello(stdout, addr, cfg.demo)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		runErr = fmt.Errorf("control plane: %w", err)
	case <-st.Lost():
		runErr = errors.New("store lease lost")
	}

	log.Info("shutting down", "grace", cfg.shutdownFor)
	core.Drain()          // runners keep their leases while calls drain
	srv.Health.Shutdown() // NOT_SERVING from now on, whatever intake says
	// Let health watchers (load balancers) hear it before the streams end,
	// so runners resuming their streams are sent elsewhere.
	time.Sleep(min(healthDrainDelay, cfg.shutdownFor/4))
	svc.Drain()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(cfg.shutdownFor):
		log.Warn("grace period over; closing remaining calls")
		srv.Stop()
		<-stopped
	}
	stopCore()
	if err := <-coreDone; err != nil && runErr == nil {
		runErr = err
	}
	log.Info("stopped")
	return runErr
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

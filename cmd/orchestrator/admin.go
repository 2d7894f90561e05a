package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obdorch/obdorch/orchestrator/admin"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
)

// adminConfig configures the admin HTTP listener: metrics, health, pprof
// and the dashboard.
type adminConfig struct {
	adminListen string
	registry    *prometheus.Registry
}

func (c *adminConfig) addAdminFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:7601", "admin HTTP `address` (/metrics, /healthz, /readyz, /debug/pprof/, dashboard at /); empty turns it off; the control plane's TLS, --insecure and token rules apply")
}

// validateAdmin applies the control plane's transport rule to the admin
// listener: plaintext only on loopback unless --insecure.
func (c *config) validateAdmin() error {
	if c.adminListen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.adminListen)
	if err != nil {
		return fmt.Errorf("--admin-listen: %v", err)
	}
	if c.tlsCert == "" && !c.insecure && !isLoopback(host) {
		return fmt.Errorf("--admin-listen: plaintext on non-loopback address %q: give --tls-cert/--tls-key or --insecure", c.adminListen)
	}
	return nil
}

// metricsRegistry is the registry /metrics serves, or nil with the admin
// listener off. It returns the interface so that "off" is a true nil.
func (c *adminConfig) metricsRegistry() prometheus.Registerer {
	if c.adminListen == "" {
		return nil
	}
	if c.registry == nil {
		c.registry = prometheus.NewRegistry()
	}
	return c.registry
}

// loadTokens reads the control-plane tokens from --auth-tokens or the
// inline environment variable; nil when neither is given.
func loadTokens(cfg *config, getenv func(string) string) (*controlplane.Tokens, error) {
	switch inline := getenv(envInlineTokens); {
	case cfg.authTokens != "":
		f, err := os.Open(cfg.authTokens)
		if err != nil {
			return nil, fmt.Errorf("--auth-tokens: %w", err)
		}
		defer f.Close()
		tokens, err := controlplane.LoadTokens(f)
		if err != nil {
			return nil, fmt.Errorf("--auth-tokens %s: %w", cfg.authTokens, err)
		}
		return tokens, nil
	case inline != "":
		tokens, err := controlplane.ParseTokensEnv(inline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envInlineTokens, err)
		}
		return tokens, nil
	}
	return nil, nil
}

// startAdmin serves the admin listener until ctx ends; wait blocks until it
// has stopped. With --admin-listen empty it does nothing.
func startAdmin(ctx context.Context, cfg *config, getenv func(string) string, log *slog.Logger, stdout io.Writer,
	core admin.Core, revision func(context.Context) (int64, error), health admin.HealthChecker,
) (wait func(), err error) {
	if cfg.adminListen == "" {
		return func() {}, nil
	}
	opts := admin.Options{
		Core: core, Revision: revision, Health: health,
		Logger: log.With("component", "admin"),
	}
	if cfg.registry != nil {
		opts.Metrics = promhttp.HandlerFor(cfg.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	}
	if opts.Tokens, err = loadTokens(cfg, getenv); err != nil {
		return nil, err
	}
	if cfg.tlsCert != "" {
		if opts.TLS, err = controlplane.ServerTLSConfig(cfg.tlsCert, cfg.tlsKey, cfg.clientCA); err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key/--client-ca: %w", err)
		}
	}
	srv, err := admin.New(opts)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.adminListen)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen: %w", err)
	}
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	url := scheme + "://" + lis.Addr().String() + "/"
	log.Info("admin listening", "url", url)
	fmt.Fprintf(stdout, "admin and dashboard on %s (metrics at %smetrics)\n", url, url)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx, lis); err != nil {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}

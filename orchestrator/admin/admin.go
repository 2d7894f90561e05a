// Package admin serves the orchestrator's admin HTTP listener: Prometheus
// metrics, health and readiness matching the control plane's gRPC health,
// pprof, and a live dashboard of sessions.
//
// Routes and the least role each needs when tokens are configured (without
// tokens every caller is admin, as on the control plane):
//
//	GET  /healthz                         none    liveness: 200 while the process serves
//	GET  /readyz                          none    200 when gRPC health is SERVING, else 503
//	GET  /metrics                         viewer  Prometheus exposition
//	GET  /debug/pprof/                    admin   runtime profiles
//	GET  /                                none    the dashboard page (it asks for a token)
//	POST /api/login, /api/logout          none    set or clear the dashboard's token cookie
//	GET  /api/me                          viewer  the caller's name and role
//	GET  /api/events                      viewer  Server-Sent Events: a snapshot, then changes
//	GET  /api/sessions/{id}               viewer  one session with its history
//	POST /api/sessions/{id}/interrupt     admin   interrupt with {"reason": "..."}
//
// Tokens are the control plane's (controlplane.Tokens), presented as
// "Authorization: Bearer <token>" or, from the dashboard, in an HttpOnly
// SameSite=Strict cookie set by /api/login.
package admin

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// Core is what the admin listener needs from the orchestrator core;
// *orchestrator.Orchestrator satisfies it.
type Core interface {
	ListSessions(ctx context.Context, f orchestrator.SessionFilter, page orchestrator.Page) ([]*session.Record, string, error)
	GetSession(ctx context.Context, id string) (*session.Record, error)
	WatchSessions(ctx context.Context, startRevision int64, f orchestrator.SessionFilter) iter.Seq2[orchestrator.Event, error]
	InterruptSession(ctx context.Context, id, actor, reason string) (*session.Record, error)
}

// HealthChecker answers gRPC health checks; *health.Server satisfies it.
type HealthChecker interface {
	Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error)
}

// Options configure the admin listener.
type Options struct {
	// Core lists, watches and interrupts sessions; required.
	Core Core
	// Revision returns the store's current revision, the point a dashboard
	// snapshot is taken at; required.
	Revision func(context.Context) (int64, error)
	// Health is the control plane's health server; nil: /readyz is 503.
	Health HealthChecker
	// Metrics serves /metrics; nil: 404.
	Metrics http.Handler
	// Tokens authenticate callers; nil: no authentication, every caller is
	// admin. Never pass a nil *Tokens that is meant to be set.
	Tokens *controlplane.Tokens
	// TLS secures the listener; nil serves plaintext. The dashboard's
	// cookie is marked Secure when set.
	TLS *tls.Config
	// RecentWindow is how long ended sessions stay in a dashboard snapshot
	// (default 1h). Live sessions are always in it.
	RecentWindow time.Duration
	// ShutdownGrace bounds the wait for open requests when Run stops
	// (default 5s); then the remaining connections are closed. Event
	// streams end at once.
	ShutdownGrace time.Duration
	// Heartbeat is the interval of keep-alive comments on event streams
	// (default 15s).
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is the admin HTTP listener.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler

	// streams ends the event streams when the server stops.
	streams      context.Context
	closeStreams context.CancelFunc
}

//go:embed web
var webFiles embed.FS

// New builds the admin server.
func New(opts Options) (*Server, error) {
	if opts.Core == nil {
		return nil, errors.New("admin: Options.Core is required")
	}
	if opts.Revision == nil {
		return nil, errors.New("admin: Options.Revision is required")
	}
	if opts.RecentWindow <= 0 {
		opts.RecentWindow = time.Hour
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.streams, s.closeStreams = context.WithCancel(context.Background())

	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	metrics := opts.Metrics
	if metrics == nil {
		metrics = http.NotFoundHandler()
	}
	mux.Handle("GET /metrics", s.need(controlplane.RoleViewer, metrics))
	mux.Handle("GET /debug/pprof/", s.need(controlplane.RoleAdmin, http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", s.need(controlplane.RoleAdmin, http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", s.need(controlplane.RoleAdmin, http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", s.need(controlplane.RoleAdmin, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", s.need(controlplane.RoleAdmin, http.HandlerFunc(pprof.Trace)))
	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("POST /api/logout", s.logout)
	mux.Handle("GET /api/me", s.need(controlplane.RoleViewer, http.HandlerFunc(s.me)))
	mux.Handle("GET /api/events", s.need(controlplane.RoleViewer, http.HandlerFunc(s.events)))
	mux.Handle("GET /api/sessions/{id}", s.need(controlplane.RoleViewer, http.HandlerFunc(s.getSession)))
	mux.Handle("POST /api/sessions/{id}/interrupt", s.need(controlplane.RoleAdmin, http.HandlerFunc(s.interrupt)))
	mux.Handle("GET /", noCache(http.FileServerFS(web)))
	s.handler = securityHeaders(mux)
	return s, nil
}

// Handler returns the server's routes, for tests and for mounting
// elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves on lis until ctx ends, then ends the event streams and shuts
// down, giving open requests ShutdownGrace. It returns nil after a shutdown
// caused by ctx, or the error that stopped serving.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	if s.opts.TLS != nil {
		lis = tls.NewListener(lis, s.opts.TLS)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: event streams are long; each write has its own
		// deadline (see events).
		BaseContext: func(net.Listener) context.Context { return s.streams },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		s.closeStreams()
		return fmt.Errorf("admin listener: %w", err)
	case <-ctx.Done():
	}
	s.closeStreams()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownGrace)
	defer cancel()
	var err error
	if srv.Shutdown(sctx) != nil {
		// Requests still open after the grace period (or connections that
		// never sent one) are closed.
		s.log.Warn("admin listener: grace period over; closing remaining connections")
		err = srv.Close()
	}
	<-served
	return err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

// readyz reports the gRPC health of the whole server ("" service): 200 when
// SERVING, 503 with the state otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Health == nil {
		writeText(w, http.StatusServiceUnavailable, "NOT_SERVING\n")
		return
	}
	resp, err := s.opts.Health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "NOT_SERVING: "+err.Error()+"\n")
		return
	}
	st := resp.GetStatus()
	code := http.StatusServiceUnavailable
	if st == healthpb.HealthCheckResponse_SERVING {
		code = http.StatusOK
	}
	writeText(w, code, st.String()+"\n")
}

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(text))
}

// securityHeaders keeps the page from being framed or sniffed and limits
// what it may load to its own origin.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// noCache makes browsers revalidate the page so a new binary's page is used
// at once.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

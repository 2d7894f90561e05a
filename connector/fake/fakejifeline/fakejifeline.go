// Package fakejifeline runs the two Jifeline fakes together, in-process: the
// fake openOBD server (package fake) and the fake Partner API (package
// partnertest), wired so that both see the same tickets, connectors and
// sessions.
//
// The Partner API's tickets and connectors are the openOBD fake's Directory
// (NewDirectory), and the openOBD fake's sessions are the Partner API's
// openOBD session endpoints (NewSessionBackend). Start serves both on
// loopback ports; the Partner API address also serves the openOBD steering
// handler under SteeringPrefix, next to the Partner API's own steering under
// /_fake/.
package fakejifeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// Default credentials of an environment; both fakes accept them.
const (
	DefaultClientID     = "demo-client"
	DefaultClientSecret = "demo-secret"
)

// SteeringPrefix is the path under the Partner API address where the openOBD
// fake's steering handler is served.
const SteeringPrefix = "/_fake/openobd/"

// shutdownTimeout bounds the graceful stop of the HTTP server.
const shutdownTimeout = 5 * time.Second

// Options configures Start. Zero values select the defaults.
type Options struct {
	// OpenOBDAddr and PartnerAddr are the listen addresses; default
	// "127.0.0.1:0" (a free loopback port).
	OpenOBDAddr string
	PartnerAddr string
	// ClientID and ClientSecret are accepted by both fakes; default
	// DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string
	// Tickets is the number of pending demo tickets (each with a connector and
	// a vehicle) seeded from Seed; see partnertest.Fake.Seed.
	Tickets int
	Seed    int64
	// OpenOBD configures the openOBD fake; its credentials and Directory are
	// set by Start, and Endpoint defaults to the openOBD address.
	OpenOBD fake.Options
	// Partner configures the Partner API fake; its credentials are set by
	// Start.
	Partner partnertest.Options
	// TLS serves openOBD over TLS with a certificate generated at start
	// (Env.Certificate) for localhost, 127.0.0.1, ::1 and the listen host,
	// as Jifeline serves it; otherwise openOBD is plaintext.
	TLS bool
	// Logger receives the environment's and the openOBD fake's logs (unless
	// OpenOBD.Logger is set); default discards.
	Logger *slog.Logger
}

// Env is a running pair of fakes.
type Env struct {
	// OpenOBD is the openOBD fake, served on OpenOBDAddr.
	OpenOBD *fake.Server
	// Partner is the Partner API fake, served at PartnerURL.
	Partner *partnertest.Fake
	// OpenOBDAddr is the host:port of the openOBD gRPC services.
	OpenOBDAddr string
	// Certificate is the openOBD server's certificate and its CA when
	// Options.TLS is set, nil otherwise. Clients trust Certificate.RootCAs()
	// or Certificate.CAPEM.
	Certificate *fake.Certificate
	// PartnerURL is the base URL of the Partner API, e.g. "http://127.0.0.1:17002".
	PartnerURL string
	// SteeringURL is the base URL of the openOBD steering handler.
	SteeringURL string
	// ClientID and ClientSecret are the credentials both fakes accept.
	ClientID, ClientSecret string
	// Tickets are the demo tickets seeded at start.
	Tickets []partner.Ticket

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	err       error
}

// Start builds both fakes, seeds the demo tickets and serves until ctx ends
// or Close is called. It returns once both listeners are open.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if opts.OpenOBDAddr == "" {
		opts.OpenOBDAddr = "127.0.0.1:0"
	}
	if opts.PartnerAddr == "" {
		opts.PartnerAddr = "127.0.0.1:0"
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	p := partnertest.New(withPartnerCredentials(opts.Partner, opts.ClientID, opts.ClientSecret))
	tickets := p.Seed(opts.Tickets, opts.Seed)

	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", opts.OpenOBDAddr)
	if err != nil {
		return nil, fmt.Errorf("fakejifeline: openOBD listener: %w", err)
	}
	httpLis, err := lc.Listen(ctx, "tcp", opts.PartnerAddr)
	if err != nil {
		_ = grpcLis.Close()
		return nil, fmt.Errorf("fakejifeline: Partner API listener: %w", err)
	}

	var (
		cert       *fake.Certificate
		serverOpts []grpc.ServerOption
	)
	if opts.TLS {
		cert, err = fake.NewCertificate(certificateHosts(grpcLis.Addr())...)
		if err != nil {
			_, _ = grpcLis.Close(), httpLis.Close()
			return nil, fmt.Errorf("fakejifeline: %w", err)
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(cert.ServerConfig())))
	}

	fo := opts.OpenOBD
	fo.ClientID, fo.ClientSecret = opts.ClientID, opts.ClientSecret
	fo.Directory = NewDirectory(p)
	if fo.Endpoint == "" {
		fo.Endpoint = grpcLis.Addr().String()
	}
	if fo.Logger == nil {
		fo.Logger = opts.Logger
	}
	o, err := fake.New(fo)
	if err != nil {
		_, _ = grpcLis.Close(), httpLis.Close()
		return nil, fmt.Errorf("fakejifeline: %w", err)
	}
	p.SetSessionBackend(NewSessionBackend(o))

	partnerURL := "http://" + httpLis.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	e := &Env{
		OpenOBD:      o,
		Partner:      p,
		OpenOBDAddr:  grpcLis.Addr().String(),
		Certificate:  cert,
		PartnerURL:   partnerURL,
		SteeringURL:  partnerURL + SteeringPrefix,
		ClientID:     opts.ClientID,
		ClientSecret: opts.ClientSecret,
		Tickets:      tickets,
		cancel:       cancel,
		done:         make(chan struct{}),
	}
	hs := &http.Server{Handler: Handler(p, o), ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := o.Serve(ctx, grpcLis, serverOpts...); err != nil {
			errc <- fmt.Errorf("fakejifeline: openOBD: %w", err)
		}
		cancel()
	})
	wg.Go(func() {
		if err := hs.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("fakejifeline: Partner API: %w", err)
		}
		cancel()
	})
	wg.Go(func() {
		<-ctx.Done()
		p.ClearFaults() // releases hanging requests
		sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer stop()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	})
	go func() {
		wg.Wait()
		close(errc)
		e.err = <-errc
		close(e.done)
	}()
	opts.Logger.Info("fake Jifeline started", "openobd_addr", e.OpenOBDAddr, "openobd_tls", opts.TLS, "partner_url", e.PartnerURL, "tickets", len(tickets))
	return e, nil
}

// certificateHosts are the names a TLS client may use for the openOBD
// listener at addr: the loopback names and the listen host itself.
func certificateHosts(addr net.Addr) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if tcp, ok := addr.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && !tcp.IP.IsUnspecified() {
		hosts = append(hosts, tcp.IP.String())
	}
	if name, err := os.Hostname(); err == nil && name != "" && name != "localhost" {
		hosts = append(hosts, name)
	}
	return hosts
}

// Done is closed when the environment has stopped: its context ended, Close
// was called or a server failed.
func (e *Env) Done() <-chan struct{} { return e.done }

// Close stops both fakes, waits for them and returns the first serving
// error. It is safe to call more than once.
func (e *Env) Close() error {
	e.closeOnce.Do(e.cancel)
	<-e.done
	return e.err
}

// Listen starts an environment on loopback ports for the test tb and closes
// it when the test ends.
func Listen(tb testing.TB, opts Options) *Env {
	tb.Helper()
	e, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("fakejifeline.Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("fakejifeline: %v", err)
		}
	})
	return e
}

// Handler serves the Partner API fake and, under SteeringPrefix, the openOBD
// fake's steering handler.
func Handler(p *partnertest.Fake, o *fake.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(SteeringPrefix, http.StripPrefix(SteeringPrefix[:len(SteeringPrefix)-1], o.SteeringHandler()))
	mux.Handle("/", p.Handler())
	return mux
}

func withPartnerCredentials(o partnertest.Options, id, secret string) partnertest.Options {
	o.ClientID, o.ClientSecret = id, secret
	return o
}

// NewDirectory resolves the openOBD fake's tickets and connectors through the
// Partner API fake. Only open tickets (neither closed nor cancelled) with a
// connector can get a session; the vehicle's VIN is the connector's, else
// the ticket's.
func NewDirectory(p *partnertest.Fake) fake.Directory { return directory{p} }

type directory struct{ p *partnertest.Fake }

func (d directory) LookupTicket(numberOrID string) (fake.Target, bool) {
	t, ok := d.p.LookupTicket(numberOrID)
	if !ok || !t.State.Open() {
		return fake.Target{}, false
	}
	target := fake.Target{TicketID: t.ID, TicketNumber: strconv.FormatInt(t.TicketNumber, 10)}
	if t.CustomerConnectorID != nil {
		if c, ok := d.LookupConnector(*t.CustomerConnectorID); ok {
			target.ConnectorID, target.ConnectorName, target.VIN = c.ConnectorID, c.ConnectorName, c.VIN
		}
	}
	if target.VIN == "" && t.VIN != nil {
		target.VIN = *t.VIN
	}
	return target, true
}

func (d directory) LookupConnector(idOrName string) (fake.Target, bool) {
	c, ok := d.p.LookupConnector(idOrName)
	if !ok {
		return fake.Target{}, false
	}
	target := fake.Target{ConnectorID: c.ID, ConnectorName: c.Name}
	if c.VINNumber != nil {
		target.VIN = *c.VINNumber
	}
	return target, true
}

// NewSessionBackend serves the openOBD fake's sessions on the Partner API
// fake's openOBD session endpoints.
func NewSessionBackend(o *fake.Server) partnertest.SessionBackend { return sessionBackend{o} }

type sessionBackend struct{ o *fake.Server }

func (b sessionBackend) ListSessions() []partner.Session {
	var out []partner.Session
	for _, s := range b.o.Sessions() {
		out = append(out, toPartner(s))
	}
	return out
}

func (b sessionBackend) GetSession(id string) (partner.Session, bool) {
	s, ok := b.o.Session(id)
	if !ok {
		return partner.Session{}, false
	}
	return toPartner(s), true
}

func (b sessionBackend) InterruptSession(id string) (partner.Session, error) {
	s, err := b.o.InterruptSession(id)
	switch {
	case errors.Is(err, fake.ErrSessionNotFound):
		return partner.Session{}, fmt.Errorf("%w: %w", partnertest.ErrNotFound, err)
	case errors.Is(err, fake.ErrSessionNotLive):
		return toPartner(s), fmt.Errorf("%w: %w", partnertest.ErrNotInterruptible, err)
	case err != nil:
		return partner.Session{}, err
	}
	return toPartner(s), nil
}

func toPartner(s fake.Session) partner.Session {
	return partner.Session{
		ID:                  s.ID,
		State:               partner.SessionState(s.State),
		CreatedAt:           partner.Time{Time: s.CreatedAt},
		GRPCEndpoint:        s.GRPCEndpoint,
		AuthenticationToken: s.AuthenticationToken,
	}
}

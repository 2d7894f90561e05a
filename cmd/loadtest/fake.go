package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	"github.com/obdorch/obdorch/partner"
)

// fakeWorld is the fake Jifeline the scenarios run against: in this process,
// or a running cmd/fakeconnector reached at its addresses.
type fakeWorld struct {
	jf *fakejifeline.Env // nil when external

	openobdAddr, partnerURL string
	clientID, clientSecret  string
	// roots verifies the fake's openOBD certificate; nil means plaintext.
	roots *x509.CertPool

	// held are in-process tickets set aside for direct sessions (state
	// in_progress, so the orchestrator's intake leaves them alone).
	held []string
}

// startFake starts the in-process fake with pending tickets, or describes
// the running one. extra tickets are seeded too and set aside for direct
// sessions (in-process only; a running fake offers its free connectors).
func (r *runner) startFake(tickets, extra int) (*fakeWorld, error) {
	cfg := r.cfg
	if cfg.externalFake() {
		f := &fakeWorld{openobdAddr: cfg.openobdAddr, partnerURL: strings.TrimSuffix(cfg.partnerURL, "/"),
			clientID: cfg.clientID, clientSecret: cfg.clientSecret}
		if cfg.openobdCA != "" {
			pem, err := os.ReadFile(cfg.openobdCA)
			if err != nil {
				return nil, fmt.Errorf("--openobd-ca: %w", err)
			}
			f.roots = x509.NewCertPool()
			if !f.roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--openobd-ca: no PEM certificate in %s", cfg.openobdCA)
			}
		}
		return f, nil
	}
	// The fake lives until close, not until the signal: it stops after the
	// orchestrator, as in cmd/orchestrator --demo.
	jf, err := fakejifeline.Start(context.Background(), fakejifeline.Options{
		ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		Tickets: tickets + extra, Seed: 1,
		OpenOBD: fake.Options{BusTiming: cfg.busTiming},
		TLS:     cfg.openobdTLS,
		Logger:  r.clog.With("component", "fake"),
	})
	if err != nil {
		return nil, err
	}
	f := &fakeWorld{jf: jf, openobdAddr: jf.OpenOBDAddr, partnerURL: jf.PartnerURL,
		clientID: jf.ClientID, clientSecret: jf.ClientSecret}
	if jf.Certificate != nil {
		f.roots = jf.Certificate.RootCAs()
	}
	for _, t := range jf.Tickets[tickets:] {
		if err := jf.Partner.SetTicketState(t.ID, partner.TicketInProgress); err != nil {
			_ = jf.Close()
			return nil, fmt.Errorf("set ticket aside: %w", err)
		}
		f.held = append(f.held, t.ID)
	}
	return f, nil
}

func (f *fakeWorld) close() {
	if f.jf != nil {
		_ = f.jf.Close()
	}
}

// target is what a direct session starts on: a ticket or a free connector.
// endpoint, when set, replaces the session's openOBD endpoint (the bare
// proxy's address).
type target struct{ ticket, connector, endpoint string }

// directTargets returns n targets for direct sessions: the tickets set
// aside in-process from the skip-th on, or free connectors of a running fake
// (cmd/fakeconnector seeds tickets/4+1 of them; those of finished sessions
// are free again, so skip does not apply).
func (f *fakeWorld) directTargets(ctx context.Context, skip, n int) ([]target, error) {
	if f.jf != nil {
		if len(f.held) < skip+n {
			return nil, fmt.Errorf("only %d tickets set aside for %d direct sessions", len(f.held), skip+n)
		}
		out := make([]target, n)
		for i, id := range f.held[skip : skip+n] {
			out[i] = target{ticket: id}
		}
		return out, nil
	}
	pc, err := f.partnerClient(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer pc.CloseIdleConnections()
	var out []target
	for c, err := range pc.Connectors(ctx, partner.Paging{PageSize: partner.MaxPageSize}) {
		if err != nil {
			return nil, fmt.Errorf("--partner-url: list connectors: %w", err)
		}
		if c.Free() && c.IsOnline {
			out = append(out, target{connector: c.ID})
			if len(out) == n {
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("--partner-url: %d free connectors for %d direct sessions; start cmd/fakeconnector with --tickets %d or more (it seeds tickets/4+1 free connectors)",
		len(out), n, 4*(n-1))
}

// openOBDClient returns a new openOBD client for the fake.
func (f *fakeWorld) openOBDClient(log *slog.Logger) (*connector.Client, error) {
	return f.openOBDClientAt(log, f.openobdAddr, f.roots == nil)
}

// openOBDClientAt is openOBDClient on another address (the bare proxy's).
func (f *fakeWorld) openOBDClientAt(log *slog.Logger, addr string, plaintext bool) (*connector.Client, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := connector.Config{
		ClientID: f.clientID, ClientSecret: f.clientSecret, Host: host, Port: port,
		Insecure: plaintext, Logger: log,
	}
	if !plaintext {
		cfg.RootCAs = f.roots
	}
	return connector.New(cfg)
}

// tlsConfig is what a client of the fake's openOBD endpoint verifies it
// with; nil for plaintext.
func (f *fakeWorld) tlsConfig() *tls.Config {
	if f.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12}
}

func (f *fakeWorld) partnerClient(log *slog.Logger) (*partner.Client, error) {
	return partner.NewClient(partner.Config{
		BaseURL: f.partnerURL, ClientID: f.clientID, ClientSecret: f.clientSecret,
		AllowTicketWrite: true, Logger: log,
	})
}

// counters returns the Partner API requests per path and the openOBD calls
// per method the fake has served so far.
func (f *fakeWorld) counters(ctx context.Context) (partnerReqs, openobdCalls map[string]int, err error) {
	if f.jf != nil {
		return f.jf.Partner.Requests(), f.jf.OpenOBD.Calls(), nil
	}
	if err := getJSON(ctx, f.partnerURL+"/_fake/requests", &partnerReqs); err != nil {
		return nil, nil, fmt.Errorf("--partner-url: %w", err)
	}
	if err := getJSON(ctx, f.partnerURL+fakejifeline.SteeringPrefix+"calls", &openobdCalls); err != nil {
		return nil, nil, fmt.Errorf("--partner-url: %w", err)
	}
	return partnerReqs, openobdCalls, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return host, port, nil
}

package partner_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

func TestConfigValidate(t *testing.T) {
	valid := partner.Config{ClientID: "id", ClientSecret: "s3cr3t-value"}
	tests := []struct {
		name       string
		edit       func(*partner.Config)
		wantFields []string // fields the error names; none for a valid config
	}{
		{"defaults", func(*partner.Config) {}, nil},
		{"cluster 002", func(c *partner.Config) { c.BaseURL = partner.BaseURLForCluster("002") }, nil},
		{"no credentials", func(c *partner.Config) { c.ClientID, c.ClientSecret = "", "" }, []string{"ClientID", "ClientSecret"}},
		{"relative base URL", func(c *partner.Config) { c.BaseURL = "partner-api-001.prd.jifeline.cloud" }, []string{"BaseURL"}},
		{"ftp base URL", func(c *partner.Config) { c.BaseURL = "ftp://example.com" }, []string{"BaseURL"}},
		{"user info", func(c *partner.Config) { c.BaseURL = "https://me:pw@example.com" }, []string{"BaseURL"}},
		{"token URL with query", func(c *partner.Config) { c.TokenURL = "https://example.com/token?x=1" }, []string{"TokenURL"}},
		{"negative timeout", func(c *partner.Config) { c.Timeout = -time.Second }, []string{"Timeout"}},
		{"negative elapsed", func(c *partner.Config) { c.MaxRetryElapsed = -1 }, []string{"MaxRetryElapsed"}},
		{"intervals reversed", func(c *partner.Config) {
			c.RetryInitialInterval, c.RetryMaxInterval = time.Minute, time.Second
		}, []string{"RetryInitialInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			if len(tt.wantFields) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, partner.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, f := range tt.wantFields {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("Validate() = %q, want it to name %s", err, f)
				}
			}
			if strings.Contains(err.Error(), valid.ClientSecret) || strings.Contains(err.Error(), "pw") {
				t.Errorf("Validate() = %q, leaks a secret", err)
			}
			if _, err := partner.NewClient(cfg); err == nil {
				t.Errorf("NewClient() = nil error, want the Validate error")
			}
		})
	}
}

func TestBaseURLForCluster(t *testing.T) {
	tests := []struct{ cluster, want string }{
		{"", partner.DefaultBaseURL},
		{"001", "https://partner-api-001.prd.jifeline.cloud"},
		{"002", "https://partner-api-002.prd.jifeline.cloud"},
	}
	for _, tt := range tests {
		if got := partner.BaseURLForCluster(tt.cluster); got != tt.want {
			t.Errorf("BaseURLForCluster(%q) = %q, want %q", tt.cluster, got, tt.want)
		}
	}
}

// recorder records the bearer tokens a client sends.
type recorder struct {
	mu     sync.Mutex
	tokens []string
	next   http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok)
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// TestSecretsStayOut drives the client through successes, retries, re-authentication, refused
// credentials and a server that echoes what it gets, and checks that neither the client secret
// nor any access token shows in a log line or an error.
func TestSecretsStayOut(t *testing.T) {
	const secret = "very-secret/client+secret" // changed by form encoding
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []error

	// The fake, with its faults.
	srv := partnertest.NewServer(t, partnertest.Options{ClientSecret: secret})
	tickets := srv.Seed(3, 7)
	rec := &recorder{next: http.DefaultTransport}
	cfg := srv.ClientConfig()
	cfg.Logger = logger
	cfg.HTTPClient = &http.Client{Transport: rec}
	cfg.MaxRetries = 2
	c, err := partner.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	partner.SetClock(c, clk.Now, clk.Sleep)
	for range c.Tickets(t.Context(), partner.TicketFilter{}) {
	}
	srv.ExpireTokens()
	_, err = c.Ticket(t.Context(), tickets[0].ID)
	errs = append(errs, err)
	setFaults(t, srv, partnertest.Faults{ServerErrors: -1, PathPrefix: partner.PathTickets})
	_, err = c.Ticket(t.Context(), tickets[0].ID)
	errs = append(errs, err)
	srv.ClearFaults()

	// Refused credentials.
	bad := cfg
	bad.ClientSecret = secret + "-wrong"
	cb, err := partner.NewClient(bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cb.Ticket(t.Context(), tickets[0].ID)
	errs = append(errs, err)

	// A server that echoes the request, credentials included, in its errors.
	const echoedToken = "token-that-must-not-leak"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == partner.PathToken && r.URL.Query().Get("fail") == "" && strings.Contains(string(body), "client_id=ok") {
			w.Write([]byte(`{"access_token":"` + echoedToken + `","expires_in":3600,"token_type":"Bearer"}`))
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"title":"echo","detail":"got ` + string(body) + " " + r.Header.Get("Authorization") + `"}`))
	}))
	defer echo.Close()
	for _, id := range []string{"ok", "refused"} {
		ce, err := partner.NewClient(partner.Config{BaseURL: echo.URL, ClientID: id, ClientSecret: secret, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ce.Ticket(t.Context(), "x")
		errs = append(errs, err)
	}

	leaks := append([]string{secret, url.QueryEscape(secret), echoedToken}, rec.tokens...)
	if len(rec.tokens) < 2 {
		t.Fatalf("recorded %d tokens, want at least 2: the test did not exercise re-authentication", len(rec.tokens))
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range leaks {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %d = %q, contains secret %q", i, err, s)
			}
		}
	}
	for _, s := range leaks {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain secret %q:\n%s", s, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "[REDACTED]") {
		t.Errorf("logs do not show the redacted echo; the echo server was not exercised:\n%s", logs.String())
	}
}

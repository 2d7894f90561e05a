package partnertest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/obdorch/obdorch/partner"
)

// Server is a Fake served by an httptest.Server.
type Server struct {
	*Fake
	// URL is the base URL of the fake Partner API, e.g. "http://127.0.0.1:41234".
	URL    string
	client *http.Client
}

// NewServer starts a fake Partner API for the test tb and stops it when the test ends, after
// clearing faults so that hanging requests are released.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	f := New(opts)
	srv := httptest.NewServer(f.Handler())
	tb.Cleanup(func() {
		f.ClearFaults()
		srv.Close()
	})
	return &Server{Fake: f, URL: srv.URL, client: srv.Client()}
}

// ClientConfig returns a partner.Config that talks to this fake with valid credentials; adjust
// the other fields as needed.
func (s *Server) ClientConfig() partner.Config {
	return partner.Config{
		BaseURL:      s.URL,
		ClientID:     s.ClientID(),
		ClientSecret: s.ClientSecret(),
		HTTPClient:   s.client,
	}
}

package partner_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/obdorch/obdorch/partner"
)

func TestSleep(t *testing.T) {
	if err := partner.Sleep(t.Context(), time.Millisecond); err != nil {
		t.Errorf("sleep(1ms) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := partner.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep(cancelled, 1h) = %v, want context.Canceled", err)
	}
}

func TestSessionLogValueHidesToken(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("session", "session", partner.Session{
		ID: "s1", State: partner.SessionActive, AuthenticationToken: "one-time-secret",
	})
	if strings.Contains(buf.String(), "one-time-secret") || !strings.Contains(buf.String(), `"id":"s1"`) {
		t.Errorf("logged session = %s, want the id and no token", buf.String())
	}
}

// stub serves a token, then answers every other request with the handler's status and body.
func stub(t *testing.T, h http.HandlerFunc) *partner.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == partner.PathToken {
			w.Write([]byte(`{"access_token":"tok","expires_in":3600,"token_type":"Bearer"}`))
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := partner.NewClient(partner.Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret", AllowTicketWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAPIErrorBody(t *testing.T) {
	long := strings.Repeat("é", 600) + "\xff"
	tests := []struct {
		name, body string
		wantBody   string
		wantMaxLen int
	}{
		{"short text", "upstream\n  down", "upstream down", 0},
		{"long, multi-byte and invalid", long, "", 512 + len("…")},
		{"JSON that is no problem", `{"error":"invalid_request"}`, `{"error":"invalid_request"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stub(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(tt.body))
			})
			_, err := c.Ticket(t.Context(), "x")
			apiErr, ok := errors.AsType[*partner.APIError](err)
			if !ok || apiErr.Problem != nil {
				t.Fatalf("Ticket() = %v, want an *APIError without problem", err)
			}
			if tt.wantBody != "" && apiErr.Body != tt.wantBody {
				t.Errorf("Body = %q, want %q", apiErr.Body, tt.wantBody)
			}
			if tt.wantMaxLen != 0 && (len(apiErr.Body) > tt.wantMaxLen || !utf8.ValidString(apiErr.Body)) {
				t.Errorf("Body has %d bytes (valid UTF-8: %v), want at most %d valid", len(apiErr.Body), utf8.ValidString(apiErr.Body), tt.wantMaxLen)
			}
		})
	}
}

func TestUpdateTicketNoContent(t *testing.T) {
	var methods []string
	c := stub(t, func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		if r.Method == partner.TicketWriteMethod {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write([]byte(`{"id":"a","state":"pending","externally_processed":true}`))
	})
	yes := true
	got, err := c.UpdateTicket(t.Context(), "a", partner.TicketUpdate{ExternallyProcessed: &yes})
	if err != nil || !got.ExternallyProcessed {
		t.Errorf("UpdateTicket() = %+v, %v, want the ticket read back", got, err)
	}
	if want := []string{partner.TicketWriteMethod, http.MethodGet}; strings.Join(methods, " ") != strings.Join(want, " ") {
		t.Errorf("requests = %v, want %v", methods, want)
	}
}

func TestRecordsAreZeroOnError(t *testing.T) {
	c := stub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"a","state":"pending","ticket_number":"7"}`))
	})
	got, err := c.Ticket(t.Context(), "a")
	if err == nil || got.ID != "" {
		t.Errorf("Ticket() = %+v, %v, want a zero ticket and an error", got, err)
	}
}

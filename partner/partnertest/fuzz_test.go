package partnertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/partner"
)

// oneSession is a SessionBackend with a single active session.
type oneSession struct{}

func (oneSession) ListSessions() []partner.Session {
	s, _ := oneSession{}.GetSession("s1")
	return []partner.Session{s}
}

func (oneSession) GetSession(id string) (partner.Session, bool) {
	return partner.Session{ID: "s1", State: partner.SessionActive, GRPCEndpoint: "localhost"}, id == "s1"
}

func (oneSession) InterruptSession(id string) (partner.Session, error) {
	if id != "s1" {
		return partner.Session{}, ErrNotFound
	}
	return partner.Session{}, ErrNotInterruptible
}

// FuzzHandler sends arbitrary methods, paths, queries, content types and bodies to the fake,
// with or without a valid token: it must never panic, and what it says is JSON must be JSON.
func FuzzHandler(f *testing.F) {
	form := "application/x-www-form-urlencoded"
	for _, s := range []struct {
		method, path, query, ctype, body string
		auth                             bool
	}{
		{"POST", partner.PathToken, "", form, "grant_type=client_credentials&client_id=" + DefaultClientID + "&client_secret=" + DefaultClientSecret, false},
		{"POST", partner.PathToken, "", form, "%zz&&==;", false},
		{"POST", partner.PathToken, "", "multipart/form-data; boundary=x", "--x\r\n", false},
		{"GET", partner.PathTickets, "limit=1000&offset=2&state=pending&externally_processed=false&ticket_number=7848095", "", "", true},
		{"GET", partner.PathTickets, "limit=%zz&offset=-1", "", "", true},
		{"GET", partner.PathTickets, "offset=9223372036854775807&limit=1000", "", "", true},
		{"GET", partner.PathTickets + "/x", "", "", "", false},
		{"PATCH", partner.PathTickets + "/x", "", "application/json", `{"external_reference":"r","externally_processed":true}`, true},
		{"PATCH", partner.PathTickets + "/x", "", "application/json; charset=utf-8", `{"external_reference":null} []`, true},
		{"GET", partner.PathConnectors, "limit=0", "", "", true},
		{"GET", partner.PathSessions + "/s1", "", "", "", true},
		{"POST", partner.PathSessions + "/s1" + partner.PathInterruptSuffix, "", "", "", true},
		{"POST", "/_fake/faults", "", "application/json", `{"latency":"1h","hang":true,"rate_limited":-1}`, false},
		{"POST", "/_fake/tickets/x/state", "", "", `{"state":"closed"}`, false},
		{"DELETE", "/_fake/requests", "", "", "", false},
		{"GET", "//v2/../tickets", "", "", "", true},
		{"", "", "", "", "", false},
	} {
		f.Add(s.method, s.path, s.query, s.ctype, s.body, s.auth)
	}
	fake := New(Options{})
	tickets := fake.Seed(3, 1)
	fake.SetSessionBackend(oneSession{})
	h := fake.Handler()

	f.Fuzz(func(t *testing.T, method, path, query, ctype, body string, auth bool) {
		// Every input starts without faults and with a valid token; an input may change both.
		defer fake.ClearFaults()
		fake.mu.Lock()
		fake.tokens["fuzz-token"] = time.Now().Add(time.Hour)
		fake.mu.Unlock()

		path = strings.ReplaceAll(path, "{id}", tickets[0].ID)
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
			Body:       io.NopCloser(strings.NewReader(body)),
			Host:       "fake.test",
			RequestURI: path,
		}
		req = req.WithContext(t.Context())
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer fuzz-token")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code < 100 || rec.Code > 599 {
			t.Errorf("%s %s?%s = status %d", method, path, query, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); strings.Contains(ct, "json") && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s %s?%s = %d with invalid JSON %q", method, path, query, rec.Code, rec.Body.Bytes())
		}
	})
}

package partnertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/obdorch/obdorch/partner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// call sends a request to srv and returns the status and the decoded JSON body.
func call(t *testing.T, srv *Server, method, path, ctype, body string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, v, resp.Header
}

// token returns a fresh access token of srv.
func token(t *testing.T, srv *Server) http.Header {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()}}
	status, v, _ := call(t, srv, http.MethodPost, partner.PathToken, "application/x-www-form-urlencoded", form.Encode(), nil)
	if status != http.StatusOK {
		t.Fatalf("token request = %d %v, want 200", status, v)
	}
	return http.Header{"Authorization": {"Bearer " + v["access_token"].(string)}}
}

func TestTokenEndpoint(t *testing.T) {
	srv := NewServer(t, Options{TokenLifetime: 90 * time.Second})
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()}}
	with := func(k, v string) string {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		f.Set(k, v)
		return f.Encode()
	}
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name       string
		method     string
		ctype      string
		body       string
		basic      [2]string
		wantStatus int
		wantError  string
	}{
		{"valid", http.MethodPost, form, good.Encode(), [2]string{}, http.StatusOK, ""},
		{"basic auth", http.MethodPost, form, "grant_type=client_credentials", [2]string{srv.ClientID(), srv.ClientSecret()}, http.StatusOK, ""},
		{"wrong secret", http.MethodPost, form, with("client_secret", "nope"), [2]string{}, http.StatusUnauthorized, "invalid_client"},
		{"wrong id", http.MethodPost, form, with("client_id", "nope"), [2]string{}, http.StatusUnauthorized, "invalid_client"},
		{"no credentials", http.MethodPost, form, "grant_type=client_credentials", [2]string{}, http.StatusUnauthorized, "invalid_client"},
		{"other grant", http.MethodPost, form, with("grant_type", "password"), [2]string{}, http.StatusBadRequest, "unsupported_grant_type"},
		{"no grant", http.MethodPost, form, "client_id=x", [2]string{}, http.StatusBadRequest, "invalid_request"},
		{"garbage form", http.MethodPost, form, "%zz=%%", [2]string{}, http.StatusBadRequest, "invalid_request"},
		{"JSON body", http.MethodPost, "application/json", `{"grant_type":"client_credentials"}`, [2]string{}, http.StatusBadRequest, "invalid_request"},
		{"no content type", http.MethodPost, "", good.Encode(), [2]string{}, http.StatusBadRequest, "invalid_request"},
		{"GET", http.MethodGet, "", "", [2]string{}, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Header
			if tt.basic[0] != "" {
				r, _ := http.NewRequest(http.MethodGet, "/", nil)
				r.SetBasicAuth(tt.basic[0], tt.basic[1])
				h = r.Header
			}
			status, v, _ := call(t, srv, tt.method, partner.PathToken, tt.ctype, tt.body, h)
			if status != tt.wantStatus {
				t.Fatalf("POST %s = %d %v, want %d", partner.PathToken, status, v, tt.wantStatus)
			}
			if tt.wantError != "" && v["error"] != tt.wantError {
				t.Errorf("error = %v, want %q", v["error"], tt.wantError)
			}
			if status == http.StatusOK {
				if v["token_type"] != "Bearer" || v["expires_in"] != 90.0 || v["access_token"] == "" {
					t.Errorf("token answer = %v, want a Bearer token for 90 s", v)
				}
			}
		})
	}
}

func TestBearerRequired(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	srv := NewServer(t, Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	valid := token(t, srv)
	tests := []struct {
		name   string
		header http.Header
		before func()
		want   int
	}{
		{"valid", valid, nil, http.StatusOK},
		{"lower-case scheme", http.Header{"Authorization": {"bearer " + strings.TrimPrefix(valid.Get("Authorization"), "Bearer ")}}, nil, http.StatusOK},
		{"none", nil, nil, http.StatusUnauthorized},
		{"unknown", http.Header{"Authorization": {"Bearer made-up"}}, nil, http.StatusUnauthorized},
		{"basic", http.Header{"Authorization": {"Basic eDp5"}}, nil, http.StatusUnauthorized},
		{"expired by time", valid, func() { advance(time.Hour) }, http.StatusUnauthorized},
		{"expired on demand", nil, func() { srv.ExpireTokens() }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil && tt.before != nil {
				h = token(t, srv)
			}
			if tt.before != nil {
				tt.before()
			}
			status, v, hdr := call(t, srv, http.MethodGet, partner.PathTickets, "", "", h)
			if status != tt.want {
				t.Fatalf("GET %s = %d %v, want %d", partner.PathTickets, status, v, tt.want)
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", hdr.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestListValidation(t *testing.T) {
	srv := NewServer(t, Options{})
	srv.Seed(3, 1)
	auth := token(t, srv)
	tests := []struct {
		query     string
		wantParam string // the parameter a 400 names; "" for 200
	}{
		{"", ""},
		{"?limit=0", ""},
		{"?limit=1000&offset=999999999999", ""},
		{"?state=pending&externally_processed=false&ticket_number=1234567", ""},
		{"?unknown=ignored", ""},
		{"?limit=1001", "limit"},
		{"?limit=-1", "limit"},
		{"?limit=ten", "limit"},
		{"?offset=-1", "offset"},
		{"?offset=1e3", "offset"},
		{"?state=open", "state"},
		{"?state=", "state"},
		{"?externally_processed=maybe", "externally_processed"},
		{"?ticket_number=0", "ticket_number"},
		{"?ticket_number=abc", "ticket_number"},
		{"?limit=%zz", "query"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, v, hdr := call(t, srv, http.MethodGet, partner.PathTickets+tt.query, "", "", auth)
			if tt.wantParam == "" {
				if status != http.StatusOK {
					t.Errorf("GET %s = %d %v, want 200", tt.query, status, v)
				}
				return
			}
			detail, _ := v["detail"].(string)
			if status != http.StatusBadRequest || !strings.Contains(detail, `"`+tt.wantParam+`"`) {
				t.Errorf("GET %s = %d %q, want 400 naming %q", tt.query, status, detail, tt.wantParam)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("GET %s: Content-Type = %q, want application/problem+json", tt.query, ct)
			}
		})
	}
}

func TestListEnvelope(t *testing.T) {
	srv := NewServer(t, Options{})
	tickets := srv.Seed(5, 1)
	status, v, _ := call(t, srv, http.MethodGet, partner.PathTickets+"?limit=2&offset=3&state=pending", "", "", token(t, srv))
	if status != http.StatusOK {
		t.Fatalf("GET = %d %v", status, v)
	}
	wantQuery := map[string]any{"limit": 2.0, "offset": 3.0, "state": "pending"}
	if diff := cmp.Diff(wantQuery, v["query"]); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	result := v["result"].([]any)
	if v["total"] != 5.0 || len(result) != 2 || result[0].(map[string]any)["id"] != tickets[3].ID {
		t.Errorf("envelope = total %v, %d results, want total 5 and tickets 3 and 4", v["total"], len(result))
	}
}

func TestRoutingErrors(t *testing.T) {
	srv := NewServer(t, Options{})
	auth := token(t, srv)
	tests := []struct {
		method, path string
		want         int
		wantAllow    string
	}{
		{http.MethodGet, "/v2/unknown", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, partner.PathTickets + "/", http.StatusNotFound, ""},
		{http.MethodGet, partner.PathTickets + "/nope", http.StatusNotFound, ""},
		{http.MethodGet, partner.PathConnectors + "/nope", http.StatusNotFound, ""},
		{http.MethodGet, partner.PathSessions + "/nope", http.StatusNotFound, ""},
		{http.MethodPost, partner.PathSessions + "/nope" + partner.PathInterruptSuffix, http.StatusNotFound, ""},
		{http.MethodDelete, partner.PathTickets, http.StatusMethodNotAllowed, "GET"},
		{http.MethodPut, partner.PathTickets + "/x", http.StatusMethodNotAllowed, "GET, PATCH"},
		{http.MethodGet, partner.PathSessions + "/x" + partner.PathInterruptSuffix, http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/_fake/nope", http.StatusNotFound, ""},
		{http.MethodPut, "/_fake/faults", http.StatusMethodNotAllowed, "DELETE, GET, POST"},
	}
	for _, tt := range tests {
		status, v, hdr := call(t, srv, tt.method, tt.path, "", "", auth)
		if status != tt.want || v["status"] != float64(tt.want) || v["title"] != http.StatusText(tt.want) {
			t.Errorf("%s %s = %d %v, want %d with a problem document", tt.method, tt.path, status, v, tt.want)
		}
		if got := hdr.Get("Allow"); got != tt.wantAllow {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.wantAllow)
		}
	}
}

func TestTicketWrite(t *testing.T) {
	srv := NewServer(t, Options{})
	id := srv.Seed(1, 1)[0].ID
	auth := token(t, srv)
	long := strings.Repeat("x", 256)
	tests := []struct {
		name, ctype, body string
		want              int
		wantDetail        string
	}{
		{"both", "application/json", `{"external_reference":"s-1","externally_processed":true}`, http.StatusOK, ""},
		{"one", "", `{"externally_processed":false}`, http.StatusOK, ""},
		{"unknown field", "application/json", `{"state":"closed"}`, http.StatusBadRequest, `unknown field "state"`},
		{"wrong type", "application/json", `{"externally_processed":"yes"}`, http.StatusBadRequest, "externally_processed"},
		{"too long", "application/json", `{"external_reference":"` + long + `"}`, http.StatusBadRequest, "external_reference"},
		{"empty", "application/json", `{}`, http.StatusBadRequest, "neither"},
		{"trailing", "application/json", `{"externally_processed":true} {}`, http.StatusBadRequest, "after the JSON value"},
		{"malformed", "application/json", `{"externally_processed":`, http.StatusBadRequest, "invalid JSON"},
		{"form", "application/x-www-form-urlencoded", `externally_processed=true`, http.StatusBadRequest, "content type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, v, _ := call(t, srv, partner.TicketWriteMethod, partner.PathTickets+"/"+id, tt.ctype, tt.body, auth)
			detail, _ := v["detail"].(string)
			if status != tt.want || !strings.Contains(detail, tt.wantDetail) {
				t.Errorf("PATCH %s = %d %q, want %d mentioning %q", tt.body, status, detail, tt.want, tt.wantDetail)
			}
		})
	}
	got, _ := srv.Ticket(id)
	if got.ExternalReference != "s-1" || got.ExternallyProcessed {
		t.Errorf("ticket = %q, %v, want \"s-1\", false", got.ExternalReference, got.ExternallyProcessed)
	}
}

func TestFaults(t *testing.T) {
	srv := NewServer(t, Options{})
	auth := token(t, srv)
	get := func() (int, http.Header) {
		status, _, hdr := call(t, srv, http.MethodGet, partner.PathTickets, "", "", auth)
		return status, hdr
	}
	if err := srv.SetFaults(Faults{RateLimited: 2, RetryAfter: 1500 * time.Millisecond, ServerErrors: 1, ServerErrorStatus: 504}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{429, 429, 504, 200} {
		status, hdr := get()
		if status != want {
			t.Errorf("request %d = %d, want %d", i, status, want)
		}
		if want == 429 && hdr.Get("Retry-After") != "2" {
			t.Errorf("request %d: Retry-After = %q, want \"2\" (rounded up)", i, hdr.Get("Retry-After"))
		}
	}

	// Faults restricted to a path leave others alone.
	if err := srv.SetFaults(Faults{ServerErrors: -1, PathPrefix: partner.PathConnectors}); err != nil {
		t.Fatal(err)
	}
	if status, _ := get(); status != http.StatusOK {
		t.Errorf("tickets with connector faults = %d, want 200", status)
	}
	if status, _, _ := call(t, srv, http.MethodGet, partner.PathConnectors, "", "", auth); status != http.StatusServiceUnavailable {
		t.Errorf("connectors with connector faults = %d, want 503", status)
	}

	// A hanging request is released when the faults are cleared.
	if err := srv.SetFaults(Faults{Hang: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		status, _, _ := call(t, srv, http.MethodGet, partner.PathTickets, "", "", auth)
		done <- status
	}()
	deadline := time.Now().Add(time.Minute)       // a bound on the wait, not a speed
	for srv.Requests()[partner.PathTickets] < 6 { // the five above and this one
		if time.Now().After(deadline) {
			t.Fatal("the hanging request never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case status := <-done:
		t.Fatalf("hanging request answered %d", status)
	case <-time.After(20 * time.Millisecond):
	}
	srv.ClearFaults()
	if status := <-done; status != http.StatusOK {
		t.Errorf("released request = %d, want 200", status)
	}

	for _, bad := range []Faults{{Latency: -1}, {RateLimited: -2}, {ServerErrorStatus: 404}, {RetryAfter: -time.Second}} {
		if err := srv.SetFaults(bad); err == nil {
			t.Errorf("SetFaults(%+v) = nil, want an error", bad)
		}
	}
}

func TestHangEndsWithRequestContext(t *testing.T) {
	srv := NewServer(t, Options{})
	if err := srv.SetFaults(Faults{Hang: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+partner.PathTickets, nil)
	if resp, err := srv.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request to a hanging fake = %d, want a context error", resp.StatusCode)
	}
}

func TestSteeringOverHTTP(t *testing.T) {
	srv := NewServer(t, Options{})
	tk := srv.Seed(1, 1)[0]
	auth := token(t, srv)

	status, v, _ := call(t, srv, http.MethodPost, "/_fake/faults", "application/json",
		`{"latency":"1ms","rate_limited":1,"retry_after":"3s","path_prefix":"/v2/"}`, nil)
	want := map[string]any{"latency": "1ms", "rate_limited": 1.0, "retry_after": "3s", "path_prefix": "/v2/"}
	if diff := cmp.Diff(want, v); status != http.StatusOK || diff != "" {
		t.Errorf("POST /_fake/faults = %d, (-want +got):\n%s", status, diff)
	}
	if got := srv.Faults(); got.RetryAfter != 3*time.Second || got.RateLimited != 1 {
		t.Errorf("Faults() = %+v, want the posted faults", got)
	}
	if status, _, hdr := call(t, srv, http.MethodGet, partner.PathTickets, "", "", auth); status != 429 || hdr.Get("Retry-After") != "3" {
		t.Errorf("GET after steering = %d, Retry-After %q, want 429, 3", status, hdr.Get("Retry-After"))
	}
	for _, body := range []string{`{"latency":"soon"}`, `{"rate_limited":-5}`, `{"hang":"yes"}`, `{"bogus":1}`, `{`} {
		if status, _, _ := call(t, srv, http.MethodPost, "/_fake/faults", "application/json", body, nil); status != http.StatusBadRequest {
			t.Errorf("POST /_fake/faults %s = %d, want 400", body, status)
		}
	}
	if status, _, _ := call(t, srv, http.MethodDelete, "/_fake/faults", "", "", nil); status != http.StatusNoContent || srv.Faults() != (Faults{}) {
		t.Errorf("DELETE /_fake/faults = %d, faults %+v, want 204 and none", status, srv.Faults())
	}

	status, v, _ = call(t, srv, http.MethodGet, "/_fake/requests", "", "", nil)
	if status != http.StatusOK || v[partner.PathTickets] != 1.0 || v[partner.PathToken] != 1.0 {
		t.Errorf("GET /_fake/requests = %d %v, want one token and one ticket request", status, v)
	}
	call(t, srv, http.MethodDelete, "/_fake/requests", "", "", nil)
	if got := srv.Requests(); len(got) != 0 {
		t.Errorf("Requests() after DELETE = %v, want none", got)
	}

	if status, _, _ := call(t, srv, http.MethodPost, "/_fake/tokens/expire", "", "", nil); status != http.StatusNoContent {
		t.Errorf("POST /_fake/tokens/expire = %d, want 204", status)
	}
	if status, _, _ := call(t, srv, http.MethodGet, partner.PathTickets, "", "", auth); status != http.StatusUnauthorized {
		t.Errorf("GET with an expired token = %d, want 401", status)
	}

	status, v, _ = call(t, srv, http.MethodPost, "/_fake/tickets/"+tk.ID+"/state", "application/json", `{"state":"closed"}`, nil)
	if status != http.StatusOK || v["state"] != "closed" || v["finished_at"] == nil {
		t.Errorf("POST state = %d %v, want the closed ticket", status, v)
	}
	if status, _, _ := call(t, srv, http.MethodPost, "/_fake/tickets/"+tk.ID+"/state", "", `{"state":"gone"}`, nil); status != http.StatusBadRequest {
		t.Errorf("POST unknown state = %d, want 400", status)
	}
	if status, _, _ := call(t, srv, http.MethodPost, "/_fake/tickets/nope/state", "", `{"state":"closed"}`, nil); status != http.StatusNotFound {
		t.Errorf("POST state of unknown ticket = %d, want 404", status)
	}
}

var (
	uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	vinRE  = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)
)

func TestSeed(t *testing.T) {
	a, b := New(Options{}), New(Options{})
	ta, tb := a.Seed(40, 7), b.Seed(40, 7)
	ids := func(ts []partner.Ticket) (out []string) {
		for _, t := range ts {
			out = append(out, t.ID, strconv.FormatInt(t.TicketNumber, 10), *t.VIN, *t.CustomerConnectorID)
		}
		return out
	}
	if diff := cmp.Diff(ids(ta), ids(tb)); diff != "" {
		t.Errorf("Seed(40, 7) differs between fakes (-a +b):\n%s", diff)
	}
	if other := New(Options{}).Seed(40, 8); other[0].ID == ta[0].ID {
		t.Errorf("Seed(40, 8) = Seed(40, 7): the seed is ignored")
	}

	conns := a.Connectors()
	if len(conns) != 40+11 {
		t.Errorf("connectors = %d, want 51", len(conns))
	}
	for _, tk := range ta {
		if !uuidV4.MatchString(tk.ID) || tk.State != partner.TicketPending || tk.TicketNumber < 1_000_000 || tk.TicketNumber > 99_999_999 {
			t.Errorf("ticket %s #%d %s: want a v4 UUID, 7-8 digits, pending", tk.ID, tk.TicketNumber, tk.State)
		}
		c, ok := a.LookupConnector(*tk.CustomerConnectorID)
		if !ok || c.Free() || *c.ActiveTicketID != tk.ID || *c.VINNumber != *tk.VIN {
			t.Errorf("connector of ticket %s = %+v, want busy with it and the same VIN", tk.ID, c)
		}
	}
	free := 0
	for _, c := range conns {
		if c.Free() {
			free++
		}
		if !vinRE.MatchString(*c.VINNumber) || vinCheckDigit(*c.VINNumber) != (*c.VINNumber)[8] {
			t.Errorf("VIN %s: want 17 valid characters and a valid check digit", *c.VINNumber)
		}
		if len(c.Name) < 5 || len(c.Name) > 6 {
			t.Errorf("serial number %q, want 5 or 6 digits", c.Name)
		}
	}
	if free != 11 {
		t.Errorf("free connectors = %d, want 11", free)
	}
}

func TestVINCheckDigit(t *testing.T) {
	// Published examples with valid check digits.
	for _, vin := range []string{"1M8GDM9AXKP042788", "11111111111111111", "1HGCM82633A004352"} {
		if got := vinCheckDigit(vin); got != vin[8] {
			t.Errorf("vinCheckDigit(%s) = %c, want %c", vin, got, vin[8])
		}
	}
}

func TestWorld(t *testing.T) {
	f := New(Options{})
	c, err := f.AddConnector(partner.Connector{Name: "23568", IsOnline: true})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := f.AddTicket(partner.Ticket{TicketNumber: 7848095, CustomerConnectorID: &c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddTicket(partner.Ticket{TicketNumber: 7848095}); err == nil {
		t.Errorf("AddTicket(duplicate number) = nil, want an error")
	}
	if _, err := f.AddTicket(partner.Ticket{ID: tk.ID}); err == nil {
		t.Errorf("AddTicket(duplicate id) = nil, want an error")
	}
	if _, err := f.AddTicket(partner.Ticket{State: "open"}); err == nil {
		t.Errorf("AddTicket(state open) = nil, want an error")
	}
	if _, err := f.AddConnector(partner.Connector{Name: "23568"}); err == nil {
		t.Errorf("AddConnector(duplicate name) = nil, want an error")
	}

	lookups := []struct {
		key    string
		wantID string
	}{
		{"7848095", tk.ID},
		{tk.ID, tk.ID},
		{"1234567", ""},
		{"", ""},
	}
	for _, l := range lookups {
		got, ok := f.LookupTicket(l.key)
		if ok != (l.wantID != "") || got.ID != l.wantID {
			t.Errorf("LookupTicket(%q) = %q, %v, want %q", l.key, got.ID, ok, l.wantID)
		}
	}
	for _, key := range []string{"23568", c.ID} {
		if got, ok := f.LookupConnector(key); !ok || got.ID != c.ID || got.Free() {
			t.Errorf("LookupConnector(%q) = %+v, %v, want the busy connector %s", key, got, ok, c.ID)
		}
	}

	// Records handed out are copies.
	*tk.CustomerConnectorID = "changed"
	if again, _ := f.Ticket(tk.ID); *again.CustomerConnectorID != c.ID {
		t.Errorf("changing a returned ticket changed the fake")
	}

	steps := []struct {
		state    partner.TicketState
		wantFree bool
	}{
		{partner.TicketInProgress, false},
		{partner.TicketClosed, true},
		{partner.TicketPending, false},
		{partner.TicketCancelled, true},
	}
	for _, s := range steps {
		if err := f.SetTicketState(tk.ID, s.state); err != nil {
			t.Fatalf("SetTicketState(%s) = %v", s.state, err)
		}
		got, _ := f.LookupConnector(c.ID)
		if got.Free() != s.wantFree {
			t.Errorf("after SetTicketState(%s): connector Free() = %v, want %v", s.state, got.Free(), s.wantFree)
		}
	}
	final, _ := f.Ticket(tk.ID)
	if final.AssignedAt == nil || final.FinishedAt == nil {
		t.Errorf("ticket after in_progress and cancelled: assigned_at %v, finished_at %v, want both set", final.AssignedAt, final.FinishedAt)
	}
	if err := f.SetTicketState("nope", partner.TicketClosed); err == nil {
		t.Errorf("SetTicketState(unknown) = nil, want ErrNotFound")
	}
}

func TestSessionEndpoints(t *testing.T) {
	srv := NewServer(t, Options{})
	auth := token(t, srv)
	status, v, _ := call(t, srv, http.MethodGet, partner.PathSessions, "", "", auth)
	if status != http.StatusOK || v["total"] != 0.0 || len(v["result"].([]any)) != 0 {
		t.Errorf("GET sessions without backend = %d %v, want an empty list", status, v)
	}

	srv.SetSessionBackend(oneSession{})
	status, v, _ = call(t, srv, http.MethodGet, partner.PathSessions+"?limit=5", "", "", auth)
	result, _ := v["result"].([]any)
	if status != http.StatusOK || v["total"] != 1.0 || len(result) != 1 {
		t.Fatalf("GET sessions = %d %v, want one session", status, v)
	}
	// Jifeline writes session timestamps with milliseconds and no colon in the offset.
	jifelineTime := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`)
	if s := result[0].(map[string]any); s["id"] != "s1" || !jifelineTime.MatchString(s["created_at"].(string)) {
		t.Errorf("session = %v, want id s1 and created_at like 2019-08-24T14:15:22.651+0000", s)
	}
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, partner.PathSessions + "/s1", http.StatusOK},
		{http.MethodGet, partner.PathSessions + "/s2", http.StatusNotFound},
		{http.MethodPost, partner.PathSessions + "/s1" + partner.PathInterruptSuffix, http.StatusConflict},
		{http.MethodPost, partner.PathSessions + "/s2" + partner.PathInterruptSuffix, http.StatusNotFound},
		{http.MethodGet, partner.PathSessions + "?offset=x", http.StatusBadRequest},
	}
	for _, tt := range tests {
		if status, v, _ := call(t, srv, tt.method, tt.path, "", "", auth); status != tt.want {
			t.Errorf("%s %s = %d %v, want %d", tt.method, tt.path, status, v, tt.want)
		}
	}
}

func TestTicketsInOrder(t *testing.T) {
	f := New(Options{})
	seeded := f.Seed(5, 3)
	extra, err := f.AddTicket(partner.Ticket{})
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, tk := range append(seeded, extra) {
		want = append(want, tk.ID)
	}
	for _, tk := range f.Tickets() {
		got = append(got, tk.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tickets() ids (-want +got):\n%s", diff)
	}
}

package partnertest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/obdorch/obdorch/partner"
)

const (
	steerPrefix      = "/_fake/"
	defaultPageLimit = 25 // Jifeline's default limit
	maxFormBody      = 64 << 10
)

// Handler serves the fake Partner API:
//
//	POST  /oauth2/token                       client credentials (form or HTTP Basic)
//	GET   /v2/tickets/tickets                 limit, offset, state, externally_processed, ticket_number
//	GET   /v2/tickets/tickets/{id}
//	PATCH /v2/tickets/tickets/{id}            {"external_reference": "...", "externally_processed": true}
//	GET   /v2/customers/connectors            limit, offset
//	GET   /v2/customers/connectors/{id}
//	GET   /v2/openobd/sessions                limit, offset
//	GET   /v2/openobd/sessions/{id}
//	POST  /v2/openobd/sessions/{id}/interrupt
//
// (the paths are partner.PathTickets and the others). Everything but the token endpoint needs a
// valid bearer token. Errors are RFC 7807 problem documents (OAuth2 errors on the token endpoint):
// 400 naming the bad parameter, 401, 404 for unknown paths and records, 405 with Allow.
//
// Steering, for a fake in another process (not counted, no token, no faults):
//
//	GET    /_fake/faults                 the faults in effect, as JSON
//	POST   /_fake/faults                 replace them: {"hang": false, "latency": "250ms",
//	                                     "rate_limited": 3, "retry_after": "2s", "server_errors": -1,
//	                                     "server_error_status": 502, "path_prefix": "/v2/"}
//	DELETE /_fake/faults                 clear them
//	POST   /_fake/tokens/expire          expire every access token
//	GET    /_fake/requests               request counts by path, as a JSON object
//	DELETE /_fake/requests               reset the counts
//	POST   /_fake/tickets/{id}/state     {"state": "closed"}: see SetTicketState
//
// The steering surface has no authentication: serve a fake on loopback only.
func (f *Fake) Handler() http.Handler {
	return http.HandlerFunc(f.serveHTTP)
}

func (f *Fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, steerPrefix) {
		f.steer.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	f.requests[r.URL.Path]++
	f.mu.Unlock()
	if f.injectFaults(w, r) {
		f.api.ServeHTTP(w, r)
	}
}

// methods routes a path's requests by method and answers 405 to the others.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok {
		w.Header().Set("Allow", strings.Join(slices.Sorted(maps.Keys(m)), ", "))
		writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
		return
	}
	h(w, r)
}

func (f *Fake) apiRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(partner.PathToken, methods{http.MethodPost: f.issueToken})
	mux.Handle(partner.PathTickets, f.authed(methods{http.MethodGet: f.listTickets}))
	mux.Handle(partner.PathTickets+"/{id}", f.authed(methods{
		http.MethodGet:            f.getTicket,
		partner.TicketWriteMethod: f.writeTicket,
	}))
	mux.Handle(partner.PathConnectors, f.authed(methods{http.MethodGet: f.listConnectors}))
	mux.Handle(partner.PathConnectors+"/{id}", f.authed(methods{http.MethodGet: f.getConnector}))
	mux.Handle(partner.PathSessions, f.authed(methods{http.MethodGet: f.listSessions}))
	mux.Handle(partner.PathSessions+"/{id}", f.authed(methods{http.MethodGet: f.getSession}))
	mux.Handle(partner.PathSessions+"/{id}"+partner.PathInterruptSuffix, f.authed(methods{http.MethodPost: f.interruptSession}))
	mux.HandleFunc("/", notFound)
	return mux
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotFound, "no such resource")
}

// problem is an RFC 7807 problem document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	b, _ := json.Marshal(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// oauthError answers the token endpoint the way RFC 6749 section 5.2 says.
func oauthError(w http.ResponseWriter, status int, code string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth2"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code})
}

func (f *Fake) issueToken(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(f.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(f.opts.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}

	token := "fake-" + rand.Text()
	now := f.now()
	f.mu.Lock()
	maps.DeleteFunc(f.tokens, func(_ string, exp time.Time) bool { return !now.Before(exp) })
	f.tokens[token] = now.Add(f.opts.TokenLifetime)
	if len(f.issued) >= maxIssued {
		f.issued = f.issued[1:]
	}
	f.issued = append(f.issued, token)
	f.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"expires_in":   int64(max(1, f.opts.TokenLifetime.Round(time.Second)/time.Second)),
		"token_type":   "Bearer",
	})
}

// authed lets through requests with a valid, unexpired bearer token.
func (f *Fake) authed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			f.mu.Lock()
			exp, ok := f.tokens[auth[7:]]
			f.mu.Unlock()
			if ok && f.now().Before(exp) {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "missing, invalid or expired access token")
	})
}

// envelope is the Partner API list answer.
type envelope[T any] struct {
	Query  map[string]any `json:"query"`
	Result []T            `json:"result"`
	Total  int            `json:"total"`
}

// paramError is a bad query parameter.
type paramError struct {
	name, reason string
}

func (e *paramError) Error() string {
	return fmt.Sprintf("invalid query parameter %q: %s", e.name, e.reason)
}

// listQuery parses the query of a list request: limit and offset, and whatever filters the
// caller reads with its parse function.
type listQuery struct {
	values url.Values
	limit  int
	offset int64
	echo   map[string]any
	err    error
}

func parseListQuery(raw string) *listQuery {
	q := &listQuery{limit: defaultPageLimit, echo: map[string]any{}}
	var err error
	if q.values, err = url.ParseQuery(raw); err != nil {
		q.err = &paramError{"query", "malformed query string"}
		return q
	}
	q.parse("limit", "an integer from 0 to 1000", func(v string) (any, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > partner.MaxPageSize {
			return nil, errors.New("out of range")
		}
		q.limit = n
		return n, nil
	})
	q.parse("offset", "a non-negative integer", func(v string) (any, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errors.New("out of range")
		}
		q.offset = n
		return n, nil
	})
	q.echo["limit"], q.echo["offset"] = q.limit, q.offset
	return q
}

// parse reads parameter name, when present, with fn; want describes valid values for the error.
func (q *listQuery) parse(name, want string, fn func(string) (any, error)) {
	if q.err != nil || !q.values.Has(name) {
		return
	}
	v, err := fn(q.values.Get(name))
	if err != nil {
		q.err = &paramError{name, "want " + want}
		return
	}
	q.echo[name] = v
}

func (f *Fake) listTickets(w http.ResponseWriter, r *http.Request) {
	q := parseListQuery(r.URL.RawQuery)
	var (
		state        partner.TicketState
		processed    *bool
		ticketNumber int64
	)
	q.parse("state", "one of prepared, pending, in_progress, outsourced, closed, cancelled", func(v string) (any, error) {
		var err error
		state, err = partner.ParseTicketState(v)
		return state, err
	})
	q.parse("externally_processed", "true or false", func(v string) (any, error) {
		b, err := strconv.ParseBool(v)
		processed = &b
		return b, err
	})
	q.parse("ticket_number", "a positive integer", func(v string) (any, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n <= 0 {
			err = errors.New("not positive")
		}
		ticketNumber = n
		return n, err
	})
	if q.err != nil {
		writeProblem(w, http.StatusBadRequest, q.err.Error())
		return
	}

	total := 0
	f.mu.Lock()
	page := make([]partner.Ticket, 0, min(int64(q.limit), max(0, int64(len(f.ticketOrder))-q.offset)))
	for _, id := range f.ticketOrder {
		t := f.tickets[id]
		if (state != "" && t.State != state) ||
			(processed != nil && t.ExternallyProcessed != *processed) ||
			(ticketNumber != 0 && t.TicketNumber != ticketNumber) {
			continue
		}
		if int64(total) >= q.offset && len(page) < q.limit {
			page = append(page, t) // a shallow copy: stored values are never changed in place
		}
		total++
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope[partner.Ticket]{Query: q.echo, Result: page, Total: total})
}

func (f *Fake) getTicket(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	t, ok := f.tickets[id]
	f.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("ticket %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// decodeBody decodes a small JSON body into v, strictly: unknown fields, trailing data and a
// content type other than JSON are errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fmt.Errorf("content type %q, want application/json", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON body: data after the JSON value")
	}
	return nil
}

func (f *Fake) writeTicket(w http.ResponseWriter, r *http.Request) {
	var u partner.TicketUpdate
	if err := decodeBody(w, r, &u); err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case u.ExternalReference == nil && u.ExternallyProcessed == nil:
		writeProblem(w, http.StatusBadRequest, "body sets neither external_reference nor externally_processed")
		return
	case u.ExternalReference != nil && utf8.RuneCountInString(*u.ExternalReference) > 255:
		writeProblem(w, http.StatusBadRequest, `field "external_reference": longer than 255 characters`)
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	t, ok := f.tickets[id]
	if ok {
		if u.ExternalReference != nil {
			t.ExternalReference = *u.ExternalReference
		}
		if u.ExternallyProcessed != nil {
			t.ExternallyProcessed = *u.ExternallyProcessed
		}
		t.UpdatedAt = partner.Time{Time: f.now()}
		f.tickets[id] = t
	}
	f.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("ticket %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (f *Fake) listConnectors(w http.ResponseWriter, r *http.Request) {
	q := parseListQuery(r.URL.RawQuery)
	if q.err != nil {
		writeProblem(w, http.StatusBadRequest, q.err.Error())
		return
	}
	f.mu.Lock()
	ids := window(f.connectorOrder, q.offset, q.limit)
	page := make([]any, len(ids))
	for i, id := range ids {
		page[i] = f.connectorJSON(f.connectors[id])
	}
	total := len(f.connectorOrder)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, envelope[any]{Query: q.echo, Result: page, Total: total})
}

func (f *Fake) getConnector(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	c, ok := f.connectors[id]
	if !ok && f.opts.ConnectorShape == ConnectorShapeInteger {
		for _, cid := range f.connectorOrder { // by the integer id of this shape
			if strconv.FormatInt(f.connectors[cid].Number, 10) == id {
				c, ok = f.connectors[cid], true
				break
			}
		}
	}
	f.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("connector %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, f.connectorJSON(c))
}

// connectorJSON is c in the fake's connector shape.
func (f *Fake) connectorJSON(c partner.Connector) any {
	if f.opts.ConnectorShape != ConnectorShapeInteger {
		return c
	}
	return struct {
		partner.Connector
		ID   int64  `json:"id"` // shadows the embedded UUID id
		UUID string `json:"uuid"`
	}{Connector: c, ID: c.Number, UUID: c.ID}
}

// sessionJSON is a session as Jifeline writes it, created_at without a colon in the offset.
type sessionJSON struct {
	ID                  string               `json:"id"`
	AuthenticationToken string               `json:"authentication_token"`
	CreatedAt           string               `json:"created_at"`
	GRPCEndpoint        string               `json:"grpc_endpoint"`
	State               partner.SessionState `json:"state"`
}

func toSessionJSON(s partner.Session) sessionJSON {
	return sessionJSON{
		ID:                  s.ID,
		AuthenticationToken: s.AuthenticationToken,
		CreatedAt:           s.CreatedAt.UTC().Format("2006-01-02T15:04:05.000-0700"),
		GRPCEndpoint:        s.GRPCEndpoint,
		State:               s.State,
	}
}

func (f *Fake) sessionBackend() SessionBackend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backend
}

func (f *Fake) listSessions(w http.ResponseWriter, r *http.Request) {
	q := parseListQuery(r.URL.RawQuery)
	if q.err != nil {
		writeProblem(w, http.StatusBadRequest, q.err.Error())
		return
	}
	var all []sessionJSON
	if b := f.sessionBackend(); b != nil {
		for _, s := range b.ListSessions() {
			all = append(all, toSessionJSON(s))
		}
	}
	writeJSON(w, http.StatusOK, envelope[sessionJSON]{Query: q.echo, Result: window(all, q.offset, q.limit), Total: len(all)})
}

func (f *Fake) getSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var (
		s  partner.Session
		ok bool
	)
	if b := f.sessionBackend(); b != nil {
		s, ok = b.GetSession(id)
	}
	if !ok {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("session %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, toSessionJSON(s))
}

func (f *Fake) interruptSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b := f.sessionBackend()
	if b == nil {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("session %q not found", id))
		return
	}
	s, err := b.InterruptSession(id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("session %q not found", id))
	case errors.Is(err, ErrNotInterruptible):
		writeProblem(w, http.StatusConflict, fmt.Sprintf("session %q is neither active nor available", id))
	case err != nil:
		writeProblem(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, toSessionJSON(s))
	}
}

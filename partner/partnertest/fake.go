// Package partnertest is a fake of Jifeline's Partner API over real HTTP, for tests and for test
// harnesses that run it as a process of its own.
//
// The fake holds a small world of tickets and connectors (each with the VIN of a simulated
// vehicle), issues and checks OAuth2 tokens, serves the endpoints package partner calls with the
// same paths, envelopes and problem answers, and lets a test inject faults at run time: latency,
// 429 with Retry-After, 5xx, expired tokens, hanging requests. openOBD sessions come from a
// SessionBackend, normally the fake openOBD server, so that both views agree.
//
// New returns a Fake to serve with any server; NewServer starts one on an httptest.Server for a
// test. Steering over HTTP, for a fake in another process, is described at Fake.Handler.
package partnertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/obdorch/obdorch/partner"
)

// Default credentials of a fake.
const (
	DefaultClientID     = "fake-partner-client"
	DefaultClientSecret = "fake-partner-secret"
)

var (
	// ErrNotFound is returned for an unknown ticket, connector or session.
	ErrNotFound = errors.New("partnertest: not found")
	// ErrNotInterruptible is returned by a SessionBackend for a session that is neither active
	// nor available.
	ErrNotInterruptible = errors.New("partnertest: session not interruptible")
)

// Options configures a Fake. Zero values select the defaults.
type Options struct {
	// ClientID and ClientSecret are the credentials the token endpoint accepts; default
	// DefaultClientID and DefaultClientSecret.
	ClientID     string
	ClientSecret string
	// TokenLifetime is the lifetime of the access tokens issued; default one hour, as Jifeline's.
	TokenLifetime time.Duration
	// Now is the fake's clock, for token expiry and timestamps; default time.Now.
	Now func() time.Time
	// ConnectorShape is how connectors are written: ConnectorShapeUUID (the default) or
	// ConnectorShapeInteger.
	ConnectorShape ConnectorShape
}

// ConnectorShape is the JSON shape of a connector's identity; the Partner API's is not
// documented, so the fake serves either.
type ConnectorShape string

const (
	// ConnectorShapeUUID writes {"id": "<uuid>", ...}, as the seed documents show.
	ConnectorShapeUUID ConnectorShape = "uuid"
	// ConnectorShapeInteger writes {"id": 123, "uuid": "<uuid>", ...}, the Customer API's shape;
	// the integer is the connector's serial number (Name).
	ConnectorShapeInteger ConnectorShape = "integer"
)

// ParseConnectorShape returns the shape named s ("uuid" or "integer").
func ParseConnectorShape(s string) (ConnectorShape, error) {
	switch ConnectorShape(s) {
	case ConnectorShapeUUID, ConnectorShapeInteger:
		return ConnectorShape(s), nil
	}
	return "", fmt.Errorf("want %s or %s, got %q", ConnectorShapeUUID, ConnectorShapeInteger, s)
}

// SessionBackend is what the fake openOBD server provides so the openOBD session endpoints stay
// consistent with it. Its methods are called without any lock of the Fake held.
type SessionBackend interface {
	ListSessions() []partner.Session
	GetSession(id string) (partner.Session, bool)
	// InterruptSession returns an error wrapping ErrNotFound or ErrNotInterruptible (the
	// session is neither active nor available) when it cannot interrupt.
	InterruptSession(id string) (partner.Session, error)
}

// Fake is a fake Partner API. Its methods are safe for concurrent use, also while it serves.
//
// Records given to and returned by the Fake are copies: changing them does not change the
// fake's world.
type Fake struct {
	opts  Options
	api   *http.ServeMux
	steer *http.ServeMux

	mu             sync.Mutex
	tickets        map[string]partner.Ticket // by id
	ticketOrder    []string                  // ids in creation order: the listing order
	ticketNumbers  map[int64]string          // number to id
	connectors     map[string]partner.Connector
	connectorOrder []string
	connectorNames map[string]string // name to id
	tokens         map[string]time.Time
	issued         []string // recent access tokens, for leak checks
	faults         Faults
	hang           chan struct{} // closed to release hanging requests
	requests       map[string]int
	backend        SessionBackend
}

// New returns a fake with an empty world; see Seed, AddTicket and AddConnector.
func New(opts Options) *Fake {
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConnectorShape == "" {
		opts.ConnectorShape = ConnectorShapeUUID
	}
	f := &Fake{
		opts:           opts,
		tickets:        map[string]partner.Ticket{},
		ticketNumbers:  map[int64]string{},
		connectors:     map[string]partner.Connector{},
		connectorNames: map[string]string{},
		tokens:         map[string]time.Time{},
		requests:       map[string]int{},
	}
	f.api = f.apiRoutes()
	f.steer = f.steerRoutes()
	return f
}

// ClientID returns the client id the fake accepts.
func (f *Fake) ClientID() string { return f.opts.ClientID }

// ClientSecret returns the client secret the fake accepts.
func (f *Fake) ClientSecret() string { return f.opts.ClientSecret }

// AddTicket adds a ticket and returns it as stored. Missing values are filled in: a random id
// and ticket number, state pending, timestamps now. If the ticket names a known connector
// (CustomerConnectorID) and is open, that connector becomes busy with it.
func (f *Fake) AddTicket(t partner.Ticket) (partner.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addTicketLocked(t, randUint64)
}

func (f *Fake) addTicketLocked(t partner.Ticket, rnd func() uint64) (partner.Ticket, error) {
	t = cloneTicket(t)
	if t.ID == "" {
		t.ID = f.freshID(rnd, func(id string) bool { _, ok := f.tickets[id]; return ok })
	} else if _, ok := f.tickets[t.ID]; ok {
		return partner.Ticket{}, fmt.Errorf("partnertest: ticket %s exists", t.ID)
	}
	if t.TicketNumber == 0 {
		for t.TicketNumber == 0 || f.ticketNumbers[t.TicketNumber] != "" {
			t.TicketNumber = 1_000_000 + int64(rnd()%99_000_000) // 7 or 8 digits
		}
	} else if f.ticketNumbers[t.TicketNumber] != "" {
		return partner.Ticket{}, fmt.Errorf("partnertest: ticket number %d exists", t.TicketNumber)
	}
	if t.State == "" {
		t.State = partner.TicketPending
	} else if _, err := partner.ParseTicketState(string(t.State)); err != nil {
		return partner.Ticket{}, fmt.Errorf("partnertest: %w", err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = partner.Time{Time: f.now()}
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	}
	f.tickets[t.ID] = t
	f.ticketOrder = append(f.ticketOrder, t.ID)
	f.ticketNumbers[t.TicketNumber] = t.ID
	f.linkLocked(t)
	return cloneTicket(t), nil
}

// linkLocked makes the connector of an open ticket busy with it, and frees it when the ticket is
// closed or cancelled.
func (f *Fake) linkLocked(t partner.Ticket) {
	if t.CustomerConnectorID == nil {
		return
	}
	c, ok := f.connectors[*t.CustomerConnectorID]
	if !ok {
		return
	}
	switch {
	case t.State.Open() && c.ActiveTicketID == nil:
		c.ActiveTicketID = ptr(t.ID)
		c.ConnectionID = clonePtr(t.ConnectionID)
	case !t.State.Open() && c.ActiveTicketID != nil && *c.ActiveTicketID == t.ID:
		c.ActiveTicketID, c.ConnectionID = nil, nil
	default:
		return
	}
	f.connectors[c.ID] = c
}

// AddConnector adds a connector and returns it as stored. Missing values are filled in: a random
// id, serial number (Name) and VIN. IsOnline is taken as given.
func (f *Fake) AddConnector(c partner.Connector) (partner.Connector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addConnectorLocked(c, randUint64)
}

func (f *Fake) addConnectorLocked(c partner.Connector, rnd func() uint64) (partner.Connector, error) {
	c = cloneConnector(c)
	if c.ID == "" {
		c.ID = f.freshID(rnd, func(id string) bool { _, ok := f.connectors[id]; return ok })
	} else if _, ok := f.connectors[c.ID]; ok {
		return partner.Connector{}, fmt.Errorf("partnertest: connector %s exists", c.ID)
	}
	if c.Name == "" {
		for c.Name == "" || f.connectorNames[c.Name] != "" {
			c.Name = strconv.FormatUint(10_000+rnd()%990_000, 10) // 5 or 6 digits
		}
	} else if f.connectorNames[c.Name] != "" {
		return partner.Connector{}, fmt.Errorf("partnertest: connector name %s exists", c.Name)
	}
	if c.VINNumber == nil {
		c.VINNumber = ptr(newVIN(rnd))
	}
	if !c.HasNumber {
		// The serial number, when it is one, else the connector's position.
		n, err := strconv.ParseInt(c.Name, 10, 64)
		if err != nil || n <= 0 {
			n = int64(len(f.connectorOrder) + 1)
		}
		c.Number, c.HasNumber = n, true
	}
	f.connectors[c.ID] = c
	f.connectorOrder = append(f.connectorOrder, c.ID)
	f.connectorNames[c.Name] = c.ID
	return cloneConnector(c), nil
}

func (f *Fake) freshID(rnd func() uint64, taken func(string) bool) string {
	for {
		if id := newUUID(rnd); !taken(id) {
			return id
		}
	}
}

// Ticket returns the ticket with this id.
func (f *Fake) Ticket(id string) (partner.Ticket, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tickets[id]
	return cloneTicket(t), ok
}

// Tickets returns all tickets in the order they were added.
func (f *Fake) Tickets() []partner.Ticket {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]partner.Ticket, len(f.ticketOrder))
	for i, id := range f.ticketOrder {
		out[i] = cloneTicket(f.tickets[id])
	}
	return out
}

// Connectors returns all connectors in the order they were added.
func (f *Fake) Connectors() []partner.Connector {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]partner.Connector, len(f.connectorOrder))
	for i, id := range f.connectorOrder {
		out[i] = cloneConnector(f.connectors[id])
	}
	return out
}

// SetTicketState moves a ticket to state s as Jifeline would: in_progress sets assigned_at,
// closed and cancelled set finished_at and free the ticket's connector.
func (f *Fake) SetTicketState(id string, s partner.TicketState) error {
	if _, err := partner.ParseTicketState(string(s)); err != nil {
		return fmt.Errorf("partnertest: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tickets[id]
	if !ok {
		return fmt.Errorf("ticket %s: %w", id, ErrNotFound)
	}
	now := partner.Time{Time: f.now()}
	t.State, t.UpdatedAt = s, now
	switch {
	case s == partner.TicketInProgress && t.AssignedAt == nil:
		t.AssignedAt = &now
	case !s.Open():
		t.FinishedAt = &now
	}
	f.tickets[id] = t
	f.linkLocked(t)
	return nil
}

// LookupTicket resolves a ticket by its number ("7848095") or UUID.
func (f *Fake) LookupTicket(numberOrID string) (partner.Ticket, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := numberOrID
	if n, err := strconv.ParseInt(numberOrID, 10, 64); err == nil {
		id = f.ticketNumbers[n]
	}
	t, ok := f.tickets[id]
	return cloneTicket(t), ok
}

// LookupConnector resolves a connector by UUID or name (serial number).
func (f *Fake) LookupConnector(idOrName string) (partner.Connector, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.connectors[idOrName]
	if !ok {
		c, ok = f.connectors[f.connectorNames[idOrName]]
	}
	return cloneConnector(c), ok
}

// SetSessionBackend makes the openOBD session endpoints serve b. Without a backend they serve an
// empty list and 404.
func (f *Fake) SetSessionBackend(b SessionBackend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = b
}

// Requests returns how many requests each path received since the start or ResetRequests,
// faulted ones included; steering requests under /_fake/ are not counted.
func (f *Fake) Requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.requests))
	for k, v := range f.requests {
		out[k] = v
	}
	return out
}

// ResetRequests sets all request counts to zero.
func (f *Fake) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.requests)
}

// maxIssued bounds the tokens IssuedTokens remembers.
const maxIssued = 10000

// IssuedTokens returns the most recent access tokens the fake has issued (up
// to 10,000), so tests can check that none of them leaks into logs or
// responses.
func (f *Fake) IssuedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

// ExpireTokens makes every access token issued so far invalid, as if their hour had passed.
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

func (f *Fake) now() time.Time { return f.opts.Now() }

func randUint64() uint64 { return rand.Uint64() }

func ptr[T any](v T) *T { return &v }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// cloneTicket copies what t points to, so that the fake's world and its callers share nothing.
func cloneTicket(t partner.Ticket) partner.Ticket {
	t.AssignedAt = clonePtr(t.AssignedAt)
	t.FinishedAt = clonePtr(t.FinishedAt)
	t.CancelReasonID = clonePtr(t.CancelReasonID)
	t.ConnectionID = clonePtr(t.ConnectionID)
	t.CustomerID = clonePtr(t.CustomerID)
	t.CustomerConnectorID = clonePtr(t.CustomerConnectorID)
	t.CustomerChannelID = clonePtr(t.CustomerChannelID)
	t.OperatorChannelID = clonePtr(t.OperatorChannelID)
	t.OperatorID = clonePtr(t.OperatorID)
	t.FirstLocalAddedAt = clonePtr(t.FirstLocalAddedAt)
	t.SourceProviderID = clonePtr(t.SourceProviderID)
	t.VIN = clonePtr(t.VIN)
	t.VoucherCode = clonePtr(t.VoucherCode)
	t.OutsourceProviderID = clonePtr(t.OutsourceProviderID)
	t.OutsourceTicketID = clonePtr(t.OutsourceTicketID)
	return t
}

func cloneConnector(c partner.Connector) partner.Connector {
	c.CustomerID = clonePtr(c.CustomerID)
	c.ConnectionID = clonePtr(c.ConnectionID)
	c.ActiveTicketID = clonePtr(c.ActiveTicketID)
	c.VINNumber = clonePtr(c.VINNumber)
	return c
}

// window returns the items of s from offset, at most limit of them.
func window[T any](s []T, offset int64, limit int) []T {
	if offset >= int64(len(s)) {
		return []T{}
	}
	s = s[offset:]
	return slices.Clip(s[:min(limit, len(s))])
}

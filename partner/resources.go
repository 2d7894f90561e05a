package partner

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// Page sizes of the list calls (the API's limit parameter).
const (
	MaxPageSize     = 1000
	DefaultPageSize = 100
)

// Paging selects a window of a list: the Offset'th item onwards, fetched PageSize at a time.
type Paging struct {
	// PageSize is the number of items per request, 1 to MaxPageSize; 0 means DefaultPageSize.
	PageSize int
	// Offset is the number of items to skip.
	Offset int64
}

func (p Paging) values() (url.Values, error) {
	if p.PageSize < 0 || p.PageSize > MaxPageSize {
		return nil, fmt.Errorf("%w: page size %d out of range 0..%d", ErrInvalidArgument, p.PageSize, MaxPageSize)
	}
	if p.Offset < 0 {
		return nil, fmt.Errorf("%w: negative offset %d", ErrInvalidArgument, p.Offset)
	}
	return url.Values{}, nil
}

// TicketFilter selects tickets; the zero value selects all of them.
type TicketFilter struct {
	Paging
	// State selects tickets in this state; empty means any.
	State TicketState
	// ExternallyProcessed, when set, selects tickets whose externally_processed flag has this
	// value.
	ExternallyProcessed *bool
	// TicketNumber, when not 0, selects the ticket with this number.
	TicketNumber int64
}

func (f TicketFilter) values() (url.Values, error) {
	q, err := f.Paging.values()
	if err != nil {
		return nil, err
	}
	if f.State != "" {
		if _, err := ParseTicketState(string(f.State)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		q.Set("state", string(f.State))
	}
	if f.ExternallyProcessed != nil {
		q.Set("externally_processed", strconv.FormatBool(*f.ExternallyProcessed))
	}
	if f.TicketNumber < 0 {
		return nil, fmt.Errorf("%w: negative ticket number %d", ErrInvalidArgument, f.TicketNumber)
	}
	if f.TicketNumber != 0 {
		q.Set("ticket_number", strconv.FormatInt(f.TicketNumber, 10))
	}
	return q, nil
}

// Tickets iterates over the tickets f selects, fetching a page at a time as the loop asks for
// more; breaking out of the loop stops fetching. A failure ends the iteration with one final
// (zero Ticket, error) pair. Offset paging over a changing set can skip or repeat a ticket that
// changes state during the iteration; the caller's next pass sees it.
func (c *Client) Tickets(ctx context.Context, f TicketFilter) iter.Seq2[Ticket, error] {
	q, err := f.values()
	return list[Ticket](c, ctx, "ListTickets", "ticket list", PathTickets, q, err, f.Paging)
}

// Ticket returns the ticket with this id (a UUID).
func (c *Client) Ticket(ctx context.Context, id string) (Ticket, error) {
	var t Ticket
	if err := get(c, ctx, "GetTicket", "ticket", PathTickets, id, &t); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// TicketByNumber returns the ticket with this human-readable number, or an error wrapping
// ErrNotFound.
func (c *Client) TicketByNumber(ctx context.Context, number int64) (Ticket, error) {
	if number <= 0 {
		return Ticket{}, fmt.Errorf("partner: ticket number %d: %w: must be positive", number, ErrInvalidArgument)
	}
	for t, err := range c.Tickets(ctx, TicketFilter{TicketNumber: number, Paging: Paging{PageSize: 1}}) {
		return t, err
	}
	return Ticket{}, fmt.Errorf("partner: ticket number %d: %w", number, ErrNotFound)
}

// TicketUpdate is the part of a ticket an external system may write. Nil fields are left alone.
type TicketUpdate struct {
	ExternalReference   *string `json:"external_reference,omitempty"`
	ExternallyProcessed *bool   `json:"externally_processed,omitempty"`
}

// maxExternalReference is the documented maximum length of external_reference.
const maxExternalReference = 255

// UpdateTicket writes external_reference and/or externally_processed of the ticket with this id
// and returns the ticket as it is afterwards. Unless Config.AllowTicketWrite is set it returns an
// error wrapping ErrTicketWriteDisabled without making a request.
func (c *Client) UpdateTicket(ctx context.Context, id string, u TicketUpdate) (Ticket, error) {
	if !c.cfg.AllowTicketWrite {
		return Ticket{}, fmt.Errorf("partner: update ticket %s: %w", id, ErrTicketWriteDisabled)
	}
	if err := checkID("ticket", id); err != nil {
		return Ticket{}, err
	}
	switch {
	case u.ExternalReference == nil && u.ExternallyProcessed == nil:
		return Ticket{}, fmt.Errorf("partner: update ticket %s: %w: nothing to update", id, ErrInvalidArgument)
	case u.ExternalReference != nil && utf8.RuneCountInString(*u.ExternalReference) > maxExternalReference:
		return Ticket{}, fmt.Errorf("partner: update ticket %s: %w: external reference longer than %d characters",
			id, ErrInvalidArgument, maxExternalReference)
	}
	body, err := json.Marshal(u)
	if err != nil {
		return Ticket{}, fmt.Errorf("partner: update ticket %s: %w", id, err)
	}
	var t Ticket
	noContent := false
	err = c.do(ctx, request{op: "UpdateTicket", method: TicketWriteMethod, path: PathTickets + "/" + url.PathEscape(id), body: body},
		func(status int, b []byte) error {
			if status == http.StatusNoContent || len(b) == 0 {
				noContent = true
				return nil
			}
			return decodeRecord("ticket", b, &t)
		})
	switch {
	case err != nil:
		return Ticket{}, err
	case noContent:
		return c.Ticket(ctx, id)
	}
	return t, nil
}

// Connectors iterates over the connectors, fetching a page at a time as the loop asks for more;
// see Tickets. Connector.Free tells which ones a session may be started on.
func (c *Client) Connectors(ctx context.Context, p Paging) iter.Seq2[Connector, error] {
	q, err := p.values()
	return list[Connector](c, ctx, "ListConnectors", "connector list", PathConnectors, q, err, p)
}

// Connector returns the connector with this id (a UUID).
func (c *Client) Connector(ctx context.Context, id string) (Connector, error) {
	var v Connector
	if err := get(c, ctx, "GetConnector", "connector", PathConnectors, id, &v); err != nil {
		return Connector{}, err
	}
	return v, nil
}

// Sessions iterates over the openOBD sessions of this partner, fetching a page at a time as the
// loop asks for more; see Tickets.
func (c *Client) Sessions(ctx context.Context, p Paging) iter.Seq2[Session, error] {
	q, err := p.values()
	return list[Session](c, ctx, "ListSessions", "session list", PathSessions, q, err, p)
}

// Session returns the openOBD session with this id.
func (c *Client) Session(ctx context.Context, id string) (Session, error) {
	var s Session
	if err := get(c, ctx, "GetSession", "session", PathSessions, id, &s); err != nil {
		return Session{}, err
	}
	return s, nil
}

// InterruptSession stops an available or active openOBD session and returns it as it is
// afterwards.
func (c *Client) InterruptSession(ctx context.Context, id string) (Session, error) {
	if err := checkID("session", id); err != nil {
		return Session{}, err
	}
	var s Session
	err := c.do(ctx, request{op: "InterruptSession", method: http.MethodPost,
		path: PathSessions + "/" + url.PathEscape(id) + PathInterruptSuffix},
		func(_ int, b []byte) error { return decodeRecord("session", b, &s) })
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("partner: %w: empty %s id", ErrInvalidArgument, what)
	}
	return nil
}

// get fetches the record at collection/id into v.
func get[T any, P record[T]](c *Client, ctx context.Context, op, what, collection, id string, v P) error {
	if err := checkID(what, id); err != nil {
		return err
	}
	return c.do(ctx, request{op: op, method: http.MethodGet, path: collection + "/" + url.PathEscape(id)},
		func(_ int, b []byte) error { return decodeRecord(what, b, v) })
}

// list iterates over a paged collection; qerr is an error found in the query before any request.
func list[T any, P record[T]](c *Client, ctx context.Context, op, what, path string, q url.Values, qerr error, p Paging) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if qerr != nil {
			yield(zero, fmt.Errorf("partner: %s: %w", op, qerr))
			return
		}
		size := p.PageSize
		if size == 0 {
			size = DefaultPageSize
		}
		q := maps.Clone(q) // each iteration has its own, so the sequence may be ranged over again
		q.Set("limit", strconv.Itoa(size))
		var pg page[T]
		for offset := p.Offset; ; {
			q.Set("offset", strconv.FormatInt(offset, 10))
			err := c.do(ctx, request{op: op, method: http.MethodGet, path: path, query: q},
				func(_ int, b []byte) error { return decodePage[T, P](what, b, &pg) })
			if err != nil {
				yield(zero, err)
				return
			}
			for i := range pg.Result {
				if !yield(pg.Result[i], nil) {
					return
				}
			}
			offset += int64(len(pg.Result))
			if len(pg.Result) == 0 || offset >= pg.Total {
				return
			}
		}
	}
}

package orchestrator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"strconv"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// The read-only views: the intake lists joined with live sessions, and
// session records, lists and watches.

// ListTickets lists Partner API tickets in state (default: the intake
// state) with the session of each.
func (o *Orchestrator) ListTickets(ctx context.Context, state partner.TicketState, page Page) ([]TicketView, string, error) {
	if state == "" {
		state = o.cfg.IntakeState
	}
	offset, err := decodeOffset(page.Token)
	if err != nil {
		return nil, "", err
	}
	f := partner.TicketFilter{State: state, Paging: partner.Paging{PageSize: page.Size, Offset: offset}}
	byTicket, _ := o.liveByTarget()
	var out []TicketView
	for t, err := range o.partner.Tickets(ctx, f) {
		if err != nil {
			return nil, "", fmt.Errorf("%w: Partner API: %w", ErrUnavailable, err)
		}
		v := TicketView{Ticket: t}
		if r, ok := byTicket[t.ID]; ok {
			v.SessionID, v.SessionState = r.ID, r.State
		}
		out = append(out, v)
		if len(out) == page.Size {
			break
		}
	}
	next := ""
	if len(out) == page.Size {
		next = encodeOffset(offset + int64(len(out)))
	}
	return out, next, nil
}

// ListConnectors lists Partner API connectors with the live session on each.
func (o *Orchestrator) ListConnectors(ctx context.Context, freeOnly bool, page Page) ([]ConnectorView, string, error) {
	offset, err := decodeOffset(page.Token)
	if err != nil {
		return nil, "", err
	}
	_, byConnector := o.liveByTarget()
	var out []ConnectorView
	scanned := int64(0)
	for c, err := range o.partner.Connectors(ctx, partner.Paging{PageSize: page.Size, Offset: offset}) {
		if err != nil {
			return nil, "", fmt.Errorf("%w: Partner API: %w", ErrUnavailable, err)
		}
		scanned++
		v := ConnectorView{Connector: c}
		if r, ok := byConnector[c.ID]; ok {
			v.SessionID = r.ID
		}
		if freeOnly && (!c.Free() || v.SessionID != "") {
			continue
		}
		out = append(out, v)
		if len(out) == page.Size {
			break
		}
	}
	next := ""
	if len(out) == page.Size {
		next = encodeOffset(offset + scanned)
	}
	return out, next, nil
}

// liveByTarget indexes the cached live sessions (every replica's) by ticket
// and by connector, so the intake views join without a store read per row.
func (o *Orchestrator) liveByTarget() (byTicket, byConnector map[string]*session.Record) {
	live := o.records.live()
	byTicket = make(map[string]*session.Record, len(live))
	byConnector = make(map[string]*session.Record, len(live))
	for _, r := range live {
		if r.TicketID != "" {
			byTicket[r.TicketID] = r
		}
		if r.ConnectorID != "" {
			byConnector[r.ConnectorID] = r
		}
	}
	return byTicket, byConnector
}

func encodeOffset(n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.FormatInt(n, 10)))
}

func decodeOffset(token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 2 || b[0] != 'o' {
		return 0, invalid("page_token", "malformed")
	}
	n, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("page_token", "malformed")
	}
	return n, nil
}

// GetSession returns one record: a live one from the cache, an ended one
// from the store.
func (o *Orchestrator) GetSession(ctx context.Context, id string) (*session.Record, error) {
	if rec, ok := o.records.get(id); ok {
		return rec, nil
	}
	rec, err := o.store.Get(ctx, id)
	return rec, storeErr(err)
}

// ListSessions pages over records.
func (o *Orchestrator) ListSessions(ctx context.Context, f SessionFilter, page Page) ([]*session.Record, string, error) {
	if f.liveOnly() {
		if recs, next, ok, err := o.records.list(f, page); ok || err != nil {
			return recs, next, err
		}
	}
	recs, next, err := o.store.List(ctx, store.Filter{States: f.States, TicketID: f.TicketID, ConnectorID: f.ConnectorID}, page.Size, page.Token)
	if errors.Is(err, store.ErrPageToken) {
		return nil, "", invalid("page_token", "malformed")
	}
	return recs, next, storeErr(err)
}

// WatchSessions streams record changes from startRevision (0: from now).
func (o *Orchestrator) WatchSessions(ctx context.Context, startRevision int64, f SessionFilter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for ev, err := range o.store.Watch(ctx, startRevision, store.Filter{TicketID: f.TicketID}) {
			if err != nil {
				if errors.Is(err, store.ErrCompacted) {
					err = fmt.Errorf("%w: %w", ErrCompacted, err)
				}
				yield(Event{}, err)
				return
			}
			if ev.Record == nil || (f.SessionID != "" && ev.Record.ID != f.SessionID) {
				continue
			}
			e := Event{Revision: ev.Revision, Session: ev.Record}
			if h := ev.Record.History; len(h) > 0 && h[len(h)-1].Time.Equal(ev.Record.UpdatedAt) {
				t := h[len(h)-1]
				e.Transition = &t
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

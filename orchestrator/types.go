package orchestrator

import (
	"context"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/partner"
)

// TicketView is a Partner API ticket with the orchestrator session serving it.
type TicketView struct {
	partner.Ticket
	// SessionID and SessionState describe the live or latest session of the
	// ticket; empty if none.
	SessionID    string
	SessionState session.State
}

// ConnectorView is a Partner API connector with the live session on it.
type ConnectorView struct {
	partner.Connector
	SessionID string
}

// Page asks for one page of a list.
type Page struct {
	// Size is the number of items wanted (1-1000).
	Size int
	// Token is the opaque token of the previous page's end; empty for the
	// first page.
	Token string
}

// StartRequest asks for a session on a ticket or a connector.
type StartRequest struct {
	// TicketID is a ticket UUID or number; exactly one of TicketID and
	// ConnectorID is set.
	TicketID    string
	ConnectorID string
	// RequestID makes retries of the same request safe.
	RequestID string
	// Actor is who asked, for the record's history.
	Actor string
	// Force starts a ticket whose latest session FINISHED or that is
	// externally processed.
	Force bool
	// ValidateOnly checks everything and starts nothing.
	ValidateOnly bool
}

// StartResult is StartSession's answer.
type StartResult struct {
	// Session is the new or already live session; with ValidateOnly, the
	// live session that would be returned, or nil.
	Session *session.Record
	// Created is true when a new session was created.
	Created bool
	// Summary says, for ValidateOnly, what the call would do.
	Summary string
}

// AcquireRequest asks for a READY session for a runner.
type AcquireRequest struct {
	TicketID, ConnectorID, VIN string
	// Runner names the caller in the session's history.
	Runner string
	// TTL is the lease time to live.
	TTL time.Duration
	// RenewLeaseID renews an existing lease instead of acquiring a session.
	RenewLeaseID string
	// NoWait answers ErrNoSession at once when no session attached here
	// matches, instead of waiting for one.
	NoWait bool
	// SessionID, when set, leases only that session, judged by its stored
	// state rather than this replica's cache. A replica forwarding a
	// cluster-wide acquire names the session its own watch saw READY: the
	// owner's cache may not show that write yet.
	SessionID string
}

// Acquired is a session leased to a runner.
type Acquired struct {
	Session  *session.Record
	LeaseID  string
	ExpireAt time.Time
}

// Channel addresses one ECU over ISO-TP on a configured bus.
type Channel struct {
	BusName                 string
	RequestID, ResponseID   uint32
	ExtRequest, ExtResponse *uint32
	// Padding is the openOBD Padding number (0 = connector default).
	Padding int32
}

// Request is one UDS request to relay.
type Request struct {
	Payload []byte
	// Timeout is the time allowed for the response (P2); zero means the
	// openOBD client's (connector.Config.ResponseTimeout).
	Timeout time.Duration
	// Idempotent marks a request that may be re-sent after a broken stream.
	Idempotent bool
}

// Response is the ECU's answer to a relayed request.
type Response struct {
	Payload  []byte
	Negative bool
	NRC      byte
	// ECUTime is the time spent waiting on openOBD; TotalTime includes the
	// orchestrator's own work and queueing.
	ECUTime, TotalTime time.Duration
	Attempts           int
}

// SessionFilter selects session records. Empty fields match everything.
type SessionFilter struct {
	States      []session.State
	SessionID   string
	TicketID    string
	ConnectorID string
}

// liveOnly reports whether the filter selects live states only.
func (f SessionFilter) liveOnly() bool {
	if len(f.States) == 0 {
		return false
	}
	for _, s := range f.States {
		if !s.Live() {
			return false
		}
	}
	return true
}

// Match reports whether r passes the filter.
func (f SessionFilter) Match(r *session.Record) bool {
	if f.SessionID != "" && r.ID != f.SessionID {
		return false
	}
	if f.TicketID != "" && r.TicketID != f.TicketID && r.TicketNumber != f.TicketID {
		return false
	}
	if f.ConnectorID != "" && r.ConnectorID != f.ConnectorID {
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	for _, s := range f.States {
		if r.State == s {
			return true
		}
	}
	return false
}

// Event is one change of a session record, at a store revision.
type Event struct {
	Revision int64
	Session  *session.Record
	// Transition is set when the change was a state transition.
	Transition *session.Transition
}

// RelayChannel is an open ISO-TP channel of a leased session. Requests on one
// channel are answered one at a time, in order.
type RelayChannel interface {
	// Do relays one request and waits for its response.
	Do(ctx context.Context, req Request) (Response, error)
	// Done is closed when the channel can carry no more requests (the
	// session ended, the lease was lost, the buses were replaced); Err then
	// says why.
	Done() <-chan struct{}
	Err() error
	// Close releases the channel.
	Close() error
}

package orchestrator

import (
	"errors"
	"fmt"
)

// Errors of the orchestrator core. The control plane maps them to gRPC codes
// in one place (controlplane.toStatus); the core never sees status codes.
var (
	// ErrNotFound: no such session, ticket or connector.
	ErrNotFound = errors.New("not found")
	// ErrNotLive: the session has ended (FINISHED, FAILED or INTERRUPTED).
	ErrNotLive = errors.New("session is not live")
	// ErrWrongState: the call does not fit the session's current state.
	ErrWrongState = errors.New("session is in the wrong state")
	// ErrLeaseRequired: the session is leased and the call did not present
	// the lease id.
	ErrLeaseRequired = errors.New("session is leased to a runner: the lease id is required")
	// ErrWrongLease: the call presented a lease id that is not the
	// session's lease.
	ErrWrongLease = errors.New("the lease id is not this session's lease")
	// ErrNotLeased: the call presented a lease id, but nobody leases the
	// session.
	ErrNotLeased = errors.New("the session is not leased")
	// ErrLeaseExpired: the call presented the lease id of a lease that
	// expired.
	ErrLeaseExpired = errors.New("the lease expired")
	// ErrAlreadyExists: a request id is already bound to another target.
	ErrAlreadyExists = errors.New("already exists")
	// ErrNoSession: no session matched before the caller's deadline.
	ErrNoSession = errors.New("no ready session matched")
	// ErrTimeout: the vehicle did not answer in time.
	ErrTimeout = errors.New("no response from the vehicle")
	// ErrUnavailable: openOBD, the Partner API or the store cannot be reached,
	// or the session is owned by another replica.
	ErrUnavailable = errors.New("unavailable")
	// ErrTooSlow: a watcher fell too far behind and was ended; it may resume
	// from the revision after the last one it received.
	ErrTooSlow = errors.New("watcher fell behind")
	// ErrCompacted: the requested revision is no longer kept by the store.
	ErrCompacted = errors.New("revision compacted")
	// ErrBusy: too many requests wait on the same channel.
	ErrBusy = errors.New("channel busy")
	// ErrFull: the replica holds Config.MaxSessions sessions and starts no
	// other.
	ErrFull = errors.New("replica holds its maximum of sessions")
	// ErrShuttingDown: the orchestrator is stopping.
	ErrShuttingDown = errors.New("orchestrator is shutting down")
)

// InvalidArgumentError names a request field the core rejected.
type InvalidArgumentError struct {
	Field  string
	Reason string
}

func (e *InvalidArgumentError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

func invalid(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// NotOwnerError says that a call needs the live openOBD session and another
// replica (or, while a failover is under way, no replica) owns it. A
// forwarding layer or a client reads the owner from it.
type NotOwnerError struct {
	SessionID string
	// Owner is the replica named in the record; empty when none.
	Owner string
	// Address is the owner's advertised control-plane address, if known.
	Address string
}

func (e *NotOwnerError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("session %s is not attached to any replica right now (failover under way)", e.SessionID)
	}
	return fmt.Sprintf("session %s is owned by replica %q, not this one", e.SessionID, e.Owner)
}

// Unwrap makes a NotOwnerError an ErrUnavailable.
func (e *NotOwnerError) Unwrap() error { return ErrUnavailable }

// InterruptedError tells a runner its session was interrupted, by whom and
// why.
type InterruptedError struct {
	SessionID string
	Actor     string
	Reason    string
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("session %s interrupted by %s: %s", e.SessionID, e.Actor, e.Reason)
}

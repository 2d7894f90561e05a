package store

import (
	"errors"
	"fmt"
)

// Errors returned by the Store, wrapped with detail; test them with errors.Is
// and errors.As.
var (
	// ErrNotFound: no record has the session id.
	ErrNotFound = errors.New("store: session not found")
	// ErrExists: Create found a record with the same session id.
	ErrExists = errors.New("store: session already exists")
	// ErrClaimed: a ticket, connector or request id is held by another
	// session. The error is a *ClaimedError naming the holder.
	ErrClaimed = errors.New("store: target already claimed")
	// ErrFenced: this replica no longer holds the session's claims with its
	// current lease (the lease was lost, or another replica adopted the
	// session). The replica must stop acting on the session.
	ErrFenced = errors.New("store: claim no longer held by this replica")
	// ErrConflict: the record changed since it was read; read it again.
	ErrConflict = errors.New("store: record changed since read")
	// ErrFinal: the stored record is in a final state and can no longer be
	// written or adopted.
	ErrFinal = errors.New("store: session is final")
	// ErrCompacted: a watch asked for revisions the store no longer keeps.
	// The error is a *CompactedError.
	ErrCompacted = errors.New("store: revision compacted")
	// ErrPageToken: List was given a page token it did not issue.
	ErrPageToken = errors.New("store: invalid page token")
	// ErrHeld: Create with UnlessHeld found intake held off the ticket.
	// The error is a *HeldError.
	ErrHeld = errors.New("store: intake held off the ticket")
)

// HeldError is the hold that kept Create with UnlessHeld from writing.
type HeldError struct {
	TicketID string
	Hold     Hold
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("store: intake held off ticket %s since session %s was interrupted by %s", e.TicketID, e.Hold.SessionID, e.Hold.Actor)
}

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }

// ClaimedError names the session that holds a claim.
type ClaimedError struct {
	Kind     ClaimKind
	TargetID string
	// SessionID is the session holding the claim.
	SessionID string
	// Replica is the replica holding the claim; for ClaimRequest, the
	// replica that created the session. It is empty when the session is
	// orphaned: its owner's lease ended and no replica has adopted it yet.
	// Adopt or end that session before starting another on the target.
	Replica string
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("store: %s %s already claimed by session %s of replica %s",
		e.Kind, e.TargetID, e.SessionID, e.Replica)
}

// Unwrap makes errors.Is(err, ErrClaimed) true.
func (e *ClaimedError) Unwrap() error { return ErrClaimed }

// CompactedError reports a watch start revision older than the oldest
// revision the store keeps.
type CompactedError struct {
	// Requested is the revision the watch asked to start from.
	Requested int64
	// Oldest is the oldest revision still available. A watcher that can
	// tolerate the gap resumes from it; otherwise it lists again.
	Oldest int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("store: revision %d compacted, oldest available is %d", e.Requested, e.Oldest)
}

// Unwrap makes errors.Is(err, ErrCompacted) true.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

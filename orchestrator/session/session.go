// Package session holds the orchestrator's durable session record and its
// lifecycle state machine. It is pure code: no I/O, no clocks of its own.
//
// The lifecycle is
//
//	PENDING -> STARTING -> READY -> RUNNING -> FINISHING -> FINISHED
//
// with FAILED and INTERRUPTED reachable from every live state. A RUNNING
// session whose runner lease ends goes back to READY. FINISHED, FAILED and
// INTERRUPTED are final.
package session

import (
	"errors"
	"fmt"
	"time"
)

// State is a session's lifecycle state.
type State int

// The lifecycle states. The numbers match orchestrator.v1.SessionState.
const (
	StateUnspecified State = iota
	StatePending
	StateStarting
	StateReady
	StateRunning
	StateFinishing
	StateFinished
	StateFailed
	StateInterrupted
)

var stateNames = [...]string{
	StateUnspecified: "UNSPECIFIED",
	StatePending:     "PENDING",
	StateStarting:    "STARTING",
	StateReady:       "READY",
	StateRunning:     "RUNNING",
	StateFinishing:   "FINISHING",
	StateFinished:    "FINISHED",
	StateFailed:      "FAILED",
	StateInterrupted: "INTERRUPTED",
}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state by name, so stored records stay readable.
func (s State) MarshalText() ([]byte, error) {
	if s <= StateUnspecified || int(s) >= len(stateNames) {
		return nil, fmt.Errorf("session: invalid state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	st, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseState returns the state named name (e.g. "READY").
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == name {
			return State(i), nil
		}
	}
	return StateUnspecified, fmt.Errorf("session: unknown state %q", name)
}

// Final reports whether no transition leaves s.
func (s State) Final() bool {
	return s == StateFinished || s == StateFailed || s == StateInterrupted
}

// Live reports whether s is a state of an open session.
func (s State) Live() bool { return s > StateUnspecified && s < StateFinished }

// CanTransition reports whether a session may move from one state to another.
func CanTransition(from, to State) bool {
	if !from.Live() {
		return false
	}
	switch to {
	case StateFailed, StateInterrupted:
		return true
	case StateStarting:
		return from == StatePending
	case StateReady:
		return from == StateStarting || from == StateRunning
	case StateRunning:
		return from == StateReady
	case StateFinishing:
		return from == StateRunning || from == StateReady
	case StateFinished:
		return from == StateFinishing
	}
	return false
}

// ErrTransition is returned for a transition the lifecycle does not allow.
var ErrTransition = errors.New("session: transition not allowed")

// Transition is one recorded change of state.
type Transition struct {
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
}

// Actors recorded in transitions besides replicas and runners.
const (
	ActorOpenOBD    = "openobd"
	ActorPartnerAPI = "partner-api"
)

// Bus is one configured bus.
type Bus struct {
	Name  string    `json:"name"`
	CAN   *CANBus   `json:"can,omitempty"`
	KLine *KLineBus `json:"kline,omitempty"`
}

// CANBus is a CAN bus definition.
type CANBus struct {
	PinPlus  uint32 `json:"pin_plus"`
	PinMinus uint32 `json:"pin_minus"`
	BitRate  uint32 `json:"bit_rate"`
	Frames   bool   `json:"frames,omitempty"`
	LowSpeed bool   `json:"low_speed,omitempty"`
}

// KLineBus is a K-line bus definition.
type KLineBus struct {
	Pin      uint32 `json:"pin"`
	BitRate  uint32 `json:"bit_rate"`
	FastInit bool   `json:"fast_init,omitempty"`
}

// OpenOBD is what the record knows of its openOBD session. The tokens are
// secrets: they are stored so a restarted replica can re-attach, and never
// leave the orchestrator.
type OpenOBD struct {
	SessionID string `json:"session_id,omitempty"`
	State     string `json:"state,omitempty"`
	Endpoint  string `json:"grpc_endpoint,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	// AuthToken is the single-use authentication token, kept until used.
	AuthToken string `json:"authentication_token,omitempty"`
	// Token is the newest session token and when it was received.
	Token           string    `json:"session_token,omitempty"`
	TokenReceivedAt time.Time `json:"session_token_received_at,omitzero"`
}

// Lease is a runner's hold on a RUNNING session. The stored lease is the
// only truth: a replica renews it by writing a new ExpireAt, and expires it
// when ExpireAt has passed.
type Lease struct {
	// ID is the secret the runner presents.
	ID     string `json:"id"`
	Holder string `json:"holder"`
	// TTL is the time to live the runner asked for; each renewal moves
	// ExpireAt to the renewal's time plus TTL.
	TTL      time.Duration `json:"ttl"`
	ExpireAt time.Time     `json:"expire_at"`
}

// Remaining is the lease time left at now (negative once expired).
func (l *Lease) Remaining(now time.Time) time.Duration { return l.ExpireAt.Sub(now) }

// Result is the outcome a runner reports, in openOBD Result numbers.
type Result struct {
	Codes        []int32 `json:"codes"`
	UserFeedback int32   `json:"user_feedback,omitempty"`
	Description  string  `json:"description,omitempty"`
}

// Record is the durable record of one session.
type Record struct {
	ID           string  `json:"id"`
	State        State   `json:"state"`
	TicketID     string  `json:"ticket_id,omitempty"`
	TicketNumber string  `json:"ticket_number,omitempty"`
	ConnectorID  string  `json:"connector_id,omitempty"`
	VIN          string  `json:"vin,omitempty"`
	RequestID    string  `json:"request_id,omitempty"`
	OpenOBD      OpenOBD `json:"openobd"`
	Reason       string  `json:"reason,omitempty"`
	Actor        string  `json:"actor,omitempty"`
	Owner        string  `json:"owner,omitempty"`
	Lease        *Lease  `json:"lease,omitempty"`
	Buses        []Bus   `json:"buses,omitempty"`
	Result       *Result `json:"result,omitempty"`
	// StartAttempts counts the openOBD start calls made for this record, the
	// one in flight included; StartAttemptAt is when the latest began. They
	// are stored so that the bound on attempts holds across restarts.
	StartAttempts  int          `json:"start_attempts,omitempty"`
	StartAttemptAt time.Time    `json:"start_attempt_at,omitzero"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	History        []Transition `json:"history"`

	// Revision is the store revision of the last write of this record. It is
	// not stored in the record itself.
	Revision int64 `json:"-"`
}

// New returns a PENDING record created by actor.
func New(id, actor, reason string, now time.Time) *Record {
	return &Record{
		ID:        id,
		State:     StatePending,
		Actor:     actor,
		Reason:    reason,
		CreatedAt: now,
		UpdatedAt: now,
		History:   []Transition{{To: StatePending, Time: now, Actor: actor, Reason: reason}},
	}
}

// Transition moves r to state to, recording who and why. It refuses a
// transition the lifecycle does not allow and leaves r unchanged.
func (r *Record) Transition(to State, actor, reason string, now time.Time) error {
	if !CanTransition(r.State, to) {
		return fmt.Errorf("%w: %s -> %s", ErrTransition, r.State, to)
	}
	r.History = append(r.History, Transition{From: r.State, To: to, Time: now, Actor: actor, Reason: reason})
	r.State, r.Actor, r.Reason, r.UpdatedAt = to, actor, reason, now
	if to != StateRunning {
		r.Lease = nil
	}
	if to.Final() {
		r.OpenOBD.AuthToken, r.OpenOBD.Token = "", ""
	}
	return nil
}

// Note records an event that does not change the state (an adoption by
// another replica, an orphan cleaned up) in the history, as an entry whose
// From and To are the current state.
func (r *Record) Note(actor, reason string, now time.Time) {
	r.History = append(r.History, Transition{From: r.State, To: r.State, Time: now, Actor: actor, Reason: reason})
	r.UpdatedAt = now
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	if r.Lease != nil {
		l := *r.Lease
		c.Lease = &l
	}
	if r.Result != nil {
		res := *r.Result
		res.Codes = append([]int32(nil), r.Result.Codes...)
		c.Result = &res
	}
	c.Buses = make([]Bus, len(r.Buses))
	for i, b := range r.Buses {
		if b.CAN != nil {
			can := *b.CAN
			b.CAN = &can
		}
		if b.KLine != nil {
			kl := *b.KLine
			b.KLine = &kl
		}
		c.Buses[i] = b
	}
	c.History = append([]Transition(nil), r.History...)
	return &c
}

package orchestrator

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// attachment is everything this replica holds in memory about one session
// whose claims it holds: from the moment it creates or adopts the record
// until the record is final (or the claims are lost). The store has the
// truth; the attachment has what only a live process can have: the
// openOBD session, the relay channels, and the work not yet written.
//
// There is one attachment per session and one map of them
// (Orchestrator.attached). It is created by hold and ends by detach (with a
// cause) followed by forget; nothing else about a session lives elsewhere
// in memory, apart from the cached record (records), which any replica may
// hold of any session.
type attachment struct {
	id string

	// ending serialises the steps that end the session (finish, interrupt,
	// recording an end this replica caused): a runner's or an engineer's
	// call and the session's reconcile may get there at once. It is never
	// taken while holding mu.
	endMu sync.Mutex

	// mu guards every field below. It is held briefly and never across a
	// call to openOBD, the Partner API or the store.
	mu sync.Mutex
	// sess is the attached openOBD session; nil until authenticate or
	// resume succeeded.
	sess *connector.Session
	// buses are the names of the configured buses (at most four);
	// channels must use one.
	buses []string
	// channels are the open relay channels, by ECU address; nil while
	// none was opened (an idle session).
	channels map[channelKey]*relayChannel
	// lease mirrors the stored runner lease (nil when nobody leases the
	// session); expired names the lease that expired last, so its runner
	// is told so.
	lease   *session.Lease
	expired string
	// active is the time of the runner's latest call not yet written as a
	// renewal; renewQueued says a reconcile will write it.
	active      time.Time
	renewQueued bool
	// token is the newest session token received and when; tokenStored
	// says the store has it.
	token       string
	tokenAt     time.Time
	tokenStored bool
	// ending says why the session is ending, once this replica lets go of
	// it or asks openOBD to end it; runners are told this cause.
	ending error
	// freshAttempt says the record's current start attempt (already counted
	// in the record) has not been used yet.
	freshAttempt bool
	// written is the revision of this replica's latest write of the
	// record (create, adoption or update); 0 before the first.
	written int64
	// lastStartErr is the latest failed start, for the reason of a session
	// that runs out of attempts.
	lastStartErr string
	// nextTicketCheck is when the ticket is next checked for cancellation.
	nextTicketCheck time.Time
	// trace links the reconciles of a session started through the control
	// plane to the caller's trace, until it is READY.
	trace trace.SpanContext
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// attachment returns the attachment of session id, or nil.
func (o *Orchestrator) attachment(id string) *attachment {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.attached[id]
}

// hold returns the attachment of session id, creating it if needed: the
// caller has just created or adopted the record and holds its claims.
func (o *Orchestrator) hold(id string) *attachment {
	o.mu.Lock()
	defer o.mu.Unlock()
	if a := o.attached[id]; a != nil {
		return a
	}
	a := &attachment{id: id}
	o.attached[id] = a
	return a
}

// forget removes the attachment of session id once its record is final or
// its claims are lost. The attachment must have been detached.
func (o *Orchestrator) forget(id string) {
	o.mu.Lock()
	a := o.attached[id]
	delete(o.attached, id)
	o.mu.Unlock()
	if a != nil {
		a.detach(fmt.Errorf("%w: session %s is no longer held by this replica", ErrNotLive, id))
	}
}

// attachments returns a snapshot of every attachment.
func (o *Orchestrator) attachments() []*attachment {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*attachment, 0, len(o.attached))
	for _, a := range o.attached {
		out = append(out, a)
	}
	return out
}

// detachAll lets go of every session on shutdown, leaving them live on
// openOBD with their tokens stored, for the next owner.
func (o *Orchestrator) detachAll() {
	o.mu.Lock()
	all := o.attached
	o.attached = map[string]*attachment{}
	o.mu.Unlock()
	for _, a := range all {
		a.detach(ErrShuttingDown)
	}
}

// detach is the one way an attachment lets go: it records why (the first
// cause wins), shuts every relay channel with that cause and closes the
// openOBD session without interrupting it. It is safe to call more than
// once.
func (a *attachment) detach(cause error) {
	a.mu.Lock()
	if a.ending == nil {
		a.ending = cause
	}
	chans, sess := a.channels, a.sess
	a.channels = nil
	a.sess = nil
	a.mu.Unlock()
	for _, c := range chans {
		c.shutdown(cause)
	}
	if sess != nil {
		_ = sess.Close()
	}
}

// attachSession records the openOBD session once attached and its buses;
// nil buses: not configured yet.
func (a *attachment) attachSession(sess *connector.Session, buses []session.Bus) {
	a.mu.Lock()
	a.sess, a.buses, a.ending = sess, nil, nil
	if buses != nil {
		a.buses = busNames(buses)
	}
	a.mu.Unlock()
}

// configured reports whether the attached session's buses are configured.
func (a *attachment) configured() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buses != nil
}

// setBuses records the buses of a session configured after it attached.
func (a *attachment) setBuses(buses []session.Bus) {
	a.mu.Lock()
	a.buses = busNames(buses)
	a.mu.Unlock()
}

// session returns the attached openOBD session, or nil.
func (a *attachment) session() *connector.Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess
}

// endingErr returns why the session is ending, or nil.
func (a *attachment) endingErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ending
}

// markEnding sets why the session ends before this replica asks openOBD
// to end it, so the end that follows is known to be ours; unmark undoes it
// when openOBD refused.
func (a *attachment) markEnding(cause error) {
	a.mu.Lock()
	if a.ending == nil {
		a.ending = cause
	}
	a.mu.Unlock()
}

func (a *attachment) unmarkEnding(cause error) {
	a.mu.Lock()
	if a.ending == cause {
		a.ending = nil
	}
	a.mu.Unlock()
}

// setTrace links the session's reconciles to the trace of the call that
// started it.
func (a *attachment) setTrace(sc trace.SpanContext) {
	a.mu.Lock()
	a.trace = sc
	a.mu.Unlock()
}

func (a *attachment) traceParent() trace.SpanContext {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trace
}

// receivedToken keeps the newest session token until it is stored. It
// reports whether a reconcile must be asked to store it: only once the
// session is attached. Until then the reconcile attaching it stores the
// newest token itself before it ends (authenticate with READY, resume
// before it returns), or fails and is retried.
func (a *attachment) receivedToken(token string, at time.Time) (storeIt bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if token == a.token || at.Before(a.tokenAt) {
		return false
	}
	a.token, a.tokenAt, a.tokenStored = token, at, false
	return a.sess != nil
}

// keptToken is a session token received at a time.
type keptToken struct {
	token string
	at    time.Time
}

// storedToken notes the token the store has, unless the token stream has
// already delivered a newer one (which stays to be saved).
func (a *attachment) storedToken(token string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.token == token:
		a.tokenStored = true
	case a.token != "" && !at.After(a.tokenAt):
		// A newer token arrived meanwhile: it stays to be saved.
	default:
		a.token, a.tokenAt, a.tokenStored = token, at, true
	}
}

// unsavedToken returns the newest token if the store does not have it yet.
func (a *attachment) unsavedToken() (string, time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token, a.tokenAt, a.token != "" && !a.tokenStored
}

// tokenSaved notes that the store has token (unless a newer one came in).
func (a *attachment) tokenSaved(token string) {
	a.mu.Lock()
	if a.token == token {
		a.tokenStored = true
	}
	a.mu.Unlock()
}

// useFreshAttempt reports whether the record's current start attempt is
// unused, and marks it used.
func (a *attachment) useFreshAttempt() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := a.freshAttempt
	a.freshAttempt = false
	return fresh
}

// wrote notes that this replica wrote the record at revision rev.
func (a *attachment) wrote(rev int64) {
	a.mu.Lock()
	a.written = max(a.written, rev)
	a.mu.Unlock()
}

// lastWrite returns the revision of this replica's latest write of the
// record, 0 if none.
func (a *attachment) lastWrite() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written
}

func (a *attachment) setLastStartError(err error) {
	a.mu.Lock()
	a.lastStartErr = err.Error()
	a.mu.Unlock()
}

func (a *attachment) lastStartError() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastStartErr
}

// traceNone unlinks a session from the trace that started it.
var traceNone trace.SpanContext

// ticketCheckDue reports whether the ticket should be checked now, and if
// so schedules the next check; it returns the time until the next check.
func (a *attachment) ticketCheckDue(now time.Time, every time.Duration) (bool, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nextTicketCheck.IsZero() {
		a.nextTicketCheck = now.Add(every)
		return false, every
	}
	if now.Before(a.nextTicketCheck) {
		return false, a.nextTicketCheck.Sub(now)
	}
	a.nextTicketCheck = now.Add(every)
	return true, every
}

func busNames(buses []session.Bus) []string {
	names := make([]string, len(buses))
	for i, b := range buses {
		names[i] = b.Name
	}
	return names
}

package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// The life of one session, as its reconcile drives it. What happens after a
// crash at each step (the next owner, this replica restarted or another,
// reconciles the record it finds):
//
//	step                               record left as               next owner does
//	create                             nothing, or PENDING #1       intake creates it again / starts it
//	startSessionOnTicket in flight     PENDING, attempt n           counts attempt n+1 and starts; "Resource
//	                                                                already in use" finds our orphan among the
//	                                                                partner's sessions, interrupts it, retries
//	started, STARTING recorded         STARTING + auth token        authenticates
//	authenticated, token not stored    STARTING + spent auth token  authenticate fails: the token is lost;
//	                                                                interrupts the session, records FAILED
//	                                                                and starts a new one for the ticket
//	READY (token stored with it)       READY + session token        resumes with the stored token
//	token rotated                      newest token (retried)       resumes while the token is valid
//	FINISHING                          FINISHING + result           completes the finish (finish.go)
//
// Attempts are counted in the record and bounded by MaxStartAttempts.

// orphanClockSlack allows for openOBD's clock being behind ours when an
// orphan's creation time is compared with its record's.
const orphanClockSlack = 2 * time.Second

// storeErr translates store failures into core errors.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: store: %w", ErrUnavailable, err)
}

var errSkip = errors.New("nothing to write")

// update applies fn to the newest record and writes it, retrying on
// concurrent changes. fn may return errSkip to write nothing. A fenced
// write (another replica took the session) lets go of the session here.
//
// The first try starts from the cached record, which is current whenever
// this replica wrote last (its own writes go into the cache as they are
// made): that spares a linearizable store read per write, which costs about
// as much as the write. The write is conditioned on the record's revision,
// so a stale cached copy only costs a conflict and a retry from the store;
// and an outcome that writes nothing (errSkip or an error of fn) is decided
// on the record read from the store, never on the cached one.
func (o *Orchestrator) update(ctx context.Context, id string, fn func(r *session.Record) error) (*session.Record, error) {
	cached, fromCache := o.records.get(id)
	for {
		var rec *session.Record
		if fromCache {
			rec = cached.Clone()
		} else {
			var err error
			if rec, err = o.store.Get(ctx, id); err != nil {
				return nil, storeErr(err)
			}
		}
		before := rec.UpdatedAt
		if err := fn(rec); err != nil {
			if fromCache {
				fromCache = false
				continue
			}
			if errors.Is(err, errSkip) {
				return rec, nil
			}
			return rec, err
		}
		if rec.UpdatedAt.Equal(before) { // a transition sets its own time
			rec.UpdatedAt = o.cfg.Now()
		}
		err := o.store.Update(ctx, rec)
		switch {
		case err == nil:
			if a := o.attachment(id); a != nil {
				a.wrote(rec.Revision)
			}
			o.records.put(rec)
			return rec, nil
		case errors.Is(err, store.ErrConflict):
			fromCache = false
			continue
		case errors.Is(err, store.ErrFinal):
			o.forget(id)
			return nil, notLive(rec)
		case errors.Is(err, store.ErrFenced):
			o.forget(id)
			return nil, &NotOwnerError{SessionID: id}
		}
		return nil, storeErr(err)
	}
}

// transition moves the record to state to (when allowed) and writes it,
// with also's changes in the same write.
func (o *Orchestrator) transition(ctx context.Context, id string, to session.State, actor, reason string, also func(r *session.Record)) (*session.Record, error) {
	return o.transitionIf(ctx, id, to, actor, reason, nil, also)
}

// transitionIf is transition on condition: when cond (if set) rejects the
// newest record, nothing is written and that record is returned. cond may
// also add to the record before the transition (a note in the history).
func (o *Orchestrator) transitionIf(ctx context.Context, id string, to session.State, actor, reason string, cond func(r *session.Record) bool, also func(r *session.Record)) (*session.Record, error) {
	var from session.State
	rec, err := o.update(ctx, id, func(r *session.Record) error {
		from = session.StateUnspecified
		if r.State == to || (cond != nil && !cond(r)) {
			return errSkip
		}
		from = r.State
		if err := r.Transition(to, actor, reason, o.cfg.Now()); err != nil {
			if !r.State.Live() {
				return notLive(r)
			}
			return fmt.Errorf("%w: %w", ErrWrongState, err)
		}
		if also != nil {
			also(r)
		}
		return nil
	})
	if err != nil || from == session.StateUnspecified {
		return rec, err
	}
	o.metrics.transition(from, to)
	o.logger(ctx).InfoContext(ctx, "session transition", "session_id", id, "state", to.String(), "actor", actor, "reason", reason)
	switch {
	case to.Final():
		o.forget(id)
	case to == session.StateReady:
		if a := o.attachment(id); a != nil {
			a.setTrace(traceNone)
		}
		o.notifyReady()
	}
	return rec, nil
}

// notLive is the error for a call on an ended session: runners of an
// interrupted session learn who interrupted it and why.
func notLive(r *session.Record) error {
	if r.State == session.StateInterrupted {
		return &InterruptedError{SessionID: r.ID, Actor: r.Actor, Reason: r.Reason}
	}
	return fmt.Errorf("%w: session %s is %s (%s)", ErrNotLive, r.ID, r.State, r.Reason)
}

// reconcileSession drives one session towards READY, keeps it healthy
// while it is attached, or adopts it when its owner is gone.
func (o *Orchestrator) reconcileSession(ctx context.Context, id string) (result, error) {
	rec, err := o.sessionRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		o.forget(id)
		return result{}, nil
	}
	if err != nil {
		return result{}, err
	}
	if !rec.State.Live() {
		o.forget(id)
		return result{}, nil
	}
	a := o.attachment(id)
	if a == nil {
		if o.draining.Load() {
			return result{}, nil
		}
		release, wait, ok := o.reserve(sessionKey(id))
		if !ok {
			// Over the share (share.go): look again when the grace ends
			// if nobody has taken the orphan by then.
			if orphan, err := o.orphaned(ctx, rec); err != nil || !orphan {
				return result{}, err
			}
			return after(wait), nil
		}
		rec, a, err = o.adopt(ctx, rec)
		release()
		if a == nil || err != nil {
			return result{}, err
		}
	}
	if rec.State == session.StateFinishing && (a.session() != nil || a.endingErr() != nil) {
		return result{}, o.completeFinish(ctx, rec.ID)
	}
	if a.endingErr() != nil {
		return result{}, o.recordEnd(ctx, a)
	}
	switch {
	case rec.State == session.StatePending, rec.State == session.StateStarting && rec.OpenOBD.SessionID == "":
		return o.start(ctx, rec, a)
	case rec.State == session.StateStarting && a.session() == nil:
		return o.authenticate(ctx, rec, a)
	case rec.State == session.StateStarting:
		// Attached: the bus configuration or the READY write failed.
		return o.configureAndMarkReady(ctx, rec, a)
	case a.session() == nil:
		return o.resume(ctx, rec, a)
	}
	return o.maintain(ctx, rec, a)
}

// sessionRecord reads the record a reconcile starts from. For a session
// this replica holds, that is the cached record when the cache has this
// replica's latest write of it or a newer revision: nobody else writes the
// record while this replica holds its claims (every write is fenced by
// them), and the cache takes this replica's writes as they are made, so
// the cached record is the stored one, and a store read would cost about
// as much as a write. A cache that is behind (refilled from an older
// listing) or without the record sends the read to the store, and so does
// a session this replica does not hold. Writes that follow are conditioned
// on the record's revision either way.
func (o *Orchestrator) sessionRecord(ctx context.Context, id string) (*session.Record, error) {
	if a := o.attachment(id); a != nil {
		if w := a.lastWrite(); w > 0 {
			if rec, ok := o.records.get(id); ok && rec.Revision >= w {
				return rec.Clone(), nil
			}
		}
	}
	return o.store.Get(ctx, id)
}

// adopt takes over a live session whose owner is gone (its claims went
// with its store lease), writing the adoption into the history. It returns
// a nil attachment when another replica holds the session.
func (o *Orchestrator) adopt(ctx context.Context, rec *session.Record) (*session.Record, *attachment, error) {
	me, now := o.store.Replica(), o.cfg.Now()
	why := fmt.Sprintf("adopted by replica %s: replica %s no longer holds it", me, rec.Owner)
	if rec.Owner == me {
		why = fmt.Sprintf("adopted by replica %s again: its earlier store lease ended (a restart, or a lease lost while paused)", me)
	}
	rec.Note(me, why, now)
	if k, ok := o.keptToken(rec.ID); ok && k.at.After(rec.OpenOBD.TokenReceivedAt) {
		// This replica received a newer token before it lost its store
		// lease and could not store it then.
		rec.OpenOBD.Token, rec.OpenOBD.TokenReceivedAt = k.token, k.at
	}
	if l := rec.Lease; l != nil {
		// The runner could not renew while nobody owned the session: its
		// lease gets a full TTL from the adoption.
		l.ExpireAt = maxTime(l.ExpireAt, now.Add(l.TTL))
	}
	if err := o.store.Adopt(ctx, rec); err != nil {
		var claimed *store.ClaimedError
		if errors.As(err, &claimed) || errors.Is(err, store.ErrConflict) {
			o.dropKept(rec.ID)
			return nil, nil, nil // another replica owns it, or it moved on
		}
		return nil, nil, fmt.Errorf("adopt: %w", err) // retried, with the kept token
	}
	o.dropKept(rec.ID)
	o.records.put(rec)
	a := o.hold(rec.ID)
	a.wrote(rec.Revision)
	a.mu.Lock()
	if rec.Lease != nil {
		l := *rec.Lease
		a.lease = &l
	}
	a.mu.Unlock()
	o.logger(ctx).InfoContext(ctx, "session adopted", "session_id", rec.ID, "state", rec.State.String(), "previous_owner", rec.History[len(rec.History)-1].Reason)
	return rec, a, nil
}

// keptToken returns the token kept for session id when the store lease was
// lost.
func (o *Orchestrator) keptToken(id string) (keptToken, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, ok := o.kept[id]
	return k, ok
}

// dropKept forgets the token kept for session id once an adoption settled
// who holds the session.
func (o *Orchestrator) dropKept(id string) {
	o.mu.Lock()
	delete(o.kept, id)
	o.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// start opens the openOBD session and records it (STARTING, with its
// one-time authentication token) before anything else, then attaches.
func (o *Orchestrator) start(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	if !a.useFreshAttempt() {
		// The record's current attempt may have been used by a process
		// that died during the call, or failed: count a new one first.
		if rec.StartAttempts >= o.cfg.MaxStartAttempts {
			last := a.lastStartError()
			if last == "" {
				last = "none seen by this replica"
			}
			return result{}, o.fail(ctx, rec.ID, fmt.Sprintf("openOBD session could not be started after %d attempts (last error: %s)", rec.StartAttempts, last))
		}
		var err error
		rec, err = o.update(ctx, rec.ID, func(r *session.Record) error {
			r.StartAttempts++
			r.StartAttemptAt = o.cfg.Now()
			return nil
		})
		if err != nil {
			return result{}, err
		}
	}
	var (
		info connector.SessionInfo
		err  error
	)
	if rec.TicketID != "" {
		info, err = o.openobd.StartSessionOnTicket(ctx, rec.TicketID)
	} else {
		info, err = o.openobd.StartSessionOnConnector(ctx, rec.ConnectorID)
	}
	o.observeOpenOBD(err)
	if err != nil {
		return o.startFailed(ctx, rec, err)
	}
	rec, err = o.transition(ctx, rec.ID, session.StateStarting, o.store.Replica(), "openOBD session started", func(r *session.Record) {
		r.OpenOBD = session.OpenOBD{
			SessionID: info.ID, State: info.State, Endpoint: info.GRPCEndpoint,
			CreatedAt: info.CreatedAt, AuthToken: info.AuthenticationToken,
		}
	})
	if err != nil {
		// The record could not be written: do not leave a session nobody
		// knows about.
		_, ierr := o.openobd.InterruptSession(context.WithoutCancel(ctx), info.ID)
		return result{}, errors.Join(fmt.Errorf("record started session: %w", err), ierr)
	}
	return o.authenticate(ctx, rec, a)
}

// startFailed classifies a failed start: fail the session for good, clean
// up our own orphan, or retry later with backoff.
func (o *Orchestrator) startFailed(ctx context.Context, rec *session.Record, err error) (result, error) {
	res, ferr := o.classifyStart(ctx, rec, err)
	if a := o.attachment(rec.ID); a != nil && ferr != nil {
		a.setLastStartError(ferr)
	}
	return res, ferr
}

func (o *Orchestrator) classifyStart(ctx context.Context, rec *session.Record, err error) (result, error) {
	switch connector.KindOf(err) {
	case connector.KindTerminal, connector.KindNotFound:
		return result{}, o.fail(ctx, rec.ID, "openOBD refused the session: "+err.Error())
	case connector.KindInUse:
		n, wait, rerr := o.interruptOrphans(ctx, rec)
		switch {
		case rerr != nil:
			return result{}, errors.Join(fmt.Errorf("start openOBD session (attempt %d): %w", rec.StartAttempts, err), rerr)
		case n > 0:
			return after(0), nil // start again at once
		case wait > 0:
			// A candidate is too young to be sure it is an orphan.
			return after(wait), nil
		}
		return result{}, fmt.Errorf("start openOBD session (attempt %d): the target already has a live openOBD session that is not ours to interrupt (%w)", rec.StartAttempts, err)
	}
	return result{}, fmt.Errorf("start openOBD session (attempt %d): %w", rec.StartAttempts, err)
}

// interruptOrphans looks, among the partner's openOBD sessions, for the
// orphan of an interrupted start of rec: a session that is still
// available (never authenticated), was created after rec (with slack for
// the clocks), is older than OrphanSettle (so it is not on its way into
// another record right now), and that no record names. It interrupts each
// one and notes it in rec's history. An active session is never touched:
// it belongs to someone who authenticated it. wait is set when a candidate
// is not old enough yet.
func (o *Orchestrator) interruptOrphans(ctx context.Context, rec *session.Record) (n int, wait time.Duration, _ error) {
	list, err := o.openobd.ListSessions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list openOBD sessions: %w", err)
	}
	named := map[string]bool{}
	for _, r := range o.records.live() {
		named[r.OpenOBD.SessionID] = true
	}
	if rec.TicketID != "" {
		latest, ok, err := o.store.Latest(ctx, rec.TicketID)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			named[latest.OpenOBD.SessionID] = true
		}
	}
	now, since := o.cfg.Now(), rec.CreatedAt.Add(-orphanClockSlack)
	for _, s := range list {
		if s.State != connector.StateAvailable || named[s.ID] {
			continue
		}
		created, ok := connector.ParseTime(s.CreatedAt)
		if !ok || created.Before(since) {
			continue
		}
		if age := now.Sub(created); age < o.cfg.OrphanSettle {
			wait = max(wait, o.cfg.OrphanSettle-age)
			continue
		}
		if _, err := o.openobd.InterruptSession(ctx, s.ID); err != nil && connector.KindOf(err) == connector.KindRetryable {
			return n, 0, fmt.Errorf("interrupt orphaned openOBD session %s: %w", s.ID, err)
		}
		n++
		o.logger(ctx).InfoContext(ctx, "interrupted orphaned openOBD session", "session_id", rec.ID, "openobd_session_id", s.ID)
		if _, err := o.update(ctx, rec.ID, func(r *session.Record) error {
			r.Note(o.store.Replica(), "interrupted openOBD session "+s.ID+", left available by a start whose result was never recorded", o.cfg.Now())
			return nil
		}); err != nil {
			return n, 0, err
		}
	}
	return n, wait, nil
}

// authenticate claims a STARTING session with its one-time token,
// configures its buses and makes it READY; the first session token is
// stored in the same write.
func (o *Orchestrator) authenticate(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	sess, err := o.openobd.Attach(ctx, infoOf(rec), o.sessionOptions(a)...)
	o.observeOpenOBD(err)
	if err != nil {
		switch connector.KindOf(err) {
		case connector.KindRetryable, connector.KindUnknown:
			return result{}, fmt.Errorf("authenticate: %w", err)
		case connector.KindInterrupted:
			return result{}, o.endedOnOpenOBD(ctx, rec, "authenticate: "+err.Error())
		}
		return o.tokenLost(ctx, rec, err)
	}
	// The one-time token is spent: from here on the session is kept
	// attached, so that a retry configures it rather than authenticating
	// again (which openOBD would refuse, and the session would be lost).
	a.attachSession(sess, nil)
	return o.configureAndMarkReady(ctx, rec, a)
}

// configureAndMarkReady configures the default buses of an attached
// STARTING session unless that is done, and records it READY.
func (o *Orchestrator) configureAndMarkReady(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	if !a.configured() {
		if err := a.session().ConfigureBus(ctx, busConfigs(o.cfg.DefaultBuses)...); err != nil {
			return o.attachFailed(ctx, rec, "configure bus", err)
		}
		a.setBuses(o.cfg.DefaultBuses)
	}
	return o.markReady(ctx, rec, a)
}

// markReady records an attached and configured STARTING session as READY,
// with the newest session token in the same write. When the write fails,
// the attachment stays and the retried reconcile comes back here: it finds
// the session attached and still STARTING.
func (o *Orchestrator) markReady(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	token, at, _ := a.unsavedToken()
	if _, err := o.transition(ctx, rec.ID, session.StateReady, o.store.Replica(), "attached and configured", func(r *session.Record) {
		r.Buses = o.cfg.DefaultBuses
		r.OpenOBD.AuthToken = ""
		r.OpenOBD.State = connector.StateActive
		r.OpenOBD.Token, r.OpenOBD.TokenReceivedAt = token, at
	}); err != nil {
		return result{}, err
	}
	a.tokenSaved(token)
	return o.maintain(ctx, rec, a)
}

// tokenLost handles a STARTING session whose one-time token was spent by a
// process that died before storing the session token: nobody can use the
// session any more. It is interrupted on openOBD, recorded FAILED in plain
// words, and (for a ticket) a new session is started at once. The new one
// can only start once the old one is interrupted and its claims released,
// so there are never two live openOBD sessions for the ticket.
func (o *Orchestrator) tokenLost(ctx context.Context, rec *session.Record, cause error) (result, error) {
	if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil {
		switch connector.KindOf(err) {
		case connector.KindInterrupted, connector.KindNotFound, connector.KindTerminal:
		default:
			return result{}, fmt.Errorf("interrupt the session whose token was lost: %w", err)
		}
	}
	reason := "the session token was lost: the replica that authenticated the session stopped before storing its token, " +
		"so the session could not be used; it was interrupted on openOBD"
	if rec.TicketID != "" {
		reason += " and a new session is started for the ticket"
	}
	reason += " (authenticate again: " + cause.Error() + ")"
	if err := o.fail(ctx, rec.ID, reason); err != nil {
		return result{}, err
	}
	if rec.TicketID != "" {
		o.queue.Add(ticketKey(rec.TicketID))
	}
	return result{}, nil
}

// resume re-attaches a READY, RUNNING or FINISHING session with its stored
// session token after a restart or failover, or fails it cleanly when that
// is no longer possible.
func (o *Orchestrator) resume(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	if rec.OpenOBD.Token == "" {
		return result{}, o.abandon(ctx, rec, "no session token stored; cannot re-attach")
	}
	sess, err := o.openobd.Resume(ctx, infoOf(rec), rec.OpenOBD.Token, o.sessionOptions(a)...)
	if err != nil && rec.State == session.StateFinishing && connector.KindOf(err) == connector.KindInterrupted {
		return result{}, o.completeFinish(ctx, rec.ID) // finished on openOBD before it was recorded
	}
	if err != nil {
		return o.attachFailed(ctx, rec, "re-attach", err)
	}
	a.attachSession(sess, rec.Buses)
	a.storedToken(rec.OpenOBD.Token, rec.OpenOBD.TokenReceivedAt)
	o.logger(ctx).InfoContext(ctx, "session re-attached", "session_id", rec.ID, "state", rec.State.String())
	if rec.State == session.StateReady {
		o.notifyReady()
	}
	return o.maintain(ctx, rec, a)
}

// attachFailed classifies a failed resume or bus configuration.
func (o *Orchestrator) attachFailed(ctx context.Context, rec *session.Record, op string, err error) (result, error) {
	switch connector.KindOf(err) {
	case connector.KindRetryable, connector.KindUnknown:
		return result{}, fmt.Errorf("%s: %w", op, err)
	case connector.KindInterrupted:
		return result{}, o.endedOnOpenOBD(ctx, rec, op+": "+err.Error())
	}
	return result{}, o.abandon(ctx, rec, op+" failed: "+err.Error())
}

// endedOnOpenOBD records a session that openOBD (or the Partner API)
// ended behind our back as INTERRUPTED.
func (o *Orchestrator) endedOnOpenOBD(ctx context.Context, rec *session.Record, detail string) error {
	_, err := o.transition(ctx, rec.ID, session.StateInterrupted, session.ActorOpenOBD, "session ended on the openOBD side: "+detail, func(r *session.Record) {
		r.OpenOBD.State = connector.StateInterrupted
	})
	return err
}

// abandon interrupts the openOBD session (it is ours and may still be live)
// and records the session as FAILED with the reason.
func (o *Orchestrator) abandon(ctx context.Context, rec *session.Record, reason string) error {
	if rec.OpenOBD.SessionID != "" {
		if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil && connector.KindOf(err) == connector.KindRetryable {
			return fmt.Errorf("interrupt abandoned openOBD session: %w", err)
		}
	}
	return o.fail(ctx, rec.ID, reason)
}

// fail records the session as FAILED with the reason and lets go of it.
func (o *Orchestrator) fail(ctx context.Context, id, reason string) error {
	if a := o.attachment(id); a != nil {
		a.detach(fmt.Errorf("%w: %s", ErrNotLive, reason))
	}
	_, err := o.transition(ctx, id, session.StateFailed, o.store.Replica(), reason, nil)
	return err
}

// recordEnd records an end this replica caused (an interrupt, a failure)
// whose write did not happen yet, e.g. because the store was briefly
// unreachable. The call that caused it may be recording it right now: the
// end lock makes one wait for the other.
func (o *Orchestrator) recordEnd(ctx context.Context, a *attachment) error {
	a.endMu.Lock()
	defer a.endMu.Unlock()
	rec, err := o.store.Get(ctx, a.id)
	if err != nil {
		return storeErr(err)
	}
	cause := a.endingErr()
	switch {
	case !rec.State.Live():
		o.forget(a.id)
		return nil
	case cause == nil, rec.State == session.StateFinishing: // completeFinish records a finish
		return nil
	}
	var interrupted *InterruptedError
	if errors.As(cause, &interrupted) {
		_, err = o.transition(ctx, a.id, session.StateInterrupted, interrupted.Actor, interrupted.Reason, func(r *session.Record) {
			r.OpenOBD.State = connector.StateInterrupted
		})
		return err
	}
	_, err = o.transition(ctx, a.id, session.StateFailed, o.store.Replica(), cause.Error(), nil)
	return err
}

// maintain is the periodic look at an attached, live session: its end on
// the openOBD side, the newest token, the runner's lease, the finish, and
// its ticket. It asks to be looked at again when the next of these is due.
func (o *Orchestrator) maintain(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	sess := a.session()
	if sess == nil {
		return result{}, nil
	}
	select {
	case <-sess.Done():
		if a.endingErr() != nil {
			return result{}, nil // our own interrupt or finish records the end
		}
		return result{}, o.sessionEnded(ctx, rec, sess)
	default:
	}
	if err := o.saveToken(ctx, a); err != nil {
		return result{}, err
	}
	res, err := o.reconcileLease(ctx, rec, a)
	if err != nil {
		return result{}, err
	}
	if rec.TicketID == "" {
		return res, nil
	}
	due, next := a.ticketCheckDue(o.cfg.Now(), o.cfg.TicketCheckInterval)
	res = res.sooner(after(next))
	if !due {
		return res, nil
	}
	t, err := o.partner.Ticket(ctx, rec.TicketID)
	switch {
	case errors.Is(err, partner.ErrNotFound):
		_, err = o.interrupt(ctx, rec.ID, session.ActorPartnerAPI, "ticket no longer exists on the Partner API", false)
		return result{}, err
	case err != nil:
		return res, nil // checked again at the next check
	case !t.State.Open():
		_, err = o.interrupt(ctx, rec.ID, session.ActorPartnerAPI, "ticket "+rec.TicketNumber+" is "+string(t.State), false)
		return result{}, err
	}
	return res, nil
}

// saveToken stores the newest session token. A failed save is returned, so
// the reconcile retries it with backoff until it is stored or the session
// ends; only the newest token is ever written.
func (o *Orchestrator) saveToken(ctx context.Context, a *attachment) error {
	token, at, unsaved := a.unsavedToken()
	if !unsaved {
		return nil
	}
	_, err := o.update(ctx, a.id, func(r *session.Record) error {
		if r.OpenOBD.Token == token || r.OpenOBD.TokenReceivedAt.After(at) {
			return errSkip
		}
		r.OpenOBD.Token, r.OpenOBD.TokenReceivedAt = token, at
		return nil
	})
	if err != nil {
		return fmt.Errorf("save session token: %w", err)
	}
	a.tokenSaved(token)
	return nil
}

// sessionOptions are the options of every attached session: keep each new
// token for saving (a reconcile of an attached session saves it), and
// reconcile the session as soon as it ends.
func (o *Orchestrator) sessionOptions(a *attachment) []connector.SessionOption {
	return []connector.SessionOption{
		connector.OnToken(func(token string, received time.Time) {
			if a.receivedToken(token, received) {
				o.queue.Add(sessionKey(a.id))
			}
		}),
		connector.OnEnd(func(error) { o.queue.Add(sessionKey(a.id)) }),
	}
}

// sessionEnded records the end of an attached session on the openOBD side
// as INTERRUPTED (or FAILED when openOBD says it failed) with the reason.
func (o *Orchestrator) sessionEnded(ctx context.Context, rec *session.Record, sess *connector.Session) error {
	err := sess.Err()
	reason := "session ended on the openOBD side (openOBD or Partner API)"
	if err != nil {
		reason += ": " + err.Error()
	}
	to := session.StateInterrupted
	if connector.KindOf(err) != connector.KindInterrupted || connector.EndState(err) == connector.StateFailed {
		to = session.StateFailed
	}
	if a := o.attachment(rec.ID); a != nil {
		a.detach(&InterruptedError{SessionID: rec.ID, Actor: session.ActorOpenOBD, Reason: reason})
	}
	_, terr := o.transition(ctx, rec.ID, to, session.ActorOpenOBD, reason, func(r *session.Record) {
		r.OpenOBD.State = cmp.Or(connector.EndState(err), connector.StateInterrupted) // as getSession said
	})
	if terr != nil && !errors.Is(terr, ErrWrongState) && !errors.Is(terr, ErrNotLive) {
		return fmt.Errorf("record the openOBD end: %w", terr)
	}
	return nil
}

// observeOpenOBD feeds health: openOBD counts as unreachable while its calls
// fail as retryable, except for "no free resources", which is capacity.
func (o *Orchestrator) observeOpenOBD(err error) {
	switch {
	case err == nil:
		o.health.observe(depOpenOBD, nil)
	case connector.KindOf(err) == connector.KindRetryable && !strings.Contains(err.Error(), "free resources"):
		o.health.observe(depOpenOBD, err)
	}
}

func infoOf(rec *session.Record) connector.SessionInfo {
	return connector.SessionInfo{
		ID: rec.OpenOBD.SessionID, State: rec.OpenOBD.State, CreatedAt: rec.OpenOBD.CreatedAt,
		GRPCEndpoint: rec.OpenOBD.Endpoint, AuthenticationToken: rec.OpenOBD.AuthToken,
	}
}

package orchestrator

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"time"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// Runner leases. The stored lease (Record.Lease) is the only truth: its
// ExpireAt is when the lease ends unless it is renewed, and GetSession shows
// it as it is.
//
//   - AcquireSession writes a lease {id, holder, TTL, ExpireAt = now + TTL}
//     and moves the session READY -> RUNNING.
//   - A runner's call (Send, Exchange, ConfigureBus...) renews it: once a
//     third to a half of the TTL has passed (the share is fixed per lease,
//     see renewBelow), the call asks the session's reconcile to write
//     ExpireAt = time of the latest call + TTL. So a busy runner costs at
//     most one store write per third of its TTL, never one per request.
//     AcquireSession with renew_lease_id writes at once.
//   - The session's reconcile is scheduled for ExpireAt (RequeueAfter). If
//     the lease has not been renewed by then, it expires: the session goes
//     back to READY (or FAILED with FailOnLeaseExpiry) and the runner's
//     channels close with ErrLeaseExpired.
//   - Adoption after a restart or failover keeps the lease (id, holder,
//     TTL) and gives it a full TTL from the adoption: the runner could not
//     renew while nobody owned the session.
//   - Once shutdown begins (Drain), leases do not expire.

// A renewal is written once less than a share of the TTL remains: a share
// between renewFractionMin and renewFractionMax, fixed per lease by its id.
// Leases taken together (a batch of runners, an adoption) would otherwise
// all fall due at the same moment, and their renewals, one durable write
// each, would arrive as one burst that delays the relay's requests; spread,
// 200 leases of 30 s renew over 5 s instead.
const (
	renewFractionMin = 1.0 / 2
	renewFractionMax = 2.0 / 3
)

// renewSeed spreads the leases' renewal shares (per process: the spread is
// what matters, not which lease renews first).
var renewSeed = maphash.MakeSeed()

// renewBelow is how much of l's TTL may remain before a renewal is due.
func renewBelow(l *session.Lease) time.Duration {
	spread := float64(maphash.String(renewSeed, l.ID)) / math.MaxUint64
	return time.Duration((renewFractionMin + spread*(renewFractionMax-renewFractionMin)) * float64(l.TTL))
}

// AcquireSession waits until a READY session matches and leases it. It
// waits at most AcquireMaxWait, or until ctx ends if sooner.
func (o *Orchestrator) AcquireSession(ctx context.Context, req AcquireRequest) (Acquired, error) {
	if req.TTL <= 0 {
		req.TTL = o.cfg.LeaseTTL
	}
	if req.RenewLeaseID != "" {
		return o.renewLease(ctx, req)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.cfg.AcquireMaxWait, errAcquireWait)
	defer cancel()
	for {
		wake := o.readyChan()
		got, ok, err := o.tryAcquire(ctx, req)
		if err != nil || ok {
			return got, err
		}
		if req.NoWait {
			return Acquired{}, fmt.Errorf("%w here now", ErrNoSession)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Acquired{}, fmt.Errorf("%w within %s", ErrNoSession, waited(ctx))
			}
			return Acquired{}, ctx.Err()
		case <-o.life.Done():
			return Acquired{}, ErrShuttingDown
		case <-wake:
		}
	}
}

var errAcquireWait = errors.New("AcquireSession waited its longest")

func waited(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errAcquireWait) {
		return "the server's limit on waiting"
	}
	return "the caller's deadline"
}

func (o *Orchestrator) tryAcquire(ctx context.Context, req AcquireRequest) (Acquired, bool, error) {
	var candidates []*attachment
	switch {
	case req.SessionID == "":
		candidates = o.attachments()
	case o.attachment(req.SessionID) != nil:
		candidates = []*attachment{o.attachment(req.SessionID)}
	}
	for _, a := range candidates {
		// The transition below re-reads the record and checks its state;
		// the cached state only spares it the sessions that are not READY.
		rec, ok := o.records.get(a.id)
		if !ok || (req.SessionID == "" && rec.State != session.StateReady) || !matchAcquire(rec, req) || !a.serving() {
			continue
		}
		l := &session.Lease{ID: newID(), Holder: req.Runner, TTL: req.TTL, ExpireAt: o.cfg.Now().Add(req.TTL)}
		rec, err := o.transitionIf(ctx, a.id, session.StateRunning, req.Runner, "acquired by "+req.Runner,
			func(r *session.Record) bool { return r.State == session.StateReady },
			func(r *session.Record) { r.Lease = l })
		if err != nil {
			// This caller could not take it (its deadline, a store error):
			// the session may still be READY, so waiting callers look again.
			o.notifyReady()
			continue
		}
		if rec.Lease == nil || rec.Lease.ID != l.ID {
			continue // taken by another runner meanwhile, or ended
		}
		a.setLease(rec.Lease)
		o.queue.AddAfter(sessionKey(a.id), req.TTL)
		return Acquired{Session: rec, LeaseID: l.ID, ExpireAt: l.ExpireAt}, true, nil
	}
	return Acquired{}, false, nil
}

func matchAcquire(r *session.Record, req AcquireRequest) bool {
	return (req.TicketID == "" || r.TicketID == req.TicketID || r.TicketNumber == req.TicketID) &&
		(req.ConnectorID == "" || r.ConnectorID == req.ConnectorID) &&
		(req.VIN == "" || r.VIN == req.VIN)
}

// renewLease extends a lease by its (possibly new) TTL from now, at once.
func (o *Orchestrator) renewLease(ctx context.Context, req AcquireRequest) (Acquired, error) {
	var held *attachment
	for _, a := range o.attachments() {
		switch a.leaseState(req.RenewLeaseID) {
		case leaseHeld:
			held = a
		case leaseExpired:
			return Acquired{}, fmt.Errorf("%w (session %s)", ErrLeaseExpired, a.id)
		}
	}
	if held == nil {
		return Acquired{}, o.leaseElsewhere(ctx, req.RenewLeaseID)
	}
	expire := o.cfg.Now().Add(req.TTL)
	rec, err := o.update(ctx, held.id, func(r *session.Record) error {
		if r.State != session.StateRunning || r.Lease == nil || r.Lease.ID != req.RenewLeaseID {
			if !r.State.Live() {
				return notLive(r)
			}
			return fmt.Errorf("%w (session %s)", ErrLeaseExpired, r.ID)
		}
		r.Lease.TTL, r.Lease.ExpireAt = req.TTL, expire
		return nil
	})
	if err != nil {
		return Acquired{}, err
	}
	held.setLease(rec.Lease)
	o.queue.AddAfter(sessionKey(held.id), req.TTL)
	return Acquired{Session: rec, LeaseID: req.RenewLeaseID, ExpireAt: expire}, nil
}

// leaseElsewhere is the error for a lease no session here holds: the
// session's owner when another replica holds it, else ErrWrongLease. The
// cache is asked first; as it may not show yet a lease just written through
// another replica, a miss is confirmed by reading the live records from the
// store.
func (o *Orchestrator) leaseElsewhere(ctx context.Context, leaseID string) error {
	holder := func(recs []*session.Record) *session.Record {
		for _, r := range recs {
			if r.Lease != nil && subtle.ConstantTimeCompare([]byte(r.Lease.ID), []byte(leaseID)) == 1 {
				return r
			}
		}
		return nil
	}
	r := holder(o.records.live())
	if r == nil {
		recs, _, err := o.store.ListLive(ctx)
		if err != nil {
			return storeErr(err)
		}
		r = holder(recs)
	}
	if r == nil {
		return fmt.Errorf("%w: no session holds lease %s…", ErrWrongLease, prefix(leaseID))
	}
	return o.notOwner(ctx, r.ID, r.Owner)
}

// checkLease returns the attachment of session id if the call may use it:
// the session is attached here, not ending, and leaseID is its lease (or
// both are empty: a READY session nobody leases can be used by hand). It
// notes the runner's activity, asking for a durable renewal when one is
// due. It takes no lock shared by all sessions besides the map lookup.
func (o *Orchestrator) checkLease(ctx context.Context, id, leaseID string) (*attachment, error) {
	a := o.attachment(id)
	if a == nil {
		return nil, o.notHere(ctx, id)
	}
	if err := o.useLease(a, leaseID); err != nil {
		return nil, err
	}
	return a, nil
}

// useLease is checkLease for a known attachment: the relay calls it on
// every request.
func (o *Orchestrator) useLease(a *attachment, leaseID string) error {
	renew, err := a.useLease(leaseID, o.cfg.Now())
	if renew {
		o.queue.Add(sessionKey(a.id))
	}
	return err
}

// notHere explains why a session that this replica does not hold cannot be
// used here.
func (o *Orchestrator) notHere(ctx context.Context, id string) error {
	rec, ok := o.records.get(id)
	if !ok {
		var err error
		if rec, err = o.store.Get(ctx, id); err != nil {
			return storeErr(err)
		}
	}
	if !rec.State.Live() {
		return notLive(rec)
	}
	return o.notOwner(ctx, id, rec.Owner)
}

type leaseMatch int

const (
	leaseNone leaseMatch = iota
	leaseHeld
	leaseExpired
)

// leaseState tells whether leaseID is the attachment's lease, or the one
// that expired last.
func (a *attachment) leaseState(leaseID string) leaseMatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.lease != nil && subtle.ConstantTimeCompare([]byte(a.lease.ID), []byte(leaseID)) == 1:
		return leaseHeld
	case a.expired != "" && subtle.ConstantTimeCompare([]byte(a.expired), []byte(leaseID)) == 1:
		return leaseExpired
	}
	return leaseNone
}

// serving reports whether the session is attached and not ending.
func (a *attachment) serving() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess != nil && a.ending == nil
}

// setLease mirrors the stored lease.
func (a *attachment) setLease(l *session.Lease) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l == nil {
		a.lease = nil
		return
	}
	c := *l
	a.lease, a.expired = &c, ""
}

// useLease checks leaseID against the session's lease and notes the
// runner's activity; renew reports that a durable renewal is now due.
func (a *attachment) useLease(leaseID string, now time.Time) (renew bool, _ error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.ending != nil:
		return false, a.ending
	case a.sess == nil:
		return false, fmt.Errorf("%w: session %s is not attached yet; try again", ErrUnavailable, a.id)
	case a.lease == nil && leaseID == "":
		return false, nil // a READY session nobody holds: usable by hand
	case a.lease == nil && a.expired != "" && subtle.ConstantTimeCompare([]byte(a.expired), []byte(leaseID)) == 1:
		return false, fmt.Errorf("%w (session %s)", ErrLeaseExpired, a.id)
	case a.lease == nil:
		return false, fmt.Errorf("%w: session %s; acquire it first (lease %s… is not its lease)", ErrNotLeased, a.id, prefix(leaseID))
	case leaseID == "":
		return false, fmt.Errorf("%w (session %s)", ErrLeaseRequired, a.id)
	case subtle.ConstantTimeCompare([]byte(a.lease.ID), []byte(leaseID)) != 1:
		return false, fmt.Errorf("%w (session %s)", ErrWrongLease, a.id)
	case !now.Before(a.lease.ExpireAt):
		return true, fmt.Errorf("%w (session %s)", ErrLeaseExpired, a.id)
	}
	a.active = now
	if !a.renewQueued && a.lease.Remaining(now) < renewBelow(a.lease) {
		a.renewQueued = true
		return true, nil
	}
	return false, nil
}

// leaseHolder names the runner holding the session, for the history.
func (a *attachment) leaseHolder() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lease != nil {
		return a.lease.Holder
	}
	return "runner"
}

// prefix shows the start of an id without giving it away.
func prefix(id string) string {
	if len(id) > 4 {
		return id[:4]
	}
	return id
}

// reconcileLease writes a due renewal, or expires a lease whose time has
// come, and schedules the next look at the lease.
func (o *Orchestrator) reconcileLease(ctx context.Context, rec *session.Record, a *attachment) (result, error) {
	a.mu.Lock()
	l, active, renew := a.lease, a.active, a.renewQueued
	a.mu.Unlock()
	if l == nil || rec.State != session.StateRunning {
		return result{}, nil
	}
	now := o.cfg.Now()
	if renew {
		expire := active.Add(l.TTL)
		r, err := o.update(ctx, rec.ID, func(r *session.Record) error {
			if r.State != session.StateRunning || r.Lease == nil || r.Lease.ID != l.ID || !expire.After(r.Lease.ExpireAt) {
				return errSkip
			}
			r.Lease.ExpireAt = expire
			return nil
		})
		if err != nil {
			return result{}, fmt.Errorf("renew lease: %w", err)
		}
		a.mu.Lock()
		a.renewQueued = false
		if r.Lease != nil && a.lease != nil && a.lease.ID == r.Lease.ID {
			c := *r.Lease
			a.lease = &c
		}
		l = a.lease
		a.mu.Unlock()
		if l == nil {
			return result{}, nil
		}
	}
	if now.Before(l.ExpireAt) {
		return after(l.ExpireAt.Sub(now)), nil
	}
	if o.draining.Load() {
		return result{}, nil
	}
	return result{}, o.expireLease(ctx, rec.ID, a, l)
}

// expireLease ends a lease whose runner went silent.
func (o *Orchestrator) expireLease(ctx context.Context, id string, a *attachment, l *session.Lease) error {
	reason := "runner lease expired"
	to := session.StateReady
	if o.cfg.FailOnLeaseExpiry {
		to = session.StateFailed
	}
	rec, err := o.transitionIf(ctx, id, to, o.store.Replica(), reason,
		func(r *session.Record) bool {
			return r.State == session.StateRunning && r.Lease != nil && r.Lease.ID == l.ID && !o.cfg.Now().Before(r.Lease.ExpireAt)
		}, nil)
	if err != nil {
		return fmt.Errorf("expire lease: %w", err)
	}
	if rec.State != to {
		return nil // renewed or ended meanwhile
	}
	// A runner may have acquired the session again between the write and
	// here (the READY it wrote wakes waiting acquires): its new lease and
	// channels stay.
	a.mu.Lock()
	replaced := a.lease != nil && a.lease.ID != l.ID
	if !replaced {
		a.lease, a.expired = nil, l.ID
	}
	a.mu.Unlock()
	if !replaced {
		a.closeChannels(fmt.Errorf("%w: %s (session %s)", ErrLeaseExpired, reason, id))
	}
	o.logger(ctx).InfoContext(ctx, "runner lease expired", "session_id", id, "state", to.String())
	if to == session.StateFailed {
		// The record says FAILED; now stop the openOBD session it held.
		if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil && connector.KindOf(err) == connector.KindRetryable {
			o.logger(ctx).WarnContext(ctx, "interrupting the openOBD session of an expired lease failed; it ends with its token", "session_id", id, "err", err)
		}
	}
	return nil
}

package orchestrator

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"time"

	"github.com/obdorch/obdorch/connector"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// This file holds the operations the control plane calls.

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

// StartSession opens a session on a ticket or a free connector. A live
// session for the same target (or request id) is returned instead of a new
// one.
func (o *Orchestrator) StartSession(ctx context.Context, req StartRequest) (*session.Record, bool, error) {
	if req.RequestID != "" {
		if c, ok, err := o.store.ClaimOf(ctx, store.ClaimRequest, req.RequestID); err != nil {
			return nil, false, storeErr(err)
		} else if ok {
			rec, err := o.store.Get(ctx, c.SessionID)
			return rec, false, storeErr(err)
		}
	}
	reason := "requested by " + req.Actor
	if req.TicketID != "" {
		t, err := o.lookupTicket(ctx, req.TicketID)
		if err != nil {
			return nil, false, err
		}
		if !t.State.Open() {
			return nil, false, fmt.Errorf("%w: ticket %d is %s", ErrWrongState, t.TicketNumber, t.State)
		}
		return o.startRecord(ctx, t, "", req.RequestID, req.Actor, reason)
	}
	c, err := o.partner.Connector(ctx, req.ConnectorID)
	if err != nil {
		if errors.Is(err, partner.ErrNotFound) {
			return nil, false, fmt.Errorf("%w: connector %s", ErrNotFound, req.ConnectorID)
		}
		return nil, false, fmt.Errorf("%w: Partner API: %w", ErrUnavailable, err)
	}
	if cl, ok, err := o.store.ClaimOf(ctx, store.ClaimConnector, c.ID); err == nil && ok {
		rec, err := o.store.Get(ctx, cl.SessionID)
		return rec, false, storeErr(err)
	}
	if !c.Free() {
		return nil, false, fmt.Errorf("%w: connector %s is in a connection or has an active ticket", ErrWrongState, c.ID)
	}
	return o.startRecord(ctx, partner.Ticket{}, c.ID, req.RequestID, req.Actor, reason)
}

func (o *Orchestrator) startRecord(ctx context.Context, t partner.Ticket, connectorID, requestID, actor, reason string) (*session.Record, bool, error) {
	rec, created, err := o.createRecord(ctx, t, connectorID, requestID, actor, reason)
	var claimed *store.ClaimedError
	if errors.As(err, &claimed) {
		return rec, false, nil
	}
	return rec, created, err
}

// lookupTicket resolves a ticket UUID or number.
func (o *Orchestrator) lookupTicket(ctx context.Context, idOrNumber string) (partner.Ticket, error) {
	var (
		t   partner.Ticket
		err error
	)
	if n, perr := strconv.ParseInt(idOrNumber, 10, 64); perr == nil && n > 0 {
		t, err = o.partner.TicketByNumber(ctx, n)
	} else {
		t, err = o.partner.Ticket(ctx, idOrNumber)
	}
	switch {
	case errors.Is(err, partner.ErrNotFound):
		return t, fmt.Errorf("%w: ticket %s", ErrNotFound, idOrNumber)
	case errors.Is(err, partner.ErrInvalidArgument):
		return t, invalid("ticket_id", "%v", err)
	case err != nil:
		return t, fmt.Errorf("%w: Partner API: %w", ErrUnavailable, err)
	}
	return t, nil
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

// InterruptSession stops a live session: openOBD first, then the record.
// The runner holding it gets ABORTED with actor and reason.
func (o *Orchestrator) InterruptSession(ctx context.Context, id, actor, reason string) (*session.Record, error) {
	return o.interrupt(ctx, id, actor, reason)
}

func (o *Orchestrator) interrupt(ctx context.Context, id, actor, reason string) (*session.Record, error) {
	rec, err := o.store.Get(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	if !rec.State.Live() {
		return rec, notLive(rec)
	}
	// Let go of the session first, so its monitor does not record the end
	// that follows as openOBD's doing. Should openOBD fail to interrupt, the
	// next pass re-attaches the still-live session.
	o.dropLive(id, &InterruptedError{SessionID: id, Actor: actor, Reason: reason})
	if rec.OpenOBD.SessionID != "" {
		if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil {
			switch connector.KindOf(err) {
			case connector.KindInterrupted, connector.KindNotFound, connector.KindTerminal:
				// Already over on openOBD: record it all the same.
			default:
				o.queue.Add(sessionPrefix + id)
				return nil, fmt.Errorf("%w: openOBD interrupt: %w", ErrUnavailable, err)
			}
		}
	}
	return o.transition(ctx, id, session.StateInterrupted, actor, reason, func(r *session.Record) {
		r.OpenOBD.State = connector.StateInterrupted
	})
}

// FinishSession reports the runner's result to openOBD, marks the ticket
// processed on the Partner API and ends the session.
func (o *Orchestrator) FinishSession(ctx context.Context, id, leaseID string, res session.Result) (*session.Record, error) {
	if _, err := o.checkLease(ctx, id, leaseID); err != nil {
		return nil, err
	}
	if _, err := o.transition(ctx, id, session.StateFinishing, o.leaseHolder(id), "runner reported its result", func(r *session.Record) {
		r.Result = &res
	}); err != nil {
		return nil, err
	}
	if err := o.completeFinish(ctx, id); err != nil {
		return nil, err
	}
	return o.GetSession(ctx, id)
}

// completeFinish performs the steps of FINISHING; it is safe to repeat.
func (o *Orchestrator) completeFinish(ctx context.Context, id string) error {
	// The runner's call and the reconciler may both get here: one at a time.
	mu, _ := o.finishing.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	rec, err := o.store.Get(ctx, id)
	if err != nil {
		return storeErr(err)
	}
	if rec.State != session.StateFinishing {
		return nil
	}
	if l := o.getLive(id); l != nil {
		if err := l.sess.Finish(ctx, serviceResult(rec.Result)); err != nil && connector.KindOf(err) != connector.KindInterrupted {
			return requeue(fmt.Errorf("%w: openOBD finish: %w", ErrUnavailable, err))
		}
	} else {
		// Not attached (a restart between finish and its record): only an
		// openOBD session that has finished can be recorded as such.
		info, err := o.openobd.GetSession(ctx, rec.OpenOBD.SessionID)
		switch {
		case err != nil:
			return requeue(fmt.Errorf("%w: openOBD getSession: %w", ErrUnavailable, err))
		case info.State == connector.StateFinished:
		case info.Ended():
			_, err := o.transition(ctx, id, session.StateInterrupted, session.ActorOpenOBD,
				"session ended on the openOBD side ("+info.State+") before its result was reported", nil)
			return err
		default:
			return requeue(fmt.Errorf("%w: session %s is not attached here", ErrUnavailable, id))
		}
	}
	if rec.TicketID != "" {
		ref, done := rec.ID, true
		_, err := o.partner.UpdateTicket(ctx, rec.TicketID, partner.TicketUpdate{ExternalReference: &ref, ExternallyProcessed: &done})
		switch {
		case errors.Is(err, partner.ErrTicketWriteDisabled):
			o.logger(ctx).DebugContext(ctx, "ticket write disabled; ticket not marked", "session_id", id)
		case err != nil:
			return requeue(fmt.Errorf("%w: mark ticket: %w", ErrUnavailable, err))
		}
	}
	// Recorded first, let go after: a reconcile in between still finds the
	// session attached and leaves the finish to this call.
	_, err = o.transition(ctx, id, session.StateFinished, o.store.Replica(), "result reported", func(r *session.Record) {
		r.OpenOBD.State = connector.StateFinished
	})
	if err == nil {
		o.dropLive(id, fmt.Errorf("%w: session %s finished", ErrNotLive, id))
		o.ending.Delete(id)
		o.finishing.Delete(id)
	}
	return err
}

func serviceResult(r *session.Result) *openobdv1.ServiceResult {
	out := &openobdv1.ServiceResult{}
	if r == nil {
		out.Result = []openobdv1.Result{openobdv1.Result_RESULT_UNDEFINED}
		return out
	}
	for _, c := range r.Codes {
		out.Result = append(out.Result, openobdv1.Result(c))
	}
	if r.UserFeedback != 0 {
		fb := openobdv1.UserFeedback(r.UserFeedback)
		out.UserFeedback = &fb
	}
	if r.Description != "" {
		d := r.Description
		out.Description = &d
	}
	return out
}

// leaseHolder names the runner holding a session, for the history.
func (o *Orchestrator) leaseHolder(id string) string {
	if rec, err := o.store.Get(o.ctx, id); err == nil && rec.Lease != nil {
		return rec.Lease.Holder
	}
	return "runner"
}

// AcquireSession waits until a READY session matches and leases it.
func (o *Orchestrator) AcquireSession(ctx context.Context, req AcquireRequest) (Acquired, error) {
	if req.TTL <= 0 {
		req.TTL = o.cfg.LeaseTTL
	}
	if req.RenewLeaseID != "" {
		return o.renewLease(ctx, req)
	}
	for {
		wake := o.readyChan()
		got, ok, err := o.tryAcquire(ctx, req)
		if err != nil || ok {
			return got, err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Acquired{}, fmt.Errorf("%w before the deadline", ErrNoSession)
			}
			return Acquired{}, ctx.Err()
		case <-o.ctx.Done():
			return Acquired{}, ErrShuttingDown
		case <-wake:
		}
	}
}

func (o *Orchestrator) tryAcquire(ctx context.Context, req AcquireRequest) (Acquired, bool, error) {
	o.mu.Lock()
	candidates := make([]string, 0, len(o.lives))
	for id := range o.lives {
		candidates = append(candidates, id)
	}
	o.mu.Unlock()
	for _, id := range candidates {
		rec, ok := o.records.get(id) // the transition below re-reads and checks
		if !ok || rec.State != session.StateReady || !matchAcquire(rec, req) {
			continue
		}
		leaseID := newID()
		expire := o.cfg.Now().Add(req.TTL)
		rec, err := o.transition(ctx, id, session.StateRunning, req.Runner, "acquired by "+req.Runner, func(r *session.Record) {
			r.Lease = &session.Lease{ID: leaseID, Holder: req.Runner, ExpireAt: expire}
		})
		if err != nil {
			continue // taken by another runner meanwhile
		}
		if rec.Lease == nil || rec.Lease.ID != leaseID {
			continue
		}
		if l := o.getLive(id); l != nil {
			l.mu.Lock()
			l.leaseID, l.leaseExpiry, l.leaseTTL = leaseID, expire, req.TTL
			l.mu.Unlock()
		}
		return Acquired{Session: rec, LeaseID: leaseID, ExpireAt: expire}, true, nil
	}
	return Acquired{}, false, nil
}

func matchAcquire(r *session.Record, req AcquireRequest) bool {
	return (req.TicketID == "" || r.TicketID == req.TicketID || r.TicketNumber == req.TicketID) &&
		(req.ConnectorID == "" || r.ConnectorID == req.ConnectorID) &&
		(req.VIN == "" || r.VIN == req.VIN)
}

// renewLease extends a lease, recording the new expiry.
func (o *Orchestrator) renewLease(ctx context.Context, req AcquireRequest) (Acquired, error) {
	o.mu.Lock()
	var l *live
	for _, cand := range o.lives {
		cand.mu.Lock()
		match := cand.leaseID != "" && subtle.ConstantTimeCompare([]byte(cand.leaseID), []byte(req.RenewLeaseID)) == 1
		cand.mu.Unlock()
		if match {
			l = cand
			break
		}
	}
	o.mu.Unlock()
	if l == nil {
		return Acquired{}, fmt.Errorf("%w: lease not found or expired", ErrLeaseRequired)
	}
	expire := o.cfg.Now().Add(req.TTL)
	rec, err := o.update(ctx, l.id, func(r *session.Record) error {
		if r.State != session.StateRunning || r.Lease == nil || r.Lease.ID != req.RenewLeaseID {
			if !r.State.Live() {
				return notLive(r)
			}
			return fmt.Errorf("%w: lease not found or expired", ErrLeaseRequired)
		}
		r.Lease.ExpireAt = expire
		return nil
	})
	if err != nil {
		return Acquired{}, err
	}
	l.mu.Lock()
	l.leaseExpiry, l.leaseTTL = expire, req.TTL
	l.mu.Unlock()
	return Acquired{Session: rec, LeaseID: req.RenewLeaseID, ExpireAt: expire}, nil
}

// checkLease returns the attached session if leaseID holds its lease, and
// extends the lease: traffic keeps a lease alive.
func (o *Orchestrator) checkLease(ctx context.Context, id, leaseID string) (*live, error) {
	l := o.getLive(id)
	if l == nil {
		if cause, ok := o.ending.Load(id); ok {
			return nil, cause.(error)
		}
		rec, err := o.store.Get(ctx, id)
		if err != nil {
			return nil, storeErr(err)
		}
		if !rec.State.Live() {
			return nil, notLive(rec)
		}
		return nil, fmt.Errorf("%w: session %s is not attached to this replica (owner %q)", ErrUnavailable, id, rec.Owner)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended != nil {
		return nil, l.ended
	}
	switch {
	case l.leaseID == "" && leaseID == "":
		// A READY session nobody holds: usable by hand, nothing to extend.
		return l, nil
	case l.leaseID == "":
		return nil, fmt.Errorf("%w: lease %s… not found or expired (session %s)", ErrLeaseRequired, prefix(leaseID), id)
	case subtle.ConstantTimeCompare([]byte(l.leaseID), []byte(leaseID)) != 1:
		return nil, fmt.Errorf("%w (session %s)", ErrLeaseRequired, id)
	}
	l.leaseExpiry = o.cfg.Now().Add(l.leaseTTL)
	return l, nil
}

// prefix shows the start of an id without giving it away.
func prefix(id string) string {
	if len(id) > 4 {
		return id[:4]
	}
	return id
}

// expireLease ends a lease whose runner went silent.
func (o *Orchestrator) expireLease(ctx context.Context, l *live) {
	l.mu.Lock()
	expired := l.leaseID != "" && o.cfg.Now().After(l.leaseExpiry)
	leaseID := l.leaseID
	if expired {
		l.leaseID = ""
	}
	l.mu.Unlock()
	if !expired {
		return
	}
	reason := "runner lease expired"
	to := session.StateReady
	if o.cfg.FailOnLeaseExpiry {
		to = session.StateFailed
	}
	l.closeChannels(fmt.Errorf("%w: %s", ErrLeaseRequired, reason))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := o.update(wctx, l.id, func(r *session.Record) error {
		if r.State != session.StateRunning || r.Lease == nil || r.Lease.ID != leaseID {
			return errSkip
		}
		return r.Transition(to, o.store.Replica(), reason, o.cfg.Now())
	})
	if err != nil {
		o.log.Warn("expiring lease failed", "session_id", l.id, "err", err)
		return
	}
	o.log.Info("runner lease expired", "session_id", l.id, "state", to.String())
	if to == session.StateFailed {
		// The record says FAILED; now stop the openOBD session it held.
		if _, err := o.openobd.InterruptSession(wctx, l.sess.ID()); err != nil && connector.KindOf(err) == connector.KindRetryable {
			o.log.Warn("interrupting the openOBD session of an expired lease failed; it ends with its token", "session_id", l.id, "err", err)
		}
		o.dropLive(l.id, fmt.Errorf("%w: %s", ErrNotLive, reason))
		return
	}
	o.notifyReady()
}

// ConfigureBus replaces the session's buses on openOBD and in the record.
func (o *Orchestrator) ConfigureBus(ctx context.Context, id, leaseID string, buses []session.Bus) (*session.Record, error) {
	l, err := o.checkLease(ctx, id, leaseID)
	if err != nil {
		return nil, err
	}
	if err := l.sess.ConfigureBus(ctx, busConfigs(buses)...); err != nil {
		if connector.KindOf(err) == connector.KindTerminal {
			return nil, invalid("buses", "refused by the connector: %v", err)
		}
		return nil, relayErr(l, err)
	}
	// The connector dropped the old configuration: channels must reopen.
	l.mu.Lock()
	l.buses = busNames(buses)
	l.mu.Unlock()
	l.closeChannels(fmt.Errorf("%w: bus configuration replaced", ErrUnavailable))
	return o.update(ctx, id, func(r *session.Record) error {
		r.Buses = buses
		return nil
	})
}

// relayErr translates an openOBD failure during a runner's call.
func relayErr(l *live, err error) error {
	l.mu.Lock()
	ended := l.ended
	l.mu.Unlock()
	if ended != nil {
		return ended
	}
	switch connector.KindOf(err) {
	case connector.KindInterrupted:
		return &InterruptedError{SessionID: l.id, Actor: session.ActorOpenOBD, Reason: err.Error()}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: openOBD: %w", ErrUnavailable, err)
}

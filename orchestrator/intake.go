package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/trace"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// Intake, in three steps:
//
//  1. reconcileIntake (the one intake key, every ResyncInterval) lists the
//     tickets in the intake state and queues one key per ticket that no
//     live session holds (as the watch-fed cache shows them); it also
//     queues every live session that this replica does not hold, so that
//     an orphan (its owner's store lease ended) is adopted.
//  2. reconcileTicket creates a PENDING record for a ticket nobody has
//     claimed and that no engineer has put on hold, claiming the ticket and
//     its connector in the same store transaction.
//  3. The session's own key takes it from there (lifecycle.go).

// reconcileIntake is one intake pass.
func (o *Orchestrator) reconcileIntake(ctx context.Context) (result, error) {
	next := after(o.cfg.ResyncInterval)
	for _, r := range o.records.live() {
		if o.attachment(r.ID) == nil {
			o.queue.Add(sessionKey(r.ID))
		}
	}
	if o.draining.Load() {
		return next, nil
	}
	f := partner.TicketFilter{State: o.cfg.IntakeState, Paging: partner.Paging{PageSize: partner.MaxPageSize}}
	if !o.cfg.IntakeAnyProcessed {
		processed := o.cfg.IntakeExternallyProcessed
		f.ExternallyProcessed = &processed
	}
	listed := map[string]partner.Ticket{}
	for t, err := range o.partner.Tickets(ctx, f) {
		if err != nil {
			// The Partner API client has already retried within its
			// budget (honouring Retry-After); the next pass comes at the
			// usual interval rather than with a backoff of its own, so a
			// 429 storm gets one listing per pass.
			o.health.observe(depPartner, err)
			o.logger(ctx).WarnContext(ctx, "intake pass failed", "err", err)
			return next, nil
		}
		listed[t.ID] = t
	}
	o.keepHeldTickets(listed)
	unclaimed := make(map[string]bool, len(listed))
	for id := range listed {
		unclaimed[id] = true
	}
	o.shareSeen(unclaimed) // leaves the tickets no cached live session holds
	o.keepListed(listed, unclaimed)
	for id := range unclaimed {
		// A ticket a live session holds is left out: its reconcile
		// would end at once (reconcileTicket), so a pass over tickets
		// that all have their sessions queues nothing but itself.
		o.queue.Add(ticketKey(id))
	}
	o.health.observe(depPartner, nil)
	if o.health.intakeDone() {
		o.log.InfoContext(ctx, "first intake pass done", "tickets", len(listed))
	}
	return next, nil
}

// reconcileTicket makes sure an intake ticket has a session: it claims the
// ticket and its connector and creates a PENDING record. A ticket already
// claimed (by any replica) or on hold is left alone.
//
// The store is asked only where the watch-fed cache cannot answer: a ticket
// that a cached live record holds is left alone at no cost (the cache has
// this replica's own writes at once, another replica's within the watch's
// delay, and the create below is conditioned on the claims anyway). A new
// ticket costs one transaction, the create, which also checks the intake
// hold. A ticket found held is remembered, and read (claim and hold) before
// the next create is tried, so that a long hold costs a read per pass
// rather than a failed write.
func (o *Orchestrator) reconcileTicket(ctx context.Context, ticketID string) (result, error) {
	if o.draining.Load() {
		return result{}, nil
	}
	claimed, known := o.records.ticketHeld(ticketID)
	if claimed {
		return result{}, nil
	}
	if !known || o.heldTicket(ticketID) {
		st, err := o.store.Ticket(ctx, ticketID)
		if err != nil {
			return result{}, fmt.Errorf("read ticket claim: %w", err)
		}
		if st.Claimed || st.Hold != nil {
			return result{}, nil
		}
		o.setHeldTicket(ticketID, false)
	}
	t, ok := o.listedTicket(ticketID)
	if !ok {
		var err error
		if t, err = o.partner.Ticket(ctx, ticketID); err != nil {
			if errors.Is(err, partner.ErrNotFound) {
				return result{}, nil
			}
			return result{}, fmt.Errorf("read ticket: %w", err)
		}
	}
	if t.State != o.cfg.IntakeState {
		o.dropListed(ticketID)
		return result{}, nil
	}
	release, wait, ok := o.reserve(ticketKey(ticketID))
	if !ok {
		return after(wait), nil // this replica holds its share: see share.go
	}
	defer release()
	target := newRecordFor(t, "")
	target.intake = true
	_, _, err := o.create(ctx, target, o.store.Replica(), "ticket "+strconv.FormatInt(t.TicketNumber, 10)+" is "+string(t.State))
	switch {
	case err == nil:
		o.dropListed(ticketID)
	case errors.Is(err, store.ErrHeld):
		o.dropListed(ticketID)
		o.setHeldTicket(ticketID, true)
		return result{}, nil
	case errors.Is(err, store.ErrClaimed):
		o.dropListed(ticketID)
		return result{}, nil
	}
	return result{}, err
}

// heldTicket reports whether a create found intake held off the ticket
// and no read since found the hold gone.
func (o *Orchestrator) heldTicket(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.heldTickets[id]
}

func (o *Orchestrator) setHeldTicket(id string, held bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if held {
		o.heldTickets[id] = true
	} else {
		delete(o.heldTickets, id)
	}
}

// keepHeldTickets forgets the holds of tickets no longer listed.
func (o *Orchestrator) keepHeldTickets(listed map[string]partner.Ticket) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.heldTickets {
		if _, ok := listed[id]; !ok {
			delete(o.heldTickets, id)
		}
	}
}

// keepListed keeps the listed tickets that are unclaimed, for their
// reconciles, in place of the previous pass's.
func (o *Orchestrator) keepListed(listed map[string]partner.Ticket, unclaimed map[string]bool) {
	var keep map[string]partner.Ticket
	if len(unclaimed) > 0 {
		keep = make(map[string]partner.Ticket, len(unclaimed))
		for id := range unclaimed {
			keep[id] = listed[id]
		}
	}
	o.mu.Lock()
	o.listed = keep
	o.mu.Unlock()
}

// listedTicket returns the ticket as the latest intake pass read it.
func (o *Orchestrator) listedTicket(id string) (partner.Ticket, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.listed[id]
	return t, ok
}

// dropListed forgets a listed ticket whose reconcile is settled: an idle
// session keeps nothing of the listing that created it.
func (o *Orchestrator) dropListed(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.listed, id)
	if len(o.listed) == 0 {
		o.listed = nil // a map keeps its size after its entries are deleted
	}
}

// recordTarget is what a new record is for: a ticket, or (t zero) a
// connector.
type recordTarget struct {
	ticket      partner.Ticket
	connectorID string
	// intake: intake creates the record. The ticket's intake hold, if
	// any, keeps it from being created (store.UnlessHeld), and a claimed
	// target is reported without reading the session that holds it.
	intake bool
}

func newRecordFor(t partner.Ticket, connectorID string) recordTarget {
	return recordTarget{ticket: t, connectorID: connectorID}
}

// create records a new PENDING session, claims its targets and queues it.
// Its first start attempt is counted in the record it writes. When a
// target is already claimed it returns the session holding it (none for
// intake) and the *store.ClaimedError; for intake, a held ticket returns a
// *store.HeldError.
func (o *Orchestrator) create(ctx context.Context, target recordTarget, actor, reason string, opts ...func(*session.Record)) (*session.Record, bool, error) {
	now := o.cfg.Now()
	rec := session.New(newID(), actor, reason, now)
	rec.Owner = o.store.Replica()
	rec.StartAttempts, rec.StartAttemptAt = 1, now
	if t := target.ticket; t.ID != "" {
		rec.TicketID = t.ID
		rec.TicketNumber = strconv.FormatInt(t.TicketNumber, 10)
		if t.CustomerConnectorID != nil {
			rec.ConnectorID = *t.CustomerConnectorID
		}
		if t.VIN != nil {
			rec.VIN = *t.VIN
		}
	} else {
		rec.ConnectorID = target.connectorID
	}
	for _, opt := range opts {
		opt(rec)
	}
	// Held before the write, so that the session's first reconcile finds
	// its fresh attempt.
	a := o.hold(rec.ID)
	a.mu.Lock()
	a.freshAttempt = true
	a.mu.Unlock()
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		a.setTrace(sc)
	}
	var copts []store.CreateOption
	if target.intake {
		copts = append(copts, store.UnlessHeld())
	}
	err := o.store.Create(ctx, rec, copts...)
	if err != nil {
		o.forget(rec.ID)
	}
	var claimed *store.ClaimedError
	if errors.As(err, &claimed) && !target.intake {
		existing, gerr := o.store.Get(ctx, claimed.SessionID)
		if gerr != nil {
			return nil, false, fmt.Errorf("%w: read session %s holding the claim: %w", ErrUnavailable, claimed.SessionID, gerr)
		}
		return existing, false, err
	}
	if err != nil {
		if claimed != nil || errors.Is(err, store.ErrHeld) {
			return nil, false, err
		}
		return nil, false, storeErr(err)
	}
	a.wrote(rec.Revision)
	o.records.put(rec)
	o.metrics.transition(session.StateUnspecified, session.StatePending)
	o.logger(ctx).InfoContext(ctx, "session created", "session_id", rec.ID, "ticket_id", rec.TicketID, "connector_id", rec.ConnectorID)
	o.queue.Add(sessionKey(rec.ID))
	return rec, true, nil
}

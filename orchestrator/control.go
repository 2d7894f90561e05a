package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// The control-plane operations that change sessions: start, interrupt,
// finish and bus configuration. (Reads are in views.go, leases in
// leases.go, the relay in relay.go.)

// StartSession opens a session on a ticket or a free connector.
//
// Idempotency: a live session for the same target is returned (Created
// false) instead of a second one; a request id belongs to the target it was
// first used for, and returns that target's session on a retry, while its
// reuse for another target is ErrAlreadyExists. A ticket whose latest
// session FINISHED, or that is externally processed, is ErrWrongState
// unless Force is set. Starting a ticket lifts the intake hold an
// InterruptSession put on it. With ValidateOnly everything is checked and
// nothing is started or changed.
func (o *Orchestrator) StartSession(ctx context.Context, req StartRequest) (StartResult, error) {
	if req.RequestID != "" {
		if res, ok, err := o.startedByRequest(ctx, req); ok || err != nil {
			return res, err
		}
	}
	if req.TicketID != "" {
		return o.startOnTicket(ctx, req)
	}
	return o.startOnConnector(ctx, req)
}

// startedByRequest answers a retried request from the session it created.
func (o *Orchestrator) startedByRequest(ctx context.Context, req StartRequest) (StartResult, bool, error) {
	c, ok, err := o.store.ClaimOf(ctx, store.ClaimRequest, req.RequestID)
	if err != nil || !ok {
		return StartResult{}, false, storeErr(err)
	}
	rec, err := o.store.Get(ctx, c.SessionID)
	if err != nil {
		return StartResult{}, true, storeErr(err)
	}
	sameTarget := (req.TicketID != "" && (rec.TicketID == req.TicketID || rec.TicketNumber == req.TicketID)) ||
		(req.ConnectorID != "" && rec.TicketID == "" && rec.ConnectorID == req.ConnectorID)
	if !sameTarget {
		return StartResult{}, true, fmt.Errorf("%w: request_id %q was used for %s (session %s)", ErrAlreadyExists, req.RequestID, targetOf(rec), rec.ID)
	}
	res := StartResult{Session: rec}
	if req.ValidateOnly {
		res.Summary = "would return session " + rec.ID + " (" + rec.State.String() + "), which this request_id started"
	}
	return res, true, nil
}

func targetOf(r *session.Record) string {
	if r.TicketID != "" {
		return "ticket " + r.TicketNumber
	}
	return "connector " + r.ConnectorID
}

func (o *Orchestrator) startOnTicket(ctx context.Context, req StartRequest) (StartResult, error) {
	t, err := o.lookupTicket(ctx, req.TicketID)
	if err != nil {
		return StartResult{}, err
	}
	number := strconv.FormatInt(t.TicketNumber, 10)
	if c, ok, err := o.store.ClaimOf(ctx, store.ClaimTicket, t.ID); err != nil {
		return StartResult{}, storeErr(err)
	} else if ok {
		rec, err := o.store.Get(ctx, c.SessionID)
		if err != nil {
			return StartResult{}, storeErr(err)
		}
		res := StartResult{Session: rec}
		if req.ValidateOnly {
			res.Summary = "would return the live session " + rec.ID + " (" + rec.State.String() + ") of ticket " + number
		}
		return res, nil
	}
	if !t.State.Open() {
		return StartResult{}, fmt.Errorf("%w: ticket %s is %s", ErrWrongState, number, t.State)
	}
	if !req.Force {
		if t.ExternallyProcessed {
			return StartResult{}, fmt.Errorf("%w: ticket %s is already externally processed (set force to start a session anyway)", ErrWrongState, number)
		}
		latest, ok, err := o.store.Latest(ctx, t.ID)
		if err != nil {
			return StartResult{}, storeErr(err)
		}
		if ok && latest.State == session.StateFinished {
			return StartResult{}, fmt.Errorf("%w: ticket %s was served by session %s, which FINISHED (set force to start another)", ErrWrongState, number, latest.ID)
		}
	}
	if req.ValidateOnly {
		return StartResult{Summary: "would start a new openOBD session on ticket " + number + " (" + string(t.State) + ")"}, nil
	}
	if err := o.store.ReleaseIntakeHold(ctx, t.ID); err != nil {
		return StartResult{}, storeErr(err)
	}
	return o.createFor(ctx, newRecordFor(t, ""), req)
}

func (o *Orchestrator) startOnConnector(ctx context.Context, req StartRequest) (StartResult, error) {
	c, err := o.partner.Connector(ctx, req.ConnectorID)
	if err != nil {
		if errors.Is(err, partner.ErrNotFound) {
			return StartResult{}, fmt.Errorf("%w: connector %s", ErrNotFound, req.ConnectorID)
		}
		return StartResult{}, fmt.Errorf("%w: Partner API: %w", ErrUnavailable, err)
	}
	if cl, ok, err := o.store.ClaimOf(ctx, store.ClaimConnector, c.ID); err != nil {
		return StartResult{}, storeErr(err)
	} else if ok {
		rec, err := o.store.Get(ctx, cl.SessionID)
		if err != nil {
			return StartResult{}, storeErr(err)
		}
		res := StartResult{Session: rec}
		if req.ValidateOnly {
			res.Summary = "would return the live session " + rec.ID + " (" + rec.State.String() + ") on connector " + c.ID
		}
		return res, nil
	}
	if !c.Free() {
		return StartResult{}, fmt.Errorf("%w: connector %s is in a connection or has an active ticket", ErrWrongState, c.ID)
	}
	if req.ValidateOnly {
		return StartResult{Summary: "would start a new openOBD session on the free connector " + c.ID}, nil
	}
	return o.createFor(ctx, newRecordFor(partner.Ticket{}, c.ID), req)
}

func (o *Orchestrator) createFor(ctx context.Context, target recordTarget, req StartRequest) (StartResult, error) {
	if !o.belowMax() {
		return StartResult{}, o.errAtCapacity()
	}
	rec, created, err := o.create(ctx, target, req.Actor, "requested by "+req.Actor, func(r *session.Record) { r.RequestID = req.RequestID })
	var claimed *store.ClaimedError
	if errors.As(err, &claimed) {
		if claimed.Kind == store.ClaimRequest && rec != nil {
			// Raced with a retry of the same request, or its reuse.
			return o.StartSession(ctx, StartRequest{TicketID: req.TicketID, ConnectorID: req.ConnectorID, RequestID: req.RequestID, Actor: req.Actor})
		}
		return StartResult{Session: rec}, nil
	}
	return StartResult{Session: rec, Created: created}, err
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

// InterruptSession stops a live session at an engineer's request: openOBD
// first, then the record. The runner holding it gets ABORTED with actor and
// reason. Intake then leaves the ticket alone until StartSession is called
// for it again.
func (o *Orchestrator) InterruptSession(ctx context.Context, id, actor, reason string) (*session.Record, error) {
	return o.interrupt(ctx, id, actor, reason, true)
}

// interrupt ends a live session this replica holds. With hold, intake is
// kept away from its ticket afterwards (an engineer's decision); the
// Partner API's own interrupts (ticket cancelled) need no hold.
func (o *Orchestrator) interrupt(ctx context.Context, id, actor, reason string, hold bool) (*session.Record, error) {
	a := o.attachment(id)
	if a == nil {
		return nil, o.notHere(ctx, id)
	}
	a.endMu.Lock()
	defer a.endMu.Unlock()
	rec, err := o.store.Get(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	if !rec.State.Live() {
		return rec, notLive(rec)
	}
	var holdNote string
	if hold && rec.TicketID != "" {
		holdNote = "intake leaves ticket " + rec.TicketNumber + " alone until StartSession is called for it"
		if err := o.store.HoldIntake(ctx, rec.TicketID, store.Hold{SessionID: id, Actor: actor, Reason: reason}); err != nil {
			return nil, storeErr(err)
		}
	}
	cause := &InterruptedError{SessionID: id, Actor: actor, Reason: reason}
	// Marked first, so the end that follows is known to be ours; unmarked
	// if openOBD refuses, and the session stays attached.
	a.markEnding(cause)
	if rec.OpenOBD.SessionID != "" {
		if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil {
			switch connector.KindOf(err) {
			case connector.KindInterrupted, connector.KindNotFound, connector.KindTerminal:
				// Already over on openOBD: record it all the same.
			default:
				a.unmarkEnding(cause)
				return nil, fmt.Errorf("%w: openOBD interrupt: %w", ErrUnavailable, err)
			}
		}
	}
	a.detach(cause)
	return o.transitionIf(ctx, id, session.StateInterrupted, actor, reason,
		func(r *session.Record) bool {
			if holdNote != "" {
				r.Note(actor, holdNote, o.cfg.Now())
			}
			return true
		},
		func(r *session.Record) { r.OpenOBD.State = connector.StateInterrupted })
}

// FinishSession reports the runner's result to openOBD, marks the ticket
// processed on the Partner API and ends the session.
func (o *Orchestrator) FinishSession(ctx context.Context, id, leaseID string, res session.Result) (*session.Record, error) {
	a, err := o.checkLease(ctx, id, leaseID)
	if err != nil {
		return nil, err
	}
	if _, err := o.transition(ctx, id, session.StateFinishing, a.leaseHolder(), "runner reported its result", func(r *session.Record) {
		r.Result = &res
	}); err != nil {
		return nil, err
	}
	if err := o.completeFinish(ctx, id); err != nil {
		return nil, err
	}
	return o.GetSession(ctx, id)
}

// completeFinish performs the steps of FINISHING; it is safe to repeat,
// and the steps run one at a time per session.
func (o *Orchestrator) completeFinish(ctx context.Context, id string) error {
	a := o.attachment(id)
	if a == nil {
		return &NotOwnerError{SessionID: id}
	}
	a.endMu.Lock()
	defer a.endMu.Unlock()

	rec, err := o.store.Get(ctx, id)
	if err != nil {
		return storeErr(err)
	}
	if rec.State != session.StateFinishing {
		return nil
	}
	if sess := a.session(); sess != nil {
		// The end that follows is ours: the session's reconcile leaves it
		// to this call.
		a.markEnding(fmt.Errorf("%w: session %s is finishing", ErrNotLive, id))
		if err := sess.Finish(ctx, serviceResult(rec.Result)); err != nil && connector.KindOf(err) != connector.KindInterrupted {
			return fmt.Errorf("%w: openOBD finish: %w", ErrUnavailable, err)
		}
	} else {
		// Not attached (a restart between finish and its record): only an
		// openOBD session that has finished can be recorded as such.
		info, err := o.openobd.GetSession(ctx, rec.OpenOBD.SessionID)
		switch {
		case err != nil:
			return fmt.Errorf("%w: openOBD getSession: %w", ErrUnavailable, err)
		case info.State == connector.StateFinished:
		case info.Ended():
			_, err := o.transition(ctx, id, session.StateInterrupted, session.ActorOpenOBD,
				"session ended on the openOBD side ("+info.State+") before its result was reported", nil)
			return err
		default:
			return fmt.Errorf("%w: session %s is not attached here", ErrUnavailable, id)
		}
	}
	if rec.TicketID != "" {
		ref, done := rec.ID, true
		_, err := o.partner.UpdateTicket(ctx, rec.TicketID, partner.TicketUpdate{ExternalReference: &ref, ExternallyProcessed: &done})
		switch {
		case errors.Is(err, partner.ErrTicketWriteDisabled):
			o.logger(ctx).DebugContext(ctx, "ticket write disabled; ticket not marked", "session_id", id)
		case err != nil:
			return fmt.Errorf("%w: mark ticket: %w", ErrUnavailable, err)
		}
	}
	_, err = o.transition(ctx, id, session.StateFinished, o.store.Replica(), "result reported", func(r *session.Record) {
		r.OpenOBD.State = connector.StateFinished
	})
	return err
}

// ConfigureBus replaces the session's buses on openOBD and in the record.
// Open channels close: the connector dropped the old configuration.
func (o *Orchestrator) ConfigureBus(ctx context.Context, id, leaseID string, buses []session.Bus) (*session.Record, error) {
	a, err := o.checkLease(ctx, id, leaseID)
	if err != nil {
		return nil, err
	}
	sess := a.session()
	if sess == nil {
		return nil, a.endingOr(id)
	}
	if err := sess.ConfigureBus(ctx, busConfigs(buses)...); err != nil {
		if connector.KindOf(err) == connector.KindTerminal {
			return nil, invalid("buses", "refused by the connector: %v", err)
		}
		return nil, relayErr(a, err)
	}
	a.mu.Lock()
	a.buses = busNames(buses)
	a.mu.Unlock()
	a.closeChannels(fmt.Errorf("%w: bus configuration replaced", ErrUnavailable))
	return o.update(ctx, id, func(r *session.Record) error {
		r.Buses = buses
		return nil
	})
}

// ValidateConfigureBus checks a bus configuration against the session as
// ConfigureBus would (the caller may use the session, the session is
// attached, the bit rates are ones openOBD supports) and changes nothing.
func (o *Orchestrator) ValidateConfigureBus(ctx context.Context, id, leaseID string, buses []session.Bus) (*session.Record, error) {
	a, err := o.attachmentFor(ctx, id, leaseID)
	if err != nil {
		return nil, err
	}
	for i, b := range buses {
		switch {
		case b.CAN != nil && !connector.CANBitRateSupported(b.CAN.BitRate):
			return nil, invalid(fmt.Sprintf("buses[%d].can.bit_rate", i), "%d bit/s is not a CAN bit rate openOBD supports", b.CAN.BitRate)
		case b.KLine != nil && !connector.KLineBitRateSupported(b.KLine.BitRate):
			return nil, invalid(fmt.Sprintf("buses[%d].kline.bit_rate", i), "%d baud is not a K-line rate openOBD supports", b.KLine.BitRate)
		}
	}
	if !a.serving() {
		return nil, a.endingOr(id)
	}
	return o.GetSession(ctx, id)
}

// attachmentFor is checkLease without noting activity (a dry run is not
// the runner's traffic).
func (o *Orchestrator) attachmentFor(ctx context.Context, id, leaseID string) (*attachment, error) {
	a := o.attachment(id)
	if a == nil {
		return nil, o.notHere(ctx, id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.ending != nil:
		return nil, a.ending
	case a.lease == nil && leaseID != "":
		return nil, fmt.Errorf("%w (session %s)", ErrNotLeased, id)
	case a.lease != nil && leaseID == "":
		return nil, fmt.Errorf("%w (session %s)", ErrLeaseRequired, id)
	case a.lease != nil && a.lease.ID != leaseID:
		return nil, fmt.Errorf("%w (session %s)", ErrWrongLease, id)
	}
	return a, nil
}

// endingOr returns why the session is ending, or that it is not attached
// yet.
func (a *attachment) endingOr(id string) error {
	if err := a.endingErr(); err != nil {
		return err
	}
	return fmt.Errorf("%w: session %s is not attached yet; try again", ErrUnavailable, id)
}

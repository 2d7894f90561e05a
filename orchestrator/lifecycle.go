package orchestrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obdorch/obdorch/connector"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// live is a session this replica has attached: its openOBD session and the
// relay channels open on it.
type live struct {
	id   string
	sess *connector.Session

	mu       sync.Mutex
	channels map[channelKey]*relayChannel
	// leaseID and leaseExpiry mirror the record's lease; traffic extends
	// the expiry in memory.
	leaseID     string
	leaseExpiry time.Time
	leaseTTL    time.Duration
	// buses are the configured bus names; channels must use one.
	buses map[string]bool
	// ended is set with the reason once the session is over.
	ended           error
	lastTicketCheck time.Time
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// reconcileTicket makes sure an intake ticket has a session: it claims the
// ticket and its connector and creates a PENDING record, then queues the
// session. A ticket already claimed (by any replica) is left alone.
func (o *Orchestrator) reconcileTicket(ctx context.Context, ticketID string) error {
	if _, ok, err := o.store.ClaimOf(ctx, store.ClaimTicket, ticketID); err != nil {
		return requeue(fmt.Errorf("read ticket claim: %w", err))
	} else if ok {
		return nil
	}
	var t partner.Ticket
	if listed, ok := o.listed.LoadAndDelete(ticketID); ok {
		t = listed.(partner.Ticket) // as the intake pass just read it
	} else {
		var err error
		if t, err = o.partner.Ticket(ctx, ticketID); err != nil {
			if errors.Is(err, partner.ErrNotFound) {
				return nil
			}
			return requeue(fmt.Errorf("read ticket: %w", err))
		}
	}
	if t.State != o.cfg.IntakeState {
		return nil
	}
	_, _, err := o.create(ctx, t, "", o.store.Replica(), "ticket "+strconv.FormatInt(t.TicketNumber, 10)+" is "+string(t.State))
	var claimed *store.ClaimedError
	if errors.As(err, &claimed) {
		return nil
	}
	return err
}

// create records a new PENDING session for a ticket (or, with t zero and
// connectorID set, for a connector) and queues it. It returns the existing
// session when the target is already claimed.
func (o *Orchestrator) create(ctx context.Context, t partner.Ticket, connectorID, actor, reason string) (*session.Record, bool, error) {
	return o.createRecord(ctx, t, connectorID, "", actor, reason)
}

func (o *Orchestrator) createRecord(ctx context.Context, t partner.Ticket, connectorID, requestID, actor, reason string) (*session.Record, bool, error) {
	rec := session.New(newID(), actor, reason, o.cfg.Now())
	rec.Owner = o.store.Replica()
	rec.RequestID = requestID
	if t.ID != "" {
		rec.TicketID = t.ID
		rec.TicketNumber = strconv.FormatInt(t.TicketNumber, 10)
		if t.CustomerConnectorID != nil {
			rec.ConnectorID = *t.CustomerConnectorID
		}
		if t.VIN != nil {
			rec.VIN = *t.VIN
		}
	} else {
		rec.ConnectorID = connectorID
	}
	err := o.store.Create(ctx, rec)
	if err == nil {
		o.records.put(rec)
	}
	var claimed *store.ClaimedError
	if errors.As(err, &claimed) {
		existing, gerr := o.store.Get(ctx, claimed.SessionID)
		if gerr != nil {
			return nil, false, fmt.Errorf("%w: read session %s holding the claim: %w", ErrUnavailable, claimed.SessionID, gerr)
		}
		return existing, false, err
	}
	if err != nil {
		return nil, false, storeErr(err)
	}
	o.created.Store(rec.ID, struct{}{})
	o.metrics.transition(session.StateUnspecified, session.StatePending)
	o.logger(ctx).InfoContext(ctx, "session created", "session_id", rec.ID, "ticket_id", rec.TicketID, "connector_id", rec.ConnectorID)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		o.traceParents.Store(rec.ID, sc)
	}
	o.queue.Add(sessionPrefix + rec.ID)
	return rec, true, nil
}

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

// update applies fn to the newest record and writes it, retrying on
// concurrent changes. fn may return errSkip to write nothing.
func (o *Orchestrator) update(ctx context.Context, id string, fn func(r *session.Record) error) (*session.Record, error) {
	for {
		rec, err := o.store.Get(ctx, id)
		if err != nil {
			return nil, storeErr(err)
		}
		before := rec.UpdatedAt
		if err := fn(rec); err != nil {
			if errors.Is(err, errSkip) {
				return rec, nil
			}
			return rec, err
		}
		if rec.UpdatedAt.Equal(before) { // a transition sets its own time
			rec.UpdatedAt = o.cfg.Now()
		}
		err = o.store.Update(ctx, rec)
		switch {
		case err == nil:
			o.records.put(rec)
			return rec, nil
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrFinal):
			return nil, notLive(rec)
		case errors.Is(err, store.ErrFenced):
			o.dropLive(id, fmt.Errorf("%w: this replica lost the session's claim", ErrUnavailable))
			return nil, fmt.Errorf("%w: session %s is owned by another replica", ErrUnavailable, id)
		}
		return nil, storeErr(err)
	}
}

var errSkip = errors.New("nothing to write")

// transition moves the record to state to (when allowed) and writes it.
func (o *Orchestrator) transition(ctx context.Context, id string, to session.State, actor, reason string, also func(r *session.Record)) (*session.Record, error) {
	var from session.State
	rec, err := o.update(ctx, id, func(r *session.Record) error {
		if r.State == to {
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
	if err == nil && from != session.StateUnspecified {
		o.metrics.transition(from, to)
		if to == session.StateReady || to.Final() {
			o.traceParents.Delete(id)
			o.created.Delete(id)
		}
		if to.Final() {
			o.ending.Delete(id) // the record tells from now on
		}
		o.logger(ctx).InfoContext(ctx, "session transition", "session_id", id, "state", to.String(), "actor", actor, "reason", reason)
		if to == session.StateReady {
			o.notifyReady()
		}
	}
	return rec, err
}

// notLive is the error for a call on an ended session: runners of an
// interrupted session learn who interrupted it and why.
func notLive(r *session.Record) error {
	if r.State == session.StateInterrupted {
		return &InterruptedError{SessionID: r.ID, Actor: r.Actor, Reason: r.Reason}
	}
	return fmt.Errorf("%w: session %s is %s (%s)", ErrNotLive, r.ID, r.State, r.Reason)
}

// reconcileSession drives one session towards READY, or re-attaches it after
// a restart, or finishes what an earlier attempt left undone.
func (o *Orchestrator) reconcileSession(ctx context.Context, id string) error {
	rec, err := o.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		o.dropLive(id, ErrNotFound)
		return nil
	}
	if err != nil {
		return requeue(err)
	}
	if !rec.State.Live() {
		o.dropLive(id, notLive(rec))
		o.ending.Delete(id)
		return nil
	}
	if l := o.getLive(id); l != nil {
		select {
		case <-l.sess.Done():
			return o.sessionEnded(ctx, rec, l)
		default:
			return o.checkLive(ctx, rec, l)
		}
	}
	// Not attached here: take the session over if nobody holds it (unless
	// this process created it and holds its claims already).
	if _, ours := o.created.Load(id); ours {
		// Nothing to adopt.
	} else if err := o.store.Adopt(ctx, rec); err != nil {
		var claimed *store.ClaimedError
		if errors.As(err, &claimed) || errors.Is(err, store.ErrConflict) {
			return nil // another replica owns it, or it moved on
		}
		return requeue(fmt.Errorf("adopt: %w", err))
	}
	switch rec.State {
	case session.StatePending:
		return o.start(ctx, rec)
	case session.StateStarting:
		return o.attach(ctx, rec)
	default: // READY, RUNNING, FINISHING after a restart or failover
		return o.resume(ctx, rec)
	}
}

// start opens the openOBD session and records it (state STARTING) before
// anything else, then attaches.
func (o *Orchestrator) start(ctx context.Context, rec *session.Record) error {
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
	o.mu.Lock()
	delete(o.startAttempts, rec.ID)
	o.mu.Unlock()
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
		return requeue(errors.Join(fmt.Errorf("record started session: %w", err), ierr))
	}
	return o.attach(ctx, rec)
}

// startFailed classifies a failed start: retry later, clean up our own
// orphan, or fail the session for good.
func (o *Orchestrator) startFailed(ctx context.Context, rec *session.Record, err error) error {
	log := o.logger(ctx)
	o.mu.Lock()
	o.startAttempts[rec.ID]++
	attempts := o.startAttempts[rec.ID]
	o.mu.Unlock()
	switch connector.KindOf(err) {
	case connector.KindTerminal, connector.KindNotFound:
		return o.fail(ctx, rec.ID, "openOBD refused the session: "+err.Error())
	case connector.KindInUse:
		if n := o.interruptOrphans(ctx, rec); n > 0 {
			log.InfoContext(ctx, "interrupted orphaned openOBD sessions", "session_id", rec.ID, "count", n)
		}
	}
	if attempts >= o.cfg.MaxStartAttempts {
		return o.fail(ctx, rec.ID, fmt.Sprintf("openOBD session could not be started after %d attempts: %v", attempts, err))
	}
	return requeue(fmt.Errorf("start openOBD session (attempt %d): %w", attempts, err))
}

// interruptOrphans interrupts openOBD sessions that our own ended records
// of the same ticket or connector still hold. A session that no record of
// ours knows is a stranger's and is never touched.
func (o *Orchestrator) interruptOrphans(ctx context.Context, rec *session.Record) int {
	f := SessionFilter{TicketID: rec.TicketID}
	if rec.TicketID == "" {
		f = SessionFilter{ConnectorID: rec.ConnectorID}
	}
	n := 0
	recs, _, err := o.store.List(ctx, store.Filter{TicketID: f.TicketID, ConnectorID: f.ConnectorID}, store.MaxPageSize, "")
	if err != nil {
		return 0
	}
	for _, r := range recs {
		if r.ID == rec.ID || r.State.Live() || r.OpenOBD.SessionID == "" || !f.Match(r) {
			continue
		}
		info, err := o.openobd.GetSession(ctx, r.OpenOBD.SessionID)
		if err != nil || info.Ended() {
			continue
		}
		if _, err := o.openobd.InterruptSession(ctx, r.OpenOBD.SessionID); err == nil {
			n++
		}
	}
	return n
}

// attach authenticates a STARTING session, configures its buses and makes
// it READY.
func (o *Orchestrator) attach(ctx context.Context, rec *session.Record) error {
	info := infoOf(rec)
	sess, err := o.openobd.Attach(ctx, info, o.sessionOptions(rec.ID)...)
	o.observeOpenOBD(err)
	if err != nil {
		return o.attachFailed(ctx, rec, "authenticate", err)
	}
	// The authentication token is spent: forget it.
	if _, err := o.update(ctx, rec.ID, func(r *session.Record) error {
		r.OpenOBD.AuthToken = ""
		r.OpenOBD.State = connector.StateActive
		return nil
	}); err != nil {
		_ = sess.Close()
		return requeue(err)
	}
	if err := sess.ConfigureBus(ctx, busConfigs(o.cfg.DefaultBuses)...); err != nil {
		_ = sess.Close()
		return o.attachFailed(ctx, rec, "configure bus", err)
	}
	o.addLive(rec.ID, sess, o.cfg.DefaultBuses)
	if _, err := o.transition(ctx, rec.ID, session.StateReady, o.store.Replica(), "attached and configured", func(r *session.Record) {
		r.Buses = o.cfg.DefaultBuses
	}); err != nil {
		o.dropLive(rec.ID, err)
		return requeue(err)
	}
	return nil
}

// resume re-attaches a READY, RUNNING or FINISHING session after a restart
// with its stored session token, or fails it cleanly when that is no longer
// possible.
func (o *Orchestrator) resume(ctx context.Context, rec *session.Record) error {
	if rec.OpenOBD.Token == "" {
		return o.abandon(ctx, rec, "no session token stored; cannot re-attach")
	}
	sess, err := o.openobd.Resume(ctx, infoOf(rec), rec.OpenOBD.Token, o.sessionOptions(rec.ID)...)
	if err != nil && rec.State == session.StateFinishing && connector.KindOf(err) == connector.KindInterrupted {
		return o.completeFinish(ctx, rec.ID) // finished on openOBD before it was recorded
	}
	if err != nil {
		return o.attachFailed(ctx, rec, "re-attach", err)
	}
	l := o.addLive(rec.ID, sess, rec.Buses)
	if rec.Lease != nil {
		l.mu.Lock()
		l.leaseID, l.leaseExpiry, l.leaseTTL = rec.Lease.ID, rec.Lease.ExpireAt, o.cfg.LeaseTTL
		l.mu.Unlock()
	}
	o.logger(ctx).InfoContext(ctx, "session re-attached", "session_id", rec.ID, "state", rec.State.String())
	if rec.State == session.StateFinishing {
		return o.completeFinish(ctx, rec.ID)
	}
	if rec.State == session.StateReady {
		o.notifyReady()
	}
	return nil
}

// attachFailed classifies a failed authenticate/resume/configure.
func (o *Orchestrator) attachFailed(ctx context.Context, rec *session.Record, op string, err error) error {
	switch connector.KindOf(err) {
	case connector.KindRetryable, connector.KindUnknown:
		return requeue(fmt.Errorf("%s: %w", op, err))
	case connector.KindInterrupted:
		_, terr := o.transition(ctx, rec.ID, session.StateInterrupted, session.ActorOpenOBD, "session ended on the openOBD side: "+err.Error(), nil)
		return terr
	}
	return o.abandon(ctx, rec, op+" failed: "+err.Error())
}

// abandon interrupts the openOBD session (it is ours and may still be live)
// and records the session as FAILED with the reason.
func (o *Orchestrator) abandon(ctx context.Context, rec *session.Record, reason string) error {
	if rec.OpenOBD.SessionID != "" {
		if _, err := o.openobd.InterruptSession(ctx, rec.OpenOBD.SessionID); err != nil && connector.KindOf(err) == connector.KindRetryable {
			return requeue(fmt.Errorf("interrupt abandoned openOBD session: %w", err))
		}
	}
	return o.fail(ctx, rec.ID, reason)
}

func (o *Orchestrator) fail(ctx context.Context, id, reason string) error {
	o.dropLive(id, fmt.Errorf("%w: %s", ErrNotLive, reason))
	o.mu.Lock()
	delete(o.startAttempts, id)
	o.mu.Unlock()
	_, err := o.transition(ctx, id, session.StateFailed, o.store.Replica(), reason, nil)
	return err
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

func busNames(buses []session.Bus) map[string]bool {
	m := make(map[string]bool, len(buses))
	for _, b := range buses {
		m[b.Name] = true
	}
	return m
}

func infoOf(rec *session.Record) connector.SessionInfo {
	return connector.SessionInfo{
		ID: rec.OpenOBD.SessionID, State: rec.OpenOBD.State, CreatedAt: rec.OpenOBD.CreatedAt,
		GRPCEndpoint: rec.OpenOBD.Endpoint, AuthenticationToken: rec.OpenOBD.AuthToken,
	}
}

// tokenSaver persists every new session token so a restarted replica can
// re-attach within the token's life.
func (o *Orchestrator) tokenSaver(id string) func(string, time.Time) {
	return func(token string, received time.Time) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), 10*time.Second)
		defer cancel()
		_, err := o.update(ctx, id, func(r *session.Record) error {
			if !r.State.Live() || r.OpenOBD.Token == token {
				return errSkip
			}
			r.OpenOBD.Token, r.OpenOBD.TokenReceivedAt = token, received
			return nil
		})
		if err != nil {
			o.log.Warn("saving session token failed", "session_id", id, "err", err)
		}
	}
}

func (o *Orchestrator) addLive(id string, sess *connector.Session, buses []session.Bus) *live {
	o.ending.Delete(id)
	l := &live{id: id, sess: sess, channels: map[channelKey]*relayChannel{}, lastTicketCheck: o.cfg.Now(), buses: busNames(buses)}
	o.mu.Lock()
	if old := o.lives[id]; old != nil {
		o.mu.Unlock()
		_ = sess.Close()
		return old
	}
	o.lives[id] = l
	o.mu.Unlock()
	select {
	case <-sess.Done():
		o.queue.Add(sessionPrefix + id) // ended before it was registered
	default:
	}
	return l
}

// sessionOptions are the options of every attached session: persist each
// new token, and reconcile the session as soon as it ends on its own.
func (o *Orchestrator) sessionOptions(id string) []connector.SessionOption {
	return []connector.SessionOption{
		connector.OnToken(o.tokenSaver(id)),
		connector.OnEnd(func(error) { o.queue.Add(sessionPrefix + id) }),
	}
}

func (o *Orchestrator) getLive(id string) *live {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lives[id]
}

// dropLive closes this replica's hold on a session (without interrupting it
// on openOBD) and fails its channels with cause.
func (o *Orchestrator) dropLive(id string, cause error) {
	o.mu.Lock()
	l := o.lives[id]
	delete(o.lives, id)
	o.mu.Unlock()
	if l != nil {
		// Until the end is recorded, runners are told this cause.
		o.ending.Store(id, cause)
		l.close(cause)
	}
}

func (l *live) close(cause error) {
	l.mu.Lock()
	if l.ended == nil {
		l.ended = cause
	}
	chans := l.channels
	l.channels = map[channelKey]*relayChannel{}
	l.mu.Unlock()
	for _, c := range chans {
		c.shutdown(cause)
	}
	_ = l.sess.Close()
}

// detachAll lets go of every live session on shutdown, leaving them live on
// openOBD with their tokens stored for the next owner.
func (o *Orchestrator) detachAll() {
	o.mu.Lock()
	lives := o.lives
	o.lives = map[string]*live{}
	o.mu.Unlock()
	for _, l := range lives {
		l.close(ErrShuttingDown)
	}
}

// sessionEnded records the end of an attached session on the openOBD side
// as INTERRUPTED (or FAILED when openOBD says it failed) with the reason. An
// end while FINISHING is the finish itself, which completeFinish records.
func (o *Orchestrator) sessionEnded(ctx context.Context, rec *session.Record, l *live) error {
	if rec.State == session.StateFinishing {
		return o.completeFinish(ctx, rec.ID)
	}
	err := l.sess.Err()
	reason := "session ended on the openOBD side (openOBD or Partner API)"
	if err != nil {
		reason += ": " + err.Error()
	}
	to := session.StateInterrupted
	if connector.KindOf(err) != connector.KindInterrupted {
		to = session.StateFailed
	}
	o.dropLive(l.id, &InterruptedError{SessionID: l.id, Actor: session.ActorOpenOBD, Reason: reason})
	_, terr := o.transition(ctx, l.id, to, session.ActorOpenOBD, reason, func(r *session.Record) {
		r.OpenOBD.State = connector.StateInterrupted
	})
	if terr != nil && !errors.Is(terr, ErrWrongState) && !errors.Is(terr, ErrNotLive) {
		return requeue(fmt.Errorf("record the openOBD end: %w", terr))
	}
	return nil
}

// checkLive is the periodic check of an attached session: its ticket must
// still be open on the Partner API.
func (o *Orchestrator) checkLive(ctx context.Context, rec *session.Record, l *live) error {
	if rec.TicketID == "" || rec.State == session.StateFinishing {
		if rec.State == session.StateFinishing {
			return o.completeFinish(ctx, rec.ID)
		}
		return nil
	}
	now := o.cfg.Now()
	l.mu.Lock()
	due := now.Sub(l.lastTicketCheck) >= o.cfg.TicketCheckInterval
	if due {
		l.lastTicketCheck = now
	}
	l.mu.Unlock()
	if !due {
		return nil
	}
	t, err := o.partner.Ticket(ctx, rec.TicketID)
	if err != nil {
		if errors.Is(err, partner.ErrNotFound) {
			_, err = o.interrupt(ctx, rec.ID, session.ActorPartnerAPI, "ticket no longer exists on the Partner API")
			return err
		}
		return nil // checked again next pass
	}
	if !t.State.Open() {
		_, err = o.interrupt(ctx, rec.ID, session.ActorPartnerAPI, "ticket "+rec.TicketNumber+" is "+string(t.State))
		return err
	}
	return nil
}

// busConfigs converts bus definitions to openOBD's.
func busConfigs(buses []session.Bus) []*openobdv1.BusConfiguration {
	out := make([]*openobdv1.BusConfiguration, 0, len(buses))
	for _, b := range buses {
		bc := &openobdv1.BusConfiguration{BusName: b.Name}
		switch {
		case b.CAN != nil:
			proto := openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP
			if b.CAN.Frames {
				proto = openobdv1.CanProtocol_CAN_PROTOCOL_FRAMES
			}
			speed := openobdv1.TransceiverSpeed_TRANSCEIVER_SPEED_HIGH
			if b.CAN.LowSpeed {
				speed = openobdv1.TransceiverSpeed_TRANSCEIVER_SPEED_LOW
			}
			bc.BusDefinition = &openobdv1.BusConfiguration_CanBus{CanBus: &openobdv1.CanBus{
				PinPlus: b.CAN.PinPlus, PinMin: b.CAN.PinMinus, CanProtocol: proto,
				CanBitRate: canBitRates[b.CAN.BitRate], Transceiver: &speed,
			}}
		case b.KLine != nil:
			proto := openobdv1.KlineProtocol_KLINE_PROTOCOL_ISO14230_SLOW
			if b.KLine.FastInit {
				proto = openobdv1.KlineProtocol_KLINE_PROTOCOL_ISO14230_FAST
			}
			bc.BusDefinition = &openobdv1.BusConfiguration_KlineBus{KlineBus: &openobdv1.KlineBus{
				Pin: b.KLine.Pin, KlineProtocol: proto, KlineBitRate: klineBitRates[b.KLine.BitRate],
			}}
		}
		out = append(out, bc)
	}
	return out
}

// CANBitRateSupported reports whether openOBD can run a CAN bus at bps bit/s.
func CANBitRateSupported(bps uint32) bool { _, ok := canBitRates[bps]; return ok }

// KLineBitRateSupported reports whether openOBD can run a K-line bus at bps
// baud.
func KLineBitRateSupported(bps uint32) bool { _, ok := klineBitRates[bps]; return ok }

var canBitRates = map[uint32]openobdv1.CanBitRate{
	1000000: openobdv1.CanBitRate_CAN_BIT_RATE_1000, 500000: openobdv1.CanBitRate_CAN_BIT_RATE_500,
	250000: openobdv1.CanBitRate_CAN_BIT_RATE_250, 125000: openobdv1.CanBitRate_CAN_BIT_RATE_125,
	100000: openobdv1.CanBitRate_CAN_BIT_RATE_100, 94000: openobdv1.CanBitRate_CAN_BIT_RATE_94,
	83300: openobdv1.CanBitRate_CAN_BIT_RATE_83_3, 50000: openobdv1.CanBitRate_CAN_BIT_RATE_50,
	33300: openobdv1.CanBitRate_CAN_BIT_RATE_33_3, 20000: openobdv1.CanBitRate_CAN_BIT_RATE_20,
	10000: openobdv1.CanBitRate_CAN_BIT_RATE_10, 5000: openobdv1.CanBitRate_CAN_BIT_RATE_5,
}

var klineBitRates = map[uint32]openobdv1.KlineBitRate{
	9600: openobdv1.KlineBitRate_KLINE_BIT_RATE_9600, 10400: openobdv1.KlineBitRate_KLINE_BIT_RATE_10400,
	15625: openobdv1.KlineBitRate_KLINE_BIT_RATE_15625,
}

// Package orchestrator is the core of the openOBD session orchestrator: it
// turns Partner API tickets into live openOBD sessions, keeps them healthy,
// leases them to runners, relays their diagnostic traffic and records every
// transition durably in the store.
//
// The reconciler is level-triggered: every pass reads the Partner API and the
// store as they are now and queues work keyed by ticket or session; a key is
// handled by one worker at a time. Every store write by this replica is fenced
// by its claims, so several replicas can share one etcd cluster.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
	"github.com/obdorch/obdorch/partner"
)

// Partner is what the core needs of the Partner API; *partner.Client
// satisfies it.
type Partner interface {
	Tickets(ctx context.Context, f partner.TicketFilter) iter.Seq2[partner.Ticket, error]
	Ticket(ctx context.Context, id string) (partner.Ticket, error)
	TicketByNumber(ctx context.Context, number int64) (partner.Ticket, error)
	UpdateTicket(ctx context.Context, id string, u partner.TicketUpdate) (partner.Ticket, error)
	Connectors(ctx context.Context, p partner.Paging) iter.Seq2[partner.Connector, error]
	Connector(ctx context.Context, id string) (partner.Connector, error)
}

// OpenOBD is what the core needs of openOBD; *connector.Client satisfies it.
type OpenOBD interface {
	StartSessionOnTicket(ctx context.Context, ticket string) (connector.SessionInfo, error)
	StartSessionOnConnector(ctx context.Context, connectorID string) (connector.SessionInfo, error)
	GetSession(ctx context.Context, id string) (connector.SessionInfo, error)
	InterruptSession(ctx context.Context, id string) (connector.SessionInfo, error)
	Attach(ctx context.Context, info connector.SessionInfo, opts ...connector.SessionOption) (*connector.Session, error)
	Resume(ctx context.Context, info connector.SessionInfo, token string, opts ...connector.SessionOption) (*connector.Session, error)
}

// Config tunes the core. The zero value of every field means its default.
type Config struct {
	// IntakeState is the ticket state the reconciler takes in (default
	// pending).
	IntakeState partner.TicketState
	// IntakeExternallyProcessed selects tickets by their externally_processed
	// flag (default false); nil in IntakeAnyProcessed takes both.
	IntakeExternallyProcessed bool
	IntakeAnyProcessed        bool
	// ResyncInterval is the time between intake passes (default 15 s).
	ResyncInterval time.Duration
	// Workers bounds concurrent reconciles (default 64).
	Workers int
	// ReconcileTimeout bounds one reconcile of one key (default 60 s).
	ReconcileTimeout time.Duration
	// RetryInitial and RetryMax shape the per-key backoff (1 s, 2 min).
	RetryInitial, RetryMax time.Duration
	// MaxStartAttempts before a session that cannot be started fails
	// (default 20).
	MaxStartAttempts int
	// DefaultBuses are configured on every new session (default: CAN
	// 500 kbit/s ISO-TP on pins 6/14, named "can0").
	DefaultBuses []session.Bus
	// LeaseTTL is the default runner lease (30 s).
	LeaseTTL time.Duration
	// FailOnLeaseExpiry fails a session whose runner went silent instead of
	// returning it to READY.
	FailOnLeaseExpiry bool
	// RequestTimeout is the default UDS response timeout (P2, default 2 s);
	// P2Star is the extended timeout after NRC 0x78 (default 5 s).
	RequestTimeout, P2Star time.Duration
	// QueueWait bounds how long a request waits for its turn on a busy
	// channel (default 10 s).
	QueueWait time.Duration
	// TesterPresentInterval is the period of 3E 80 while a channel is in a
	// non-default diagnostic session (default 2 s).
	TesterPresentInterval time.Duration
	// TicketCheckInterval is how often the ticket of a READY session is
	// checked for cancellation (default 1 min).
	TicketCheckInterval time.Duration
	Logger              *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnHealth is told whether the orchestrator is healthy (first intake
	// pass done; Partner API and openOBD reachable), with the reason when it
	// is not. It is called on changes only.
	OnHealth func(healthy bool, reason string)
	// HealthThreshold is how long the Partner API or openOBD may stay
	// unreachable before the orchestrator reports itself unhealthy (default
	// 1 min).
	HealthThreshold time.Duration
}

func (c Config) withDefaults() Config {
	if c.IntakeState == "" {
		c.IntakeState = partner.TicketPending
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&c.ResyncInterval, 15*time.Second)
	setDur(&c.ReconcileTimeout, time.Minute)
	setDur(&c.RetryInitial, time.Second)
	setDur(&c.RetryMax, 2*time.Minute)
	setDur(&c.LeaseTTL, 30*time.Second)
	setDur(&c.RequestTimeout, 2*time.Second)
	setDur(&c.P2Star, 5*time.Second)
	setDur(&c.QueueWait, 10*time.Second)
	setDur(&c.TesterPresentInterval, 2*time.Second)
	setDur(&c.TicketCheckInterval, time.Minute)
	setDur(&c.HealthThreshold, time.Minute)
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.MaxStartAttempts <= 0 {
		c.MaxStartAttempts = 20
	}
	if len(c.DefaultBuses) == 0 {
		c.DefaultBuses = []session.Bus{{Name: "can0", CAN: &session.CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OnHealth == nil {
		c.OnHealth = func(bool, string) {}
	}
	return c
}

// Orchestrator is the core. Create it with New and run it with Start.
type Orchestrator struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	partner Partner
	openobd OpenOBD
	queue   *queue
	metrics *metrics
	records *records

	mu    sync.Mutex
	lives map[string]*live // sessions attached by this replica, by id
	// ready is closed and replaced whenever a session may have become
	// available to AcquireSession.
	ready chan struct{}
	// startAttempts counts failed starts per session id.
	startAttempts map[string]int

	health *health

	// listed holds the tickets of the latest intake pass until their
	// reconcile takes them, so a pass costs one list, not a read per ticket.
	listed sync.Map // ticket id -> partner.Ticket

	// ending holds why a session this replica let go of is ending, until
	// the end is recorded.
	ending sync.Map // session id -> error

	// finishing serialises the steps of FINISHING per session.
	finishing sync.Map // session id -> *sync.Mutex

	// created marks records this process created and still holds the claims
	// of, until they are READY: they need no adoption.
	created sync.Map // session id -> struct{}

	// traceParents links the reconciles of a session started through the
	// control plane to the caller's trace, until the session is READY.
	traceParents sync.Map // session id -> trace.SpanContext

	// ctx is the Start context: it owns every background goroutine.
	ctx     context.Context
	wg      sync.WaitGroup
	started chan struct{}
}

// New returns a core over the store and the two clients.
func New(cfg Config, st *store.Store, p Partner, o OpenOBD) (*Orchestrator, error) {
	if st == nil || p == nil || o == nil {
		return nil, errors.New("orchestrator: store, Partner API and openOBD clients are required")
	}
	cfg = cfg.withDefaults()
	return &Orchestrator{
		cfg:           cfg,
		log:           cfg.Logger.With("replica", st.Replica()),
		store:         st,
		partner:       p,
		openobd:       o,
		queue:         newQueue(cfg.RetryInitial, cfg.RetryMax),
		metrics:       newMetrics(),
		records:       newRecords(),
		health:        newHealth(cfg.HealthThreshold, cfg.Now, cfg.OnHealth),
		lives:         map[string]*live{},
		ready:         make(chan struct{}),
		startAttempts: map[string]int{},
		started:       make(chan struct{}),
	}, nil
}

// Start runs the reconciler until ctx ends, then stops the workers and
// detaches (without interrupting) every live session, so a restarted or
// other replica can adopt them. It returns nil on a clean stop.
func (o *Orchestrator) Start(ctx context.Context) error {
	o.ctx = ctx
	close(o.started)
	o.log.InfoContext(ctx, "orchestrator starting", "workers", o.cfg.Workers, "resync", o.cfg.ResyncInterval)

	for range o.cfg.Workers {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.worker()
		}()
	}

	o.wg.Add(2)
	go func() {
		defer o.wg.Done()
		o.sweepLeases(ctx)
	}()
	go func() {
		defer o.wg.Done()
		o.followStore(ctx)
	}()

	// Adopt what a previous incarnation left behind before taking new work.
	o.adoptAll(ctx)
	o.intakePass(ctx, true)
	ticker := time.NewTicker(o.cfg.ResyncInterval)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			o.adoptAll(ctx)
			o.intakePass(ctx, false)
		}
	}

	o.queue.Close()
	o.wg.Wait()
	o.detachAll()
	o.log.Info("orchestrator stopped")
	return nil
}

// sweepLeases ends the leases of runners that went silent, once a second
// for all sessions.
func (o *Orchestrator) sweepLeases(ctx context.Context) {
	t := time.NewTicker(leaseSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.mu.Lock()
			lives := make([]*live, 0, len(o.lives))
			for _, l := range o.lives {
				lives = append(lives, l)
			}
			o.mu.Unlock()
			for _, l := range lives {
				o.expireLease(ctx, l)
			}
		}
	}
}

// leaseSweep is how often expired leases are looked for.
const leaseSweep = 100 * time.Millisecond

// Resync asks for an intake pass now.
func (o *Orchestrator) Resync() { o.queue.Add(keyIntake) }

// Keys of the work queue.
const (
	keyIntake     = "intake"
	ticketPrefix  = "ticket/"
	sessionPrefix = "session/"
)

func (o *Orchestrator) worker() {
	for {
		key, ok := o.queue.Get()
		if !ok {
			return
		}
		o.reconcile(key)
		o.queue.Done(key)
	}
}

// errRequeue asks for the key to be processed again after its backoff.
type requeueError struct{ err error }

func (e *requeueError) Error() string { return e.err.Error() }
func (e *requeueError) Unwrap() error { return e.err }

func requeue(err error) error { return &requeueError{err} }

// reconcile runs one guarded reconcile: panics are recovered, the pass has
// its own timeout (told apart from shutdown), and its id is in every log line.
func (o *Orchestrator) reconcile(key string) {
	rid := newID()[:8]
	ctx, cancel := context.WithTimeoutCause(o.ctx, o.cfg.ReconcileTimeout, errReconcileTimeout)
	defer cancel()
	log := o.log.With("key", key, "reconcile_id", rid)
	ctx = withLogger(ctx, log)
	if sc, ok := o.traceParents.Load(strings.TrimPrefix(key, sessionPrefix)); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc.(trace.SpanContext))
	}
	ctx, span := tracer.Start(ctx, "orchestrator.reconcile", trace.WithAttributes(
		attribute.String("key", key), attribute.String("reconcile_id", rid)))
	defer span.End()

	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		switch {
		case key == keyIntake:
			o.intakePass(ctx, false)
			return nil
		case strings.HasPrefix(key, ticketPrefix):
			return o.reconcileTicket(ctx, strings.TrimPrefix(key, ticketPrefix))
		case strings.HasPrefix(key, sessionPrefix):
			return o.reconcileSession(ctx, strings.TrimPrefix(key, sessionPrefix))
		}
		return fmt.Errorf("unknown key %q", key)
	}()
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	switch {
	case err == nil:
		o.metrics.reconciled("ok")
		o.queue.Forget(key)
	case o.ctx.Err() != nil:
		// Shutting down: the next start picks the key up again.
	default:
		var rq *requeueError
		if errors.As(err, &rq) || errors.Is(context.Cause(ctx), errReconcileTimeout) {
			o.metrics.reconciled("retry")
			d := o.queue.Retry(key)
			log.Warn("reconcile failed, will retry", "err", err, "retry_in", d)
			return
		}
		o.metrics.reconciled("error")
		log.Error("reconcile failed", "err", err)
	}
}

var errReconcileTimeout = errors.New("reconcile timed out")

var tracer = otel.Tracer("github.com/obdorch/obdorch/orchestrator")

type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func (o *Orchestrator) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return o.log
}

// intakePass lists the tickets to take in and queues one key per ticket.
func (o *Orchestrator) intakePass(ctx context.Context, first bool) {
	f := partner.TicketFilter{State: o.cfg.IntakeState, Paging: partner.Paging{PageSize: partner.MaxPageSize}}
	if !o.cfg.IntakeAnyProcessed {
		processed := o.cfg.IntakeExternallyProcessed
		f.ExternallyProcessed = &processed
	}
	n := 0
	for t, err := range o.partner.Tickets(ctx, f) {
		if err != nil {
			o.log.WarnContext(ctx, "intake pass failed", "err", err)
			o.health.observe(depPartner, err)
			return
		}
		n++
		o.listed.Store(t.ID, t)
		o.queue.Add(ticketPrefix + t.ID)
	}
	// Live sessions of this replica are checked every pass too.
	o.mu.Lock()
	for id := range o.lives {
		o.queue.Add(sessionPrefix + id)
	}
	o.mu.Unlock()
	o.health.observe(depPartner, nil)
	o.health.intakeDone()
	if first {
		o.log.InfoContext(ctx, "first intake pass done", "tickets", n)
	}
}

// adoptAll queues every live record without a live owner, so this replica
// re-attaches or fails it.
func (o *Orchestrator) adoptAll(ctx context.Context) {
	recs, _, err := o.store.ListLive(ctx)
	if err != nil {
		o.log.WarnContext(ctx, "listing live sessions failed", "err", err)
		return
	}
	for _, r := range recs {
		o.mu.Lock()
		_, mine := o.lives[r.ID]
		o.mu.Unlock()
		if !mine {
			o.queue.Add(sessionPrefix + r.ID)
		}
	}
}

// notifyReady wakes AcquireSession callers.
func (o *Orchestrator) notifyReady() {
	o.mu.Lock()
	close(o.ready)
	o.ready = make(chan struct{})
	o.mu.Unlock()
}

func (o *Orchestrator) readyChan() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ready
}

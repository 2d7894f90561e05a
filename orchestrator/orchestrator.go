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
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	ListSessions(ctx context.Context) ([]connector.SessionInfo, error)
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
	// (default 20). Attempts are counted in the record, so the bound holds
	// across restarts and failovers.
	MaxStartAttempts int
	// OrphanSettle is how old an unrecorded openOBD session must be before
	// it may be taken for the orphan of an interrupted start (default 10 s):
	// younger ones may still be on their way into another record.
	OrphanSettle time.Duration
	// AcquireMaxWait bounds how long AcquireSession waits for a READY
	// session when the caller set no shorter deadline (default 60 s).
	AcquireMaxWait time.Duration
	// DefaultBuses are configured on every new session (default: CAN
	// 500 kbit/s ISO-TP on pins 6/14, named "can0").
	DefaultBuses []session.Bus
	// LeaseTTL is the default runner lease (30 s).
	LeaseTTL time.Duration
	// FailOnLeaseExpiry fails a session whose runner went silent instead of
	// returning it to READY.
	FailOnLeaseExpiry bool
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
	// MaxSessions bounds the live sessions this replica holds (default
	// DefaultMaxSessions): intake, adoption and StartSession stop there.
	MaxSessions int
	// ShareGrace is how long a ticket or an orphaned session this replica
	// leaves to others for the fair share (see share.go) may wait before
	// the replica takes it anyway (default twice ResyncInterval).
	ShareGrace time.Duration
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
	setDur(&c.QueueWait, 10*time.Second)
	setDur(&c.TesterPresentInterval, 2*time.Second)
	setDur(&c.TicketCheckInterval, time.Minute)
	setDur(&c.HealthThreshold, time.Minute)
	setDur(&c.OrphanSettle, 10*time.Second)
	setDur(&c.AcquireMaxWait, time.Minute)
	setDur(&c.ShareGrace, 2*c.ResyncInterval)
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
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

// Orchestrator is the core. Create it with New and run it with Start; the
// control-plane operations may be called as soon as New returns.
//
// Locking: mu guards the attachments map, the ready channel, the kept
// tokens and the held tickets only, and is
// never held while calling out or while taking another lock. Each
// attachment has its own mutex (see attachment). The lock order is
// Orchestrator.mu, then attachment.mu, then relayChannel.mu; code takes at
// most one of them at a time wherever it can.
type Orchestrator struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	partner Partner
	openobd OpenOBD
	queue   *queue
	metrics *metrics
	records *records
	health  *health
	spread  *spread

	// life is the core's own context: it exists from New, so no call path
	// depends on Start having run, and it ends when Start returns. Every
	// background goroutine and detached write runs under it.
	life     context.Context
	stopLife context.CancelFunc

	// draining is set once shutdown begins: leases no longer expire and
	// intake takes no new tickets, so runners keep what they hold while
	// the control plane drains.
	draining atomic.Bool

	mu       sync.Mutex
	attached map[string]*attachment // sessions whose claims this replica holds, by id
	// ready is closed and replaced whenever a session may have become
	// available to AcquireSession.
	ready chan struct{}
	// kept are the session tokens that were not stored yet when the store
	// lease was lost, by session id: if this replica adopts the session
	// again, the adoption stores the token (the stored one is older). Each
	// lost lease replaces them; an adoption that settles who holds the
	// session drops its session's.
	kept map[string]keptToken
	// heldTickets are the listed tickets whose create found intake held
	// off them (see reconcileTicket).
	heldTickets map[string]bool
	// listed are the tickets of the latest intake pass that no live
	// session held, by ticket id, so that the reconcile of such a ticket
	// costs no second read. Each pass replaces them; a ticket leaves once
	// its reconcile is settled (see reconcileTicket).
	listed map[string]partner.Ticket

	wg sync.WaitGroup
}

// New returns a core over the store and the two clients.
func New(cfg Config, st *store.Store, p Partner, o OpenOBD) (*Orchestrator, error) {
	if st == nil || p == nil || o == nil {
		return nil, errors.New("orchestrator: store, Partner API and openOBD clients are required")
	}
	cfg = cfg.withDefaults()
	// The core's lifetime is its own: Start ends it.
	life, stop := context.WithCancel(context.Background())
	orch := &Orchestrator{
		cfg:         cfg,
		log:         cfg.Logger.With("replica", st.Replica()),
		store:       st,
		partner:     p,
		openobd:     o,
		queue:       newQueue(cfg.RetryInitial, cfg.RetryMax),
		records:     newRecords(),
		health:      newHealth(cfg.HealthThreshold, cfg.Now, cfg.OnHealth),
		spread:      newSpread(),
		life:        life,
		stopLife:    stop,
		attached:    map[string]*attachment{},
		heldTickets: map[string]bool{},
		ready:       make(chan struct{}),
		metrics:     newMetrics(),
	}
	return orch, nil
}

// Start runs the reconciler until ctx ends, then stops the workers and
// detaches (without interrupting) every live session, so a restarted or
// other replica can adopt them. It returns nil on a clean stop.
func (o *Orchestrator) Start(ctx context.Context) error {
	defer o.stopLife()
	stop := context.AfterFunc(ctx, o.stopLife)
	defer stop()
	o.log.InfoContext(ctx, "orchestrator starting", "workers", o.cfg.Workers, "resync", o.cfg.ResyncInterval)

	o.wg.Add(5)
	go func() {
		defer o.wg.Done()
		o.followLease(o.life)
	}()
	go func() {
		defer o.wg.Done()
		o.followReachability(o.life)
	}()
	go func() {
		defer o.wg.Done()
		o.followStore(o.life)
	}()
	go func() {
		defer o.wg.Done()
		o.followReleases(o.life)
	}()
	go func() {
		defer o.wg.Done()
		o.followReplicas(o.life)
	}()
	for range o.cfg.Workers {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.worker(o.life)
		}()
	}
	// The intake key requeues itself every ResyncInterval.
	o.queue.Add(intakeKey)

	<-o.life.Done()
	o.queue.Close()
	o.wg.Wait()
	o.detachAll()
	o.log.Info("orchestrator stopped")
	return nil
}

// Drain begins an orderly stop: from now on leases do not expire and
// intake takes no new tickets, while the control plane finishes its calls.
// Start's context ending completes the stop.
func (o *Orchestrator) Drain() { o.draining.Store(true) }

// Resync asks for an intake pass now.
func (o *Orchestrator) Resync() { o.queue.Add(intakeKey) }

type loggerKey struct{}

// reconcileLog is the logger of one reconcile: the core's, with the key and
// the reconcile id on every line. It is built when the reconcile first
// logs, as most reconciles log nothing at the usual levels and building it
// formats its attributes.
type reconcileLog struct {
	base *slog.Logger
	key  key
	id   string
	once sync.Once
	l    *slog.Logger
}

func (r *reconcileLog) logger() *slog.Logger {
	r.once.Do(func() { r.l = r.base.With("key", r.key.String(), "reconcile_id", r.id) })
	return r.l
}

func withLogger(ctx context.Context, l *reconcileLog) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func (o *Orchestrator) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*reconcileLog); ok {
		return l.logger()
	}
	return o.log
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

package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults of Config.
const (
	DefaultPrefix      = "/obdorch/"
	DefaultLeaseTTL    = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// revokeTimeout bounds the lease revocation in Close.
const revokeTimeout = 2 * time.Second

// reconnectBackoff paces reconnection to an etcd endpoint. It starts at
// 100 ms rather than gRPC's 1 s, so a replica is back soon after a restarted
// server is.
var reconnectBackoff = backoff.Config{
	BaseDelay:  100 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   5 * time.Second,
}

// Config configures a Store. The zero value of each optional field selects
// its default.
type Config struct {
	// Endpoints are the etcd client URLs (Embedded.Endpoints for the
	// embedded server). Required.
	Endpoints []string
	// Prefix is prepended to every key; default DefaultPrefix. A trailing
	// "/" is added if missing. Replicas sharing sessions use the same prefix.
	Prefix string
	// Replica names this process among the replicas; it is recorded in
	// claims and as the owner of records. Required, and unique among running
	// processes.
	Replica string
	// LeaseTTL is the time to live of the replica's lease: how long its
	// claims outlive it after a crash. Rounded up to whole seconds; default
	// DefaultLeaseTTL. The server may raise it to its minimum.
	LeaseTTL time.Duration
	// DialTimeout bounds connecting and granting the lease in Open; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// TLS, if set, secures the connection to etcd.
	TLS *tls.Config
	// Username and Password authenticate to etcd if set.
	Username, Password string
	// Logger receives the store's and the etcd client's warnings and
	// errors; default discards.
	Logger *slog.Logger
	// Embedded, instead of Endpoints, is an embedded server of this
	// process to talk to in process: the client calls the server's
	// handlers directly, without gRPC, the loopback socket or protobuf
	// encoding (etcd's own v3client). Close the Store before the server.
	Embedded *Embedded
}

// Validate reports the invalid fields of c.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Embedded != nil && len(c.Endpoints) > 0:
		errs = append(errs, errors.New("store: Endpoints: not with Embedded, which is reached in process"))
	case c.Embedded != nil && (c.TLS != nil || c.Username != "" || c.Password != ""):
		errs = append(errs, errors.New("store: Embedded: TLS and credentials apply to Endpoints only"))
	case c.Embedded == nil && len(c.Endpoints) == 0:
		errs = append(errs, errors.New("store: Endpoints: at least one endpoint is required"))
	}
	if c.Replica == "" {
		errs = append(errs, errors.New("store: Replica: required"))
	}
	if c.LeaseTTL < 0 {
		errs = append(errs, errors.New("store: LeaseTTL: must not be negative"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("store: DialTimeout: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store reads and writes session records for one replica. It is safe for
// concurrent use.
type Store struct {
	client  *clientv3.Client
	log     *slog.Logger
	replica string
	prefix  string
	cfg     Config
	// claimTail ends every claim value of this replica (see claimValue).
	claimTail string
	// watchIn is the in-process watch service of an Embedded server; nil
	// over the network.
	watchIn pb.WatchClient

	// lease is the replica's current lease; Regrant replaces a lost one.
	lease atomic.Pointer[leaseState]
	// regrant admits one Regrant at a time.
	regrant sync.Mutex
	// reach is whether etcd answers the lease's keep-alives.
	reach reachability
	// address is the address given to Register, if any.
	address atomic.Pointer[string]
	// registry is the replica registry (name to address) as a running
	// WatchReplicas sees it; nil while none runs.
	registry atomic.Pointer[map[string]string]

	closeOnce sync.Once
	closeErr  error
}

// reachability is whether etcd has answered the replica's lease lately.
type reachability struct {
	mu sync.Mutex
	// since is zero while etcd answers; otherwise the time of its last
	// answer (a keep-alive or the grant).
	since   time.Time
	changed chan struct{}
}

func (r *reachability) set(reachable bool, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reachable == r.since.IsZero() {
		return
	}
	if reachable {
		r.since = time.Time{}
	} else {
		r.since = last
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Reachable reports whether etcd has renewed the replica's lease lately:
// false once two of the keep-alives (sent every third of the lease TTL) in
// a row went unanswered, until one is answered or a new lease granted.
// Unless reachable, since is the time of etcd's last answer. changed is
// closed at the next change.
func (s *Store) Reachable() (reachable bool, since time.Time, changed <-chan struct{}) {
	r := &s.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.since.IsZero(), r.since, r.changed
}

// leaseState is one grant of the replica's lease and its keep-alive.
type leaseState struct {
	id            clientv3.LeaseID
	stopKeepAlive context.CancelFunc
	keepAliveDone chan struct{}
	// lost is closed when the lease is lost before Close.
	lost chan struct{}
}

// Open connects to etcd, grants this replica's lease and keeps it alive
// until Close. ctx bounds the connection and the grant only.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var (
		client *clientv3.Client
		watch  pb.WatchClient
	)
	if e := cfg.Embedded; e != nil {
		client = v3client.New(e.etcd.Server)
		watch = adapter.WatchServerToWatchClient(v3rpc.NewWatchServer(e.etcd.Server))
	} else {
		var err error
		client, err = clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			TLS:         cfg.TLS,
			Username:    cfg.Username,
			Password:    cfg.Password,
			Logger:      zapLogger(cfg.Logger, nil),
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           reconnectBackoff,
				MinConnectTimeout: cfg.DialTimeout,
			})},
		})
		if err != nil {
			return nil, fmt.Errorf("store: connect to etcd: %w", err)
		}
	}
	s := &Store{
		client:    client,
		log:       cfg.Logger,
		replica:   cfg.Replica,
		prefix:    cfg.Prefix,
		cfg:       cfg,
		claimTail: claimTail(cfg.Replica),
		watchIn:   watch,
	}
	l, err := s.grant(ctx)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.lease.Store(l)
	return s, nil
}

// grant grants a lease and starts the goroutine that keeps it alive.
func (s *Store) grant(ctx context.Context) (*leaseState, error) {
	ttl := int64((s.cfg.LeaseTTL + time.Second - 1) / time.Second)
	gctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	resp, err := s.client.Grant(gctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("store: grant lease: %w", err)
	}
	// The keep-alive lives as long as the client, not as long as ctx.
	kctx, stop := context.WithCancel(s.client.Ctx())
	ch, err := s.client.KeepAlive(kctx, resp.ID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("store: keep lease alive: %w", err)
	}
	l := &leaseState{id: resp.ID, stopKeepAlive: stop, keepAliveDone: make(chan struct{}), lost: make(chan struct{})}
	s.reach.set(true, time.Time{})
	go s.keepAlive(kctx, l, ch)
	return l, nil
}

// keepAlive drains the keep-alive responses, and marks etcd unreachable
// when none came for two thirds of the lease TTL. The channel closes when
// the lease expires or is revoked, or when kctx ends; only the first is a
// loss.
func (s *Store) keepAlive(kctx context.Context, l *leaseState, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(l.keepAliveDone)
	stale := s.cfg.LeaseTTL * 2 / 3
	silence := time.NewTimer(stale)
	defer silence.Stop()
	last := time.Now()
	for open := true; open; {
		select {
		case _, open = <-ch:
			if open {
				last = time.Now()
				s.reach.set(true, time.Time{})
				silence.Reset(stale)
			}
		case <-silence.C:
			s.log.Warn("etcd has not renewed the store lease lately", "replica", s.replica, "last_renewal", last)
			s.reach.set(false, last)
		}
	}
	if kctx.Err() == nil {
		s.log.Warn("store lease lost", "replica", s.replica, "lease", int64(l.id))
		close(l.lost)
	}
}

// Lost is closed when the replica's current lease is lost before Close: its
// claims are gone or about to go, and every fenced write fails with
// ErrFenced. The replica should stop acting on its sessions and call
// Regrant; the channel of the new lease is returned by Lost after that.
func (s *Store) Lost() <-chan struct{} { return s.lease.Load().lost }

// Regrant replaces a lost lease with a new one (doing nothing while the
// current one holds). The replica's earlier claims are gone with the old
// lease: it competes for its former sessions like any other replica.
func (s *Store) Regrant(ctx context.Context) error {
	s.regrant.Lock()
	defer s.regrant.Unlock()
	old := s.lease.Load()
	select {
	case <-old.lost:
	default:
		return nil
	}
	l, err := s.grant(ctx)
	if err != nil {
		return err
	}
	old.stopKeepAlive()
	<-old.keepAliveDone
	s.lease.Store(l)
	s.log.Info("store lease granted again", "replica", s.replica, "lease", int64(l.id))
	if addr := s.address.Load(); addr != nil {
		return s.Register(ctx, *addr)
	}
	return nil
}

// SuspendKeepAlive stops renewing the replica's lease without telling the
// replica, as a process paused (or cut off from etcd) past its lease would:
// etcd ends the lease after its TTL and releases the claims, while this
// Store goes on writing as if it held them, and every such write must be
// refused by fencing. resume ends the suspension the way waking up does:
// the replica learns that its lease is lost (Lost is closed) and may
// Regrant. Tests use it; a suspended lease is not renewed again.
func (s *Store) SuspendKeepAlive() (resume func()) {
	l := s.lease.Load()
	l.stopKeepAlive()
	<-l.keepAliveDone
	var once sync.Once
	return func() {
		once.Do(func() {
			select {
			case <-l.lost:
			default:
				close(l.lost)
			}
		})
	}
}

// Replica returns the replica name the Store writes as.
func (s *Store) Replica() string { return s.replica }

// Revision returns the current revision of the store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, s.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("store: read revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// Close stops keeping the lease alive and revokes it, so the replica's
// claims are released at once, then closes the connection. It is safe to
// call more than once.
func (s *Store) Close() error { return s.close(true) }

// Detach closes the Store like Close but leaves its lease to expire on its
// own: the claims stay held for up to LeaseTTL. A replica that restarts under
// the same name can adopt its sessions before any other replica may claim
// them. Tests use it to stand for a crash.
func (s *Store) Detach() error { return s.close(false) }

func (s *Store) close(revoke bool) error {
	s.closeOnce.Do(func() {
		l := s.lease.Load()
		l.stopKeepAlive()
		<-l.keepAliveDone
		var errs []error
		if revoke {
			ctx, cancel := context.WithTimeout(s.client.Ctx(), revokeTimeout)
			_, err := s.client.Revoke(ctx, l.id)
			cancel()
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				errs = append(errs, fmt.Errorf("store: revoke lease: %w", err))
			}
		}
		if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("store: close client: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// currentLease returns the lease to write with, failing fast once it is
// known to be lost.
func (s *Store) currentLease() (clientv3.LeaseID, error) {
	l := s.lease.Load()
	select {
	case <-l.lost:
		return 0, fmt.Errorf("%w: lease of replica %s lost", ErrFenced, s.replica)
	default:
		return l.id, nil
	}
}

// etcdError wraps an etcd error of op, turning the absence of this replica's
// lease into ErrFenced.
func (s *Store) etcdError(op, id string, err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: %s session %s: lease of replica %s not found", ErrFenced, op, id, s.replica)
	}
	return fmt.Errorf("store: %s session %s: %w", op, id, err)
}

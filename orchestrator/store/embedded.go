package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"google.golang.org/grpc"
)

// DefaultCompactionRetention is how much history the embedded server keeps
// by default for watchers to resume from.
const DefaultCompactionRetention = time.Hour

// maxSocketPath is the longest unix socket path every supported system
// accepts (104 bytes on macOS, 108 on Linux, including the final NUL).
const maxSocketPath = 100

// EmbeddedConfig configures an embedded etcd server. The zero value of each
// optional field selects its default.
type EmbeddedConfig struct {
	// Dir holds the server's data; it is created with mode 0700 if missing.
	// Required. Only one process may use a directory at a time.
	Dir string
	// Logger receives the server's warnings and errors; default discards.
	Logger *slog.Logger
	// CompactionRetention is how long revisions are kept for watchers to
	// resume from; default DefaultCompactionRetention.
	CompactionRetention time.Duration
	// UnsafeNoFsync skips fsync: much faster writes, but a power failure may
	// lose or corrupt data. For tests only.
	UnsafeNoFsync bool
	// TLS, when set, serves clients over TLS on a loopback TCP port the
	// system picks instead of the private unix socket. Tests use it to
	// stand for a secured external etcd.
	TLS *EmbeddedTLS
}

// EmbeddedTLS are the PEM files of an embedded server that serves TLS.
type EmbeddedTLS struct {
	// CertFile and KeyFile are the server's certificate (valid for
	// 127.0.0.1) and key. Required.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the server require client certificates
	// that chain to it.
	ClientCAFile string
}

// Embedded is a single-node etcd server running in this process.
//
// Clients reach it over a unix socket in its data directory (or in a private
// temporary directory if that path is too long for a socket), so only the
// directory's owner can connect: the records hold session tokens. The peer
// listener etcd requires is bound to a loopback port the system picks; a
// single member never dials it.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	// lock keeps a second server off the data directory.
	lock *fileutil.LockedFile
	// sockDir is a private directory for the socket, made when Dir's path
	// is too long for one; removed on Close.
	sockDir string

	// closing mutes the server's logs: once Close begins, etcd reports
	// its closed listeners as errors.
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu          sync.Mutex
	grpcServers []*grpc.Server
}

// StartEmbedded starts an embedded etcd server and waits until it serves
// clients or ctx ends.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	return startEmbedded(ctx, cfg, nil)
}

// memberSpec makes an embedded server one member of a cluster (see
// EmbeddedCluster) instead of a cluster of its own.
type memberSpec struct {
	name           string
	peer           url.URL
	initialCluster string
	// socket is the client socket's path, kept across restarts.
	socket string
}

func startEmbedded(ctx context.Context, cfg EmbeddedConfig, member *memberSpec) (_ *Embedded, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: EmbeddedConfig.Dir: required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CompactionRetention <= 0 {
		cfg.CompactionRetention = DefaultCompactionRetention
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: embedded data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: embedded data dir: %w", err)
	}

	e := &Embedded{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.lock, err = fileutil.TryLockFile(filepath.Join(dir, "obdorch.lock"), os.O_WRONLY|os.O_CREATE, fileutil.PrivateFileMode)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("store: embedded data dir %s is in use by another server", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock embedded data dir: %w", err)
	}

	sock := filepath.Join(dir, "etcd.sock")
	if member != nil {
		sock = member.socket
	}
	if len(sock) > maxSocketPath {
		if e.sockDir, err = os.MkdirTemp("", "obdorch-etcd-"); err != nil {
			return nil, fmt.Errorf("store: embedded socket dir: %w", err)
		}
		sock = filepath.Join(e.sockDir, "etcd.sock")
	}
	// A socket left by a process that did not stop cleanly blocks the
	// listener.
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: remove stale socket: %w", err)
	}

	ecfg := embed.NewConfig()
	ecfg.Name = "obdorch"
	ecfg.Dir = dir
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLogger(cfg.Logger, &e.closing))
	client := url.URL{Scheme: "unix", Path: sock}
	if t := cfg.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("store: EmbeddedConfig.TLS: CertFile and KeyFile are required")
		}
		client = url.URL{Scheme: "https", Host: "127.0.0.1:0"}
		ecfg.ClientTLSInfo = transport.TLSInfo{
			CertFile: t.CertFile, KeyFile: t.KeyFile,
			TrustedCAFile: t.ClientCAFile, ClientCertAuth: t.ClientCAFile != "",
		}
	}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ecfg.ListenClientUrls, ecfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ecfg.ListenPeerUrls, ecfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(ecfg.Name)
	// A lone member has no peers to wait for: short ticks let it elect
	// itself in tens of milliseconds instead of a second.
	ecfg.TickMs, ecfg.ElectionMs = 10, 100
	// etcd keeps SnapshotCatchUpEntries applied raft entries in memory
	// (default 5000, each a whole write: about 10 MB of the heap in the
	// loadtest's memory scenario) so that a slow follower can catch up from
	// them rather than from a snapshot. A lone member has no follower.
	// Every 100 applied entries etcd snapshots its state in memory and
	// compacts the in-memory log to the applied index less this number, so
	// 1 keeps at most about 100 entries. The WAL on disk, which a restart
	// replays, is not affected.
	ecfg.SnapshotCatchUpEntries = 1
	if member != nil {
		ecfg.Name = member.name
		ecfg.ListenPeerUrls, ecfg.AdvertisePeerUrls = []url.URL{member.peer}, []url.URL{member.peer}
		ecfg.InitialCluster = member.initialCluster
		ecfg.InitialClusterToken = "obdorch-embedded-cluster"
		// Members talk over loopback, but on a loaded machine heartbeats
		// can be late: an election timeout of a second keeps the leader.
		ecfg.TickMs, ecfg.ElectionMs = 50, 1000
		// Followers do lag: keep etcd's catch-up entries.
		ecfg.SnapshotCatchUpEntries = etcdserver.DefaultSnapshotCatchUpEntries
	}
	ecfg.EnableGRPCGateway = false
	ecfg.AutoCompactionMode = embed.CompactorModePeriodic
	ecfg.AutoCompactionRetention = cfg.CompactionRetention.String()
	ecfg.UnsafeNoFsync = cfg.UnsafeNoFsync
	ecfg.ServiceRegister = func(gs *grpc.Server) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.grpcServers = append(e.grpcServers, gs)
	}

	if e.etcd, err = embed.StartEtcd(ecfg); err != nil {
		return nil, fmt.Errorf("store: start embedded etcd: %w", err)
	}
	select {
	case <-e.etcd.Server.ReadyNotify():
	case err := <-e.etcd.Err():
		return nil, fmt.Errorf("store: start embedded etcd: %w", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("store: start embedded etcd: %w", context.Cause(ctx))
	}
	if cfg.TLS != nil {
		client.Host = e.etcd.Clients[0].Addr().String() // the port the system picked
	}
	e.endpoints = []string{client.String()}
	return e, nil
}

// Endpoints returns the client URLs to pass to Config.Endpoints.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Close stops the server. It ends open client connections at once rather
// than waiting, as etcd would, up to five seconds for their streams (watches,
// lease keep-alives) to finish. Close the Stores using the server first:
// their leases are revoked through it. Close is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.mu.Lock()
		for _, gs := range e.grpcServers {
			gs.Stop()
		}
		e.mu.Unlock()
		if e.etcd != nil {
			e.etcd.Close()
		}
		var errs []error
		if e.sockDir != "" {
			errs = append(errs, os.RemoveAll(e.sockDir))
		}
		if e.lock != nil {
			errs = append(errs, e.lock.Close())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// EmbeddedClusterConfig configures an EmbeddedCluster. The zero value of
// each optional field selects its default.
type EmbeddedClusterConfig struct {
	// Dir holds one data directory per member (member-0, member-1, ...).
	// Required.
	Dir string
	// Members is the number of members; default 3.
	Members int
	// Logger receives the members' warnings and errors; default discards.
	Logger *slog.Logger
	// UnsafeNoFsync skips fsync (see EmbeddedConfig). For tests only.
	UnsafeNoFsync bool
}

// EmbeddedCluster is a multi-member etcd cluster running in this process:
// a real cluster with raft replication, leader elections and quorum, for
// tests of what several replicas do when a member stops or the quorum is
// lost. Each member serves clients on a unix socket in its data directory,
// as Embedded does; the members reach each other on loopback TCP ports
// chosen at start and kept across member restarts.
//
// Its methods are safe for concurrent use.
type EmbeddedCluster struct {
	cfg   EmbeddedClusterConfig
	specs []memberSpec
	dirs  []string
	// sockDir holds the members' client sockets: a short private path,
	// the same for the cluster's life.
	sockDir string

	mu        sync.Mutex
	members   []*Embedded // nil while a member is stopped
	endpoints []string
}

// StartEmbeddedCluster starts every member and waits until all of them
// serve clients (which needs a quorum, so they start together) or ctx ends.
func StartEmbeddedCluster(ctx context.Context, cfg EmbeddedClusterConfig) (_ *EmbeddedCluster, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: EmbeddedClusterConfig.Dir: required")
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.Members < 1 {
		return nil, fmt.Errorf("store: EmbeddedClusterConfig.Members: must be positive, got %d", cfg.Members)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &EmbeddedCluster{cfg: cfg, members: make([]*Embedded, cfg.Members)}
	if c.sockDir, err = os.MkdirTemp("", "obdorch-etcd-"); err != nil {
		return nil, fmt.Errorf("store: embedded cluster socket dir: %w", err)
	}
	var initial []string
	for i := range cfg.Members {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("store: embedded cluster: peer port: %w", err)
		}
		name := "member-" + strconv.Itoa(i)
		peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		c.specs = append(c.specs, memberSpec{name: name, peer: peer, socket: filepath.Join(c.sockDir, name+".sock")})
		c.dirs = append(c.dirs, filepath.Join(cfg.Dir, name))
		initial = append(initial, name+"="+peer.String())
	}
	for i := range c.specs {
		c.specs[i].initialCluster = strings.Join(initial, ",")
	}
	all := make([]int, cfg.Members)
	for i := range all {
		all[i] = i
	}
	if err := c.StartMembers(ctx, all...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Endpoints returns the client URLs of every member, for Config.Endpoints.
// They stay the same across member restarts.
func (c *EmbeddedCluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.endpoints...)
}

// Members returns the number of members.
func (c *EmbeddedCluster) Members() int { return len(c.specs) }

// StopMember stops member i as a crash of its process would (its data
// stays); stopping a stopped member does nothing.
func (c *EmbeddedCluster) StopMember(i int) error {
	c.mu.Lock()
	m := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Close()
}

// StartMembers starts the given stopped members on their data and waits
// until each serves clients, which needs a quorum of the cluster: members
// that only form a quorum together must be started in one call. Running
// members are left alone.
func (c *EmbeddedCluster) StartMembers(ctx context.Context, members ...int) error {
	type started struct {
		i   int
		e   *Embedded
		err error
	}
	ch := make(chan started, len(members))
	for _, i := range members {
		if i < 0 || i >= len(c.specs) {
			return fmt.Errorf("store: embedded cluster: no member %d", i)
		}
		c.mu.Lock()
		running := c.members[i] != nil
		c.mu.Unlock()
		if running {
			ch <- started{i: i}
			continue
		}
		go func() {
			e, err := startEmbedded(ctx, EmbeddedConfig{
				Dir:           c.dirs[i],
				Logger:        c.cfg.Logger.With("member", c.specs[i].name),
				UnsafeNoFsync: c.cfg.UnsafeNoFsync,
			}, &c.specs[i])
			ch <- started{i, e, err}
		}()
	}
	var errs []error
	for range members {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("member %d: %w", s.i, s.err))
			continue
		}
		if s.e == nil {
			continue
		}
		c.mu.Lock()
		c.members[s.i] = s.e
		c.endpoints = c.endpointsLocked()
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// endpointsLocked lists the client URLs, keeping those of stopped members
// (a member serves the same socket again when it restarts).
func (c *EmbeddedCluster) endpointsLocked() []string {
	out := make([]string, len(c.specs))
	for i, m := range c.members {
		switch {
		case m != nil:
			out[i] = m.Endpoints()[0]
		case i < len(c.endpoints):
			out[i] = c.endpoints[i]
		}
	}
	return out
}

// Close stops every member. It is safe to call more than once.
func (c *EmbeddedCluster) Close() error {
	var errs []error
	for i := range c.members {
		errs = append(errs, c.StopMember(i))
	}
	errs = append(errs, os.RemoveAll(c.sockDir))
	return errors.Join(errs...)
}

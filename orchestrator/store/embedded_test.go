package store_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// startEmbedded starts a server of the test's own, without fsync.
func startEmbedded(t testing.TB, dir string) *store.Embedded {
	t.Helper()
	return startEmbeddedConfig(t, store.EmbeddedConfig{Dir: dir, UnsafeNoFsync: true, Logger: testLogger()})
}

func startEmbeddedConfig(t testing.TB, cfg store.EmbeddedConfig) *store.Embedded {
	t.Helper()
	start := time.Now()
	srv, err := store.StartEmbedded(testContext(t), cfg)
	if err != nil {
		t.Fatalf("StartEmbedded(%s) = %v", cfg.Dir, err)
	}
	t.Logf("embedded etcd ready in %v at %v", time.Since(start).Round(time.Millisecond), srv.Endpoints())
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestEmbeddedRestart stops the server under a Store and its watch, and
// starts it again on the same directory: the data survives, the Store
// reconnects, and the watch resumes without a gap.
func TestEmbeddedRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	srv := startEmbedded(t, dir)
	if _, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second StartEmbedded on a used dir = %v, want an in-use error", err)
	}
	cfg := testConfig(t, "a")
	cfg.Endpoints = srv.Endpoints()
	a := openStore(t, cfg)
	rec := newRecord("s1", "t1", "c1")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}

	events := make(chan store.Event, 1)
	watchErr := make(chan error, 1)
	go func() {
		for ev, err := range a.Watch(ctx, rec.Revision+1, store.Filter{}) {
			if err != nil {
				watchErr <- err
				return
			}
			events <- ev
			return
		}
	}()

	if err := srv.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	srv = startEmbedded(t, dir)
	if got := srv.Endpoints(); got[0] != cfg.Endpoints[0] {
		t.Errorf("endpoints after restart = %v, want %v", got, cfg.Endpoints)
	}

	got, err := a.Get(ctx, "s1")
	if err != nil {
		t.Fatalf("Get after restart = %v", err)
	}
	transition(t, got, session.StateStarting)
	if err := a.Update(ctx, got); err != nil {
		t.Fatalf("Update after restart = %v", err)
	}
	select {
	case ev := <-events:
		if ev.Revision != got.Revision || ev.Record.State != session.StateStarting {
			t.Errorf("event after restart = %d %s, want %d STARTING", ev.Revision, ev.Record.State, got.Revision)
		}
	case err := <-watchErr:
		t.Fatalf("Watch across the restart = %v", err)
	case <-ctx.Done():
		t.Fatal("no event after restart")
	}
	// Close the Store while its server runs, to revoke its lease.
	if err := a.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestEmbeddedRestartCompactedLog: a lone member keeps no raft entries in
// memory for followers, so its in-memory log is compacted every 100
// writes; the data of many more writes survives a restart (replayed from
// the WAL).
func TestEmbeddedRestartCompactedLog(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	srv := startEmbedded(t, dir)
	if got := store.CatchUpEntries(srv); got != 1 {
		t.Errorf("catch-up entries of a lone member = %d, want 1", got)
	}
	cfg := testConfig(t, "a")
	cfg.Endpoints = srv.Endpoints()
	a := openStore(t, cfg)
	const n = 350
	for i := range n {
		if err := a.Create(ctx, newRecord(fmt.Sprintf("s%03d", i), fmt.Sprintf("t%03d", i), fmt.Sprintf("c%03d", i))); err != nil {
			t.Fatalf("Create %d = %v", i, err)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	srv = startEmbedded(t, dir)
	if got := store.CatchUpEntries(srv); got != 1 {
		t.Errorf("catch-up entries of the restarted member = %d, want 1", got)
	}
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		rec, err := a.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%s) after restart = %v", id, err)
		}
		if rec.TicketID != fmt.Sprintf("t%03d", i) {
			t.Fatalf("Get(%s) after restart: ticket %s", id, rec.TicketID)
		}
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestEmbeddedLongDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	srv := startEmbedded(t, dir)
	sock := strings.TrimPrefix(srv.Endpoints()[0], "unix://")
	if strings.HasPrefix(sock, dir) {
		t.Errorf("socket %s is in the long dir", sock)
	}
	cfg := testConfig(t, "a")
	cfg.Endpoints = srv.Endpoints()
	a := openStore(t, cfg)
	if _, err := a.Revision(testContext(t)); err != nil {
		t.Errorf("Revision = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir after Close: %v, want it removed", err)
	}
}

// TestEmbeddedStaleSocket starts a server where a crashed one left its
// socket.
func TestEmbeddedStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startEmbedded(t, dir)
	cfg := testConfig(t, "a")
	cfg.Endpoints = srv.Endpoints()
	if _, err := openStore(t, cfg).Revision(testContext(t)); err != nil {
		t.Errorf("Revision = %v", err)
	}
}

func TestEmbeddedInvalid(t *testing.T) {
	t.Parallel()
	if _, err := store.StartEmbedded(testContext(t), store.EmbeddedConfig{}); err == nil {
		t.Error("StartEmbedded without Dir = nil, want an error")
	}
}

// TestEmbeddedInProcess: a Store on an Embedded server in process reads and
// writes the same records as one over the network, with the same fencing and
// watch, and its Close releases its claims.
func TestEmbeddedInProcess(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startEmbeddedConfig(t, store.EmbeddedConfig{Dir: t.TempDir(), UnsafeNoFsync: true, Logger: testLogger()})
	inCfg := testConfig(t, "a")
	inCfg.Endpoints, inCfg.Embedded = nil, srv
	a, err := store.Open(ctx, inCfg)
	if err != nil {
		t.Fatalf("Open(Embedded) = %v", err)
	}
	aClosed := false
	t.Cleanup(func() {
		if !aClosed {
			_ = a.Close()
		}
	})
	netCfg := testConfig(t, "b")
	netCfg.Endpoints = srv.Endpoints()
	b := openStore(t, netCfg)

	rev, err := a.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecord("s1", "t1", "c1")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatalf("Create in process = %v", err)
	}
	transition(t, rec, session.StateStarting)
	if err := a.Update(ctx, rec); err != nil {
		t.Fatalf("Update in process = %v", err)
	}
	got, err := b.Get(ctx, "s1")
	if err != nil || got.Revision != rec.Revision || got.State != session.StateStarting || got.Owner != "a" {
		t.Fatalf("Get over the network = %+v, %v; want the in-process write", got, err)
	}
	stale := got.Clone()
	transition(t, stale, session.StateReady)
	if err := b.Update(ctx, stale); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Update by the replica without the claims = %v, want ErrFenced", err)
	}
	if err := a.Create(ctx, newRecord("s2", "t1", "c2")); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("second Create on the ticket in process = %v, want ErrClaimed", err)
	}

	var states []session.State
	for ev, err := range a.Watch(ctx, rev+1, store.Filter{}) {
		if err != nil {
			t.Fatalf("Watch in process = %v", err)
		}
		states = append(states, ev.Record.State)
		if len(states) == 2 {
			break
		}
	}
	if len(states) != 2 || states[0] != session.StatePending || states[1] != session.StateStarting {
		t.Errorf("Watch in process yielded %v, want PENDING then STARTING", states)
	}

	aClosed = true
	if err := a.Close(); err != nil {
		t.Errorf("Close in process = %v", err)
	}
	// The session is orphaned at once, and the other replica adopts it.
	if claim, _, err := b.ClaimOf(ctx, store.ClaimTicket, "t1"); err != nil || claim.Replica != "" {
		t.Errorf("ClaimOf(ticket t1) after Close in process = %+v, %v; want no replica", claim, err)
	}
	if err := b.Adopt(ctx, got); err != nil {
		t.Errorf("Adopt over the network after Close in process = %v", err)
	}
}

func TestEmbeddedInProcessInvalid(t *testing.T) {
	srv := &store.Embedded{}
	for _, cfg := range []store.Config{
		{Replica: "a", Embedded: srv, Endpoints: []string{"127.0.0.1:2379"}},
		{Replica: "a", Embedded: srv, Username: "u", Password: "p"},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", cfg)
		}
	}
}

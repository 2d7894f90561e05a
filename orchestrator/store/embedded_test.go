package store_test

import (
	"errors"
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

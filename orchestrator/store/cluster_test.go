package store_test

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver"

	"github.com/obdorch/obdorch/orchestrator/store"
)

// TestEmbeddedCluster: three members replicate; the cluster keeps serving
// with one member stopped, refuses writes without a quorum, and serves
// again, with every write made before, once the stopped members restart.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(ctx, t)
	eps := c.Endpoints()
	if len(eps) != 3 || c.Members() != 3 {
		t.Fatalf("Endpoints() = %v, Members() = %d; want 3 of each", eps, c.Members())
	}
	for i := range 3 {
		if got := c.MemberCatchUpEntries(i); got != etcdserver.DefaultSnapshotCatchUpEntries {
			t.Errorf("catch-up entries of member %d = %d, want etcd's default %d", i, got, etcdserver.DefaultSnapshotCatchUpEntries)
		}
	}
	// Each member answers on its own endpoint.
	for i, ep := range eps {
		cli := rawClient(t, []string{ep})
		if _, err := cli.Put(ctx, testPrefix(t)+"k", "v"+string(rune('0'+i))); err != nil {
			t.Fatalf("Put through member %d = %v", i, err)
		}
	}
	cli := rawClient(t, eps)
	if err := c.StopMember(0); err != nil {
		t.Fatalf("StopMember(0) = %v", err)
	}
	if _, err := cli.Put(ctx, testPrefix(t)+"k", "with two"); err != nil {
		t.Fatalf("Put with one member stopped = %v", err)
	}
	if err := c.StopMember(1); err != nil {
		t.Fatalf("StopMember(1) = %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := cli.Put(short, testPrefix(t)+"k", "without quorum")
	cancel()
	if err == nil {
		t.Fatal("Put without a quorum succeeded")
	}
	if err := c.StartMembers(ctx, 0, 1); err != nil {
		t.Fatalf("StartMembers(0, 1) = %v", err)
	}
	if got := c.Endpoints(); len(got) != 3 || got[0] != eps[0] || got[1] != eps[1] {
		t.Errorf("Endpoints() after the restart = %v, want %v", got, eps)
	}
	if _, err := cli.Put(ctx, testPrefix(t)+"k", "back"); err != nil {
		t.Fatalf("Put after the restart = %v", err)
	}
	for i, ep := range eps {
		resp, err := rawClient(t, []string{ep}).Get(ctx, testPrefix(t)+"k")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "back" {
			t.Errorf("Get through member %d = %v, %v; want back", i, resp, err)
		}
	}
}

// TestReachable: a Store reports etcd unreachable once its lease has gone
// unrenewed for two thirds of the TTL (a cluster without a quorum), and
// reachable again when etcd renews the lease or grants a new one.
func TestReachable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(ctx, t)
	cfg := testConfig(t, "a")
	cfg.Endpoints, cfg.LeaseTTL = c.Endpoints(), 3*time.Second
	s := openStore(t, cfg)
	ok, _, changed := s.Reachable()
	if !ok {
		t.Fatal("Reachable() right after Open = false")
	}
	for _, m := range []int{1, 2} {
		if err := c.StopMember(m); err != nil {
			t.Fatalf("StopMember(%d) = %v", m, err)
		}
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("Reachable never changed without a quorum")
	}
	ok, since, changed := s.Reachable()
	if ok || since.IsZero() {
		t.Fatalf("Reachable() without a quorum = %v, since %v; want false with the last renewal", ok, since)
	}
	if err := c.StartMembers(ctx, 1, 2); err != nil {
		t.Fatalf("StartMembers = %v", err)
	}
	// The lease may have expired meanwhile: then it is granted anew.
	select {
	case <-changed:
	case <-s.Lost():
		if err := s.Regrant(ctx); err != nil {
			t.Fatalf("Regrant = %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Reachable never changed back with the quorum back")
	}
	if ok, since, _ := s.Reachable(); !ok {
		t.Errorf("Reachable() with the quorum back = false, since %v", since)
	}
}

// startCluster starts a three-member embedded cluster, closed when the test
// ends.
func startCluster(ctx context.Context, t *testing.T) *store.EmbeddedCluster {
	t.Helper()
	c, err := store.StartEmbeddedCluster(ctx, store.EmbeddedClusterConfig{Dir: t.TempDir(), UnsafeNoFsync: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("StartEmbeddedCluster = %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

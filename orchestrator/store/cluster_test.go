package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/obdorch/obdorch/orchestrator/store"
)

// TestEmbeddedCluster: three members replicate; the cluster keeps serving
// with one member stopped, refuses writes without a quorum, and serves
// again, with every write made before, once the stopped members restart.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c, err := store.StartEmbeddedCluster(ctx, store.EmbeddedClusterConfig{Dir: t.TempDir(), UnsafeNoFsync: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("StartEmbeddedCluster = %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	eps := c.Endpoints()
	if len(eps) != 3 || c.Members() != 3 {
		t.Fatalf("Endpoints() = %v, Members() = %d; want 3 of each", eps, c.Members())
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
	_, err = cli.Put(short, testPrefix(t)+"k", "without quorum")
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

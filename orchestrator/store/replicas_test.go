package store_test

import (
	"context"
	"iter"
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	b := openStore(t, testConfig(t, "b"))

	if addr, ok, err := b.ReplicaAddress(ctx, "a"); err != nil || ok {
		t.Fatalf("ReplicaAddress(a) before Register = %q, %v, %v; want not found", addr, ok, err)
	}
	if err := a.Register(ctx, "10.0.0.1:7600"); err != nil {
		t.Fatalf("Register = %v", err)
	}
	if addr, ok, err := b.ReplicaAddress(ctx, "a"); err != nil || !ok || addr != "10.0.0.1:7600" {
		t.Errorf("ReplicaAddress(a) = %q, %v, %v; want 10.0.0.1:7600, true, nil", addr, ok, err)
	}
	if err := a.Register(ctx, "10.0.0.2:7600"); err != nil {
		t.Fatalf("Register again = %v", err)
	}
	if addr, _, _ := b.ReplicaAddress(ctx, "a"); addr != "10.0.0.2:7600" {
		t.Errorf("ReplicaAddress(a) after a new Register = %q, want 10.0.0.2:7600", addr)
	}
	if err := a.Register(ctx, ""); err == nil {
		t.Error("Register(\"\") = nil, want an error")
	}

	// The entry is bound to the lease: it goes when the lease does.
	raw := rawClient(t, endpoints)
	resp, err := raw.Get(ctx, testPrefix(t)+"replicas/a")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(a.LeaseID()) {
		t.Fatalf("registry key = %v, %v; want one key on lease %x", resp.Kvs, err, a.LeaseID())
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if addr, ok, err := b.ReplicaAddress(ctx, "a"); err != nil || ok {
		t.Errorf("ReplicaAddress(a) after Close = %q, %v, %v; want not found", addr, ok, err)
	}
}

// TestWatchReplicas: the watch yields the registry as it is, then again at
// every registration and every replica that goes; while it runs,
// ReplicaAddress answers from it without reading the store (here with a
// cancelled context, which fails any store read).
func TestWatchReplicas(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	b := openStore(t, testConfig(t, "b"))
	if err := a.Register(ctx, "10.0.0.1:7600"); err != nil {
		t.Fatalf("Register = %v", err)
	}
	next, stop := iter.Pull2(b.WatchReplicas(ctx))
	defer stop()
	want := func(names ...string) {
		t.Helper()
		got, err, ok := next()
		if !ok || err != nil || !slices.Equal(got, names) {
			t.Fatalf("WatchReplicas yielded %v, %v (more: %v); want %v", got, err, ok, names)
		}
	}
	want("a")
	if err := b.Register(ctx, "10.0.0.2:7600"); err != nil {
		t.Fatalf("Register = %v", err)
	}
	want("a", "b")
	if err := b.Register(ctx, "10.0.0.3:7600"); err != nil { // a new address changes no name
		t.Fatalf("Register = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	want("b")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if addr, ok, err := b.ReplicaAddress(cancelled, "b"); err != nil || !ok || addr != "10.0.0.3:7600" {
		t.Errorf("ReplicaAddress(b) while the watch runs = %q, %v, %v; want 10.0.0.3:7600 from the watch", addr, ok, err)
	}
	if _, _, err := b.ReplicaAddress(cancelled, "a"); err == nil {
		t.Error("ReplicaAddress(a), gone from the watch, with a cancelled context = no error, want the store read's")
	}
	stop()
	if _, _, err := b.ReplicaAddress(cancelled, "b"); err == nil {
		t.Error("ReplicaAddress(b) after the watch stopped, with a cancelled context = no error, want the store read's")
	}
}

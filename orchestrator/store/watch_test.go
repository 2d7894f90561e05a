package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// change is what a test expects of one event.
type change struct {
	Revision int64
	ID       string
	State    session.State
}

// collect watches from rev until it has seen an event at revision last.
func collect(t *testing.T, s *store.Store, rev, last int64, f store.Filter) []change {
	t.Helper()
	var got []change
	for ev, err := range s.Watch(testContext(t), rev, f) {
		if err != nil {
			t.Fatalf("Watch(%d) after %d events: %v", rev, len(got), err)
		}
		got = append(got, change{ev.Revision, ev.ID, ev.Record.State})
		if ev.Record.Revision != ev.Revision {
			t.Errorf("event at %d has record revision %d", ev.Revision, ev.Record.Revision)
		}
		if ev.Revision >= last {
			break
		}
	}
	return got
}

// writeHistory creates n sessions and moves each through two states,
// returning every write in revision order.
func writeHistory(t *testing.T, s *store.Store, n int) []change {
	t.Helper()
	ctx := testContext(t)
	var writes []change
	for i := range n {
		rec := newRecord(fmt.Sprintf("s%d", i), fmt.Sprintf("t%d", i), "")
		if err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, change{rec.Revision, rec.ID, rec.State})
		for _, to := range []session.State{session.StateStarting, session.StateReady} {
			transition(t, rec, to)
			if err := s.Update(ctx, rec); err != nil {
				t.Fatal(err)
			}
			writes = append(writes, change{rec.Revision, rec.ID, rec.State})
		}
	}
	return writes
}

func TestWatchResume(t *testing.T) {
	t.Parallel()
	a := openStore(t, testConfig(t, "a"))
	writes := writeHistory(t, a, 5)
	last := writes[len(writes)-1].Revision

	for _, k := range []int{0, 1, 7, len(writes) - 1} {
		t.Run(fmt.Sprint("from write ", k), func(t *testing.T) {
			got := collect(t, a, writes[k].Revision, last, store.Filter{})
			if diff := cmp.Diff(writes[k:], got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("between writes", func(t *testing.T) {
		// Revisions between this test's writes belong to other tests' keys.
		got := collect(t, a, writes[3].Revision-1, last, store.Filter{})
		if got[0].Revision != writes[3].Revision && got[0].Revision != writes[2].Revision {
			t.Errorf("first event at %d, want write 2 or 3", got[0].Revision)
		}
	})
	t.Run("filter", func(t *testing.T) {
		var want []change
		for _, w := range writes {
			if w.ID == "s3" {
				want = append(want, w)
			}
		}
		f := store.Filter{TicketID: "t3"}
		got := collect(t, a, writes[0].Revision, want[len(want)-1].Revision, f)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events for ticket t3 (-want +got):\n%s", diff)
		}
		f = store.Filter{States: []session.State{session.StateReady}}
		got = collect(t, a, writes[0].Revision, last, f)
		if len(got) != 5 {
			t.Errorf("READY events = %v, want 5", got)
		}
	})
}

func TestWatchFromNow(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	rec := newRecord("s1", "t1", "")
	if err := a.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	before := rec.Revision

	events := make(chan store.Event)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for ev, err := range a.Watch(wctx, 0, store.Filter{}) {
			if err != nil {
				done <- err
				return
			}
			// Once the test has its event it stops reading: a later
			// event must not block this goroutine forever.
			select {
			case events <- ev:
			case <-wctx.Done():
			}
		}
	}()
	// Write until the watch, started at some point meanwhile, sees a write.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Revision <= before {
				t.Errorf("Watch(0) yielded revision %d, written before the watch started", ev.Revision)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Watch after cancel ended with %v, want context.Canceled", err)
			}
			return
		case <-tick.C:
			rec.Reason = time.Now().String()
			if err := a.Update(ctx, rec); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no event from Watch(0)")
		}
	}
}

func TestWatchStops(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := openStore(t, testConfig(t, "a"))
	writes := writeHistory(t, a, 2)

	n := 0
	for _, err := range a.Watch(ctx, writes[0].Revision, store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	cancel()
	var errs []error
	for ev, err := range a.Watch(wctx, writes[0].Revision, store.Filter{}) {
		if err == nil {
			t.Errorf("Watch with a canceled context yielded %+v", ev)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("Watch with a canceled context yielded errors %v, want one context.Canceled", errs)
	}
}

// TestWatchCompacted uses its own server: compaction is global.
func TestWatchCompacted(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: t.TempDir(), UnsafeNoFsync: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := testConfig(t, "a")
	cfg.Endpoints = srv.Endpoints()
	a := openStore(t, cfg)
	writes := writeHistory(t, a, 2)
	compactAt := writes[3].Revision
	if _, err := rawClient(t, srv.Endpoints()).Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}

	var errs []error
	for ev, err := range a.Watch(ctx, writes[1].Revision, store.Filter{}) {
		if err == nil {
			t.Errorf("Watch from a compacted revision yielded %+v", ev)
			break
		}
		errs = append(errs, err)
	}
	var compacted *store.CompactedError
	if len(errs) != 1 || !errors.As(errs[0], &compacted) || !errors.Is(errs[0], store.ErrCompacted) {
		t.Fatalf("Watch from a compacted revision yielded %v, want one *CompactedError", errs)
	}
	want := &store.CompactedError{Requested: writes[1].Revision, Oldest: compactAt}
	if diff := cmp.Diff(want, compacted); diff != "" {
		t.Errorf("CompactedError (-want +got):\n%s", diff)
	}
	// Resuming from the oldest revision kept works.
	got := collect(t, a, compacted.Oldest, writes[len(writes)-1].Revision, store.Filter{})
	if diff := cmp.Diff(writes[3:], got); diff != "" {
		t.Errorf("events from the oldest revision (-want +got):\n%s", diff)
	}
}

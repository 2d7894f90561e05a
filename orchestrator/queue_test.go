package orchestrator

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueueDeduplicates(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	defer q.Close()
	q.Add("a")
	q.Add("a")
	q.Add("b")
	if got := q.Len(); got != 2 {
		t.Fatalf("Len() = %d, want 2", got)
	}
	k, _ := q.Get()
	q.Add(k) // added while processing: marked dirty, not queued twice
	if got := q.Len(); got != 1 {
		t.Fatalf("Len() while processing = %d, want 1", got)
	}
	q.Done(k)
	if got := q.Len(); got != 2 {
		t.Fatalf("Len() after Done of a dirty key = %d, want 2", got)
	}
}

func TestQueueOneWorkerPerKey(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	var (
		wg      sync.WaitGroup
		running sync.Map
		overlap atomic.Bool
		handled atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				if _, busy := running.LoadOrStore(k, true); busy {
					overlap.Store(true)
				}
				handled.Add(1)
				running.Delete(k)
				q.Done(k)
			}
		}()
	}
	for i := range 1000 {
		q.Add([]string{"a", "b", "c"}[i%3])
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.Close()
	wg.Wait()
	if overlap.Load() {
		t.Error("a key was processed by two workers at once")
	}
	if handled.Load() == 0 {
		t.Error("no key was processed")
	}
}

func TestQueueRetryBackoffAndForget(t *testing.T) {
	q := newQueue(10*time.Millisecond, 40*time.Millisecond)
	defer q.Close()
	var last time.Duration
	for range 6 {
		last = q.Retry("k")
	}
	if last > 60*time.Millisecond {
		t.Errorf("Retry delay = %s, want capped near 40ms", last)
	}
	q.Forget("k")
	if d := q.Retry("k"); d > 20*time.Millisecond {
		t.Errorf("Retry after Forget = %s, want about the initial 10ms", d)
	}
}

func TestQueueAddDoesNotCutBackoffShort(t *testing.T) {
	q := newQueue(time.Hour, time.Hour)
	defer q.Close()
	q.Retry("k") // waits an hour (with jitter)
	q.Add("k")
	if got := q.Len(); got != 0 {
		t.Fatalf("Len() after Add during a backoff = %d, want 0", got)
	}
	// A key marked dirty while processing does not jump its backoff either.
	q.Add("j")
	k, _ := q.Get()
	q.Add(k)
	q.Retry(k)
	q.Done(k)
	if got := q.Len(); got != 0 {
		t.Errorf("Len() after Done of a dirty key in backoff = %d, want 0", got)
	}
}

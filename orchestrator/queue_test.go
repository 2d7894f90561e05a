package orchestrator

import (
	"sync"
	"testing"
	"time"
)

func TestQueueDeduplicates(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second, time.Now)
	defer q.Close()
	a, b := ticketKey("a"), sessionKey("a") // same id, different kinds
	q.Add(a)
	q.Add(a)
	q.Add(b)
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
	q := newQueue(time.Millisecond, time.Second, time.Now)
	keys := []key{ticketKey("a"), ticketKey("b"), sessionKey("c")}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[key]bool{}
		overlap bool
		handled int
		all     = make(chan struct{})
	)
	const adds = 1000
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				mu.Lock()
				overlap = overlap || running[k]
				running[k] = true
				mu.Unlock()
				mu.Lock()
				delete(running, k)
				handled++
				mu.Unlock()
				q.Done(k)
			}
		}()
	}
	for i := range adds {
		q.Add(keys[i%len(keys)])
	}
	// Wait until every queued key was handed out.
	go func() {
		defer close(all)
		for q.Len() > 0 {
			time.Sleep(time.Millisecond)
		}
	}()
	<-all
	q.Close()
	wg.Wait()
	if overlap {
		t.Error("a key was processed by two workers at once")
	}
	if handled == 0 {
		t.Error("no key was processed")
	}
}

func TestQueueRetryBackoffAndForget(t *testing.T) {
	q := newQueue(10*time.Millisecond, 40*time.Millisecond, time.Now)
	defer q.Close()
	k := sessionKey("k")
	var last time.Duration
	for range 6 {
		last = q.Retry(k)
	}
	if last > 60*time.Millisecond {
		t.Errorf("Retry delay = %s, want capped near 40ms", last)
	}
	q.Forget(k)
	if d := q.Retry(k); d > 20*time.Millisecond {
		t.Errorf("Retry after Forget = %s, want about the initial 10ms", d)
	}
}

func TestQueueAddDoesNotCutBackoffShort(t *testing.T) {
	q := newQueue(time.Hour, time.Hour, time.Now)
	defer q.Close()
	k := sessionKey("k")
	q.Retry(k) // waits an hour (with jitter)
	q.Add(k)
	if got := q.Len(); got != 0 {
		t.Fatalf("Len() after Add during a backoff = %d, want 0", got)
	}
	// A key marked dirty while processing does not jump its backoff either.
	q.Add(sessionKey("j"))
	j, _ := q.Get()
	q.Add(j)
	q.Retry(j)
	q.Done(j)
	if got := q.Len(); got != 0 {
		t.Errorf("Len() after Done of a dirty key in backoff = %d, want 0", got)
	}
}

func TestQueueScheduledDelays(t *testing.T) {
	q := newQueue(time.Hour, time.Hour, time.Now)
	defer q.Close()
	k := sessionKey("k")

	// A scheduled look (RequeueAfter) is cut short by new work.
	q.AddAfter(k, time.Hour)
	q.Add(k)
	if got := q.Len(); got != 1 {
		t.Fatalf("Len() after Add during a scheduled delay = %d, want 1", got)
	}
	got, _ := q.Get()
	q.Done(got)

	// The sooner of two delays wins, whichever comes first.
	q.AddAfter(k, time.Hour)
	q.AddAfter(k, time.Millisecond)
	q.AddAfter(k, time.Hour)
	if got, ok := q.Get(); !ok || got != k {
		t.Fatalf("Get() = %v, %v; want %v after the sooner delay", got, ok, k)
	}
}

package orchestrator

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestQueueDeduplicates(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
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
	q := newQueue(time.Millisecond, time.Second)
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
	q := newQueue(10*time.Millisecond, 40*time.Millisecond)
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
	q := newQueue(time.Hour, time.Hour)
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
	q := newQueue(time.Hour, time.Hour)
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

func TestQueueDelaysFireEachKeyOnceWhenDue(t *testing.T) {
	q := newQueue(time.Hour, time.Hour)
	defer q.Close()
	const n = 200
	added := make(map[key]time.Time, n)
	wait := make(map[key]time.Duration, n)
	for i := range n {
		k := sessionKey(strconv.Itoa(i))
		d := time.Duration((i*7919)%50+1) * time.Millisecond // an order unlike the keys'
		added[k], wait[k] = time.Now(), d
		q.AddAfter(k, d)
		q.AddAfter(k, time.Hour) // later: ignored
	}
	seen := map[key]bool{}
	for range n {
		k, ok := q.Get()
		if !ok {
			t.Fatal("Get() = closed")
		}
		if seen[k] {
			t.Fatalf("Get() returned %v twice", k)
		}
		seen[k] = true
		if early := wait[k] - time.Since(added[k]); early > 0 {
			t.Errorf("%v queued %v before its delay of %v", k, early, wait[k])
		}
		q.Done(k)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.delayed) != 0 || len(q.delays) != 0 || len(q.items) != 0 {
		t.Errorf("after every delay fired: %d delayed, %d in the heap, %d queued; want none", len(q.delayed), len(q.delays), len(q.items))
	}
}

func TestQueueSoonerDelayRearmsTheTimer(t *testing.T) {
	q := newQueue(time.Hour, time.Hour)
	defer q.Close()
	late, soon := sessionKey("late"), sessionKey("soon")
	q.AddAfter(late, time.Hour) // arms the timer an hour out
	q.AddAfter(soon, time.Millisecond)
	if k, ok := q.Get(); !ok || k != soon {
		t.Fatalf("Get() = %v, %v; want %v", k, ok, soon)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if d, ok := q.delayed[late]; !ok || len(q.delays) != 1 || q.delays[0] != d {
		t.Errorf("the hour's delay of %v is not the one pending", late)
	}
	if q.armedAt.IsZero() || q.armedAt.After(q.delays[0].due) {
		t.Errorf("timer armed at %v, want at or before the pending delay's %v", q.armedAt, q.delays[0].due)
	}
}

func TestQueueCloseDropsDelays(t *testing.T) {
	q := newQueue(time.Hour, time.Hour)
	q.AddAfter(sessionKey("a"), time.Millisecond)
	q.Retry(sessionKey("b"))
	q.Close()
	if _, ok := q.Get(); ok {
		t.Error("Get() after Close returned a key")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.delayed) != 0 || len(q.delays) != 0 {
		t.Errorf("after Close: %d delayed, %d in the heap; want none", len(q.delayed), len(q.delays))
	}
	q.delayLocked(sessionKey("c"), time.Millisecond, false)
	if len(q.delayed) != 0 {
		t.Error("a delay was accepted after Close")
	}
}

// BenchmarkQueueDelayedKeys measures what a key waiting for its next look
// costs the queue (an idle session waits so for its ticket check), in heap
// bytes per delayed key.
//
//	go test -run '^$' -bench QueueDelayedKeys ./orchestrator/
func BenchmarkQueueDelayedKeys(b *testing.B) {
	const keys = 10000
	ids := make([]key, keys)
	for i := range ids {
		ids[i] = sessionKey(fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	var perKey float64
	for b.Loop() {
		q := newQueue(time.Hour, time.Hour)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, k := range ids {
			q.AddAfter(k, time.Hour)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKey = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / keys
		q.Close()
	}
	b.ReportMetric(perKey, "B/delayed-key")
}

// TestQueueLetsGoOfABurst: a queue that drains after more than shrinkAfter
// keys drops the slice and map that held them, and keeps working.
func TestQueueLetsGoOfABurst(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	defer q.Close()
	n := shrinkAfter + 1
	for i := range n {
		q.Add(ticketKey(strconv.Itoa(i)))
	}
	for i := range n {
		k, ok := q.Get()
		if !ok || k != ticketKey(strconv.Itoa(i)) {
			t.Fatalf("Get() = %v, %v; want ticket %d", k, ok, i)
		}
		q.Done(k)
	}
	q.mu.Lock()
	items, peak, queued := q.items, q.peak, len(q.queued)
	q.mu.Unlock()
	if items != nil || peak != 0 || queued != 0 {
		t.Errorf("after the burst: items %v, peak %d, %d queued; want nil, 0, 0", items, peak, queued)
	}
	q.Add(ticketKey("next"))
	if k, ok := q.Get(); !ok || k != ticketKey("next") {
		t.Errorf("Get() after the burst = %v, %v; want ticket next", k, ok)
	}
}

package orchestrator

import (
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// queue is a de-duplicating work queue of keys, after controller-runtime's:
// a key is held by at most one worker at a time; a key added while it is
// being processed is processed again afterwards; retries wait a per-key
// exponential backoff that Forget resets.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []string
	queued     map[string]bool
	processing map[string]bool
	dirty      map[string]bool
	backoffs   map[string]*backoff.ExponentialBackOff
	timers     map[string]*time.Timer
	closed     bool
	metrics    *queueMetrics

	initial, max time.Duration
}

func newQueue(initial, max time.Duration) *queue {
	q := &queue{
		queued:     map[string]bool{},
		processing: map[string]bool{},
		dirty:      map[string]bool{},
		backoffs:   map[string]*backoff.ExponentialBackOff{},
		timers:     map[string]*time.Timer{},
		initial:    initial,
		max:        max,
	}
	q.cond = sync.NewCond(&q.mu)
	q.metrics = newQueueMetrics(q)
	return q
}

// Add queues key unless it is already queued or waiting out a retry
// backoff: a level-triggered pass must not cut a backoff short.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, waiting := q.timers[key]; waiting {
		return
	}
	q.addLocked(key)
}

func (q *queue) addLocked(key string) {
	if q.closed {
		return
	}
	if q.processing[key] {
		q.dirty[key] = true
		return
	}
	if q.queued[key] {
		return
	}
	q.queued[key] = true
	q.items = append(q.items, key)
	q.metrics.added()
	q.cond.Signal()
}

// AddAfter queues key after d; a shorter pending delay wins.
func (q *queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop()
	}
	q.timers[key] = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, key)
		q.addLocked(key)
	})
}

// Retry queues key after its next backoff interval and returns the delay.
func (q *queue) Retry(key string) time.Duration {
	q.mu.Lock()
	b, ok := q.backoffs[key]
	if !ok {
		b = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(q.initial),
			backoff.WithMaxInterval(q.max),
			backoff.WithMaxElapsedTime(0),
		)
		q.backoffs[key] = b
	}
	d := b.NextBackOff()
	q.mu.Unlock()
	q.metrics.retried()
	q.AddAfter(key, d)
	return d
}

// Forget resets key's backoff after a success.
func (q *queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.backoffs, key)
}

// Get blocks until a key is available or the queue is closed.
func (q *queue) Get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.items[0]
	q.items[0] = ""
	q.items = q.items[1:]
	delete(q.queued, key)
	q.processing[key] = true
	return key, true
}

// Done marks key processed, re-queueing it if it was added meanwhile.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] {
		delete(q.dirty, key)
		if _, waiting := q.timers[key]; !waiting {
			q.addLocked(key)
		}
	}
}

// Len is the number of queued keys.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Close wakes every Get and stops pending delays.
func (q *queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.metrics.close()
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}

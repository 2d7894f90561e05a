package orchestrator

import (
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// keyKind says what a work-queue key names.
type keyKind uint8

const (
	// kindIntake is the one intake key: list tickets, queue their keys.
	kindIntake keyKind = iota + 1
	// kindTicket names a Partner API ticket by its UUID.
	kindTicket
	// kindSession names a session record by its id.
	kindSession
)

// key is what the work queue holds and what reconcile is given.
type key struct {
	kind keyKind
	id   string
}

var intakeKey = key{kind: kindIntake}

func ticketKey(id string) key  { return key{kindTicket, id} }
func sessionKey(id string) key { return key{kindSession, id} }

func (k key) String() string {
	switch k.kind {
	case kindIntake:
		return "intake"
	case kindTicket:
		return "ticket/" + k.id
	case kindSession:
		return "session/" + k.id
	}
	return "unknown/" + k.id
}

// queue is a de-duplicating work queue of keys, after client-go's
// workqueue as controller-runtime uses it. Its invariants, under mu:
//
//   - every key in items is in queued, and no key is in items twice;
//   - a key is held by at most one worker (processing); a key added while
//     it is processed is marked dirty and queued again by Done;
//   - a key has at most one pending delay; a new delay replaces it only if
//     it is due sooner (the sooner of two delays wins);
//   - a retry delay (after a failure) is not cut short by Add, so a
//     level-triggered pass cannot defeat the backoff; a scheduled delay
//     (Result.RequeueAfter) is, because new work makes the timed look moot.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []key
	queued     map[key]bool
	processing map[key]bool
	dirty      map[key]bool
	backoffs   map[key]*backoff.ExponentialBackOff
	delayed    map[key]*delay
	closed     bool

	initial, max time.Duration
	now          func() time.Time
	metrics      *queueMetrics
}

// delay is a pending AddAfter or Retry of one key.
type delay struct {
	timer *time.Timer
	due   time.Time
	retry bool
}

func newQueue(initial, max time.Duration, now func() time.Time) *queue {
	q := &queue{
		queued:     map[key]bool{},
		processing: map[key]bool{},
		dirty:      map[key]bool{},
		backoffs:   map[key]*backoff.ExponentialBackOff{},
		delayed:    map[key]*delay{},
		initial:    initial,
		max:        max,
		now:        now,
	}
	q.cond = sync.NewCond(&q.mu)
	q.metrics = newQueueMetrics(q)
	return q
}

// Add queues k now, unless it waits out a retry backoff.
func (q *queue) Add(k key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if d, ok := q.delayed[k]; ok && d.retry {
		return
	}
	q.addLocked(k)
}

func (q *queue) addLocked(k key) {
	if q.closed {
		return
	}
	if q.processing[k] {
		q.dirty[k] = true
		return
	}
	if q.queued[k] {
		return
	}
	q.queued[k] = true
	q.items = append(q.items, k)
	q.metrics.added()
	q.cond.Signal()
}

// AddAfter queues k after d, unless a sooner delay is pending.
func (q *queue) AddAfter(k key, d time.Duration) {
	if d <= 0 {
		q.Add(k)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.delayLocked(k, d, false)
}

func (q *queue) delayLocked(k key, d time.Duration, retry bool) {
	if q.closed {
		return
	}
	due := q.now().Add(d)
	if old, ok := q.delayed[k]; ok {
		if !old.due.After(due) {
			return
		}
		old.timer.Stop()
	}
	dl := &delay{due: due, retry: retry}
	dl.timer = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.delayed[k] == dl {
			delete(q.delayed, k)
		}
		q.addLocked(k)
	})
	q.delayed[k] = dl
}

// Retry queues k after its next backoff interval and returns the delay.
func (q *queue) Retry(k key) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	b, ok := q.backoffs[k]
	if !ok {
		b = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(q.initial),
			backoff.WithMaxInterval(q.max),
			backoff.WithMaxElapsedTime(0),
		)
		q.backoffs[k] = b
	}
	d := b.NextBackOff()
	q.metrics.retried()
	q.delayLocked(k, d, true)
	return d
}

// Forget resets k's backoff after a success.
func (q *queue) Forget(k key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.backoffs, k)
}

// Get blocks until a key is available or the queue is closed.
func (q *queue) Get() (key, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return key{}, false
	}
	k := q.items[0]
	q.items[0] = key{}
	q.items = q.items[1:]
	delete(q.queued, k)
	q.processing[k] = true
	return k, true
}

// Done marks k processed, queueing it again if it was added meanwhile.
func (q *queue) Done(k key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, k)
	if q.dirty[k] {
		delete(q.dirty, k)
		if d, ok := q.delayed[k]; !ok || !d.retry {
			q.addLocked(k)
		}
	}
}

// Len is the number of keys waiting for a worker.
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
	for k, d := range q.delayed {
		d.timer.Stop()
		delete(q.delayed, k)
	}
	q.cond.Broadcast()
}

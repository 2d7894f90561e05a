package orchestrator

import (
	"container/heap"
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
//     (Result.RequeueAfter) is, because new work makes the timed look moot;
//   - every pending delay is in delayed under its key and in the heap
//     delays at its index, soonest first; while the heap is not empty, the
//     one timer is set to fire at armedAt, no later than the soonest due
//     time (as client-go's delaying queue waits on its soonest entry only).
//     A delayed key costs a small entry, not a timer of its own: an idle
//     session waits for its next look with one.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []key
	queued     map[key]bool
	processing map[key]bool
	dirty      map[key]bool
	backoffs   map[key]*backoff.ExponentialBackOff
	delayed    map[key]*delay
	delays     delayHeap
	// peak is the most keys queued at once since the queue last let go
	// of its room: a queue that drains after a burst (an intake of
	// thousands of tickets) lets go of the room the burst took (see Get).
	peak    int
	timer   *time.Timer // created by the first delay; fires q.fire
	armedAt time.Time   // when timer fires; zero when it is not set
	closed  bool

	initial, max time.Duration
	metrics      *queueMetrics
}

// delay is a pending AddAfter or Retry of one key. Its due time is on the
// monotonic clock, as time.Now gives it.
type delay struct {
	k     key
	due   time.Time
	retry bool
	index int // in queue.delays
}

// delayHeap orders the pending delays by due time (container/heap).
type delayHeap []*delay

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *delayHeap) Push(x any) {
	d := x.(*delay)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *delayHeap) Pop() any {
	old := *h
	n := len(old)
	d := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	d.index = -1
	return d
}

func newQueue(initial, max time.Duration) *queue {
	q := &queue{
		queued:     map[key]bool{},
		processing: map[key]bool{},
		dirty:      map[key]bool{},
		backoffs:   map[key]*backoff.ExponentialBackOff{},
		delayed:    map[key]*delay{},
		initial:    initial,
		max:        max,
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
	q.peak = max(q.peak, len(q.items))
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
	due := time.Now().Add(d)
	if old, ok := q.delayed[k]; ok {
		if !old.due.After(due) {
			return
		}
		old.due, old.retry = due, retry
		heap.Fix(&q.delays, old.index)
	} else {
		dl := &delay{k: k, due: due, retry: retry}
		heap.Push(&q.delays, dl)
		q.delayed[k] = dl
	}
	q.armLocked()
}

// armLocked sets the timer for the soonest delay, unless it is set to fire
// by then already.
func (q *queue) armLocked() {
	if len(q.delays) == 0 {
		return
	}
	due := q.delays[0].due
	if !q.armedAt.IsZero() && !q.armedAt.After(due) {
		return
	}
	wait := time.Until(due)
	if q.timer == nil {
		q.timer = time.AfterFunc(wait, q.fire)
	} else {
		q.timer.Reset(wait)
	}
	q.armedAt = due
}

// fire queues every key whose delay is due and sets the timer for the next.
func (q *queue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armedAt = time.Time{}
	if q.closed {
		return
	}
	now := time.Now()
	for len(q.delays) > 0 && !q.delays[0].due.After(now) {
		dl := heap.Pop(&q.delays).(*delay)
		delete(q.delayed, dl.k)
		q.addLocked(dl.k)
	}
	q.armLocked()
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
	if len(q.items) == 0 && q.peak > shrinkAfter {
		// The slice's array and the map keep the size of the burst.
		q.items, q.queued, q.peak = nil, map[key]bool{}, 0
	}
	q.processing[k] = true
	return k, true
}

// shrinkAfter is the peak of queued keys above which a queue that drains
// lets go of its room: below it, the room is kept for the next keys.
const shrinkAfter = 256

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
	if q.timer != nil {
		q.timer.Stop()
	}
	q.armedAt = time.Time{}
	clear(q.delayed)
	q.delays = nil
	q.cond.Broadcast()
}

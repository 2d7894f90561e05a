package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// Spreading work over replicas.
//
// A replica claims a new ticket, or adopts an orphaned session (its owner's
// store lease ended), only while it holds fewer sessions than its fair share
// and than Config.MaxSessions:
//
//	work      = live sessions + listed intake tickets no session holds yet
//	replicas  = replicas in the registry (this one always counted)
//	even      = ceil(work / replicas)
//	fairShare = even + max(1, even/10)
//
// The slack (a tenth, at least one) lets replicas whose views of the work
// differ by a few milliseconds still cover it all: the shares add up to more
// than the work. With 3 replicas and 30 tickets the share is 11 (37 %); after
// one of the three fails, 16 each for the two survivors (53 %). A replica
// alone has a share above the work and takes everything, up to MaxSessions.
//
// The share is recomputed at every decision from the watch-fed session cache
// and the registry watch, so it follows replicas coming and going and
// sessions ending; a change in the registry also triggers an intake pass, so
// that work skipped under the old share is looked at again at once. A
// replica that joins holds nothing, so it is under its share and takes new
// work first while the others, at their share, leave it.
//
// Work is never starved while the cluster has room: a ticket or orphan
// skipped for the share is taken anyway (up to MaxSessions) when every other
// registered replica already holds its share (as the cache sees it), or
// when it has waited longer than Config.ShareGrace, which covers a replica
// that is registered but not taking work (failing to reach the Partner API,
// draining, or at its own MaxSessions).

// DefaultMaxSessions is the default of Config.MaxSessions.
const DefaultMaxSessions = 5000

// shareRecheck is how soon work left for the share is looked at again while
// this replica's own takes are under way.
const shareRecheck = 100 * time.Millisecond

// fairShare is how many sessions one of replicas replicas should hold when
// the cluster has work sessions to hold.
func fairShare(work, replicas int) int {
	replicas = max(replicas, 1)
	even := (max(work, 0) + replicas - 1) / replicas
	return even + max(1, even/10)
}

// shareView is what a take decision needs to know.
type shareView struct {
	held     int // sessions this replica holds, with takes under way
	work     int
	replicas int
	max      int // Config.MaxSessions
	// othersFull: every other registered replica holds its share already.
	othersFull bool
	// waited: the work item has waited longer than the grace.
	waited bool
}

// mayTake decides whether the replica takes one more session.
func (v shareView) mayTake() bool {
	if v.held >= v.max {
		return false
	}
	return v.held < fairShare(v.work, v.replicas) || v.othersFull || v.waited
}

// spread is the replica's view of the cluster's work.
//
// Locking: mu is taken before Orchestrator.mu (to count the attachments),
// never while holding it.
type spread struct {
	mu sync.Mutex
	// replicas are the registered replicas, from the registry watch.
	replicas map[string]bool
	// work is live sessions plus unclaimed intake tickets, at the last
	// intake pass; the live count now is used when it is larger.
	work int
	// waiting records since when an unclaimed ticket, or an orphan this
	// replica left for the share, has waited; keyed by work-queue key.
	waiting map[key]time.Time
	// taking counts takes under way: reserved, not yet attached or given up.
	taking int
}

func newSpread() *spread {
	return &spread{replicas: map[string]bool{}, waiting: map[key]time.Time{}}
}

// setReplicas records the registry as the watch yields it, and reports
// whether the share's view of the cluster changed: the registered
// replicas, with self counted whether registered or not (as reserve counts
// them).
func (s *spread) setReplicas(names []string, self string) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]bool, len(names))
	for _, n := range names {
		next[n] = true
	}
	changed = !maps.Equal(withSelf(next, self), withSelf(s.replicas, self))
	s.replicas = next
	return changed
}

// withSelf returns the set of replicas with self in it.
func withSelf(replicas map[string]bool, self string) map[string]bool {
	if replicas[self] {
		return replicas
	}
	out := make(map[string]bool, len(replicas)+1)
	for n := range replicas {
		out[n] = true
	}
	out[self] = true
	return out
}

// intakeSeen records the work an intake pass found: the live sessions and
// the listed tickets without one. Tickets no longer unclaimed stop waiting,
// and so do orphans that ended or that a registered replica adopted.
func (s *spread) intakeSeen(live []*session.Record, unclaimed map[string]bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.work = len(live) + len(unclaimed)
	orphans := map[string]bool{}
	for _, r := range live {
		if !s.replicas[r.Owner] {
			orphans[r.ID] = true
		}
	}
	// A new map rather than deletes: a map keeps the size it once had.
	waiting := make(map[key]time.Time, len(unclaimed))
	for k, since := range s.waiting {
		if (k.kind == kindTicket && unclaimed[k.id]) || (k.kind == kindSession && orphans[k.id]) {
			waiting[k] = since
		}
	}
	for id := range unclaimed {
		k := ticketKey(id)
		if _, ok := waiting[k]; !ok {
			waiting[k] = now
		}
	}
	s.waiting = waiting
}

// reserve counts one take under way if the share allows it; the caller
// calls the returned release when the take has attached or failed. When the
// share does not allow it, wait is how long until k's grace ends.
func (o *Orchestrator) reserve(k key) (release func(), wait time.Duration, ok bool) {
	s, now := o.spread, o.cfg.Now()
	live := o.records.count()
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.waiting[k]
	if !ok {
		since = now
		s.waiting[k] = now
	}
	self := o.store.Replica()
	replicas := len(s.replicas)
	if !s.replicas[self] {
		replicas++
	}
	v := shareView{
		held:     o.attachedCount() + s.taking,
		work:     max(s.work, live),
		replicas: replicas,
		max:      o.cfg.MaxSessions,
		waited:   now.Sub(since) >= o.cfg.ShareGrace,
	}
	if v.held < v.max && v.held >= fairShare(v.work, v.replicas) && !v.waited {
		v.othersFull = othersFull(o.records.live(), s.replicas, self, fairShare(v.work, v.replicas))
	}
	if !v.mayTake() {
		wait := max(o.cfg.ShareGrace-now.Sub(since), time.Millisecond)
		if s.taking > 0 {
			// Takes under way count against the share, and some of
			// them may lose their claim to another replica: look again
			// once they are settled rather than after the grace.
			wait = min(wait, shareRecheck)
		}
		return nil, wait, false
	}
	s.taking++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.taking--
			delete(s.waiting, k)
			if len(s.waiting) == 0 {
				// Once every ticket of an intake is taken, let go of
				// the map's room for them all.
				s.waiting = map[key]time.Time{}
			}
			s.mu.Unlock()
		})
	}, 0, true
}

// othersFull reports whether every registered replica other than self owns
// at least share live sessions; false when there is no other.
func othersFull(live []*session.Record, replicas map[string]bool, self string, share int) bool {
	owned := map[string]int{}
	for _, r := range live {
		owned[r.Owner]++
	}
	others := 0
	for name := range replicas {
		if name == self {
			continue
		}
		others++
		if owned[name] < share {
			return false
		}
	}
	return others > 0
}

// attachedCount is the number of sessions this replica holds.
func (o *Orchestrator) attachedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.attached)
}

// shareSeen records what the intake pass found: its live sessions and its
// listed tickets that no live session holds.
func (o *Orchestrator) shareSeen(listed map[string]bool) {
	live := o.records.live()
	for _, r := range live {
		delete(listed, r.TicketID)
	}
	o.spread.intakeSeen(live, listed, o.cfg.Now())
}

// followReplicas keeps the spread's view of the registry current until ctx
// ends, and asks for an intake pass whenever that changes the replicas the
// share counts, so that work left for the share is looked at again when
// replicas come and go. (A replica alone, registered or not yet, counts as
// one: its own registration starts no second pass.)
func (o *Orchestrator) followReplicas(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		for names, werr := range o.store.WatchReplicas(ctx) {
			if werr != nil {
				err = werr
				break
			}
			if o.spread.setReplicas(names, o.store.Replica()) {
				o.Resync()
			}
		}
		if !o.pauseAfter(ctx, "watch of the replica registry broken; watching again", err) {
			return
		}
	}
}

// errAtCapacity is the error of a StartSession on a replica at MaxSessions.
func (o *Orchestrator) errAtCapacity() error {
	return fmt.Errorf("%w: replica %s holds %d sessions (--max-sessions)", ErrFull, o.store.Replica(), o.cfg.MaxSessions)
}

// belowMax reports whether the replica may hold one more session, for
// sessions an engineer starts: they are not subject to the share.
func (o *Orchestrator) belowMax() bool {
	o.spread.mu.Lock()
	defer o.spread.mu.Unlock()
	return o.attachedCount()+o.spread.taking < o.cfg.MaxSessions
}

// orphaned reports whether rec's claims are released (its owner's lease
// ended and nobody adopted it yet).
func (o *Orchestrator) orphaned(ctx context.Context, rec *session.Record) (bool, error) {
	kind, id := store.ClaimTicket, rec.TicketID
	if id == "" {
		kind, id = store.ClaimConnector, rec.ConnectorID
	}
	c, ok, err := o.store.ClaimOf(ctx, kind, id)
	if err != nil {
		return false, err
	}
	return ok && c.SessionID == rec.ID && c.Replica == "", nil
}

// Replicas returns the registered replicas as this replica's watch of the
// registry sees them now, sorted.
func (o *Orchestrator) Replicas() []string {
	o.spread.mu.Lock()
	defer o.spread.mu.Unlock()
	out := make([]string, 0, len(o.spread.replicas))
	for n := range o.spread.replicas {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

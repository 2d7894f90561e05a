package orchestrator

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// records caches the live session records so that reads on the hot paths
// (GetSession, AcquireSession) cost a map lookup instead of a store round
// trip and a decode. A store watch keeps it current with every replica's
// writes, and this replica's own writes go in as they are made, so a caller
// reads its own writes at once; another replica's may show a few
// milliseconds late. Ended records leave the cache (reads of them go to the
// store), which bounds it by the number of live sessions.
//
// Entries are snapshots that nobody modifies: writers clone before putting.
type records struct {
	mu sync.RWMutex
	m  map[string]*session.Record
	// gone remembers the revision at which ended records left, so a late
	// watch event cannot bring one back.
	gone map[string]int64
	// listed is set once the cache holds every live record (after the
	// first listing); lists are served from the store until then.
	listed bool
	// byTicket indexes the cached live records by ticket id. The store
	// allows one live record per ticket.
	byTicket map[string]string
}

func newRecords() *records {
	return &records{m: map[string]*session.Record{}, gone: map[string]int64{}, byTicket: map[string]string{}}
}

func (c *records) get(id string) (*session.Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[id]
	return r, ok
}

// put stores a snapshot of rec unless the cache already holds a newer one.
func (c *records) put(rec *session.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[rec.ID]; ok && old.Revision >= rec.Revision {
		return
	}
	if rev, ok := c.gone[rec.ID]; ok && rev >= rec.Revision {
		return
	}
	if !rec.State.Live() {
		delete(c.m, rec.ID)
		c.gone[rec.ID] = rec.Revision
		if rec.TicketID != "" && c.byTicket[rec.TicketID] == rec.ID {
			delete(c.byTicket, rec.TicketID)
		}
		return
	}
	c.m[rec.ID] = rec.Clone()
	if rec.TicketID != "" {
		c.byTicket[rec.TicketID] = rec.ID
	}
}

// ticketHeld reports whether a cached live record (of any replica, owned or
// orphaned) holds the ticket; known is false until the cache has been
// filled, when only the store can tell. The answer may lag another
// replica's writes by the watch's delay, never this replica's own.
func (c *records) ticketHeld(ticketID string) (held, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, held = c.byTicket[ticketID]
	return held, c.listed
}

// ended reports whether the record of session id left the cache because
// it ended: it can never be live again.
func (c *records) ended(id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.gone[id]
	return ok
}

// live returns the cached live records.
func (c *records) live() []*session.Record {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*session.Record, 0, len(c.m))
	for _, r := range c.m {
		out = append(out, r)
	}
	return out
}

// count returns the number of cached live records.
func (c *records) count() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// reset replaces the whole cache after a (re)listing at a revision, and
// forgets the tombstones older than it.
func (c *records) reset(recs []*session.Record, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listed = true
	c.m = make(map[string]*session.Record, len(recs))
	c.byTicket = make(map[string]string, len(recs))
	for _, r := range recs {
		c.m[r.ID] = r
		if r.TicketID != "" {
			c.byTicket[r.TicketID] = r.ID
		}
	}
	for id, gone := range c.gone {
		if gone <= rev {
			delete(c.gone, id)
		}
	}
}

// followStore fills the cache from the store and keeps it current until ctx
// ends; a broken or compacted watch starts over from a fresh listing.
func (o *Orchestrator) followStore(ctx context.Context) {
	for ctx.Err() == nil {
		recs, rev, err := o.store.ListLive(ctx)
		if err == nil {
			o.records.reset(recs, rev)
			o.notifyReady()
			for ev, werr := range o.store.Watch(ctx, rev+1, store.Filter{}) {
				if werr != nil {
					err = werr
					break
				}
				if ev.Record != nil {
					o.records.put(ev.Record)
					if ev.Record.State == session.StateReady {
						o.notifyReady() // AcquireSession forwarded to another replica waits on it
					}
				}
			}
		}
		if !o.pauseAfter(ctx, "session cache lost its store watch; relisting", err) {
			return
		}
	}
}

// pauseAfter logs why a watch loop must start over and waits a second
// before it does; it reports false when ctx ended instead.
func (o *Orchestrator) pauseAfter(ctx context.Context, msg string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	o.log.Warn(msg, "err", err)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// followReleases queues, for adoption, every session whose claims are
// released while this replica does not hold it: a crashed or paused
// replica's sessions are taken over as soon as its store lease ends,
// without waiting for the next intake pass. A session the cache knows to
// have ended (its final write releases its claims too) is not queued.
func (o *Orchestrator) followReleases(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		for id, werr := range o.store.WatchReleases(ctx) {
			if werr != nil {
				err = werr
				break
			}
			if o.attachment(id) == nil && !o.records.ended(id) {
				o.queue.Add(sessionKey(id))
			}
		}
		if !o.pauseAfter(ctx, "watch of released claims broken; watching again", err) {
			return
		}
	}
}

// followReachability keeps health current with the store's reachability
// until ctx ends: a replica whose lease etcd has not renewed lately reports
// NOT_SERVING before the lease is lost.
func (o *Orchestrator) followReachability(ctx context.Context) {
	for {
		reachable, since, changed := o.store.Reachable()
		o.health.storeReachable(reachable, since)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// followLease keeps the replica acting only while it holds its store lease.
// When the lease is lost (a pause past its TTL, etcd without quorum), the
// replica stops at once: it reports NOT_SERVING and lets go of every session
// (without interrupting them; its claims are gone, and its writes would be
// refused anyway). It then asks for a new lease until etcd grants one, and
// competes for its former sessions like any replica: the next intake pass
// adopts those nobody else took.
func (o *Orchestrator) followLease(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.store.Lost():
		}
		const reason = "store lease lost: this replica holds no session until etcd grants it a new lease"
		o.log.Warn(reason)
		o.health.fence(reason)
		kept := map[string]keptToken{}
		for _, a := range o.attachments() {
			if token, at, unsaved := a.unsavedToken(); unsaved {
				kept[a.id] = keptToken{token, at}
			}
			o.forget(a.id)
		}
		o.mu.Lock()
		o.kept = kept
		o.mu.Unlock()
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(100*time.Millisecond),
			// At most a second apart: once etcd has a quorum again, a
			// replica serves again within about a second.
			backoff.WithMaxInterval(time.Second),
			backoff.WithMaxElapsedTime(0),
		)
		err := backoff.RetryNotify(func() error { return o.store.Regrant(ctx) }, backoff.WithContext(b, ctx),
			func(err error, d time.Duration) { o.log.Warn("store lease not granted yet", "err", err, "retry_in", d) })
		if err != nil {
			return // ctx ended
		}
		o.health.unfence()
		o.queue.Add(intakeKey)
	}
}

// list pages the cached live records that match f, in id order, with the
// store's page tokens (the id of the last record, base64). ok is false
// until the cache has been filled, when the caller reads the store instead.
func (c *records) list(f SessionFilter, page Page) (_ []*session.Record, next string, ok bool, _ error) {
	after := ""
	if page.Token != "" {
		b, err := base64.RawURLEncoding.DecodeString(page.Token)
		if err != nil || len(b) == 0 {
			return nil, "", true, invalid("page_token", "malformed")
		}
		after = string(b)
	}
	size := page.Size
	if size <= 0 {
		size = store.DefaultPageSize
	}
	size = min(size, store.MaxPageSize)
	c.mu.RLock()
	if !c.listed {
		c.mu.RUnlock()
		return nil, "", false, nil
	}
	var match []*session.Record
	for id, r := range c.m {
		if id > after && f.Match(r) {
			match = append(match, r)
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(match, func(a, b *session.Record) int { return strings.Compare(a.ID, b.ID) })
	if len(match) > size {
		match = match[:size]
		next = base64.RawURLEncoding.EncodeToString([]byte(match[size-1].ID))
	}
	return match, next, true, nil
}

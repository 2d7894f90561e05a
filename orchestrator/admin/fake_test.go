package admin

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"sync"
	"time"

	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// fakeCore keeps records in memory with a change log that WatchSessions
// replays and follows, like the store.
type fakeCore struct {
	mu        sync.Mutex
	rev       int64
	compacted int64 // revisions up to this one are gone
	recs      map[string]*session.Record
	log       []orchestrator.Event
	changed   chan struct{} // closed and replaced on every change
	now       time.Time
}

func newFakeCore() *fakeCore {
	return &fakeCore{recs: map[string]*session.Record{}, changed: make(chan struct{}), now: time.Now()}
}

// put writes rec at the next revision, as a transition if state changed.
func (c *fakeCore) put(rec *session.Record) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev++
	rec = rec.Clone()
	rec.Revision = c.rev
	c.recs[rec.ID] = rec
	ev := orchestrator.Event{Revision: c.rev, Session: rec}
	if h := rec.History; len(h) > 0 {
		t := h[len(h)-1]
		ev.Transition = &t
	}
	c.log = append(c.log, ev)
	close(c.changed)
	c.changed = make(chan struct{})
	return c.rev
}

// add creates a session in state st.
func (c *fakeCore) add(id string, st session.State, at time.Time) *session.Record {
	rec := session.New(id, "test", "created", at)
	rec.TicketNumber = "T-" + id
	rec.ConnectorID = "conn-" + id
	rec.Owner = "replica-a"
	if st != session.StatePending {
		rec.State = st
		rec.History = append(rec.History, session.Transition{From: session.StatePending, To: st, Time: at, Actor: "test"})
	}
	c.put(rec)
	return rec
}

func (c *fakeCore) transition(id string, to session.State, actor, reason string) error {
	c.mu.Lock()
	rec := c.recs[id].Clone()
	c.mu.Unlock()
	if err := rec.Transition(to, actor, reason, time.Now()); err != nil {
		return err
	}
	c.put(rec)
	return nil
}

func (c *fakeCore) compact() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compacted = c.rev
}

func (c *fakeCore) revision(context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev, nil
}

func (c *fakeCore) ListSessions(_ context.Context, f orchestrator.SessionFilter, page orchestrator.Page) ([]*session.Record, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, r := range c.recs {
		if f.Match(r) && id > page.Token {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	next := ""
	if len(ids) > page.Size {
		ids = ids[:page.Size]
		next = ids[len(ids)-1]
	}
	out := make([]*session.Record, len(ids))
	for i, id := range ids {
		out[i] = c.recs[id].Clone()
	}
	return out, next, nil
}

func (c *fakeCore) GetSession(_ context.Context, id string) (*session.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recs[id]
	if !ok {
		return nil, fmt.Errorf("%w: session %s", orchestrator.ErrNotFound, id)
	}
	return r.Clone(), nil
}

func (c *fakeCore) WatchSessions(ctx context.Context, from int64, _ orchestrator.SessionFilter) iter.Seq2[orchestrator.Event, error] {
	return func(yield func(orchestrator.Event, error) bool) {
		next := from
		for {
			c.mu.Lock()
			if next <= c.compacted {
				c.mu.Unlock()
				yield(orchestrator.Event{}, fmt.Errorf("%w: from %d", orchestrator.ErrCompacted, next))
				return
			}
			var todo []orchestrator.Event
			for _, ev := range c.log {
				if ev.Revision >= next {
					todo = append(todo, ev)
				}
			}
			wake := c.changed
			c.mu.Unlock()
			for _, ev := range todo {
				if !yield(ev, nil) {
					return
				}
				next = ev.Revision + 1
			}
			select {
			case <-ctx.Done():
				yield(orchestrator.Event{}, ctx.Err())
				return
			case <-wake:
			}
		}
	}
}

func (c *fakeCore) InterruptSession(_ context.Context, id, actor, reason string) (*session.Record, error) {
	c.mu.Lock()
	rec, ok := c.recs[id]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: session %s", orchestrator.ErrNotFound, id)
	}
	if !rec.State.Live() {
		return nil, fmt.Errorf("%w: session %s is %s", orchestrator.ErrNotLive, id, rec.State)
	}
	if err := c.transition(id, session.StateInterrupted, actor, reason); err != nil {
		return nil, err
	}
	return c.GetSession(context.Background(), id)
}

package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// The event stream (GET /api/events) is Server-Sent Events:
//
//	event: snapshot   id: <revision R>   data: {"revision": R, "sessions": [row...]}
//	event: session    id: <revision>     data: {"revision": N, "session": row, "transition": {...}}
//	event: stream-error                   data: {"error": "..."}
//
// A new stream starts with a snapshot of the live sessions and those ended
// within RecentWindow, taken at or after revision R, then carries every
// change after R from the store watch. A row of the snapshot may already be
// newer than R: a client applies a change only if its revision is above the
// row's. A browser's EventSource reconnects by itself with Last-Event-ID,
// the last revision it got; the stream then resumes after it with no
// snapshot, or with a fresh one if the store no longer keeps that revision.

const (
	// writeTimeout bounds each write to an event stream: a client that
	// reads nothing for this long is cut off and reconnects.
	writeTimeout = 10 * time.Second
	// eventBuffer is how many changes wait between the store watch and a
	// slow client; beyond it the watch itself waits (etcd flow control).
	eventBuffer = 256
	// retryMillis is the reconnect delay the stream asks browsers for.
	retryMillis = 1000
)

type snapshotMsg struct {
	Revision int64 `json:"revision"`
	Sessions []row `json:"sessions"`
}

type sessionMsg struct {
	Revision   int64           `json:"revision"`
	Session    row             `json:"session"`
	Transition *transitionView `json:"transition,omitempty"`
}

// liveStates and finalStates select the snapshot's records.
var (
	liveStates  = []session.State{session.StatePending, session.StateStarting, session.StateReady, session.StateRunning, session.StateFinishing}
	finalStates = []session.State{session.StateFinished, session.StateFailed, session.StateInterrupted}
)

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	var from int64 // 0: start with a snapshot
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(last), 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "Last-Event-ID: want a store revision")
			return
		}
		from = n + 1
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	es := &eventStream{w: w, rc: http.NewResponseController(w)}
	if err := es.send("", "", fmt.Sprintf("retry: %d\n\n", retryMillis)); err != nil {
		return
	}
	ctx := r.Context()
	for {
		if from == 0 {
			rev, rows, err := s.snapshot(ctx)
			if err != nil {
				s.streamError(ctx, es, err)
				return
			}
			if err := es.sendJSON("snapshot", rev, snapshotMsg{Revision: rev, Sessions: rows}); err != nil {
				return
			}
			from = rev + 1
		}
		err := s.follow(ctx, es, from)
		if errors.Is(err, orchestrator.ErrCompacted) {
			from = 0 // too old to resume: start over with a snapshot
			continue
		}
		if err != nil && ctx.Err() == nil {
			s.streamError(ctx, es, err)
		}
		return
	}
}

func (s *Server) streamError(ctx context.Context, es *eventStream, err error) {
	if ctx.Err() != nil {
		return
	}
	s.log.WarnContext(ctx, "dashboard event stream ended", "err", err)
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	_ = es.send("stream-error", "", "data: "+string(b)+"\n\n")
}

// snapshot reads the store's revision, then the live sessions and the ones
// that ended within RecentWindow. Live sessions come from the store's live
// index; finding the recently ended ones reads every ended record, a cost
// that grows with the store's history.
func (s *Server) snapshot(ctx context.Context) (int64, []row, error) {
	rev, err := s.opts.Revision(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("store revision: %w", err)
	}
	rows := []row{}
	since := s.opts.Now().Add(-s.opts.RecentWindow)
	for _, states := range [][]session.State{liveStates, finalStates} {
		token := ""
		for {
			recs, next, err := s.opts.Core.ListSessions(ctx, orchestrator.SessionFilter{States: states}, orchestrator.Page{Size: 1000, Token: token})
			if err != nil {
				return 0, nil, fmt.Errorf("list sessions: %w", err)
			}
			for _, rec := range recs {
				if rec.State.Live() || !rec.UpdatedAt.Before(since) {
					rows = append(rows, toRow(rec))
				}
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	return rev, rows, nil
}

// follow streams the changes from revision from on until ctx ends or the
// watch fails. The watch runs in a goroutine of its own, so heartbeats go
// out while no change happens; it is stopped and waited for on return.
func (s *Server) follow(ctx context.Context, es *eventStream, from int64) error {
	wctx, cancel := context.WithCancel(ctx)
	type item struct {
		ev  orchestrator.Event
		err error
	}
	ch := make(chan item, eventBuffer)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		for ev, err := range s.opts.Core.WatchSessions(wctx, from, orchestrator.SessionFilter{}) {
			select {
			case ch <- item{ev, err}:
			case <-wctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer wg.Wait()
	defer cancel()

	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-heartbeat.C:
			if err := es.send("", "", ": ping\n\n"); err != nil {
				return err
			}
		case it, ok := <-ch:
			if !ok {
				return ctx.Err()
			}
			if it.err != nil {
				return it.err
			}
			msg := sessionMsg{Revision: it.ev.Revision, Session: toRow(it.ev.Session)}
			if it.ev.Transition != nil {
				tv := toTransition(*it.ev.Transition)
				msg.Transition = &tv
			}
			if err := es.sendJSON("session", it.ev.Revision, msg); err != nil {
				return err
			}
		}
	}
}

// eventStream writes Server-Sent Events, one flushed write each.
type eventStream struct {
	w  io.Writer
	rc *http.ResponseController
}

func (es *eventStream) sendJSON(event string, id int64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return es.send(event, strconv.FormatInt(id, 10), "data: "+string(b)+"\n\n")
}

func (es *eventStream) send(event, id, body string) error {
	// Without deadline support (ErrNotSupported from a wrapping writer) the
	// stream still works; only a stuck client is then noticed later, by
	// the heartbeat's failed write or the connection's end.
	_ = es.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString(body)
	if _, err := io.WriteString(es.w, b.String()); err != nil {
		return err
	}
	return es.rc.Flush()
}

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// Delays between attempts to reopen a broken watch stream.
const (
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = 2 * time.Second
)

// Event is a change of one session record.
type Event struct {
	// Revision is the store revision of the change. A watcher resumes after
	// it with Watch(ctx, Revision+1, f).
	Revision int64
	// ID is the session id.
	ID string
	// Record is the record as written, with Revision set; nil if the record
	// was deleted.
	Record *session.Record
}

// errStopped ends a watch stream whose consumer stopped iterating.
var errStopped = errors.New("store: watch stopped by consumer")

// Watch yields the changes of the records that match f, in revision order,
// from revision startRev on (0: changes after the current revision). It
// keeps no queue of its own: etcd sends the next changes only as the
// consumer takes them (gRPC flow control), so a slow consumer costs memory
// only in etcd's bounded buffers. Deletions (which the Store never makes)
// are yielded whatever the filter.
//
// A broken connection is reopened from the next revision, with no gap and no
// duplicate. The sequence ends after yielding an error: the cause of ctx
// when ctx ends, a *CompactedError when startRev is older than the store
// keeps, or the error that ended the stream for good (the Store was closed,
// a record could not be decoded). Stopping the iteration ends the watch.
func (s *Store) Watch(ctx context.Context, startRev int64, f Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		// Without a leader, etcd ends the stream rather than leaving it
		// silent; the watch then reopens on a member that has one.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		next, delay := startRev, watchRetryMin
		for {
			progressed, err := s.watch(wctx, &next, f, yield)
			switch {
			case errors.Is(err, errStopped):
				return
			case wctx.Err() != nil:
				yield(Event{}, context.Cause(wctx))
				return
			case !retryable(err):
				yield(Event{}, err)
				return
			}
			if progressed {
				delay = watchRetryMin
			}
			s.log.Warn("store watch broken, reopening", "error", err, "next_revision", next, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-wctx.Done():
				t.Stop()
				yield(Event{}, context.Cause(wctx))
				return
			case <-t.C:
			}
			delay = min(2*delay, watchRetryMax)
		}
	}
}

// watch runs one watch stream from revision *next, advancing *next past
// every event received. It always returns an error: errStopped if yield
// asked to stop. progressed reports whether any event arrived.
func (s *Store) watch(ctx context.Context, next *int64, f Filter, yield func(Event, error) bool) (progressed bool, _ error) {
	// The raw stream rather than clientv3.Watcher, which queues responses
	// without bound when the consumer is slower than etcd.
	wc := s.watchIn
	if wc == nil {
		wc = pb.NewWatchClient(s.client.ActiveConnection())
	}
	stream, err := wc.Watch(ctx,
		grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return false, err
	}
	dir := s.sessionKey("")
	err = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
		CreateRequest: &pb.WatchCreateRequest{
			Key:           []byte(dir),
			RangeEnd:      []byte(clientv3.GetPrefixRangeEnd(dir)),
			StartRevision: *next,
		},
	}})
	if err != nil {
		return false, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		switch {
		case resp.CompactRevision != 0:
			return progressed, &CompactedError{Requested: *next, Oldest: resp.CompactRevision}
		case resp.Canceled:
			return progressed, fmt.Errorf("store: watch canceled by etcd: %s", resp.CancelReason)
		case resp.Created:
			if *next == 0 {
				*next = resp.Header.Revision + 1
			}
			continue
		}
		for _, ev := range resp.Events {
			*next, progressed = ev.Kv.ModRevision+1, true
			e := Event{Revision: ev.Kv.ModRevision, ID: string(ev.Kv.Key[len(dir):])}
			if ev.Type == mvccpb.PUT {
				rec, err := decodeRecord(ev.Kv)
				if err != nil {
					return progressed, err
				}
				if !f.Match(rec) {
					continue
				}
				e.Record = rec
			}
			if !yield(e, nil) {
				return progressed, errStopped
			}
		}
	}
}

// retryable reports whether a broken watch stream may be reopened.
func retryable(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable
}

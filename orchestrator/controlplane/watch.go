package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
)

// slowWatcherGrace is how long a watcher's full buffer may stay full before
// the watcher is ended.
const slowWatcherGrace = 2 * time.Second

// WatchSessions implements OrchestratorService. Each watcher reads its own
// store watch through a bounded buffer drained by this handler's send loop; a
// watcher whose buffer stays full is ended with RESOURCE_EXHAUSTED naming the
// revision to resume from. A slow watcher never holds back another.
func (s *Service) WatchSessions(req *orchestratorv1.WatchSessionsRequest, stream grpc.ServerStreamingServer[orchestratorv1.WatchSessionsResponse]) error {
	if req.GetStartRevision() < 0 {
		return fieldError("start_revision", "must not be negative, got %d", req.GetStartRevision())
	}
	f, err := filterFromProto(nil, req.GetSessionId(), req.GetTicketId(), "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stopDrain := context.AfterFunc(s.drain, cancel)
	defer stopDrain()

	events := make(chan orchestrator.Event, s.opts.WatchBuffer)
	var (
		wg     sync.WaitGroup
		srcErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(events)
		var grace *time.Timer
		defer func() {
			if grace != nil {
				grace.Stop()
			}
		}()
		for ev, err := range s.core.WatchSessions(ctx, req.GetStartRevision(), f) {
			if err != nil {
				srcErr = err
				return
			}
			select {
			case events <- ev:
				continue
			default:
			}
			if grace == nil {
				grace = time.NewTimer(slowWatcherGrace)
			} else {
				grace.Reset(slowWatcherGrace)
			}
			select {
			case events <- ev:
				grace.Stop()
			case <-grace.C:
				srcErr = orchestrator.ErrTooSlow
				if s.opts.OnSlowWatcher != nil {
					s.opts.OnSlowWatcher()
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	last := req.GetStartRevision() - 1
	var sendErr error
	for ev := range events {
		resp := &orchestratorv1.WatchSessionsResponse{
			Revision:   ev.Revision,
			Session:    sessionToProto(ev.Session),
			Transition: transitionToProto(ev.Transition),
		}
		if sendErr = stream.Send(resp); sendErr != nil {
			cancel()
			break
		}
		last = ev.Revision
	}
	cancel()
	for range events {
		// Drain so the producer can finish.
	}
	wg.Wait()

	switch {
	case stream.Context().Err() != nil:
		// The watcher left or its deadline passed.
		return toStatus(stream.Context().Err())
	case sendErr != nil:
		return sendErr
	case errors.Is(srcErr, orchestrator.ErrTooSlow):
		resume := last + 1
		if last < 0 {
			resume = req.GetStartRevision()
		}
		return status.Errorf(codes.ResourceExhausted, "%v: resume with start_revision=%d", srcErr, resume)
	case s.drain.Err() != nil && stream.Context().Err() == nil:
		return status.Errorf(codes.Unavailable, "%v: resume with start_revision=%d", errDraining, last+1)
	case srcErr != nil && stream.Context().Err() == nil:
		return toStatus(fmt.Errorf("watch: %w", srcErr))
	}
	return nil
}

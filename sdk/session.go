package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// Session is a leased orchestrator session. It renews its lease in the
// background until Finish or Release, and ends itself when the lease is lost
// or the session is interrupted: Lost is closed then, and every later call
// returns the reason (an *InterruptedError, or an error matching
// ErrLeaseLost or ErrSessionEnded). It is safe for concurrent use.
//
// The runner never sees openOBD tokens: the orchestrator holds them and
// relays the runner's traffic; the lease id is all the runner carries.
type Session struct {
	c       *Client
	info    *orchestratorv1.Session
	leaseID string
	opts    AcquireOptions

	// ctx lives until the session ends for this runner; the renewer and the
	// channels' streams run under it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	lost   chan struct{}
	// wg counts the renewer and the channels' receivers.
	wg sync.WaitGroup

	mu  sync.Mutex
	err error // why the session cannot be used any more; nil while it can
	// finishing is set while FinishSession is in flight: the orchestrator
	// then ends the session's streams, which is not a loss.
	finishing bool
	expire    time.Time // local time the lease ends unless renewed
}

func newSession(c *Client, resp *orchestratorv1.AcquireSessionResponse, opts AcquireOptions, parent context.Context) *Session {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	s := &Session{
		c: c, info: resp.GetSession(), leaseID: resp.GetLeaseId(), opts: opts,
		ctx: ctx, cancel: cancel, lost: make(chan struct{}),
		expire: time.Now().Add(opts.LeaseTTL),
	}
	s.wg.Add(1)
	go s.renew()
	return s
}

// ID returns the orchestrator's session id.
func (s *Session) ID() string { return s.info.GetId() }

// Info returns the session record as it was when acquired: ticket,
// connector, VIN, buses.
func (s *Session) Info() *orchestratorv1.Session { return s.info }

// Lost is closed when the runner lost the session: the lease could not be
// renewed before it expired, or the session was interrupted or ended. Err
// says why. Finish and Release do not close it.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Err returns why the session can no longer be used (lost, finished or
// released), or nil while it can.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail ends the session for this runner because it was lost, and returns
// the session's error: cause, or an earlier one (only the first is kept). A
// session that ends while the runner finishes it was not lost: its error is
// ErrReleased. fail does not wait for the session's goroutines, so the
// renewer and the receivers may call it.
func (s *Session) fail(cause error) error {
	s.mu.Lock()
	if s.finishing && errors.Is(cause, ErrSessionEnded) {
		cause = ErrReleased
	}
	first := s.err == nil
	if first {
		s.err = cause
	}
	err := s.err
	s.mu.Unlock()
	if first && cause != ErrReleased {
		close(s.lost)
	}
	s.cancel(err)
	return err
}

// stop ends the session for this runner at its own request (Finish,
// Release) and waits for the renewer and the channels' receivers.
func (s *Session) stop() {
	s.mu.Lock()
	if s.err == nil {
		s.err = ErrReleased
	}
	s.mu.Unlock()
	s.cancel(ErrReleased)
	s.wg.Wait()
}

// renew keeps the lease alive. A refusal that says the session is gone
// ends the session at once; other failures (the orchestrator restarting, the
// network) are retried every second until the lease would have expired.
func (s *Session) renew() {
	defer s.wg.Done()
	t := time.NewTimer(s.opts.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		err := s.renewOnce(s.ctx, s.opts.LeaseTTL)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			s.mu.Lock()
			s.expire = sent.Add(s.opts.LeaseTTL)
			s.mu.Unlock()
			t.Reset(s.opts.RenewEvery)
			continue
		}
		if serr, gone := sessionErr(s.ID(), err); gone {
			_ = s.fail(serr)
			return
		}
		s.mu.Lock()
		expired := time.Now().After(s.expire)
		s.mu.Unlock()
		if expired {
			_ = s.fail(fmt.Errorf("%w: not renewed before it expired: %v", ErrLeaseLost, err))
			return
		}
		t.Reset(min(time.Second, s.opts.RenewEvery))
	}
}

// renewOnce renews the lease for ttl, bounded by the renew period.
func (s *Session) renewOnce(ctx context.Context, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.opts.RenewEvery, 5*time.Second))
	defer cancel()
	_, err := s.c.api.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{
		Runner: s.c.runner, RenewLeaseId: s.leaseID, LeaseTtl: durationpb.New(ttl),
	})
	return err
}

// Result is what a runner reports when it finishes a session.
type Result struct {
	// Codes holds at least one result code; ResultSuccess for a good run.
	Codes []ResultCode
	// Feedback is shown to the customer.
	Feedback UserFeedback
	// Description is free text, up to 1024 characters.
	Description string
}

// ResultCode is the outcome of the diagnostic service (openOBD's Result).
type ResultCode = orchestratorv1.ResultCode

// The result codes a runner reports most.
const (
	ResultSuccess              = orchestratorv1.ResultCode_RESULT_CODE_SUCCESS
	ResultInvalidPreconditions = orchestratorv1.ResultCode_RESULT_CODE_INVALID_PRECONDITIONS
	ResultNotCompatible        = orchestratorv1.ResultCode_RESULT_CODE_FAILURE_NOT_COMPATIBLE
	ResultCommunicationError   = orchestratorv1.ResultCode_RESULT_CODE_FAILURE_COMMUNICATION_ERROR
	ResultRuntimeError         = orchestratorv1.ResultCode_RESULT_CODE_FAILURE_RUNTIME_ERROR
	ResultAuthenticationError  = orchestratorv1.ResultCode_RESULT_CODE_FAILURE_AUTHENTICATION_ERROR
	ResultFailure              = orchestratorv1.ResultCode_RESULT_CODE_FAILURE
)

// UserFeedback is what the customer is shown when the session ends.
type UserFeedback = orchestratorv1.UserFeedback

// The feedback values.
const (
	FeedbackNone                = orchestratorv1.UserFeedback_USER_FEEDBACK_UNSPECIFIED
	FeedbackSuccess             = orchestratorv1.UserFeedback_USER_FEEDBACK_SUCCESS
	FeedbackFailure             = orchestratorv1.UserFeedback_USER_FEEDBACK_FAILURE
	FeedbackAssistanceRequested = orchestratorv1.UserFeedback_USER_FEEDBACK_ASSISTANCE_REQUESTED
)

// Finish reports the result, which ends the openOBD session and marks the
// ticket, and releases the session: its channels close and the lease is no
// longer renewed. It returns the finished session record. When the session
// was lost before, Finish returns why and reports nothing.
func (s *Session) Finish(ctx context.Context, r Result) (*orchestratorv1.Session, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if len(r.Codes) == 0 {
		return nil, errors.New("sdk: Finish needs at least one result code (Result.Codes)")
	}
	s.mu.Lock()
	s.finishing = true
	s.mu.Unlock()
	resp, err := s.c.api.FinishSession(ctx, &orchestratorv1.FinishSessionRequest{
		SessionId: s.ID(), LeaseId: s.leaseID,
		Result: &orchestratorv1.FinishResult{Codes: r.Codes, UserFeedback: r.Feedback, Description: r.Description},
	})
	s.mu.Lock()
	s.finishing = false
	s.mu.Unlock()
	if err != nil {
		if serr, gone := sessionErr(s.ID(), err); gone {
			return nil, s.fail(serr)
		}
		return nil, fmt.Errorf("sdk: finish: %w", err)
	}
	s.stop()
	return resp.GetSession(), nil
}

// minLeaseTTL is the shortest lease the orchestrator grants.
const minLeaseTTL = 5 * time.Second

// Release gives the session back without finishing it: the channels close,
// renewal stops, and the lease is shortened to the orchestrator's minimum
// (5 s), after which the session is READY for another runner. The control
// plane has no call that ends a lease at once. Release after a loss, Finish
// or an earlier Release does nothing and returns nil.
func (s *Session) Release(ctx context.Context) error {
	if s.Err() != nil {
		s.stop()
		return nil
	}
	s.stop()
	err := s.renewOnce(ctx, minLeaseTTL)
	if _, gone := sessionErr(s.ID(), err); gone {
		return nil // nothing left to give back
	}
	if err != nil {
		return fmt.Errorf("sdk: release: %w", err)
	}
	return nil
}

package fake

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// sessionService implements openOBD.v1.session.
type sessionService struct {
	openobdv1.UnsafeSessionServer
	s *Server
}

var _ openobdv1.SessionServer = (*sessionService)(nil)

func (ss *sessionService) Authenticate(ctx context.Context, _ *openobdv1.EmptyMessage) (*openobdv1.SessionToken, error) {
	s := ss.s
	if err := s.enter(ctx, openobdv1.Session_Authenticate_FullMethodName); err != nil {
		return nil, err
	}
	tok, ok := bearer(ctx)
	if !ok {
		return nil, errMissingToken
	}
	s.mu.Lock()
	now := s.opts.Now()
	sess := s.authTokens[tok]
	if sess == nil || s.forgotten(sess, now) {
		e := s.sessionTokens[tok]
		s.mu.Unlock()
		if e != nil && e.sess.state == StateActive {
			return nil, errAlreadyAuthenticated
		}
		return nil, errInvalidToken
	}
	switch sess.state {
	case StateAvailable:
	case StateActive:
		s.mu.Unlock()
		return nil, errAlreadyAuthenticated
	default:
		s.mu.Unlock()
		return nil, errNotActive(sess.state)
	}
	sess.state = StateActive
	token := s.issueTokenLocked(sess, now)
	v := s.viewLocked(sess)
	s.mu.Unlock()
	s.changed(v)
	return &openobdv1.SessionToken{Value: token}, nil
}

func (ss *sessionService) OpenSessionTokenStream(_ *openobdv1.EmptyMessage, stream grpc.ServerStreamingServer[openobdv1.SessionToken]) error {
	s := ss.s
	sess, ctx, done, err := s.openStream(stream.Context(), openobdv1.Session_OpenSessionTokenStream_FullMethodName)
	if err != nil {
		return err
	}
	defer done()
	return every(ctx, s.opts.TokenRotation, false, func() error {
		s.mu.Lock()
		tok := s.issueTokenLocked(sess, s.opts.Now())
		s.mu.Unlock()
		return stream.Send(&openobdv1.SessionToken{Value: tok})
	})
}

func (ss *sessionService) Finish(ctx context.Context, req *openobdv1.ServiceResult) (*openobdv1.EmptyMessage, error) {
	s := ss.s
	if err := s.enter(ctx, openobdv1.Session_Finish_FullMethodName); err != nil {
		return nil, err
	}
	sess, err := s.sessionAuth(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetResult()) == 0 {
		return nil, errEmptyResult
	}
	s.mu.Lock()
	if sess.state != StateActive {
		s.mu.Unlock()
		return nil, errNotActive(sess.state)
	}
	reason := req.GetResult()[0].String()
	if d := req.GetDescription(); d != "" {
		reason += ": " + d
	}
	s.endLocked(sess, StateFinished, reason)
	v := s.viewLocked(sess)
	s.mu.Unlock()
	s.changed(v)
	return &openobdv1.EmptyMessage{}, nil
}

// every calls send each period (and once at once if now is set) until ctx
// ends, and returns the status that ended the stream.
func every(ctx context.Context, period time.Duration, now bool, send func() error) error {
	if now {
		if err := send(); err != nil {
			return err
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return streamErr(ctx)
		case <-t.C:
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// streamErr returns the status for a stream context that ended: the cause
// when it is a status (session ended, streams dropped, shutdown), otherwise
// the status of the context error.
func streamErr(ctx context.Context) error {
	if st, ok := status.FromError(context.Cause(ctx)); ok && st != nil {
		return st.Err()
	}
	return status.FromContextError(ctx.Err()).Err()
}

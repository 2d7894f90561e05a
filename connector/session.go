package connector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/obdorch/obdorch/connector/internal/pushstream"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// SessionOption configures Attach and Resume.
type SessionOption func(*sessionOptions)

type sessionOptions struct {
	onToken func(token string, received time.Time)
	onEnd   func(err error)
}

// OnToken registers fn to receive every new session token: the one from
// authenticate and each one from the token stream. Persist the newest one to
// resume the session after a restart (Client.Resume). The first call
// happens inside Attach, later ones on the session's own goroutine; fn must
// return quickly and must not call Session.Close.
func OnToken(fn func(token string, received time.Time)) SessionOption {
	return func(o *sessionOptions) { o.onToken = fn }
}

// OnEnd registers fn to learn, once, that the session ended on its own:
// finished, interrupted or failed on the server (err says which, as Err
// does). It is not called when Close ends the session. fn runs on the
// goroutine that noticed the end; it must return quickly and must not call
// the session's methods. It spares the caller a goroutine per session
// waiting on Done.
func OnEnd(fn func(err error)) SessionOption {
	return func(o *sessionOptions) { o.onEnd = fn }
}

// Session is an authenticated openOBD session. It keeps the session-token
// stream open (reopening it with backoff when it breaks) and sends the
// newest token on every call. The token stream is read by its connection's
// goroutine, shared with the other sessions on the endpoint: an idle
// session has no goroutine of its own; one runs only while it reopens a
// broken token stream.
//
// A session ends when it is finished, interrupted or failed on the server,
// or when it is closed; Done is closed then and Err says why. Close must be
// called in every case to release its goroutines.
type Session struct {
	client  *Client
	info    SessionInfo // without the authentication token
	onToken func(string, time.Time)
	onEnd   func(error)

	// cc serves the session's calls (see calls); an idle session keeps
	// no client of each service.
	cc *grpc.ClientConn
	// push carries the token stream; feed receives it.
	push *pushstream.Pool
	feed tokenFeed

	token atomic.Pointer[string]
	// finishing is set while Finish's call runs: the server ends the token
	// stream when it finishes the session, which is no reason to warn.
	finishing atomic.Bool

	ctx    context.Context // ends when the session ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	done    chan struct{}
	endOnce sync.Once
	err     error // why the session ended; written before done is closed

	mu        sync.Mutex
	channels  map[*IsotpChannel]struct{}  // nil until the first channel
	tokens    *pushstream.Stream          // the open token stream, if any
	reopen    *backoff.ExponentialBackOff // made at the token stream's first break
	closeOnce sync.Once
}

// The session's services, on its connection.
func (s *Session) session() openobdv1.SessionClient { return openobdv1.NewSessionClient(s.cc) }
func (s *Session) config() openobdv1.ConfigClient   { return openobdv1.NewConfigClient(s.cc) }
func (s *Session) can() openobdv1.CanClient         { return openobdv1.NewCanClient(s.cc) }
func (s *Session) monitor() openobdv1.ConnectionMonitorClient {
	return openobdv1.NewConnectionMonitorClient(s.cc)
}

// Attach claims a started session: it calls authenticate with the
// session's one-time token on info.GRPCEndpoint, then keeps the session
// token fresh until the session ends.
func (c *Client) Attach(ctx context.Context, info SessionInfo, opts ...SessionOption) (*Session, error) {
	const op = "authenticate"
	s, err := c.newSession(ctx, info, opts)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(withBearer(ctx, info.AuthenticationToken), c.cfg.CallTimeout)
	tok, err := s.session().Authenticate(cctx, &openobdv1.EmptyMessage{})
	cancel()
	if err != nil {
		s.cancel()
		return nil, classify(ctx, op, err, info.AuthenticationToken, c.cfg.ClientSecret)
	}
	if tok.GetValue() == "" {
		s.cancel()
		return nil, &Error{Kind: KindRetryable, Op: op, Message: "empty session token"}
	}
	s.setToken(tok.GetValue())
	if err := c.start(s); err != nil {
		return nil, err
	}
	s.logger().Info("session attached")
	return s, nil
}

// Resume re-attaches to an active session with a stored session token that
// is still valid (tokens live 5 minutes), without calling authenticate: it
// checks that the session is active and that the token is accepted, then
// reopens the token stream. OnToken is not called for the stored token.
func (c *Client) Resume(ctx context.Context, info SessionInfo, token string, opts ...SessionOption) (*Session, error) {
	const op = "resume"
	if token == "" {
		return nil, &Error{Kind: KindTerminal, Op: op, Message: "no session token"}
	}
	current, err := c.GetSession(ctx, info.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case current.Ended():
		return nil, &Error{Kind: KindInterrupted, Op: op, Message: "session state is " + current.State, State: current.State}
	case current.State != StateActive:
		return nil, &Error{Kind: KindTerminal, Op: op, Message: "session state is " + current.State + ", not active"}
	}
	if info.GRPCEndpoint == "" {
		info.GRPCEndpoint = current.GRPCEndpoint
	}
	s, err := c.newSession(ctx, info, opts)
	if err != nil {
		return nil, err
	}
	s.token.Store(&token)
	// A cheap session call tells whether the token is still accepted.
	if _, err := s.ConnectorInformation(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	if err := c.start(s); err != nil {
		return nil, err
	}
	s.logger().Info("session resumed")
	return s, nil
}

// newSession prepares a session whose lifetime context keeps the trace of
// ctx, which the session's streams continue, and nothing else of it: not
// its cancellation, and not its other values, which an idle session would
// hold for as long as it lives.
func (c *Client) newSession(ctx context.Context, info SessionInfo, opts []SessionOption) (*Session, error) {
	cc, push, err := c.endpoint(info.GRPCEndpoint)
	if err != nil {
		return nil, err
	}
	var o sessionOptions
	for _, opt := range opts {
		opt(&o)
	}
	info.AuthenticationToken = ""
	life := context.Background()
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		life = trace.ContextWithSpanContext(life, sc)
	}
	ctx, cancel := context.WithCancel(life)
	s := &Session{
		client:  c,
		info:    info,
		onToken: o.onToken,
		onEnd:   o.onEnd,
		cc:      cc,
		push:    push,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	s.feed.s = s
	return s, nil
}

// start registers s with the client and starts its token stream.
func (c *Client) start(s *Session) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.cancel()
		return ErrClosed
	}
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	if err := s.openTokenStream(); err != nil {
		s.tokenStreamBroken(err)
	}
	return nil
}

// logger returns the client's logger with the session's id. It is built
// when something is logged (rarely) rather than kept: an idle session would
// hold a copy of the handler's preformatted attributes for nothing.
func (s *Session) logger() *slog.Logger {
	return s.client.log.With(slog.String("session_id", s.info.ID))
}

// ID returns the openOBD session id.
func (s *Session) ID() string { return s.info.ID }

// Info returns the session as it was attached (without its authentication
// token; the state is the one at attach time).
func (s *Session) Info() SessionInfo { return s.info }

// Token returns the newest session token.
func (s *Session) Token() string { return *s.token.Load() }

// Done is closed when the session has ended or was closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (an *Error of KindInterrupted when the
// server ended it, ErrClosed after Close), or nil while it lives.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Session) setToken(token string) {
	s.token.Store(&token)
	if s.onToken != nil {
		s.onToken(token, s.client.cfg.Now())
	}
}

// outgoing returns ctx carrying the newest session token.
func (s *Session) outgoing(ctx context.Context) context.Context {
	return withBearer(ctx, s.Token())
}

// secrets returns what must never appear in an error text.
func (s *Session) secrets() []string {
	return []string{s.Token(), s.client.cfg.ClientSecret}
}

// end records why the session ended, stops its streams and closes its
// channels. Only the first call counts.
func (s *Session) end(cause error) {
	s.endOnce.Do(func() {
		s.err = cause
		close(s.done)
		// Cancelled under mu, so that a token stream's end either sees the
		// session over or has registered its reopening goroutine.
		s.mu.Lock()
		s.cancel()
		tokens := s.tokens
		s.tokens = nil
		channels := make([]*IsotpChannel, 0, len(s.channels))
		for ch := range s.channels {
			channels = append(channels, ch)
		}
		s.mu.Unlock()
		if tokens != nil {
			tokens.Close()
		}
		for _, ch := range channels {
			ch.closeWith(cause)
		}
		if !errors.Is(cause, ErrClosed) {
			s.logger().Info("session ended", slog.String("reason", cause.Error()))
			if s.onEnd != nil {
				s.onEnd(cause)
			}
		}
	})
}

// Close stops the session's goroutines and streams and closes its
// channels. It does not finish or interrupt the session on the server: call
// Finish (or Client.InterruptSession) first for that.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.end(ErrClosed)
		s.mu.Lock()
		channels := make([]*IsotpChannel, 0, len(s.channels))
		for ch := range s.channels {
			channels = append(channels, ch)
		}
		s.mu.Unlock()
		for _, ch := range channels {
			ch.Close()
		}
		s.wg.Wait()
		s.client.mu.Lock()
		delete(s.client.sessions, s)
		s.client.mu.Unlock()
	})
	return nil
}

// call runs a unary session call with the newest token and a deadline. A
// failure from openOBD is checked with getSession (confirmEnd); a session
// that is over ends.
func (s *Session) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if err := s.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(s.outgoing(ctx), s.client.cfg.CallTimeout)
	defer cancel()
	if err := fn(cctx); err != nil {
		err = classify(ctx, op, err, s.secrets()...)
		if _, fromOpenOBD := errors.AsType[*Error](err); fromOpenOBD && ctx.Err() == nil {
			err = s.confirmEnd(ctx, op, err)
		}
		if KindOf(err) == KindInterrupted {
			s.end(err)
		}
		return err
	}
	return nil
}

// Finish ends the session gracefully with result (which must hold at least
// one Result). The session is over afterwards; Close it.
func (s *Session) Finish(ctx context.Context, result ServiceResult) error {
	s.finishing.Store(true)
	err := s.call(ctx, "finish", func(ctx context.Context) error {
		_, err := s.session().Finish(ctx, result.wire())
		return err
	})
	if err != nil {
		s.finishing.Store(false)
		return err
	}
	s.end(&Error{Kind: KindInterrupted, Op: "finish", Message: "session finished", State: StateFinished})
	return nil
}

// ConfigureBus replaces the session's bus configuration with buses (up to
// four; two buses may not share pins).
func (s *Session) ConfigureBus(ctx context.Context, buses ...Bus) error {
	return s.call(ctx, "configureBus", func(ctx context.Context) error {
		stream, err := s.config().ConfigureBus(ctx)
		if err != nil {
			return err
		}
		for _, b := range buses {
			if err := stream.Send(b.wire()); err != nil {
				if err == io.EOF { // the server ended the stream; CloseAndRecv says why
					break
				}
				return err
			}
		}
		_, err = stream.CloseAndRecv()
		return err
	})
}

// ConnectorInformation returns the connector's current link state.
func (s *Session) ConnectorInformation(ctx context.Context) (*openobdv1.ConnectorInformation, error) {
	var info *openobdv1.ConnectorInformation
	err := s.call(ctx, "getConnectorInformation", func(ctx context.Context) error {
		var err error
		info, err = s.monitor().GetConnectorInformation(ctx, &openobdv1.EmptyMessage{})
		return err
	})
	return info, err
}

// WatchConnectorInformation calls fn with every link-state update (openOBD
// sends one per second) until ctx ends, fn returns an error, the stream
// ends or the session ends, and returns why.
func (s *Session) WatchConnectorInformation(ctx context.Context, fn func(*openobdv1.ConnectorInformation) error) error {
	const op = "openConnectorInformationStream"
	if err := s.Err(); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	stream, err := s.monitor().OpenConnectorInformationStream(s.outgoing(sctx), &openobdv1.EmptyMessage{})
	for err == nil {
		var info *openobdv1.ConnectorInformation
		if info, err = stream.Recv(); err == nil {
			if ferr := fn(info); ferr != nil {
				return ferr
			}
		}
	}
	if serr := s.Err(); serr != nil {
		return serr
	}
	return s.streamEnded(ctx, op, err)
}

// tokenFeed receives the session's token stream on its connection's
// reader goroutine.
type tokenFeed struct{ s *Session }

// Message stores a delivered token and resets the reopening backoff.
func (f *tokenFeed) Message(msg []byte) {
	s := f.s
	var tok openobdv1.SessionToken
	if err := proto.Unmarshal(msg, &tok); err != nil {
		s.logger().Warn("session token stream sent a malformed message", slog.String("error", err.Error()))
		return
	}
	if tok.GetValue() == "" {
		return
	}
	s.setToken(tok.GetValue())
	s.mu.Lock()
	if s.reopen != nil {
		s.reopen.Reset()
	}
	s.mu.Unlock()
	if s.client.log.Enabled(s.ctx, slog.LevelDebug) {
		s.logger().Debug("session token received")
	}
}

// End hands a broken token stream to a goroutine that reopens it.
func (f *tokenFeed) End(err error) { f.s.tokenStreamBroken(err) }

// openTokenStream opens openSessionTokenStream for the session's life,
// with the newest token.
func (s *Session) openTokenStream() error {
	st, err := s.push.Open(s.ctx, openobdv1.Session_OpenSessionTokenStream_FullMethodName,
		[]hpack.HeaderField{{Name: "authorization", Value: "Bearer " + s.Token(), Sensitive: true}}, nil, &s.feed)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.ctx.Err() != nil { // the session ended meanwhile
		s.mu.Unlock()
		st.Close()
		return nil
	}
	s.tokens = st
	s.mu.Unlock()
	return nil
}

// tokenStreamBroken starts the goroutine that reopens the token stream,
// unless the session is over.
func (s *Session) tokenStreamBroken(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	s.tokens = nil
	s.wg.Add(1)
	go s.reopenTokenStream(err)
}

// reopenTokenStream reopens a broken token stream with jittered
// exponential backoff while the session lives; err is why it broke (or
// failed to open). It ends the session when the server says the session is
// over. It returns once a stream is open again: the stream's own end
// starts another one.
func (s *Session) reopenTokenStream(err error) {
	defer s.wg.Done()
	const op = "openSessionTokenStream"
	for {
		if s.ctx.Err() != nil {
			return
		}
		if err = s.streamEnded(s.ctx, op, err); KindOf(err) != KindRetryable {
			if s.ctx.Err() == nil {
				s.end(err)
			}
			return
		}
		wait := s.nextReopen()
		level, msg := slog.LevelWarn, "session token stream broken, reopening"
		if s.finishing.Load() {
			level, msg = slog.LevelDebug, "session token stream ended while the session finishes"
		}
		s.logger().Log(s.ctx, level, msg, slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err = s.openTokenStream(); err == nil {
			return
		}
	}
}

// nextReopen is the wait before the next attempt to reopen the token
// stream.
func (s *Session) nextReopen() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reopen == nil {
		cfg := s.client.cfg
		s.reopen = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(cfg.ReconnectInitial),
			backoff.WithMaxInterval(cfg.ReconnectMax),
			backoff.WithMaxElapsedTime(0), // retry while the session lives
		)
	}
	return s.reopen.NextBackOff()
}

// streamEnded classifies the end of one of the session's streams. Any end
// that is not ours (ctx still live) is checked with getSession, whatever
// its status code or text: if the session is over, the error is
// KindInterrupted with the state openOBD reports, and the session ends.
func (s *Session) streamEnded(ctx context.Context, op string, err error) error {
	var e error
	if err == io.EOF {
		e = &Error{Kind: KindRetryable, Op: op, Message: "stream ended by the server"}
	} else {
		e = classify(ctx, op, err, s.secrets()...)
	}
	if ctx.Err() == nil && !isContextError(e) {
		e = s.confirmEnd(ctx, op, e)
	}
	if KindOf(e) == KindInterrupted {
		s.end(e)
	}
	return e
}

// confirmEnd asks getSession whether the session is still live after a
// call or stream of it failed with e. It returns a KindInterrupted error
// with the session's final state (interrupted, finished or failed) when
// openOBD says it is over, or when openOBD no longer knows it; e otherwise,
// also when getSession itself fails (the next failure asks again).
func (s *Session) confirmEnd(ctx context.Context, op string, e error) error {
	if KindOf(e) == KindInterrupted {
		return e
	}
	gctx, cancel := context.WithTimeout(ctx, s.client.cfg.CallTimeout)
	info, err := s.client.GetSession(gctx, s.info.ID)
	cancel()
	switch {
	case err == nil && info.Ended():
		return &Error{Kind: KindInterrupted, Op: op, Message: "session state is " + info.State, State: info.State}
	case KindOf(err) == KindNotFound:
		return &Error{Kind: KindInterrupted, Op: op, Message: "session no longer known to openOBD"}
	case err != nil:
		s.logger().Debug("getSession after a failed session call failed too",
			slog.String("op", op), slog.String("error", err.Error()))
	}
	return e
}

package connector

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/obdorch/obdorch/connector/uds"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// Flow-control windows of the openOBD connections: a stream's is gRPC's
// default initial window, far above the largest ISO-TP message (4095 bytes,
// 8 KiB as hex); a connection's lets many channels' messages be in flight.
const (
	staticStreamWindow = 64 << 10
	staticConnWindow   = 1 << 20
)

// isotpStream is the part of the openIsotpStream client that a channel uses.
type isotpStream = grpc.BidiStreamingClient[openobdv1.IsotpMessage, openobdv1.IsotpMessage]

// IsotpChannel is one ISO-TP channel (a request and a response CAN id on a
// configured bus) over its own openIsotpStream. It sends UDS requests and
// pairs them with their responses, one request at a time; it is safe for
// concurrent use. Payloads are bytes: the hexadecimal text of the wire stays
// inside this type.
//
// The request holding the turn receives from the stream itself: a response
// reaches its caller with no hand-off between goroutines, and an open
// channel runs no goroutine of this package (gRPC's stream keeps one of its
// own). gRPC cannot interrupt a receive without ending the stream, so a
// request that stops waiting (its response timeout passed or its context
// ended) closes the channel; this also means that no late answer is ever
// taken for a later request's. What arrives while no request waits is read
// by the next request, which drops what does not answer it.
type IsotpChannel struct {
	session *Session // nil in unit tests without a session
	channel *openobdv1.IsotpChannel
	log     *slog.Logger
	stream  isotpStream
	cancel  context.CancelFunc // ends the stream

	responseTimeout time.Duration
	p2Star          time.Duration
	busyRetry       time.Duration

	sending chan struct{} // holds one token while a caller sends on the stream
	guard   *time.Timer   // armed while a caller sends: ends a stuck stream
	turn    chan struct{} // holds one token while a request is outstanding
	// expiry is armed while the request holding the turn receives: it
	// closes the channel (with expired set) when the wait runs out.
	expiry  *time.Timer
	expired atomic.Bool
	timer   *time.Timer // the busy-repeat wait of the request holding the turn
	strays  atomic.Uint64
	// watch ends the receive of a request whose context ends; it is kept
	// for the next request with the same context (a runner's stream).
	watch atomic.Pointer[ctxWatch]

	done      chan struct{}
	closeOnce sync.Once
	err       error // why the channel closed; written before done is closed
}

// OpenIsotp opens an ISO-TP channel: it opens openIsotpStream and sends the
// empty message that initialises channel on the server. ctx bounds the
// opening only; the channel lives until Close or the end of the session.
// The bus named in channel must have been configured (ConfigureBus).
func (s *Session) OpenIsotp(ctx context.Context, channel Channel) (*IsotpChannel, error) {
	const op = "openIsotpStream"
	if err := s.Err(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(s.ctx)
	stop := context.AfterFunc(ctx, cancel) // give up opening with ctx
	stream, err := s.can().OpenIsotpStream(s.outgoing(sctx))
	if !stop() {
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, classify(ctx, op, err, s.secrets()...)
	}
	c := newIsotpChannel(s, stream, cancel, channel.wire(), s.logger(), s.client.cfg)

	s.mu.Lock()
	if err := s.Err(); err != nil {
		s.mu.Unlock()
		c.Close()
		return nil, err
	}
	if s.channels == nil {
		s.channels = make(map[*IsotpChannel]struct{})
	}
	s.channels[c] = struct{}{}
	s.mu.Unlock()

	if err := c.send(ctx, &openobdv1.IsotpMessage{Channel: c.channel}, false); err != nil {
		c.Close()
		return nil, err
	}
	c.log.Debug("isotp channel opened")
	return c, nil
}

// newIsotpChannel returns a channel of session s (nil in unit tests) over
// stream; cancel must end the stream.
func newIsotpChannel(s *Session, stream isotpStream, cancel context.CancelFunc, channel *openobdv1.IsotpChannel, log *slog.Logger, cfg Config) *IsotpChannel {
	c := &IsotpChannel{
		session: s,
		channel: channel,
		log: log.With(
			slog.String("bus", channel.GetBusName()),
			slog.String("request_id", fmt.Sprintf("0x%X", channel.GetRequestId())),
			slog.String("response_id", fmt.Sprintf("0x%X", channel.GetResponseId())),
		),
		stream:          stream,
		cancel:          cancel,
		responseTimeout: cfg.ResponseTimeout,
		p2Star:          cfg.P2Star,
		busyRetry:       cfg.BusyRetryInterval,
		sending:         make(chan struct{}, 1),
		turn:            make(chan struct{}, 1),
		timer:           stoppedTimer(),
		done:            make(chan struct{}),
	}
	c.guard = time.AfterFunc(time.Hour, func() {
		c.closeWith(&Error{Kind: KindRetryable, Op: "openIsotpStream",
			Message: "a write was held by flow control past its caller's deadline or the response timeout"})
	})
	c.guard.Stop()
	c.expiry = time.AfterFunc(time.Hour, func() {
		c.expired.Store(true)
		c.closeWith(errGaveUp)
	})
	c.expiry.Stop()
	return c
}

// Strays returns how many received messages answered no request: messages
// left from before a request that do not answer it (answers to Send,
// duplicates), answers to other services and malformed payloads.
func (c *IsotpChannel) Strays() uint64 { return c.strays.Load() }

// Done is closed when the channel has closed.
func (c *IsotpChannel) Done() <-chan struct{} { return c.done }

// Close ends the stream. A pending Request fails with ErrChannelClosed.
func (c *IsotpChannel) Close() error {
	c.closeWith(ErrClosed)
	if s := c.session; s != nil {
		s.mu.Lock()
		delete(s.channels, c)
		s.mu.Unlock()
	}
	return nil
}

// closeWith records cause (the first one wins) and ends the stream.
func (c *IsotpChannel) closeWith(cause error) {
	c.closeOnce.Do(func() {
		c.err = cause
		close(c.done)
		c.cancel()
		if w := c.watch.Swap(nil); w != nil {
			w.stop()
		}
		switch {
		case errors.Is(cause, ErrClosed):
		case errors.Is(cause, errGaveUp):
			c.log.Debug("isotp channel closed", slog.String("reason", cause.Error()))
		default:
			c.log.Info("isotp channel closed", slog.String("reason", cause.Error()))
		}
	})
}

// closedErr is the error of calls on a closed channel: it wraps both
// ErrChannelClosed and the cause.
func (c *IsotpChannel) closedErr() error {
	return fmt.Errorf("%w: %w", ErrChannelClosed, c.err)
}

// ctxWatch closes the channel when its context ends while a request with
// that context waits for its answer.
type ctxWatch struct {
	ctx     context.Context
	stop    func() bool
	waiting atomic.Bool
}

// watchFor returns the watch of ctx, registering it in place of another
// context's unless the channel has closed; nil when ctx cannot end. Only the
// request holding the turn calls it. A context that serves many requests (a
// runner's stream) is registered once: no allocation per request.
func (c *IsotpChannel) watchFor(ctx context.Context) *ctxWatch {
	if ctx.Done() == nil {
		return nil
	}
	if w := c.watch.Load(); w != nil && w.ctx == ctx {
		return w
	}
	w := &ctxWatch{ctx: ctx}
	w.stop = context.AfterFunc(ctx, func() {
		if w.waiting.Load() {
			c.closeWith(errGaveUp)
		}
	})
	if old := c.watch.Swap(w); old != nil {
		old.stop()
	}
	select {
	case <-c.done:
		// Closed meanwhile: closeWith may have missed w.
		if c.watch.CompareAndSwap(w, nil) {
			w.stop()
		}
	default:
	}
	return w
}

// errGaveUp closes a channel whose request stopped waiting for its answer.
var errGaveUp = &Error{Kind: KindRetryable, Op: "openIsotpStream",
	Message: "closed: a request stopped waiting for its answer (response timeout or its context)"}

// errNoAnswer is receive's report that the wait ran out.
var errNoAnswer = errors.New("connector: no answer in time")

// receive returns the next payload that arrives before until, skipping
// channel control messages and counting malformed payloads as strays. Only
// the request holding the turn calls it. When until passes first, the
// channel closes and receive returns errNoAnswer; when the stream ends, the
// channel closes and receive returns its closedErr.
func (c *IsotpChannel) receive(until time.Time) ([]byte, error) {
	c.expiry.Reset(time.Until(until))
	defer c.expiry.Stop()
	for {
		m, err := c.stream.Recv()
		if err != nil {
			if c.expired.Load() {
				return nil, errNoAnswer
			}
			select {
			case <-c.done: // closed by us
			default:
				c.closeWith(c.streamErr(err))
			}
			return nil, c.closedErr()
		}
		if m.GetPayload() == "" { // channel control, not a response
			continue
		}
		payload, err := decodeHex(m.GetPayload())
		if err != nil {
			c.stray(nil, "malformed payload")
			continue
		}
		return payload, nil
	}
}

// streamErr classifies the end of the stream.
func (c *IsotpChannel) streamErr(err error) error {
	if c.session == nil {
		return classify(c.stream.Context(), "openIsotpStream", err)
	}
	return c.session.streamEnded(c.session.ctx, "openIsotpStream", err)
}

func (c *IsotpChannel) stray(payload []byte, reason string) {
	c.strays.Add(1)
	if c.log.Enabled(c.stream.Context(), slog.LevelDebug) {
		c.log.Debug("isotp stray response", slog.String("reason", reason),
			slog.Int("len", len(payload)), slog.String("head", describe(payload)))
	}
}

// send writes m on the stream from the caller's goroutine: no hand-off to
// another goroutine on the way to the wire. Callers take turns (a Request and
// a Send may run at once) and give up waiting for their turn with ctx. A
// write that gRPC's flow control holds (the server reads nothing) past ctx's
// deadline, or past the response timeout when that comes first, ends the
// channel, since the stream is stuck: the caller then gets ctx's error, or
// ErrChannelClosed.
func (c *IsotpChannel) send(ctx context.Context, m *openobdv1.IsotpMessage, holdsTurn bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.sending <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.closedErr()
	}
	defer func() { <-c.sending }()
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	limit, byDeadline := c.responseTimeout, false
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < limit {
			limit, byDeadline = left, true
		}
	}
	if limit <= 0 {
		return context.DeadlineExceeded
	}
	// The guard is one timer per channel, armed around each write: no
	// allocation per request.
	c.guard.Reset(limit)
	err := c.stream.Send(m)
	if !c.guard.Stop() {
		// The guard fired during the write and closed the channel.
		if err := ctx.Err(); err != nil {
			return err
		}
		if byDeadline {
			return context.DeadlineExceeded
		}
		return c.closedErr()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		// The stream ended before m was written: m reached nobody.
		if c.learnEnd(holdsTurn) {
			return fmt.Errorf("%w: %w", ErrNotSent, c.closedErr())
		}
		return fmt.Errorf("%w: %w: the stream has ended", ErrNotSent, ErrChannelClosed)
	}
	c.closeWith(c.streamErr(err))
	return c.closedErr()
}

// learnEnd closes the channel with the status of its ended stream, which
// Recv returns after the messages still buffered (strays). Only the holder
// of the turn receives: a caller without it (a Send) takes it if it is free
// and otherwise leaves the receive to the Request holding it, which learns
// the end itself. It reports whether the channel is closed.
func (c *IsotpChannel) learnEnd(holdsTurn bool) bool {
	if !holdsTurn {
		select {
		case c.turn <- struct{}{}:
			defer func() { <-c.turn }()
		default:
			return false
		}
	}
	for {
		if _, err := c.stream.Recv(); err != nil {
			select {
			case <-c.done: // closed by us
			default:
				c.closeWith(c.streamErr(err))
			}
			return true
		}
		c.strays.Add(1)
	}
}

// Send sends payload without waiting for an answer, e.g. tester present
// with the suppress bit (3E 80). It does not wait for a pending Request; an
// answer that arrives anyway is read by the next Request, which drops it
// and counts it as a stray unless it answers that request.
func (c *IsotpChannel) Send(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("connector: empty payload")
	}
	return c.send(ctx, &openobdv1.IsotpMessage{Channel: c.channel, Payload: encodeHex(payload)}, false)
}

// RequestOption changes one Request.
type RequestOption func(*requestOptions)

type requestOptions struct {
	timeout time.Duration
	p2Star  time.Duration
}

// with applies opts to a copy of o. It is a function of its own so that o
// reaches the heap only when there are options.
func (o requestOptions) with(opts []RequestOption) requestOptions {
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithResponseTimeout sets how long the request waits for its first
// response (Config.ResponseTimeout by default).
func WithResponseTimeout(d time.Duration) RequestOption {
	return func(o *requestOptions) { o.timeout = d }
}

// WithP2Star sets how long the request keeps waiting after each "response
// pending" (Config.P2Star by default).
func WithP2Star(d time.Duration) RequestOption {
	return func(o *requestOptions) { o.p2Star = d }
}

// Request sends a UDS request and returns its response. Only one request is
// outstanding per channel: others wait for their turn within their context.
//
// Messages that do not answer the request are dropped and counted (Strays),
// also those that arrived while no request waited.
// "Response pending" (NRC 0x78) restarts the wait with P2*; "busy, repeat
// request" (NRC 0x21) re-sends the request every BusyRetryInterval while the
// response timeout and ctx allow; when they run out, the 0x21 is returned.
// A negative response returns the three response bytes and a
// *NegativeResponseError.
//
// Other errors: a *TimeoutError (errors.Is ErrTimeout; also
// context.DeadlineExceeded when ctx's deadline ended the wait), ctx.Err()
// when ctx was cancelled, and ErrChannelClosed wrapping the cause when the
// stream ended (KindOf gives KindInterrupted when the session was
// interrupted). A request that stops waiting for its answer, because the
// response timeout passed or ctx ended, closes the channel (see
// IsotpChannel): later calls get ErrChannelClosed of KindRetryable; open a
// new channel to go on.
func (c *IsotpChannel) Request(ctx context.Context, payload []byte, opts ...RequestOption) ([]byte, error) {
	if len(payload) == 0 {
		return nil, errors.New("connector: empty request")
	}
	o := requestOptions{timeout: c.responseTimeout, p2Star: c.p2Star}
	if len(opts) > 0 {
		o = o.with(opts)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closedErr()
	}
	defer func() { <-c.turn }()

	start := time.Now()
	// 0x21 re-sends stop when the next one could not get an answer in time.
	busyUntil := start.Add(o.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(busyUntil) {
		busyUntil = d
	}
	msg := &openobdv1.IsotpMessage{Channel: c.channel, Payload: encodeHex(payload)}
	if err := c.send(ctx, msg, true); err != nil {
		if errors.Is(err, ErrChannelClosed) {
			return nil, err
		}
		return c.timedOut(payload, start, false, nil, err)
	}
	if w := c.watchFor(ctx); w != nil {
		w.waiting.Store(true)
		defer w.waiting.Store(false)
		// ctx may have ended before the watch was waiting.
		if err := ctx.Err(); err != nil {
			c.closeWith(errGaveUp)
			return c.timedOut(payload, start, false, nil, err)
		}
	}
	until := time.Now().Add(o.timeout)
	pending := false
	var busy []byte // the last 0x21 answer, returned if the retries run out of time
	for {
		resp, err := c.receive(until)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return c.timedOut(payload, start, pending, busy, ctx.Err())
		case errors.Is(err, errNoAnswer):
			return c.timedOut(payload, start, pending, busy, nil)
		default:
			return nil, err
		}
		v := uds.Match(payload, resp)
		switch {
		case v.Outcome == uds.Stray:
			c.stray(resp, "no match")
			continue
		case v.Outcome == uds.Positive:
			return resp, nil
		case v.NRC == uds.ResponsePending:
			pending, busy = true, nil
			until = time.Now().Add(o.p2Star)
			continue
		case v.NRC != uds.BusyRepeatRequest || !time.Now().Add(c.busyRetry).Before(busyUntil):
			return resp, &NegativeResponseError{SID: uds.SID(payload[0]), NRC: v.NRC}
		}
		// Busy, repeat request: wait, then send it again.
		pending, busy = false, resp
		c.timer.Reset(c.busyRetry) // ours while we hold the turn
		select {
		case <-c.timer.C:
		case <-ctx.Done():
			c.timer.Stop()
			return c.timedOut(payload, start, pending, busy, ctx.Err())
		case <-c.done:
			c.timer.Stop()
			return nil, c.closedErr()
		}
		if err := c.send(ctx, msg, true); err != nil {
			if errors.Is(err, ErrChannelClosed) {
				return nil, err
			}
			return c.timedOut(payload, start, pending, busy, err)
		}
		until = time.Now().Add(o.timeout)
	}
}

// timedOut is the result of a request whose wait ended without an answer:
// cause is nil when the response timeout passed, or why ctx ended. As in
// Jifeline's client, a request that was busy (0x21) until then returns that
// negative response. Otherwise a passed deadline gives a *TimeoutError and a
// cancelled ctx its error, unchanged.
func (c *IsotpChannel) timedOut(payload []byte, start time.Time, pending bool, busy []byte, cause error) ([]byte, error) {
	switch {
	case cause != nil && !errors.Is(cause, context.DeadlineExceeded):
		return nil, cause
	case busy != nil:
		return busy, &NegativeResponseError{SID: uds.SID(payload[0]), NRC: uds.BusyRepeatRequest}
	}
	return nil, &TimeoutError{Request: clone(payload), Waited: time.Since(start), Pending: pending, Err: cause}
}

// TimeoutError reports a request that got no answer in time. It wraps
// ErrTimeout, and also the context error when ctx's deadline ended the
// wait.
type TimeoutError struct {
	Request []byte
	Waited  time.Duration
	// Pending is true when the last answer was "response pending" (0x78).
	Pending bool
	Err     error
}

// Error names the request (its head only for security services) and the
// time waited.
func (e *TimeoutError) Error() string {
	s := "connector: no response to " + describe(e.Request) + " within " + e.Waited.Round(time.Millisecond).String()
	if e.Pending {
		s += " after response pending"
	}
	return s
}

// Unwrap returns ErrTimeout and, if set, Err.
func (e *TimeoutError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrTimeout, e.Err}
	}
	return []error{ErrTimeout}
}

// describe returns a short hexadecimal view of a UDS message for logs and
// errors: at most 8 bytes, and only SID and sub-function of the security
// services, whose data are keys.
func describe(b []byte) string {
	n := min(len(b), 8)
	if len(b) > 0 && (uds.SID(b[0]) == uds.SecurityAccess || uds.SID(b[0]) == uds.Authentication ||
		b[0] == byte(uds.SecurityAccess)+uds.PositiveResponseOffset || b[0] == byte(uds.Authentication)+uds.PositiveResponseOffset) {
		n = min(n, 2)
	}
	s := encodeHex(b[:n])
	if n < len(b) {
		s += "…"
	}
	return s
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

const hexUpper = "0123456789ABCDEF"

// encodeHex returns b as uppercase hexadecimal text, the payload format of
// openOBD.
func encodeHex(b []byte) string {
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for _, x := range b {
		sb.WriteByte(hexUpper[x>>4])
		sb.WriteByte(hexUpper[x&0x0F])
	}
	return sb.String()
}

// decodeHex parses an openOBD payload, in either case.
func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("connector: payload is not hexadecimal: %w", err)
	}
	return b, nil
}

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

// responseBuffer is how many received messages wait for a Request before
// further ones are dropped as strays.
const responseBuffer = 16

// isotpStream is the part of the openIsotpStream client that a channel uses.
type isotpStream = grpc.BidiStreamingClient[openobdv1.IsotpMessage, openobdv1.IsotpMessage]

// IsotpChannel is one ISO-TP channel (a request and a response CAN id on a
// configured bus) over its own openIsotpStream. It sends UDS requests and
// pairs them with their responses, one request at a time; it is safe for
// concurrent use. Payloads are bytes: the hexadecimal text of the wire stays
// inside this type.
type IsotpChannel struct {
	session *Session // nil in unit tests without a session
	channel *openobdv1.IsotpChannel
	log     *slog.Logger
	stream  isotpStream
	cancel  context.CancelFunc // ends the stream

	responseTimeout time.Duration
	p2Star          time.Duration
	busyRetry       time.Duration

	sending   chan struct{} // holds one token while a caller sends on the stream
	guard     *time.Timer   // armed while a caller sends: ends a stuck stream
	responses chan []byte   // from the receive goroutine
	turn      chan struct{} // holds one token while a request is outstanding
	timer     *time.Timer   // used by the request holding the turn
	strays    atomic.Uint64
	wg        sync.WaitGroup

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

	if err := c.send(ctx, &openobdv1.IsotpMessage{Channel: c.channel}); err != nil {
		c.Close()
		return nil, err
	}
	c.log.Debug("isotp channel opened")
	return c, nil
}

// newIsotpChannel starts the receive goroutine of a channel of session s
// (nil in unit tests) over stream; cancel must end the stream.
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
		responses:       make(chan []byte, responseBuffer),
		turn:            make(chan struct{}, 1),
		timer:           stoppedTimer(),
		done:            make(chan struct{}),
	}
	c.guard = time.AfterFunc(time.Hour, func() {
		c.closeWith(&Error{Kind: KindRetryable, Op: "openIsotpStream",
			Message: "a write was held by flow control past its caller's deadline or the response timeout"})
	})
	c.guard.Stop()
	c.wg.Add(1)
	go c.receiveLoop()
	return c
}

// Strays returns how many received messages answered no request: late
// answers, answers to other services and malformed payloads.
func (c *IsotpChannel) Strays() uint64 { return c.strays.Load() }

// Done is closed when the channel has closed.
func (c *IsotpChannel) Done() <-chan struct{} { return c.done }

// Close ends the stream and waits for the channel's goroutines. A pending
// Request fails with ErrChannelClosed.
func (c *IsotpChannel) Close() error {
	c.closeWith(ErrClosed)
	c.wg.Wait()
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
		if !errors.Is(cause, ErrClosed) {
			c.log.Info("isotp channel closed", slog.String("reason", cause.Error()))
		}
	})
}

// closedErr is the error of calls on a closed channel: it wraps both
// ErrChannelClosed and the cause.
func (c *IsotpChannel) closedErr() error {
	return fmt.Errorf("%w: %w", ErrChannelClosed, c.err)
}

// receiveLoop is the only receiver on the stream. It decodes payloads and
// hands them to the waiting Request; what nobody waits for is a stray.
func (c *IsotpChannel) receiveLoop() {
	defer c.wg.Done()
	for {
		m, err := c.stream.Recv()
		if err != nil {
			select {
			case <-c.done: // closed by us
			default:
				c.closeWith(c.streamErr(err))
			}
			return
		}
		if m.GetPayload() == "" { // channel control, not a response
			continue
		}
		payload, err := decodeHex(m.GetPayload())
		if err != nil {
			c.stray(nil, "malformed payload")
			continue
		}
		select {
		case c.responses <- payload:
		default:
			c.stray(payload, "buffer full")
		}
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
func (c *IsotpChannel) send(ctx context.Context, m *openobdv1.IsotpMessage) error {
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
		// The stream has ended; the receive loop learns why and closes the
		// channel, which a waiting Request sees.
		return nil
	}
	c.closeWith(c.streamErr(err))
	return c.closedErr()
}

// Send sends payload without waiting for an answer, e.g. tester present
// with the suppress bit (3E 80). It does not wait for a pending Request;
// an answer that arrives anyway is counted as a stray.
func (c *IsotpChannel) Send(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("connector: empty payload")
	}
	return c.send(ctx, &openobdv1.IsotpMessage{Channel: c.channel, Payload: encodeHex(payload)})
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
// Messages that do not answer the request are dropped and counted (Strays).
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
// interrupted).
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
	c.discardPending()

	start := time.Now()
	// 0x21 re-sends stop when the next one could not get an answer in time.
	busyUntil := start.Add(o.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(busyUntil) {
		busyUntil = d
	}
	msg := &openobdv1.IsotpMessage{Channel: c.channel, Payload: encodeHex(payload)}
	if err := c.send(ctx, msg); err != nil {
		if errors.Is(err, ErrChannelClosed) {
			return nil, err
		}
		return c.timedOut(payload, start, false, nil, err)
	}
	timer := c.timer // ours while we hold the turn
	timer.Reset(o.timeout)
	defer timer.Stop()
	pending, resend := false, false
	var busy []byte // the last 0x21 answer, returned if the retries run out of time
	for {
		select {
		case resp := <-c.responses:
			v := uds.Match(payload, resp)
			switch {
			case v.Outcome == uds.Stray:
				c.stray(resp, "no match")
			case v.Outcome == uds.Positive:
				return resp, nil
			case v.NRC == uds.ResponsePending:
				pending, busy = true, nil
				timer.Reset(o.p2Star)
			case v.NRC == uds.BusyRepeatRequest && time.Now().Add(c.busyRetry).Before(busyUntil):
				pending, resend, busy = false, true, resp
				timer.Reset(c.busyRetry)
			default:
				return resp, &NegativeResponseError{SID: uds.SID(payload[0]), NRC: v.NRC}
			}
		case <-timer.C:
			if !resend {
				return c.timedOut(payload, start, pending, busy, nil)
			}
			resend = false
			if err := c.send(ctx, msg); err != nil {
				if errors.Is(err, ErrChannelClosed) {
					return nil, err
				}
				return c.timedOut(payload, start, pending, busy, err)
			}
			timer.Reset(o.timeout)
		case <-ctx.Done():
			return c.timedOut(payload, start, pending, busy, ctx.Err())
		case <-c.done:
			return nil, c.closedErr()
		}
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

// discardPending drops answers that arrived while no request waited.
func (c *IsotpChannel) discardPending() {
	for {
		select {
		case resp := <-c.responses:
			c.stray(resp, "arrived between requests")
		default:
			return
		}
	}
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

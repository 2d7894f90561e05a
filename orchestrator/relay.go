package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/uds"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// maxChannels bounds the ISO-TP channels kept open per session.
const maxChannels = 16

type channelKey struct {
	bus                     string
	request, response       uint32
	extRequest, extResponse int64 // -1 when not set
}

func keyOf(c Channel) channelKey {
	k := channelKey{bus: c.BusName, request: c.RequestID, response: c.ResponseID, extRequest: -1, extResponse: -1}
	if c.ExtRequest != nil {
		k.extRequest = int64(*c.ExtRequest)
	}
	if c.ExtResponse != nil {
		k.extResponse = int64(*c.ExtResponse)
	}
	return k
}

// relayChannel is one ECU channel of an attached session, shared by every
// runner call that addresses it. It owns the openOBD ISO-TP stream, reopens
// it with jittered backoff when it breaks, and keeps the ECU's diagnostic
// session alive with tester present while it is not the default one.
type relayChannel struct {
	o    *Orchestrator
	a    *attachment
	spec connector.Channel
	// turn admits one request at a time; waiting is bounded by QueueWait.
	turn chan struct{}
	// opening admits one (re)opener of the ISO-TP stream at a time. It is not
	// mu, so that shutdown never waits for an opening that backs off.
	opening chan struct{}
	// done is closed when the channel closes; closed says why.
	done chan struct{}

	mu     sync.Mutex
	iso    *connector.IsotpChannel
	closed error
	// testerStop ends the tester-present goroutine; nil when not running.
	testerStop context.CancelFunc
	wg         sync.WaitGroup
}

// OpenChannel opens (or joins) an ISO-TP channel on a leased session.
func (o *Orchestrator) OpenChannel(ctx context.Context, id, leaseID string, ch Channel) (RelayChannel, *session.Record, error) {
	l, err := o.checkLease(ctx, id, leaseID)
	if err != nil {
		return nil, nil, err
	}
	rc, err := l.channel(o, ch)
	if err != nil {
		return nil, nil, err
	}
	if _, err := rc.stream(ctx); err != nil {
		return nil, nil, err
	}
	rec, err := o.GetSession(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return &leasedChannel{o: o, rc: rc, leaseID: leaseID}, rec, nil
}

// Send relays one request on a leased session.
func (o *Orchestrator) Send(ctx context.Context, id, leaseID string, ch Channel, req Request) (Response, error) {
	l, err := o.checkLease(ctx, id, leaseID)
	if err != nil {
		return Response{}, err
	}
	rc, err := l.channel(o, ch)
	if err != nil {
		return Response{}, err
	}
	return rc.do(ctx, req)
}

// leasedChannel is a runner's handle on a channel. It points at the
// session's attachment, so a request checks (and renews) the lease under
// that session's lock only.
type leasedChannel struct {
	o       *Orchestrator
	rc      *relayChannel
	leaseID string
}

func (c *leasedChannel) Do(ctx context.Context, req Request) (Response, error) {
	if err := c.o.useLease(c.rc.a, c.leaseID); err != nil {
		return Response{}, err
	}
	return c.rc.do(ctx, req)
}

// Done is closed when the channel can carry no more requests: the session
// ended, the lease was lost or the buses were replaced. Err says which. A
// stream relaying for a runner ends then, even while the runner is silent.
func (c *leasedChannel) Done() <-chan struct{} { return c.rc.done }

// Err returns why the channel closed, or nil while it is open.
func (c *leasedChannel) Err() error { return c.rc.err() }

// Close releases the handle; the channel stays open for later calls until
// the session ends or its buses change.
func (c *leasedChannel) Close() error { return nil }

// channel returns the session's channel for ch, opening its record.
func (l *attachment) channel(o *Orchestrator, ch Channel) (*relayChannel, error) {
	k := keyOf(ch)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ending != nil {
		return nil, l.ending
	}
	if l.sess == nil {
		return nil, fmt.Errorf("%w: session %s is not attached yet; try again", ErrUnavailable, l.id)
	}
	if rc, ok := l.channels[k]; ok {
		return rc, nil
	}
	if !slices.Contains(l.buses, ch.BusName) {
		return nil, invalid("channel.bus_name", "bus %q is not configured on this session (see its buses; ConfigureBus adds buses)", ch.BusName)
	}
	if len(l.channels) >= maxChannels {
		return nil, fmt.Errorf("%w: %d channels already open on this session", ErrBusy, maxChannels)
	}
	spec := connector.Channel{
		Bus: ch.BusName, RequestID: ch.RequestID, ResponseID: ch.ResponseID,
		ExtRequest: ch.ExtRequest, ExtResponse: ch.ExtResponse, Padding: ch.Padding,
	}
	rc := &relayChannel{
		o: o, a: l, spec: spec,
		turn: make(chan struct{}, 1), opening: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if l.channels == nil {
		l.channels = map[channelKey]*relayChannel{}
	}
	l.channels[k] = rc
	return rc, nil
}

// closeChannels shuts every channel of the session (lease lost, buses
// replaced); runners reopen them.
func (l *attachment) closeChannels(cause error) {
	l.mu.Lock()
	chans := l.channels
	l.channels = nil
	l.mu.Unlock()
	for _, c := range chans {
		c.shutdown(cause)
	}
}

// stream returns the open ISO-TP stream, (re)opening it with jittered
// backoff within ctx.
func (c *relayChannel) stream(ctx context.Context) (*connector.IsotpChannel, error) {
	// The common case, an open stream, needs no turn at opening.
	c.mu.Lock()
	if iso := c.iso; iso != nil && c.closed == nil {
		select {
		case <-iso.Done():
		default:
			c.mu.Unlock()
			return iso, nil
		}
	}
	c.mu.Unlock()
	select {
	case c.opening <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.err()
	}
	defer func() { <-c.opening }()
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return nil, c.closed
	}
	stale := c.iso
	if stale != nil {
		select {
		case <-stale.Done():
			c.iso = nil
		default:
			c.mu.Unlock()
			return stale, nil
		}
	}
	c.mu.Unlock()
	if stale != nil {
		_ = stale.Close()
	}

	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	iso, err := backoff.RetryNotifyWithData(func() (*connector.IsotpChannel, error) {
		if err := c.err(); err != nil {
			return nil, backoff.Permanent(err)
		}
		sess := c.a.session()
		if sess == nil {
			return nil, backoff.Permanent(c.a.endingOr(c.a.id))
		}
		iso, err := sess.OpenIsotp(ctx, c.spec)
		if err != nil && connector.KindOf(err) != connector.KindRetryable {
			return nil, backoff.Permanent(err)
		}
		return iso, err
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		c.o.metrics.retried(ctx, "reopen")
		c.o.log.Debug("reopening openOBD stream", "session_id", c.a.id, "err", err, "retry_in", d)
	})
	if err != nil {
		if cerr := c.err(); cerr != nil {
			return nil, cerr
		}
		return nil, relayErr(c.a, err)
	}
	c.mu.Lock()
	if c.closed != nil {
		// Shut down while opening: nobody else will close this stream.
		err := c.closed
		c.mu.Unlock()
		_ = iso.Close()
		return nil, err
	}
	c.iso = iso
	c.mu.Unlock()
	return iso, nil
}

// err returns why the channel closed, or nil while it is open.
func (c *relayChannel) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// reset forgets a broken stream so the next request reopens it.
func (c *relayChannel) reset(iso *connector.IsotpChannel) {
	c.mu.Lock()
	if c.iso == iso {
		c.iso = nil
	}
	c.mu.Unlock()
	_ = iso.Close()
}

func (c *relayChannel) shutdown(cause error) {
	c.mu.Lock()
	if c.closed == nil {
		c.closed = cause
		close(c.done)
	}
	iso, stop := c.iso, c.testerStop
	c.iso, c.testerStop = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	if iso != nil {
		_ = iso.Close()
	}
	c.wg.Wait()
}

// do relays one request: it waits its turn (bounded), sends, and matches
// the response. A broken stream is reopened; the request is re-sent only if
// it is idempotent or the stream broke before taking it.
func (c *relayChannel) do(ctx context.Context, req Request) (Response, error) {
	resp, err := c.relay(ctx, req)
	c.o.metrics.relayed(ctx, outcome(resp, err), resp)
	return resp, err
}

func isInterrupted(err error) bool {
	_, ok := errors.AsType[*InterruptedError](err)
	return ok
}

// outcome names a relayed request's result for the metrics.
func outcome(r Response, err error) string {
	switch {
	case err == nil && r.Negative:
		return "negative"
	case err == nil:
		return "positive"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case isInterrupted(err):
		return "aborted"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

func (c *relayChannel) relay(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	if err := c.takeTurn(ctx, start); err != nil {
		return Response{TotalTime: time.Since(start)}, err
	}
	defer func() { <-c.turn }()

	// P2 and P2* are the openOBD client's (connector.Config), unless the
	// request sets its own response timeout.
	var opts []connector.RequestOption
	if req.Timeout > 0 {
		opts = append(opts, connector.WithResponseTimeout(req.Timeout))
	}
	idempotent := req.Idempotent || uds.IsIdempotent(uds.SID(req.Payload[0]))
	var resp Response
	for {
		iso, err := c.stream(ctx)
		if err != nil {
			resp.TotalTime = time.Since(start)
			return resp, err
		}
		resp.Attempts++
		sent := time.Now()
		payload, err := iso.Request(ctx, req.Payload, opts...)
		resp.ECUTime += time.Since(sent)
		resp.TotalTime = time.Since(start)
		if err == nil {
			resp.Payload = payload
			c.observe(req.Payload, payload)
			return resp, nil
		}
		nre, negative := errors.AsType[*connector.NegativeResponseError](err)
		switch {
		case negative:
			resp.Payload, resp.Negative, resp.NRC = payload, true, byte(nre.NRC)
			return resp, nil
		case errors.Is(err, connector.ErrTimeout):
			return resp, fmt.Errorf("%w: request % X: %w", ErrTimeout, req.Payload, err)
		case errors.Is(err, connector.ErrChannelClosed) && ctx.Err() == nil:
			c.reset(iso)
			if ended := c.ended(); ended != nil {
				return resp, ended
			}
			if connector.KindOf(err) == connector.KindInterrupted {
				return resp, &InterruptedError{SessionID: c.a.id, Actor: session.ActorOpenOBD, Reason: err.Error()}
			}
			// A request that was not written can go again whatever it does.
			if !idempotent && !errors.Is(err, connector.ErrNotSent) {
				return resp, fmt.Errorf("%w: openOBD stream broke; request % X was not re-sent (not idempotent): %w", ErrUnavailable, req.Payload, err)
			}
			if resp.Attempts < 2 {
				c.o.log.Info("openOBD stream broke; re-sending the request", "session_id", c.a.id, "sid", req.Payload[0], "idempotent", idempotent)
				c.o.metrics.retried(ctx, "resend")
				continue
			}
			return resp, fmt.Errorf("%w: openOBD stream broke again; request % X was sent %d times: %w", ErrUnavailable, req.Payload, resp.Attempts, err)
		}
		return resp, relayErr(c.a, err)
	}
}

// takeTurn waits (at most QueueWait) until no other request is outstanding
// on the channel. The common case, a free channel, costs no timer.
func (c *relayChannel) takeTurn(ctx context.Context, start time.Time) error {
	select {
	case c.turn <- struct{}{}:
		c.o.metrics.waited(ctx, 0)
		return nil
	default:
	}
	wait := time.NewTimer(c.o.cfg.QueueWait)
	defer wait.Stop()
	select {
	case c.turn <- struct{}{}:
		c.o.metrics.waited(ctx, time.Since(start))
		return nil
	case <-wait.C:
		return fmt.Errorf("%w: waited %s for the channel", ErrBusy, c.o.cfg.QueueWait)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *relayChannel) ended() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed != nil {
		return closed
	}
	return c.a.endingErr()
}

// observe follows diagnostic session control: a positive answer to 10 xx
// with xx other than 01 (default session) starts tester present; 10 01 or an
// ECU reset stops it.
func (c *relayChannel) observe(req, resp []byte) {
	if len(req) < 2 || len(resp) < 1 {
		return
	}
	switch req[0] {
	case 0x10:
		if resp[0] != 0x50 {
			return
		}
		if req[1]&0x7F == 0x01 {
			c.stopTester()
		} else {
			c.startTester()
		}
	case 0x11:
		if resp[0] == 0x51 {
			c.stopTester()
		}
	}
}

func (c *relayChannel) startTester() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.testerStop != nil || c.closed != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.o.life)
	c.testerStop = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.testerPresent(ctx)
	}()
}

func (c *relayChannel) stopTester() {
	c.mu.Lock()
	stop := c.testerStop
	c.testerStop = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// testerPresent sends 3E 80 every interval, reopening the ISO-TP stream if
// openOBD dropped it: the ECU must not fall back to its default session
// while the runner is idle. A ticker drops ticks it could not deliver, so a
// stalled send never causes a burst afterwards.
func (c *relayChannel) testerPresent(ctx context.Context) {
	interval := c.o.cfg.TesterPresentInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, interval)
			iso, err := c.stream(sctx)
			if err == nil {
				err = iso.Send(sctx, []byte{0x3E, 0x80})
			}
			if err != nil && ctx.Err() == nil {
				c.o.log.Debug("tester present failed", "session_id", c.a.id, "err", err)
			}
			cancel()
		}
	}
}

// relayErr translates an openOBD failure during a runner's call.
func relayErr(a *attachment, err error) error {
	if ending := a.endingErr(); ending != nil {
		return ending
	}
	if connector.KindOf(err) == connector.KindInterrupted {
		return &InterruptedError{SessionID: a.id, Actor: session.ActorOpenOBD, Reason: err.Error()}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: openOBD: %w", ErrUnavailable, err)
}

package controlplane

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
)

// Exchange implements OrchestratorService.
//
// A worker goroutine receives each request, relays it on the channel and
// sends its response before it receives the next (one request is
// outstanding per channel anyway); this handler watches it and ends the
// stream. A runner that stops reading fills gRPC flow control in both
// directions and then blocks its own sends: memory stays bounded. A send
// that stays blocked longer than StallTimeout ends the stream. The stream
// also ends, without waiting for the runner's next request, when the channel
// closes (session interrupted or ended, lease lost, buses replaced) and on
// Drain. After a half-close every request sent before it is answered.
func (s *Service) Exchange(stream grpc.BidiStreamingServer[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil // closed before opening a channel: nothing to do
	}
	if err != nil {
		return toStatus(err)
	}
	open := first.GetOpen()
	if open == nil {
		return fieldError("open", "the first message must open the channel")
	}
	if err := requireID("open.session_id", open.GetSessionId()); err != nil {
		return err
	}
	if err := optionalID("open.lease_id", open.GetLeaseId()); err != nil {
		return err
	}
	spec, err := channelFromProto("open.channel", open.GetChannel())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	stopDrain := context.AfterFunc(s.drain, func() { cancel(status.Error(codes.Unavailable, errDraining.Error())) })
	defer stopDrain()

	ch, rec, err := s.core.OpenChannel(ctx, open.GetSessionId(), open.GetLeaseId(), spec)
	if owner, ok := s.ownerOf(ctx, err); ok {
		return s.proxyExchange(ctx, cancel, owner, first, stream)
	}
	if err != nil {
		return toStatus(err)
	}
	defer ch.Close()
	if err := stream.Send(&orchestratorv1.ExchangeResponse{Kind: &orchestratorv1.ExchangeResponse_Opened{
		Opened: &orchestratorv1.ChannelOpened{Session: sessionToProto(rec), Channel: channelToProto(spec)},
	}}); err != nil {
		return err
	}

	stalled := make(chan struct{})
	served := make(chan struct{})
	// The worker is not waited for once the stream is ending: it may sit in
	// Recv, which returns only when the runner sends or the stream ends, and
	// the stream ends when this handler returns.
	go func() {
		defer close(served)
		s.serve(ctx, cancel, stalled, ch, stream)
	}()
	closed := ch.Done()
	for waiting := true; waiting; {
		select {
		case <-served:
			waiting = false
		case <-stalled:
			// The worker is blocked in stream.Send by the runner's flow
			// control; returning ends the stream, which releases it.
			waiting = false
		case <-closed:
			closed = nil
			cancel(ch.Err())
		case <-ctx.Done():
			waiting = false // interrupt, lost lease, drain, or the runner left
		}
	}

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		if errors.Is(cause, io.EOF) {
			return nil
		}
		if _, ok := status.FromError(cause); ok {
			return cause
		}
		return toStatus(cause)
	}
	// The runner left or its deadline passed: CANCELED or DEADLINE_EXCEEDED,
	// or nil when the stream ended otherwise.
	return toStatus(stream.Context().Err())
}

// serve answers the runner's requests in order, one at a time: receive,
// relay, send. Until a response is sent the next request waits in gRPC's
// flow control, so a runner cannot pile up work or memory here. It ends the
// stream (cancel) when the runner half-closes (io.EOF) or sends a malformed
// message, on a failure of the session, or when a send stays blocked for
// StallTimeout; in that last case it closes stalled.
func (s *Service) serve(ctx context.Context, cancel context.CancelCauseFunc, stalled chan<- struct{}, ch orchestrator.RelayChannel, stream grpc.BidiStreamingServer[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]) {
	w := newStallWatch(s.opts.StallTimeout, func() {
		cancel(status.Errorf(codes.ResourceExhausted, "runner stalled: responses not read for %s", s.opts.StallTimeout))
		close(stalled)
	})
	defer w.stop()
	for {
		msg, err := stream.Recv()
		if err != nil {
			cancel(err) // io.EOF: the runner half-closed after its last request
			return
		}
		req := msg.GetRequest()
		if req == nil {
			cancel(fieldError("request", "only the first message may open the channel; later messages must be requests"))
			return
		}
		if ctx.Err() != nil {
			return
		}
		out, fatal := s.do(ctx, ch, req)
		if fatal != nil {
			cancel(fatal)
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.sending()
		err = stream.Send(out)
		w.sent()
		if err != nil {
			cancel(err)
			return
		}
	}
}

// stallWatch calls onStall once when a send has lasted timeout. Marking a
// send costs two atomic stores, not a timer reset per response: one timer
// per stream wakes every timeout at most and re-arms itself for the send in
// progress.
type stallWatch struct {
	timeout time.Duration
	epoch   time.Time
	// since is when the send in progress began, as a monotonic offset from
	// epoch plus one; 0 when no send is in progress.
	since   atomic.Int64
	stopped atomic.Bool
	timer   *time.Timer
	once    sync.Once
}

func newStallWatch(timeout time.Duration, onStall func()) *stallWatch {
	w := &stallWatch{timeout: timeout, epoch: time.Now()}
	// A short timeout on a busy machine can fire before AfterFunc returns:
	// the wake-up waits until w.timer is set.
	armed := make(chan struct{})
	defer close(armed)
	w.timer = time.AfterFunc(timeout, func() {
		<-armed
		if w.stopped.Load() {
			return
		}
		next := w.timeout
		if began := w.since.Load(); began != 0 {
			sending := time.Since(w.epoch) - time.Duration(began-1)
			if sending >= w.timeout {
				w.once.Do(onStall)
				return
			}
			next = w.timeout - sending
		}
		w.timer.Reset(next)
	})
	return w
}

func (w *stallWatch) sending() { w.since.Store(int64(time.Since(w.epoch)) + 1) }
func (w *stallWatch) sent()    { w.since.Store(0) }

// stop ends the watch: a wake-up already under way re-arms the timer at
// most once more, and the next one finds the watch stopped.
func (w *stallWatch) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}

// do relays one request. Failures that concern only this request (timeout,
// broken openOBD stream, bad payload) are reported in the response and the
// stream goes on; failures of the session (interrupt, lost lease) end it.
func (s *Service) do(ctx context.Context, ch orchestrator.RelayChannel, req *orchestratorv1.UdsRequest) (*orchestratorv1.ExchangeResponse, error) {
	start := time.Now()
	m := newExchangeResponse(req.GetCorrelationId())
	out := &m.resp
	r, err := requestFromProto("request.", req.GetPayload(), req.GetTimeout(), req.Timeout != nil, req.GetIdempotent())
	if err != nil {
		out.Error = &orchestratorv1.RequestError{Code: orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_INVALID, Message: status.Convert(err).Message()}
		m.setTotal(time.Since(start))
		return &m.msg, nil
	}
	resp, err := ch.Do(ctx, r)
	m.setTotal(time.Since(start))
	out.Attempts = uint32(resp.Attempts)
	m.setECU(resp.ECUTime)
	switch {
	case err == nil:
		out.Payload, out.Negative, out.Nrc = resp.Payload, resp.Negative, uint32(resp.NRC)
	case errors.Is(err, orchestrator.ErrTimeout):
		out.Error = &orchestratorv1.RequestError{Code: orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT, Message: err.Error()}
	case errors.Is(err, orchestrator.ErrBusy):
		out.Error = &orchestratorv1.RequestError{Code: orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_QUEUE_TIMEOUT, Message: err.Error()}
	case errors.Is(err, orchestrator.ErrUnavailable):
		out.Error = &orchestratorv1.RequestError{Code: orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_UNAVAILABLE, Message: err.Error()}
	default:
		// The session itself failed: end the stream with the mapped status.
		return nil, err
	}
	return &m.msg, nil
}

// exchangeResponse holds the messages of one answer in one allocation
// instead of five: the ExchangeResponse, its oneof wrapper, the UdsResponse
// and its two durations. Each answer gets its own, since gRPC may read a
// sent message later (stats handlers).
type exchangeResponse struct {
	msg        orchestratorv1.ExchangeResponse
	kind       orchestratorv1.ExchangeResponse_Response
	resp       orchestratorv1.UdsResponse
	total, ecu durationpb.Duration
}

func newExchangeResponse(correlationID uint64) *exchangeResponse {
	m := &exchangeResponse{}
	m.resp.CorrelationId = correlationID
	m.kind.Response = &m.resp
	m.msg.Kind = &m.kind
	return m
}

func (m *exchangeResponse) setTotal(d time.Duration) {
	setDuration(&m.total, d)
	m.resp.TotalTime = &m.total
}

func (m *exchangeResponse) setECU(d time.Duration) {
	setDuration(&m.ecu, d)
	m.resp.EcuTime = &m.ecu
}

// setDuration sets p to d as durationpb.New does.
func setDuration(p *durationpb.Duration, d time.Duration) {
	nanos := d.Nanoseconds()
	p.Seconds = nanos / 1e9
	p.Nanos = int32(nanos - p.Seconds*1e9)
}

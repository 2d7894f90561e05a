package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/sdk/uds"
)

// ChannelSpec addresses one ECU over ISO-TP.
type ChannelSpec struct {
	// Bus is a configured bus name; default "can0", the orchestrator's
	// default bus.
	Bus string
	// RequestID is the CAN id requests go to, e.g. 0x7E0.
	RequestID uint32
	// ResponseID is the CAN id answers come from, e.g. 0x7E8.
	ResponseID uint32
	// Timeout is the time allowed for each answer (P2); 0: the
	// orchestrator's default. A responsePending (0x78) extends it to P2*.
	Timeout time.Duration
}

// Response is a positive or negative answer of the ECU.
type Response struct {
	// Payload is the answer, starting with the response SID (request SID +
	// 0x40, or 7F for a negative answer).
	Payload []byte
	// ECUTime is the time spent waiting on the connector and the ECU.
	ECUTime time.Duration
	// TotalTime is the orchestrator's time from receiving the request to
	// answering.
	TotalTime time.Duration
	// Attempts is how many times the orchestrator sent the request (busy
	// repeats and resends after a broken link).
	Attempts int
}

// Channel is an open channel to one ECU: an Exchange stream on which one
// request at a time is outstanding, as the orchestrator enforces. Request is
// safe for concurrent use; concurrent callers take turns.
type Channel struct {
	s       *Session
	spec    ChannelSpec
	ctx     context.Context // the stream's
	stream  grpc.BidiStreamingClient[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]
	cancel  context.CancelCauseFunc // ends the stream
	timeout *durationpb.Duration

	// turn holds a token while a request is outstanding: taken by Request
	// before sending, given back by the receiver when the answer arrives
	// (also when the caller stopped waiting for it).
	turn chan struct{}
	// done is closed when the receiver has ended; err says why.
	done chan struct{}

	mu      sync.Mutex
	pending *call
	nextID  uint64
	err     error
}

type call struct {
	id  uint64
	res chan result // buffered: the receiver never blocks on it
}

type result struct {
	resp Response
	err  error
}

// Channel opens a channel to the ECU at spec. ctx bounds the opening only;
// the channel lives until Close, Finish, Release or the loss of the
// session.
func (s *Session) Channel(ctx context.Context, spec ChannelSpec) (*Channel, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if spec.Bus == "" {
		spec.Bus = "can0"
	}
	if spec.RequestID == 0 || spec.ResponseID == 0 {
		return nil, errors.New("sdk: ChannelSpec needs RequestID and ResponseID")
	}
	sctx, cancel := context.WithCancelCause(s.ctx)
	stream, err := s.c.api.Exchange(sctx)
	if err != nil {
		cancel(nil)
		return nil, s.channelErr(fmt.Errorf("sdk: open channel: %w", err))
	}
	// The opening waits for the orchestrator's answer at most as long as ctx.
	stopOpen := context.AfterFunc(ctx, func() { cancel(ctx.Err()) })
	err = stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: &orchestratorv1.OpenChannel{
		SessionId: s.ID(), LeaseId: s.leaseID,
		Channel: &orchestratorv1.Channel{BusName: spec.Bus, RequestId: spec.RequestID, ResponseId: spec.ResponseID},
	}}})
	var first *orchestratorv1.ExchangeResponse
	if err == nil {
		first, err = stream.Recv()
	}
	if !stopOpen() && err != nil {
		err = ctx.Err()
	}
	if err == nil && first.GetOpened() == nil {
		err = errors.New("the orchestrator did not confirm the channel")
	}
	if err != nil {
		cancel(nil)
		return nil, s.channelErr(fmt.Errorf("sdk: open channel 0x%X/0x%X: %w", spec.RequestID, spec.ResponseID, err))
	}
	ch := &Channel{
		s: s, spec: spec, ctx: sctx, stream: stream, cancel: cancel,
		turn: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if spec.Timeout > 0 {
		ch.timeout = durationpb.New(spec.Timeout)
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		cancel(nil)
		return nil, s.err
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go ch.receive()
	return ch, nil
}

// channelErr returns the session's own error when a failure comes from the
// session being gone, and marks the session lost when the failure says so.
func (s *Session) channelErr(err error) error {
	if serr, gone := sessionErr(s.ID(), unwrapStatus(err)); gone {
		return s.fail(serr)
	}
	if cause := s.Err(); cause != nil {
		return cause
	}
	return err
}

// Spec returns the channel's address.
func (ch *Channel) Spec() ChannelSpec { return ch.spec }

// Request sends one UDS request and returns the ECU's answer. A negative
// answer returns the Response and a *uds.NegativeResponseError naming the
// NRC. A request the orchestrator could not relay returns a *RequestError
// (ErrTimeout, ErrChannelBusy, ErrLinkUnavailable); the channel stays open.
// When the session is lost the error is the session's (see Session.Err).
//
// If ctx ends first, Request returns ctx's error; the request stays
// outstanding on the ECU and the next Request waits until its answer has
// arrived, so answers are never mixed up.
func (ch *Channel) Request(ctx context.Context, payload []byte) (Response, error) {
	if len(payload) == 0 {
		return Response{}, errors.New("sdk: Request needs a payload (the UDS request bytes)")
	}
	select {
	case ch.turn <- struct{}{}:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	case <-ch.done:
		return Response{}, ch.closedErr()
	}
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		<-ch.turn
		return Response{}, ch.err
	}
	ch.nextID++
	c := &call{id: ch.nextID, res: make(chan result, 1)}
	ch.pending = c
	ch.mu.Unlock()
	err := ch.stream.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: &orchestratorv1.UdsRequest{
		CorrelationId: c.id, Payload: payload, Timeout: ch.timeout,
	}}})
	if err != nil {
		// The stream is broken; the receiver learns why from Recv.
		select {
		case <-ch.done:
			return Response{}, ch.closedErr()
		case <-ctx.Done():
			return Response{}, ctx.Err()
		}
	}
	select {
	case r := <-c.res:
		return r.resp, r.err
	case <-ctx.Done():
		return Response{}, ctx.Err()
	case <-ch.done:
		return Response{}, ch.closedErr()
	}
}

// receive reads answers and hands each to the request waiting for it. It
// ends with the stream.
func (ch *Channel) receive() {
	defer ch.s.wg.Done()
	for {
		m, err := ch.stream.Recv()
		if err != nil {
			ch.end(err)
			return
		}
		r := m.GetResponse()
		if r == nil {
			continue
		}
		ch.mu.Lock()
		c := ch.pending
		if c != nil && c.id == r.GetCorrelationId() {
			ch.pending = nil
		} else {
			c = nil // not the outstanding request: nothing waits for it
		}
		ch.mu.Unlock()
		if c == nil {
			continue
		}
		c.res <- toResult(r)
		<-ch.turn
	}
}

func toResult(r *orchestratorv1.UdsResponse) result {
	resp := Response{
		Payload:   r.GetPayload(),
		ECUTime:   r.GetEcuTime().AsDuration(),
		TotalTime: r.GetTotalTime().AsDuration(),
		Attempts:  int(r.GetAttempts()),
	}
	switch {
	case r.GetError() != nil:
		return result{resp, &RequestError{Code: r.GetError().GetCode(), Message: r.GetError().GetMessage()}}
	case r.GetNegative():
		sid := uds.SID(0)
		if len(r.GetPayload()) > 1 {
			sid = uds.SID(r.GetPayload()[1])
		}
		return result{resp, &uds.NegativeResponseError{SID: sid, NRC: uds.NRC(r.GetNrc())}}
	}
	return result{resp, nil}
}

// end records why the stream ended and wakes every waiter.
func (ch *Channel) end(err error) {
	cause := context.Cause(ch.ctx) // set when Close or the session ended the stream
	switch {
	case cause != nil && !errors.Is(cause, ErrChannelClosed):
		if serr := ch.s.Err(); serr != nil {
			cause = serr
		}
	case cause == nil:
		if serr, gone := sessionErr(ch.s.ID(), err); gone {
			cause = ch.s.fail(serr)
		} else {
			cause = fmt.Errorf("sdk: channel 0x%X/0x%X ended: %w", ch.spec.RequestID, ch.spec.ResponseID, err)
		}
	}
	ch.mu.Lock()
	ch.err = cause
	ch.pending = nil
	ch.mu.Unlock()
	close(ch.done)
}

// closedErr returns why the channel ended; call it after done is closed.
func (ch *Channel) closedErr() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// Done is closed when the channel can carry no more requests; Err says why.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// Err returns why the channel ended, or nil while it is open.
func (ch *Channel) Err() error {
	select {
	case <-ch.done:
		return ch.closedErr()
	default:
		return nil
	}
}

// Close ends the channel's stream and waits for it. Requests waiting on the
// channel return ErrChannelClosed. The session stays usable.
func (ch *Channel) Close() error {
	ch.cancel(ErrChannelClosed)
	<-ch.done
	return nil
}

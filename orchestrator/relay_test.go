package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/controlplane"
)

// UDS requests the tests send to the simulated vehicle.
var (
	readVIN        = []byte{0x22, 0xF1, 0x90}       // VIN, read-only
	readSerial     = []byte{0x22, 0xF1, 0x8C}       // ECU serial number, read-only
	readLarge      = []byte{0x22, 0x12, 0x34}       // 4000-byte record
	readUnknownDID = []byte{0x22, 0x00, 0x00}       // 7F 22 31
	startRoutine   = []byte{0x31, 0x01, 0xFF, 0x00} // answers 78 several times first
	routineResults = []byte{0x31, 0x03, 0xFF, 0x00} // answers at once; not read-only
	extendedSess   = []byte{0x10, 0x03}
	defaultSess    = []byte{0x10, 0x01}
)

const (
	engineRequestID = 0x7E0
	transmissionID  = 0x7E1
)

// ecuChannel addresses a simulated ECU on the default bus; the ECUs answer
// on their request id + 8.
func ecuChannel(requestID uint32) *orchestratorv1.Channel {
	return &orchestratorv1.Channel{BusName: "can0", RequestId: requestID, ResponseId: requestID + 8}
}

// relayRig is one replica over a fake Jifeline, with every demo ticket's
// session READY and, unless asked otherwise, one of them leased to a runner.
type relayRig struct {
	t   *testing.T
	w   *world
	r   *replica
	ctx context.Context
	acq *orchestratorv1.AcquireSessionResponse
}

type rigOptions struct {
	tickets int // default 1
	openobd fake.Options
	cfg     orchestrator.Config
	client  connector.Config
	// storeLeaseTTL replaces the default storeLeaseTTL.
	storeLeaseTTL time.Duration
	svc           controlplane.Options
	noAcquire     bool
}

func newRelayRig(t *testing.T, o rigOptions) *relayRig {
	t.Helper()
	if o.tickets == 0 {
		o.tickets = 1
	}
	w := newWorld(t, worldOptions{tickets: o.tickets, openobd: o.openobd})
	r := w.startReplica("a", replicaOptions{cfg: o.cfg, client: o.client, svcOpts: o.svc, storeLeaseTTL: o.storeLeaseTTL})
	g := &relayRig{t: t, w: w, r: r, ctx: testCtx(t)}
	r.waitSessions(g.ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, o.tickets)
	if !o.noAcquire {
		g.acq = g.acquire("runner-1")
	}
	return g
}

func (g *relayRig) acquire(runner string) *orchestratorv1.AcquireSessionResponse {
	g.t.Helper()
	acq, err := g.r.client.AcquireSession(g.ctx, &orchestratorv1.AcquireSessionRequest{Runner: runner})
	if err != nil {
		g.t.Fatalf("AcquireSession(%s): %v", runner, err)
	}
	return acq
}

func (g *relayRig) sessionID() string   { return g.acq.GetSession().GetId() }
func (g *relayRig) openOBDID() string   { return g.acq.GetSession().GetOpenobdSessionId() }
func (g *relayRig) connectorID() string { return g.acq.GetSession().GetConnectorId() }
func (g *relayRig) faults() *fake.Faults {
	return g.w.jf.OpenOBD.Faults()
}

// vin is the VIN the simulated vehicle of the leased session answers with.
func (g *relayRig) vin() string {
	g.t.Helper()
	v, ok := g.w.jf.OpenOBD.Vehicle(g.connectorID())
	if !ok {
		g.t.Fatalf("no simulated vehicle behind connector %s", g.connectorID())
	}
	return v.VIN()
}

// sendTo relays one request with acq's lease to the ECU at requestID.
func (g *relayRig) sendTo(ctx context.Context, acq *orchestratorv1.AcquireSessionResponse, requestID uint32, payload []byte, timeout time.Duration) (*orchestratorv1.SendResponse, error) {
	req := &orchestratorv1.SendRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Channel: ecuChannel(requestID), Payload: payload,
	}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	return g.r.client.Send(ctx, req)
}

// send relays one request to the engine ECU with the rig's lease.
func (g *relayRig) send(ctx context.Context, payload []byte) (*orchestratorv1.SendResponse, error) {
	return g.sendTo(ctx, g.acq, engineRequestID, payload, 0)
}

// mustSend relays one request that must succeed.
func (g *relayRig) mustSend(payload []byte) *orchestratorv1.SendResponse {
	g.t.Helper()
	resp, err := g.send(g.ctx, payload)
	if err != nil {
		g.t.Fatalf("Send(% X) = %v, want a response", payload, err)
	}
	return resp
}

// exchangeStream is a runner's Exchange stream, opened on one channel.
type exchangeStream struct {
	t      *testing.T
	s      grpc.BidiStreamingClient[orchestratorv1.ExchangeRequest, orchestratorv1.ExchangeResponse]
	opened *orchestratorv1.ChannelOpened
}

// tryOpenExchange opens an Exchange stream and waits for `opened`.
func tryOpenExchange(ctx context.Context, client orchestratorv1.OrchestratorServiceClient, open *orchestratorv1.OpenChannel) (*exchangeStream, error) {
	s, err := client.Exchange(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Open{Open: open}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	msg, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if msg.GetOpened() == nil {
		return nil, fmt.Errorf("first Exchange message is %v, want opened", msg)
	}
	return &exchangeStream{s: s, opened: msg.GetOpened()}, nil
}

func openExchange(ctx context.Context, t *testing.T, client orchestratorv1.OrchestratorServiceClient, acq *orchestratorv1.AcquireSessionResponse, ch *orchestratorv1.Channel) *exchangeStream {
	t.Helper()
	e, err := tryOpenExchange(ctx, client, &orchestratorv1.OpenChannel{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(), Channel: ch,
	})
	if err != nil {
		t.Fatalf("open Exchange on %v: %v", ch, err)
	}
	e.t = t
	return e
}

func (e *exchangeStream) request(cid uint64, payload []byte, timeout time.Duration, idempotent bool) error {
	req := &orchestratorv1.UdsRequest{CorrelationId: cid, Payload: payload, Idempotent: idempotent}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	return e.s.Send(&orchestratorv1.ExchangeRequest{Kind: &orchestratorv1.ExchangeRequest_Request{Request: req}})
}

func (e *exchangeStream) recv() (*orchestratorv1.UdsResponse, error) {
	msg, err := e.s.Recv()
	if err != nil {
		return nil, err
	}
	if msg.GetResponse() == nil {
		return nil, fmt.Errorf("Exchange sent %v, want a response", msg)
	}
	return msg.GetResponse(), nil
}

// roundTrip sends one request and returns its response, which must carry
// the request's correlation id.
func (e *exchangeStream) roundTrip(cid uint64, payload []byte, timeout time.Duration) *orchestratorv1.UdsResponse {
	e.t.Helper()
	if err := e.request(cid, payload, timeout, false); err != nil {
		e.t.Fatalf("Exchange send (correlation %d): %v", cid, err)
	}
	resp, err := e.recv()
	if err != nil {
		e.t.Fatalf("Exchange recv (correlation %d): %v", cid, err)
	}
	if resp.GetCorrelationId() != cid {
		e.t.Fatalf("response has correlation id %d, want %d", resp.GetCorrelationId(), cid)
	}
	return resp
}

// ecuTally counts the requests that reach one ECU behind one connector. It
// uses the fake's response-pending fault as the counter: every request that
// reaches the ECU uses up one of its PendingRequests (and gets `pending`
// 7F xx 78 answers before its real one).
type ecuTally struct {
	t         *testing.T
	f         *fake.Faults
	connector string
	requestID uint32
}

const tallyBudget = 1 << 20

func (g *relayRig) tally(requestID uint32, pending int) *ecuTally {
	g.t.Helper()
	if err := g.faults().SetECUFault(g.connectorID(), requestID, fake.ECUFault{Pending: pending, PendingRequests: tallyBudget}); err != nil {
		g.t.Fatal(err)
	}
	return &ecuTally{t: g.t, f: g.faults(), connector: g.connectorID(), requestID: requestID}
}

// count returns how many requests reached the ECU since the tally started;
// it is safe to call from any goroutine.
func (e *ecuTally) count() int {
	for _, f := range e.f.State().ECUs {
		if f.ConnectorID == e.connector && f.RequestID == e.requestID {
			return tallyBudget - f.Fault.PendingRequests
		}
	}
	return -1 // cleared
}

// reached polls until the count reaches n and reports whether it did
// before stop was closed or within passed.
func (e *ecuTally) reached(n int, within time.Duration, stop <-chan struct{}) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for e.count() < n {
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-stop:
			return false
		}
	}
	return true
}

// waitFor polls until the count reaches n, failing after within.
func (e *ecuTally) waitFor(n int, within time.Duration) {
	e.t.Helper()
	if !e.reached(n, within, nil) {
		e.t.Fatalf("ECU %#x saw %d requests after %s, want at least %d", e.requestID, e.count(), within, n)
	}
}

func (e *ecuTally) stop() {
	_ = e.f.SetECUFault(e.connector, e.requestID, fake.ECUFault{})
}

// wantCode fails unless err carries code and every one of parts.
func wantCode(t *testing.T, what string, err error, code codes.Code, parts ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s = %v, want %s", what, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(status.Convert(err).Message(), p) {
			t.Errorf("%s = %v, want the message to name %q", what, err, p)
		}
	}
}

func vinAnswer(vin string) []byte { return append([]byte{0x62, 0xF1, 0x90}, vin...) }

// TestRelayConfigureBusAndReadVIN proves the runner's basic path: a leased
// session's buses are replaced through ConfigureBus (invalid configurations
// are refused with INVALID_ARGUMENT naming the offending field and leave the
// session untouched), and the VIN is read over Exchange (matched by
// correlation id) and over Send. An Exchange stream open while the buses
// are replaced ends with UNAVAILABLE saying so, rather than failing every
// later request, and the runner reopens it.
func TestRelayConfigureBusAndReadVIN(t *testing.T) {
	g := newRelayRig(t, rigOptions{})
	ctx := g.ctx
	can := func(name string, plus, minus, rate uint32) *orchestratorv1.Bus {
		return &orchestratorv1.Bus{Name: name, Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{
			PinPlus: plus, PinMinus: minus, BitRate: rate, Protocol: orchestratorv1.CanProtocol_CAN_PROTOCOL_ISOTP,
		}}}
	}
	early := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))

	invalid := []struct {
		name  string
		buses []*orchestratorv1.Bus
		field string
	}{
		{"duplicate names", []*orchestratorv1.Bus{can("can0", 6, 14, 500000), can("can0", 3, 11, 500000)}, "buses[1].name"},
		{"shared pins", []*orchestratorv1.Bus{can("can0", 6, 14, 500000), can("can1", 6, 11, 500000)}, "buses[1].can.pin_plus"},
		{"bad bit rate", []*orchestratorv1.Bus{can("can0", 6, 14, 499999)}, "buses[0].can.bit_rate"},
		{"five buses", []*orchestratorv1.Bus{
			can("can0", 6, 14, 500000), can("can1", 3, 11, 500000), can("can2", 1, 9, 125000),
			can("can3", 12, 13, 250000), can("can4", 4, 5, 500000),
		}, "buses"},
		{"no buses", nil, "buses"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.r.client.ConfigureBus(ctx, &orchestratorv1.ConfigureBusRequest{
				SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(), Buses: tt.buses,
			})
			wantCode(t, "ConfigureBus", err, codes.InvalidArgument, tt.field)
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if len(fields) != 1 || fields[0] != tt.field {
				t.Errorf("ConfigureBus error names fields %q, want [%s]", fields, tt.field)
			}
		})
	}
	got, err := g.r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: g.sessionID()})
	if err != nil {
		t.Fatal(err)
	}
	if b := got.GetSession().GetBuses(); len(b) != 1 || b[0].GetName() != "can0" {
		t.Fatalf("after refused configurations the session has buses %v, want the default can0 only", b)
	}

	resp, err := g.r.client.ConfigureBus(ctx, &orchestratorv1.ConfigureBusRequest{
		SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(),
		Buses: []*orchestratorv1.Bus{can("can0", 6, 14, 500000), can("can1", 3, 11, 250000)},
	})
	if err != nil {
		t.Fatalf("ConfigureBus(can0, can1): %v", err)
	}
	if b := resp.GetSession().GetBuses(); len(b) != 2 || b[0].GetName() != "can0" || b[1].GetName() != "can1" ||
		b[1].GetCan().GetBitRate() != 250000 {
		t.Errorf("ConfigureBus returned buses %v, want can0 and can1 at 250 kbit/s", b)
	}
	if s := resp.GetSession().GetState(); s != orchestratorv1.SessionState_SESSION_STATE_RUNNING {
		t.Errorf("session is %s after ConfigureBus, want RUNNING", s)
	}

	want := vinAnswer(g.vin())
	ex := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	if ex.opened.GetSession().GetId() != g.sessionID() || ex.opened.GetChannel().GetRequestId() != engineRequestID ||
		ex.opened.GetChannel().GetResponseId() != engineRequestID+8 || ex.opened.GetChannel().GetBusName() != "can0" {
		t.Errorf("opened = %v, want the session and the engine channel", ex.opened)
	}
	r := ex.roundTrip(42, readVIN, 0)
	if r.GetError() != nil || r.GetNegative() || !bytes.Equal(r.GetPayload(), want) {
		t.Fatalf("Exchange VIN response = %v, want payload % X", r, want)
	}
	if r.GetAttempts() != 1 || r.GetTotalTime().AsDuration() <= 0 {
		t.Errorf("Exchange VIN response: attempts %d, total time %s; want 1 attempt and a time", r.GetAttempts(), r.GetTotalTime().AsDuration())
	}
	// Requests are answered in order, each with its own correlation id.
	for _, cid := range []uint64{7, 1 << 40, 0} {
		if err := ex.request(cid, readVIN, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, cid := range []uint64{7, 1 << 40, 0} {
		r, err := ex.recv()
		if err != nil || r.GetCorrelationId() != cid || !bytes.Equal(r.GetPayload(), want) {
			t.Fatalf("pipelined response = %v, %v; want correlation id %d with the VIN", r, err, cid)
		}
	}

	sr := g.mustSend(readVIN)
	if sr.GetNegative() || !bytes.Equal(sr.GetPayload(), want) || sr.GetAttempts() != 1 {
		t.Errorf("Send VIN = %v, want payload % X in one attempt", sr, want)
	}

	// The stream open while the buses were replaced has ended, on its own.
	_, err = early.recv()
	wantCode(t, "Exchange open across ConfigureBus", err, codes.Unavailable, "bus configuration replaced")

	if err := ex.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Exchange after CloseSend ended with %v, want io.EOF", err)
	}
}

// TestRelayResponsePendingRunsToCompletion proves that NRC 0x78 extends the
// wait: routine 0xFF00 answers "response pending" three times before its
// result, later than the request's own timeout, and both Send and Exchange
// return the positive result.
func TestRelayResponsePendingRunsToCompletion(t *testing.T) {
	const spacing = 200 * time.Millisecond
	g := newRelayRig(t, rigOptions{openobd: fake.Options{RoutinePendingSpacing: spacing}})
	want := []byte{0x71, 0x01, 0xFF, 0x00, 0x00}
	// The result comes 3 spacings after the request, past the request's
	// timeout; the first "pending" comes well within it, even on a loaded
	// machine.
	const timeout = 2 * spacing

	resp, err := g.sendTo(g.ctx, g.acq, engineRequestID, startRoutine, timeout)
	if err != nil {
		t.Fatalf("Send(31 01 FF 00) = %v, want the routine's result", err)
	}
	if resp.GetNegative() || !bytes.Equal(resp.GetPayload(), want) {
		t.Errorf("Send(31 01 FF 00) = % X (negative %v), want % X", resp.GetPayload(), resp.GetNegative(), want)
	}
	if d := resp.GetEcuTime().AsDuration(); d < 3*spacing {
		t.Errorf("ECU time %s, want at least %s (three pending answers)", d, 3*spacing)
	}

	ex := openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	r := ex.roundTrip(5, startRoutine, timeout)
	if r.GetError() != nil || r.GetNegative() || !bytes.Equal(r.GetPayload(), want) {
		t.Errorf("Exchange(31 01 FF 00) = %v, want payload % X", r, want)
	}
}

// TestRelayNegativeResponses proves that a negative answer is a successful
// call with negative=true and the NRC, on Send and on Exchange, and that
// the channel answers the next request normally.
func TestRelayNegativeResponses(t *testing.T) {
	g := newRelayRig(t, rigOptions{})
	ex := openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	tests := []struct {
		name    string
		payload []byte
		nrc     uint32
	}{
		{"unknown DID", readUnknownDID, 0x31},
		{"unknown service", []byte{0xBA, 0x01}, 0x11},
		{"write outside the extended session", []byte{0x2E, 0x01, 0x01, 0, 0, 0, 2}, 0x7F},
		{"unknown routine", []byte{0x31, 0x01, 0x12, 0x34}, 0x31},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := []byte{0x7F, tt.payload[0], byte(tt.nrc)}
			resp, err := g.send(g.ctx, tt.payload)
			if err != nil {
				t.Fatalf("Send(% X) = %v, want a negative response", tt.payload, err)
			}
			if !resp.GetNegative() || resp.GetNrc() != tt.nrc || !bytes.Equal(resp.GetPayload(), want) {
				t.Errorf("Send(% X) = negative %v NRC %#x payload % X, want NRC %#x payload % X",
					tt.payload, resp.GetNegative(), resp.GetNrc(), resp.GetPayload(), tt.nrc, want)
			}
			r := ex.roundTrip(uint64(100+i), tt.payload, 0)
			if r.GetError() != nil || !r.GetNegative() || r.GetNrc() != tt.nrc || !bytes.Equal(r.GetPayload(), want) {
				t.Errorf("Exchange(% X) = %v, want negative with NRC %#x", tt.payload, r, tt.nrc)
			}
		})
	}
	if r := ex.roundTrip(1, readVIN, 0); r.GetNegative() || r.GetError() != nil {
		t.Errorf("Exchange after negative answers = %v, want the VIN", r)
	}
}

// TestRelayTimeout proves that an ECU that stays silent gives
// DEADLINE_EXCEEDED (with the request echoed) on Send and a TIMEOUT error
// response on Exchange, and that both stay usable once the ECU answers
// again.
func TestRelayTimeout(t *testing.T) {
	g := newRelayRig(t, rigOptions{})
	const timeout = 150 * time.Millisecond
	if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, fake.ECUFault{Silent: true}); err != nil {
		t.Fatal(err)
	}
	_, err := g.sendTo(g.ctx, g.acq, engineRequestID, readVIN, timeout)
	wantCode(t, "Send to a silent ECU", err, codes.DeadlineExceeded, "22 F1 90")

	ex := openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	start := time.Now()
	r := ex.roundTrip(9, readVIN, timeout)
	if r.GetError().GetCode() != orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT ||
		!strings.Contains(r.GetError().GetMessage(), "22 F1 90") || len(r.GetPayload()) != 0 {
		t.Errorf("Exchange to a silent ECU = %v, want error TIMEOUT naming 22 F1 90", r)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("timeout reported after %s, before the request's %s", d, timeout)
	}

	if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, fake.ECUFault{}); err != nil {
		t.Fatal(err)
	}
	want := vinAnswer(g.vin())
	if r := ex.roundTrip(10, readVIN, timeout); r.GetError() != nil || !bytes.Equal(r.GetPayload(), want) {
		t.Errorf("Exchange after a timeout = %v, want the VIN on the same stream", r)
	}
	if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), want) {
		t.Errorf("Send after a timeout = % X, want the VIN", r.GetPayload())
	}
}

// TestRelayStreamDrop proves the relay's behaviour when openOBD drops the
// ISO-TP stream while a request is at the ECU: a read-only request (or one
// marked idempotent) is sent again on the reopened stream and succeeds; any
// other request fails with UNAVAILABLE and reaches the ECU exactly once. The
// session stays usable after the reopen, on Send and on the same Exchange
// stream.
func TestRelayStreamDrop(t *testing.T) {
	g := newRelayRig(t, rigOptions{openobd: fake.Options{RoutinePendingSpacing: 30 * time.Millisecond}})
	// Every request gets three pending answers first: ~90 ms at the ECU.
	tally := g.tally(engineRequestID, 3)
	defer tally.stop()

	// inFlight runs call, drops the session's streams once its request has
	// reached the ECU and returns how many requests the ECU saw meanwhile.
	inFlight := func(call func()) int {
		t.Helper()
		before := tally.count()
		returned := make(chan struct{})
		dropped := make(chan error, 1)
		go func() {
			if !tally.reached(before+1, 5*time.Second, returned) {
				dropped <- errors.New("the request did not reach the ECU")
				return
			}
			dropped <- g.faults().DropStreams(g.openOBDID())
		}()
		call()
		close(returned)
		if err := <-dropped; err != nil {
			t.Fatalf("dropping the stream under the request: %v", err)
		}
		return tally.count() - before
	}
	want := vinAnswer(g.vin())

	t.Run("Send read is re-sent", func(t *testing.T) {
		var (
			resp *orchestratorv1.SendResponse
			err  error
		)
		seen := inFlight(func() { resp, err = g.send(g.ctx, readVIN) })
		if err != nil || !bytes.Equal(resp.GetPayload(), want) || resp.GetAttempts() != 2 {
			t.Errorf("Send(22 F1 90) across a drop = %v, %v; want the VIN after 2 attempts", resp, err)
		}
		if seen != 2 {
			t.Errorf("the ECU saw the read %d times, want 2", seen)
		}
	})
	t.Run("Send routine is not re-sent", func(t *testing.T) {
		var err error
		seen := inFlight(func() { _, err = g.send(g.ctx, startRoutine) })
		wantCode(t, "Send(31 01 FF 00) across a drop", err, codes.Unavailable, "31 01 FF 00", "not re-sent")
		if seen != 1 {
			t.Errorf("the ECU saw the routine start %d times, want exactly 1", seen)
		}
	})
	t.Run("Send marked idempotent is re-sent", func(t *testing.T) {
		var (
			resp *orchestratorv1.SendResponse
			err  error
		)
		seen := inFlight(func() {
			resp, err = g.r.client.Send(g.ctx, &orchestratorv1.SendRequest{
				SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(), Channel: ecuChannel(engineRequestID),
				Payload: routineResults, Idempotent: true,
			})
		})
		if err != nil || resp.GetNegative() || resp.GetAttempts() != 2 || seen != 2 {
			t.Errorf("Send(31 03 FF 00, idempotent) across a drop = %v, %v, ECU saw it %d times; want a result after 2 attempts", resp, err, seen)
		}
	})
	t.Run("Exchange", func(t *testing.T) {
		ex := openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
		var r *orchestratorv1.UdsResponse
		seen := inFlight(func() { r = ex.roundTrip(1, readVIN, 0) })
		if r.GetError() != nil || !bytes.Equal(r.GetPayload(), want) || r.GetAttempts() != 2 || seen != 2 {
			t.Errorf("Exchange read across a drop = %v, ECU saw it %d times; want the VIN after 2 attempts", r, seen)
		}
		seen = inFlight(func() { r = ex.roundTrip(2, startRoutine, 0) })
		if r.GetError().GetCode() != orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_UNAVAILABLE ||
			!strings.Contains(r.GetError().GetMessage(), "31 01 FF 00") || r.GetAttempts() != 1 || len(r.GetPayload()) != 0 {
			t.Errorf("Exchange routine across a drop = %v, want error UNAVAILABLE naming the request after 1 attempt", r)
		}
		if seen != 1 {
			t.Errorf("the ECU saw the routine start %d times, want exactly 1", seen)
		}
		// The same stream goes on over the reopened openOBD stream.
		if r := ex.roundTrip(3, readVIN, 0); r.GetError() != nil || !bytes.Equal(r.GetPayload(), want) || r.GetAttempts() != 1 {
			t.Errorf("Exchange after the drop = %v, want the VIN in one attempt", r)
		}
	})
	if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), want) {
		t.Errorf("Send after the drops = % X, want the VIN", r.GetPayload())
	}
	if got, err := g.r.client.GetSession(g.ctx, &orchestratorv1.GetSessionRequest{SessionId: g.sessionID()}); err != nil ||
		got.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING {
		t.Errorf("session after the drops = %v, %v; want RUNNING", got.GetSession().GetState(), err)
	}
}

// TestRelayInterruptAbortsRunner proves that an interrupt from the control
// plane reaches the runner holding the session as ABORTED naming the actor
// and the reason: on its next Send, on an Exchange stream with a request in
// flight, and on an idle Exchange stream, which ends without waiting for
// the runner's next request.
func TestRelayInterruptAbortsRunner(t *testing.T) {
	g := newRelayRig(t, rigOptions{})
	ctx := g.ctx
	idle := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
	idle.roundTrip(1, readVIN, 0)
	busy := openExchange(ctx, t, g.r.client, g.acq, ecuChannel(transmissionID))
	if err := g.faults().SetECUFault(g.connectorID(), transmissionID, fake.ECUFault{Silent: true}); err != nil {
		t.Fatal(err)
	}
	if err := busy.request(1, readVIN, 30*time.Second, false); err != nil {
		t.Fatal(err)
	}
	// Let the request reach the relay before the interrupt.
	time.Sleep(50 * time.Millisecond)

	const reason = "bay needed for another vehicle"
	resp, err := g.r.client.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: g.sessionID(), Reason: reason})
	if err != nil {
		t.Fatalf("InterruptSession: %v", err)
	}
	actor := resp.GetSession().GetActor()
	if actor == "" || resp.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED {
		t.Fatalf("interrupted session = %s by %q, want INTERRUPTED with an actor", resp.GetSession().GetState(), actor)
	}

	_, err = g.send(ctx, readVIN)
	wantCode(t, "Send after the interrupt", err, codes.Aborted, actor, reason)

	for name, e := range map[string]*exchangeStream{"busy": busy, "idle": idle} {
		done := make(chan error, 1)
		go func() {
			for {
				if _, err := e.recv(); err != nil {
					done <- err
					return
				}
			}
		}()
		select {
		case err := <-done:
			wantCode(t, name+" Exchange after the interrupt", err, codes.Aborted, actor, reason)
		case <-time.After(3 * time.Second):
			t.Fatalf("%s Exchange stream still open 3 s after the interrupt", name)
		}
	}
	_, err = g.r.client.ConfigureBus(ctx, &orchestratorv1.ConfigureBusRequest{
		SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(), Buses: []*orchestratorv1.Bus{{
			Name: "can0", Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}},
		}},
	})
	wantCode(t, "ConfigureBus after the interrupt", err, codes.Aborted, reason)
}

// TestRelayLeaseExpiry proves the lease's life: a runner that goes silent
// loses its lease after the TTL (the orchestrator's default, as the call
// leaves lease_ttl out) and the session returns to READY with the history
// saying why; the old lease then gets FAILED_PRECONDITION. A runner that
// keeps sending keeps its lease, and AcquireSession with renew_lease_id
// extends it.
func TestRelayLeaseExpiry(t *testing.T) {
	// The renewal a runner's traffic asks for is written by the session's
	// reconcile once a third to a half of the TTL has passed; leave room for
	// a busy machine.
	const ttl = 1500 * time.Millisecond
	const pastExpiry = ttl + 1500*time.Millisecond
	g := newRelayRig(t, rigOptions{cfg: orchestrator.Config{LeaseTTL: ttl}})
	ctx := g.ctx
	if d := g.acq.GetExpireTime().AsTime().Sub(g.acq.GetSession().GetUpdateTime().AsTime()); d <= 0 || d > ttl+100*time.Millisecond {
		t.Errorf("lease expires %s after acquisition, want the default TTL %s", d, ttl)
	}

	rec := g.r.waitState(ctx, t, g.sessionID(), orchestratorv1.SessionState_SESSION_STATE_READY)
	last := rec.GetHistory()[len(rec.GetHistory())-1]
	if last.GetFrom() != orchestratorv1.SessionState_SESSION_STATE_RUNNING || last.GetReason() != "runner lease expired" {
		t.Errorf("last transition = %v, want RUNNING -> READY with reason %q", last, "runner lease expired")
	}
	if rec.GetLease() != nil {
		t.Errorf("READY session still shows lease %v", rec.GetLease())
	}
	_, err := g.send(ctx, readVIN)
	wantCode(t, "Send with an expired lease", err, codes.FailedPrecondition)
	_, err = g.r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-1", RenewLeaseId: g.acq.GetLeaseId()})
	wantCode(t, "renewing an expired lease", err, codes.FailedPrecondition)

	// Traffic keeps the lease alive.
	busy := g.acquire("busy-runner")
	if busy.GetSession().GetId() != g.sessionID() {
		t.Fatalf("acquired %s, want the session that came back", busy.GetSession().GetId())
	}
	for end := time.Now().Add(pastExpiry); time.Now().Before(end); time.Sleep(ttl / 6) {
		if _, err := g.sendTo(ctx, busy, engineRequestID, readVIN, 0); err != nil {
			t.Fatalf("Send while keeping the lease alive: %v", err)
		}
	}
	got, err := g.r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: g.sessionID()})
	if err != nil || got.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING ||
		got.GetSession().GetLease().GetHolder() != "busy-runner" {
		t.Fatalf("session after steady traffic = %v, %v; want RUNNING held by busy-runner", got.GetSession(), err)
	}

	// Renewing extends the lease without traffic.
	renewed, err := g.r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{
		Runner: "busy-runner", RenewLeaseId: busy.GetLeaseId(), LeaseTtl: durationpb.New(5 * time.Second),
	})
	if err != nil {
		t.Fatalf("renewing the lease: %v", err)
	}
	if renewed.GetLeaseId() != busy.GetLeaseId() || renewed.GetSession().GetId() != g.sessionID() ||
		!renewed.GetExpireTime().AsTime().After(busy.GetExpireTime().AsTime().Add(4*time.Second)) {
		t.Errorf("renewal = lease %s on %s until %s, want the same lease about 5 s ahead",
			renewed.GetLeaseId(), renewed.GetSession().GetId(), renewed.GetExpireTime().AsTime())
	}
	time.Sleep(pastExpiry)
	if _, err := g.sendTo(ctx, busy, engineRequestID, readVIN, 0); err != nil {
		t.Fatalf("Send with the renewed lease after the old TTL: %v", err)
	}
	got, err = g.r.client.GetSession(ctx, &orchestratorv1.GetSessionRequest{SessionId: g.sessionID()})
	if err != nil || got.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING {
		t.Errorf("session after renewal = %v, %v; want RUNNING", got.GetSession().GetState(), err)
	}
}

// TestRelayAcquireNeverShares proves that concurrent AcquireSession calls
// never lease one session twice: with more runners than READY sessions,
// each session goes to exactly one runner and the others wait until their
// deadline and get DEADLINE_EXCEEDED.
func TestRelayAcquireNeverShares(t *testing.T) {
	const sessions, runners = 3, 10
	const wait = 3 * time.Second
	g := newRelayRig(t, rigOptions{tickets: sessions, noAcquire: true})
	type result struct {
		runner  string
		acq     *orchestratorv1.AcquireSessionResponse
		err     error
		elapsed time.Duration
	}
	results := make([]result, runners)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range runners {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(g.ctx, wait)
			defer cancel()
			name := fmt.Sprintf("runner-%d", i)
			t0 := time.Now()
			acq, err := g.r.client.AcquireSession(ctx, &orchestratorv1.AcquireSessionRequest{Runner: name})
			results[i] = result{runner: name, acq: acq, err: err, elapsed: time.Since(t0)}
		})
	}
	close(start)
	wg.Wait()

	holders := map[string]string{} // session id -> runner
	for _, res := range results {
		if res.err != nil {
			if status.Code(res.err) != codes.DeadlineExceeded {
				t.Errorf("%s: AcquireSession = %v, want a session or DEADLINE_EXCEEDED", res.runner, res.err)
			}
			if res.elapsed < wait-50*time.Millisecond {
				t.Errorf("%s gave up after %s, before its %s deadline", res.runner, res.elapsed, wait)
			}
			continue
		}
		id := res.acq.GetSession().GetId()
		if other, ok := holders[id]; ok {
			t.Errorf("session %s leased to both %s and %s", id, other, res.runner)
		}
		holders[id] = res.runner
	}
	if len(holders) != sessions {
		t.Fatalf("%d sessions leased, want all %d", len(holders), sessions)
	}
	for id, runner := range holders {
		got, err := g.r.client.GetSession(g.ctx, &orchestratorv1.GetSessionRequest{SessionId: id})
		if err != nil {
			t.Fatal(err)
		}
		if s := got.GetSession(); s.GetState() != orchestratorv1.SessionState_SESSION_STATE_RUNNING || s.GetLease().GetHolder() != runner {
			t.Errorf("session %s is %s held by %q, want RUNNING held by %s", id, s.GetState(), s.GetLease().GetHolder(), runner)
		}
	}
}

// TestRelayLeaseRequired proves that a call on a leased session needs that
// session's own lease: no lease id, a wrong one or another session's lease
// get FAILED_PRECONDITION on every call that touches the session, and so
// does a lease presented for a session nobody acquired. No refused call
// changes a session.
func TestRelayLeaseRequired(t *testing.T) {
	g := newRelayRig(t, rigOptions{tickets: 3})
	other := g.acquire("runner-2")
	var ready string // the session nobody acquired
	list, err := g.r.client.ListSessions(g.ctx, &orchestratorv1.ListSessionsRequest{
		States: []orchestratorv1.SessionState{orchestratorv1.SessionState_SESSION_STATE_READY},
	})
	if err != nil || len(list.GetSessions()) != 1 {
		t.Fatalf("ListSessions(READY) = %v, %v; want the one session left", list.GetSessions(), err)
	}
	ready = list.GetSessions()[0].GetId()
	bus := []*orchestratorv1.Bus{{Name: "can0", Definition: &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{PinPlus: 6, PinMinus: 14, BitRate: 500000}}}}
	result := &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}}

	calls := map[string]func(session, lease string) error{
		"Send": func(session, lease string) error {
			_, err := g.r.client.Send(g.ctx, &orchestratorv1.SendRequest{SessionId: session, LeaseId: lease, Channel: ecuChannel(engineRequestID), Payload: readVIN})
			return err
		},
		"ConfigureBus": func(session, lease string) error {
			_, err := g.r.client.ConfigureBus(g.ctx, &orchestratorv1.ConfigureBusRequest{SessionId: session, LeaseId: lease, Buses: bus})
			return err
		},
		"FinishSession": func(session, lease string) error {
			_, err := g.r.client.FinishSession(g.ctx, &orchestratorv1.FinishSessionRequest{SessionId: session, LeaseId: lease, Result: result})
			return err
		},
		"Exchange": func(session, lease string) error {
			e, err := tryOpenExchange(g.ctx, g.r.client, &orchestratorv1.OpenChannel{SessionId: session, LeaseId: lease, Channel: ecuChannel(engineRequestID)})
			if err == nil {
				_ = e.s.CloseSend()
			}
			return err
		},
	}
	cases := []struct{ name, session, lease string }{
		{"no lease", g.sessionID(), ""},
		{"wrong lease", g.sessionID(), "00000000-0000-4000-8000-000000000000"},
		{"another session's lease", g.sessionID(), other.GetLeaseId()},
		{"lease on a session nobody acquired", ready, g.acq.GetLeaseId()},
	}
	for _, c := range cases {
		for name, call := range calls {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				wantCode(t, name, call(c.session, c.lease), codes.FailedPrecondition, "lease")
			})
		}
	}
	_, err = g.r.client.AcquireSession(g.ctx, &orchestratorv1.AcquireSessionRequest{Runner: "runner-3", RenewLeaseId: "00000000-0000-4000-8000-000000000000"})
	wantCode(t, "renewing an unknown lease", err, codes.FailedPrecondition)

	// The sessions are as they were: both leases still work, the third is
	// still READY.
	for _, acq := range []*orchestratorv1.AcquireSessionResponse{g.acq, other} {
		if _, err := g.sendTo(g.ctx, acq, engineRequestID, readVIN, 0); err != nil {
			t.Errorf("Send on %s with its own lease after refused calls: %v", acq.GetSession().GetId(), err)
		}
	}
	if got, err := g.r.client.GetSession(g.ctx, &orchestratorv1.GetSessionRequest{SessionId: ready}); err != nil ||
		got.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_READY {
		t.Errorf("untouched session = %v, %v; want READY", got.GetSession().GetState(), err)
	}
}

// exchangeGoroutines counts the goroutines that run an Exchange handler of
// the control plane or its relay loop.
func exchangeGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("controlplane.(*Service).Exchange")) || bytes.Contains(g, []byte("controlplane.(*Service).relay")) {
			n++
		}
	}
	return n
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestRelayStalledRunnerIsCut proves the backpressure of Exchange: a runner
// that pushes thousands of requests and never reads a response is blocked by
// flow control (the orchestrator's memory stays bounded) and, once the
// stall timeout passes, the server ends its stream without waiting for the
// runner to read. When the runner reads at last, it gets the few responses
// already sent and RESOURCE_EXHAUSTED. The session stays usable.
func TestRelayStalledRunnerIsCut(t *testing.T) {
	const stall = 300 * time.Millisecond
	g := newRelayRig(t, rigOptions{svc: controlplane.Options{StallTimeout: stall}})
	ctx := g.ctx
	slow := orchestratorv1.NewOrchestratorServiceClient(g.r.dial(
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ex := openExchange(sctx, t, slow, g.acq, ecuChannel(engineRequestID))
	if n := exchangeGoroutines(); n == 0 {
		t.Fatal("no Exchange handler running after the stream opened")
	}

	before := heapInuse()
	var sent atomic.Int64
	pushed := make(chan error, 1)
	go func() {
		// Each answer is a 4000-byte record: flow control fills quickly.
		for i := range 1 << 20 {
			if err := ex.request(uint64(i), readLarge, 0, false); err != nil {
				pushed <- err
				return
			}
			sent.Add(1)
		}
		pushed <- nil
	}()

	// The server cuts the stream although the runner reads nothing.
	for exchangeGoroutines() > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("Exchange handler still running after the runner stalled (%d requests pushed)", sent.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Wait until the runner's sends are blocked, then measure.
	for last := int64(-1); last != sent.Load(); time.Sleep(50 * time.Millisecond) {
		last = sent.Load()
	}
	if n := sent.Load(); n < 1000 {
		t.Errorf("the runner pushed only %d requests before flow control stopped it, want thousands", n)
	}
	grown := int64(heapInuse()) - int64(before)
	if grown > 32<<20 {
		t.Errorf("heap grew by %d MiB while a stalled runner pushed %d requests, want under 32 MiB", grown>>20, sent.Load())
	}
	t.Logf("a stalled runner pushed %d requests; the heap grew by %d KiB", sent.Load(), grown>>10)

	responses := 0
	var err error
	for {
		var r *orchestratorv1.UdsResponse
		if r, err = ex.recv(); err != nil {
			break
		}
		if r.GetCorrelationId() != uint64(responses) || len(r.GetPayload()) != 3+fake.LargeRecordSize {
			t.Fatalf("buffered response %d = correlation %d with %d bytes, want %d with the record", responses, r.GetCorrelationId(), len(r.GetPayload()), responses)
		}
		responses++
	}
	wantCode(t, "stalled Exchange", err, codes.ResourceExhausted, "stalled")
	t.Logf("%d responses were buffered for the stalled runner", responses)
	if responses > 64 {
		t.Errorf("%d responses were buffered for the stalled runner, want only what flow control allows", responses)
	}
	select {
	case <-pushed:
	case <-ctx.Done():
		t.Fatal("the runner's sends stayed blocked after the stream ended")
	}
	cancel()
	if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), vinAnswer(g.vin())) {
		t.Errorf("Send after a stalled runner was cut = % X, want the VIN", r.GetPayload())
	}
}

// TestRelaySaturatedStreamsDoNotDeadlock proves that a runner saturating
// both directions of several Exchange streams at once (sending as fast as
// flow control allows while reading) gets every response, each matched to
// its request by correlation id: none lost, duplicated or mixed up, even
// with two streams sharing one ECU channel.
func TestRelaySaturatedStreamsDoNotDeadlock(t *testing.T) {
	const perStream = 300
	g := newRelayRig(t, rigOptions{})
	v, _ := g.w.jf.OpenOBD.Vehicle(g.connectorID())
	ecus := map[uint32]string{}
	for _, e := range v.ECUs() {
		ecus[e.RequestID] = e.Name
	}
	serial := func(requestID uint32) []byte {
		tag := strings.ToUpper(ecus[requestID])[:3]
		return append([]byte{0x62, 0xF1, 0x8C}, fmt.Sprintf("%s%08X", tag, requestID)...)
	}
	large := append([]byte{0x62, 0x12, 0x34}, make([]byte, fake.LargeRecordSize)...)
	for i := range fake.LargeRecordSize {
		large[3+i] = byte(i)
	}
	// request returns what to send as correlation id cid and what must come
	// back for it.
	request := func(requestID uint32, cid uint64) (req, want []byte) {
		switch cid % 4 {
		case 0:
			return readVIN, vinAnswer(g.vin())
		case 1:
			return readSerial, serial(requestID)
		case 2:
			return readUnknownDID, []byte{0x7F, 0x22, 0x31}
		}
		return readLarge, large
	}

	streams := []uint32{engineRequestID, engineRequestID, transmissionID, 0x7E2}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(streams))
	for si, requestID := range streams {
		ex := openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(requestID))
		base := uint64(si) << 32 // correlation ids unique across streams
		wg.Go(func() {
			for i := range uint64(perStream) {
				req, _ := request(requestID, i)
				if err := ex.request(base|i, req, 0, false); err != nil {
					errs <- fmt.Errorf("stream %d: send %d: %w", si, i, err)
					return
				}
			}
			if err := ex.s.CloseSend(); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			seen := make(map[uint64]bool, perStream)
			for {
				r, err := ex.recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errs <- fmt.Errorf("stream %d: recv after %d responses: %w", si, len(seen), err)
					return
				}
				cid := r.GetCorrelationId()
				if cid&^0xFFFFFFFF != base || seen[cid] {
					errs <- fmt.Errorf("stream %d: unexpected or repeated correlation id %#x", si, cid)
					return
				}
				seen[cid] = true
				_, want := request(requestID, cid&0xFFFFFFFF)
				if r.GetError() != nil || !bytes.Equal(r.GetPayload(), want) {
					errs <- fmt.Errorf("stream %d: correlation %#x answered % X (error %v), want % X", si, cid, head(r.GetPayload()), r.GetError(), head(want))
					return
				}
			}
			if len(seen) != perStream {
				errs <- fmt.Errorf("stream %d: %d responses, want %d", si, len(seen), perStream)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-g.ctx.Done():
		t.Fatal("saturated Exchange streams did not finish: deadlock")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// fakeClock is a settable clock for the fake openOBD, whose simulated ECUs
// time their diagnostic sessions (S3) by it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRelayTesterPresent proves that after 10 03 the relay keeps the ECU in
// its extended session with tester present, well past the ECU's 5 s S3
// timeout without runner traffic, also after openOBD dropped the ISO-TP
// stream; and that 10 01 stops tester present.
func TestRelayTesterPresent(t *testing.T) {
	const interval = 20 * time.Millisecond
	clk := &fakeClock{now: time.Now()}
	g := newRelayRig(t, rigOptions{
		openobd: fake.Options{Now: clk.Now, RoutinePendingSpacing: 5 * time.Millisecond},
		cfg:     orchestrator.Config{TesterPresentInterval: interval},
	})
	v, _ := g.w.jf.OpenOBD.Vehicle(g.connectorID())
	session := func() byte {
		s, _ := v.DiagnosticSession(clk.Now(), engineRequestID)
		return s
	}
	if r := g.mustSend(extendedSess); r.GetNegative() || r.GetPayload()[0] != 0x50 {
		t.Fatalf("10 03 = % X, want a positive answer", r.GetPayload())
	}
	// Tester present (3E 80) gets no answer, so the tally adds no delay to it.
	tally := g.tally(engineRequestID, 1)
	defer tally.stop()
	// keepsSession advances the fake clock by 4 s (the ECU's S3 is 5 s)
	// several times; tester present must reach the ECU each time.
	keepsSession := func(when string) {
		t.Helper()
		for range 3 {
			clk.Advance(4 * time.Second)
			// Two requests after the jump: the second was certainly handled
			// at the new time.
			tally.waitFor(tally.count()+2, 2*time.Second)
			if s := session(); s != fake.SessionExtended {
				t.Fatalf("%s: ECU in session %#x with tester present, want extended (%#x)", when, s, fake.SessionExtended)
			}
		}
	}
	keepsSession("after 10 03")

	if err := g.faults().DropStreams(g.openOBDID()); err != nil {
		t.Fatal(err)
	}
	keepsSession("after a dropped stream")

	// 10 01 stops tester present.
	if r := g.mustSend(defaultSess); r.GetNegative() {
		t.Fatalf("10 01 = % X, want a positive answer", r.GetPayload())
	}
	// A tester present already on its way when 10 01 was answered may still
	// arrive; none may follow it.
	time.Sleep(3 * interval)
	n := tally.count()
	time.Sleep(15 * interval)
	if got := tally.count(); got != n {
		t.Errorf("the ECU saw %d more requests after 10 01, want tester present stopped", got-n)
	}
	if s := session(); s != fake.SessionDefault {
		t.Errorf("ECU in session %#x after 10 01, want default", s)
	}
}

// TestRelayCloseWhileSending proves that calls racing the end of their
// channel all return, with a code that tells the runner what happened, and
// nothing panics or leaks (the package's TestMain checks goroutines): many
// goroutines send on Send and on Exchange streams while the session is
// interrupted, while the lease expires, and while openOBD drops the ISO-TP
// stream again and again.
func TestRelayCloseWhileSending(t *testing.T) {
	const senders, streams = 12, 2

	// run calls send(i) in senders goroutines until it returns false, and
	// waits for all of them within the test's deadline.
	run := func(t *testing.T, ctx context.Context, send func(i int) bool) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				for send(i) {
				}
			})
		}
		done := make(chan struct{})
		go func() {
			wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("calls did not all return")
		}
	}
	// exchangeUntilEnd sends requests on one Exchange stream, one at a time,
	// until the stream ends, and returns how it ended.
	exchangeUntilEnd := func(ex *exchangeStream, payload []byte, timeout time.Duration) error {
		for cid := uint64(0); ; cid++ {
			if err := ex.request(cid, payload, timeout, false); err != nil {
				_, err = ex.s.Recv()
				return err
			}
			if _, err := ex.recv(); err != nil {
				return err
			}
		}
	}
	openStreams := func(g *relayRig) []*exchangeStream {
		out := make([]*exchangeStream, streams)
		for i := range out {
			out[i] = openExchange(g.ctx, t, g.r.client, g.acq, ecuChannel(engineRequestID))
		}
		return out
	}

	t.Run("interrupt", func(t *testing.T) {
		g := newRelayRig(t, rigOptions{})
		exs := openStreams(g)
		var oks atomic.Int64
		final := make([]error, senders)
		interrupted := make(chan struct{})
		go func() {
			defer close(interrupted)
			for oks.Load() < 50 && g.ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			if _, err := g.r.client.InterruptSession(g.ctx, &orchestratorv1.InterruptSessionRequest{SessionId: g.sessionID(), Reason: "race"}); err != nil {
				t.Errorf("InterruptSession: %v", err)
			}
		}()
		run(t, g.ctx, func(i int) bool {
			if i < streams {
				final[i] = exchangeUntilEnd(exs[i], readVIN, 0)
				return false
			}
			_, err := g.send(g.ctx, readVIN)
			if err == nil {
				oks.Add(1)
				return true
			}
			final[i] = err
			return false
		})
		<-interrupted
		for i, err := range final {
			// Even a call that arrives after the session was let go and
			// before INTERRUPTED is recorded must see the interrupt.
			switch status.Code(err) {
			case codes.Aborted:
				if !strings.Contains(err.Error(), "race") {
					t.Errorf("call %d ended with %v, want the reason", i, err)
				}
			default:
				t.Errorf("call %d ended with %v, want ABORTED", i, err)
			}
		}
		_, err := g.send(g.ctx, readVIN)
		wantCode(t, "Send after the interrupt", err, codes.Aborted, "race")
	})

	t.Run("lease expiry", func(t *testing.T) {
		g := newRelayRig(t, rigOptions{cfg: orchestrator.Config{LeaseTTL: 300 * time.Millisecond}})
		exs := openStreams(g)
		// The ECU never answers, so no call renews the lease once it has
		// started, and each would wait far longer than the lease lives.
		if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, fake.ECUFault{Silent: true}); err != nil {
			t.Fatal(err)
		}
		final := make([]error, senders)
		run(t, g.ctx, func(i int) bool {
			if i < streams {
				final[i] = exchangeUntilEnd(exs[i], readVIN, 20*time.Second)
			} else {
				_, final[i] = g.sendTo(g.ctx, g.acq, engineRequestID, readVIN, 20*time.Second)
			}
			return false
		})
		for i, err := range final {
			if status.Code(err) != codes.FailedPrecondition {
				t.Errorf("call %d ended with %v, want FAILED_PRECONDITION (lease expired)", i, err)
			}
		}
		g.r.waitState(g.ctx, t, g.sessionID(), orchestratorv1.SessionState_SESSION_STATE_READY)
		if err := g.faults().SetECUFault(g.connectorID(), engineRequestID, fake.ECUFault{}); err != nil {
			t.Fatal(err)
		}
		next := g.acquire("runner-2")
		if _, err := g.sendTo(g.ctx, next, engineRequestID, readVIN, 0); err != nil {
			t.Errorf("Send by the next runner: %v", err)
		}
	})

	t.Run("stream drops", func(t *testing.T) {
		const callsEach = 40
		g := newRelayRig(t, rigOptions{})
		exs := openStreams(g)
		// Answers take a little while, so that most drops catch a request at
		// the ECU.
		g.faults().SetIsotpLatency(2 * time.Millisecond)
		stop := make(chan struct{})
		var dropper sync.WaitGroup
		dropper.Go(func() {
			tick := time.NewTicker(15 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if err := g.faults().DropStreams(g.openOBDID()); err != nil {
						t.Errorf("DropStreams: %v", err)
						return
					}
				}
			}
		})
		var oks, unavailable atomic.Int64
		calls := make([]int, senders)
		run(t, g.ctx, func(i int) bool {
			if calls[i]++; calls[i] > callsEach {
				return false
			}
			payload := readVIN
			if i%2 == 1 {
				payload = routineResults // not idempotent
			}
			if i < streams {
				ex := exs[i]
				if err := ex.request(uint64(calls[i]), payload, 0, false); err != nil {
					t.Errorf("Exchange send during stream drops: %v", err)
					return false
				}
				r, err := ex.recv()
				switch {
				case err != nil:
					t.Errorf("Exchange stream ended during stream drops: %v", err)
					return false
				case r.GetCorrelationId() != uint64(calls[i]):
					t.Errorf("Exchange answered correlation id %d, want %d", r.GetCorrelationId(), calls[i])
				case r.GetError() == nil:
					oks.Add(1)
				case r.GetError().GetCode() == orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_UNAVAILABLE:
					unavailable.Add(1)
				default:
					t.Errorf("Exchange during stream drops answered %v, want a response or UNAVAILABLE", r)
				}
				return true
			}
			_, err := g.send(g.ctx, payload)
			switch status.Code(err) {
			case codes.OK:
				oks.Add(1)
			case codes.Unavailable:
				unavailable.Add(1)
			default:
				t.Errorf("Send(% X) during stream drops = %v, want a response or UNAVAILABLE", payload, err)
			}
			return true
		})
		close(stop)
		dropper.Wait()
		t.Logf("during stream drops: %d answered, %d UNAVAILABLE", oks.Load(), unavailable.Load())
		if oks.Load() == 0 {
			t.Error("no call succeeded between the drops")
		}
		for _, ex := range exs {
			if r := ex.roundTrip(1<<20, readVIN, 0); r.GetError() != nil {
				t.Errorf("Exchange after the drops = %v, want the VIN", r)
			}
		}
		if r := g.mustSend(readVIN); !bytes.Equal(r.GetPayload(), vinAnswer(g.vin())) {
			t.Errorf("Send after the drops = % X, want the VIN", r.GetPayload())
		}
	})
}

// TestRelayUnconfiguredBusIsInvalid proves that a channel on a bus the
// session does not have fails at once with INVALID_ARGUMENT naming the
// field, is not sent to openOBD, and takes no channel slot.
func TestRelayUnconfiguredBusIsInvalid(t *testing.T) {
	g := newRelayRig(t, rigOptions{tickets: 1})
	for i := range 20 { // more than the 16 channel slots of a session
		_, err := g.r.client.Send(g.ctx, &orchestratorv1.SendRequest{
			SessionId: g.sessionID(), LeaseId: g.acq.GetLeaseId(),
			Channel: &orchestratorv1.Channel{BusName: "can9", RequestId: engineRequestID, ResponseId: engineRequestID + 8},
			Payload: []byte{0x22, 0xF1, 0x90},
		})
		wantCode(t, fmt.Sprintf("Send #%d on bus can9", i), err, codes.InvalidArgument, "channel.bus_name", "can9")
	}
	if got := g.mustSend([]byte{0x22, 0xF1, 0x90}); !bytes.Equal(got.GetPayload(), vinAnswer(g.vin())) {
		t.Errorf("Send on can0 after the refusals = % X, want the VIN", got.GetPayload())
	}
}

// TestRelayReadySessionByHand proves the grpcurl path: a READY session
// nobody leased answers Send without a lease id, and stays READY.
func TestRelayReadySessionByHand(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 1})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	s := r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 1)[0]
	resp, err := r.client.Send(ctx, &orchestratorv1.SendRequest{
		SessionId: s.GetId(), Channel: ecuChannel(engineRequestID), Payload: []byte{0x22, 0xF1, 0x90},
	})
	if err != nil {
		t.Fatalf("Send without a lease on a READY session = %v, want the VIN", err)
	}
	if want := vinAnswer(s.GetVin()); !bytes.Equal(resp.GetPayload(), want) {
		t.Errorf("Send = % X, want % X", resp.GetPayload(), want)
	}
	r.waitState(ctx, t, s.GetId(), orchestratorv1.SessionState_SESSION_STATE_READY)
}

// TestRelayLeaseExpiryCanFail proves FailOnLeaseExpiry: a silent runner's
// session is FAILED with the reason and its openOBD session interrupted, so
// nothing is left running on the vehicle.
func TestRelayLeaseExpiryCanFail(t *testing.T) {
	g := newRelayRig(t, rigOptions{cfg: orchestrator.Config{LeaseTTL: 200 * time.Millisecond, FailOnLeaseExpiry: true}})
	rec := g.r.waitState(g.ctx, t, g.sessionID(), orchestratorv1.SessionState_SESSION_STATE_FAILED)
	if rec.GetReason() != "runner lease expired" {
		t.Errorf("FAILED with reason %q, want %q", rec.GetReason(), "runner lease expired")
	}
	waitUntil(t, "the openOBD session ends", func() bool {
		s, ok := g.w.jf.OpenOBD.Session(g.openOBDID())
		return !ok || !s.State.Live()
	})
	_, err := g.send(g.ctx, readVIN)
	wantCode(t, "Send on the failed session", err, codes.FailedPrecondition)
}

package orchestratortest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator/orchestratortest"
	"github.com/obdorch/obdorch/sdk"
	"github.com/obdorch/obdorch/sdk/uds"
)

const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

var engineSpec = sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8}

// acquire dials env and acquires a session for the test.
func acquire(t *testing.T, ctx context.Context, env *orchestratortest.Env, opts sdk.AcquireOptions, dial ...sdk.Option) (*sdk.Client, *sdk.Session) {
	t.Helper()
	c, err := sdk.Dial(env.Addr, append([]sdk.Option{sdk.WithInsecure(), sdk.WithRunnerName(t.Name())}, dial...)...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.Acquire(ctx, opts)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	t.Cleanup(func() { _ = s.Release(context.WithoutCancel(ctx)) })
	return c, s
}

func channel(t *testing.T, ctx context.Context, s *sdk.Session, spec sdk.ChannelSpec) *sdk.Channel {
	t.Helper()
	ch, err := s.Channel(ctx, spec)
	if err != nil {
		t.Fatalf("Channel(0x%X): %v", spec.RequestID, err)
	}
	return ch
}

func wantNRC(t *testing.T, what string, err error, nrc uds.NRC) {
	t.Helper()
	var neg *uds.NegativeResponseError
	if !errors.As(err, &neg) || neg.NRC != nrc {
		t.Fatalf("%s = %v, want NRC %s (0x%02X)", what, err, nrc, byte(nrc))
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestHelpersAgainstFake(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)

	// 0x22
	vin, err := ch.ReadVIN(ctx)
	if err != nil || vin != s.Info().GetVin() || len(vin) != 17 {
		t.Fatalf("ReadVIN = %q, %v; want the session's VIN %q", vin, err, s.Info().GetVin())
	}
	recs, err := ch.ReadDataByIdentifier(ctx, uds.DID{ID: uds.DIDActiveDiagnosticSession, Size: 1}, uds.VIN, uds.DID{ID: uds.DIDECUSerialNumber})
	if err != nil || len(recs) != 3 || recs[0].Data[0] != 0x01 || string(recs[1].Data) != vin || string(recs[2].Data) != "ENG000007E0" {
		t.Fatalf("ReadDataByIdentifier(F186, F190, F18C) = %+v, %v", recs, err)
	}
	_, err = ch.ReadDID(ctx, 0xABCD)
	wantNRC(t, "ReadDID(ABCD)", err, uds.RequestOutOfRange)
	_, err = ch.Request(ctx, []byte{0x22, 0xF1})
	wantNRC(t, "Request(22 F1)", err, uds.IncorrectMessageLengthOrInvalidFormat)
	if _, err := ch.ReadDataByIdentifier(ctx, uds.DID{ID: 0xF18C}, uds.VIN); err == nil {
		t.Fatal("ReadDataByIdentifier without the first DID's size = nil error")
	}

	// 0x19, 0x14
	n, err := ch.ReadDTCCount(ctx, uds.AnyStatus)
	if err != nil || n.Count != 2 || n.Availability != 0xFF {
		t.Fatalf("ReadDTCCount = %+v, %v; want 2", n, err)
	}
	rep, err := ch.ReadDTCsByStatus(ctx, uds.AnyStatus)
	want := []uds.DTC{{Code: 0x030100, Status: 0x2F}, {Code: 0x042000, Status: 0x08}}
	if err != nil || !slices.Equal(rep.DTCs, want) {
		t.Fatalf("ReadDTCsByStatus = %v, %v; want %v", rep.DTCs, err, want)
	}
	sup, err := ch.ReadSupportedDTCs(ctx)
	if err != nil || len(sup.DTCs) != 3 || sup.DTCs[2].Name() != "P0171" || sup.DTCs[2].Status != 0 {
		t.Fatalf("ReadSupportedDTCs = %v, %v; want P0301, P0420 and P0171 (status 0)", sup.DTCs, err)
	}
	wantNRC(t, "ClearDiagnosticInformation(123456)", ch.ClearDiagnosticInformation(ctx, 0x123456), uds.RequestOutOfRange)
	must(t, "ClearDiagnosticInformation(all)", ch.ClearDiagnosticInformation(ctx, uds.AllDTCs))
	rep, err = ch.ReadDTCsByStatus(ctx, uds.ConfirmedDTC)
	if err != nil || len(rep.DTCs) != 0 {
		t.Fatalf("ReadDTCsByStatus(confirmed) after clearing = %v, %v; want none", rep.DTCs, err)
	}
	rep, err = ch.ReadDTCsByStatus(ctx, uds.AnyStatus)
	if err != nil || len(rep.DTCs) != 2 || rep.DTCs[0].Status != uds.TestNotCompletedSinceLastClear|uds.TestNotCompletedThisOperationCycle {
		t.Fatalf("ReadDTCsByStatus(any) after clearing = %v, %v; want two with status 0x50", rep.DTCs, err)
	}

	// 0x10, 0x2E, 0x27 in the wrong session
	wantNRC(t, "WriteDataByIdentifier(0101) in the default session", ch.WriteDataByIdentifier(ctx, 0x0101, []byte{0, 0, 0, 2}), uds.ServiceNotSupportedInActiveSession)
	wantNRC(t, "SecurityAccess in the default session", ch.SecurityAccess(ctx, 1, demoKey), uds.ServiceNotSupportedInActiveSession)
	_, err = ch.InputOutputControl(ctx, 0x0201, uds.ShortTermAdjustment, []byte{50})
	wantNRC(t, "InputOutputControl in the default session", err, uds.ServiceNotSupportedInActiveSession)
	_, err = ch.DiagnosticSessionControl(ctx, 0x05)
	wantNRC(t, "DiagnosticSessionControl(05)", err, uds.SubFunctionNotSupported)
	timing, err := ch.DiagnosticSessionControl(ctx, uds.ExtendedSession)
	if err != nil || timing != (uds.SessionTiming{P2: 50 * time.Millisecond, P2Star: 5 * time.Second}) {
		t.Fatalf("DiagnosticSessionControl(extended) = %+v, %v", timing, err)
	}
	must(t, "WriteDataByIdentifier(0101)", ch.WriteDataByIdentifier(ctx, 0x0101, []byte{0, 0, 0, 2}))
	wantNRC(t, "WriteDataByIdentifier(0101, 2 bytes)", ch.WriteDataByIdentifier(ctx, 0x0101, []byte{0, 2}), uds.IncorrectMessageLengthOrInvalidFormat)

	// security not granted, wrong key, then granted
	wantNRC(t, "WriteDataByIdentifier(F198) locked", ch.WriteDataByIdentifier(ctx, uds.DIDRepairShopCode, []byte("0123456789")), uds.SecurityAccessDenied)
	_, err = ch.InputOutputControl(ctx, 0x0201, uds.ShortTermAdjustment, []byte{50})
	wantNRC(t, "InputOutputControl locked", err, uds.SecurityAccessDenied)
	_, err = ch.RoutineControl(ctx, uds.StartRoutine, fake.RoutineSelfTest, nil)
	wantNRC(t, "RoutineControl(self test) locked", err, uds.SecurityAccessDenied)
	wrongKey := func(level byte, seed []byte) ([]byte, error) { return []byte{0, 0, 0, 0}, nil }
	wantNRC(t, "SecurityAccess(wrong key)", ch.SecurityAccess(ctx, 1, wrongKey), uds.InvalidKey)
	failing := func(byte, []byte) ([]byte, error) { return nil, errors.New("no key for this ECU") }
	if err := ch.SecurityAccess(ctx, 1, failing); err == nil {
		t.Fatal("SecurityAccess with a failing key function = nil error")
	}
	must(t, "SecurityAccess", ch.SecurityAccess(ctx, 1, demoKey))
	must(t, "SecurityAccess when unlocked", ch.SecurityAccess(ctx, 1, demoKey))
	if err := ch.SecurityAccess(ctx, 2, demoKey); err == nil {
		t.Fatal("SecurityAccess(level 2) = nil error, want an odd level")
	}
	must(t, "WriteDataByIdentifier(F198)", ch.WriteDataByIdentifier(ctx, uds.DIDRepairShopCode, []byte("0123456789")))

	// 0x2F
	st, err := ch.InputOutputControl(ctx, 0x0201, uds.ShortTermAdjustment, []byte{50})
	if err != nil || !slices.Equal(st, []byte{50}) {
		t.Fatalf("InputOutputControl(adjust 50) = %v, %v", st, err)
	}
	duty, err := ch.ReadDID(ctx, 0x0201)
	if err != nil || !slices.Equal(duty, []byte{50}) {
		t.Fatalf("ReadDID(0201) = %v, %v; want 50", duty, err)
	}
	_, err = ch.InputOutputControl(ctx, 0x0201, uds.ShortTermAdjustment, []byte{101})
	wantNRC(t, "InputOutputControl(adjust 101)", err, uds.RequestOutOfRange)
	st, err = ch.InputOutputControl(ctx, 0x0201, uds.ReturnControlToECU, nil)
	if err != nil || !slices.Equal(st, []byte{40}) {
		t.Fatalf("InputOutputControl(return control) = %v, %v", st, err)
	}

	// 0x31
	_, err = ch.RoutineControl(ctx, uds.RequestRoutineResults, fake.RoutineSelfTest, nil)
	wantNRC(t, "RoutineControl(results before start)", err, uds.RequestSequenceError)
	if _, err := ch.RoutineControl(ctx, uds.StartRoutine, fake.RoutineSelfTest, nil); err != nil {
		t.Fatalf("RoutineControl(start) = %v", err)
	}
	r, err := ch.RoutineControl(ctx, uds.RequestRoutineResults, fake.RoutineSelfTest, nil)
	if err != nil || !slices.Equal(r.Status, []byte{0, 0}) {
		t.Fatalf("RoutineControl(results) = %+v, %v", r, err)
	}
	if _, err := ch.RoutineControl(ctx, uds.StopRoutine, fake.RoutineSelfTest, nil); err != nil {
		t.Fatalf("RoutineControl(stop) = %v", err)
	}
	_, err = ch.RoutineControl(ctx, uds.StopRoutine, fake.RoutineSelfTest, nil)
	wantNRC(t, "RoutineControl(stop when stopped)", err, uds.RequestSequenceError)
	r, err = ch.RoutineControl(ctx, uds.StartRoutine, fake.RoutineErase, nil)
	if err != nil || !slices.Equal(r.Status, []byte{0}) {
		t.Fatalf("RoutineControl(start erase, with responsePending) = %+v, %v", r, err)
	}
	_, err = ch.RoutineControl(ctx, uds.StartRoutine, 0x1234, nil)
	wantNRC(t, "RoutineControl(unknown routine)", err, uds.RequestOutOfRange)

	// 0x11 locks again and returns to the default session; 0x3E
	must(t, "ECUReset", ch.ECUReset(ctx, uds.HardReset))
	wantNRC(t, "ECUReset(04)", ch.ECUReset(ctx, 0x04), uds.SubFunctionNotSupported)
	wantNRC(t, "WriteDataByIdentifier(F198) after reset", ch.WriteDataByIdentifier(ctx, uds.DIDRepairShopCode, []byte("0123456789")), uds.ServiceNotSupportedInActiveSession)
	must(t, "TesterPresent", ch.TesterPresent(ctx))

	// Finish ends the session; later calls say so.
	rec, err := s.Finish(ctx, sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}, Feedback: sdk.FeedbackSuccess, Description: "all helpers"})
	if err != nil || rec.GetState() != orchestratorv1.SessionState_SESSION_STATE_FINISHED {
		t.Fatalf("Finish = %v, %v; want FINISHED", rec.GetState(), err)
	}
	if _, err := ch.ReadVIN(ctx); !errors.Is(err, sdk.ErrReleased) {
		t.Fatalf("ReadVIN after Finish = %v, want ErrReleased", err)
	}
	if _, err := s.Channel(ctx, engineSpec); !errors.Is(err, sdk.ErrReleased) {
		t.Fatalf("Channel after Finish = %v, want ErrReleased", err)
	}
}

func TestConcurrentRequestsTakeTurns(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)
	want := s.Info().GetVin()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				// Alternate services so that a mixed-up answer shows.
				if (g+i)%2 == 0 {
					if vin, err := ch.ReadVIN(ctx); err != nil || vin != want {
						errs <- fmt.Errorf("ReadVIN = %q, %v", vin, err)
						return
					}
				} else if n, err := ch.ReadDTCCount(ctx, uds.AnyStatus); err != nil || n.Count != 2 {
					errs <- fmt.Errorf("ReadDTCCount = %+v, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAbandonedRequestKeepsAnswersApart(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)
	// The erase routine answers after three responsePending answers (600
	// ms); the caller gives up before.
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ch.RoutineControl(short, uds.StartRoutine, fake.RoutineErase, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("RoutineControl with a cancelled context = %v, want context.Canceled", err)
	}
	vin, err := ch.ReadVIN(ctx)
	if err != nil || vin != s.Info().GetVin() {
		t.Fatalf("ReadVIN after an abandoned request = %q, %v", vin, err)
	}
}

// sentSignal returns a dial option that closes the returned channel when the
// client sends its first UDS request on an Exchange stream.
func sentSignal() (sdk.Option, <-chan struct{}) {
	sent := make(chan struct{})
	var once sync.Once
	opt := sdk.WithDialOptions(grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &signalStream{ClientStream: cs, sent: func() { once.Do(func() { close(sent) }) }}, nil
	}))
	return opt, sent
}

type signalStream struct {
	grpc.ClientStream
	sent func()
}

func (s *signalStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if r, ok := m.(*orchestratorv1.ExchangeRequest); ok && r.GetRequest() != nil {
		s.sent()
	}
	return err
}

// silentEngine makes the engine ECU of every connector drop requests.
func silentEngine(t *testing.T, env *orchestratortest.Env) {
	t.Helper()
	if err := env.Jifeline.OpenOBD.Faults().SetECUFault("", 0x7E0, fake.ECUFault{Silent: true}); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseLostMidCall(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1, Client: connector.Config{ResponseTimeout: time.Minute}})
	ctx := testCtx(t)
	signal, sent := sentSignal()
	// No background renewal: only the request's own traffic extends the
	// lease, so moving the orchestrator's clock past it loses it.
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{LeaseTTL: 5 * time.Second, RenewEvery: time.Hour}, signal)
	ch := channel(t, ctx, s, engineSpec)
	body := channel(t, ctx, s, sdk.ChannelSpec{RequestID: 0x7E2, ResponseID: 0x7EA})
	silentEngine(t, env)
	errc := make(chan error, 1)
	go func() {
		_, err := ch.ReadVIN(ctx)
		errc <- err
	}()
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatal("the request was never sent")
	}
	env.Clock.Advance(time.Minute)
	if err := <-errc; !errors.Is(err, sdk.ErrLeaseLost) {
		t.Fatalf("ReadVIN while the lease expired = %v, want ErrLeaseLost", err)
	}
	select {
	case <-s.Lost():
	case <-ctx.Done():
		t.Fatal("Lost was not closed")
	}
	if err := s.Err(); !errors.Is(err, sdk.ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", err)
	}
	if _, err := body.ReadVIN(ctx); !errors.Is(err, sdk.ErrLeaseLost) {
		t.Fatalf("ReadVIN on another channel = %v, want ErrLeaseLost", err)
	}
	if _, err := s.Finish(ctx, sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}}); !errors.Is(err, sdk.ErrLeaseLost) {
		t.Fatalf("Finish = %v, want ErrLeaseLost", err)
	}
}

func TestRenewalKeepsLease(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{LeaseTTL: 5 * time.Second})
	// Wait for a renewal to be recorded: the session's lease expiry moves.
	first := s.Info().GetLease().GetExpireTime().AsTime()
	stream, err := sdk.New(dialConn(t, env)).API().WatchSessions(ctx, &orchestratorv1.WatchSessionsRequest{SessionId: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if exp := ev.GetSession().GetLease().GetExpireTime().AsTime(); exp.After(first) {
			break
		}
	}
	select {
	case <-s.Lost():
		t.Fatalf("lost after a renewal: %v", s.Err())
	default:
	}
}

func dialConn(t *testing.T, env *orchestratortest.Env) *grpc.ClientConn {
	t.Helper()
	c, err := sdk.Dial(env.Addr, sdk.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	conn, ok := c.Conn().(*grpc.ClientConn)
	if !ok {
		t.Fatal("Conn is not a *grpc.ClientConn")
	}
	return conn
}

func TestInterruptedMidCall(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1, Client: connector.Config{ResponseTimeout: time.Minute}})
	ctx := testCtx(t)
	signal, sent := sentSignal()
	c, s := acquire(t, ctx, env, sdk.AcquireOptions{}, signal)
	ch := channel(t, ctx, s, engineSpec)
	silentEngine(t, env)
	errc := make(chan error, 1)
	go func() {
		_, err := ch.ReadVIN(ctx)
		errc <- err
	}()
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatal("the request was never sent")
	}
	// Under load the core may record the interrupt before this call does and
	// then answer ABORTED with the same reason; either way the session is
	// interrupted by this call.
	if _, err := c.API().InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: s.ID(), Reason: "customer drove away"}); err != nil &&
		(status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "customer drove away")) {
		t.Fatalf("InterruptSession: %v", err)
	}
	err := <-errc
	var ie *sdk.InterruptedError
	if !errors.As(err, &ie) || ie.Reason != "customer drove away" || ie.Actor == "" || ie.SessionID != s.ID() {
		t.Fatalf("ReadVIN while interrupted = %v, want an InterruptedError with actor and reason", err)
	}
	<-s.Lost()
	if _, err := s.Finish(ctx, sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}}); !errors.As(err, &ie) {
		t.Fatalf("Finish after the interrupt = %v, want the InterruptedError", err)
	}
}

func TestReleaseReturnsSessionToReady(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	c, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)
	if err := s.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := ch.ReadVIN(ctx); !errors.Is(err, sdk.ErrReleased) {
		t.Fatalf("ReadVIN after Release = %v, want ErrReleased", err)
	}
	// The lease now ends 5 s after the release; move the clock past it.
	env.Clock.Advance(10 * time.Second)
	s2, err := c.Acquire(ctx, sdk.AcquireOptions{})
	if err != nil || s2.ID() != s.ID() {
		t.Fatalf("Acquire after Release = %v, %v; want session %s again", s2, err, s.ID())
	}
	if err := s2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestChannelClose(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.ReadVIN(ctx); !errors.Is(err, sdk.ErrChannelClosed) {
		t.Fatalf("ReadVIN after Close = %v, want ErrChannelClosed", err)
	}
	// The session stays usable.
	if _, err := channel(t, ctx, s, engineSpec).ReadVIN(ctx); err != nil {
		t.Fatalf("ReadVIN on a new channel: %v", err)
	}
	var _ io.Closer = ch
}

func TestSecurityAccessLockout(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 1})
	ctx := testCtx(t)
	_, s := acquire(t, ctx, env, sdk.AcquireOptions{})
	ch := channel(t, ctx, s, engineSpec)
	if _, err := ch.DiagnosticSessionControl(ctx, uds.ExtendedSession); err != nil {
		t.Fatal(err)
	}
	wrongKey := func(byte, []byte) ([]byte, error) { return []byte{1, 2, 3, 4}, nil }
	for i, want := range []uds.NRC{uds.InvalidKey, uds.InvalidKey, uds.ExceededNumberOfAttempts} {
		wantNRC(t, fmt.Sprintf("SecurityAccess(wrong key) #%d", i+1), ch.SecurityAccess(ctx, 1, wrongKey), want)
	}
	wantNRC(t, "SecurityAccess during the delay", ch.SecurityAccess(ctx, 1, demoKey), uds.RequiredTimeDelayNotExpired)
}

func TestAcquireFilters(t *testing.T) {
	env := orchestratortest.Start(t, orchestratortest.Options{Tickets: 3})
	ctx := testCtx(t)
	c, err := sdk.Dial(env.Addr, sdk.WithInsecure(), sdk.WithRunnerName(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tickets := env.Jifeline.Tickets
	want := tickets[len(tickets)-1]
	s, err := c.Acquire(ctx, sdk.AcquireOptions{TicketID: want.ID})
	if err != nil {
		t.Fatalf("Acquire(ticket %s): %v", want.ID, err)
	}
	defer func() { _ = s.Release(ctx) }()
	if s.Info().GetTicketId() != want.ID {
		t.Fatalf("Acquire(ticket %s) leased the session of ticket %s", want.ID, s.Info().GetTicketId())
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Acquire(short, sdk.AcquireOptions{VIN: "NOSUCHVIN00000000"}); status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
		t.Fatalf("Acquire(unknown VIN) = %v, want DEADLINE_EXCEEDED", err)
	}
}

package fake_test

import (
	"context"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

func TestControllerToken(t *testing.T) {
	e := newEnv(t, func(o *fake.Options) { o.ControllerTokenValidity = time.Hour })

	for _, a := range []*openobdv1.Authenticate{
		{ClientId: clientID, ClientSecret: "wrong"},
		{ClientId: "wrong", ClientSecret: clientSecret},
		{},
	} {
		_, err := e.ctrl.GetSessionControllerToken(e.ctx(""), a)
		wantStatus(t, err, codes.InvalidArgument, "Invalid client")
	}

	list := func(token string) error {
		_, err := e.ctrl.GetSessionList(e.ctx(token), &openobdv1.EmptyMessage{})
		return err
	}
	wantStatus(t, list(""), codes.Unauthenticated, `Missing "authorization: Bearer <token>" metadata.`)
	wantStatus(t, list("not-a-token"), codes.Unauthenticated, "Invalid token.")

	tok := e.controllerToken()
	if err := list(tok); err != nil {
		t.Fatalf("getSessionList with a fresh token: %v", err)
	}
	e.clock.Advance(time.Hour)
	wantStatus(t, list(tok), codes.Unauthenticated, "Token has expired.")

	tok = e.controllerToken()
	if n := e.srv.Faults().ExpireControllerTokens(); n != 1 {
		t.Errorf("ExpireControllerTokens() = %d, want 1", n)
	}
	wantStatus(t, list(tok), codes.Unauthenticated, "Token has expired.")
	if err := list(e.controllerToken()); err != nil {
		t.Fatalf("getSessionList with a token issued after the fault: %v", err)
	}
}

func TestStartSession(t *testing.T) {
	e := newEnv(t)
	tok := e.controllerToken()
	createdAt := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`)

	byNumber, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetA.TicketNumber})
	if err != nil {
		t.Fatalf("startSessionOnTicket(number): %v", err)
	}
	if byNumber.GetState() != "available" || byNumber.GetGrpcEndpoint() != e.addr ||
		byNumber.GetAuthenticationToken() == "" || !createdAt.MatchString(byNumber.GetCreatedAt()) {
		t.Errorf("SessionInfo = %v, want available, endpoint %s, a token and created_at like 2019-08-24T14:15:22.651+0000", byNumber, e.addr)
	}
	if got, want := byNumber.GetCreatedAt(), "2024-04-16T13:36:00.651+0000"; got != want {
		t.Errorf("created_at = %s, want %s", got, want)
	}

	// A second live session on the same ticket, or on its connector.
	_, err = e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetA.TicketID})
	wantStatus(t, err, codes.Unavailable, "Resource already in use.")
	_, err = e.ctrl.StartSessionOnConnector(e.ctx(tok), &openobdv1.ConnectorId{Value: targetA.ConnectorName})
	wantStatus(t, err, codes.Unavailable, "Resource already in use.")

	byUUID, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetB.TicketID})
	if err != nil {
		t.Fatalf("startSessionOnTicket(uuid): %v", err)
	}

	_, err = e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: "7961425"})
	wantStatus(t, err, codes.FailedPrecondition, `No ticket found with the ticket number: "7961425"`)
	_, err = e.ctrl.StartSessionOnConnector(e.ctx(tok), &openobdv1.ConnectorId{Value: "nope"})
	wantStatus(t, err, codes.FailedPrecondition, `No connector found with the connector id: "nope"`)

	// After an interrupt the connector is free again.
	if _, err := e.ctrl.InterruptSession(e.ctx(tok), &openobdv1.SessionId{Value: byNumber.GetId()}); err != nil {
		t.Fatalf("interruptSession: %v", err)
	}
	onConnector, err := e.ctrl.StartSessionOnConnector(e.ctx(tok), &openobdv1.ConnectorId{Value: targetA.ConnectorID})
	if err != nil {
		t.Fatalf("startSessionOnConnector after interrupt: %v", err)
	}

	list, err := e.ctrl.GetSessionList(e.ctx(tok), &openobdv1.EmptyMessage{})
	if err != nil {
		t.Fatalf("getSessionList: %v", err)
	}
	var got []string
	for _, s := range list.GetSessions() {
		got = append(got, s.GetId()+"="+s.GetState())
	}
	want := []string{byNumber.GetId() + "=interrupted", byUUID.GetId() + "=available", onConnector.GetId() + "=available"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("getSessionList = %v, want %v", got, want)
	}

	views := map[string]fake.Session{}
	for _, v := range e.srv.Sessions() {
		views[v.ID] = v
	}
	if v := views[onConnector.GetId()]; v.TicketID != "" || v.ConnectorID != targetA.ConnectorID || v.ConnectorName != targetA.ConnectorName {
		t.Errorf("connector session = %+v, want connector %s without ticket", v, targetA.ConnectorID)
	}
	if v := views[byUUID.GetId()]; v.TicketID != targetB.TicketID || v.TicketNumber != targetB.TicketNumber || v.ConnectorID != targetB.ConnectorID {
		t.Errorf("ticket session = %+v, want ticket %s on connector %s", v, targetB.TicketID, targetB.ConnectorID)
	}
}

func TestRefuseStarts(t *testing.T) {
	e := newEnv(t)
	tok := e.controllerToken()
	start := func() error {
		_, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetA.TicketNumber})
		return err
	}
	const noFree = "There are no free resources available at the moment. Please try again in two minutes."
	e.srv.Faults().RefuseStarts(2)
	wantStatus(t, start(), codes.Unavailable, noFree)
	wantStatus(t, start(), codes.Unavailable, noFree)
	if err := start(); err != nil {
		t.Fatalf("third start: %v", err)
	}
	e.srv.Faults().RefuseStarts(-1)
	for range 3 {
		_, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetB.TicketNumber})
		wantStatus(t, err, codes.Unavailable, noFree)
	}
	e.srv.Faults().Clear()
	if _, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetB.TicketNumber}); err != nil {
		t.Fatalf("start after Clear: %v", err)
	}
}

func TestFailCalls(t *testing.T) {
	e := newEnv(t)
	tok := e.controllerToken()
	start := func() error {
		_, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetA.TicketNumber})
		return err
	}
	e.srv.Faults().FailCalls(openobdv1.SessionController_StartSessionOnTicket_FullMethodName, 2, status.Error(codes.Internal, "boom"))
	wantStatus(t, start(), codes.Internal, "boom")
	wantStatus(t, start(), codes.Internal, "boom")
	if err := start(); err != nil {
		t.Fatalf("third start: %v", err)
	}
	e.srv.Faults().FailCalls(openobdv1.SessionController_StartSessionOnTicket_FullMethodName, 5, status.Error(codes.Unavailable, "later"))
	e.srv.Faults().Clear()
	if _, err := e.ctrl.StartSessionOnTicket(e.ctx(tok), &openobdv1.TicketId{Value: targetB.TicketNumber}); err != nil {
		t.Fatalf("start after Clear: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	info := e.start(targetA.TicketNumber)
	auth := info.GetAuthenticationToken()

	_, err := e.mon.GetConnectorInformation(e.ctx(auth), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.PermissionDenied, "Only allowed call to be made at this point is the authenticate() call")
	wantStatus(t, e.configure(auth, canBus), codes.PermissionDenied, "Only allowed call to be made at this point is the authenticate() call")

	_, err = e.sess.Authenticate(e.ctx(""), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.Unauthenticated, "")

	tok, err := e.sess.Authenticate(e.ctx(auth), &openobdv1.EmptyMessage{})
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	const again = "Session is already authenticated, at this point the authenticate() call is not permitted"
	_, err = e.sess.Authenticate(e.ctx(auth), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.PermissionDenied, again)
	_, err = e.sess.Authenticate(e.ctx(tok.GetValue()), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.PermissionDenied, again)

	// The one-time token is used up; the session token works.
	_, err = e.mon.GetConnectorInformation(e.ctx(auth), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.Unauthenticated, "Invalid token.")
	ci, err := e.mon.GetConnectorInformation(e.ctx(tok.GetValue()), &openobdv1.EmptyMessage{})
	if err != nil || !ci.GetConnected() || !ci.GetHealthy() || ci.GetConnectedSince() == 0 {
		t.Fatalf("getConnectorInformation = %v, %v; want connected and healthy", ci, err)
	}

	got, err := e.ctrl.GetSession(e.ctx(e.controllerToken()), &openobdv1.SessionId{Value: info.GetId()})
	if err != nil || got.GetState() != "active" || got.GetAuthenticationToken() != "" {
		t.Fatalf("getSession = %v, %v; want active without authentication token", got, err)
	}
}

func TestTokenRotation(t *testing.T) {
	e := newEnv(t, func(o *fake.Options) { o.TokenRotation = 10 * time.Millisecond })
	_, first := e.activate(targetA.TicketNumber)

	// openTokens opens a token stream; the returned cancel ends it.
	openTokens := func() (*stream[openobdv1.SessionToken], func()) {
		ctx, cancel := context.WithCancel(e.ctx(first))
		s, err := e.sess.OpenSessionTokenStream(ctx, &openobdv1.EmptyMessage{})
		if err != nil {
			t.Fatalf("openSessionTokenStream: %v", err)
		}
		tokens := readStream(t, s.Recv)
		return tokens, func() {
			cancel()
			wantStatus(t, tokens.end(), codes.Canceled, "")
		}
	}
	info := func(tok string) error {
		_, err := e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
		return err
	}

	tokens, stop := openTokens()
	second, alsoSecond := tokens.next().GetValue(), tokens.next().GetValue()
	stop()
	if second == first || alsoSecond == second || second == "" {
		t.Fatalf("rotated tokens %q, %q after %q: want new ones each period", second, alsoSecond, first)
	}

	e.clock.Advance(4 * time.Minute)
	tokens, stop = openTokens()
	third := tokens.next().GetValue() // issued 4 min after the others
	stop()
	for _, tok := range []string{first, second, third} {
		if err := info(tok); err != nil {
			t.Fatalf("call with a valid token: %v", err)
		}
	}

	e.clock.Advance(90 * time.Second) // first and second are 5.5 min old, third 1.5 min
	wantStatus(t, info(first), codes.Unauthenticated, "Token has expired.")
	wantStatus(t, info(second), codes.Unauthenticated, "Token has expired.")
	if err := info(third); err != nil {
		t.Fatalf("call with the newest token: %v", err)
	}

	// A token stream that is open when the tokens expire keeps handing out
	// new, valid ones.
	ctx, cancel := context.WithCancel(e.ctx(third))
	defer cancel()
	ts, err := e.sess.OpenSessionTokenStream(ctx, &openobdv1.EmptyMessage{})
	if err != nil {
		t.Fatalf("openSessionTokenStream: %v", err)
	}
	tokens = readStream(t, ts.Recv)
	tokens.next()
	e.srv.Faults().ExpireSessionTokens()
	wantStatus(t, info(third), codes.Unauthenticated, "Token has expired.")
	for i := 0; ; i++ {
		err := info(tokens.next().GetValue())
		if err == nil {
			break
		}
		if i == 10 {
			t.Fatalf("no valid token from the stream after the fault: %v", err)
		}
	}
}

func TestConfigureBus(t *testing.T) {
	e := newEnv(t)
	_, tok := e.activate(targetA.TicketNumber)

	can := func(name string, plus, minus uint32, p openobdv1.CanProtocol, r openobdv1.CanBitRate) *openobdv1.BusConfiguration {
		return &openobdv1.BusConfiguration{BusName: name, BusDefinition: &openobdv1.BusConfiguration_CanBus{
			CanBus: &openobdv1.CanBus{PinPlus: plus, PinMin: minus, CanProtocol: p, CanBitRate: r}}}
	}
	kline := func(name string, pin uint32) *openobdv1.BusConfiguration {
		return &openobdv1.BusConfiguration{BusName: name, BusDefinition: &openobdv1.BusConfiguration_KlineBus{
			KlineBus: &openobdv1.KlineBus{Pin: pin, KlineProtocol: openobdv1.KlineProtocol_KLINE_PROTOCOL_ISO14230_FAST,
				KlineBitRate: openobdv1.KlineBitRate_KLINE_BIT_RATE_10400}}}
	}
	const isotp, b500 = openobdv1.CanProtocol_CAN_PROTOCOL_ISOTP, openobdv1.CanBitRate_CAN_BIT_RATE_500
	tests := []struct {
		name  string
		buses []*openobdv1.BusConfiguration
		want  string // substring of the INVALID_ARGUMENT message; "" = accepted
	}{
		{"one CAN bus", []*openobdv1.BusConfiguration{canBus}, ""},
		{"four buses", []*openobdv1.BusConfiguration{can("a", 6, 14, isotp, b500), can("b", 3, 11, isotp, b500), can("c", 1, 9, isotp, b500), kline("d", 7)}, ""},
		{"none", nil, ""},
		{"five buses", []*openobdv1.BusConfiguration{can("a", 6, 14, isotp, b500), can("b", 3, 11, isotp, b500), can("c", 1, 9, isotp, b500), kline("d", 7), kline("e", 15)}, "At most 4"},
		{"pin 0", []*openobdv1.BusConfiguration{can("a", 0, 14, isotp, b500)}, "pin 0"},
		{"pin 17", []*openobdv1.BusConfiguration{can("a", 6, 17, isotp, b500)}, "pin 17"},
		{"same pins", []*openobdv1.BusConfiguration{can("a", 6, 6, isotp, b500)}, "must differ"},
		{"shared pin", []*openobdv1.BusConfiguration{can("a", 6, 14, isotp, b500), kline("k", 14)}, `pin 14 is already used by bus "a"`},
		{"undefined protocol", []*openobdv1.BusConfiguration{can("a", 6, 14, openobdv1.CanProtocol_CAN_PROTOCOL_UNDEFINED, b500)}, "can_protocol"},
		{"undefined bit rate", []*openobdv1.BusConfiguration{can("a", 6, 14, isotp, openobdv1.CanBitRate_CAN_BIT_RATE_UNDEFINED)}, "can_bit_rate"},
		{"duplicate name", []*openobdv1.BusConfiguration{can("a", 6, 14, isotp, b500), can("a", 3, 11, isotp, b500)}, "twice"},
		{"no name", []*openobdv1.BusConfiguration{can("", 6, 14, isotp, b500)}, "bus_name"},
		{"no definition", []*openobdv1.BusConfiguration{{BusName: "x"}}, "can_bus or kline_bus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.configure(tok, tc.buses...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("configureBus = %v, want success", err)
				}
				return
			}
			wantStatus(t, err, codes.InvalidArgument, "")
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("configureBus = %v, want a message containing %q", err, tc.want)
			}
		})
	}

	// A new stream overwrites the earlier configuration.
	if err := e.configure(tok, canBus); err != nil {
		t.Fatalf("configureBus: %v", err)
	}
	c := e.openIsotp(tok, engine)
	c.request("3E00")
	c.expect("7E00")
	other := can("other", 3, 11, isotp, b500)
	if err := e.configure(tok, other); err != nil {
		t.Fatalf("configureBus(other): %v", err)
	}
	c.request("3E00")
	err := c.end()
	wantStatus(t, err, codes.InvalidArgument, `Bus "bus-6-14" is not configured.`)

	frames := can("frames", 6, 14, openobdv1.CanProtocol_CAN_PROTOCOL_FRAMES, b500)
	if err := e.configure(tok, frames); err != nil {
		t.Fatalf("configureBus(frames): %v", err)
	}
	c = e.openIsotp(tok, &openobdv1.IsotpChannel{BusName: "frames", RequestId: 0x7E0, ResponseId: 0x7E8})
	wantStatus(t, c.end(), codes.InvalidArgument, `Bus "frames" is not configured for ISO-TP.`)
}

func TestIsotpExchange(t *testing.T) {
	e := newEnv(t)
	_, tok := e.activate(targetA.TicketNumber)
	c := e.openIsotp(tok, engine)
	c.nothing() // the channel-opening message gets no answer

	c.request("22F190")
	c.expect("62F190" + strings.ToUpper(hex.EncodeToString([]byte(targetA.VIN))))
	c.request("22f18c") // lower case accepted
	c.expect("62F18C" + strings.ToUpper(hex.EncodeToString([]byte("ENG000007E0"))))

	c.request("221234")
	got := c.next().GetPayload()
	if len(got) != 2*(3+fake.LargeRecordSize) || !strings.HasPrefix(got, "6212340001020304") {
		t.Fatalf("221234 answered %d hex chars starting %.16s, want %d starting 6212340001020304", len(got), got, 2*(3+fake.LargeRecordSize))
	}

	c.request("1003")
	c.expect("5003003201F4")
	c.request("2E0101CAFEBABE")
	c.expect("6E0101")
	c.request("220101")
	c.expect("620101CAFEBABE")
	c.request("AA")
	c.expect("7FAA11")

	// Nothing listens on 0x7E5: no answer, the stream stays usable.
	silent := e.openIsotp(tok, &openobdv1.IsotpChannel{BusName: "bus-6-14", RequestId: 0x7E5, ResponseId: 0x7ED})
	silent.request("22F190")
	silent.nothing()
	// The transmission answers on 0x7E9, not on the channel's 0x7E8.
	wrong := e.openIsotp(tok, &openobdv1.IsotpChannel{BusName: "bus-6-14", RequestId: 0x7E1, ResponseId: 0x7E8})
	wrong.request("22F190")
	wrong.nothing()

	for _, tc := range []struct{ name, payload, msg string }{
		{"odd hex", "22F19", "Payload is not valid hex"},
		{"not hex", "22F1ZZ", "Payload is not valid hex"},
		{"too long", strings.Repeat("00", fake.MaxPayload+1), "Payload exceeds 4095 bytes."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := e.openIsotp(tok, engine)
			bad.request(tc.payload)
			err := bad.end()
			wantStatus(t, err, codes.InvalidArgument, "")
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("stream ended with %v, want %q", err, tc.msg)
			}
		})
	}

	maxLen := e.openIsotp(tok, engine)
	maxLen.request("3E" + strings.Repeat("00", fake.MaxPayload-1))
	maxLen.expect("7F3E13")

	unconfigured := e.openIsotp(tok, &openobdv1.IsotpChannel{BusName: "nope", RequestId: 0x7E0, ResponseId: 0x7E8})
	wantStatus(t, unconfigured.end(), codes.InvalidArgument, `Bus "nope" is not configured.`)
}

func TestRoutinePending(t *testing.T) {
	e := newEnv(t, func(o *fake.Options) {
		o.RoutinePending = 4
		o.RoutinePendingSpacing = 20 * time.Millisecond
	})
	_, tok := e.activate(targetA.TicketNumber)
	c := e.openIsotp(tok, engine)
	begin := time.Now()
	c.request("3101FF00")
	for range 4 {
		c.expect("7F3178")
	}
	c.expect("7101FF0000")
	if d := time.Since(begin); d < 80*time.Millisecond {
		t.Errorf("routine answered after %v, want at least 4 spacings of 20ms", d)
	}
}

func TestInterruptEndsStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		code codes.Code
		want codes.Code
	}{
		{"default code", 0, codes.Canceled},
		{"configured code", codes.Unavailable, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *fake.Options) {
				o.InterruptCode = tc.code
				o.TokenRotation = 10 * time.Millisecond
			})
			info, tok := e.activate(targetA.TicketNumber)
			iso := e.openIsotp(tok, engine)
			iso.request("3E00")
			iso.expect("7E00")
			ts, err := e.sess.OpenSessionTokenStream(e.ctx(tok), &openobdv1.EmptyMessage{})
			if err != nil {
				t.Fatal(err)
			}
			tokens := readStream(t, ts.Recv)
			tokens.next()
			ms, err := e.mon.OpenConnectorInformationStream(e.ctx(tok), &openobdv1.EmptyMessage{})
			if err != nil {
				t.Fatal(err)
			}
			monitor := readStream(t, ms.Recv)
			monitor.next()

			got, err := e.ctrl.InterruptSession(e.ctx(e.controllerToken()), &openobdv1.SessionId{Value: info.GetId()})
			if err != nil || got.GetState() != "interrupted" {
				t.Fatalf("interruptSession = %v, %v; want the interrupted session", got, err)
			}
			for name, err := range map[string]error{"isotp": iso.end(), "token": tokens.end(), "monitor": monitor.end()} {
				if st := status.Convert(err); st.Code() != tc.want || st.Message() != "Session was interrupted." {
					t.Errorf("%s stream ended with %v %q, want %v \"Session was interrupted.\"", name, st.Code(), st.Message(), tc.want)
				}
			}

			_, err = e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
			wantStatus(t, err, codes.FailedPrecondition, "Session is not active (state: interrupted).")
			s, err := e.can.OpenIsotpStream(e.ctx(tok))
			if err == nil {
				_, err = s.Recv()
			}
			wantStatus(t, err, codes.FailedPrecondition, "Session is not active (state: interrupted).")
			_, err = e.ctrl.InterruptSession(e.ctx(e.controllerToken()), &openobdv1.SessionId{Value: info.GetId()})
			wantStatus(t, err, codes.FailedPrecondition, "Session is not active (state: interrupted).")
			_, err = e.ctrl.InterruptSession(e.ctx(e.controllerToken()), &openobdv1.SessionId{Value: "unknown"})
			wantStatus(t, err, codes.NotFound, `No session found with id: "unknown"`)
		})
	}
}

func TestFinishAndRetention(t *testing.T) {
	e := newEnv(t, func(o *fake.Options) { o.Retention = 2 * time.Minute })
	info, tok := e.activate(targetA.TicketNumber)
	iso := e.openIsotp(tok, engine)
	iso.ready()

	_, err := e.sess.Finish(e.ctx(tok), &openobdv1.ServiceResult{})
	wantStatus(t, err, codes.InvalidArgument, "ServiceResult.result must hold at least one value.")
	if _, err := e.sess.Finish(e.ctx(tok), &openobdv1.ServiceResult{Result: []openobdv1.Result{openobdv1.Result_RESULT_SUCCESS}}); err != nil {
		t.Fatalf("finish: %v", err)
	}
	wantStatus(t, iso.end(), codes.Canceled, "Session was finished.")
	_, err = e.sess.Finish(e.ctx(tok), &openobdv1.ServiceResult{Result: []openobdv1.Result{openobdv1.Result_RESULT_SUCCESS}})
	wantStatus(t, err, codes.FailedPrecondition, "Session is not active (state: finished).")

	ctrl := e.controllerToken()
	got, err := e.ctrl.GetSession(e.ctx(ctrl), &openobdv1.SessionId{Value: info.GetId()})
	if err != nil || got.GetState() != "finished" {
		t.Fatalf("getSession = %v, %v; want finished", got, err)
	}
	e.clock.Advance(2*time.Minute - time.Millisecond)
	if _, err := e.ctrl.GetSession(e.ctx(ctrl), &openobdv1.SessionId{Value: info.GetId()}); err != nil {
		t.Fatalf("getSession just before the retention ends: %v", err)
	}
	e.clock.Advance(time.Millisecond)
	_, err = e.ctrl.GetSession(e.ctx(ctrl), &openobdv1.SessionId{Value: info.GetId()})
	wantStatus(t, err, codes.NotFound, "")
	list, err := e.ctrl.GetSessionList(e.ctx(ctrl), &openobdv1.EmptyMessage{})
	if err != nil || len(list.GetSessions()) != 0 {
		t.Fatalf("getSessionList = %v, %v; want empty", list, err)
	}
	if s := e.srv.Sessions(); len(s) != 0 {
		t.Fatalf("Sessions() = %v, want none", s)
	}
	_, err = e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
	wantStatus(t, err, codes.Unauthenticated, "")
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	info, tok := e.activate(targetA.TicketNumber)
	f := e.srv.Faults()

	t.Run("drop streams", func(t *testing.T) {
		c := e.openIsotp(tok, engine)
		c.ready()
		if err := f.DropStreams(info.GetId()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c.end(), codes.Unavailable, "Stream was dropped; the session is still live, open the stream again.")
		c = e.openIsotp(tok, engine)
		c.request("3E00")
		c.expect("7E00")
	})

	t.Run("connector disconnect", func(t *testing.T) {
		c := e.openIsotp(tok, engine)
		if err := f.DisconnectConnector(targetA.ConnectorName); err != nil {
			t.Fatal(err)
		}
		ci, err := e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
		if err != nil || ci.GetConnected() || ci.GetHealthy() {
			t.Fatalf("getConnectorInformation = %v, %v; want disconnected", ci, err)
		}
		c.request("3E00")
		c.nothing()
		if err := f.ReconnectConnector(targetA.ConnectorID); err != nil {
			t.Fatal(err)
		}
		c.request("3E00")
		c.expect("7E00")
	})

	t.Run("ECU faults", func(t *testing.T) {
		c := e.openIsotp(tok, engine)
		if err := f.SetECUFault(targetA.ConnectorID, 0x7E0, fake.ECUFault{Silent: true}); err != nil {
			t.Fatal(err)
		}
		c.request("3E00")
		c.nothing()
		if err := f.SetECUFault("", 0x7E0, fake.ECUFault{BusyRepeat: 2}); err != nil {
			t.Fatal(err)
		}
		c.request("3E00")
		c.nothing() // the connector-specific silent fault wins
		if err := f.SetECUFault(targetA.ConnectorID, 0x7E0, fake.ECUFault{}); err != nil {
			t.Fatal(err)
		}
		c.request("22F190")
		c.expect("7F2221")
		c.request("22F190")
		c.expect("7F2221")
		c.request("3E00")
		c.expect("7E00")
		if err := f.SetECUFault("", 0x7E0, fake.ECUFault{Pending: 2}); err != nil {
			t.Fatal(err)
		}
		c.request("1001")
		c.expect("7F1078")
		c.expect("7F1078")
		c.expect("5001003201F4")
		c.request("3E00")
		c.expect("7E00") // only the next request had pending answers
		if err := f.SetECUFault("unknown", 0x7E0, fake.ECUFault{Silent: true}); err == nil {
			t.Fatal("SetECUFault on an unknown connector succeeded")
		}
	})

	t.Run("latency", func(t *testing.T) {
		c := e.openIsotp(tok, engine)
		f.SetIsotpLatency(50 * time.Millisecond)
		f.SetCallLatency(50 * time.Millisecond)
		begin := time.Now()
		c.request("3E00")
		c.expect("7E00")
		if _, err := e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d < 100*time.Millisecond {
			t.Errorf("answer and call took %v, want at least 100ms", d)
		}
		f.Clear()
	})

	t.Run("hang", func(t *testing.T) {
		f.Hang(true)
		ctx, cancel := context.WithTimeout(e.ctx(tok), 50*time.Millisecond)
		defer cancel()
		_, err := e.mon.GetConnectorInformation(ctx, &openobdv1.EmptyMessage{})
		wantStatus(t, err, codes.DeadlineExceeded, "")

		var wg sync.WaitGroup
		var released error
		wg.Go(func() {
			_, released = e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
		})
		time.Sleep(quiet)
		f.Hang(false)
		wg.Wait()
		if released != nil {
			t.Fatalf("call after the hang cleared: %v", released)
		}
	})

	t.Run("fail session", func(t *testing.T) {
		c := e.openIsotp(tok, engine)
		c.ready()
		v, err := e.srv.FailSession(info.GetId(), "connector lost power")
		if err != nil || v.State != fake.StateFailed || v.Reason != "connector lost power" {
			t.Fatalf("FailSession = %+v, %v", v, err)
		}
		wantStatus(t, c.end(), codes.Aborted, "Session has failed.")
		_, err = e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
		wantStatus(t, err, codes.FailedPrecondition, "Session is not active (state: failed).")
		if _, err := e.srv.InterruptSession(info.GetId()); err == nil {
			t.Fatal("InterruptSession of a failed session succeeded")
		}
	})
}

func TestObservation(t *testing.T) {
	var mu sync.Mutex
	var states []fake.State
	e := newEnv(t, func(o *fake.Options) {
		o.OnSessionChange = func(s fake.Session) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, s.State)
		}
	})
	info, tok := e.activate(targetA.TicketNumber)
	if _, err := e.srv.InterruptSession(info.GetId()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(states)
	mu.Unlock()
	if want := []fake.State{fake.StateAvailable, fake.StateActive, fake.StateInterrupted}; !slices.Equal(got, want) {
		t.Errorf("observed states %v, want %v", got, want)
	}

	_, _ = e.mon.GetConnectorInformation(e.ctx(tok), &openobdv1.EmptyMessage{})
	calls := e.srv.Calls()
	for method, want := range map[string]int{
		openobdv1.SessionController_GetSessionControllerToken_FullMethodName: 1,
		openobdv1.SessionController_StartSessionOnTicket_FullMethodName:      1,
		openobdv1.Session_Authenticate_FullMethodName:                        1,
		openobdv1.Config_ConfigureBus_FullMethodName:                         1,
		openobdv1.ConnectionMonitor_GetConnectorInformation_FullMethodName:   1,
	} {
		if calls[method] != want {
			t.Errorf("Calls()[%s] = %d, want %d", method, calls[method], want)
		}
	}
}

func TestUnimplemented(t *testing.T) {
	e := newEnv(t)
	_, tok := e.activate(targetA.TicketNumber)
	raw, err := e.can.OpenRawStream(e.ctx(tok))
	if err == nil {
		_, err = raw.Recv()
	}
	wantStatus(t, err, codes.Unimplemented, "")
	kl, err := openobdv1.NewKlineClient(e.conn).OpenKlineStream(e.ctx(tok))
	if err == nil {
		_, err = kl.Recv()
	}
	wantStatus(t, err, codes.Unimplemented, "")
	ui, err := openobdv1.NewUserInterfaceClient(e.conn).OpenControlStream(e.ctx(tok))
	if err == nil {
		_, err = ui.Recv()
	}
	wantStatus(t, err, codes.Unimplemented, "")
}

func TestBusTiming(t *testing.T) {
	e := newEnv(t, func(o *fake.Options) { o.BusTiming = true })
	_, tok := e.activate(targetA.TicketNumber)
	c := e.openIsotp(tok, engine)
	begin := time.Now()
	c.request("221234")
	c.next()
	// 4003 bytes: first frame, flow control and 571 consecutive frames at
	// 0.25 ms each, plus the single-frame request.
	if d := time.Since(begin); d < 143*time.Millisecond {
		t.Errorf("multi-frame answer took %v, want at least 143ms", d)
	}
}

func TestStreamOutlivesItsToken(t *testing.T) {
	e := newEnv(t)
	info, tok := e.activate(targetA.TicketNumber)
	iso := e.openIsotp(tok, engine)
	iso.ready()

	// The token is checked when the stream opens; the open stream keeps
	// answering after it expired, a new one is refused.
	if n := e.srv.Faults().ExpireSessionTokens(); n != 1 {
		t.Fatalf("ExpireSessionTokens() = %d, want 1", n)
	}
	e.clock.Advance(6 * time.Minute)
	iso.request("22F190")
	iso.expect("62F190" + fake.EncodePayload([]byte(targetA.VIN)))
	s, err := e.can.OpenIsotpStream(e.ctx(tok))
	if err == nil {
		_, err = s.Recv()
	}
	wantStatus(t, err, codes.Unauthenticated, "Token has expired.")

	// Ending the session still ends the stream.
	if _, err := e.srv.InterruptSession(info.GetId()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, iso.end(), codes.Canceled, "Session was interrupted.")
}

package fakejifeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/fake"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
	"github.com/obdorch/obdorch/partner"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// TestBothViewsAgree starts a session over openOBD on a seeded ticket, sees it
// through the Partner API, interrupts it there and sees that over openOBD.
func TestBothViewsAgree(t *testing.T) {
	e := fakejifeline.Listen(t, fakejifeline.Options{Tickets: 3, Seed: 7})
	if len(e.Tickets) != 3 || e.ClientID != fakejifeline.DefaultClientID {
		t.Fatalf("Env = %d tickets, client %q; want 3 tickets and the default client", len(e.Tickets), e.ClientID)
	}
	ctx := testContext(t)

	conn, err := grpc.NewClient(e.OpenOBDAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctrl := openobdv1.NewSessionControllerClient(conn)
	tok, err := ctrl.GetSessionControllerToken(ctx, &openobdv1.Authenticate{ClientId: e.ClientID, ClientSecret: e.ClientSecret})
	if err != nil {
		t.Fatalf("getSessionControllerToken: %v", err)
	}
	cctx := bearer(ctx, tok.GetValue())
	ticket := e.Tickets[0]
	info, err := ctrl.StartSessionOnTicket(cctx, &openobdv1.TicketId{Value: strconv.FormatInt(ticket.TicketNumber, 10)})
	if err != nil {
		t.Fatalf("startSessionOnTicket: %v", err)
	}
	if info.GetGrpcEndpoint() != e.OpenOBDAddr {
		t.Errorf("grpc_endpoint = %s, want %s", info.GetGrpcEndpoint(), e.OpenOBDAddr)
	}
	_, err = ctrl.StartSessionOnConnector(cctx, &openobdv1.ConnectorId{Value: *ticket.CustomerConnectorID})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("startSessionOnConnector on the ticket's connector = %v, want UNAVAILABLE", err)
	}

	// The vehicle behind the ticket's connector has the ticket's VIN.
	sctx := bearer(ctx, info.GetAuthenticationToken())
	st, err := openobdv1.NewSessionClient(conn).Authenticate(sctx, &openobdv1.EmptyMessage{})
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	v, ok := e.OpenOBD.Vehicle(*ticket.CustomerConnectorID)
	if !ok || ticket.VIN == nil || v.VIN() != *ticket.VIN {
		t.Errorf("vehicle VIN = %v, want the ticket's %v", v, ticket.VIN)
	}

	pc, err := partner.NewClient(partner.Config{BaseURL: e.PartnerURL, ClientID: e.ClientID, ClientSecret: e.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pc.Session(ctx, info.GetId())
	if err != nil || ps.State != partner.SessionActive {
		t.Fatalf("Partner API session = %+v, %v; want active", ps, err)
	}
	ps, err = pc.InterruptSession(ctx, info.GetId())
	if err != nil || ps.State != partner.SessionInterrupted {
		t.Fatalf("Partner API interrupt = %+v, %v; want interrupted", ps, err)
	}
	got, err := ctrl.GetSession(cctx, &openobdv1.SessionId{Value: info.GetId()})
	if err != nil || got.GetState() != "interrupted" {
		t.Fatalf("getSession = %v, %v; want interrupted", got, err)
	}
	_, err = openobdv1.NewConnectionMonitorClient(conn).GetConnectorInformation(bearer(ctx, st.GetValue()), &openobdv1.EmptyMessage{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("call after the Partner API interrupt = %v, want FAILED_PRECONDITION", err)
	}
	if _, err := pc.InterruptSession(ctx, info.GetId()); err == nil {
		t.Error("second Partner API interrupt succeeded")
	}

	// A closed ticket cannot get a session.
	second := e.Tickets[1]
	if err := e.Partner.SetTicketState(second.ID, partner.TicketClosed); err != nil {
		t.Fatal(err)
	}
	_, err = ctrl.StartSessionOnTicket(cctx, &openobdv1.TicketId{Value: second.ID})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "No ticket found") {
		t.Errorf("start on a closed ticket = %v, want FAILED_PRECONDITION No ticket found", err)
	}
}

func TestSteeringMounted(t *testing.T) {
	e := fakejifeline.Listen(t, fakejifeline.Options{Tickets: 1})
	ctx := testContext(t)
	do := func(method, url, body string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("PUT", e.SteeringURL+"faults/refuse-starts", `{"count":1}`); code != 200 {
		t.Fatalf("PUT refuse-starts = %d %s", code, body)
	}
	if e.OpenOBD.Faults().State().RefuseStarts != 1 {
		t.Error("the steering request did not reach the openOBD fake")
	}
	code, body := do("GET", e.SteeringURL+"sessions", "")
	var sessions []json.RawMessage
	if err := json.Unmarshal([]byte(body), &sessions); code != 200 || err != nil {
		t.Fatalf("GET sessions = %d %s", code, body)
	}
	// The Partner API's own steering is still reachable next to it.
	if code, body := do("GET", e.PartnerURL+"/_fake/faults", ""); code != 200 {
		t.Fatalf("GET Partner API steering = %d %s", code, body)
	}
}

func TestCloseAndContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	e, err := fakejifeline.Start(ctx, fakejifeline.Options{OpenOBD: fake.Options{InfoPeriod: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("environment did not stop with its context")
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}

	if _, err := fakejifeline.Start(t.Context(), fakejifeline.Options{OpenOBDAddr: "not an address"}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a bad address = %v, want a listen error", err)
	}
}

package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// listCore lists one READY session with a history of three transitions.
type listCore struct{ stubCore }

func (*listCore) ListSessions(context.Context, orchestrator.SessionFilter, orchestrator.Page) ([]*session.Record, string, error) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return []*session.Record{{
		ID: "s1", State: session.StateReady, TicketID: "t1", Reason: "attached",
		CreatedAt: at, UpdatedAt: at.Add(time.Second),
		Buses: []session.Bus{{Name: "can0", CAN: &session.CANBus{PinPlus: 6, PinMinus: 14, BitRate: 500_000}}},
		History: []session.Transition{
			{From: session.StateUnspecified, To: session.StatePending, Time: at, Actor: "intake"},
			{From: session.StatePending, To: session.StateStarting, Time: at, Actor: "intake"},
			{From: session.StateStarting, To: session.StateReady, Time: at.Add(time.Second), Actor: "intake", Reason: "attached"},
		},
	}}, "", nil
}

func TestListSessionsView(t *testing.T) {
	_, conn := startServer(t, &listCore{})
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	ctx := testContext(t)
	for _, tc := range []struct {
		view        orchestratorv1.SessionView
		wantHistory int
	}{
		{orchestratorv1.SessionView_SESSION_VIEW_UNSPECIFIED, 0},
		{orchestratorv1.SessionView_SESSION_VIEW_BASIC, 0},
		{orchestratorv1.SessionView_SESSION_VIEW_FULL, 3},
	} {
		resp, err := client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{View: tc.view})
		if err != nil {
			t.Fatalf("ListSessions(view %s) = %v", tc.view, err)
		}
		if len(resp.GetSessions()) != 1 {
			t.Fatalf("ListSessions(view %s) returned %d sessions, want 1", tc.view, len(resp.GetSessions()))
		}
		s := resp.GetSessions()[0]
		if got := len(s.GetHistory()); got != tc.wantHistory {
			t.Errorf("ListSessions(view %s): history has %d transitions, want %d", tc.view, got, tc.wantHistory)
		}
		// Every view keeps the rest of the record.
		if s.GetId() != "s1" || s.GetState() != orchestratorv1.SessionState_SESSION_STATE_READY ||
			s.GetReason() != "attached" || len(s.GetBuses()) != 1 || s.GetUpdateTime() == nil {
			t.Errorf("ListSessions(view %s) = %v, want the record's other fields", tc.view, s)
		}
	}
}

func TestListSessionsUnknownViewNamesTheField(t *testing.T) {
	_, conn := startServer(t, &listCore{})
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	_, err := client.ListSessions(testContext(t), &orchestratorv1.ListSessionsRequest{View: orchestratorv1.SessionView(7)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "view") {
		t.Errorf("ListSessions(view 7) = %v, want INVALID_ARGUMENT naming view", err)
	}
}

package orchestrator_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
)

// TestMaxSessionsBoundsTheReplica: a replica holds at most MaxSessions live
// sessions, whether intake takes them or an engineer asks; when one ends,
// the waiting ticket is taken.
func TestMaxSessionsBoundsTheReplica(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{tickets: 3})
	a := w.startReplica("a", replicaOptions{cfg: orchestrator.Config{MaxSessions: 2}})
	ctx := testCtx(t)
	ready := a.waitSessions(ctx, t, stateReady, 2)
	held := map[string]bool{}
	for _, s := range ready {
		held[s.GetTicketId()] = true
	}
	var waiting string
	for _, tk := range w.jf.Tickets {
		if !held[tk.ID] {
			waiting = tk.ID
		}
	}
	_, err := a.client.StartSession(ctx, &orchestratorv1.StartSessionRequest{
		Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: waiting},
	})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("StartSession on a replica at MaxSessions = %v, want RESOURCE_EXHAUSTED", err)
	}
	if n := w.liveOpenOBD(waiting); n != 0 {
		t.Fatalf("the waiting ticket has %d live openOBD sessions, want 0", n)
	}
	if _, err := a.client.InterruptSession(ctx, &orchestratorv1.InterruptSessionRequest{SessionId: ready[0].GetId(), Reason: "make room"}); err != nil {
		t.Fatalf("InterruptSession = %v", err)
	}
	poll(ctx, t, "the waiting ticket READY once a session ended", func() bool {
		resp, err := a.client.ListSessions(ctx, &orchestratorv1.ListSessionsRequest{TicketId: waiting, States: []orchestratorv1.SessionState{stateReady}})
		return err == nil && len(resp.GetSessions()) == 1
	})
}

// TestWorkLeftByAnIdleReplicaIsTaken: a registered replica that takes no
// work (its intake finds nothing) counts in the share, so the other leaves
// it half the tickets; after the grace the other takes them anyway.
func TestWorkLeftByAnIdleReplicaIsTaken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	opts := replicaOptions{replicaToken: clusterToken}
	idle := opts
	idle.cfg = intakeOff()
	a := w.startReplica("a", opts)
	w.startReplica("b", idle)
	ctx := testCtx(t)
	poll(ctx, t, "a sees b in the registry", func() bool {
		_, ok, err := a.store.ReplicaAddress(ctx, "b")
		return err == nil && ok
	})
	const n = 8
	w.jf.Partner.Seed(n, 99)
	sessions := a.waitSessions(ctx, t, stateReady, n)
	for _, s := range sessions {
		if s.GetOwner() != "a" {
			t.Errorf("session %s owned by %q, want a", s.GetId(), s.GetOwner())
		}
	}
}

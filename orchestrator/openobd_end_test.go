package orchestrator_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/obdorch/obdorch/connector/fake"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// An openOBD session that ends on openOBD's side is recorded as openOBD
// reports it through getSession, whatever status code its streams end
// with: interrupted (here with PERMISSION_DENIED, a code that alone would
// read as a refusal) or failed.
func TestOpenOBDEndRecordedAsOpenOBDSays(t *testing.T) {
	w := newWorld(t, worldOptions{tickets: 2, openobd: fake.Options{InterruptCode: codes.PermissionDenied}})
	r := w.startReplica("a", replicaOptions{})
	ctx := testCtx(t)
	sessions := r.waitSessions(ctx, t, orchestratorv1.SessionState_SESSION_STATE_READY, 2)

	if _, err := w.jf.OpenOBD.InterruptSession(sessions[0].GetOpenobdSessionId()); err != nil {
		t.Fatal(err)
	}
	rec := r.waitState(ctx, t, sessions[0].GetId(), orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED)
	if rec.GetActor() != "openobd" || rec.GetOpenobdState() != "interrupted" {
		t.Errorf("interrupted on openOBD: actor %q, openOBD state %q; want openobd, interrupted", rec.GetActor(), rec.GetOpenobdState())
	}

	if _, err := w.jf.OpenOBD.FailSession(sessions[1].GetOpenobdSessionId(), "connector lost power"); err != nil {
		t.Fatal(err)
	}
	rec = r.waitState(ctx, t, sessions[1].GetId(), orchestratorv1.SessionState_SESSION_STATE_FAILED)
	if rec.GetActor() != "openobd" || rec.GetOpenobdState() != "failed" {
		t.Errorf("failed on openOBD: actor %q, openOBD state %q; want openobd, failed", rec.GetActor(), rec.GetOpenobdState())
	}
}

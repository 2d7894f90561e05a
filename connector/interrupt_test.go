package connector_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/obdorch/obdorch/connector"
	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// endRecorder is an OnEnd option that hands the reported error to a
// channel.
func endRecorder() (connector.SessionOption, <-chan error) {
	ends := make(chan error, 1)
	return connector.OnEnd(func(err error) { ends <- err }), ends
}

// awaitEnd waits for OnEnd and checks that it reports KindInterrupted with
// the openOBD state want, and that the session agrees.
func awaitEnd(t *testing.T, s *connector.Session, ends <-chan error, want string) {
	t.Helper()
	ctx := testContext(t)
	var err error
	select {
	case err = <-ends:
	case <-ctx.Done():
		t.Fatalf("OnEnd not called after the session became %s", want)
	}
	if connector.KindOf(err) != connector.KindInterrupted || connector.EndState(err) != want {
		t.Errorf("OnEnd(%v): kind %v, state %q; want interrupted, %q", err, connector.KindOf(err), connector.EndState(err), want)
	}
	if got := connector.EndState(s.Err()); got != want {
		t.Errorf("EndState(Session.Err()) = %q, want %q", got, want)
	}
}

// Whatever status code openOBD ends an interrupted session's streams with,
// and whatever its text, the client asks getSession and reports the session
// interrupted. The fake accepts every code but OK.
func TestInterruptedWithEveryStatusCode(t *testing.T) {
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		t.Run(code.String(), func(t *testing.T) {
			e := newEnv(t, func(fo *fake.Options, _ *connector.Config) { fo.InterruptCode = code })
			onEnd, ends := endRecorder()
			s, info := e.attach(t, onEnd)
			openEngine(t, s) // an ISO-TP stream ends too
			before := e.srv.Calls()[openobdv1.SessionController_GetSession_FullMethodName]
			if _, err := e.srv.InterruptSession(info.ID); err != nil {
				t.Fatal(err)
			}
			awaitEnd(t, s, ends, connector.StateInterrupted)
			if after := e.srv.Calls()[openobdv1.SessionController_GetSession_FullMethodName]; after <= before {
				t.Errorf("getSession calls %d before the interrupt, %d after; want it asked", before, after)
			}
		})
	}
}

// A session failed by openOBD is reported failed.
func TestFailedElsewhere(t *testing.T) {
	e := newEnv(t)
	onEnd, ends := endRecorder()
	s, info := e.attach(t, onEnd)
	if _, err := e.srv.FailSession(info.ID, "connector lost power"); err != nil {
		t.Fatal(err)
	}
	awaitEnd(t, s, ends, connector.StateFailed)
}

// A session finished by another holder of its token is reported finished.
func TestFinishedElsewhere(t *testing.T) {
	e := newEnv(t)
	onEnd, ends := endRecorder()
	s, info := e.attach(t, onEnd)
	other, err := e.newClient(t, nil).Resume(testContext(t), info, s.Token())
	if err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	t.Cleanup(func() { other.Close() })
	if err := other.Finish(testContext(t), connector.ServiceResult{Codes: []int32{int32(openobdv1.Result_RESULT_SUCCESS)}}); err != nil {
		t.Fatalf("Finish() = %v", err)
	}
	awaitEnd(t, s, ends, connector.StateFinished)
}

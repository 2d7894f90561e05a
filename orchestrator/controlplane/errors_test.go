package controlplane

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

func TestToStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("op: %w", err) }
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"invalid argument", &orchestrator.InvalidArgumentError{Field: "buses", Reason: "x"}, codes.InvalidArgument},
		{"interrupted", wrap(&orchestrator.InterruptedError{SessionID: "s", Actor: "a", Reason: "r"}), codes.Aborted},
		{"canceled", wrap(context.Canceled), codes.Canceled},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"ecu timeout", wrap(orchestrator.ErrTimeout), codes.DeadlineExceeded},
		{"no session", orchestrator.ErrNoSession, codes.DeadlineExceeded},
		{"not found", wrap(orchestrator.ErrNotFound), codes.NotFound},
		{"lease", orchestrator.ErrLeaseRequired, codes.FailedPrecondition},
		{"not live", orchestrator.ErrNotLive, codes.FailedPrecondition},
		{"wrong state", orchestrator.ErrWrongState, codes.FailedPrecondition},
		{"transition", wrap(session.ErrTransition), codes.FailedPrecondition},
		{"too slow", orchestrator.ErrTooSlow, codes.ResourceExhausted},
		{"busy", orchestrator.ErrBusy, codes.ResourceExhausted},
		{"replica full", wrap(orchestrator.ErrFull), codes.ResourceExhausted},
		{"compacted", orchestrator.ErrCompacted, codes.OutOfRange},
		{"unavailable", wrap(orchestrator.ErrUnavailable), codes.Unavailable},
		{"shutting down", orchestrator.ErrShuttingDown, codes.Unavailable},
		{"status passes", status.Error(codes.InvalidArgument, "x"), codes.InvalidArgument},
		{"unknown", errors.New("boom"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(toStatus(tt.err)); got != tt.want {
				t.Errorf("toStatus(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

func TestToStatusReasons(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		reason   string
		metadata map[string]string
	}{
		{"interrupted", fmt.Errorf("op: %w", &orchestrator.InterruptedError{SessionID: "s1", Actor: "engineer", Reason: "car left"}),
			codes.Aborted, "ERROR_REASON_SESSION_INTERRUPTED", map[string]string{"session_id": "s1", "actor": "engineer", "reason": "car left"}},
		{"lease", fmt.Errorf("%w: lease expired", orchestrator.ErrLeaseRequired), codes.FailedPrecondition, "ERROR_REASON_LEASE_REQUIRED", nil},
		{"not live", fmt.Errorf("%w: finished", orchestrator.ErrNotLive), codes.FailedPrecondition, "ERROR_REASON_SESSION_NOT_LIVE", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(toStatus(tc.err))
			if st.Code() != tc.code {
				t.Fatalf("toStatus(%v) code = %v, want %v", tc.err, st.Code(), tc.code)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil || info.GetDomain() != "orchestrator.v1" || info.GetReason() != tc.reason {
				t.Fatalf("toStatus(%v) details = %v, want ErrorInfo reason %s", tc.err, st.Details(), tc.reason)
			}
			for k, v := range tc.metadata {
				if info.GetMetadata()[k] != v {
					t.Errorf("toStatus(%v) metadata[%q] = %q, want %q", tc.err, k, info.GetMetadata()[k], v)
				}
			}
		})
	}
	if st := status.Convert(toStatus(orchestrator.ErrWrongState)); len(st.Details()) != 0 {
		t.Errorf("toStatus(ErrWrongState) details = %v, want none", st.Details())
	}
}

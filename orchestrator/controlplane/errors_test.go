package controlplane

import (
	"context"
	"errors"
	"fmt"
	"testing"

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

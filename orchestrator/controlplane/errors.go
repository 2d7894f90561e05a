package controlplane

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// toStatus is the one place where core errors become gRPC status codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		// Already a status (produced by this package's validation).
		return err
	}
	var (
		invalid     *orchestrator.InvalidArgumentError
		interrupted *orchestrator.InterruptedError
		notOwner    *orchestrator.NotOwnerError
	)
	switch {
	case errors.As(err, &notOwner):
		st, derr := status.New(codes.Unavailable, err.Error()).WithDetails(&orchestratorv1.NotOwnerDetail{
			SessionId: notOwner.SessionID, Owner: notOwner.Owner, OwnerAddress: notOwner.Address,
		})
		if derr != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		return st.Err()
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &interrupted):
		return withReason(codes.Aborted, err, orchestratorv1.ErrorReason_ERROR_REASON_SESSION_INTERRUPTED, map[string]string{
			"session_id": interrupted.SessionID, "actor": interrupted.Actor, "reason": interrupted.Reason,
		})
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, orchestrator.ErrTimeout),
		errors.Is(err, orchestrator.ErrNoSession):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, orchestrator.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, orchestrator.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, orchestrator.ErrLeaseRequired):
		return withReason(codes.FailedPrecondition, err, orchestratorv1.ErrorReason_ERROR_REASON_LEASE_REQUIRED, map[string]string{"lease": "required"})
	case errors.Is(err, orchestrator.ErrWrongLease):
		return withReason(codes.FailedPrecondition, err, orchestratorv1.ErrorReason_ERROR_REASON_LEASE_REQUIRED, map[string]string{"lease": "wrong"})
	case errors.Is(err, orchestrator.ErrNotLeased):
		return withReason(codes.FailedPrecondition, err, orchestratorv1.ErrorReason_ERROR_REASON_LEASE_REQUIRED, map[string]string{"lease": "not_leased"})
	case errors.Is(err, orchestrator.ErrLeaseExpired):
		return withReason(codes.FailedPrecondition, err, orchestratorv1.ErrorReason_ERROR_REASON_LEASE_REQUIRED, map[string]string{"lease": "expired"})
	case errors.Is(err, orchestrator.ErrNotLive):
		return withReason(codes.FailedPrecondition, err, orchestratorv1.ErrorReason_ERROR_REASON_SESSION_NOT_LIVE, nil)
	case errors.Is(err, orchestrator.ErrWrongState), errors.Is(err, session.ErrTransition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, orchestrator.ErrTooSlow), errors.Is(err, orchestrator.ErrBusy), errors.Is(err, orchestrator.ErrFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, orchestrator.ErrCompacted):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, orchestrator.ErrUnavailable), errors.Is(err, orchestrator.ErrShuttingDown):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// errorDomain is the ErrorInfo domain of the control plane's errors.
const errorDomain = "orchestrator.v1"

// withReason returns a status with an ErrorInfo detail naming reason, so
// that runners can tell an interrupt, a lost lease and an ended session
// apart without reading the message.
func withReason(code codes.Code, err error, reason orchestratorv1.ErrorReason, metadata map[string]string) error {
	st := status.New(code, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: reason.String(), Metadata: metadata}); derr == nil {
		st = d
	}
	return st.Err()
}

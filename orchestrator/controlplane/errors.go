package controlplane

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	)
	switch {
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &interrupted):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, orchestrator.ErrTimeout),
		errors.Is(err, orchestrator.ErrNoSession):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, orchestrator.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, orchestrator.ErrLeaseRequired), errors.Is(err, orchestrator.ErrNotLive),
		errors.Is(err, orchestrator.ErrWrongState), errors.Is(err, session.ErrTransition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, orchestrator.ErrTooSlow), errors.Is(err, orchestrator.ErrBusy):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, orchestrator.ErrCompacted):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, orchestrator.ErrUnavailable), errors.Is(err, orchestrator.ErrShuttingDown):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

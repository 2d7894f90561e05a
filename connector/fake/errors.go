package fake

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the Go API (Server and Faults methods).
var (
	ErrSessionNotFound   = errors.New("fake: session not found")
	ErrSessionNotLive    = errors.New("fake: session is not available or active")
	ErrConnectorNotFound = errors.New("fake: connector not found")
)

// The status errors the fake answers with. Texts marked "documented" are the
// ones Jifeline documents; the others are this fake's choices.
var (
	// documented
	errInvalidClient        = status.Error(codes.InvalidArgument, "Invalid client")
	errOnlyAuthenticate     = status.Error(codes.PermissionDenied, "Only allowed call to be made at this point is the authenticate() call")
	errAlreadyAuthenticated = status.Error(codes.PermissionDenied, "Session is already authenticated, at this point the authenticate() call is not permitted")
	errResourceInUse        = status.Error(codes.Unavailable, "Resource already in use.")
	errNoFreeResources      = status.Error(codes.Unavailable, "There are no free resources available at the moment. Please try again in two minutes.")

	// chosen by the fake
	errMissingToken   = status.Error(codes.Unauthenticated, `Missing "authorization: Bearer <token>" metadata.`)
	errInvalidToken   = status.Error(codes.Unauthenticated, "Invalid token.")
	errExpiredToken   = status.Error(codes.Unauthenticated, "Token has expired.")
	errStreamDropped  = status.Error(codes.Unavailable, "Stream was dropped; the session is still live, open the stream again.")
	errShuttingDown   = status.Error(codes.Unavailable, "Server is shutting down.")
	errEmptyResult    = status.Error(codes.InvalidArgument, "ServiceResult.result must hold at least one value.")
	errMissingChannel = status.Error(codes.InvalidArgument, "IsotpMessage.channel is required.")
)

func errNoTicket(value string) error {
	return status.Errorf(codes.FailedPrecondition, "No ticket found with the ticket number: %q", value)
}

func errNoConnector(value string) error {
	return status.Errorf(codes.FailedPrecondition, "No connector found with the connector id: %q", value)
}

func errTicketWithoutConnector(value string) error {
	return status.Errorf(codes.FailedPrecondition, "Ticket %q has no connector.", value)
}

func errNoSession(id string) error {
	return status.Errorf(codes.NotFound, "No session found with id: %q", id)
}

func errNotActive(state State) error {
	return status.Errorf(codes.FailedPrecondition, "Session is not active (state: %s).", state)
}

func errInvalidArgument(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}

// endError is the status with which open streams of a session end when the
// session reaches a final state.
func endError(state State, interruptCode codes.Code) error {
	switch state {
	case StateInterrupted:
		return status.Error(interruptCode, "Session was interrupted.")
	case StateFinished:
		return status.Error(codes.Canceled, "Session was finished.")
	default:
		return status.Error(codes.Aborted, "Session has failed.")
	}
}

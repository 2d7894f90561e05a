package sdk

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

var (
	// ErrLeaseLost: the session's lease ended (it expired, or the
	// orchestrator no longer knows it) and the runner may not use the
	// session any more. Returned, wrapped with the server's explanation, by
	// every call after the loss.
	ErrLeaseLost = errors.New("sdk: lease lost")
	// ErrSessionEnded: the session is FINISHED or FAILED.
	ErrSessionEnded = errors.New("sdk: session ended")
	// ErrReleased: the runner called Release or Finish on this session
	// already.
	ErrReleased = errors.New("sdk: session released")
	// ErrChannelClosed: Close was called on the channel.
	ErrChannelClosed = errors.New("sdk: channel closed")
	// ErrTimeout: the ECU did not answer in time (P2, or P2* after a
	// responsePending). The channel stays usable.
	ErrTimeout = errors.New("sdk: no response from the ECU")
	// ErrChannelBusy: the request waited too long for its turn on the
	// orchestrator's channel, which other callers share.
	ErrChannelBusy = errors.New("sdk: channel busy")
	// ErrLinkUnavailable: the link to the vehicle broke while the request was
	// in flight and it was not safe to send again. The channel stays usable.
	ErrLinkUnavailable = errors.New("sdk: link to the vehicle unavailable")
)

// InterruptedError says the session was interrupted: by whom (an engineer,
// openOBD, the Partner API...) and why. Every later call on the session
// returns it too.
type InterruptedError struct {
	SessionID string
	Actor     string
	Reason    string
}

// Error names the session, the actor and the reason.
func (e *InterruptedError) Error() string {
	return fmt.Sprintf("sdk: session %s interrupted by %s: %s", e.SessionID, e.Actor, e.Reason)
}

// RequestError is a request the orchestrator could not relay (no answer,
// channel busy, broken link, invalid payload). It matches ErrTimeout,
// ErrChannelBusy or ErrLinkUnavailable with errors.Is according to Code.
type RequestError struct {
	Code    orchestratorv1.RequestErrorCode
	Message string
}

// Error returns the orchestrator's message, which echoes the request.
func (e *RequestError) Error() string { return "sdk: request failed: " + e.Message }

// Is matches the sentinel of the error's code.
func (e *RequestError) Is(target error) bool {
	switch e.Code {
	case orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_TIMEOUT:
		return target == ErrTimeout
	case orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_QUEUE_TIMEOUT:
		return target == ErrChannelBusy
	case orchestratorv1.RequestErrorCode_REQUEST_ERROR_CODE_UNAVAILABLE:
		return target == ErrLinkUnavailable
	}
	return false
}

// errorDomain is the ErrorInfo domain of the control plane.
const errorDomain = "orchestrator.v1"

// sessionErr turns a control-plane status into the SDK's typed errors when
// it says the session is gone for this runner: interrupted, lease lost or
// ended. ok is false for every other error, which is returned unchanged.
func sessionErr(sessionID string, err error) (_ error, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st == nil {
		return err, false
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, isInfo := d.(*errdetails.ErrorInfo); isInfo && i.GetDomain() == errorDomain {
			info = i
		}
	}
	reason := orchestratorv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	if info != nil {
		reason = orchestratorv1.ErrorReason(orchestratorv1.ErrorReason_value[info.GetReason()])
	}
	switch {
	case reason == orchestratorv1.ErrorReason_ERROR_REASON_SESSION_INTERRUPTED,
		reason == orchestratorv1.ErrorReason_ERROR_REASON_UNSPECIFIED && st.Code() == codes.Aborted:
		e := &InterruptedError{SessionID: sessionID, Reason: st.Message()}
		if md := info.GetMetadata(); md != nil {
			if id := md["session_id"]; id != "" {
				e.SessionID = id
			}
			e.Actor, e.Reason = md["actor"], md["reason"]
		}
		return e, true
	case reason == orchestratorv1.ErrorReason_ERROR_REASON_LEASE_REQUIRED:
		return fmt.Errorf("%w: %s", ErrLeaseLost, st.Message()), true
	case reason == orchestratorv1.ErrorReason_ERROR_REASON_SESSION_NOT_LIVE:
		return fmt.Errorf("%w: %s", ErrSessionEnded, st.Message()), true
	}
	return err, false
}

// unwrapStatus returns the innermost error of err that carries a gRPC
// status, or err itself.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			return e
		}
	}
	return err
}

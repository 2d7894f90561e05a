package connector

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/uds"
)

// Kind classifies a failed openOBD call by what the caller should do next.
type Kind int

// The kinds of Error.
const (
	// KindUnknown is the kind of errors that did not come from openOBD.
	KindUnknown Kind = iota
	// KindRetryable: try again later, with backoff (service unavailable, no
	// free resources, a call timeout, a broken stream on a live session).
	KindRetryable
	// KindInUse: the ticket or connector already has a session; find and
	// interrupt the orphan before starting another.
	KindInUse
	// KindTerminal: retrying will not help (bad credentials, unknown ticket,
	// permission denied, a token rejected even after a fresh fetch).
	KindTerminal
	// KindInterrupted: the session was interrupted, finished or failed on
	// the openOBD side; it accepts no more calls.
	KindInterrupted
	// KindNotFound: the session (or other object) does not exist.
	KindNotFound
)

// String returns the kind's name in lower case.
func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindInUse:
		return "in use"
	case KindTerminal:
		return "terminal"
	case KindInterrupted:
		return "interrupted"
	case KindNotFound:
		return "not found"
	}
	return "unknown"
}

// Error is a classified failure of an openOBD operation. It never carries a
// gRPC status: callers decide by Kind, through errors.Is with the sentinels
// below or through KindOf.
type Error struct {
	Kind Kind
	// Op is the openOBD operation, e.g. "startSessionOnTicket".
	Op string
	// Message is the server's explanation, if any, with secrets removed.
	Message string
	// Err is the underlying cause when it is not an openOBD status.
	Err error
	// State is the session's state as getSession reported it once a call
	// or stream ended without a clear reason: StateInterrupted,
	// StateFinished or StateFailed when the session is over (Kind is then
	// KindInterrupted), empty when the session is no longer known or the
	// error is of another kind.
	State string

	code codes.Code // the openOBD status code, for the error text only
}

// Sentinels for errors.Is(err, connector.ErrInUse) and friends: an *Error
// matches the sentinel of its Kind.
var (
	ErrRetryable   = &Error{Kind: KindRetryable}
	ErrInUse       = &Error{Kind: KindInUse}
	ErrTerminal    = &Error{Kind: KindTerminal}
	ErrInterrupted = &Error{Kind: KindInterrupted}
	ErrNotFound    = &Error{Kind: KindNotFound}
)

// Errors of the ISO-TP channel and of local lifecycle.
var (
	// ErrTimeout is wrapped by *TimeoutError.
	ErrTimeout = errors.New("connector: no response")
	// ErrChannelClosed is returned by a channel whose stream has ended; the
	// error also wraps the cause (errors.Is(err, ErrInterrupted) when the
	// session was interrupted, ErrClosed when the caller closed it).
	ErrChannelClosed = errors.New("connector: channel closed")
	// ErrNotSent is also wrapped when a channel's stream had ended before
	// the request was written: it reached neither openOBD nor the ECU, so
	// sending it again on a new channel is safe whatever the service.
	ErrNotSent = errors.New("connector: not sent")
	// ErrClosed is returned after Close of a Client, Session or channel.
	ErrClosed = errors.New("connector: closed")
)

// NegativeResponseError is a negative UDS response, returned by
// IsotpChannel.Request.
type NegativeResponseError = uds.NegativeResponseError

// Error returns "connector: <op>: <kind>: <message> (<code>): <cause>",
// leaving out empty parts.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("connector: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.code != codes.OK {
		b.WriteString(" (")
		b.WriteString(e.code.String())
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel (an *Error without Op) of e's
// Kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Err == nil && t.Kind == e.Kind
}

// EndState returns the openOBD session state that err reports (see
// Error.State), or "" when err does not say.
func EndState(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.State
	}
	return ""
}

// KindOf returns the Kind of the first *Error in err's chain, or KindUnknown.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return KindUnknown
}

// msgInUse is the documented text of openOBD's answer to a second session
// on a ticket or connector (UNAVAILABLE, as for an outage): the only text
// that decides a kind. Whether a session has ended is never read from a
// text: openOBD does not document how calls and streams of an ended session
// fail, so the session's own state is asked for (Session.confirmEnd).
const msgInUse = "Resource already in use"

// classify turns err from an openOBD call into an *Error. Context errors
// of ctx pass through unchanged; secrets are cut out of server messages.
func classify(ctx context.Context, op string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Kind: KindRetryable, Op: op, Err: err}
	}
	if st.Code() == codes.DeadlineExceeded && deadlinePassed(ctx) {
		// The caller's deadline, reported by the server a moment before
		// ctx's own timer fired.
		return context.DeadlineExceeded
	}
	msg := redact(st.Message(), secrets...)
	return &Error{Kind: kindOf(st.Code(), msg), Op: op, Message: msg, code: st.Code()}
}

// deadlineSlack absorbs the jitter between ctx's timer and the server's
// timer for the same deadline.
const deadlineSlack = 10 * time.Millisecond

// deadlinePassed reports whether ctx's deadline has passed or is about to.
func deadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < deadlineSlack
}

// kindOf maps an openOBD status to a Kind.
func kindOf(code codes.Code, msg string) Kind {
	switch code {
	case codes.Unavailable:
		if strings.Contains(msg, msgInUse) {
			return KindInUse
		}
		return KindRetryable
	case codes.FailedPrecondition:
		return KindTerminal
	case codes.Canceled:
		// Canceled by the server (the caller's own cancellation is caught
		// before): ambiguous; a session's calls and streams confirm with
		// getSession whether the session ended.
		return KindRetryable
	case codes.NotFound:
		return KindNotFound
	case codes.AlreadyExists:
		return KindInUse
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated,
		codes.Unimplemented, codes.OutOfRange:
		return KindTerminal
	}
	// DeadlineExceeded (our own call timeout), ResourceExhausted, Aborted,
	// Internal, Unknown, DataLoss: transient as far as we can tell.
	return KindRetryable
}

// redact replaces every non-empty secret in s.
func redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The reconcile contract is controller-runtime's: reconcile(ctx, key)
// reads the current state, acts, and returns a result and an error.
//
//   - A nil error with result.requeueAfter > 0 looks at the key again after
//     that delay (lease expiry, the next ticket check, the next intake
//     pass); the queue keeps the sooner of two delays.
//   - A non-nil error is retried with per-key exponential backoff, unless it
//     is marked terminal; a success resets the backoff.
//   - A key is reconciled by one worker at a time.

// result is what a reconcile asks of the queue besides retries.
type result struct {
	requeueAfter time.Duration
}

// after returns a result that looks again after d (nothing if d <= 0 is
// not meant: a due deadline is looked at at once).
func after(d time.Duration) result { return result{requeueAfter: max(d, time.Millisecond)} }

// sooner combines two results: the sooner requeue wins.
func (r result) sooner(s result) result {
	switch {
	case r.requeueAfter == 0:
		return s
	case s.requeueAfter == 0:
		return r
	}
	return result{requeueAfter: min(r.requeueAfter, s.requeueAfter)}
}

// terminalError marks a reconcile error that retrying will not fix; it is
// logged and the key is not retried.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// terminal marks err as not worth retrying.
func terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err}
}

var errReconcileTimeout = errors.New("reconcile timed out")

var tracer = otel.Tracer("github.com/obdorch/obdorch/orchestrator")

func (o *Orchestrator) worker(ctx context.Context) {
	for {
		k, ok := o.queue.Get()
		if !ok {
			return
		}
		o.reconcileHandler(ctx, k)
		o.queue.Done(k)
	}
}

// reconcileHandler runs one guarded reconcile: panics become errors, the
// pass has its own timeout (told apart from shutdown), its id is in every
// log line, and the result and error are turned into queue actions.
func (o *Orchestrator) reconcileHandler(ctx context.Context, k key) {
	rid := reconcileID()
	ctx, cancel := context.WithTimeoutCause(ctx, o.cfg.ReconcileTimeout, errReconcileTimeout)
	defer cancel()
	log := &reconcileLog{base: o.log, key: k, id: rid}
	ctx = withLogger(ctx, log)
	if k.kind == kindSession {
		if a := o.attachment(k.id); a != nil {
			if sc := a.traceParent(); sc.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
	}
	ctx, span := tracer.Start(ctx, "orchestrator.reconcile")
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("key", k.String()), attribute.String("reconcile_id", rid))
	}

	res, err := func() (_ result, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return o.reconcile(ctx, k)
	}()
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	var term *terminalError
	switch {
	case o.life.Err() != nil:
		// Shutting down: the next owner picks the key up again.
		return
	case err == nil:
		o.metrics.reconciled("ok")
		o.queue.Forget(k)
		if res.requeueAfter > 0 {
			o.queue.AddAfter(k, res.requeueAfter)
		}
	case errors.As(err, &term):
		o.metrics.reconciled("error")
		o.queue.Forget(k)
		log.logger().Error("reconcile failed for good", "err", err)
	default:
		o.metrics.reconciled("retry")
		d := o.queue.Retry(k)
		log.logger().Warn("reconcile failed, will retry", "err", err, "retry_in", d)
	}
}

// reconcileID returns the id of one reconcile for its logs and span: 8
// hex digits, unique enough to tell the reconciles of a key apart.
func reconcileID() string {
	var b [8]byte
	const digits = "0123456789abcdef"
	v := rand.Uint32()
	for i := range b {
		b[7-i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// reconcile dispatches one key.
func (o *Orchestrator) reconcile(ctx context.Context, k key) (result, error) {
	switch k.kind {
	case kindIntake:
		return o.reconcileIntake(ctx)
	case kindTicket:
		return o.reconcileTicket(ctx, k.id)
	case kindSession:
		return o.reconcileSession(ctx, k.id)
	}
	return result{}, terminal(fmt.Errorf("unknown key %s", k))
}

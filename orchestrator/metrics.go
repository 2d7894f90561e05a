package orchestrator

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// metrics are the core's OpenTelemetry instruments, on the global meter
// provider (a no-op unless telemetry is set up).
type metrics struct {
	sessions   metric.Int64UpDownCounter
	relayTime  metric.Float64Histogram
	queueWait  metric.Float64Histogram
	requests   metric.Int64Counter
	retries    metric.Int64Counter
	reconciles metric.Int64Counter
}

// latencyBuckets suit UDS round trips: 50 µs to 10 s.
var latencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := otel.Meter("github.com/obdorch/obdorch/orchestrator")
	out := &metrics{}
	var errs [6]error
	out.sessions, errs[0] = m.Int64UpDownCounter("obdorch.sessions",
		metric.WithDescription("Sessions this replica moved into each state, less those it moved out."), metric.WithUnit("{session}"))
	out.relayTime, errs[1] = m.Float64Histogram("obdorch.relay.duration",
		metric.WithDescription("Relayed UDS request time: part=total is the whole call, part=ecu the time waiting on openOBD and the ECU, part=added the orchestrator's own share."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...))
	out.queueWait, errs[2] = m.Float64Histogram("obdorch.relay.queue_wait",
		metric.WithDescription("Time a request waited for its turn on a busy channel; requests that found their channel free are not recorded."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...))
	out.requests, errs[3] = m.Int64Counter("obdorch.relay.requests",
		metric.WithDescription("Relayed UDS requests by outcome."), metric.WithUnit("{request}"))
	out.retries, errs[4] = m.Int64Counter("obdorch.relay.retries",
		metric.WithDescription("Relay retries: stream reopens and idempotent re-sends."), metric.WithUnit("{retry}"))
	out.reconciles, errs[5] = m.Int64Counter("obdorch.reconciles",
		metric.WithDescription("Reconciles by result (ok, retry, error)."), metric.WithUnit("{reconcile}"))
	if err := errors.Join(errs[:]...); err != nil {
		otel.Handle(err)
	}
	return out
}

func (m *metrics) transition(from, to session.State) {
	ctx := context.Background()
	if from != session.StateUnspecified {
		m.sessions.Add(ctx, -1, stateAttrs[from])
	}
	m.sessions.Add(ctx, 1, stateAttrs[to])
}

// The attribute sets are built once: recording on the relay's hot path
// then allocates nothing for them.
var (
	stateAttrs = func() map[session.State]metric.MeasurementOption {
		m := map[session.State]metric.MeasurementOption{}
		for s := session.StatePending; s <= session.StateInterrupted; s++ {
			m[s] = metric.WithAttributeSet(attribute.NewSet(attribute.String("state", s.String())))
		}
		return m
	}()
	// The relay's options are slices built once and passed on as they
	// are: a variadic list written out at the call would be allocated on
	// every request, since the instruments are interfaces.
	outcomeAttrs = func() map[string][]metric.AddOption {
		m := map[string][]metric.AddOption{}
		for _, o := range []string{"positive", "negative", "timeout", "busy", "unavailable", "aborted", "canceled", "error"} {
			m[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))}
		}
		return m
	}()
	partTotal = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("part", "total")))}
	partECU   = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("part", "ecu")))}
	partAdded = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("part", "added")))}
	kindAttrs = map[string]metric.MeasurementOption{
		"resend": metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "resend"))),
		"reopen": metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "reopen"))),
	}
	resultAttrs = map[string]metric.MeasurementOption{
		"ok":    metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "ok"))),
		"retry": metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "retry"))),
		"error": metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "error"))),
	}
)

func (m *metrics) relayed(ctx context.Context, outcome string, r Response) {
	// The instruments look for a sampled span in ctx (exemplars) once per
	// measurement, walking the whole chain of a stream's context: find it
	// once, and hand the instruments a short context carrying only it.
	mctx := context.Background()
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		mctx = trace.ContextWithSpanContext(mctx, sc)
	}
	m.requests.Add(mctx, 1, outcomeAttrs[outcome]...)
	if r.TotalTime > 0 {
		m.relayTime.Record(mctx, r.TotalTime.Seconds(), partTotal...)
		m.relayTime.Record(mctx, r.ECUTime.Seconds(), partECU...)
		m.relayTime.Record(mctx, (r.TotalTime - r.ECUTime).Seconds(), partAdded...)
	}
}

// waited records the wait of a request that found its channel busy. A
// request that found it free is not recorded: that is the common case, the
// histogram describes waits on busy channels (requests are counted by
// obdorch.relay.requests), and the record would cost every request.
func (m *metrics) waited(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	m.queueWait.Record(ctx, d.Seconds())
}

func (m *metrics) retried(ctx context.Context, kind string) {
	m.retries.Add(ctx, 1, kindAttrs[kind])
}

func (m *metrics) reconciled(result string) {
	m.reconciles.Add(context.Background(), 1, resultAttrs[result])
}

// queueMetrics instrument the reconcile work queue: its depth (observed at
// collection time), the keys added to it and the retries scheduled.
type queueMetrics struct {
	adds    metric.Int64Counter
	retries metric.Int64Counter
	depth   metric.Registration
}

func newQueueMetrics(q *queue) *queueMetrics {
	m := otel.Meter("github.com/obdorch/obdorch/orchestrator")
	out := &queueMetrics{}
	var errs [4]error
	out.adds, errs[0] = m.Int64Counter("obdorch.queue.adds",
		metric.WithDescription("Keys added to the reconcile queue (a key already queued is not counted again)."), metric.WithUnit("{key}"))
	out.retries, errs[1] = m.Int64Counter("obdorch.queue.retries",
		metric.WithDescription("Reconciles scheduled again after a backoff."), metric.WithUnit("{retry}"))
	depth, err := m.Int64ObservableGauge("obdorch.queue.depth",
		metric.WithDescription("Keys waiting in the reconcile queue."), metric.WithUnit("{key}"))
	errs[2] = err
	if err == nil {
		out.depth, errs[3] = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(depth, int64(q.Len()))
			return nil
		}, depth)
	}
	if err := errors.Join(errs[:]...); err != nil {
		otel.Handle(err)
	}
	return out
}

func (m *queueMetrics) added()   { m.adds.Add(context.Background(), 1) }
func (m *queueMetrics) retried() { m.retries.Add(context.Background(), 1) }

// close stops observing the queue's depth.
func (m *queueMetrics) close() {
	if m.depth != nil {
		_ = m.depth.Unregister()
	}
}

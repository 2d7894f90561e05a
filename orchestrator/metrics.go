package orchestrator

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
		metric.WithDescription("Time a request waited for its turn on a busy channel."),
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
		m.sessions.Add(ctx, -1, metric.WithAttributes(attribute.String("state", from.String())))
	}
	m.sessions.Add(ctx, 1, metric.WithAttributes(attribute.String("state", to.String())))
}

func (m *metrics) relayed(ctx context.Context, outcome string, r Response) {
	m.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	if r.TotalTime > 0 {
		m.relayTime.Record(ctx, r.TotalTime.Seconds(), metric.WithAttributes(attribute.String("part", "total")))
		m.relayTime.Record(ctx, r.ECUTime.Seconds(), metric.WithAttributes(attribute.String("part", "ecu")))
		m.relayTime.Record(ctx, (r.TotalTime - r.ECUTime).Seconds(), metric.WithAttributes(attribute.String("part", "added")))
	}
}

func (m *metrics) waited(ctx context.Context, d time.Duration) {
	m.queueWait.Record(ctx, d.Seconds())
}

func (m *metrics) retried(ctx context.Context, kind string) {
	m.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
}

func (m *metrics) reconciled(result string) {
	m.reconciles.Add(context.Background(), 1, metric.WithAttributes(attribute.String("result", result)))
}

package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	collectormetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

const defaultTestTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// resetGlobals puts no-op providers back when the test ends, so no test sees
// another's providers.
func resetGlobals(t *testing.T) {
	t.Cleanup(func() {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
}

// collector is a fake OTLP gRPC collector that remembers what it received.
type collector struct {
	collectortracepb.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   []string
	metrics int
}

func (c *collector) Export(_ context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, s.GetName())
			}
		}
	}
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) spanNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.spans)
}

func (c *collector) metricExports() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metrics
}

// metricsService adapts the collector to the metrics service, whose Export
// method has the same name as the trace service's.
type metricsService struct {
	collectormetricspb.UnimplementedMetricsServiceServer
	c *collector
}

func (m metricsService) Export(_ context.Context, _ *collectormetricspb.ExportMetricsServiceRequest) (*collectormetricspb.ExportMetricsServiceResponse, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	m.c.metrics++
	return &collectormetricspb.ExportMetricsServiceResponse{}, nil
}

// startCollector serves a fake collector on loopback and points the process
// environment's OTLP endpoint at it (the OTLP exporters read it from there).
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortracepb.RegisterTraceServiceServer(srv, c)
	collectormetricspb.RegisterMetricsServiceServer(srv, metricsService{c: c})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	endpoint := "http://" + lis.Addr().String()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	return c, endpoint
}

// setupLog is what Setup logged about its choices.
type setupLog struct {
	Msg             string `json:"msg"`
	ServiceName     string `json:"service_name"`
	TracesExporter  string `json:"traces_exporter"`
	MetricsExporter string `json:"metrics_exporter"`
}

func TestSetupEnvironment(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		otlp        bool // run a fake collector and set OTEL_EXPORTER_OTLP_ENDPOINT to it
		wantErr     string
		wantTraces  string
		wantMetrics string
		wantService string
		wantMsg     string
	}{
		{name: "unset means none", wantTraces: "none", wantMetrics: "none"},
		{name: "explicit none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, wantTraces: "none", wantMetrics: "none"},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "Console"}, wantTraces: "console", wantMetrics: "console"},
		{name: "endpoint means otlp", otlp: true, wantTraces: "otlp", wantMetrics: "otlp"},
		{name: "explicit otlp with endpoint", otlp: true, env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantTraces: "otlp", wantMetrics: "otlp"},
		{name: "endpoint with metrics off", otlp: true, env: map[string]string{"OTEL_METRICS_EXPORTER": "none"}, wantTraces: "otlp", wantMetrics: "none"},
		{name: "traces endpoint only", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, wantTraces: "otlp", wantMetrics: "none"},
		{name: "service name override", env: map[string]string{"OTEL_SERVICE_NAME": "renamed"}, wantTraces: "none", wantMetrics: "none", wantService: "renamed"},
		{name: "bad traces exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "bad metrics exporter", env: map[string]string{"OTEL_METRICS_EXPORTER": "prometheus"}, wantErr: "OTEL_METRICS_EXPORTER"},
		{name: "list not supported", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "http protocol refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "metrics protocol refused", env: map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"},
		{name: "disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "zipkin"}, wantMsg: "telemetry disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resetGlobals(t)
			ctx := testContext(t)
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.otlp {
				_, endpoint := startCollector(t)
				env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
			}
			var logs, console bytes.Buffer
			shutdown, err := Setup(ctx, Config{
				ServiceName: "orchestrator",
				Getenv:      func(k string) string { return env[k] },
				Console:     &console,
				Logger:      slog.New(slog.NewJSONHandler(&logs, nil)),
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Setup(%v) = %v, want an error naming %s", tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup(%v) = %v", tt.env, err)
			}
			if err := shutdown(ctx); err != nil {
				t.Errorf("shutdown = %v", err)
			}
			if err := shutdown(ctx); err != nil {
				t.Errorf("second shutdown = %v", err)
			}

			var got setupLog
			if err := json.Unmarshal(logs.Bytes(), &got); err != nil {
				t.Fatalf("decoding the setup log %q: %v", logs.String(), err)
			}
			want := setupLog{Msg: "telemetry set up", ServiceName: "orchestrator", TracesExporter: tt.wantTraces, MetricsExporter: tt.wantMetrics}
			if tt.wantService != "" {
				want.ServiceName = tt.wantService
			}
			if tt.wantMsg != "" {
				want = setupLog{Msg: tt.wantMsg}
			}
			if got != want {
				t.Errorf("Setup(%v) logged %+v, want %+v", tt.env, got, want)
			}
		})
	}
}

func TestSetupDisabledInstallsNothing(t *testing.T) {
	resetGlobals(t)
	before := otel.GetTracerProvider()
	shutdown, err := Setup(testContext(t), Config{
		ServiceName: "orchestrator",
		Getenv: func(k string) string {
			return map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}[k]
		},
	})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	if err := shutdown(testContext(t)); err != nil {
		t.Errorf("shutdown = %v", err)
	}
	if after := otel.GetTracerProvider(); after != before {
		t.Errorf("the global tracer provider changed from %T to %T", before, after)
	}
}

func TestSetupConsoleWritesSpansAndMetrics(t *testing.T) {
	resetGlobals(t)
	ctx := testContext(t)
	var console bytes.Buffer
	env := map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console", "OTEL_SERVICE_NAME": "console-test"}
	shutdown, err := Setup(ctx, Config{ServiceName: "orchestrator", ServiceVersion: "1.2.3", Getenv: func(k string) string { return env[k] }, Console: &console})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	_, span := otel.Tracer("test").Start(ctx, "console-span")
	span.End()
	counter, err := otel.Meter("test").Int64Counter("console_counter")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown = %v", err)
	}
	for _, want := range []string{"console-span", "console_counter", "console-test", "1.2.3"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console output lacks %q:\n%s", want, console.String())
		}
	}
}

func TestSetupOTLPDeliversOnShutdown(t *testing.T) {
	resetGlobals(t)
	ctx := testContext(t)
	c, endpoint := startCollector(t)
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
	shutdown, err := Setup(ctx, Config{ServiceName: "orchestrator", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	_, span := otel.Tracer("test").Start(ctx, "otlp-span")
	span.End()
	counter, err := otel.Meter("test").Int64Counter("otlp_counter")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown = %v", err)
	}
	if got := c.spanNames(); !slices.Equal(got, []string{"otlp-span"}) {
		t.Errorf("collector got spans %q, want [otlp-span]", got)
	}
	if got := c.metricExports(); got == 0 {
		t.Errorf("collector got %d metric exports, want at least 1", got)
	}
}

func TestSetupPropagator(t *testing.T) {
	resetGlobals(t)
	ctx := testContext(t)
	shutdown, err := Setup(ctx, Config{ServiceName: "orchestrator", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	defer shutdown(ctx)
	fields := otel.GetTextMapPropagator().Fields()
	if !slices.Contains(fields, "traceparent") {
		t.Errorf("propagator fields = %q, want traceparent among them", fields)
	}
}

// Package telemetry sets up OpenTelemetry traces and metrics from the standard
// OTEL_* environment and gives slog handlers that stamp log records with the
// trace and span of their context.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	otelruntime "go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Exporter names accepted by OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
)

// Config names the service and says where to read the environment.
type Config struct {
	// ServiceName is the resource's service.name unless OTEL_SERVICE_NAME
	// overrides it.
	ServiceName string
	// ServiceVersion is the resource's service.version.
	ServiceVersion string
	// Getenv reads the OTEL_* variables that choose the exporters (default
	// os.Getenv). The OTLP exporters themselves always read their
	// OTEL_EXPORTER_OTLP_* settings from the process environment.
	Getenv func(string) string
	// Console receives the output of the console exporters (default
	// os.Stderr).
	Console io.Writer
	// Prometheus, when set, also receives every metric for scraping: an
	// OpenTelemetry Prometheus exporter registered on it reads the same
	// meter provider as the OTLP or console exporter, whatever
	// OTEL_METRICS_EXPORTER says. Go runtime metrics (runtime.go.* and
	// go.*) and the build_info gauge are recorded whenever metrics are
	// exported at all.
	Prometheus prometheus.Registerer
	// BuildInfo labels the build_info gauge (value 1), e.g. version,
	// revision and go_version; none: no gauge.
	BuildInfo map[string]string
	// Logger receives what was set up and, once set, the errors
	// OpenTelemetry reports in the background such as failed exports
	// (default: no setup log, background errors on OpenTelemetry's default
	// output).
	Logger *slog.Logger
}

// Setup installs the global tracer provider, meter provider and propagator
// (W3C trace context and baggage) as the OTEL_* environment says:
//
//   - OTEL_SDK_DISABLED=true: nothing is installed and shutdown does nothing.
//   - OTEL_TRACES_EXPORTER: "otlp" (OTLP over gRPC), "console" (JSON lines on
//     Config.Console) or "none". Unset, it is "otlp" when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
//     set and "none" otherwise, so a laptop run needs no collector.
//   - OTEL_METRICS_EXPORTER: the same, with OTEL_EXPORTER_OTLP_METRICS_ENDPOINT.
//   - OTEL_SERVICE_NAME overrides Config.ServiceName.
//
// Only one exporter per signal is supported, and only the gRPC protocol for
// OTLP. An unknown value is an error naming the variable.
//
// shutdown flushes pending telemetry and stops the providers and exporters;
// call it once, at the very end of the program (later calls return the
// first call's result).
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	console := cfg.Console
	if console == nil {
		console = os.Stderr
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	noop := func(context.Context) error { return nil }

	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		logger.InfoContext(ctx, "telemetry disabled", "variable", "OTEL_SDK_DISABLED")
		return noop, nil
	}
	traces, err := exporterChoice(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if err != nil {
		return nil, err
	}
	metrics, err := exporterChoice(getenv, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	if err != nil {
		return nil, err
	}
	if err := checkProtocol(getenv, traces, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); err != nil {
		return nil, err
	}
	if err := checkProtocol(getenv, metrics, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"); err != nil {
		return nil, err
	}

	name := cfg.ServiceName
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		name = v
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(name), semconv.ServiceVersion(cfg.ServiceVersion)),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	// Everything built so far is stopped again if a later step fails.
	var stops []func(context.Context) error
	stopAll := func(ctx context.Context) error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i](ctx))
		}
		return errors.Join(errs...)
	}

	tp, err := tracerProvider(ctx, traces, res, console)
	if err != nil {
		return nil, err
	}
	if tp != nil {
		stops = append(stops, tp.Shutdown)
	}
	mp, err := meterProvider(ctx, metrics, res, console, cfg.Prometheus)
	if err != nil {
		return nil, errors.Join(err, stopAll(ctx))
	}
	if mp != nil {
		stops = append(stops, mp.Shutdown)
		if err := processMetrics(mp, cfg.BuildInfo); err != nil {
			return nil, errors.Join(err, stopAll(ctx))
		}
	}

	if cfg.Logger != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("opentelemetry error", "error", err)
		}))
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if tp != nil {
		otel.SetTracerProvider(tp)
	}
	if mp != nil {
		otel.SetMeterProvider(mp)
	}
	logger.InfoContext(ctx, "telemetry set up", "service_name", name, "traces_exporter", traces, "metrics_exporter", metrics, "prometheus", cfg.Prometheus != nil)

	var (
		once        sync.Once
		shutdownErr error
	)
	return func(ctx context.Context) error {
		once.Do(func() {
			if err := stopAll(ctx); err != nil {
				shutdownErr = fmt.Errorf("telemetry shutdown: %w", err)
			}
		})
		return shutdownErr
	}, nil
}

// exporterChoice reads an exporter variable, defaulting to OTLP when an OTLP
// endpoint is configured for the signal.
func exporterChoice(getenv func(string) string, variable, signalEndpoint string) (string, error) {
	raw := strings.TrimSpace(getenv(variable))
	switch v := strings.ToLower(raw); v {
	case ExporterOTLP, ExporterConsole, ExporterNone:
		return v, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv(signalEndpoint) != "" {
			return ExporterOTLP, nil
		}
		return ExporterNone, nil
	}
	return "", fmt.Errorf("%s=%q: want %s, %s or %s", variable, raw, ExporterOTLP, ExporterConsole, ExporterNone)
}

// checkProtocol refuses OTLP protocols other than gRPC, the only one built in.
func checkProtocol(getenv func(string) string, exporter, signalProtocol string) error {
	if exporter != ExporterOTLP {
		return nil
	}
	for _, variable := range []string{signalProtocol, "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(variable)); v != "" && v != "grpc" {
			return fmt.Errorf("%s=%q: only grpc is supported", variable, v)
		}
	}
	return nil
}

// tracerProvider builds the tracer provider for the chosen exporter, or nil
// for none.
func tracerProvider(ctx context.Context, exporter string, res *resource.Resource, console io.Writer) (*sdktrace.TracerProvider, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch exporter {
	case ExporterNone:
		return nil, nil
	case ExporterOTLP:
		exp, err = otlptracegrpc.New(ctx)
	case ExporterConsole:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
	}
	if err != nil {
		return nil, fmt.Errorf("%s trace exporter: %w", exporter, err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// meterProvider builds the meter provider for the chosen exporter and the
// Prometheus registry, or nil for neither. The export interval follows
// OTEL_METRIC_EXPORT_INTERVAL.
func meterProvider(ctx context.Context, exporter string, res *resource.Resource, console io.Writer, reg prometheus.Registerer) (*sdkmetric.MeterProvider, error) {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	var (
		exp sdkmetric.Exporter
		err error
	)
	switch exporter {
	case ExporterOTLP:
		exp, err = otlpmetricgrpc.New(ctx)
	case ExporterConsole:
		exp, err = stdoutmetric.New(stdoutmetric.WithWriter(console))
	}
	if err != nil {
		return nil, fmt.Errorf("%s metric exporter: %w", exporter, err)
	}
	if exp != nil {
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	if reg != nil {
		prom, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("prometheus metric exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(prom))
	}
	if exp == nil && reg == nil {
		return nil, nil
	}
	return sdkmetric.NewMeterProvider(opts...), nil
}

// BuildInfoMetric is the name of the gauge that labels the build.
const BuildInfoMetric = "build_info"

// processMetrics records the Go runtime's metrics and the build_info gauge
// on mp. Both are read at collection time; neither starts a goroutine.
func processMetrics(mp *sdkmetric.MeterProvider, build map[string]string) error {
	if err := otelruntime.Start(otelruntime.WithMeterProvider(mp)); err != nil {
		return fmt.Errorf("runtime metrics: %w", err)
	}
	if len(build) == 0 {
		return nil
	}
	kvs := make([]attribute.KeyValue, 0, len(build))
	for k, v := range build {
		kvs = append(kvs, attribute.String(k, v))
	}
	labels := metric.WithAttributeSet(attribute.NewSet(kvs...))
	_, err := mp.Meter("github.com/obdorch/obdorch/orchestrator/telemetry").Int64ObservableGauge(BuildInfoMetric,
		metric.WithDescription("Always 1; the labels name the running build."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, labels)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("build_info metric: %w", err)
	}
	return nil
}

package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spanContext starts a recorded span and returns its context.
func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "op")
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return m
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	logger := slog.New(NewLogHandler(&buf, "json", slog.LevelInfo)).With("component", "test")
	logger.InfoContext(ctx, "with span", "k", "v")

	got := decode(t, buf.Bytes())
	want := map[string]string{
		"trace_id":  sc.TraceID().String(),
		"span_id":   sc.SpanID().String(),
		"component": "test",
		"k":         "v",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record[%q] = %v, want %q (record %s)", k, got[k], v, buf.Bytes())
		}
	}
}

func TestLogHandlerWithoutSpan(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
	}{
		{"background", context.Background()},
		{"invalid span context", trace.ContextWithSpanContext(context.Background(), trace.SpanContext{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(NewLogHandler(&buf, "json", slog.LevelInfo)).InfoContext(tt.ctx, "no span")
			got := decode(t, buf.Bytes())
			for _, k := range []string{"trace_id", "span_id"} {
				if _, ok := got[k]; ok {
					t.Errorf("record has %s without a span: %s", k, buf.Bytes())
				}
			}
		})
	}
}

func TestLogHandlerTextAndLevel(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	logger := slog.New(NewLogHandler(&buf, "text", slog.LevelWarn))
	logger.InfoContext(ctx, "dropped")
	logger.WarnContext(ctx, "kept")

	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("an info record passed a warn level: %s", out)
	}
	for _, want := range []string{"msg=kept", "trace_id=" + sc.TraceID().String(), "span_id=" + sc.SpanID().String()} {
		if !strings.Contains(out, want) {
			t.Errorf("text output %q lacks %q", out, want)
		}
	}
}

func TestLogHandlerGroup(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	slog.New(NewLogHandler(&buf, "json", nil)).WithGroup("g").InfoContext(ctx, "grouped")
	got := decode(t, buf.Bytes())
	g, _ := got["g"].(map[string]any)
	if g["trace_id"] != sc.TraceID().String() {
		t.Errorf("grouped record = %s, want trace_id inside group g", buf.Bytes())
	}
}

func TestLogHandlerJSONDurationsReadable(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(&buf, "json", slog.LevelInfo))
	log.Info("reopening", "retry_in", 1500*time.Millisecond, slog.Group("lease", "ttl", 30*time.Second))
	var rec struct {
		RetryIn string `json:"retry_in"`
		Lease   struct {
			TTL string `json:"ttl"`
		} `json:"lease"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if rec.RetryIn != "1.5s" || rec.Lease.TTL != "30s" {
		t.Errorf("durations logged as %q and %q, want \"1.5s\" and \"30s\": %s", rec.RetryIn, rec.Lease.TTL, buf.String())
	}
}

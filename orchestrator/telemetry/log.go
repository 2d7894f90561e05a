package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewLogHandler returns a slog handler writing to w in format "json" (any
// other value means text) at level and up. A record logged with a context
// that carries a valid span gets the trace_id and span_id attributes, so
// logs and traces can be joined. Under a logger's WithGroup the two ids land
// inside the group, like any other attribute of the record.
//
// In JSON, durations are written as Go duration strings ("1.5s", "250ms")
// instead of slog's integer nanoseconds; the text format already does so.
func NewLogHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		opts.ReplaceAttr = ReadableDuration
		return traceHandler{slog.NewJSONHandler(w, opts)}
	}
	return traceHandler{slog.NewTextHandler(w, opts)}
}

// ReadableDuration is a slog ReplaceAttr function that writes durations as
// strings such as "15s" or "1m30s".
func ReadableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// traceHandler adds the context's trace and span ids to each record.
type traceHandler struct {
	slog.Handler
}

// Handle implements slog.Handler.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

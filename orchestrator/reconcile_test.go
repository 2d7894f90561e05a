package orchestrator

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// countingHandler counts how often a logger is derived from it.
type countingHandler struct {
	slog.Handler
	withs *int
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	*h.withs++
	return countingHandler{h.Handler.WithAttrs(as), h.withs}
}

func TestReconcileLoggerIsBuiltOnFirstUse(t *testing.T) {
	var buf bytes.Buffer
	withs := 0
	o := &Orchestrator{log: slog.New(countingHandler{slog.NewTextHandler(&buf, nil), &withs})}
	rid := reconcileID()
	if len(rid) != 8 || strings.Trim(rid, "0123456789abcdef") != "" {
		t.Errorf("reconcileID() = %q, want 8 hex digits", rid)
	}
	ctx := withLogger(context.Background(), &reconcileLog{base: o.log, key: sessionKey("s1"), id: rid})
	if withs != 0 {
		t.Fatalf("logger derived %d times before anything was logged, want 0", withs)
	}
	o.logger(ctx).Info("first")
	o.logger(ctx).Info("second")
	if withs != 1 {
		t.Errorf("logger derived %d times for two lines, want 1", withs)
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.Contains(line, "key=session/s1") || !strings.Contains(line, "reconcile_id="+rid) {
			t.Errorf("log line %q lacks the key or the reconcile id", line)
		}
	}
	if o.logger(context.Background()) != o.log {
		t.Error("outside a reconcile, logger is not the core's own")
	}
}

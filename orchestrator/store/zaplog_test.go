package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/orchestrator/store"
)

// The etcd client warns on every failed attempt of a call, also when the
// caller cancelled it or its deadline passed; those go out at DEBUG. Real
// failures stay warnings.
func TestZapLoggerLevels(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"cancelled read", status.Error(codes.Canceled, "context canceled"), "DEBUG"},
		{"caller's deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "DEBUG"},
		{"context error", context.Canceled, "DEBUG"},
		{"etcd unavailable", status.Error(codes.Unavailable, "etcdserver: leader changed"), "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			store.ZapLogger(log, nil).Warn("retrying of unary invoker failed",
				zap.String("method", "/etcdserverpb.KV/Range"), zap.Error(tt.err))
			var rec struct{ Level, Msg string }
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log output %q: %v", buf.String(), err)
			}
			if rec.Level != tt.want || rec.Msg != "retrying of unary invoker failed" {
				t.Errorf("logged %s %q, want %s", rec.Level, rec.Msg, tt.want)
			}
		})
	}
}

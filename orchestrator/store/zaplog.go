package store

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// zapLogger returns a zap logger, as etcd's server and client take, that
// passes their warnings and errors to log. Lower levels are dropped: etcd is
// chatty at Info. Nothing is logged while mute, if given, is true.
func zapLogger(log *slog.Logger, mute *atomic.Bool) *zap.Logger {
	return zap.New(slogCore{log: log, mute: mute})
}

// slogCore is a zapcore.Core writing to a slog.Logger.
type slogCore struct {
	log  *slog.Logger
	mute *atomic.Bool
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return l >= zapcore.WarnLevel && (c.mute == nil || !c.mute.Load())
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{log: c.log.With(attrs(fields)...), mute: c.mute}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// benign lists what etcd logs as a warning or an error although it needs
// no action; these go out at Debug.
var benign = map[string]bool{
	// A new member tries to record its storage version before its first
	// backend commit, and succeeds on the next attempt a few seconds later.
	"failed to update storage version": true,
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := attrs(fields)
	if e.LoggerName != "" {
		args = append(args, slog.String("logger", e.LoggerName))
	}
	switch {
	case benign[e.Message], e.Level < zapcore.ErrorLevel && callerGaveUp(fields):
		c.log.Debug(e.Message, args...)
	case e.Level >= zapcore.ErrorLevel:
		c.log.Error(e.Message, args...)
	default:
		c.log.Warn(e.Message, args...)
	}
	return nil
}

// callerGaveUp reports whether the entry's error is a cancellation or an
// expired deadline of the caller's context, as in the etcd client's
// "retrying of unary invoker failed" when a read is cancelled: the caller
// knows and reports it, so it is not a warning of etcd's.
func callerGaveUp(fields []zapcore.Field) bool {
	for _, f := range fields {
		err, ok := f.Interface.(error)
		if f.Type != zapcore.ErrorType || !ok {
			continue
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return true
		}
		// The etcd client's errors are gRPC statuses, which do not wrap the
		// context's errors.
		if c := status.Code(err); c == codes.Canceled || c == codes.DeadlineExceeded {
			return true
		}
	}
	return false
}

func (c slogCore) Sync() error { return nil }

// attrs turns zap fields into slog attributes, sorted by key.
func attrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	args := make([]any, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		args = append(args, slog.Any(k, enc.Fields[k]))
	}
	return args
}

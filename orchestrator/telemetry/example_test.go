package telemetry_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/obdorch/obdorch/orchestrator/telemetry"
)

// A service sets up telemetry first and shuts it down last, so the final
// spans and metrics are flushed.
func ExampleSetup() {
	ctx := context.Background()
	logger := slog.New(telemetry.NewLogHandler(os.Stderr, "json", slog.LevelInfo))
	shutdown, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName:    "orchestrator",
		ServiceVersion: "v0.1.0",
		Logger:         logger,
	})
	if err != nil {
		logger.Error("telemetry", "error", err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			logger.Error("telemetry shutdown", "error", err)
		}
	}()
	// ... run the service ...
}

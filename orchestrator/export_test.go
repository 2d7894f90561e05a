package orchestrator

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// GlobalMeterReader installs, for the test, a global meter provider whose
// instruments it returns the reader of (the orchestrator's instruments come
// from the global provider). Tests using it cannot run in parallel.
func GlobalMeterReader(t *testing.T) *sdkmetric.ManualReader {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(provider)
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		_ = provider.Shutdown(t.Context())
	})
	return reader
}

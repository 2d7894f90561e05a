package telemetry

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind, such as an
// exporter that shutdown did not stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

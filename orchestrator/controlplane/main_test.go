package controlplane

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: servers,
// connections and stream loops must all be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

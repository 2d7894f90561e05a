// Package gcpercent holds the garbage collector target the commands run the
// orchestrator with, as a flag value.
//
// The relay allocates a few KiB per request, so at thousands of requests a
// second Go's default target (GOGC=100: collect when the heap has grown by
// its live size) collects often, and the requests in flight during a
// collection make the relay's latency tail. A target of 400 lets the heap
// grow to five times its live size between collections instead of twice.
// BENCHMARKS.md (make bench) measures the paced relay and idle sessions at
// both targets: the higher one shortens the relay's p99 and costs idle
// sessions memory. GOMEMLIMIT, which the Go runtime reads itself, still
// caps the heap.
package gcpercent

import (
	"fmt"
	"runtime/debug"
	"strconv"
)

// Default is the target the commands set when GOGC is not in the
// environment.
const Default = 400

// Value is a GC target in percent, or -1 for "off" (as GOGC spells it). It
// implements flag.Value.
type Value int

// FromEnv returns GOGC's value when the environment sets it (the Go runtime
// already applies it), else Default.
func FromEnv(getenv func(string) string) (Value, error) {
	v := Value(Default)
	if s := getenv("GOGC"); s != "" {
		if err := v.Set(s); err != nil {
			return 0, fmt.Errorf("GOGC=%q: %w", s, err)
		}
	}
	return v, nil
}

// String returns the target as GOGC spells it.
func (v Value) String() string {
	if v < 0 {
		return "off"
	}
	return strconv.Itoa(int(v))
}

// Set parses a percentage (at least 1) or "off".
func (v *Value) Set(s string) error {
	if s == "off" {
		*v = -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("want a percentage of at least 1, or off; got %q", s)
	}
	*v = Value(n)
	return nil
}

// Apply sets the process's GC target and returns a function that restores
// the previous one.
func (v Value) Apply() (restore func()) {
	prev := debug.SetGCPercent(int(v))
	return func() { debug.SetGCPercent(prev) }
}

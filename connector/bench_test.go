package connector_test

import (
	"testing"
)

// BenchmarkIsotpRequest measures Request round trips (22 F1 90, read the
// VIN) against the fake over loopback TCP, without bus timing. The fake
// runs in the same process, so allocs/op counts its allocations too;
// BenchmarkIsotpRequestInMemory gives the client's share alone.
func BenchmarkIsotpRequest(b *testing.B) {
	e := newEnv(b)
	s, _ := e.attach(b)
	ch := openEngine(b, s)
	ctx := testContext(b)
	if _, err := ch.Request(ctx, readVIN); err != nil { // warm up the stream
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Request(ctx, readVIN); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}

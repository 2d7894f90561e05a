package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// TestRenewalsOfLeasesTakenTogetherAreSpread: leases of one TTL fall due
// for renewal at shares of it spread over [renewFractionMin,
// renewFractionMax], so a batch of them is not renewed in one burst.
func TestRenewalsOfLeasesTakenTogetherAreSpread(t *testing.T) {
	const ttl = 30 * time.Second
	lo := time.Duration(renewFractionMin * float64(ttl))
	hi := time.Duration(renewFractionMax * float64(ttl))
	const n = 200
	var buckets [5]int // the range in fifths
	for i := range n {
		l := &session.Lease{ID: fmt.Sprintf("lease-%03d", i), TTL: ttl}
		d := renewBelow(l)
		if d < lo || d > hi {
			t.Fatalf("renewBelow(%s) = %s, want within [%s, %s]", l.ID, d, lo, hi)
		}
		if again := renewBelow(l); again != d {
			t.Fatalf("renewBelow(%s) = %s, then %s: want one share per lease", l.ID, d, again)
		}
		buckets[min(int(5*(d-lo)/(hi-lo)), 4)]++
	}
	for i, c := range buckets {
		// 40 expected per fifth; a hash that bunched the leases would leave
		// some fifths (nearly) empty.
		if c < 15 {
			t.Errorf("fifth %d of the renewal window holds %d of %d leases (%v), want them spread", i, c, n, buckets)
		}
	}
}

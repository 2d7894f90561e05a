package partner_test

import (
	"runtime"
	"testing"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// BenchmarkListTickets10k lists 10,000 tickets through the pager, in pages of 1000, from the fake
// over loopback HTTP. allocs/ticket counts every allocation in the process, so it includes the
// fake's side (routing, copying and encoding the page).
func BenchmarkListTickets10k(b *testing.B) {
	const n = 10_000
	srv := partnertest.NewServer(b, partnertest.Options{})
	srv.Seed(n, 1)
	c, err := partner.NewClient(srv.ClientConfig())
	if err != nil {
		b.Fatal(err)
	}
	filter := partner.TicketFilter{Paging: partner.Paging{PageSize: partner.MaxPageSize}}
	list := func() int {
		count := 0
		for _, err := range c.Tickets(b.Context(), filter) {
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		return count
	}
	list() // the token and warm connections

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	loops := 0
	for b.Loop() {
		if got := list(); got != n {
			b.Fatalf("listed %d tickets, want %d", got, n)
		}
		loops++
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(loops*n), "allocs/ticket")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(loops*n), "ns/ticket")
}

package partner_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// The intake of the orchestrator: pending tickets not yet processed, and the free connectors.
// The fake Partner API stands in for partner-api-001.prd.jifeline.cloud.
func ExampleClient_Tickets() {
	fake := partnertest.New(partnertest.Options{})
	fake.Seed(3, 42)
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()

	client, err := partner.NewClient(partner.Config{
		BaseURL:      srv.URL, // default: partner.DefaultBaseURL
		ClientID:     fake.ClientID(),
		ClientSecret: fake.ClientSecret(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	ctx := context.Background()
	notProcessed := false
	for t, err := range client.Tickets(ctx, partner.TicketFilter{State: partner.TicketPending, ExternallyProcessed: &notProcessed}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("ticket", t.TicketNumber, t.State, "VIN", *t.VIN)
	}
	for c, err := range client.Connectors(ctx, partner.Paging{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if c.Free() {
			fmt.Println("free connector", c.Name)
		}
	}
	// Output:
	// ticket 32237166 pending VIN VF1F0LYJ97M373063
	// ticket 2731629 pending VIN WDD80ZL56TL445026
	// ticket 55514102 pending VIN WDD9UAME6D0991577
	// free connector 426030
}

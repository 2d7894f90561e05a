package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/orchestrator/store"
)

// A replica on an embedded server claims a ticket, sees a second session on
// it refused, and releases the ticket when the session ends.
func Example() {
	dir, err := os.MkdirTemp("", "store-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv, err := store.StartEmbedded(ctx, store.EmbeddedConfig{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	s, err := store.Open(ctx, store.Config{Endpoints: srv.Endpoints(), Replica: "replica-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // before srv.Close: revokes the lease

	now := time.Now()
	rec := session.New("session-1", "intake", "pending ticket", now)
	rec.TicketID = "ticket-1"
	if err := s.Create(ctx, rec); err != nil {
		log.Fatal(err)
	}

	second := session.New("session-2", "intake", "pending ticket", now)
	second.TicketID = "ticket-1"
	var claimed *store.ClaimedError
	if err := s.Create(ctx, second); errors.As(err, &claimed) {
		fmt.Printf("%s %s is served by %s\n", claimed.Kind, claimed.TargetID, claimed.SessionID)
	}

	if err := rec.Transition(session.StateFailed, "intake", "no free connector", now); err != nil {
		log.Fatal(err)
	}
	if err := s.Update(ctx, rec); err != nil {
		log.Fatal(err)
	}
	_, held, err := s.ClaimOf(ctx, store.ClaimTicket, "ticket-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ticket-1 claimed after the session failed:", held)
	// Output:
	// ticket ticket-1 is served by session-1
	// ticket-1 claimed after the session failed: false
}

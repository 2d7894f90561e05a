// Package partner is a client of Jifeline's Partner API, the REST API that lists a partner's
// tickets, connectors and openOBD sessions.
//
// A Client authenticates with OAuth2 client credentials, keeps its access token fresh, retries
// what can be retried within a bounded budget and decodes answers strictly: unknown fields are
// ignored, but a field of the wrong type or an unknown state is a *DecodeError naming the field.
// Failed calls return an *APIError, which errors.Is matches against ErrNotFound and the other
// status sentinels.
//
// Lists are iterators that fetch pages lazily:
//
//	for t, err := range client.Tickets(ctx, partner.TicketFilter{State: partner.TicketPending}) {
//		if err != nil {
//			return err
//		}
//		...
//	}
//
// Some paths are assumptions, as Jifeline does not document them publicly; see PathConnectors.
// Package partnertest provides a fake Partner API to test against.
package partner

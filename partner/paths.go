package partner

import "net/http"

// Paths of the Partner API, relative to Config.BaseURL. The client and the fake in partnertest
// both use these, so a correction here moves both.
//
// Documented by Jifeline: PathToken, PathTickets and PathTickets + "/{id}".
//
// Assumptions: Jifeline's public documentation does not show the paths of connectors, openOBD
// sessions or the ticket write, nor the connector object. The values below follow the API's
// naming pattern (/v2/<area>/<collection>) and must be checked against a real account before use
// in production.
const (
	// PathToken is the OAuth2 client-credentials token endpoint.
	PathToken = "/oauth2/token"
	// PathTickets lists tickets; PathTickets + "/{id}" is one ticket.
	PathTickets = "/v2/tickets/tickets"

	// PathConnectors lists connectors; PathConnectors + "/{id}" is one connector. Assumed.
	PathConnectors = "/v2/customers/connectors"
	// PathSessions lists openOBD sessions; PathSessions + "/{id}" is one session. Assumed.
	PathSessions = "/v2/openobd/sessions"
	// PathInterruptSuffix follows PathSessions + "/{id}" to interrupt a session (POST). Assumed.
	PathInterruptSuffix = "/interrupt"
	// TicketWriteMethod is the method that writes external_reference and externally_processed
	// to PathTickets + "/{id}", with a JSON body holding either or both. Assumed.
	TicketWriteMethod = http.MethodPatch
)

// Package store keeps the orchestrator's session records in etcd.
//
// One engine serves two set-ups: an embedded single-node etcd server
// (StartEmbedded) for a replica that runs alone with its data in a local
// directory, and an existing etcd cluster shared by several replicas. In
// both, Open connects a Store to the server's client endpoints.
//
// # Keys
//
// All keys live under Config.Prefix (default "/obdorch/"):
//
//	sessions/<id>                 JSON session.Record; its mod revision is Record.Revision
//	claims/tickets/<ticketID>     JSON Claim, bound to the owning replica's lease
//	claims/connectors/<connID>    JSON Claim, bound to the owning replica's lease
//	live/sessions/<id>            empty; present while the session is live (for ListLive)
//	live/tickets/<ticketID>       id of the ticket's live session
//	live/connectors/<connID>      id of the connector's live session
//	requests/<requestID>          JSON Claim of the session the request created
//	latest/tickets/<ticketID>     id of the newest session created for the ticket
//	holds/tickets/<ticketID>      JSON Hold: intake leaves the ticket alone
//	replicas/<name>               JSON Replica (advertised address), bound to the replica's lease
//
// The live keys are not bound to a lease: when a replica dies, its claims go
// with its lease, but its sessions stay live, and no new session can start
// on their tickets and connectors until a replica adopts or ends them. A
// request key lives as long as the store keeps records: a retried request
// finds the session it created even after that session has ended.
//
// # Claims and fencing
//
// Each Store holds one etcd lease, kept alive while the Store is open. A
// session's ticket and connector claims are attached to the lease of the
// replica that owns the session, so they vanish when that replica stops
// renewing it. Every write a replica makes is a single etcd transaction
// conditioned on the record's revision and on the claims still being held
// with the replica's current lease. A replica paused past its lease therefore
// gets ErrFenced instead of overwriting the state written by the replica that
// adopted its sessions.
//
// A replica starts by listing the live sessions (ListLive), adopting those
// whose owner is gone (ClaimOf reports no replica), and then watching from
// the listed revision on. To end a session it cannot resume, it adopts the
// session and updates it to a final state.
//
// Each running replica registers its control-plane address under
// replicas/<name> (Register), bound to its lease like its claims; the other
// replicas read it (ReplicaAddress) to forward calls that need the live
// openOBD session to the session's owner.
//
// Ticket and connector ids are fixed when a record is created. Replica names
// must be unique among running processes: a Store adopts the sessions of an
// earlier process of the same name.
//
// Records hold openOBD session tokens. The store never logs record contents;
// keep the embedded data directory and etcd access private.
package store

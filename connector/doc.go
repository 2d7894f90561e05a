// Package connector is the openOBD gRPC client of the orchestrator.
//
// A Client talks to the session controller: it fetches and caches the
// session-controller token and starts, lists, inspects and interrupts
// sessions. Client.Attach claims a started session with its one-time
// authentication token and returns a Session, which keeps the session token
// fresh over openSessionTokenStream and sends the newest token on every call
// (the token streams of all sessions on an endpoint share HTTP/2 connections
// read by one goroutine each, package pushstream: an idle session has no
// goroutine of its own);
// Client.Resume re-attaches with a stored token after a restart. A Session
// configures buses, reports the connector's link state, opens ISO-TP
// channels and finishes. An IsotpChannel sends UDS requests and pairs them
// with their responses by the rules of package uds.
//
// Errors from openOBD are classified into a Kind (see Error and KindOf), so
// callers never look at gRPC status codes; context errors pass through
// unchanged. Tokens and the client secret never appear in logs or error
// texts.
package connector

// Package fake is an in-memory openOBD server ("Jifeline in a box"): the
// openOBD.v1 gRPC services over real gRPC, with a simulated vehicle behind
// every connector and faults that tests and harnesses steer at run time.
//
// # Use
//
//	dir := fake.NewStaticDirectory(fake.Target{TicketID: "…", TicketNumber: "7848095",
//		ConnectorID: "…", ConnectorName: "1001", VIN: "WVWZZZAUZKW000001"})
//	srv, addr := fake.Listen(t, fake.Options{ClientID: "id", ClientSecret: "secret", Directory: dir})
//
// Outside tests, New + Serve (or Register on your own grpc.Server, then set
// Options.Endpoint). The fake speaks plaintext gRPC; controller and session
// calls share one address, which is the SessionInfo.grpc_endpoint.
//
// # Behaviour that follows openOBD's documentation
//
//   - sessionController/getSessionControllerToken checks client id and secret:
//     INVALID_ARGUMENT "Invalid client" otherwise. Every other controller call
//     needs "authorization: Bearer <controller token>".
//   - startSessionOnTicket takes a ticket number or UUID (Directory). Unknown:
//     FAILED_PRECONDITION `No ticket found with the ticket number: "<value>"`.
//     A second live (available or active) session on the same ticket or
//     connector: UNAVAILABLE "Resource already in use.". The refuse-starts
//     fault answers UNAVAILABLE "There are no free resources available at the
//     moment. Please try again in two minutes.".
//   - A SessionInfo has state available, a created_at like
//     2019-08-24T14:15:22.651+0000 (UTC), the grpc_endpoint and a one-time
//     authentication_token (returned while the session is available).
//   - session/authenticate must be the first session call, exactly once:
//     PERMISSION_DENIED "Only allowed call to be made at this point is the
//     authenticate() call" for another call with the one-time token, and
//     PERMISSION_DENIED "Session is already authenticated, at this point the
//     authenticate() call is not permitted" for a second authenticate.
//   - openSessionTokenStream sends a new session token every TokenRotation
//     (real: 2 min); each token is valid for TokenValidity (real: 5 min), so
//     several are valid at once. session/finish moves the session to finished
//     (an empty result list is INVALID_ARGUMENT).
//   - config/configureBus takes up to four buses per stream; each stream
//     replaces the previous configuration. Names must be unique and set,
//     pins 1..16, no pin shared by two buses, CAN-high and CAN-low differ,
//     protocol and bit rate not UNDEFINED.
//   - can/openIsotpStream: hex payloads (either case in, upper case out); a
//     message with an empty payload opens its channel and gets no answer; a
//     channel's bus must be configured for ISO-TP.
//   - connectionMonitor: getConnectorInformation, and a stream with one
//     message per InfoPeriod (real: 1 s), the first one at once.
//   - Sessions that ended are forgotten after Retention (real: 2 min).
//
// # Choices where openOBD's behaviour is not documented
//
// These are the fake's own and are kept in errors.go:
//
//   - Missing, unknown or expired bearer tokens: UNAUTHENTICATED (`Missing
//     "authorization: Bearer <token>" metadata.`, "Invalid token.", "Token has
//     expired."). The one-time token is consumed by authenticate; using it
//     again for another call is "Invalid token.". Controller tokens live for
//     ControllerTokenValidity (default 90 min, the lifetime Jifeline's Python
//     client assumes).
//   - A session token is checked when a call or a stream begins. A stream
//     that is open when its token expires goes on until it, its session or
//     the fake ends; a new stream with that token is UNAUTHENTICATED.
//   - When a session is interrupted (interruptSession, InterruptSession, the
//     Partner API or the steering handler), every open stream of it ends with
//     Options.InterruptCode (default CANCELLED) and "Session was interrupted.".
//     A finished session ends its streams with CANCELLED "Session was
//     finished.", a failed one with ABORTED "Session has failed.". Later
//     calls with the session's token get FAILED_PRECONDITION "Session is not
//     active (state: interrupted)." (finished, failed likewise).
//   - interruptSession of an ended session: FAILED_PRECONDITION with the same
//     text; of an unknown or forgotten one: NOT_FOUND `No session found with
//     id: "<id>"`. startSessionOnConnector with an unknown connector:
//     FAILED_PRECONDITION `No connector found with the connector id: "<v>"`.
//   - Dropped streams (fault): UNAVAILABLE "Stream was dropped; the session is
//     still live, open the stream again.". Closing the fake: UNAVAILABLE
//     "Server is shutting down.".
//   - ISO-TP: a message without channel, with an unconfigured bus, malformed
//     hex or more than 4095 bytes ends the stream with INVALID_ARGUMENT naming
//     the problem. Requests to a CAN id no ECU listens on, or whose ECU
//     answers on another id than the channel's response id, get no answer.
//     Requests are answered in order, one at a time per stream.
//   - openRawStream, openKlineStream and openControlStream answer
//     UNIMPLEMENTED.
//
// # The simulated vehicle
//
// Every connector has a Vehicle with the VIN of its Target. Its ECUs
// (Options.ECUs, default DefaultECUs):
//
//	name          request  response  DTCs (code, status; 00: supported, not stored)
//	engine        0x7E0    0x7E8     P0301 0x2F, P0420 0x08, P0171 0x00
//	transmission  0x7E1    0x7E9     P0700 0x09, P0715 0x00
//	body          0x7E2    0x7EA     B1234 0x28, B1001 0x00
//
// UDS services of every ECU (negative answers are 7F <sid> <nrc>):
//
//	0x10 session control  01 default, 02 programming, 03 extended; answer
//	                      50 <s> 00 32 01 F4. A non-default session falls
//	                      back to default 5 s after the last request (S3).
//	                      Every session change locks security access again,
//	                      returns controlled outputs to the ECU and stops
//	                      the self test.
//	0x11 ECU reset        01, 02, 03; back to the default session.
//	0x14 clear DTCs       FFFFFF (all) or one DTC; answer 54. A cleared DTC
//	                      keeps status 0x50 (tests not completed), as in
//	                      ISO 14229-1; 31 for a DTC the ECU does not know.
//	0x19 read DTCs        01 count and 02 list by status mask, 0A every
//	                      supported DTC; status availability mask FF.
//	0x22 read data        F190 VIN, F18C serial, F187 part number, F186
//	                      active session, 0101 coding, F198 repair shop
//	                      code, 0201 fan duty (%), 1234 a 4000-byte record;
//	                      several DIDs per request; 14 if the answer would
//	                      exceed 4095 bytes.
//	0x27 security access  level 01/02 in the extended or programming
//	                      session (7F in the default one): 27 01 gives a
//	                      4-byte seed (zeros when already unlocked), 27 02
//	                      <key> unlocks with DemoSecurityKey(seed). 24 for
//	                      a key without a seed, 35 for a wrong key, 36 at
//	                      the third wrong key in a row, then 37 for
//	                      SecurityDelay (10 s).
//	0x2E write data       0101 (4 bytes) and F198 (10 bytes, needs security
//	                      access: 33 otherwise) in the extended session only:
//	                      7F outside it, 13 for a bad length, 31 for other
//	                      DIDs.
//	0x2F I/O control      0201 fan duty in the extended session (7F outside)
//	                      with security access (33): 00 return control to
//	                      the ECU (40 %), 01 reset to default (0 %), 02
//	                      freeze, 03 <0-100> short-term adjustment; answer
//	                      6F 02 01 <param> <duty>.
//	0x31 routine control  FF00: start (01) answers 78 RoutinePending times
//	                      (default 3, RoutinePendingSpacing apart) then
//	                      71 01 FF 00 00; stop (02) and results (03) at once.
//	                      0203 self test, extended session (31 outside)
//	                      with security access (33): start 71 01 02 03 00,
//	                      results 71 03 02 03 00 00 once started, stop
//	                      while running; 24 otherwise.
//	0x3E tester present   00 answers 7E 00; 80 suppresses the answer.
//	other                 11 serviceNotSupported; 12 for unknown
//	                      sub-functions, 13 for wrong lengths, 31 for unknown
//	                      DIDs and routines.
//
// The suppress-positive-response bit is honoured for 0x10, 0x11 and 0x3E.
// With Options.BusTiming, answers are delayed by the CAN frames they and
// their request take at the bus's bit rate (125 bits per frame: 0.25 ms at
// 500 kbit/s; single frame up to 7 bytes, else a first frame of 6 bytes, a
// flow control frame and consecutive frames of 7 bytes).
//
// # Faults and observation
//
// Faults (Server.Faults) are steered from Go or over HTTP
// (Server.SteeringHandler, usage on its GET /): call and ISO-TP latency,
// hang, refused starts, early token expiry, dropped streams, connector
// disconnects, silent ECUs, 0x21 and 0x78 storms, interrupting and failing
// sessions; from Go only, the next calls of one method failing with a given
// status (Faults.FailCalls). Calls counts calls per method, Sessions lists
// sessions, and
// Options.OnSessionChange observes state changes.
//
// The service types embed the generated Unsafe*Server interfaces, so an RPC
// added to the contract fails to compile here until the fake answers it.
//
// The fake starts no background goroutines: retention and token expiry are
// evaluated against Options.Now whenever state is read, and stream timers
// live inside the stream handlers.
//
// Sessions are independent: while no ECU fault is set, the messages of an
// ISO-TP stream take no lock that other sessions take (see Server for the
// locks).
package fake

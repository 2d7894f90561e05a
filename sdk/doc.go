// Package sdk is the Go client for diagnostic runners of the obdorch
// orchestrator: acquire a READY session, talk UDS to its ECUs, finish it with
// a result.
//
//	c, err := sdk.Dial("127.0.0.1:7600", sdk.WithInsecure(), sdk.WithRunnerName("vin-reader"))
//	...
//	defer c.Close()
//	s, err := c.Acquire(ctx, sdk.AcquireOptions{})          // waits for a READY session
//	...
//	engine, err := s.Channel(ctx, sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8})
//	vin, err := engine.ReadVIN(ctx)
//	dtcs, err := engine.ReadDTCsByStatus(ctx, uds.ConfirmedDTC)
//	_, err = s.Finish(ctx, sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}})
//
// What the SDK does for the runner:
//
//   - the lease: Acquire returns a Session that renews its lease in the
//     background; Lost is closed and every later call fails when the lease is
//     lost (ErrLeaseLost), the session is interrupted (*InterruptedError with
//     actor and reason) or it ended (ErrSessionEnded);
//   - the channel: one Exchange stream per ECU, correlation ids, one
//     outstanding request at a time (concurrent callers take turns), answers
//     matched to their request;
//   - UDS: helpers for services 0x10, 0x11, 0x14, 0x19 (01, 02, 0A), 0x22,
//     0x27, 0x2E, 0x2F, 0x31 and 0x3E with typed results (package uds), and
//     negative answers as *uds.NegativeResponseError with the NRC's ISO
//     14229 name.
//
// The runner never handles openOBD credentials or session tokens: the
// orchestrator holds them, keeps the openOBD session alive and relays the
// runner's traffic. The runner's only secret is its lease id (and, where the
// orchestrator requires one, its bearer token).
//
// The module depends on gRPC, protobuf and the generated control-plane code
// (module github.com/obdorch/obdorch/gen) only.
package sdk

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obdorch/obdorch/cmd/internal/buildinfo"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

type runFunc = func(ctx context.Context, e *env, args []string) error

func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", name, args[0])
	}
	return nil
}

func ticketsCmd(fs *flag.FlagSet) runFunc {
	state := fs.String("state", "", "ticket `state`: prepared, pending, in_progress, outsourced, closed or cancelled (default: the intake state)")
	pageSize := fs.Int("page-size", 100, "tickets per call (1-1000); every page is listed")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs("tickets", args); err != nil {
			return err
		}
		req := &orchestratorv1.ListTicketsRequest{PageSize: int32(*pageSize)}
		if *state != "" {
			v, ok := orchestratorv1.TicketState_value["TICKET_STATE_"+strings.ToUpper(*state)]
			if !ok {
				return usagef("--state: unknown ticket state %q", *state)
			}
			req.State = orchestratorv1.TicketState(v)
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		var all []*orchestratorv1.Ticket
		for {
			cctx, cancel := e.call(ctx)
			resp, err := e.client.ListTickets(cctx, req)
			cancel()
			if err != nil {
				return err
			}
			all = append(all, resp.GetTickets()...)
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, &orchestratorv1.ListTicketsResponse{Tickets: all})
		}
		printTickets(e.stdout, all)
		return nil
	}
}

func connectorsCmd(fs *flag.FlagSet) runFunc {
	free := fs.Bool("free", false, "only free connectors")
	pageSize := fs.Int("page-size", 100, "connectors per call (1-1000); every page is listed")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs("connectors", args); err != nil {
			return err
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		req := &orchestratorv1.ListConnectorsRequest{FreeOnly: *free, PageSize: int32(*pageSize)}
		var all []*orchestratorv1.Connector
		for {
			cctx, cancel := e.call(ctx)
			resp, err := e.client.ListConnectors(cctx, req)
			cancel()
			if err != nil {
				return err
			}
			all = append(all, resp.GetConnectors()...)
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, &orchestratorv1.ListConnectorsResponse{Connectors: all})
		}
		printConnectors(e.stdout, all)
		return nil
	}
}

// parseStates reads "READY,RUNNING" (any case, with or without the
// SESSION_STATE_ prefix).
func parseStates(s string) ([]orchestratorv1.SessionState, error) {
	var out []orchestratorv1.SessionState
	for _, p := range strings.Split(s, ",") {
		p = strings.ToUpper(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		v, ok := orchestratorv1.SessionState_value["SESSION_STATE_"+strings.TrimPrefix(p, "SESSION_STATE_")]
		if !ok || v == 0 {
			return nil, usagef("--state: unknown session state %q (want PENDING, STARTING, READY, RUNNING, FINISHING, FINISHED, FAILED or INTERRUPTED)", p)
		}
		out = append(out, orchestratorv1.SessionState(v))
	}
	return out, nil
}

func sessionsCmd(fs *flag.FlagSet) runFunc {
	state := fs.String("state", "", "only these `states`, comma-separated (list)")
	ticket := fs.String("ticket", "", "only sessions of this ticket `UUID` (list, watch)")
	connectorID := fs.String("connector", "", "only sessions on this connector `UUID` (list)")
	limit := fs.Int("limit", 0, "list at most `N` sessions (0: all)")
	since := fs.Int64("since", 0, "watch from this store `revision` (0: changes from now on)")
	sessionID := fs.String("session", "", "watch only this session `ID`")
	return func(ctx context.Context, e *env, args []string) error {
		sub := "list"
		if len(args) > 0 {
			sub, args = args[0], args[1:]
		}
		switch sub {
		case "list":
			if err := noArgs("sessions list", args); err != nil {
				return err
			}
			states, err := parseStates(*state)
			if err != nil {
				return err
			}
			if *limit < 0 {
				return usagef("--limit: must not be negative")
			}
			return listSessions(ctx, e, &orchestratorv1.ListSessionsRequest{States: states, TicketId: *ticket, ConnectorId: *connectorID}, *limit)
		case "get":
			if len(args) != 1 {
				return usagef("sessions get: want one SESSION_ID")
			}
			return getSession(ctx, e, args[0])
		case "watch":
			if err := noArgs("sessions watch", args); err != nil {
				return err
			}
			if *since < 0 {
				return usagef("--since: must not be negative")
			}
			return watchSessions(ctx, e, &orchestratorv1.WatchSessionsRequest{StartRevision: *since, SessionId: *sessionID, TicketId: *ticket}, nil)
		}
		return usagef("sessions: unknown subcommand %q (want list, get or watch)", sub)
	}
}

func listSessions(ctx context.Context, e *env, req *orchestratorv1.ListSessionsRequest, limit int) error {
	ctx, err := e.dial(ctx)
	if err != nil {
		return err
	}
	req.PageSize = 500
	var all []*orchestratorv1.Session
	for {
		if limit > 0 {
			req.PageSize = int32(min(500, limit-len(all)))
		}
		cctx, cancel := e.call(ctx)
		resp, err := e.client.ListSessions(cctx, req)
		cancel()
		if err != nil {
			return err
		}
		all = append(all, resp.GetSessions()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" || (limit > 0 && len(all) >= limit) {
			break
		}
	}
	if e.g.output == "json" {
		return printJSON(e.stdout, &orchestratorv1.ListSessionsResponse{Sessions: all})
	}
	printSessions(e.stdout, all)
	return nil
}

func getSession(ctx context.Context, e *env, id string) error {
	ctx, err := e.dial(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	resp, err := e.client.GetSession(cctx, &orchestratorv1.GetSessionRequest{SessionId: id})
	if err != nil {
		return err
	}
	if e.g.output == "json" {
		return printJSON(e.stdout, resp)
	}
	printSession(e.stdout, resp.GetSession())
	return nil
}

// watchSessions prints events until ctx ends (Ctrl-C: a clean exit) or
// until done says the last event was the one awaited. A stream the server
// ends with UNAVAILABLE (shutdown) or RESOURCE_EXHAUSTED (too slow) is
// resumed after the last revision received.
func watchSessions(ctx context.Context, e *env, req *orchestratorv1.WatchSessionsRequest, done func(*orchestratorv1.WatchSessionsResponse) (bool, error)) error {
	ctx, err := e.dial(ctx)
	if err != nil {
		return err
	}
	retry := 200 * time.Millisecond
	for {
		stream, err := e.client.WatchSessions(ctx, req)
		for err == nil {
			var ev *orchestratorv1.WatchSessionsResponse
			if ev, err = stream.Recv(); err != nil {
				break
			}
			retry = 200 * time.Millisecond
			req.StartRevision = ev.GetRevision() + 1
			if e.g.output == "json" {
				if err := printJSONLine(e.stdout, ev); err != nil {
					return err
				}
			} else if ev.GetTransition() != nil {
				printEvent(e.stdout, ev) // people see transitions; scripts get every change
			}
			if done != nil {
				if stop, derr := done(ev); stop || derr != nil {
					return derr
				}
			}
		}
		if ctx.Err() != nil {
			if done != nil && !errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return nil // Ctrl-C: a clean stop
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted:
			fmt.Fprintf(e.stderr, "obdctl: watch interrupted (%s); resuming from revision %d\n", status.Code(err), req.StartRevision)
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, 5*time.Second)
	}
}

func startCmd(fs *flag.FlagSet) runFunc {
	ticket := fs.String("ticket", "", "ticket `UUID or number`")
	connectorID := fs.String("connector", "", "free connector `UUID`")
	requestID := fs.String("request-id", "", "`id` that makes retries of this start safe")
	force := fs.Bool("force", false, "start even if the ticket's latest session FINISHED or the ticket is externally processed")
	dryRun := fs.Bool("dry-run", false, "check everything, start nothing, and say what would happen")
	wait := fs.Bool("wait", false, "follow the session until READY (exit 0) or until it fails (exit 1)")
	waitFor := fs.Duration("wait-timeout", 2*time.Minute, "give up --wait after this `duration`")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs("start", args); err != nil {
			return err
		}
		req := &orchestratorv1.StartSessionRequest{RequestId: *requestID, Force: *force, ValidateOnly: *dryRun}
		switch {
		case (*ticket == "") == (*connectorID == ""):
			return usagef("start: give exactly one of --ticket and --connector")
		case *ticket != "":
			req.Target = &orchestratorv1.StartSessionRequest_TicketId{TicketId: *ticket}
		default:
			req.Target = &orchestratorv1.StartSessionRequest_ConnectorId{ConnectorId: *connectorID}
		}
		if *dryRun && *wait {
			return usagef("start: --dry-run and --wait exclude each other")
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := e.call(ctx)
		resp, err := e.client.StartSession(cctx, req)
		cancel()
		if err != nil {
			return err
		}
		if e.g.output == "json" {
			print := printJSON
			if *wait {
				print = printJSONLine // then one object per line, the events after it
			}
			if err := print(e.stdout, resp); err != nil {
				return err
			}
		} else {
			printStarted(e.stdout, resp, *dryRun)
		}
		if !*wait {
			return nil
		}
		s := resp.GetSession()
		if stop, err := settled(s); stop || err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(ctx, *waitFor)
		defer wcancel()
		err = watchSessions(wctx, e, &orchestratorv1.WatchSessionsRequest{StartRevision: s.GetRevision() + 1, SessionId: s.GetId()},
			func(ev *orchestratorv1.WatchSessionsResponse) (bool, error) { return settled(ev.GetSession()) })
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("session %s not READY after %s", s.GetId(), *waitFor)
		}
		return err
	}
}

// settled reports whether --wait is over for s: READY or beyond is done; a
// final state other than FINISHED is an error naming the reason.
func settled(s *orchestratorv1.Session) (bool, error) {
	switch st := s.GetState(); st {
	case orchestratorv1.SessionState_SESSION_STATE_READY, orchestratorv1.SessionState_SESSION_STATE_RUNNING,
		orchestratorv1.SessionState_SESSION_STATE_FINISHING, orchestratorv1.SessionState_SESSION_STATE_FINISHED:
		return true, nil
	case orchestratorv1.SessionState_SESSION_STATE_FAILED, orchestratorv1.SessionState_SESSION_STATE_INTERRUPTED:
		return true, fmt.Errorf("session %s %s: %s", s.GetId(), stateName(st), s.GetReason())
	}
	return false, nil
}

func acquireCmd(fs *flag.FlagSet) runFunc {
	ticket := fs.String("ticket", "", "only a session of this ticket (`UUID or number`)")
	connectorID := fs.String("connector", "", "only a session on this connector `UUID`")
	vin := fs.String("vin", "", "only a session on this `VIN`")
	runner := fs.String("runner", "", "runner `name` recorded in the session's history (default obdctl@<host>)")
	ttl := fs.Duration("ttl", 30*time.Second, "lease time to live (5s-10m); traffic renews it")
	renew := fs.String("renew", "", "renew this `lease id` instead of acquiring")
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs("acquire", args); err != nil {
			return err
		}
		name := *runner
		if name == "" {
			host, _ := os.Hostname()
			name = "obdctl@" + host
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := e.call(ctx) // the long poll waits up to --timeout
		defer cancel()
		resp, err := e.client.AcquireSession(cctx, &orchestratorv1.AcquireSessionRequest{
			TicketId: *ticket, ConnectorId: *connectorID, Vin: *vin, Runner: name,
			LeaseTtl: durationpb.New(*ttl), RenewLeaseId: *renew,
		})
		if err != nil {
			return err
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, resp)
		}
		printAcquired(e.stdout, resp)
		return nil
	}
}

func finishCmd(fs *flag.FlagSet) runFunc {
	lease := fs.String("lease", "", "lease `id` from acquire (required while the session is RUNNING)")
	result := fs.String("result", "success", "result `codes`, comma-separated: success, invalid-preconditions, needs-validation, needs-completion, failure-authentication-error, failure-missing-coding-information, failure-not-compatible, failure-communication-error, failure-runtime-error, failure-external-service-error, failure")
	feedback := fs.String("feedback", "", "customer `feedback`: success, failure or assistance-requested")
	description := fs.String("description", "", "free `text` (up to 1024 characters)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("finish: want one SESSION_ID")
		}
		res := &orchestratorv1.FinishResult{Description: *description}
		for _, c := range strings.Split(*result, ",") {
			name := "RESULT_CODE_" + strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(c), "-", "_"))
			v, ok := orchestratorv1.ResultCode_value[name]
			if !ok || v == 0 {
				return usagef("--result: unknown result code %q", c)
			}
			res.Codes = append(res.Codes, orchestratorv1.ResultCode(v))
		}
		if *feedback != "" {
			v, ok := orchestratorv1.UserFeedback_value["USER_FEEDBACK_"+strings.ToUpper(strings.ReplaceAll(*feedback, "-", "_"))]
			if !ok || v == 0 {
				return usagef("--feedback: unknown feedback %q (want success, failure or assistance-requested)", *feedback)
			}
			res.UserFeedback = orchestratorv1.UserFeedback(v)
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := e.call(ctx)
		defer cancel()
		resp, err := e.client.FinishSession(cctx, &orchestratorv1.FinishSessionRequest{SessionId: args[0], LeaseId: *lease, Result: res})
		if err != nil {
			return err
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, resp)
		}
		printSession(e.stdout, resp.GetSession())
		return nil
	}
}

func interruptCmd(fs *flag.FlagSet) runFunc {
	reason := fs.String("reason", "", "why (required; recorded and given to the runner)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("interrupt: want one SESSION_ID")
		}
		if strings.TrimSpace(*reason) == "" {
			return usagef("interrupt: --reason is required")
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := e.call(ctx)
		defer cancel()
		resp, err := e.client.InterruptSession(cctx, &orchestratorv1.InterruptSessionRequest{SessionId: args[0], Reason: *reason})
		if err != nil {
			return err
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, resp)
		}
		printSession(e.stdout, resp.GetSession())
		return nil
	}
}

// ecus are the standard OBD-II CAN addresses (11-bit, ISO 15765-4) by name.
var ecus = map[string][2]uint32{
	"engine":       {0x7E0, 0x7E8},
	"transmission": {0x7E1, 0x7E9},
	"body":         {0x7E2, 0x7EA},
}

func sendCmd(fs *flag.FlagSet) runFunc {
	lease := fs.String("lease", "", "lease `id` from acquire (required while the session is RUNNING)")
	can := fs.String("can", "", "CAN ids `REQ/RESP` in hex, e.g. 7E1/7E9 (default 7E0/7E8, the engine)")
	ecu := fs.String("ecu", "", "ECU by `name`: engine (7E0/7E8), transmission (7E1/7E9) or body (7E2/7EA)")
	bus := fs.String("bus", "", "configured bus `name` (default the session's first bus)")
	wait := fs.Duration("response-timeout", 0, "time allowed for the ECU's answer (default the server's P2)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 2 {
			return usagef("send: want SESSION_ID HEX, e.g. send 3f2a... 22F190")
		}
		payload, err := hex.DecodeString(strings.NewReplacer(" ", "", ":", "").Replace(args[1]))
		if err != nil || len(payload) == 0 {
			return usagef("send: HEX %q: want hex bytes such as 22F190", args[1])
		}
		req, resp, err := channelOf(*can, *ecu)
		if err != nil {
			return err
		}
		ctx, err = e.dial(ctx)
		if err != nil {
			return err
		}
		busName := *bus
		if busName == "" {
			cctx, cancel := e.call(ctx)
			got, err := e.client.GetSession(cctx, &orchestratorv1.GetSessionRequest{SessionId: args[0]})
			cancel()
			if err != nil {
				return err
			}
			if len(got.GetSession().GetBuses()) == 0 {
				return fmt.Errorf("session %s has no bus configured (state %s)", args[0], stateName(got.GetSession().GetState()))
			}
			busName = got.GetSession().GetBuses()[0].GetName()
		}
		sreq := &orchestratorv1.SendRequest{
			SessionId: args[0], LeaseId: *lease, Payload: payload,
			Channel: &orchestratorv1.Channel{BusName: busName, RequestId: req, ResponseId: resp},
		}
		if *wait > 0 {
			sreq.Timeout = durationpb.New(*wait)
		}
		cctx, cancel := e.call(ctx)
		defer cancel()
		out, err := e.client.Send(cctx, sreq)
		if err != nil {
			return err
		}
		d := decode(payload, out)
		d.SessionID, d.Bus, d.CAN = args[0], busName, fmt.Sprintf("%03X/%03X", req, resp)
		if e.g.output == "json" {
			return printJSONValue(e.stdout, d)
		}
		printDecoded(e.stdout, d)
		return nil
	}
}

// channelOf resolves --can and --ecu to CAN ids.
func channelOf(can, ecu string) (uint32, uint32, error) {
	switch {
	case can != "" && ecu != "":
		return 0, 0, usagef("send: give --can or --ecu, not both")
	case ecu != "":
		ids, ok := ecus[strings.ToLower(ecu)]
		if !ok {
			return 0, 0, usagef("--ecu: unknown ECU %q (want engine, transmission or body, or give --can)", ecu)
		}
		return ids[0], ids[1], nil
	case can != "":
		reqS, respS, ok := strings.Cut(can, "/")
		req, err1 := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(reqS), "0x"), 16, 32)
		resp, err2 := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(respS), "0x"), 16, 32)
		if !ok || err1 != nil || err2 != nil || req > 0x1FFFFFFF || resp > 0x1FFFFFFF {
			return 0, 0, usagef("--can: want REQ/RESP CAN ids in hex, e.g. 7E1/7E9, got %q", can)
		}
		return uint32(req), uint32(resp), nil
	}
	return 0x7E0, 0x7E8, nil
}

func versionCmd(fs *flag.FlagSet) runFunc {
	return func(ctx context.Context, e *env, args []string) error {
		if err := noArgs("version", args); err != nil {
			return err
		}
		info := buildinfo.Read()
		if e.g.output == "json" {
			return printJSONValue(e.stdout, map[string]string{"version": info.Version, "revision": info.Revision, "time": info.Time, "go_version": info.GoVersion})
		}
		fmt.Fprintln(e.stdout, info.String("obdctl"))
		return nil
	}
}

func completionCmd(fs *flag.FlagSet) runFunc {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 || args[0] != "bash" {
			return usagef("completion: want \"bash\" (source <(obdctl completion bash))")
		}
		_, err := io.WriteString(e.stdout, bashCompletion())
		return err
	}
}

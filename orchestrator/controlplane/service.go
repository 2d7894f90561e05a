// Package controlplane is the gRPC adapter of the orchestrator: it validates
// requests, calls one core method and maps the core's errors to status codes
// (toStatus). It holds no state of its own besides per-stream buffers and,
// when several replicas share a store, the connections its Forwarder keeps
// to the other replicas (forward.go).
package controlplane

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/partner"
)

// Core is what the control plane needs from the orchestrator core; it is
// satisfied by *orchestrator.Orchestrator.
type Core interface {
	ListTickets(ctx context.Context, state partner.TicketState, page orchestrator.Page) ([]orchestrator.TicketView, string, error)
	ListConnectors(ctx context.Context, freeOnly bool, page orchestrator.Page) ([]orchestrator.ConnectorView, string, error)
	StartSession(ctx context.Context, req orchestrator.StartRequest) (orchestrator.StartResult, error)
	GetSession(ctx context.Context, id string) (*session.Record, error)
	ListSessions(ctx context.Context, f orchestrator.SessionFilter, page orchestrator.Page) ([]*session.Record, string, error)
	WatchSessions(ctx context.Context, startRevision int64, f orchestrator.SessionFilter) iter.Seq2[orchestrator.Event, error]
	AcquireSession(ctx context.Context, req orchestrator.AcquireRequest) (orchestrator.Acquired, error)
	ConfigureBus(ctx context.Context, id, leaseID string, buses []session.Bus) (*session.Record, error)
	ValidateConfigureBus(ctx context.Context, id, leaseID string, buses []session.Bus) (*session.Record, error)
	OpenChannel(ctx context.Context, id, leaseID string, ch orchestrator.Channel) (orchestrator.RelayChannel, *session.Record, error)
	Send(ctx context.Context, id, leaseID string, ch orchestrator.Channel, req orchestrator.Request) (orchestrator.Response, error)
	FinishSession(ctx context.Context, id, leaseID string, res session.Result) (*session.Record, error)
	InterruptSession(ctx context.Context, id, actor, reason string) (*session.Record, error)
}

// Options tune the service's stream handling.
type Options struct {
	// WatchBuffer is the number of events a watcher may lag behind before it
	// is ended with RESOURCE_EXHAUSTED (default 256).
	WatchBuffer int
	// OnSlowWatcher, if set, is told each time a watcher is given up on
	// for falling behind (its stream then ends with RESOURCE_EXHAUSTED once
	// the watcher reads what was already sent). Metrics and tests use it.
	OnSlowWatcher func()
	// StallTimeout cuts an Exchange stream whose runner stops reading
	// responses for this long (default 30 s).
	StallTimeout time.Duration
	// Logger receives the service's logs.
	Logger *slog.Logger
	// Forwarder, when set, sends calls that need a session another replica
	// holds to that replica, and lets AcquireSession lease READY sessions
	// held by any replica. Nil serves every call locally.
	Forwarder *Forwarder
	// AcquireMaxWait bounds how long AcquireSession waits for a READY
	// session on any replica when the caller set no shorter deadline
	// (default 60 s; with no Forwarder the core's own bound applies).
	AcquireMaxWait time.Duration
}

func (o Options) withDefaults() Options {
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 256
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AcquireMaxWait <= 0 {
		o.AcquireMaxWait = time.Minute
	}
	return o
}

// Service implements orchestrator.v1.OrchestratorService over a Core.
type Service struct {
	orchestratorv1.UnsafeOrchestratorServiceServer

	core Core
	opts Options

	// drain is cancelled by Drain: streams end so GracefulStop can finish.
	drain    context.Context
	drainNow context.CancelFunc
}

var _ orchestratorv1.OrchestratorServiceServer = (*Service)(nil)

// NewService returns the control-plane service over core.
func NewService(core Core, opts Options) *Service {
	drain, cancel := context.WithCancel(context.Background())
	return &Service{core: core, opts: opts.withDefaults(), drain: drain, drainNow: cancel}
}

// Drain ends every WatchSessions and Exchange stream with UNAVAILABLE (a
// watcher learns the revision to resume from), so a graceful stop is not
// held up by long-lived streams. Unary calls are not affected.
func (s *Service) Drain() { s.drainNow() }

// errDraining ends streams on Drain.
var errDraining = errors.New("server is shutting down")

// ListTickets implements OrchestratorService.
func (s *Service) ListTickets(ctx context.Context, req *orchestratorv1.ListTicketsRequest) (*orchestratorv1.ListTicketsResponse, error) {
	page, err := validatePage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var state partner.TicketState
	if req.GetState() != orchestratorv1.TicketState_TICKET_STATE_UNSPECIFIED {
		st, ok := ticketStateFromProto(req.GetState())
		if !ok {
			return nil, fieldError("state", "unknown ticket state %d", req.GetState())
		}
		state = st
	}
	tickets, next, err := s.core.ListTickets(ctx, state, page)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &orchestratorv1.ListTicketsResponse{NextPageToken: next}
	for _, t := range tickets {
		resp.Tickets = append(resp.Tickets, ticketToProto(t))
	}
	return resp, nil
}

// ListConnectors implements OrchestratorService.
func (s *Service) ListConnectors(ctx context.Context, req *orchestratorv1.ListConnectorsRequest) (*orchestratorv1.ListConnectorsResponse, error) {
	page, err := validatePage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	conns, next, err := s.core.ListConnectors(ctx, req.GetFreeOnly(), page)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &orchestratorv1.ListConnectorsResponse{NextPageToken: next}
	for _, c := range conns {
		resp.Connectors = append(resp.Connectors, connectorToProto(c))
	}
	return resp, nil
}

// StartSession implements OrchestratorService.
func (s *Service) StartSession(ctx context.Context, req *orchestratorv1.StartSessionRequest) (*orchestratorv1.StartSessionResponse, error) {
	start := orchestrator.StartRequest{
		RequestID: req.GetRequestId(), Actor: callerName(ctx),
		Force: req.GetForce(), ValidateOnly: req.GetValidateOnly(),
	}
	switch t := req.GetTarget().(type) {
	case *orchestratorv1.StartSessionRequest_TicketId:
		if err := requireID("ticket_id", t.TicketId); err != nil {
			return nil, err
		}
		start.TicketID = t.TicketId
	case *orchestratorv1.StartSessionRequest_ConnectorId:
		if err := requireID("connector_id", t.ConnectorId); err != nil {
			return nil, err
		}
		start.ConnectorID = t.ConnectorId
	default:
		return nil, fieldError("target", "one of ticket_id or connector_id is required")
	}
	if err := optionalID("request_id", req.GetRequestId()); err != nil {
		return nil, err
	}
	res, err := s.core.StartSession(ctx, start)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &orchestratorv1.StartSessionResponse{Created: res.Created, ValidationSummary: res.Summary}
	if res.Session != nil {
		resp.Session = sessionToProto(res.Session)
	}
	return resp, nil
}

// GetSession implements OrchestratorService.
func (s *Service) GetSession(ctx context.Context, req *orchestratorv1.GetSessionRequest) (*orchestratorv1.GetSessionResponse, error) {
	if err := requireID("session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	rec, err := s.core.GetSession(ctx, req.GetSessionId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &orchestratorv1.GetSessionResponse{Session: sessionToProto(rec)}, nil
}

// ListSessions implements OrchestratorService.
func (s *Service) ListSessions(ctx context.Context, req *orchestratorv1.ListSessionsRequest) (*orchestratorv1.ListSessionsResponse, error) {
	page, err := validatePage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	f, err := filterFromProto(req.GetStates(), "", req.GetTicketId(), req.GetConnectorId())
	if err != nil {
		return nil, err
	}
	full, err := fullView(req.GetView())
	if err != nil {
		return nil, err
	}
	recs, next, err := s.core.ListSessions(ctx, f, page)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &orchestratorv1.ListSessionsResponse{NextPageToken: next, Sessions: make([]*orchestratorv1.Session, len(recs))}
	for i, r := range recs {
		resp.Sessions[i] = sessionViewToProto(r, full)
	}
	return resp, nil
}

func filterFromProto(states []orchestratorv1.SessionState, sessionID, ticketID, connectorID string) (orchestrator.SessionFilter, error) {
	f := orchestrator.SessionFilter{SessionID: sessionID, TicketID: ticketID, ConnectorID: connectorID}
	for i, st := range states {
		if st == orchestratorv1.SessionState_SESSION_STATE_UNSPECIFIED || orchestratorv1.SessionState_name[int32(st)] == "" {
			return f, fieldError("states", "states[%d]: unknown session state %d", i, st)
		}
		f.States = append(f.States, session.State(st))
	}
	for _, id := range []struct{ field, v string }{{"session_id", sessionID}, {"ticket_id", ticketID}, {"connector_id", connectorID}} {
		if err := optionalID(id.field, id.v); err != nil {
			return f, err
		}
	}
	return f, nil
}

// AcquireSession implements OrchestratorService.
func (s *Service) AcquireSession(ctx context.Context, req *orchestratorv1.AcquireSessionRequest) (*orchestratorv1.AcquireSessionResponse, error) {
	if err := requireID("runner", req.GetRunner()); err != nil {
		return nil, err
	}
	for _, id := range []struct{ field, v string }{
		{"ticket_id", req.GetTicketId()}, {"connector_id", req.GetConnectorId()}, {"vin", req.GetVin()}, {"renew_lease_id", req.GetRenewLeaseId()},
	} {
		if err := optionalID(id.field, id.v); err != nil {
			return nil, err
		}
	}
	acq := orchestrator.AcquireRequest{
		TicketID: req.GetTicketId(), ConnectorID: req.GetConnectorId(), VIN: req.GetVin(),
		Runner: req.GetRunner(), RenewLeaseID: req.GetRenewLeaseId(),
	}
	if req.LeaseTtl != nil {
		ttl, err := validateDuration("lease_ttl", req.GetLeaseTtl(), minLeaseTTL, maxLeaseTTL)
		if err != nil {
			return nil, err
		}
		acq.TTL = ttl
	}
	if acq.RenewLeaseID == "" && s.opts.Forwarder != nil {
		if isForwarded(ctx) {
			// Another replica saw a session here READY: lease it or say
			// at once that it is gone.
			acq.NoWait = true
			acq.SessionID = forwardedAcquireSession(ctx)
		} else {
			return s.acquireAnywhere(ctx, acq, req)
		}
	}
	got, err := s.core.AcquireSession(ctx, acq)
	if owner, ok := s.ownerOf(ctx, err); ok {
		return forwardUnary(ctx, s.opts.Forwarder, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.AcquireSessionResponse, error) {
			return c.AcquireSession(ctx, req, opts...)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return acquiredToProto(got), nil
}

func acquiredToProto(got orchestrator.Acquired) *orchestratorv1.AcquireSessionResponse {
	return &orchestratorv1.AcquireSessionResponse{
		Session:    sessionToProto(got.Session),
		LeaseId:    got.LeaseID,
		ExpireTime: timestamppb.New(got.ExpireAt),
	}
}

// ConfigureBus implements OrchestratorService.
func (s *Service) ConfigureBus(ctx context.Context, req *orchestratorv1.ConfigureBusRequest) (*orchestratorv1.ConfigureBusResponse, error) {
	if err := requireID("session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := optionalID("lease_id", req.GetLeaseId()); err != nil {
		return nil, err
	}
	buses, err := busesFromProto(req.GetBuses())
	if err != nil {
		return nil, err
	}
	configure := s.core.ConfigureBus
	if req.GetValidateOnly() {
		configure = s.core.ValidateConfigureBus
	}
	rec, err := configure(ctx, req.GetSessionId(), req.GetLeaseId(), buses)
	if owner, ok := s.ownerOf(ctx, err); ok {
		return forwardUnary(ctx, s.opts.Forwarder, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.ConfigureBusResponse, error) {
			return c.ConfigureBus(ctx, req, opts...)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &orchestratorv1.ConfigureBusResponse{Session: sessionToProto(rec)}, nil
}

// Send implements OrchestratorService.
func (s *Service) Send(ctx context.Context, req *orchestratorv1.SendRequest) (*orchestratorv1.SendResponse, error) {
	if err := requireID("session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := optionalID("lease_id", req.GetLeaseId()); err != nil {
		return nil, err
	}
	ch, err := channelFromProto("channel", req.GetChannel())
	if err != nil {
		return nil, err
	}
	r, err := requestFromProto("", req.GetPayload(), req.GetTimeout(), req.Timeout != nil, req.GetIdempotent())
	if err != nil {
		return nil, err
	}
	resp, err := s.core.Send(ctx, req.GetSessionId(), req.GetLeaseId(), ch, r)
	if owner, ok := s.ownerOf(ctx, err); ok {
		return forwardUnary(ctx, s.opts.Forwarder, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.SendResponse, error) {
			return c.Send(ctx, req, opts...)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return responseToSend(resp), nil
}

// FinishSession implements OrchestratorService.
func (s *Service) FinishSession(ctx context.Context, req *orchestratorv1.FinishSessionRequest) (*orchestratorv1.FinishSessionResponse, error) {
	if err := requireID("session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := optionalID("lease_id", req.GetLeaseId()); err != nil {
		return nil, err
	}
	if err := validateResult(req.GetResult()); err != nil {
		return nil, err
	}
	rec, err := s.core.FinishSession(ctx, req.GetSessionId(), req.GetLeaseId(), resultFromProto(req.GetResult()))
	if owner, ok := s.ownerOf(ctx, err); ok {
		return forwardUnary(ctx, s.opts.Forwarder, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.FinishSessionResponse, error) {
			return c.FinishSession(ctx, req, opts...)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &orchestratorv1.FinishSessionResponse{Session: sessionToProto(rec)}, nil
}

// InterruptSession implements OrchestratorService.
func (s *Service) InterruptSession(ctx context.Context, req *orchestratorv1.InterruptSessionRequest) (*orchestratorv1.InterruptSessionResponse, error) {
	if err := requireID("session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	switch {
	case req.GetReason() == "":
		return nil, fieldError("reason", "required")
	case len(req.GetReason()) > maxReasonLen:
		return nil, fieldError("reason", "longer than %d characters", maxReasonLen)
	}
	rec, err := s.core.InterruptSession(ctx, req.GetSessionId(), callerName(ctx), req.GetReason())
	if owner, ok := s.ownerOf(ctx, err); ok {
		return forwardUnary(ctx, s.opts.Forwarder, owner, func(ctx context.Context, c orchestratorv1.OrchestratorServiceClient, opts ...grpc.CallOption) (*orchestratorv1.InterruptSessionResponse, error) {
			return c.InterruptSession(ctx, req, opts...)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &orchestratorv1.InterruptSessionResponse{Session: sessionToProto(rec)}, nil
}

package controlplane

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
	"github.com/obdorch/obdorch/partner"
)

// The numbers of session.State and orchestratorv1.SessionState are equal by
// design; the conversions below are plain casts checked by a test.

// sessionToProto converts a record with every field, history included:
// the FULL view, which GetSession and the streams return.
func sessionToProto(r *session.Record) *orchestratorv1.Session {
	return sessionViewToProto(r, true)
}

// sessionViewToProto converts a record; without history it is the BASIC
// view of lists, which leaves out the part of a record that grows with
// every transition.
func sessionViewToProto(r *session.Record, history bool) *orchestratorv1.Session {
	if r == nil {
		return nil
	}
	s := &orchestratorv1.Session{
		Id:               r.ID,
		State:            orchestratorv1.SessionState(r.State),
		TicketId:         r.TicketID,
		TicketNumber:     r.TicketNumber,
		ConnectorId:      r.ConnectorID,
		Vin:              r.VIN,
		OpenobdSessionId: r.OpenOBD.SessionID,
		OpenobdState:     r.OpenOBD.State,
		GrpcEndpoint:     r.OpenOBD.Endpoint,
		Reason:           r.Reason,
		Actor:            r.Actor,
		CreateTime:       timestamp(r.CreatedAt),
		UpdateTime:       timestamp(r.UpdatedAt),
		Revision:         r.Revision,
		Owner:            r.Owner,
		RequestId:        r.RequestID,
		Buses:            busesToProto(r.Buses),
	}
	if r.Lease != nil {
		s.Lease = &orchestratorv1.LeaseInfo{Holder: r.Lease.Holder, ExpireTime: timestamp(r.Lease.ExpireAt)}
	}
	if r.Result != nil {
		s.Result = resultToProto(r.Result)
	}
	if history {
		s.History = make([]*orchestratorv1.Transition, len(r.History))
		for i := range r.History {
			s.History[i] = transitionToProto(&r.History[i])
		}
	}
	return s
}

// fullView reports whether a list asked for the FULL view; BASIC is the
// default. An unknown view is an error naming the field.
func fullView(v orchestratorv1.SessionView) (bool, error) {
	switch v {
	case orchestratorv1.SessionView_SESSION_VIEW_UNSPECIFIED, orchestratorv1.SessionView_SESSION_VIEW_BASIC:
		return false, nil
	case orchestratorv1.SessionView_SESSION_VIEW_FULL:
		return true, nil
	}
	return false, fieldError("view", "unknown session view %d (want BASIC or FULL)", v)
}

func transitionToProto(t *session.Transition) *orchestratorv1.Transition {
	if t == nil {
		return nil
	}
	return &orchestratorv1.Transition{
		From:   orchestratorv1.SessionState(t.From),
		To:     orchestratorv1.SessionState(t.To),
		Time:   timestamp(t.Time),
		Actor:  t.Actor,
		Reason: t.Reason,
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func busesToProto(buses []session.Bus) []*orchestratorv1.Bus {
	out := make([]*orchestratorv1.Bus, 0, len(buses))
	for _, b := range buses {
		pb := &orchestratorv1.Bus{Name: b.Name}
		switch {
		case b.CAN != nil:
			proto := orchestratorv1.CanProtocol_CAN_PROTOCOL_ISOTP
			if b.CAN.Frames {
				proto = orchestratorv1.CanProtocol_CAN_PROTOCOL_FRAMES
			}
			pb.Definition = &orchestratorv1.Bus_Can{Can: &orchestratorv1.CanBus{
				PinPlus: b.CAN.PinPlus, PinMinus: b.CAN.PinMinus, BitRate: b.CAN.BitRate,
				Protocol: proto, LowSpeedTransceiver: b.CAN.LowSpeed,
			}}
		case b.KLine != nil:
			pb.Definition = &orchestratorv1.Bus_Kline{Kline: &orchestratorv1.KlineBus{
				Pin: b.KLine.Pin, BitRate: b.KLine.BitRate, FastInit: b.KLine.FastInit,
			}}
		}
		out = append(out, pb)
	}
	return out
}

func resultToProto(r *session.Result) *orchestratorv1.FinishResult {
	out := &orchestratorv1.FinishResult{Description: r.Description}
	for _, c := range r.Codes {
		out.Codes = append(out.Codes, orchestratorv1.ResultCode(c))
	}
	switch r.UserFeedback {
	case 1:
		out.UserFeedback = orchestratorv1.UserFeedback_USER_FEEDBACK_SUCCESS
	case 3:
		out.UserFeedback = orchestratorv1.UserFeedback_USER_FEEDBACK_FAILURE
	case 4:
		out.UserFeedback = orchestratorv1.UserFeedback_USER_FEEDBACK_ASSISTANCE_REQUESTED
	}
	return out
}

// resultFromProto maps our result to openOBD's numbers: ResultCode numbers
// equal openOBD Result numbers; UserFeedback skips openOBD's unused 2.
func resultFromProto(r *orchestratorv1.FinishResult) session.Result {
	out := session.Result{Description: r.GetDescription()}
	for _, c := range r.GetCodes() {
		out.Codes = append(out.Codes, int32(c))
	}
	switch r.GetUserFeedback() {
	case orchestratorv1.UserFeedback_USER_FEEDBACK_SUCCESS:
		out.UserFeedback = 1
	case orchestratorv1.UserFeedback_USER_FEEDBACK_FAILURE:
		out.UserFeedback = 3
	case orchestratorv1.UserFeedback_USER_FEEDBACK_ASSISTANCE_REQUESTED:
		out.UserFeedback = 4
	}
	return out
}

var ticketStates = map[partner.TicketState]orchestratorv1.TicketState{
	partner.TicketPrepared:   orchestratorv1.TicketState_TICKET_STATE_PREPARED,
	partner.TicketPending:    orchestratorv1.TicketState_TICKET_STATE_PENDING,
	partner.TicketInProgress: orchestratorv1.TicketState_TICKET_STATE_IN_PROGRESS,
	partner.TicketOutsourced: orchestratorv1.TicketState_TICKET_STATE_OUTSOURCED,
	partner.TicketClosed:     orchestratorv1.TicketState_TICKET_STATE_CLOSED,
	partner.TicketCancelled:  orchestratorv1.TicketState_TICKET_STATE_CANCELLED,
}

func ticketStateFromProto(s orchestratorv1.TicketState) (partner.TicketState, bool) {
	for k, v := range ticketStates {
		if v == s {
			return k, true
		}
	}
	return "", false
}

func ticketToProto(t orchestrator.TicketView) *orchestratorv1.Ticket {
	return &orchestratorv1.Ticket{
		Id:                  t.ID,
		TicketNumber:        strconv.FormatInt(t.TicketNumber, 10),
		State:               ticketStates[t.State],
		ConnectorId:         deref(t.CustomerConnectorID),
		Vin:                 deref(t.VIN),
		CreateTime:          timestamp(t.CreatedAt.Time),
		ExternallyProcessed: t.ExternallyProcessed,
		SessionId:           t.SessionID,
		SessionState:        orchestratorv1.SessionState(t.SessionState),
	}
}

func connectorToProto(c orchestrator.ConnectorView) *orchestratorv1.Connector {
	return &orchestratorv1.Connector{
		Id:         c.ID,
		Name:       c.Name,
		CustomerId: deref(c.CustomerID),
		Online:     c.IsOnline,
		Free:       c.Free(),
		Vin:        deref(c.VINNumber),
		SessionId:  c.SessionID,
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func responseToSend(r orchestrator.Response) *orchestratorv1.SendResponse {
	return &orchestratorv1.SendResponse{
		Payload:   r.Payload,
		Negative:  r.Negative,
		Nrc:       uint32(r.NRC),
		EcuTime:   durationpb.New(r.ECUTime),
		TotalTime: durationpb.New(r.TotalTime),
		Attempts:  uint32(r.Attempts),
	}
}

func channelToProto(c orchestrator.Channel) *orchestratorv1.Channel {
	return &orchestratorv1.Channel{
		BusName:                 c.BusName,
		RequestId:               c.RequestID,
		ResponseId:              c.ResponseID,
		ExtendedRequestAddress:  c.ExtRequest,
		ExtendedResponseAddress: c.ExtResponse,
		Padding:                 orchestratorv1.Padding(c.Padding),
	}
}

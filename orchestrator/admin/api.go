package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/obdorch/obdorch/orchestrator"
	"github.com/obdorch/obdorch/orchestrator/session"
)

// row is a session as the dashboard's table shows it. Tokens and lease ids
// never appear.
type row struct {
	ID           string `json:"id"`
	Revision     int64  `json:"revision"`
	State        string `json:"state"`
	TicketID     string `json:"ticket_id,omitempty"`
	TicketNumber string `json:"ticket_number,omitempty"`
	ConnectorID  string `json:"connector_id,omitempty"`
	VIN          string `json:"vin,omitempty"`
	Owner        string `json:"owner,omitempty"`
	LeaseHolder  string `json:"lease_holder,omitempty"`
	// LeaseExpire, Created and Updated are Unix milliseconds (0: none).
	LeaseExpire  int64  `json:"lease_expire,omitempty"`
	Created      int64  `json:"created"`
	Updated      int64  `json:"updated"`
	Reason       string `json:"reason,omitempty"`
	Actor        string `json:"actor,omitempty"`
	OpenOBDState string `json:"openobd_state,omitempty"`
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func toRow(r *session.Record) row {
	out := row{
		ID: r.ID, Revision: r.Revision, State: r.State.String(),
		TicketID: r.TicketID, TicketNumber: r.TicketNumber, ConnectorID: r.ConnectorID, VIN: r.VIN,
		Owner: r.Owner, Created: millis(r.CreatedAt), Updated: millis(r.UpdatedAt),
		Reason: r.Reason, Actor: r.Actor, OpenOBDState: r.OpenOBD.State,
	}
	if r.Lease != nil {
		out.LeaseHolder, out.LeaseExpire = r.Lease.Holder, millis(r.Lease.ExpireAt)
	}
	return out
}

type transitionView struct {
	From   string `json:"from,omitempty"`
	To     string `json:"to"`
	Time   int64  `json:"time"`
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func toTransition(t session.Transition) transitionView {
	v := transitionView{To: t.To.String(), Time: millis(t.Time), Actor: t.Actor, Reason: t.Reason}
	if t.From != session.StateUnspecified {
		v.From = t.From.String()
	}
	return v
}

// detail is one session with its history, for the dashboard's side panel.
type detail struct {
	row
	OpenOBDSessionID string           `json:"openobd_session_id,omitempty"`
	Endpoint         string           `json:"grpc_endpoint,omitempty"`
	Buses            []session.Bus    `json:"buses,omitempty"`
	Result           *session.Result  `json:"result,omitempty"`
	History          []transitionView `json:"history"`
}

func toDetail(r *session.Record) detail {
	d := detail{row: toRow(r), OpenOBDSessionID: r.OpenOBD.SessionID, Endpoint: r.OpenOBD.Endpoint, Buses: r.Buses, Result: r.Result}
	d.History = make([]transitionView, len(r.History))
	for i, t := range r.History {
		d.History[i] = toTransition(t)
	}
	return d
}

// maxIDLen bounds a session id in a path.
const maxIDLen = 128

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLen {
		writeError(w, http.StatusBadRequest, "id: must be 1-128 characters")
		return
	}
	rec, err := s.opts.Core.GetSession(r.Context(), id)
	if err != nil {
		s.writeCoreError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDetail(rec))
}

// maxReasonLen bounds an interrupt reason.
const maxReasonLen = 512

func (s *Server) interrupt(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLen {
		writeError(w, http.StatusBadRequest, "id: must be 1-128 characters")
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"reason\": \"...\"}")
		return
	}
	reason := strings.TrimSpace(body.Reason)
	switch {
	case reason == "":
		writeError(w, http.StatusBadRequest, "reason: required")
		return
	case len(reason) > maxReasonLen:
		writeError(w, http.StatusBadRequest, "reason: longer than 512 characters")
		return
	}
	actor := principalOf(r.Context()).Name
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rec, err := s.opts.Core.InterruptSession(ctx, id, actor, reason)
	if err != nil {
		s.writeCoreError(w, r, err)
		return
	}
	s.log.InfoContext(ctx, "session interrupted from the dashboard", "session_id", id, "actor", actor)
	writeJSON(w, http.StatusOK, toDetail(rec))
}

// writeCoreError maps core errors to HTTP statuses, as the control plane
// maps them to gRPC codes.
func (s *Server) writeCoreError(w http.ResponseWriter, r *http.Request, err error) {
	var invalid *orchestrator.InvalidArgumentError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &invalid):
		code = http.StatusBadRequest
	case errors.Is(err, orchestrator.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, orchestrator.ErrNotLive), errors.Is(err, orchestrator.ErrWrongState),
		errors.Is(err, orchestrator.ErrLeaseRequired), errors.Is(err, session.ErrTransition):
		code = http.StatusConflict
	case errors.Is(err, orchestrator.ErrUnavailable), errors.Is(err, orchestrator.ErrShuttingDown):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return // the caller left
	}
	if code == http.StatusInternalServerError {
		s.log.WarnContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err.Error())
}

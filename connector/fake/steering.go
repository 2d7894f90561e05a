package fake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxSteeringBody bounds the JSON body of a steering request.
const maxSteeringBody = 64 << 10

// maxSteeringLatency bounds the latencies the steering handler accepts.
const maxSteeringLatency = 10 * time.Minute

// steeringUsage is served on GET / of the steering handler.
const steeringUsage = `Fake openOBD steering (JSON; CAN ids as numbers or hex strings like "0x7E0")

GET    /sessions                      sessions with state, ticket and connector
GET    /calls                         calls per gRPC method
GET    /faults                        active faults
DELETE /faults                        clear every fault, reconnect every connector
PUT    /faults/latency                {"call_ms":100,"isotp_ms":50}  (omitted fields unchanged)
PUT    /faults/refuse-starts          {"count":3}  (-1 until cleared, 0 clears)
PUT    /faults/hang                   {"on":true}
PUT    /faults/ecu                    {"connector":"","request_id":"0x7E0","silent":false,"busy_repeat":2,"pending":3,"pending_requests":1}
POST   /faults/expire-tokens          {"session":true,"controller":true}  (empty body: both)
POST   /connectors/{id}/disconnect    connector by id or name
POST   /connectors/{id}/reconnect
POST   /sessions/{id}/interrupt
POST   /sessions/{id}/fail            {"reason":"..."}  (optional)
POST   /sessions/{id}/drop-streams
`

// SteeringHandler returns the HTTP handler that steers the fake at run time
// (see steeringUsage, also served on GET /). Mount it under a prefix with
// http.StripPrefix. Responses are JSON; errors are {"error": "..."} with
// status 400 (bad request), 404 (unknown session or connector) or 409
// (session not live).
func (s *Server) SteeringHandler() http.Handler {
	mux := http.NewServeMux()
	f := s.faults
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, steeringUsage)
	})
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, _ *http.Request) {
		out := []sessionJSON{}
		for _, v := range s.Sessions() {
			out = append(out, toSessionJSON(v))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Calls())
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		f.Clear()
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("PUT /faults/latency", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CallMS  *int64 `json:"call_ms"`
			IsotpMS *int64 `json:"isotp_ms"`
		}
		if !decode(w, r, &req, false) {
			return
		}
		call, err1 := latency(req.CallMS)
		isotp, err2 := latency(req.IsotpMS)
		if err := errors.Join(err1, err2); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if req.CallMS != nil {
			f.SetCallLatency(call)
		}
		if req.IsotpMS != nil {
			f.SetIsotpLatency(isotp)
		}
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("PUT /faults/refuse-starts", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Count int `json:"count"`
		}
		if !decode(w, r, &req, false) {
			return
		}
		f.RefuseStarts(req.Count)
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("PUT /faults/hang", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			On bool `json:"on"`
		}
		if !decode(w, r, &req, false) {
			return
		}
		f.Hang(req.On)
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("PUT /faults/ecu", func(w http.ResponseWriter, r *http.Request) {
		var req ecuFaultJSON
		if !decode(w, r, &req, false) {
			return
		}
		fault := ECUFault{Silent: req.Silent, BusyRepeat: req.BusyRepeat, Pending: req.Pending, PendingRequests: req.PendingRequests}
		if err := f.SetECUFault(req.Connector, uint32(req.RequestID), fault); err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
	})
	mux.HandleFunc("POST /faults/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		req := struct {
			Session    bool `json:"session"`
			Controller bool `json:"controller"`
		}{true, true}
		if !decode(w, r, &req, true) {
			return
		}
		out := map[string]int{}
		if req.Session {
			out["session_tokens"] = f.ExpireSessionTokens()
		}
		if req.Controller {
			out["controller_tokens"] = f.ExpireControllerTokens()
		}
		writeJSON(w, http.StatusOK, out)
	})
	connectorAction := func(do func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := do(r.PathValue("id")); err != nil {
				writeError(w, http.StatusNotFound, err)
				return
			}
			writeJSON(w, http.StatusOK, toFaultsJSON(f.State()))
		}
	}
	mux.HandleFunc("POST /connectors/{id}/disconnect", connectorAction(f.DisconnectConnector))
	mux.HandleFunc("POST /connectors/{id}/reconnect", connectorAction(f.ReconnectConnector))
	mux.HandleFunc("POST /sessions/{id}/interrupt", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.InterruptSession(r.PathValue("id"))
		writeSession(w, v, err)
	})
	mux.HandleFunc("POST /sessions/{id}/fail", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Reason string `json:"reason"`
		}
		if !decode(w, r, &req, true) {
			return
		}
		v, err := s.FailSession(r.PathValue("id"), req.Reason)
		writeSession(w, v, err)
	})
	mux.HandleFunc("POST /sessions/{id}/drop-streams", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := f.DropStreams(id); err != nil {
			v, _ := s.Session(id)
			writeSession(w, v, err)
			return
		}
		v, _ := s.Session(id)
		writeSession(w, v, nil)
	})
	return mux
}

type sessionJSON struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	CreatedAt     string `json:"created_at"`
	EndedAt       string `json:"ended_at,omitempty"`
	GRPCEndpoint  string `json:"grpc_endpoint"`
	TicketID      string `json:"ticket_id,omitempty"`
	TicketNumber  string `json:"ticket_number,omitempty"`
	ConnectorID   string `json:"connector_id,omitempty"`
	ConnectorName string `json:"connector_name,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

func toSessionJSON(v Session) sessionJSON {
	out := sessionJSON{
		ID:            v.ID,
		State:         string(v.State),
		CreatedAt:     v.CreatedAt.UTC().Format(CreatedAtLayout),
		GRPCEndpoint:  v.GRPCEndpoint,
		TicketID:      v.TicketID,
		TicketNumber:  v.TicketNumber,
		ConnectorID:   v.ConnectorID,
		ConnectorName: v.ConnectorName,
		Reason:        v.Reason,
	}
	if !v.EndedAt.IsZero() {
		out.EndedAt = v.EndedAt.UTC().Format(CreatedAtLayout)
	}
	return out
}

type ecuFaultJSON struct {
	Connector       string `json:"connector,omitempty"`
	RequestID       canID  `json:"request_id"`
	Silent          bool   `json:"silent,omitempty"`
	BusyRepeat      int    `json:"busy_repeat,omitempty"`
	Pending         int    `json:"pending,omitempty"`
	PendingRequests int    `json:"pending_requests,omitempty"`
}

type faultsJSON struct {
	CallLatencyMS  int64          `json:"call_latency_ms"`
	IsotpLatencyMS int64          `json:"isotp_latency_ms"`
	RefuseStarts   int            `json:"refuse_starts"`
	Hang           bool           `json:"hang"`
	ECUs           []ecuFaultJSON `json:"ecus"`
	Disconnected   []string       `json:"disconnected_connectors"`
}

func toFaultsJSON(st FaultState) faultsJSON {
	out := faultsJSON{
		CallLatencyMS:  st.CallLatency.Milliseconds(),
		IsotpLatencyMS: st.IsotpLatency.Milliseconds(),
		RefuseStarts:   st.RefuseStarts,
		Hang:           st.Hang,
		ECUs:           []ecuFaultJSON{},
		Disconnected:   append([]string{}, st.Disconnected...),
	}
	for _, e := range st.ECUs {
		out.ECUs = append(out.ECUs, ecuFaultJSON{
			Connector:       e.ConnectorID,
			RequestID:       canID(e.RequestID),
			Silent:          e.Fault.Silent,
			BusyRepeat:      e.Fault.BusyRepeat,
			Pending:         e.Fault.Pending,
			PendingRequests: e.Fault.PendingRequests,
		})
	}
	return out
}

// canID is a CAN identifier in JSON: a number, or a string in hex with or
// without "0x". It is written as a "0x..." string.
type canID uint32

func (c canID) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("0x%X", uint32(c)))
}

func (c *canID) UnmarshalJSON(b []byte) error {
	var v uint64
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		digits := strings.TrimPrefix(strings.TrimPrefix(str, "0x"), "0X")
		if v, err = strconv.ParseUint(digits, 16, 32); err != nil {
			return fmt.Errorf("request_id %q is not a hex CAN id", str)
		}
	} else if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("request_id must be a number or a hex string")
	}
	if v > maxCANID {
		return fmt.Errorf("request_id 0x%X exceeds 0x%X", v, maxCANID)
	}
	*c = canID(v)
	return nil
}

func latency(ms *int64) (time.Duration, error) {
	if ms == nil {
		return 0, nil
	}
	if *ms < 0 || *ms > maxSteeringLatency.Milliseconds() {
		return 0, fmt.Errorf("latency %d ms is outside 0..%d", *ms, maxSteeringLatency.Milliseconds())
	}
	return time.Duration(*ms) * time.Millisecond, nil
}

// decode reads one JSON object from the body into v, strictly. An empty body
// is accepted when optional. It writes the error response and reports false
// on failure.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSteeringBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("reading body: %w", err))
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return true
		}
		writeError(w, http.StatusBadRequest, errors.New("a JSON body is required"))
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding body: %w", err))
		return false
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeError(w, http.StatusBadRequest, errors.New("body must hold a single JSON object"))
		return false
	}
	return true
}

func writeSession(w http.ResponseWriter, v Session, err error) {
	switch {
	case errors.Is(err, ErrSessionNotFound):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusConflict, err)
	default:
		writeJSON(w, http.StatusOK, toSessionJSON(v))
	}
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

package fake_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/connector/fake"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// steer sends one request to the steering handler and returns the status
// code and body.
func steer(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestSteeringFaults(t *testing.T) {
	e := newEnv(t)
	h := e.srv.SteeringHandler()
	f := e.srv.Faults()

	tests := []struct {
		name         string
		method, path string
		body         string
		code         int
		check        func() bool
	}{
		{"usage", "GET", "/", "", 200, nil},
		{"latency", "PUT", "/faults/latency", `{"call_ms":100,"isotp_ms":20}`, 200, func() bool {
			st := f.State()
			return st.CallLatency == 100*time.Millisecond && st.IsotpLatency == 20*time.Millisecond
		}},
		{"latency keeps omitted", "PUT", "/faults/latency", `{"isotp_ms":30}`, 200, func() bool {
			st := f.State()
			return st.CallLatency == 100*time.Millisecond && st.IsotpLatency == 30*time.Millisecond
		}},
		{"negative latency", "PUT", "/faults/latency", `{"call_ms":-1}`, 400, nil},
		{"unknown field", "PUT", "/faults/latency", `{"call":1}`, 400, nil},
		{"trailing data", "PUT", "/faults/latency", `{"call_ms":1} {}`, 400, nil},
		{"no body", "PUT", "/faults/latency", ``, 400, nil},
		{"refuse starts", "PUT", "/faults/refuse-starts", `{"count":2}`, 200, func() bool { return f.State().RefuseStarts == 2 }},
		{"hang", "PUT", "/faults/hang", `{"on":true}`, 200, func() bool { return f.State().Hang }},
		{"unhang", "PUT", "/faults/hang", `{"on":false}`, 200, func() bool { return !f.State().Hang }},
		{"ECU fault hex id", "PUT", "/faults/ecu", `{"connector":"1001","request_id":"0x7E1","busy_repeat":2}`, 200, func() bool {
			st := f.State()
			return len(st.ECUs) == 1 && st.ECUs[0].RequestID == 0x7E1 && st.ECUs[0].ConnectorID == targetA.ConnectorID && st.ECUs[0].Fault.BusyRepeat == 2
		}},
		{"ECU fault numeric id", "PUT", "/faults/ecu", `{"request_id":2016,"silent":true}`, 200, func() bool { return len(f.State().ECUs) == 2 }},
		{"ECU fault bad id", "PUT", "/faults/ecu", `{"request_id":"0xZZ"}`, 400, nil},
		{"ECU fault id too large", "PUT", "/faults/ecu", `{"request_id":"0x20000000"}`, 400, nil},
		{"ECU fault unknown connector", "PUT", "/faults/ecu", `{"connector":"nope","request_id":1}`, 404, nil},
		{"disconnect", "POST", "/connectors/1002/disconnect", ``, 200, func() bool {
			st := f.State()
			return len(st.Disconnected) == 1 && st.Disconnected[0] == targetB.ConnectorID
		}},
		{"reconnect", "POST", "/connectors/" + targetB.ConnectorID + "/reconnect", ``, 200, func() bool { return len(f.State().Disconnected) == 0 }},
		{"disconnect unknown", "POST", "/connectors/nope/disconnect", ``, 404, nil},
		{"expire tokens", "POST", "/faults/expire-tokens", ``, 200, nil},
		{"expire controller tokens", "POST", "/faults/expire-tokens", `{"session":false}`, 200, nil},
		{"clear", "DELETE", "/faults", ``, 200, func() bool {
			st := f.State()
			return st.CallLatency == 0 && st.RefuseStarts == 0 && len(st.ECUs) == 0
		}},
		{"wrong method", "DELETE", "/faults/latency", ``, 405, nil},
		{"unknown path", "GET", "/nope", ``, 404, nil},
	}
	for _, tc := range tests {
		code, body := steer(t, h, tc.method, tc.path, tc.body)
		if code != tc.code {
			t.Fatalf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.code)
		}
		if tc.check != nil && !tc.check() {
			t.Fatalf("%s: fault state %+v after %s %s", tc.name, f.State(), tc.method, tc.path)
		}
	}
}

func TestSteeringSessions(t *testing.T) {
	e := newEnv(t)
	h := e.srv.SteeringHandler()
	info, tok := e.activate(targetA.TicketNumber)
	iso := e.openIsotp(tok, engine)
	iso.ready()

	code, body := steer(t, h, "GET", "/sessions", "")
	var sessions []map[string]string
	if err := json.Unmarshal([]byte(body), &sessions); code != 200 || err != nil || len(sessions) != 1 {
		t.Fatalf("GET /sessions = %d %s (%v), want one session", code, body, err)
	}
	if s := sessions[0]; s["id"] != info.GetId() || s["state"] != "active" || s["ticket_id"] != targetA.TicketID || s["connector_id"] != targetA.ConnectorID {
		t.Errorf("GET /sessions = %v, want the active session on ticket %s", s, targetA.TicketID)
	}
	if strings.Contains(body, tok) || strings.Contains(body, info.GetAuthenticationToken()) {
		t.Error("GET /sessions shows a token")
	}

	if code, body := steer(t, h, "POST", "/sessions/"+info.GetId()+"/drop-streams", ""); code != 200 {
		t.Fatalf("drop-streams = %d %s", code, body)
	}
	if err := iso.end(); err == nil {
		t.Fatal("stream survived drop-streams")
	}
	if code, body := steer(t, h, "POST", "/sessions/"+info.GetId()+"/interrupt", ""); code != 200 || !strings.Contains(body, `"interrupted"`) {
		t.Fatalf("interrupt = %d %s, want 200 and the interrupted session", code, body)
	}
	if code, _ := steer(t, h, "POST", "/sessions/"+info.GetId()+"/interrupt", ""); code != 409 {
		t.Fatalf("second interrupt = %d, want 409", code)
	}
	if code, _ := steer(t, h, "POST", "/sessions/unknown/fail", `{"reason":"x"}`); code != 404 {
		t.Fatalf("fail of an unknown session = %d, want 404", code)
	}

	second := e.start(targetB.TicketNumber)
	if code, body := steer(t, h, "POST", "/sessions/"+second.GetId()+"/fail", `{"reason":"power loss"}`); code != 200 || !strings.Contains(body, "power loss") {
		t.Fatalf("fail = %d %s", code, body)
	}

	code, body = steer(t, h, "GET", "/calls", "")
	var calls map[string]int
	if err := json.Unmarshal([]byte(body), &calls); code != 200 || err != nil || calls[openobdv1.Session_Authenticate_FullMethodName] != 1 {
		t.Fatalf("GET /calls = %d %s (%v), want one authenticate", code, body, err)
	}
}

// FuzzSteering sends arbitrary requests to the steering handler: it must
// never panic nor answer 5xx.
func FuzzSteering(f *testing.F) {
	f.Add("PUT", "/faults/latency", `{"call_ms":100,"isotp_ms":20}`)
	f.Add("PUT", "/faults/ecu", `{"connector":"1001","request_id":"0x7E0","busy_repeat":2,"pending":3,"pending_requests":-1}`)
	f.Add("PUT", "/faults/ecu", `{"request_id":2016,"silent":true}`)
	f.Add("PUT", "/faults/refuse-starts", `{"count":-1}`)
	f.Add("PUT", "/faults/hang", `{"on":true}`)
	f.Add("POST", "/faults/expire-tokens", `{"session":true}`)
	f.Add("POST", "/connectors/1001/disconnect", ``)
	f.Add("POST", "/sessions/x/fail", `{"reason":"r"}`)
	f.Add("POST", "/sessions/x/drop-streams", ``)
	f.Add("DELETE", "/faults", ``)
	f.Add("GET", "/sessions", ``)
	f.Add("PUT", "/faults/latency", `{"call_ms":1e400}`)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		srv, err := fake.New(fake.Options{ClientID: "id", ClientSecret: "secret", Directory: fake.NewStaticDirectory(targetA)})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://fake"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		srv.SteeringHandler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}

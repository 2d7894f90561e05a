package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/obdorch/obdorch/orchestrator/controlplane"
	"github.com/obdorch/obdorch/orchestrator/session"
)

const (
	viewerToken = "viewer-token-0123456789"
	runnerToken = "runner-token-0123456789"
	adminToken  = "admin-token-0123456789ab"
)

type fixture struct {
	core   *fakeCore
	health *health.Server
	url    string
}

func newFixture(t *testing.T, withTokens bool) *fixture {
	t.Helper()
	f := &fixture{core: newFakeCore(), health: health.NewServer()}
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	opts := Options{
		Core: f.core, Revision: f.core.revision, Health: f.health, ShutdownGrace: 200 * time.Millisecond,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "obdorch_test 1\n") }),
	}
	if withTokens {
		tokens, err := controlplane.LoadTokens(strings.NewReader(viewerToken + " viewer eve\n" + runnerToken + " runner bot\n" + adminToken + " admin ada\n"))
		if err != nil {
			t.Fatal(err)
		}
		opts.Tokens = tokens
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	f.url = "http://" + lis.Addr().String()
	return f
}

func (f *fixture) do(t *testing.T, method, path, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRolesPerRoute(t *testing.T) {
	f := newFixture(t, true)
	f.core.add("s1", session.StateReady, time.Now())
	tests := []struct {
		method, path, body string
		want               map[string]int // token -> status
	}{
		{"GET", "/healthz", "", map[string]int{"": 200, viewerToken: 200}},
		{"GET", "/metrics", "", map[string]int{"": 401, "bogus-token-0123456789": 401, viewerToken: 200, adminToken: 200}},
		{"GET", "/debug/pprof/", "", map[string]int{"": 401, viewerToken: 403, runnerToken: 403, adminToken: 200}},
		{"GET", "/api/me", "", map[string]int{"": 401, viewerToken: 200}},
		{"GET", "/api/sessions/s1", "", map[string]int{"": 401, viewerToken: 200}},
		{"GET", "/api/sessions/nope", "", map[string]int{viewerToken: 404}},
		{"POST", "/api/sessions/s1/interrupt", `{"reason":"x"}`, map[string]int{"": 401, viewerToken: 403, runnerToken: 403}},
		{"GET", "/", "", map[string]int{"": 200}},
		{"GET", "/app.js", "", map[string]int{"": 200}},
	}
	for _, tt := range tests {
		for token, want := range tt.want {
			code, body := f.do(t, tt.method, tt.path, token, "application/json", tt.body)
			if code != want {
				t.Errorf("%s %s with token %.6q = %d %s, want %d", tt.method, tt.path, token, code, body, want)
			}
		}
	}
	if code, body := f.do(t, "GET", "/api/me", adminToken, "", ""); code != 200 || !strings.Contains(body, `"name":"ada","role":"admin","auth":true`) {
		t.Errorf("GET /api/me as admin = %d %s", code, body)
	}
	if code, body := f.do(t, "GET", "/metrics", viewerToken, "", ""); code != 200 || body != "obdorch_test 1\n" {
		t.Errorf("GET /metrics = %d %q", code, body)
	}
}

func TestReadyzFollowsGRPCHealth(t *testing.T) {
	f := newFixture(t, true)
	if code, body := f.do(t, "GET", "/readyz", "", "", ""); code != 503 || body != "NOT_SERVING\n" {
		t.Errorf("readyz before SERVING = %d %q, want 503 NOT_SERVING", code, body)
	}
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if code, body := f.do(t, "GET", "/readyz", "", "", ""); code != 200 || body != "SERVING\n" {
		t.Errorf("readyz when SERVING = %d %q, want 200 SERVING", code, body)
	}
	f.health.Shutdown()
	if code, _ := f.do(t, "GET", "/readyz", "", "", ""); code != 503 {
		t.Errorf("readyz after health shutdown = %d, want 503", code)
	}
	if code, _ := f.do(t, "GET", "/healthz", "", "", ""); code != 200 {
		t.Errorf("healthz after health shutdown = %d, want 200 (the process is alive)", code)
	}
}

func TestInterrupt(t *testing.T) {
	f := newFixture(t, true)
	f.core.add("s1", session.StateReady, time.Now())
	f.core.add("s2", session.StateFinished, time.Now())
	tests := []struct {
		name, id, contentType, body string
		want                        int
		wantBody                    string
	}{
		{"needs a reason", "s1", "application/json", `{"reason":"  "}`, 400, "reason: required"},
		{"not JSON", "s1", "text/plain", `{"reason":"x"}`, 403, "application/json"},
		{"malformed", "s1", "application/json", `reason=x`, 400, "body"},
		{"unknown session", "nope", "application/json", `{"reason":"x"}`, 404, "not found"},
		{"ended session", "s2", "application/json", `{"reason":"x"}`, 409, "not live"},
		{"admin interrupts", "s1", "application/json", `{"reason":"bench needed"}`, 200, `"state":"INTERRUPTED"`},
	}
	for _, tt := range tests {
		code, body := f.do(t, "POST", "/api/sessions/"+tt.id+"/interrupt", adminToken, tt.contentType, tt.body)
		if code != tt.want || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: POST interrupt = %d %s, want %d containing %q", tt.name, code, body, tt.want, tt.wantBody)
		}
	}
	rec, _ := f.core.GetSession(t.Context(), "s1")
	if rec.Actor != "ada" || rec.Reason != "bench needed" {
		t.Errorf("interrupted record actor=%q reason=%q, want ada / bench needed", rec.Actor, rec.Reason)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	f := newFixture(t, false)
	f.core.add("s1", session.StateReady, time.Now())
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.url+"/api/sessions/s1/interrupt", strings.NewReader(`{"reason":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin interrupt = %d, want 403", resp.StatusCode)
	}
	if rec, _ := f.core.GetSession(t.Context(), "s1"); rec.State != session.StateReady {
		t.Errorf("session is %s after a refused interrupt", rec.State)
	}
}

func TestWithoutTokensEveryCallerIsAdmin(t *testing.T) {
	f := newFixture(t, false)
	code, body := f.do(t, "GET", "/api/me", "", "", "")
	if code != 200 || !strings.Contains(body, `"role":"admin","auth":false`) {
		t.Errorf("GET /api/me = %d %s, want admin without auth", code, body)
	}
	if code, _ := f.do(t, "GET", "/debug/pprof/", "", "", ""); code != 200 {
		t.Errorf("GET /debug/pprof/ = %d, want 200", code)
	}
}

func TestLoginCookie(t *testing.T) {
	f := newFixture(t, true)
	if code, _ := f.do(t, "POST", "/api/login", "", "application/json", `{"token":"bogus-token-0123456789"}`); code != 401 {
		t.Errorf("login with an unknown token = %d, want 401", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.url+"/api/login", strings.NewReader(`{"token":"`+viewerToken+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login = %d, cookie %+v; want 200 with an HttpOnly SameSite=Strict cookie", resp.StatusCode, cookie)
	}
	req, _ = http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/me", nil)
	req.AddCookie(cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"eve","role":"viewer"`) {
		t.Errorf("GET /api/me with the cookie = %d %s", resp.StatusCode, b)
	}
}

// sse reads one Server-Sent Events stream.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

type sseEvent struct{ event, id, data string }

func openEvents(t *testing.T, f *fixture, lastID string) *sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /api/events = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sse{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event with data, skipping comments and the retry
// field.
func (s *sse) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.data != "" {
				return ev
			}
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestEventsSnapshotChangesAndResume(t *testing.T) {
	f := newFixture(t, true)
	now := time.Now()
	f.core.add("live", session.StateReady, now.Add(-time.Minute))
	f.core.add("recent", session.StateFailed, now.Add(-time.Minute))
	f.core.add("old", session.StateFinished, now.Add(-2*time.Hour))

	s := openEvents(t, f, "")
	ev := s.next(t)
	var snap snapshotMsg
	if err := json.Unmarshal([]byte(ev.data), &snap); err != nil || ev.event != "snapshot" {
		t.Fatalf("first event %+v (%v), want a snapshot", ev, err)
	}
	got := map[string]string{}
	for _, r := range snap.Sessions {
		got[r.ID] = r.State
	}
	if len(got) != 2 || got["live"] != "READY" || got["recent"] != "FAILED" {
		t.Errorf("snapshot sessions = %v, want live READY and recent FAILED (not the session ended 2h ago)", got)
	}
	if ev.id != "3" || snap.Revision != 3 {
		t.Errorf("snapshot id %q revision %d, want 3", ev.id, snap.Revision)
	}

	if err := f.core.transition("live", session.StateRunning, "bot", "acquired by bot"); err != nil {
		t.Fatal(err)
	}
	ev = s.next(t)
	var msg sessionMsg
	if err := json.Unmarshal([]byte(ev.data), &msg); err != nil {
		t.Fatal(err)
	}
	if ev.event != "session" || ev.id != "4" || msg.Session.ID != "live" || msg.Session.State != "RUNNING" ||
		msg.Transition == nil || msg.Transition.From != "READY" || msg.Transition.Reason != "acquired by bot" {
		t.Errorf("change event = %+v %+v, want live READY -> RUNNING at revision 4", ev, msg)
	}
	s.resp.Body.Close()

	// Resume after revision 4: no snapshot, the next change only.
	f.core.add("new", session.StatePending, time.Now())
	s = openEvents(t, f, "4")
	ev = s.next(t)
	if ev.event != "session" || ev.id != "5" || !strings.Contains(ev.data, `"id":"new"`) {
		t.Errorf("first event after resume = %+v, want session new at revision 5", ev)
	}
	s.resp.Body.Close()

	// A revision the store no longer keeps: a fresh snapshot.
	f.core.compact()
	s = openEvents(t, f, "4")
	ev = s.next(t)
	if ev.event != "snapshot" || ev.id != "5" || !strings.Contains(ev.data, `"id":"new"`) {
		t.Errorf("first event after resume from a compacted revision = %+v, want a snapshot at 5", ev)
	}
}

func TestEventsBadLastEventID(t *testing.T) {
	f := newFixture(t, false)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/events", nil)
	req.Header.Set("Last-Event-ID", "yesterday")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Last-Event-ID") {
		t.Errorf("GET /api/events with a bad Last-Event-ID = %d %s, want 400 naming the header", resp.StatusCode, b)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

var adminListening = regexp.MustCompile(`admin and dashboard on (\S+)`)

// TestAdminMetricsAfterADemoSession runs the demo, relays a request through a
// session, then scrapes /metrics and finds the session, relay and queue
// metrics, the Go runtime's, build_info and service.version; health, pprof
// and the dashboard page are served beside it.
func TestAdminMetricsAfterADemoSession(t *testing.T) {
	args := []string{"--demo", "--demo-tickets", "1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--replica", "metrics-test", "--log-level", "warn"}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, env(nil), &stdout, &stderr) }()
	defer func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("run exit code %d; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not stop within 20 s of cancellation")
		}
	}()
	addr := waitAddr(t, &stdout, exited)
	m := adminListening.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no admin address printed:\n%s", stdout.String())
	}
	adminURL := m[1]

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	cctx, ccancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer ccancel()

	// The dashboard's event stream over the real store: a snapshot with the
	// demo session, then its transition to RUNNING when a runner takes it.
	req, _ := http.NewRequestWithContext(cctx, "GET", adminURL+"api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	events.Buffer(nil, 1<<20)
	nextData := func(prefix string) string {
		t.Helper()
		for events.Scan() {
			if line := events.Text(); strings.HasPrefix(line, "data: ") && strings.Contains(line, prefix) {
				return line
			}
		}
		t.Fatalf("event stream ended waiting for %q: %v", prefix, events.Err())
		return ""
	}
	if snap := nextData(`{"revision":`); !strings.Contains(snap, `"sessions":[`) {
		t.Errorf("first event %s, want a snapshot", snap)
	}

	acq, err := client.AcquireSession(cctx, &orchestratorv1.AcquireSessionRequest{Runner: "metrics-bot"})
	if err != nil {
		t.Fatalf("AcquireSession: %v", err)
	}
	if _, err := client.Send(cctx, &orchestratorv1.SendRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
		Payload: []byte{0x22, 0xF1, 0x90},
	}); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if ev := nextData(`"state":"RUNNING"`); !strings.Contains(ev, `"lease_holder":"metrics-bot"`) || !strings.Contains(ev, `"to":"RUNNING"`) {
		t.Errorf("RUNNING event %s, want the runner's lease and the transition", ev)
	}
	resp.Body.Close()

	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(cctx, "GET", adminURL+strings.TrimPrefix(path, "/"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, metrics := get("/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`obdorch_sessions{`,
		`state="RUNNING"`,
		`obdorch_relay_requests_total{`,
		`outcome="positive"`,
		`obdorch_relay_duration_seconds_bucket{`,
		`obdorch_queue_adds_total{`,
		`obdorch_queue_depth{`,
		`obdorch_reconciles_total{`,
		`build_info{go_version="go1.`,
		`go_goroutine_count{`,
		`service_version="`,
		`rpc_server_call_duration_seconds_bucket{`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "SERVING", "/debug/pprof/": "goroutine", "/": "obdorch sessions"} {
		if code, body := get(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, want 200 containing %q", path, code, want)
		}
	}
}

func TestAdminListenFollowsTheTransportRule(t *testing.T) {
	creds := []string{"--client-id", "id", "--client-secret", "secret"}
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{[]string{"--admin-listen", "0.0.0.0:7601"}, true},
		{[]string{"--admin-listen", "0.0.0.0:7601", "--insecure", "--listen", "127.0.0.1:7600"}, false},
		{[]string{"--admin-listen", "localhost:7601"}, false},
		{[]string{"--admin-listen", ""}, false},
		{[]string{"--admin-listen", "nope"}, true},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		_, err := parseConfig(append(tt.args, creds...), env(nil), &stderr)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseConfig(%q) = %v, want error: %v", tt.args, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "--admin-listen") {
			t.Errorf("parseConfig(%q) = %v, want it to name --admin-listen", tt.args, err)
		}
	}
}

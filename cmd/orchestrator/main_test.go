package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/connector/fake/fakejifeline"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
	)
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	creds := []string{"--client-id", "id", "--client-secret", "secret"}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		flag string
	}{
		{"missing client id", []string{"--client-secret", "s"}, nil, "--client-id"},
		{"missing client secret", []string{"--client-id", "i"}, nil, "--client-secret"},
		{"plaintext off loopback", append([]string{"--listen", "0.0.0.0:7600"}, creds...), nil, "--listen"},
		{"bad listen", append([]string{"--listen", "nope"}, creds...), nil, "--listen"},
		{"cert without key", append([]string{"--tls-cert", "c.pem"}, creds...), nil, "--tls-cert"},
		{"client ca without cert", append([]string{"--client-ca", "ca.pem"}, creds...), nil, "--client-ca"},
		{"bad cluster", append([]string{"--cluster-id", "003"}, creds...), nil, "--cluster-id"},
		{"bad port", append([]string{"--openobd-port", "0"}, creds...), nil, "--openobd-port"},
		{"missing openobd ca", append([]string{"--openobd-ca", "/nonexistent/ca.pem"}, creds...), nil, "--openobd-ca"},
		{"openobd ca not pem", append([]string{"--openobd-ca", notPEM}, creds...), nil, "--openobd-ca"},
		{"openobd ca with insecure", append([]string{"--openobd-ca", notPEM, "--openobd-insecure"}, creds...), nil, "--openobd-ca"},
		{"bad intake state", append([]string{"--intake-state", "open"}, creds...), nil, "--intake-state"},
		{"bad processed", append([]string{"--intake-externally-processed", "maybe"}, creds...), nil, "--intake-externally-processed"},
		{"short lease", append([]string{"--lease-ttl", "1s"}, creds...), nil, "--lease-ttl"},
		{"bad log format", append([]string{"--log-format", "xml"}, creds...), nil, "--log-format"},
		{"bad log level", append([]string{"--log-level", "loud"}, creds...), nil, "--log-level"},
		{"bad partner url", append([]string{"--partner-url", "ftp://x"}, creds...), nil, "--partner-url"},
		{"missing token file", append([]string{"--auth-tokens", "/nonexistent/tokens"}, creds...), nil, "--auth-tokens"},
		{"bad env value", creds, map[string]string{"ORCHESTRATOR_WORKERS": "many"}, "--workers"},
		{"zero max sessions", append([]string{"--max-sessions", "0"}, creds...), nil, "--max-sessions"},
		{"negative max sessions", creds, map[string]string{"ORCHESTRATOR_MAX_SESSIONS": "-3"}, "--max-sessions"},
		{"zero gc percent", append([]string{"--gc-percent", "0"}, creds...), nil, "gc-percent"},
		{"bad GOGC", creds, map[string]string{"GOGC": "fast"}, "--gc-percent"},
		{"unknown flag", []string{"--bogus"}, nil, "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseConfig(tt.args, env(tt.env), &stderr)
			if err == nil {
				t.Fatalf("parseConfig(%q) succeeded, want an error naming %s", tt.args, tt.flag)
			}
			if msg := err.Error() + stderr.String(); !strings.Contains(msg, tt.flag) {
				t.Errorf("parseConfig(%q) = %q, want it to name %s", tt.args, msg, tt.flag)
			}
		})
	}
}

func TestConfigEnvTwins(t *testing.T) {
	vars := map[string]string{
		"OPENOBD_PARTNER_CLIENT_ID":     "env-id",
		"OPENOBD_PARTNER_CLIENT_SECRET": "env-secret",
		"OPENOBD_GRPC_HOST":             "grpc.example.com",
		"OPENOBD_CLUSTER_ID":            "002",
		"ORCHESTRATOR_WORKERS":          "7",
		"ORCHESTRATOR_LISTEN":           "127.0.0.1:9999",
		"ORCHESTRATOR_MAX_SESSIONS":     "250",
	}
	c, err := parseConfig([]string{"--workers", "9"}, env(vars), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if c.clientID != "env-id" || c.clientSecret != "env-secret" || c.openobdHost != "grpc.example.com" || c.clusterID != "002" || c.listen != "127.0.0.1:9999" {
		t.Errorf("environment not applied: %+v", c)
	}
	if c.maxSessions != 250 {
		t.Errorf("maxSessions = %d, want 250 from ORCHESTRATOR_MAX_SESSIONS", c.maxSessions)
	}
	if c.workers != 9 {
		t.Errorf("workers = %d, want 9 (the command line wins over the environment)", c.workers)
	}
	if c.gcPercent != gcpercent.Default {
		t.Errorf("gcPercent = %v without GOGC, want the default %d", c.gcPercent, gcpercent.Default)
	}
	vars["GOGC"] = "off"
	if c, err = parseConfig(nil, env(vars), &bytes.Buffer{}); err != nil {
		t.Fatalf("parseConfig with GOGC=off: %v", err)
	}
	if c.gcPercent != -1 {
		t.Errorf("with GOGC=off: gcPercent = %v, want off (-1)", c.gcPercent)
	}
}

func TestHelpListsGroupsAndEnv(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, want := range []string{"Control plane:", "Store:", "openOBD:", "Partner API:", "--client-secret", "OPENOBD_PARTNER_CLIENT_SECRET", "ORCHESTRATOR_LISTEN", `(default "127.0.0.1:7600")`, "ORCHESTRATOR_TOKENS", "OTEL_TRACES_EXPORTER"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFullRunLeaksNoSecret runs the service against the fake Jifeline
// through a whole session (start, acquire, send, finish, interrupt) with
// authentication on, debug logs and console tracing, and then searches
// everything it printed and answered for every secret: the client secret,
// the control-plane tokens, and every token the fakes issued.
func TestFullRunLeaksNoSecret(t *testing.T) {
	const secret = "client-secret-4f9a1c7e"
	jf, err := fakejifeline.Start(context.WithoutCancel(t.Context()), fakejifeline.Options{
		Tickets: 2, Seed: 3, ClientID: "leak-test-client", ClientSecret: secret, TLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	host, port := splitAddr(t, jf.OpenOBDAddr)
	caFile := filepath.Join(t.TempDir(), "openobd-ca.pem")
	if err := os.WriteFile(caFile, jf.Certificate.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	const adminToken, runnerToken = "admin-token-0123456789abcdef", "runner-token-0123456789abcdef"
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("# test tokens\n"+adminToken+" admin ops\n"+runnerToken+" runner bot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--replica", "leak-test",
		"--openobd-host", host, "--openobd-port", port, "--openobd-ca", caFile,
		"--partner-url", jf.PartnerURL, "--ticket-write",
		"--client-id", "leak-test-client", "--client-secret", secret,
		"--auth-tokens", tokenFile, "--log-level", "debug", "--log-format", "json",
		"--intake-state", "outsourced", // tickets are started through the control plane here
	}
	vars := map[string]string{"OTEL_TRACES_EXPORTER": "console"}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, env(vars), &stdout, &stderr) }()
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
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := orchestratorv1.NewOrchestratorServiceClient(conn)
	var answers bytes.Buffer
	record := func(m proto.Message) {
		b, _ := protojson.Marshal(m)
		answers.Write(b)
	}
	cctx, ccancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer ccancel()
	admin := metadata.AppendToOutgoingContext(cctx, "authorization", "Bearer "+adminToken)
	runner := metadata.AppendToOutgoingContext(cctx, "authorization", "Bearer "+runnerToken)

	// Health turns SERVING after the first intake pass.
	health := healthpb.NewHealthClient(conn)
	for {
		r, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if cctx.Err() != nil {
			t.Fatalf("health never SERVING: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := client.ListSessions(cctx, &orchestratorv1.ListSessionsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListSessions without a token = %v, want UNAUTHENTICATED", err)
	}
	if _, err := client.StartSession(runner, &orchestratorv1.StartSessionRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("StartSession as runner = %v, want PERMISSION_DENIED", err)
	}

	start, err := client.StartSession(admin, &orchestratorv1.StartSessionRequest{
		Target: &orchestratorv1.StartSessionRequest_TicketId{TicketId: jf.Tickets[0].ID},
	})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	record(start)
	acq, err := client.AcquireSession(runner, &orchestratorv1.AcquireSessionRequest{Runner: "bot"})
	if err != nil {
		t.Fatalf("AcquireSession: %v", err)
	}
	record(acq)
	send, err := client.Send(runner, &orchestratorv1.SendRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Channel: &orchestratorv1.Channel{BusName: "can0", RequestId: 0x7E0, ResponseId: 0x7E8},
		Payload: []byte{0x22, 0xF1, 0x90},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	record(send)
	if vin := string(send.GetPayload()[3:]); vin != *jf.Tickets[0].VIN {
		t.Errorf("Send answered VIN %q, want %q", vin, *jf.Tickets[0].VIN)
	}
	fin, err := client.FinishSession(runner, &orchestratorv1.FinishSessionRequest{
		SessionId: acq.GetSession().GetId(), LeaseId: acq.GetLeaseId(),
		Result: &orchestratorv1.FinishResult{Codes: []orchestratorv1.ResultCode{orchestratorv1.ResultCode_RESULT_CODE_SUCCESS}},
	})
	if err != nil {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, `"msg"`) {
				t.Log(l)
			}
		}
		t.Fatalf("FinishSession: %v", err)
	}
	record(fin)
	if fin.GetSession().GetState() != orchestratorv1.SessionState_SESSION_STATE_FINISHED {
		t.Errorf("finished session in %s", fin.GetSession().GetState())
	}
	if tk, _ := jf.Partner.Ticket(jf.Tickets[0].ID); !tk.ExternallyProcessed || tk.ExternalReference != acq.GetSession().GetId() {
		t.Errorf("ticket not marked: externally_processed=%v external_reference=%q", tk.ExternallyProcessed, tk.ExternalReference)
	}
	list, err := client.ListSessions(admin, &orchestratorv1.ListSessionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	record(list)

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("run exit code %d", code)
		}
		exited <- code
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}

	secrets := []string{secret, adminToken, runnerToken, acq.GetLeaseId()}
	secrets = append(secrets, jf.OpenOBD.IssuedTokens()...)
	secrets = append(secrets, jf.Partner.IssuedTokens()...)
	if len(secrets) < 8 {
		t.Fatalf("only %d secrets collected; the fakes issued too few tokens for a meaningful check", len(secrets))
	}
	printed := stdout.String() + stderr.String()
	if !strings.Contains(printed, "openOBD connections use TLS") || strings.Contains(printed, "INSECURE") {
		t.Error("the start-up log does not say that openOBD is reached over TLS")
	}
	for _, s := range secrets {
		if s == acq.GetLeaseId() {
			// The runner is given its lease id once; it must not appear anywhere else.
			if strings.Contains(printed, s) {
				t.Errorf("the lease id appears in the logs")
			}
			continue
		}
		if strings.Contains(printed, s) {
			t.Errorf("secret %.6s… appears in the logs", s)
		}
		if strings.Contains(answers.String(), s) {
			t.Errorf("secret %.6s… appears in a control-plane response", s)
		}
	}
	// The console trace exporter shows the StartSession call and the
	// openOBD calls it caused in one trace.
	traces := map[string]map[string]bool{} // trace id -> span names
	for _, line := range strings.Split(printed, "\n") {
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if !strings.HasPrefix(line, `{"Name":`) || json.Unmarshal([]byte(line), &span) != nil {
			continue
		}
		if traces[span.SpanContext.TraceID] == nil {
			traces[span.SpanContext.TraceID] = map[string]bool{}
		}
		traces[span.SpanContext.TraceID][span.Name] = true
	}
	want := []string{
		"orchestrator.v1.OrchestratorService/StartSession",
		"openOBD.v1.sessionController/startSessionOnTicket",
		"openOBD.v1.session/authenticate",
		"openOBD.v1.config/configureBus",
	}
	found := false
	for _, names := range traces {
		all := true
		for _, n := range want {
			all = all && names[n]
		}
		found = found || all
	}
	if !found {
		t.Errorf("no trace holds all of %v (%d traces printed)", want, len(traces))
	}
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}

var listening = regexp.MustCompile(`control plane on (\S+)`)

func waitAddr(t *testing.T, stdout *syncBuffer, exited chan int) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("run exited with %d before listening", code)
		case <-deadline:
			t.Fatal("run did not print its address")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

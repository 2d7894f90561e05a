package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// cli runs obdctl against o with the admin token unless args give another.
type cli struct {
	t *testing.T
	o *testOrchestrator
}

type result struct {
	code           int
	stdout, stderr string
}

func (c cli) run(ctx context.Context, args ...string) result {
	c.t.Helper()
	var stdout, stderr syncBuffer
	vars := map[string]string{"OBDCTL_ADDR": c.o.addr, "OBDCTL_TOKEN": adminToken}
	code := run(ctx, args, func(k string) string { return vars[k] }, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// ok runs args and fails the test unless obdctl exits 0.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(c.t.Context(), args...)
	if r.code != 0 {
		c.t.Fatalf("obdctl %s = exit %d; stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// sanitizer replaces what changes from run to run (ids, times, durations,
// addresses, store revisions) with stable placeholders; the same id gets the
// same placeholder throughout one test.
type sanitizer struct{ ids map[string]string }

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	durRE  = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b`)
	addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	revRE  = regexp.MustCompile(`(rev |revision +|"revision": ?")\d+`)
)

func (s *sanitizer) clean(text string) string {
	text = uuidRE.ReplaceAllStringFunc(text, func(id string) string {
		if _, ok := s.ids[id]; !ok {
			s.ids[id] = fmt.Sprintf("<id-%d>", len(s.ids)+1)
		}
		return s.ids[id]
	})
	text = timeRE.ReplaceAllString(text, "<time>")
	text = durRE.ReplaceAllString(text, "<dur>")
	text = addrRE.ReplaceAllString(text, "<addr>")
	return revRE.ReplaceAllString(text, "${1}<rev>")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/obdctl -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test ./cmd/obdctl -update rewrites it):\n%s", name, diff)
	}
}

// TestGolden walks an operator's session through obdctl against an
// in-process orchestrator and compares every output, human and JSON, with
// testdata/.
func TestGolden(t *testing.T) {
	o := startOrchestrator(t, 2)
	c := cli{t, o}
	s := &sanitizer{ids: map[string]string{}}
	num1, num2 := o.jf.Tickets[0].TicketNumber, o.jf.Tickets[1].TicketNumber

	golden(t, "tickets.txt", s.clean(c.ok("tickets", "--state", "pending")))
	golden(t, "tickets.json", s.clean(c.ok("tickets", "--state", "pending", "-o", "json")))
	golden(t, "connectors.txt", s.clean(c.ok("connectors")))

	// A dry run checks and starts nothing.
	golden(t, "start-dry-run.txt", s.clean(c.ok("start", "--ticket", fmt.Sprint(num1), "--dry-run")))
	golden(t, "start-dry-run.json", s.clean(c.ok("start", "--ticket", fmt.Sprint(num1), "--dry-run", "-o", "json")))
	if out := c.ok("sessions", "-o", "json"); out != "{}\n" {
		t.Errorf("sessions after a dry run = %q, want none", out)
	}
	golden(t, "start-wait.txt", s.clean(c.ok("start", "--ticket", fmt.Sprint(num1), "--wait")))
	golden(t, "start-dry-run-live.txt", s.clean(c.ok("start", "--ticket", fmt.Sprint(num1), "--dry-run")))
	if r := c.run(t.Context(), "start", "--ticket", "99999999", "--dry-run"); r.code != exitNotFound {
		t.Errorf("dry run on an unknown ticket = exit %d %q, want %d", r.code, r.stderr, exitNotFound)
	}
	started := c.ok("start", "--ticket", fmt.Sprint(num2), "-o", "json")
	var first struct {
		Session struct{ ID string } `json:"session"`
	}
	if err := json.Unmarshal([]byte(started), &first); err != nil || first.Session.ID == "" {
		t.Fatalf("start -o json printed %q: %v", started, err)
	}
	golden(t, "start.json", s.clean(started))
	// Starting again is idempotent; --wait follows the live session to READY.
	if again := c.ok("start", "--ticket", fmt.Sprint(num2), "--wait"); !strings.HasPrefix(again, "already live: session "+first.Session.ID) {
		t.Errorf("second start printed %q, want the live session", again)
	}

	ticket1 := o.jf.Tickets[0].ID
	listed := c.ok("sessions", "--ticket", ticket1, "-o", "json")
	var list struct {
		Sessions []struct{ ID string } `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(listed), &list); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("sessions --ticket -o json printed %q: %v", listed, err)
	}
	id := list.Sessions[0].ID
	golden(t, "sessions.json", s.clean(listed))
	golden(t, "sessions.txt", s.clean(c.ok("sessions", "--ticket", ticket1)))
	golden(t, "sessions-get.txt", s.clean(c.ok("sessions", "get", id)))
	golden(t, "sessions-get.json", s.clean(c.ok("sessions", "get", id, "-o", "json")))

	// The VIN in one command, then a negative answer decoded.
	vin := c.ok("send", id, "22F190")
	if !strings.Contains(vin, fmt.Sprintf("%q", *o.jf.Tickets[0].VIN)) {
		t.Errorf("send 22F190 does not show the VIN %s:\n%s", *o.jf.Tickets[0].VIN, vin)
	}
	golden(t, "send-vin.txt", s.clean(vin))
	golden(t, "send-vin.json", s.clean(c.ok("send", id, "22 F1 90", "-o", "json")))
	golden(t, "send-negative.txt", s.clean(c.ok("send", id, "22F191", "--ecu", "body")))

	// A bus configuration checked without changing anything, then refused.
	golden(t, "configure-dry-run.txt", s.clean(c.ok("configure", id, "--bus", "can0=can,500000", "--bus", "can1=can,125000,3/11", "--dry-run")))
	if r := c.run(t.Context(), "configure", id, "--bus", "can0=can,123456", "--dry-run"); r.code != exitUsage || !strings.Contains(r.stderr, "InvalidArgument") {
		t.Errorf("configure --dry-run with a bad bit rate = exit %d %q, want %d InvalidArgument", r.code, r.stderr, exitUsage)
	}
	if got := c.ok("sessions", "get", id, "-o", "json"); strings.Contains(got, "can1") {
		t.Errorf("a dry run changed the buses:\n%s", got)
	}

	// A runner's turn: acquire, finish.
	acquired := c.ok("acquire", "--ticket", ticket1, "--runner", "golden-runner", "-o", "json")
	var acq struct {
		LeaseID string `json:"lease_id"`
	}
	if err := json.Unmarshal([]byte(acquired), &acq); err != nil || acq.LeaseID == "" {
		t.Fatalf("acquire -o json printed %q: %v", acquired, err)
	}
	if r := c.run(t.Context(), "send", id, "22F190"); r.code != exitRefused || !strings.Contains(r.stderr, "FailedPrecondition") {
		t.Errorf("send without the lease of a leased session = exit %d %q, want %d FailedPrecondition", r.code, r.stderr, exitRefused)
	}
	golden(t, "finish.txt", s.clean(c.ok("finish", id, "--lease", acq.LeaseID, "--result", "success", "--description", "vin read")))

	golden(t, "interrupt.txt", s.clean(c.ok("interrupt", first.Session.ID, "--reason", "bench needed")))
}

func TestExitCodes(t *testing.T) {
	o := startOrchestrator(t, 1)
	c := cli{t, o}
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"no command", nil, exitUsage, "no command given"},
		{"unknown command", []string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{"unknown flag", []string{"sessions", "--bogus"}, exitUsage, "-bogus"},
		{"bad output", []string{"sessions", "-o", "yaml"}, exitUsage, "-o: want human or json"},
		{"bad state", []string{"sessions", "--state", "DONE"}, exitUsage, `unknown session state "DONE"`},
		{"send without hex", []string{"send", "some-id"}, exitUsage, "want SESSION_ID HEX"},
		{"send odd hex", []string{"send", "some-id", "22F19"}, exitUsage, "want hex bytes"},
		{"send bad can", []string{"send", "some-id", "22F190", "--can", "7E0"}, exitUsage, "--can"},
		{"send unknown ecu", []string{"send", "some-id", "22F190", "--ecu", "radio"}, exitUsage, "--ecu"},
		{"start without target", []string{"start"}, exitUsage, "exactly one of --ticket and --connector"},
		{"interrupt without reason", []string{"interrupt", "some-id"}, exitUsage, "--reason is required"},
		{"finish bad result", []string{"finish", "some-id", "--result", "great"}, exitUsage, `unknown result code "great"`},
		{"configure without bus", []string{"configure", "some-id"}, exitUsage, "at least one --bus"},
		{"configure bad bus", []string{"configure", "some-id", "--bus", "can0=flexray,500000"}, exitUsage, "want can or kline"},
		{"server says invalid", []string{"acquire", "--runner", "x", "--ttl", "1s"}, exitUsage, "InvalidArgument"},
		{"not found", []string{"sessions", "get", "no-such-session"}, exitNotFound, "NotFound"},
		{"send to no session", []string{"send", "no-such-session", "22F190"}, exitNotFound, "NotFound"},
		{"viewer may not interrupt", []string{"interrupt", "some-id", "--reason", "x", "--token", viewerToken}, exitDenied, "PermissionDenied"},
		{"unknown token", []string{"sessions", "--token", "not-a-known-token-000"}, exitDenied, "Unauthenticated"},
		{"server down", []string{"sessions", "--addr", "127.0.0.1:1", "--timeout", "2s"}, exitServer, "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(t.Context(), tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("obdctl %q = exit %d, stderr %q; want exit %d, stderr containing %q", tt.args, r.code, r.stderr, tt.code, tt.wantStderr)
			}
		})
	}
	if r := c.run(t.Context(), "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit codes") || !strings.Contains(r.stdout, "[OBDCTL_ADDR]") {
		t.Errorf("--help = exit %d:\n%s", r.code, r.stdout)
	}
	if r := c.run(t.Context(), "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "obdctl ") {
		t.Errorf("--version = exit %d %q", r.code, r.stdout)
	}
	if r := c.run(t.Context(), "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "complete -F _obdctl obdctl") {
		t.Errorf("completion bash = exit %d", r.code)
	}
}

// TestWatchFollowsAndStopsOnInterrupt runs "sessions watch" until a
// transition made meanwhile shows, then cancels it as Ctrl-C does (the
// signal context of main): it exits 0 with nothing left running.
func TestWatchFollowsAndStopsOnInterrupt(t *testing.T) {
	o := startOrchestrator(t, 1)
	c := cli{t, o}
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	vars := map[string]string{"OBDCTL_ADDR": o.addr, "OBDCTL_TOKEN": viewerToken}
	exited := make(chan int, 1)
	// From revision 1: whether the watch opens before or after the start
	// below, it sees the whole history.
	go func() {
		exited <- run(ctx, []string{"sessions", "watch", "--since", "1"}, func(k string) string { return vars[k] }, &stdout, &stderr)
	}()
	c.ok("start", "--ticket", fmt.Sprint(o.jf.Tickets[0].TicketNumber), "--wait")
	deadline := time.After(20 * time.Second)
	for {
		out, changed := stdout.watch()
		if strings.Contains(out, "STARTING -> READY") {
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("watch exited %d early; stderr: %s", code, stderr.String())
		case <-deadline:
			t.Fatalf("watch printed no READY transition:\n%s", stdout.String())
		case <-changed:
		}
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("watch after Ctrl-C = exit %d, want 0; stderr: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop after Ctrl-C")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two
// goroutines, with a signal on every write.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// watch returns what was written so far and a channel closed at the next
// write, taken together so that no write falls between them.
func (b *syncBuffer) watch() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return b.buf.String(), b.wake
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/internal/leakcheck"
	"go.uber.org/goleak"
)

// TestMain fails the package if a scenario leaves goroutines behind:
// servers, sessions, streams and workers must all be stopped.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m, leakOptions...)
}

// leakOptions ignore what the gRPC and etcd client packages start once per
// process.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
}

// tiny runs every scenario briefly; the figures mean nothing.
var tiny = []string{
	"--sessions", "3", "--tickets", "5", "--concurrency", "4",
	"--duration", "300ms", "--warmup", "50ms", "--settle", "0",
	"--log-level", "warn", "--runs", "1", "--store-lease-ttl", "3s",
}

// The keys each scenario's JSON must have; they are what scripts read.
var wantKeys = map[string][]string{
	"relay": {
		"direct_p50_ms", "direct_p99_ms", "orchestrated_p50_ms", "orchestrated_p99_ms",
		"direct_rps", "orchestrated_rps", "throughput_ratio", "bare_hop_p50_ms", "lost",
		"added_p50_ms", "added_p99_ms", "sessions", "interval_ms", "duration_s", "targets",
		"added_cpu_over_bare_hop", "curves", "bare_proxy_rps", "bare_proxy_throughput_ratio", "bare_proxy_added_cpu_over_bare_hop",
	},
	"intake": {"intake_seconds", "partner_requests", "openobd_calls", "tickets", "store_writes_per_session", "lost", "targets"},
	"memory": {"rss_per_session_kib", "goroutines_per_session", "direct_rss_per_session_kib", "sessions", "lost", "targets"},
	"failover": {
		"failover_seconds", "adopted_seconds", "killed_sessions", "killed_leased", "duplicates", "new_openobd_sessions",
		"spread_before", "spread_after", "max_share_after", "owner_send_p50_ms", "forwarded_send_p50_ms", "bare_hop_p50_ms",
		"forwarded_added_p50_ms", "forwarded_added_p50_per_bare_hop_p50", "lost", "targets",
	},
	"controlplane": {"getsession_qps", "listsessions_qps", "echo_qps", "getsession_ratio", "listsessions_over_getsession", "concurrency", "lost", "targets"},
}

func TestEveryScenarioInProcess(t *testing.T) {
	out := runJSON(t, append([]string{"--scenario", "all", "--json"}, tiny...))
	if out["scenario"] != "all" {
		t.Errorf(`"scenario" = %v, want "all"`, out["scenario"])
	}
	for name, keys := range wantKeys {
		sc, ok := out[name].(map[string]any)
		if !ok {
			t.Errorf("no %q object in the output", name)
			continue
		}
		checkKeys(t, name, onlyRun(t, name, sc), keys)
	}
	if out["lost"] != 0.0 {
		t.Errorf(`"lost" = %v, want 0`, out["lost"])
	}
}

func TestUnpacedRelayWithBusTiming(t *testing.T) {
	out := onlyRun(t, "relay", runJSON(t, append([]string{"--scenario", "relay", "--interval", "0", "--bus-timing", "--json"}, tiny...)))
	checkKeys(t, "relay", out, wantKeys["relay"])
	if out["bus_timing"] != true {
		t.Errorf(`"bus_timing" = %v, want true`, out["bus_timing"])
	}
	if out["openobd_tls"] != false {
		t.Errorf(`"openobd_tls" = %v, want false`, out["openobd_tls"])
	}
	// Unpaced, every session sends far more than one request per 50 ms.
	if rps, _ := out["orchestrated_rps"].(float64); rps < 3*20 {
		t.Errorf(`"orchestrated_rps" = %v, want more than paced sessions would send`, out["orchestrated_rps"])
	}
}

// The relay scenario over TLS toward openOBD, as in production: the direct
// runner and the orchestrator both reach the fake through TLS.
func TestRelayOverTLS(t *testing.T) {
	out := onlyRun(t, "relay", runJSON(t, append([]string{"--scenario", "relay", "--openobd-tls", "--json"}, tiny...)))
	checkKeys(t, "relay", out, wantKeys["relay"])
	if out["openobd_tls"] != true {
		t.Errorf(`"openobd_tls" = %v, want true`, out["openobd_tls"])
	}
}

// runJSON runs the tool in-process and decodes its one JSON object.
func runJSON(t *testing.T, args []string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("run(%s) = %d, want %d; stderr:\n%s", strings.Join(args, " "), code, exitOK, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
	return out
}

// onlyRun returns the one run of a scenario's results, after checking that
// the summary judges no target of a short run.
func onlyRun(t *testing.T, scenario string, res map[string]any) map[string]any {
	t.Helper()
	runs, _ := res["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("%s: %d runs in the results, want 1", scenario, len(runs))
	}
	sum, _ := res["summary"].(map[string]any)
	targets, _ := sum["targets"].([]any)
	if len(targets) == 0 {
		t.Errorf("%s: the summary has no targets: %v", scenario, sum)
	}
	for _, tg := range targets {
		if v := tg.(map[string]any)["verdict"]; v == "met" {
			t.Errorf("%s: summary verdict %v for %v, want anything else (one short run)", scenario, v, tg)
		}
	}
	run, _ := runs[0].(map[string]any)
	return run
}

func checkKeys(t *testing.T, scenario string, obj map[string]any, keys []string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s: no %q key in %v", scenario, k, obj)
		}
	}
	if obj["lost"] != 0.0 {
		t.Errorf("%s: \"lost\" = %v, want 0", scenario, obj["lost"])
	}
	targets, _ := obj["targets"].([]any)
	if len(targets) == 0 {
		t.Errorf("%s: no design targets checked", scenario)
	}
}

func TestTableOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := append([]string{"--scenario", "intake"}, tiny...)
	if code := run(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("run(%s) = %d, want %d; stderr:\n%s", strings.Join(args, " "), code, exitOK, stderr.String())
	}
	for _, want := range []string{"intake: 5 pending tickets", "start to all READY", "Partner API requests", "design target", "runs met", "smoke"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestInvalidFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--scenario", "nope"}, "--scenario"},
		{[]string{"--sessions", "0"}, "--sessions"},
		{[]string{"--interval", "-1s"}, "--interval"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--warmup", "-1s"}, "--warmup"},
		{[]string{"--settle", "-1s"}, "--settle"},
		{[]string{"--tickets", "0"}, "--tickets"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--runs", "-1"}, "--runs"},
		{[]string{"--runs", "2", "--openobd-addr", "127.0.0.1:1", "--partner-url", "http://127.0.0.1:2"}, "--runs"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--orchestrator-log-level", "loud"}, "--orchestrator-log-level"},
		{[]string{"--openobd-addr", "127.0.0.1:1"}, "--partner-url"},
		{[]string{"--openobd-addr", "nohost", "--partner-url", "http://127.0.0.1:2"}, "--openobd-addr"},
		{[]string{"--openobd-addr", "127.0.0.1:1", "--partner-url", "ftp://x"}, "--partner-url"},
		{[]string{"--openobd-addr", "127.0.0.1:1", "--partner-url", "http://127.0.0.1:2", "--bus-timing"}, "--bus-timing"},
		{[]string{"--openobd-addr", "127.0.0.1:1", "--partner-url", "http://127.0.0.1:2", "--openobd-tls"}, "--openobd-tls"},
		{[]string{"--openobd-ca", "ca.pem"}, "--openobd-ca"},
		{[]string{"--orchestrator-addr", "127.0.0.1:1", "--scenario", "intake"}, "--orchestrator-addr"},
		{[]string{"--orchestrator-addr", "127.0.0.1:1", "--scenario", "relay"}, "--orchestrator-addr"},
		{[]string{"--orchestrator-addr", "127.0.0.1:1", "--scenario", "controlplane", "--no-fsync"}, "--no-fsync"},
		{[]string{"--store-lease-ttl", "1s"}, "--store-lease-ttl"},
		{[]string{"--store-lease-ttl", "2500ms"}, "--store-lease-ttl"},
		{[]string{"--scenario", "failover", "--openobd-addr", "127.0.0.1:1", "--partner-url", "http://127.0.0.1:2"}, "--openobd-addr"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("run(%s) = %d, want %d", strings.Join(tc.args, " "), code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("run(%s): error %q does not name %s", strings.Join(tc.args, " "), stderr.String(), tc.flag)
		}
		if stdout.Len() > 0 {
			t.Errorf("run(%s) wrote to stdout: %q", strings.Join(tc.args, " "), stdout.String())
		}
	}
}

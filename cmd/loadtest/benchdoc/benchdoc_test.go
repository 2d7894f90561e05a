package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/obdorch/obdorch/cmd/loadtest/internal/results"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeResult writes a result of runs, each a map of figures plus targets.
func writeResult(t *testing.T, dir, file, scenario string, runs []map[string]any) {
	t.Helper()
	var raws []json.RawMessage
	for _, r := range runs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	res, err := results.NewResult(scenario, []string{"loadtest"}, raws)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func relayRun(p99 float64) map[string]any {
	return map[string]any{
		"sessions": 200, "interval_ms": 50, "added_p99_ms": p99, "direct_p50_ms": 0.1, "gc_percent": 400,
		"curves": map[string]any{
			"percentiles":     []float64{1, 50, 90, 99, 99.9, 99.99},
			"direct_ms":       []float64{0.05, 0.1, 0.2, 0.4, 0.9, 2},
			"orchestrated_ms": []float64{0.08, 0.2, 0.3, 0.6, 1.5, 3},
			"bare_hop_ms":     []float64{0.03, 0.05, 0.1, 0.2, 0.5, 1},
		},
		"targets": []results.Target{results.Check("relay added p99 <= 1 ms", p99, 1, "ms", true, true, nil)},
	}
}

// rateRun is a run of the relay-rate step: paced at 10 ms, its p99 over
// the 50 ms target.
func rateRun() map[string]any {
	r := relayRun(9)
	r["interval_ms"] = 10
	return r
}

// memRun is a run of the memory-gogc100 step.
func memRun(rss float64, gc int) map[string]any {
	return map[string]any{"rss_per_session_kib": rss, "gc_percent": gc}
}

// gcRun is a run of the relay-paced-gogc100 step.
func gcRun() map[string]any {
	r := relayRun(9)
	r["gc_percent"] = 100
	return r
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	m := meta{Commit: "0123456789abcdef0123", Runs: 3, DurationS: 10, CPUs: 2, Build: []string{"go build -o $BIN/loadtest ./cmd/loadtest"}}
	plain := func(v float64, name string) map[string]any {
		return map[string]any{"figure": v, "targets": []results.Target{results.Check(name, v, 1, "", true, false, nil)}}
	}
	for _, s := range []struct {
		name string
		runs []map[string]any
	}{
		{stepRelayPaced, []map[string]any{relayRun(0.5), relayRun(-0.1), relayRun(0.7)}},
		{stepRelayUnpaced, []map[string]any{relayRun(0.5), relayRun(0.6), relayRun(0.7)}},
		{stepRelayRate, []map[string]any{rateRun(), rateRun(), rateRun()}},
		{stepRelayGC, []map[string]any{gcRun(), gcRun(), gcRun()}},
		{stepControlPlane, []map[string]any{plain(0.5, "cp"), plain(0.6, "cp"), plain(0.7, "cp")}},
		{stepIntake, []map[string]any{plain(0.5, "in"), plain(1.5, "in"), plain(0.7, "in")}},
		{stepMemory, []map[string]any{plain(0.5, "mem"), plain(0.6, "mem"), plain(0.7, "mem")}},
		{stepMemoryGC, []map[string]any{memRun(30, 100), memRun(31, 100), memRun(32, 100)}},
	} {
		writeResult(t, dir, s.name+".json", s.name, s.runs)
		m.Steps = append(m.Steps, step{Name: s.name, File: s.name + ".json", Commands: []string{"$BIN/loadtest --scenario " + s.name}})
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, metaFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "BENCHMARKS.md")
	if err := generate(&config{dir: dir, doc: doc}); err != nil {
		t.Fatalf("generate = %v", err)
	}
	out, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`0123456789ab`",
		"| relay, 200 sessions at 50 ms | relay added p99 <= 1 ms | 0.500 ms | -0.100 – 0.700 | 2/3 | **noise**",
		"| intake | in | 0.700 | 0.500 – 1.50 | 2/3 | **not met** |",
		"| memory | mem | 0.600 | 0.500 – 0.700 | 3/3 | met |",
		"$BIN/loadtest --scenario memory",
		"relay-latency.svg)",
		"### 200 sessions, one request every 10.0 ms each",
		"$BIN/loadtest --scenario relay-rate",
		"runs with a GC target of 400 %",
		"grows to 5 times its live size",
		"with a target\nof 100 %.",
		"| per idle READY session | median (range) | at 100 % |",
		"| RSS, KiB | — | 31.0 (30.0–32.0) |",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "| 9.00 ms | 9.00") {
		t.Errorf("the relay-rate step has rows in the summary; it carries no targets:\n%s", out)
	}
	svg, err := os.ReadFile(filepath.Join(dir, plotFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 9 {
		t.Errorf("the plot has %d curves, want 9 (3 paths x 3 runs)", lines)
	}
}

func TestGenerateWithoutResults(t *testing.T) {
	dir := t.TempDir()
	err := generate(&config{dir: dir, doc: filepath.Join(dir, "B.md")})
	if !errors.Is(err, errNoResults) {
		t.Errorf("generate(empty dir) = %v, want errNoResults", err)
	}
}

func TestFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "run or generate"},
		{[]string{"measure"}, "run or generate"},
		{[]string{"run", "--runs", "0"}, "--runs"},
		{[]string{"run", "--duration", "0s"}, "--duration"},
		{[]string{"generate", "--dir", ""}, "--dir"},
		{[]string{"generate", "extra"}, "unexpected argument"},
	} {
		_, err := parseConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

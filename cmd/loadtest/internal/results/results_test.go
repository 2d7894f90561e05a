package results

import (
	"encoding/json"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		measured, limit         float64
		atMost, noiseIfNegative bool
		smoke                   []string
		want                    string
	}{
		{"within an upper bound", 0.2, 0.25, true, true, nil, Met},
		{"on the bound", 0.25, 0.25, true, true, nil, Met},
		{"over an upper bound", 0.3, 0.25, true, true, nil, NotMet},
		{"negative difference", -0.1, 0.25, true, true, nil, Noise},
		{"negative plain figure", -0.1, 0.25, true, false, nil, Met},
		{"within a lower bound", 0.7, 0.6, false, false, nil, Met},
		{"under a lower bound", 0.5, 0.6, false, false, nil, NotMet},
		{"short run", 0.2, 0.25, true, true, []string{"2 s"}, Smoke},
		{"short run, negative", -0.2, 0.25, true, true, []string{"2 s"}, Smoke},
	} {
		got := Check("t", tc.measured, tc.limit, "ms", tc.atMost, tc.noiseIfNegative, tc.smoke)
		if got.Verdict != tc.want {
			t.Errorf("%s: Check(%v, limit %v) verdict = %q, want %q", tc.name, tc.measured, tc.limit, got.Verdict, tc.want)
		}
	}
}

func TestRangeOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Range
	}{
		{nil, Range{}},
		{[]float64{3}, Range{3, 3, 3}},
		{[]float64{5, 1, 3}, Range{3, 1, 5}},
		{[]float64{4, 1, 3, 2}, Range{2.5, 1, 4}},
	} {
		if got := RangeOf(tc.in); got != tc.want {
			t.Errorf("RangeOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// run is one run's JSON with one figure and one target checked on it.
func run(t *testing.T, v float64, smoke ...string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"added_ms": v,
		"name":     "not a figure",
		"targets":  []Target{Check("added <= 1 ms", v, 1, "ms", true, true, smoke)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSummarizeVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs []json.RawMessage
		want string
		met  int
	}{
		{"every run meets", []json.RawMessage{run(t, 0.5), run(t, 0.9), run(t, 0.1)}, Met, 3},
		{"one run fails", []json.RawMessage{run(t, 0.5), run(t, 1.5), run(t, 0.1)}, NotMet, 2},
		{"one run negative", []json.RawMessage{run(t, 0.5), run(t, -0.2), run(t, 0.1)}, Noise, 2},
		{"failure beats noise", []json.RawMessage{run(t, 2), run(t, -0.2), run(t, 0.1)}, NotMet, 1},
		{"one short run", []json.RawMessage{run(t, 0.5), run(t, 0.5, "2 s"), run(t, 0.1)}, Smoke, 2},
		{"too few runs", []json.RawMessage{run(t, 0.5), run(t, 0.5)}, Smoke, 2},
	} {
		sum, err := Summarize(tc.runs)
		if err != nil {
			t.Fatalf("%s: Summarize = %v", tc.name, err)
		}
		if len(sum.Targets) != 1 {
			t.Fatalf("%s: %d targets, want 1", tc.name, len(sum.Targets))
		}
		if got := sum.Targets[0]; got.Verdict != tc.want || got.RunsMet != tc.met || got.Runs != len(tc.runs) {
			t.Errorf("%s: verdict %q, %d of %d runs met; want %q, %d of %d", tc.name, got.Verdict, got.RunsMet, got.Runs, tc.want, tc.met, len(tc.runs))
		}
		if _, ok := sum.Figures["added_ms"]; !ok {
			t.Errorf("%s: no added_ms figure in %v", tc.name, sum.Figures)
		}
		if _, ok := sum.Figures["name"]; ok {
			t.Errorf("%s: a string field became a figure", tc.name)
		}
	}
}

func TestSummarizeRefusesMixedRuns(t *testing.T) {
	other, _ := json.Marshal(map[string]any{"targets": []Target{Check("other", 1, 1, "", true, false, nil)}})
	if _, err := Summarize([]json.RawMessage{run(t, 0.5), other}); err == nil {
		t.Error("Summarize(runs checking different targets) = nil error, want one")
	}
}

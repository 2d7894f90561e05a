// Package results holds what cmd/loadtest writes and what the BENCHMARKS.md
// generator reads: the design targets checked in one run, and the summary
// of several runs of one scenario (median, range, and a verdict per target
// that holds only when every run meets it).
package results

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
)

// MinRuns is how many runs a verdict needs: with fewer, every target is
// "smoke".
const MinRuns = 3

// MinMeasured is the measured time per phase a verdict needs, in seconds.
const MinMeasured = 10

// Verdicts of a target, for one run or for several.
const (
	// Met: the figure is within the target (in every run).
	Met = "met"
	// NotMet: the figure is outside the target (in at least one run).
	NotMet = "not met"
	// Noise: the figure is a difference that came out negative, i.e. below
	// what the measurement can resolve; it is never counted as met.
	Noise = "noise"
	// Smoke: the run was too short, too few, or not under the target's
	// conditions; its figures say nothing about the target.
	Smoke = "smoke"
)

// Target is one design target beside the figure one run measured for it.
type Target struct {
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	// Limit is the target's bound: an upper one when AtMost, else a lower
	// one.
	Limit   float64 `json:"limit"`
	AtMost  bool    `json:"at_most"`
	Verdict string  `json:"verdict"`
	// Note says why the verdict is smoke or noise.
	Note string `json:"note,omitempty"`
}

// Met reports whether the verdict is Met.
func (t Target) Met() bool { return t.Verdict == Met }

// Check is a target with limit checked against measured. smoke lists why
// the run cannot judge the target (empty when it can); a measured figure
// below zero is noise when the figure is a difference (noiseIfNegative).
func Check(target string, measured, limit float64, unit string, atMost, noiseIfNegative bool, smoke []string) Target {
	t := Target{Target: target, Measured: measured, Unit: unit, Limit: limit, AtMost: atMost}
	within := measured >= limit
	if atMost {
		within = measured <= limit
	}
	switch {
	case len(smoke) > 0:
		t.Verdict, t.Note = Smoke, joinReasons(smoke)
	case noiseIfNegative && measured < 0:
		t.Verdict, t.Note = Noise, "a negative difference: below what this run can resolve"
	case within:
		t.Verdict = Met
	default:
		t.Verdict = NotMet
	}
	return t
}

func joinReasons(r []string) string {
	out := ""
	for i, s := range r {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

// Range is a figure over several runs.
type Range struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// RangeOf returns the median (the mean of the middle two for an even
// count), minimum and maximum of vs; zero when empty.
func RangeOf(vs []float64) Range {
	if len(vs) == 0 {
		return Range{}
	}
	s := slices.Clone(vs)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Range{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// TargetSummary is one target over several runs.
type TargetSummary struct {
	Target  string  `json:"target"`
	Unit    string  `json:"unit"`
	Limit   float64 `json:"limit"`
	AtMost  bool    `json:"at_most"`
	Range           // of the measured figure
	Runs    int     `json:"runs"`
	RunsMet int     `json:"runs_met"`
	Verdict string  `json:"verdict"`
	// Notes are the runs' notes, each once.
	Notes []string `json:"notes,omitempty"`
}

// Summary is a scenario over several runs.
type Summary struct {
	Runs int `json:"runs"`
	// Figures are the runs' numeric fields, by JSON key.
	Figures map[string]Range `json:"figures"`
	Targets []TargetSummary  `json:"targets"`
}

// Summarize aggregates runs, each the JSON object of one run with a
// "targets" array: the median and range of every numeric field, and per
// target a verdict that is Met only when every run met it and there were
// at least MinRuns runs.
func Summarize(runs []json.RawMessage) (Summary, error) {
	sum := Summary{Runs: len(runs), Figures: map[string]Range{}}
	figures := map[string][]float64{}
	var byTarget [][]Target
	for i, raw := range runs {
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			return sum, fmt.Errorf("run %d: %w", i+1, err)
		}
		for k, v := range fields {
			if f, ok := v.(float64); ok {
				figures[k] = append(figures[k], f)
			}
		}
		var t struct {
			Targets []Target `json:"targets"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return sum, fmt.Errorf("run %d: targets: %w", i+1, err)
		}
		if i > 0 && len(t.Targets) != len(byTarget) {
			return sum, fmt.Errorf("run %d checks %d targets, run 1 %d: runs of different scenarios or settings", i+1, len(t.Targets), len(byTarget))
		}
		if i == 0 {
			byTarget = make([][]Target, len(t.Targets))
		}
		for j, tc := range t.Targets {
			if i > 0 && tc.Target != byTarget[j][0].Target {
				return sum, fmt.Errorf("run %d: target %d is %q, in run 1 %q", i+1, j+1, tc.Target, byTarget[j][0].Target)
			}
			byTarget[j] = append(byTarget[j], tc)
		}
	}
	for k, vs := range figures {
		if len(vs) == len(runs) {
			sum.Figures[k] = RangeOf(vs)
		}
	}
	for _, ts := range byTarget {
		sum.Targets = append(sum.Targets, summarizeTarget(ts))
	}
	return sum, nil
}

func summarizeTarget(ts []Target) TargetSummary {
	first := ts[0]
	out := TargetSummary{Target: first.Target, Unit: first.Unit, Limit: first.Limit, AtMost: first.AtMost, Runs: len(ts)}
	vs := make([]float64, len(ts))
	counts := map[string]int{}
	for i, t := range ts {
		vs[i] = t.Measured
		counts[t.Verdict]++
		if t.Note != "" && !slices.Contains(out.Notes, t.Note) {
			out.Notes = append(out.Notes, t.Note)
		}
	}
	out.Range = RangeOf(vs)
	out.RunsMet = counts[Met]
	switch {
	case counts[Smoke] > 0:
		out.Verdict = Smoke
	case counts[NotMet] > 0:
		out.Verdict = NotMet
	case counts[Noise] > 0:
		out.Verdict = Noise
	case len(ts) < MinRuns:
		out.Verdict = Smoke
		out.Notes = append(out.Notes, fmt.Sprintf("%d run(s); a verdict needs %d", len(ts), MinRuns))
	default:
		out.Verdict = Met
	}
	return out
}

// Result is one scenario's JSON file: every run and their summary.
type Result struct {
	Scenario string `json:"scenario"`
	// Command is how the runs were made (program and arguments).
	Command []string          `json:"command,omitempty"`
	Runs    []json.RawMessage `json:"runs"`
	Summary Summary           `json:"summary"`
	// Lost is the sum of the runs' lost responses.
	Lost uint64 `json:"lost"`
}

// NewResult summarizes runs of scenario.
func NewResult(scenario string, command []string, runs []json.RawMessage) (*Result, error) {
	sum, err := Summarize(runs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", scenario, err)
	}
	r := &Result{Scenario: scenario, Command: command, Runs: runs, Summary: sum}
	for _, raw := range runs {
		var l struct {
			Lost uint64 `json:"lost"`
		}
		if err := json.Unmarshal(raw, &l); err == nil {
			r.Lost += l.Lost
		}
	}
	return r, nil
}

// Finite replaces NaN and infinities (which JSON cannot carry) with 0.
func Finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

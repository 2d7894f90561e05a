package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/obdorch/obdorch/cmd/internal/gcpercent"
	"github.com/obdorch/obdorch/cmd/loadtest/internal/results"
)

//go:embed benchmarks.md.tmpl
var docTemplate string

// plotFile is the relay latency plot, in the results directory.
const plotFile = "relay-latency.svg"

// docData is what the template sees.
type docData struct {
	Meta *meta
	// Dir is the results directory as the document links it.
	Dir, Plot                                           string
	RelayPaced, RelayUnpaced, ControlPlane, Intake, Mem *results.Result
	// Failover and RelayRate are nil in results measured before their
	// steps existed.
	Failover, RelayRate, RelayGC, MemGC *results.Result
	// Summary rows: every target of every step, in step order.
	Summary []summaryRow
	// Commands of every step, in order.
	Commands []string
}

type summaryRow struct {
	Step string
	results.TargetSummary
}

// stepTitles name the steps in the summary.
var stepTitles = map[string]string{
	stepRelayPaced:   "relay, 200 sessions at 50 ms",
	stepRelayUnpaced: "relay, 200 sessions unpaced",
	stepControlPlane: "control plane",
	stepIntake:       "intake",
	stepMemory:       "memory",
	stepFailover:     "failover",
}

// generate writes cfg.doc and the plot from the results in cfg.dir.
func generate(cfg *config) error {
	var m meta
	if err := readJSON(filepath.Join(cfg.dir, metaFile), &m); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errNoResults
		}
		return err
	}
	d := docData{Meta: &m, Dir: filepath.ToSlash(cfg.dir), Plot: filepath.ToSlash(filepath.Join(cfg.dir, plotFile))}
	byStep := map[string]**results.Result{
		stepRelayPaced: &d.RelayPaced, stepRelayUnpaced: &d.RelayUnpaced, stepControlPlane: &d.ControlPlane,
		stepIntake: &d.Intake, stepMemory: &d.Mem,
	}
	for _, st := range m.Steps {
		var res results.Result
		if err := readJSON(filepath.Join(cfg.dir, st.File), &res); err != nil {
			return err
		}
		if p, ok := byStep[st.Name]; ok {
			*p = &res
		}
		switch st.Name {
		case stepFailover:
			d.Failover = &res
		case stepRelayRate, stepRelayGC, stepMemoryGC:
			// Informative: the targets are for the service's settings (and
			// the relay's for 50 ms pacing and the unpaced load), so these
			// steps have no summary rows.
			switch st.Name {
			case stepRelayRate:
				d.RelayRate = &res
			case stepRelayGC:
				d.RelayGC = &res
			default:
				d.MemGC = &res
			}
			d.Commands = append(d.Commands, st.Commands...)
			continue
		}
		for _, t := range res.Summary.Targets {
			d.Summary = append(d.Summary, summaryRow{Step: stepTitles[st.Name], TargetSummary: t})
		}
		d.Commands = append(d.Commands, st.Commands...)
	}
	for name, p := range byStep {
		if *p == nil {
			return fmt.Errorf("%s: no results for step %s", cfg.dir, name)
		}
	}

	svg, err := relayPlot(d.RelayPaced)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.dir, plotFile), svg, 0o644); err != nil {
		return err
	}
	t, err := template.New("doc").Funcs(template.FuncMap{
		"fig":      fig,
		"has":      func(r *results.Result, key string) bool { _, ok := r.Summary.Figures[key]; return ok },
		"med":      med,
		"num":      num,
		"short":    func(s string) string { return s[:min(len(s), 12)] },
		"verdict":  verdictCell,
		"join":     strings.Join,
		"loads":    loads,
		"minutes":  minutes,
		"notes":    func(n []string) string { return strings.Join(n, "; ") },
		"rangeOf":  rangeCell,
		"sessions": func(r *results.Result) string { return num(med(r, "sessions")) },
		"count":    func(r *results.Result, key string) string { return fmt.Sprintf("%.0f", med(r, key)) },
		"gcTarget": func(r *results.Result) string { return gcpercent.Value(med(r, "gc_percent")).String() },
		// heapGrowth is how many times its live size the heap grows to
		// between collections at the run's GC target.
		"heapGrowth": func(r *results.Result) string { return strconv.FormatFloat(1+med(r, "gc_percent")/100, 'g', 3, 64) },
	}).Parse(docTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return err
	}
	return os.WriteFile(cfg.doc, buf.Bytes(), 0o644)
}

// med returns the median of a figure.
func med(r *results.Result, key string) float64 { return r.Summary.Figures[key].Median }

// fig formats a figure as "median (min–max)", or the median alone when
// every run gave the same.
func fig(r *results.Result, key string) string {
	g, ok := r.Summary.Figures[key]
	if !ok {
		return "—"
	}
	if num(g.Min) == num(g.Max) {
		return num(g.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(g.Median), num(g.Min), num(g.Max))
}

func rangeCell(t results.TargetSummary) string {
	if num(t.Min) == num(t.Max) {
		return num(t.Min)
	}
	return num(t.Min) + " – " + num(t.Max)
}

func verdictCell(v string) string {
	if v == results.Met {
		return "met"
	}
	return "**" + v + "**"
}

// loads lists the steps' load averages.
func loads(m *meta) string {
	var parts []string
	for _, s := range m.Steps {
		parts = append(parts, fmt.Sprintf("%s %.1f → %.1f", s.Name, s.LoadBefore, s.LoadAfter))
	}
	return strings.Join(parts, ", ")
}

func minutes(s float64) string {
	return fmt.Sprintf("%d min %02d s", int(s)/60, int(s)%60)
}

// num formats a figure with three significant digits or more, as
// cmd/loadtest prints them.
func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// relayCurves is the part of a relay run the plot needs.
type relayCurves struct {
	Curves struct {
		Percentiles  []float64 `json:"percentiles"`
		Direct       []float64 `json:"direct_ms"`
		Orchestrated []float64 `json:"orchestrated_ms"`
		BareHop      []float64 `json:"bare_hop_ms"`
	} `json:"curves"`
}

func relayPlot(r *results.Result) ([]byte, error) {
	var series []plotSeries
	for i, raw := range r.Runs {
		var rc relayCurves
		if err := json.Unmarshal(raw, &rc); err != nil {
			return nil, fmt.Errorf("relay run %d: %w", i+1, err)
		}
		c := rc.Curves
		if len(c.Percentiles) == 0 {
			return nil, fmt.Errorf("relay run %d has no latency curves (results of an older cmd/loadtest)", i+1)
		}
		for j, p := range []struct {
			name string
			ms   []float64
		}{{"direct", c.Direct}, {"orchestrated", c.Orchestrated}, {"bare hop", c.BareHop}} {
			series = append(series, plotSeries{name: p.name, color: j, run: i, percentiles: c.Percentiles, ms: p.ms})
		}
	}
	title := fmt.Sprintf("Relay round-trip latency, %s sessions x one request per 50 ms (%d runs)", num(med(r, "sessions")), len(r.Runs))
	return percentilePlot(title, series), nil
}

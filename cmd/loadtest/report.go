package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/obdorch/obdorch/cmd/loadtest/internal/results"
)

// report is one run of one scenario.
type report interface {
	name() string
	lostCount() uint64
	// check fills the run's targets from DESIGN.md's "What fast means
	// here", for the configuration that ran.
	check(cfg *config)
	printTable(w io.Writer)
}

// targetCheck is one design target beside the figure measured for it.
type targetCheck = results.Target

// atMost and atLeast check a figure against a bound; smoke lists why the
// run cannot judge it. A difference (added latency, added CPU) is noise
// when negative: pass noiseIfNegative for those.
func atMost(target string, measured, limit float64, unit string, noiseIfNegative bool, smoke []string) targetCheck {
	return results.Check(target, results.Finite(measured), limit, unit, true, noiseIfNegative, smoke)
}

func atLeast(target string, measured, limit float64, unit string, smoke []string) targetCheck {
	return results.Check(target, results.Finite(measured), limit, unit, false, false, smoke)
}

// shortRun returns why a run that measured for d per phase cannot judge a
// target, or nil.
func shortRun(d time.Duration) []string {
	if d < results.MinMeasured*time.Second {
		return []string{fmt.Sprintf("%s s measured per phase; a verdict needs %d s", num(d.Seconds()), results.MinMeasured)}
	}
	return nil
}

// unless appends reason to reasons when cond is false.
func unless(reasons []string, cond bool, reason string) []string {
	if cond {
		return reasons
	}
	return append(slices.Clone(reasons), reason)
}

// printTargets writes the target checks of one run under its table.
func printTargets(w io.Writer, checks []targetCheck) {
	if len(checks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design target\tmeasured\tverdict\t")
	for _, c := range checks {
		note := ""
		if c.Note != "" {
			note = "(" + c.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\n", c.Target, num(c.Measured), c.Unit, c.Verdict, note)
	}
	tw.Flush()
}

// printSummary writes the targets over several runs: median, range and
// verdict.
func printSummary(w io.Writer, scenario string, sum results.Summary) {
	fmt.Fprintf(w, "%s: %d run(s); a target is met only when every run meets it\n\n", scenario, sum.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design target\tmedian\trange\truns met\tverdict\t")
	for _, t := range sum.Targets {
		note := ""
		if len(t.Notes) > 0 {
			note = "(" + strings.Join(t.Notes, "; ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s–%s\t%d/%d\t%s\t%s\n", t.Target, num(t.Median), t.Unit, num(t.Min), num(t.Max), t.RunsMet, t.Runs, t.Verdict, note)
	}
	tw.Flush()
}

// num formats a figure with three significant digits or more.
func num(v float64) string {
	switch a := abs(v); {
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

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

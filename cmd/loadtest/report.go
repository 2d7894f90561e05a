package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// report is one scenario's result.
type report interface {
	name() string
	lostCount() uint64
	// check fills the result's targets from DESIGN.md's "What fast means
	// here", for the configuration that ran.
	check(cfg *config)
	printTable(w io.Writer)
}

// targetCheck is one design target beside the figure measured for it.
type targetCheck struct {
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
	// Note says when the run differs from the conditions the target is
	// set for.
	Note string `json:"note,omitempty"`
}

func atMost(target string, measured, limit float64, unit, note string) targetCheck {
	return targetCheck{Target: target, Measured: measured, Unit: unit, Met: measured <= limit, Note: note}
}

func atLeast(target string, measured, limit float64, unit, note string) targetCheck {
	return targetCheck{Target: target, Measured: measured, Unit: unit, Met: measured >= limit, Note: note}
}

// printTargets writes the target checks under a table.
func printTargets(w io.Writer, checks []targetCheck) {
	if len(checks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "design target\tmeasured\tmet\t")
	for _, c := range checks {
		met := "yes"
		if !c.Met {
			met = "NO"
		}
		note := ""
		if c.Note != "" {
			note = "(" + c.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\n", c.Target, num(c.Measured), c.Unit, met, note)
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

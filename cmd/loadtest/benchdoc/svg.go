package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// The plot is written by hand with the standard library: one chart of a
// few polylines on log axes does not justify a plotting library and its
// font and image dependencies.

// plotSeries is one latency curve: ms[i] at percentiles[i].
type plotSeries struct {
	name        string
	color       int // index into plotColors: one per path
	run         int // index into plotDashes: one per run
	percentiles []float64
	ms          []float64
}

var (
	plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	plotDashes = []string{"", "7 4", "2 3", "10 3 2 3"}
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH                         = 820, 460
	marginL, marginR, marginT, marginB   = 70, 190, 44, 56
	innerW, innerH                       = plotW - marginL - marginR, plotH - marginT - marginB
	maxNines                             = 4 // the x axis ends at 99.99
	fontSans                             = `font-family="sans-serif"`
	axisColor, gridColor, textColor      = "#444", "#ddd", "#222"
	legendLineLen, legendRowH, legendGap = 28, 18, 10
)

// nines maps a percentile p to the x axis: log10(1/(1-p/100)), so 90, 99
// and 99.9 are equally spaced as in an HDR histogram plot.
func nines(p float64) float64 {
	if p >= 100 {
		return maxNines
	}
	return math.Min(maxNines, -math.Log10(1-p/100))
}

// percentilePlot draws latency (log scale) against percentile.
func percentilePlot(title string, series []plotSeries) []byte {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, v := range s.ms {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.01, 1
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	x := func(p float64) float64 { return marginL + nines(p)/maxNines*innerW }
	y := func(ms float64) float64 {
		return marginT + innerH - (math.Log10(ms)-ylo)/(yhi-ylo)*innerH
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n", plotW, plotH, plotW, plotH, fontSans)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" fill="%s">%s</text>`+"\n", marginL, textColor, html.EscapeString(title))

	// Horizontal grid: every 1, 2 and 5 of each decade, labels on them.
	for e := ylo; e <= yhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if math.Log10(v) > yhi+1e-9 {
				break
			}
			yy := y(v)
			width := "0.5"
			if m == 1 {
				width = "1"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="%s"/>`+"\n", marginL, yy, marginL+innerW, yy, gridColor, width)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", marginL-6, yy+4, textColor, msLabel(v))
		}
	}
	// Vertical grid at 0, 50, 90, 99, 99.9, 99.99.
	for _, p := range []float64{0, 50, 90, 99, 99.9, 99.99} {
		xx := x(p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", xx, marginT, xx, marginT+innerH, gridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", xx, marginT+innerH+18, textColor, pLabel(p))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", marginL, marginT, innerW, innerH, axisColor)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">percentile</text>`+"\n", marginL+innerW/2, plotH-12, textColor)
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="%s">round trip, ms (log scale)</text>`+"\n", marginT+innerH/2, textColor)

	// Curves.
	for _, s := range series {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="`, plotColors[s.color%len(plotColors)], dash(s.run))
		for i, p := range s.percentiles {
			if i >= len(s.ms) || s.ms[i] <= 0 {
				continue
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", x(p), y(s.ms[i]))
		}
		b.WriteString(`"><title>` + html.EscapeString(fmt.Sprintf("%s, run %d", s.name, s.run+1)) + "</title></polyline>\n")
	}

	// Legend: one colour per path, one dash pattern per run.
	lx, ly := marginL+innerW+legendGap+6, marginT+8
	var paths []plotSeries
	runs := 0
	for _, s := range series {
		if s.run == 0 {
			paths = append(paths, s)
		}
		runs = max(runs, s.run+1)
	}
	for _, s := range paths {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"/>`+"\n", lx, ly, lx+legendLineLen, ly, plotColors[s.color%len(plotColors)])
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", lx+legendLineLen+6, ly+4, textColor, html.EscapeString(s.name))
		ly += legendRowH
	}
	ly += legendGap
	for r := range runs {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.6"%s/>`+"\n", lx, ly, lx+legendLineLen, ly, axisColor, dash(r))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">run %d</text>`+"\n", lx+legendLineLen+6, ly+4, textColor, r+1)
		ly += legendRowH
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func dash(run int) string {
	d := plotDashes[run%len(plotDashes)]
	if d == "" {
		return ""
	}
	return ` stroke-dasharray="` + d + `"`
}

func msLabel(v float64) string {
	switch {
	case v >= 1:
		return fmt.Sprintf("%g", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func pLabel(p float64) string {
	return fmt.Sprintf("%g%%", p)
}

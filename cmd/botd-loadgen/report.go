package main

import (
	"context"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// reportRow is one offered rate of a capacity report.
type reportRow struct {
	Offered, Achieved float64
	P50, P99          time.Duration
	Errors            int
	RSS               float64 // bytes, after the step; 0 if unknown
	Calls             float64 // botd_calls after the step
}

func rowOf(r *result) reportRow {
	p := percentiles(r.latencies)
	row := reportRow{Offered: r.offered, Achieved: r.achieved(), P50: p.p50, P99: p.p99, Errors: r.errorCount()}
	if r.after != nil {
		row.RSS, row.Calls = r.after[metricRSS], r.after[metricCalls]
	}
	return row
}

// runReport runs notify mode at each of -rates, one after the other.
func runReport(ctx context.Context, o options, tmpl *template, out io.Writer) ([]reportRow, error) {
	var rows []reportRow
	for _, rate := range o.rates {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		o2 := o
		o2.rate = rate
		fmt.Fprintf(out, "== offered %.0f req/s for %s\n", rate, o.duration)
		r := runNotify(ctx, o2, tmpl)
		r.print(out)
		rows = append(rows, rowOf(r))
	}
	return rows, nil
}

func writeReport(dir string, o options, rows []reportRow) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	writeMarkdown(&md, o, rows)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	var svg strings.Builder
	writeSVG(&svg, rows)
	return os.WriteFile(filepath.Join(dir, "report.svg"), []byte(svg.String()), 0o644)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func writeMarkdown(w io.Writer, o options, rows []reportRow) {
	fmt.Fprintf(w, "# botd capacity report\n\n")
	fmt.Fprintf(w, "Open-loop notifications to %s, %s per rate, concurrency %d, %d call ids. Latency from the scheduled send time.\n\n", o.url, o.duration, o.concurrency, o.calls)
	fmt.Fprintf(w, "| offered (req/s) | achieved (req/s) | p50 (ms) | p99 (ms) | errors | RSS (MiB) | calls |\n")
	fmt.Fprintf(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		rss := "n/a"
		if r.RSS > 0 {
			rss = fmt.Sprintf("%.1f", r.RSS/(1<<20))
		}
		fmt.Fprintf(w, "| %.0f | %.0f | %s | %s | %d | %s | %.0f |\n", r.Offered, r.Achieved, ms(r.P50), ms(r.P99), r.Errors, rss, r.Calls)
	}
	fmt.Fprintf(w, "\n![throughput and p99 against offered load](report.svg)\n")
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// writeSVG plots achieved throughput (left axis) and p99 latency (right
// axis) against offered load.
func writeSVG(w io.Writer, rows []reportRow) {
	const width, height, left, right, top, bottom = 720.0, 420.0, 80.0, 80.0, 40.0, 60.0
	pw, ph := width-left-right, height-top-bottom
	var xMax, yMax, lMax float64
	for _, r := range rows {
		xMax = math.Max(xMax, r.Offered)
		yMax = math.Max(yMax, math.Max(r.Achieved, r.Offered))
		lMax = math.Max(lMax, float64(r.P99)/1e6)
	}
	xMax, yMax, lMax = niceMax(xMax), niceMax(yMax), niceMax(lMax)
	x := func(v float64) float64 { return left + v/xMax*pw }
	y := func(v float64) float64 { return top + ph - v/yMax*ph }
	yl := func(v float64) float64 { return top + ph - v/lMax*ph }

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%.0f" y="20" text-anchor="middle" font-size="14">%s</text>`+"\n", width/2, html.EscapeString("botd: achieved throughput and p99 against offered load"))
	// Axes and grid.
	fmt.Fprintf(w, `<g stroke="#ccc">`+"\n")
	for i := 0; i <= 5; i++ {
		f := float64(i) / 5
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", left, top+ph-f*ph, left+pw, top+ph-f*ph)
	}
	fmt.Fprintf(w, "</g>\n")
	fmt.Fprintf(w, `<g stroke="black"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`+"\n",
		left, top+ph, left+pw, top+ph, left, top, left, top+ph, left+pw, top, left+pw, top+ph)
	for i := 0; i <= 5; i++ {
		f := float64(i) / 5
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", left+f*pw, top+ph+16, f*xMax)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#1f77b4">%.0f</text>`+"\n", left-6, top+ph-f*ph+4, f*yMax)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="start" fill="#d62728">%.3g</text>`+"\n", left+pw+6, top+ph-f*ph+4, f*lMax)
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">offered load (req/s)</text>`+"\n", left+pw/2, height-20)
	fmt.Fprintf(w, `<text x="20" y="%.1f" text-anchor="middle" fill="#1f77b4" transform="rotate(-90 20 %.1f)">achieved (req/s)</text>`+"\n", top+ph/2, top+ph/2)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#d62728" transform="rotate(90 %.1f %.1f)">p99 (ms)</text>`+"\n", width-20, top+ph/2, width-20, top+ph/2)
	// The ideal line (achieved = offered), then the two series.
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 4"/>`+"\n", x(0), y(0), x(math.Min(xMax, yMax)), y(math.Min(xMax, yMax)))
	series := func(color string, py func(reportRow) float64) {
		var pts []string
		for _, r := range rows {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.Offered), py(r)))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], color)
		}
	}
	series("#1f77b4", func(r reportRow) float64 { return y(r.Achieved) })
	series("#d62728", func(r reportRow) float64 { return yl(float64(r.P99) / 1e6) })
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="#1f77b4">— achieved</text><text x="%.1f" y="%.1f" fill="#d62728">— p99</text>`+"\n", left+10, top+14, left+110, top+14)
	fmt.Fprintf(w, "</svg>\n")
}

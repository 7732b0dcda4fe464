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

// memoryRow is one step of the report's memory part: botd's memory with
// Calls held.
type memoryRow struct {
	Target          int     // the calls posted to so far
	Calls           float64 // botd_calls after the step
	RSS, Heap, Live float64 // bytes after the step; 0 if unknown
	Errors          int
}

// runMemory posts, for each of -report-calls, one notification at -rate to
// each call id not yet posted to, and reads botd's memory after each step.
func runMemory(ctx context.Context, o options, tmpl *template, out io.Writer) ([]memoryRow, error) {
	var rows []memoryRow
	prev := 0
	for _, n := range o.reportCalls {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		o2 := o
		o2.firstCall, o2.calls, o2.requests = prev, n-prev, n-prev
		o2.duration = time.Duration(float64(n-prev+1) / o.rate * float64(time.Second))
		fmt.Fprintf(out, "== calls %d to %d, one notification each at %.0f req/s\n", prev, n-1, o.rate)
		r := runNotify(ctx, o2, tmpl)
		r.print(out)
		row := memoryRow{Target: n, Errors: r.errorCount()}
		if r.after != nil {
			row.Calls, row.RSS, row.Heap, row.Live = r.after[metricCalls], r.after[metricRSS], r.after[metricHeap], r.after[metricLive]
		}
		rows = append(rows, row)
		prev = n
	}
	return rows, nil
}

func writeReport(dir string, o options, rows []reportRow, mem []memoryRow) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	writeMarkdown(&md, o, rows)
	if len(mem) > 0 {
		writeMemoryMarkdown(&md, o, mem)
	}
	files := map[string]string{"report.md": md.String()}
	var svg strings.Builder
	writeSVG(&svg, rows)
	files["report.svg"] = svg.String()
	if len(mem) > 0 {
		var m strings.Builder
		writeMemorySVG(&m, mem)
		files["memory.svg"] = m.String()
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

// mibOr is v bytes in MiB, or n/a when botd's metrics were not read.
func mibOr(v float64) string {
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v/(1<<20))
}

func writeMarkdown(w io.Writer, o options, rows []reportRow) {
	fmt.Fprintf(w, "# botd capacity report\n\n")
	fmt.Fprintf(w, "Open-loop notifications to %s, %s per rate, concurrency %d, %d call ids. Latency from the scheduled send time.\n\n", o.url, o.duration, o.concurrency, o.calls)
	fmt.Fprintf(w, "| offered (req/s) | achieved (req/s) | p50 (ms) | p99 (ms) | errors | RSS (MiB) | calls |\n")
	fmt.Fprintf(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %.0f | %.0f | %s | %s | %d | %s | %.0f |\n", r.Offered, r.Achieved, ms(r.P50), ms(r.P99), r.Errors, mibOr(r.RSS), r.Calls)
	}
	fmt.Fprintf(w, "\n![throughput and p99 against offered load](report.svg)\n")
}

// writeMemoryMarkdown is the memory part: botd's memory at each step, and
// the heap each call added since the first step.
func writeMemoryMarkdown(w io.Writer, o options, mem []memoryRow) {
	fmt.Fprintf(w, "\n## Memory against calls held\n\n")
	fmt.Fprintf(w, "One notification to each new call id at %.0f req/s, then botd's /metrics. The live heap is what the last collection found live (`go_gc_heap_live_bytes`); the heap in use adds the garbage not yet collected. Per call: the live heap added since the first step, over the calls added.\n\n", o.rate)
	fmt.Fprintf(w, "| calls posted to | calls held (botd_calls) | RSS (MiB) | heap in use (MiB) | live heap (MiB) | live heap per call (bytes) | errors |\n")
	fmt.Fprintf(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, r := range mem {
		per := "n/a"
		if i > 0 && r.Live > 0 && mem[0].Live > 0 && r.Calls > mem[0].Calls {
			per = fmt.Sprintf("%.0f", (r.Live-mem[0].Live)/(r.Calls-mem[0].Calls))
		}
		fmt.Fprintf(w, "| %d | %.0f | %s | %s | %s | %s | %d |\n", r.Target, r.Calls, mibOr(r.RSS), mibOr(r.Heap), mibOr(r.Live), per, r.Errors)
	}
	fmt.Fprintf(w, "\n![memory against calls held](memory.svg)\n")
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
	c := chart{
		title: "botd: achieved throughput and p99 against offered load", xLabel: "offered load (req/s)",
		leftLabel: "achieved (req/s)", rightLabel: "p99 (ms)", ideal: true,
	}
	achieved := series{name: "achieved", color: "#1f77b4"}
	p99 := series{name: "p99", color: "#d62728", right: true}
	for _, r := range rows {
		c.xs = append(c.xs, r.Offered)
		achieved.ys = append(achieved.ys, r.Achieved)
		p99.ys = append(p99.ys, float64(r.P99)/1e6)
	}
	c.series = []series{achieved, p99}
	c.write(w)
}

// writeMemorySVG plots botd's RSS and heap in use against calls held.
func writeMemorySVG(w io.Writer, mem []memoryRow) {
	c := chart{title: "botd: memory against calls held", xLabel: "calls held (botd_calls)", leftLabel: "MiB"}
	rss := series{name: "RSS", color: "#1f77b4"}
	heap := series{name: "heap in use", color: "#2ca02c"}
	live := series{name: "live heap", color: "#ff7f0e"}
	for _, r := range mem {
		c.xs = append(c.xs, r.Calls)
		rss.ys = append(rss.ys, r.RSS/(1<<20))
		heap.ys = append(heap.ys, r.Heap/(1<<20))
		live.ys = append(live.ys, r.Live/(1<<20))
	}
	c.series = []series{rss, heap, live}
	c.write(w)
}

// series is one line of a chart, on its left axis or its right.
type series struct {
	name, color string
	right       bool
	ys          []float64
}

// chart is a line chart with a left axis and, when a series is on it, a
// right one; ideal draws the line y = x on the left axis.
type chart struct {
	title, xLabel, leftLabel, rightLabel string
	xs                                   []float64
	series                               []series
	ideal                                bool
}

func (c chart) write(w io.Writer) {
	const width, height, left, right, top, bottom = 720.0, 420.0, 80.0, 80.0, 40.0, 60.0
	pw, ph := width-left-right, height-top-bottom
	var xMax, lMax, rMax float64
	for _, v := range c.xs {
		xMax = math.Max(xMax, v)
	}
	if c.ideal {
		lMax = xMax
	}
	for _, s := range c.series {
		for _, v := range s.ys {
			if s.right {
				rMax = math.Max(rMax, v)
			} else {
				lMax = math.Max(lMax, v)
			}
		}
	}
	xMax, lMax, rMax = niceMax(xMax), niceMax(lMax), niceMax(rMax)
	x := func(v float64) float64 { return left + v/xMax*pw }
	y := func(v, max float64) float64 { return top + ph - v/max*ph }

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%.0f" y="20" text-anchor="middle" font-size="14">%s</text>`+"\n", width/2, html.EscapeString(c.title))
	// Axes and grid.
	fmt.Fprintf(w, `<g stroke="#ccc">`+"\n")
	for i := 0; i <= 5; i++ {
		f := float64(i) / 5
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", left, top+ph-f*ph, left+pw, top+ph-f*ph)
	}
	fmt.Fprintf(w, "</g>\n")
	fmt.Fprintf(w, `<g stroke="black"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`+"\n",
		left, top+ph, left+pw, top+ph, left, top, left, top+ph, left+pw, top, left+pw, top+ph)
	// An axis takes its series' colour when it has one series alone.
	leftColor, rightColor := "black", "black"
	var onLeft, onRight []string
	for _, s := range c.series {
		if s.right {
			onRight = append(onRight, s.color)
		} else {
			onLeft = append(onLeft, s.color)
		}
	}
	if len(onLeft) == 1 {
		leftColor = onLeft[0]
	}
	if len(onRight) == 1 {
		rightColor = onRight[0]
	}
	for i := 0; i <= 5; i++ {
		f := float64(i) / 5
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", left+f*pw, top+ph+16, f*xMax)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s">%.4g</text>`+"\n", left-6, top+ph-f*ph+4, leftColor, f*lMax)
		if c.rightLabel != "" {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="start" fill="%s">%.3g</text>`+"\n", left+pw+6, top+ph-f*ph+4, rightColor, f*rMax)
		}
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+pw/2, height-20, html.EscapeString(c.xLabel))
	fmt.Fprintf(w, `<text x="20" y="%.1f" text-anchor="middle" fill="%s" transform="rotate(-90 20 %.1f)">%s</text>`+"\n", top+ph/2, leftColor, top+ph/2, html.EscapeString(c.leftLabel))
	if c.rightLabel != "" {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" transform="rotate(90 %.1f %.1f)">%s</text>`+"\n", width-20, top+ph/2, rightColor, width-20, top+ph/2, html.EscapeString(c.rightLabel))
	}
	if c.ideal {
		m := math.Min(xMax, lMax)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 4"/>`+"\n", x(0), y(0, lMax), x(m), y(m, lMax))
	}
	for k, s := range c.series {
		max := lMax
		if s.right {
			max = rMax
		}
		var pts []string
		for i, v := range s.ys {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(c.xs[i]), y(v, max)))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="%s">— %s</text>`+"\n", left+10+float64(k)*110, top+14, s.color, html.EscapeString(s.name))
	}
	fmt.Fprintf(w, "</svg>\n")
}

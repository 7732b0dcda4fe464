package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsSnapshot is a Prometheus text exposition: each sample's value by
// metric name, summed over its label sets.
type metricsSnapshot map[string]float64

// parseMetrics reads the Prometheus text format with Prometheus's own
// parser (expfmt); values of one name with different labels are added up
// (a histogram or summary adds its sample count).
func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := metricsSnapshot{}
	for name, f := range fams {
		for _, mt := range f.GetMetric() {
			var v float64
			switch {
			case mt.Counter != nil:
				v = mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				v = mt.GetGauge().GetValue()
			case mt.Untyped != nil:
				v = mt.GetUntyped().GetValue()
			case mt.Histogram != nil:
				v = float64(mt.GetHistogram().GetSampleCount())
			case mt.Summary != nil:
				v = float64(mt.GetSummary().GetSampleCount())
			}
			if !math.IsNaN(v) {
				m[name] += v
			}
		}
	}
	return m, nil
}

// scrapes are a run's metrics, read before and after it, with the first
// error reading them.
type scrapes struct {
	before, after metricsSnapshot
	metricsErr    error
}

func (s *scrapes) scrapeBefore(ctx context.Context, url string) {
	s.before, s.metricsErr = scrape(ctx, url)
}

// scrapeAfter reads the metrics at the run's end, keeping the first error.
func (s *scrapes) scrapeAfter(ctx context.Context, url string) {
	var err error
	if s.after, err = scrape(ctx, url); s.metricsErr == nil {
		s.metricsErr = err
	}
}

// scrape reads url's metrics; an empty url gives no snapshot and no error.
func scrape(ctx context.Context, url string) (metricsSnapshot, error) {
	if url == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("metrics: " + url + ": " + resp.Status)
	}
	return parseMetrics(resp.Body)
}

const (
	metricRSS   = "process_resident_memory_bytes"
	metricHeap  = "go_memstats_heap_inuse_bytes"
	metricLive  = "go_gc_heap_live_bytes" // the heap the last collection found live
	metricCalls = "botd_calls"
	metricGraph = "botd_graph_requests_total"
)

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }

func printMemory(w io.Writer, before, after metricsSnapshot, err error) {
	if err != nil {
		fmt.Fprintf(w, "metrics:   unavailable: %v\n", err)
		return
	}
	if before == nil || after == nil {
		return
	}
	fmt.Fprintf(w, "botd RSS:  %s -> %s\n", mib(before[metricRSS]), mib(after[metricRSS]))
	fmt.Fprintf(w, "botd heap: %s -> %s (in use)\n", mib(before[metricHeap]), mib(after[metricHeap]))
	if _, ok := after[metricLive]; ok {
		fmt.Fprintf(w, "botd live heap: %s -> %s (at the last collection)\n", mib(before[metricLive]), mib(after[metricLive]))
	}
	fmt.Fprintf(w, "botd_calls: %.0f -> %.0f\n", before[metricCalls], after[metricCalls])
}

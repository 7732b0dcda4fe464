package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metricsSnapshot is a Prometheus text exposition: each sample's value by
// metric name, summed over its label sets.
type metricsSnapshot map[string]float64

// parseMetrics reads the Prometheus text format. Comments and blank lines are
// skipped; a sample is "name{labels} value [timestamp]". Values of one name
// with different labels are added up.
func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	m := metricsSnapshot{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics: unbalanced braces in %q", line)
			}
			name, rest = line[:i], line[j+1:]
		} else if i := strings.IndexAny(line, " \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		} else {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		if math.IsNaN(v) {
			continue
		}
		m[strings.TrimSpace(name)] += v
	}
	return m, sc.Err()
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
	fmt.Fprintf(w, "botd_calls: %.0f -> %.0f\n", before[metricCalls], after[metricCalls])
}

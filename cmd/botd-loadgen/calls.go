package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// callsResult is what -mode calls measured.
type callsResult struct {
	started, completed int
	elapsed            time.Duration
	toEstablished      []time.Duration // sorted
	errors             map[string]int
	scrapes
}

// runCalls keeps -concurrency call lives going for -duration. Each life:
// POST /v1/calls, poll GET /v1/calls/{id} until established, optionally
// invite a PSTN participant and play a prompt, then DELETE.
func runCalls(ctx context.Context, o options) (*callsResult, error) {
	res := &callsResult{errors: map[string]int{}}
	res.scrapeBefore(ctx, o.metrics)
	client := newClient(o.concurrency*2, o.timeout)
	defer client.CloseIdleConnections()
	ctx2, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for ctx2.Err() == nil {
				est, stage, err := callLife(ctx, client, o)
				mu.Lock()
				res.started++
				if err != nil {
					res.errors[stage+": "+err.Error()]++
				} else {
					res.completed++
					res.toEstablished = append(res.toEstablished, est)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	sort.Slice(res.toEstablished, func(i, j int) bool { return res.toEstablished[i] < res.toEstablished[j] })
	res.scrapeAfter(ctx, o.metrics)
	return res, nil
}

type callView struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func adminDo(ctx context.Context, c *http.Client, method, url string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s", errClass(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want && !(want == http.StatusOK && resp.StatusCode/100 == 2) {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("bad JSON: %v", err)
		}
	}
	return nil
}

// callLife runs one call and returns its time to established, or the stage
// that failed.
func callLife(ctx context.Context, c *http.Client, o options) (time.Duration, string, error) {
	base := o.admin + "/v1/calls"
	t0 := time.Now()
	var cv callView
	if err := adminDo(ctx, c, http.MethodPost, base, defaultCreateBody, http.StatusCreated, &cv); err != nil {
		return 0, "create", err
	}
	if cv.ID == "" {
		return 0, "create", fmt.Errorf("no id in the reply")
	}
	url := base + "/" + cv.ID
	deadline := t0.Add(o.estTimeout)
	for cv.State != "established" {
		if cv.State == "terminated" {
			return 0, "establish", fmt.Errorf("call terminated")
		}
		if time.Now().After(deadline) {
			_ = adminDo(ctx, c, http.MethodDelete, url, nil, http.StatusOK, nil)
			return 0, "establish", fmt.Errorf("not established within %s", o.estTimeout)
		}
		select {
		case <-time.After(o.poll):
		case <-ctx.Done():
			return 0, "establish", ctx.Err()
		}
		if err := adminDo(ctx, c, http.MethodGet, url, nil, http.StatusOK, &cv); err != nil {
			return 0, "get", err
		}
	}
	est := time.Since(t0)
	if o.invite {
		if err := adminDo(ctx, c, http.MethodPost, url+"/participants/invite", defaultInviteBody, http.StatusOK, nil); err != nil {
			return est, "invite", err
		}
	}
	if o.prompt {
		if err := adminDo(ctx, c, http.MethodPost, url+"/playPrompt", defaultPromptBody, http.StatusOK, nil); err != nil {
			return est, "playPrompt", err
		}
	}
	if err := adminDo(ctx, c, http.MethodDelete, url, nil, http.StatusOK, nil); err != nil {
		return est, "delete", err
	}
	return est, "", nil
}

func (r *callsResult) print(w io.Writer) {
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "calls:     %d started, %d completed in %s (%.1f calls/s)\n", r.started, r.completed, r.elapsed.Round(time.Millisecond), float64(r.completed)/secs)
	p := percentiles(r.toEstablished)
	fmt.Fprintf(w, "to established: p50=%s p90=%s p99=%s max=%s\n", fmtDur(p.p50), fmtDur(p.p90), fmtDur(p.p99), fmtDur(p.max))
	if r.metricsErr == nil && r.before != nil && r.after != nil {
		fmt.Fprintf(w, "graph:     %.1f requests/s (botd_graph_requests_total +%.0f)\n", (r.after[metricGraph]-r.before[metricGraph])/secs, r.after[metricGraph]-r.before[metricGraph])
	}
	n := 0
	for _, v := range r.errors {
		n += v
	}
	fmt.Fprintf(w, "errors:    %d\n", n)
	for _, k := range slices.Sorted(maps.Keys(r.errors)) {
		fmt.Fprintf(w, "  %s: %d\n", k, r.errors[k])
	}
	printMemory(w, r.before, r.after, r.metricsErr)
}

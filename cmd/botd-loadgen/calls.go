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
	"sync"
	"time"
)

// callsResult is what -mode calls measured.
type callsResult struct {
	started, completed int
	elapsed            time.Duration
	toEstablished      []time.Duration // sorted
	toInvited          []time.Duration // from the invite to its end, sorted
	rosters            []int           // participants each call held when its invitation ended
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
				l, stage, err := callLife(ctx, client, o)
				mu.Lock()
				res.started++
				if err != nil {
					res.errors[stage+": "+err.Error()]++
				} else {
					res.completed++
					res.toEstablished = append(res.toEstablished, l.established)
					if o.invitees > 0 {
						res.toInvited = append(res.toInvited, l.invited)
						res.rosters = append(res.rosters, l.roster)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.toEstablished)
	slices.Sort(res.toInvited)
	res.scrapeAfter(ctx, o.metrics)
	return res, nil
}

type callView struct {
	ID           string            `json:"id"`
	State        string            `json:"state"`
	Participants []json.RawMessage `json:"participants"`
	Operations   []operationView   `json:"operations"`
}

type operationView struct {
	ClientContext string `json:"clientContext"`
	Status        string `json:"status"`
}

// maxInvitees bounds -invitees.
const maxInvitees = 100

// inviteBody invites the i-th PSTN number of a call life.
func inviteBody(i int) []byte {
	return fmt.Appendf(nil, `{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","phone":{"@odata.type":"#microsoft.graph.identity","id":"+1555%07d"}}}]}`, i+1)
}

// life is what one call life measured.
type life struct {
	established, invited time.Duration
	roster               int
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

// callLife runs one call: create, establish, invite, prompt and hang up.
// It returns what it measured, or the stage that failed.
func callLife(ctx context.Context, c *http.Client, o options) (l life, stage string, err error) {
	base := o.admin + "/v1/calls"
	t0 := time.Now()
	var cv callView
	if err := adminDo(ctx, c, http.MethodPost, base, defaultCreateBody, http.StatusCreated, &cv); err != nil {
		return l, "create", err
	}
	if cv.ID == "" {
		return l, "create", fmt.Errorf("no id in the reply")
	}
	url := base + "/" + cv.ID
	established := func(cv *callView) bool { return cv.State == "established" }
	if get, err := await(ctx, c, o, url, &cv, t0.Add(o.estTimeout), "not established", established); err != nil {
		if get {
			return l, "get", err
		}
		if cv.State != "terminated" {
			_ = adminDo(ctx, c, http.MethodDelete, url, nil, http.StatusOK, nil)
		}
		return l, "establish", err
	}
	l.established = time.Since(t0)
	if o.invitees > 0 {
		if err := invite(ctx, c, o, url, &l); err != nil {
			_ = adminDo(ctx, c, http.MethodDelete, url, nil, http.StatusOK, nil)
			return l, "invite", err
		}
	}
	if o.prompt {
		if err := adminDo(ctx, c, http.MethodPost, url+"/playPrompt", defaultPromptBody, http.StatusOK, nil); err != nil {
			return l, "playPrompt", err
		}
	}
	if err := adminDo(ctx, c, http.MethodDelete, url, nil, http.StatusOK, nil); err != nil {
		return l, "delete", err
	}
	return l, "", nil
}

// await polls the call at url every -poll, from cv (its view so far), until
// done holds for its view, the call ends or deadline passes (the error then
// says what, "not established" or the like). get tells that the error was
// a GET of the call failing.
func await(ctx context.Context, c *http.Client, o options, url string, cv *callView, deadline time.Time, what string, done func(*callView) bool) (get bool, err error) {
	for !done(cv) {
		if cv.State == "terminated" {
			return false, fmt.Errorf("call terminated")
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%s within %s", what, o.estTimeout)
		}
		select {
		case <-time.After(o.poll):
		case <-ctx.Done():
			return false, ctx.Err()
		}
		*cv = callView{}
		if err := adminDo(ctx, c, http.MethodGet, url, nil, http.StatusOK, cv); err != nil {
			return true, err
		}
	}
	return false, nil
}

// invite invites -invitees numbers, one invite after the other (Graph
// takes several in one request only into a group call), each waited for,
// polling the call, until its operation has ended; then it counts the
// call's roster.
func invite(ctx context.Context, c *http.Client, o options, url string, l *life) error {
	t0 := time.Now()
	deadline := t0.Add(o.estTimeout)
	var cv callView
	for i := range o.invitees {
		var op operationView
		if err := adminDo(ctx, c, http.MethodPost, url+"/participants/invite", inviteBody(i), http.StatusOK, &op); err != nil {
			return err
		}
		if op.ClientContext == "" {
			return fmt.Errorf("no clientContext in the reply")
		}
		cv = callView{}
		if err := adminDo(ctx, c, http.MethodGet, url, nil, http.StatusOK, &cv); err != nil {
			return err
		}
		ended := func(cv *callView) bool {
			return slices.ContainsFunc(cv.Operations, func(x operationView) bool {
				return x.ClientContext == op.ClientContext && x.Status != "" && x.Status != "notStarted" && x.Status != "running"
			})
		}
		if _, err := await(ctx, c, o, url, &cv, deadline, "invitations not ended", ended); err != nil {
			return err
		}
	}
	l.invited, l.roster = time.Since(t0), len(cv.Participants)
	return nil
}

func (r *callsResult) print(w io.Writer) {
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "calls:     %d started, %d completed in %s (%.1f calls/s)\n", r.started, r.completed, r.elapsed.Round(time.Millisecond), float64(r.completed)/secs)
	p := percentiles(r.toEstablished)
	fmt.Fprintf(w, "to established: p50=%s p90=%s p99=%s max=%s\n", fmtDur(p.p50), fmtDur(p.p90), fmtDur(p.p99), fmtDur(p.max))
	if len(r.rosters) > 0 {
		p := percentiles(r.toInvited)
		fmt.Fprintf(w, "invitations: p50=%s p90=%s p99=%s max=%s from the first invite to the end of the last\n", fmtDur(p.p50), fmtDur(p.p90), fmtDur(p.p99), fmtDur(p.max))
		sum, most := 0, 0
		for _, n := range r.rosters {
			sum += n
			most = max(most, n)
		}
		fmt.Fprintf(w, "roster:    %.1f participants a call on average when its invitations had ended, at most %d\n", float64(sum)/float64(len(r.rosters)), most)
	}
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

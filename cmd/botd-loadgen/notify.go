package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"
)

// template is a notification body whose call id is replaced per request by
// one of n generated call ids, so the store ends up holding n calls.
type template struct {
	parts [][]byte // the body split around each occurrence of the call id
	ids   [][]byte
}

var callIDPattern = regexp.MustCompile(`/calls/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})`)

func newTemplate(payload []byte, n int) *template {
	t := &template{}
	m := callIDPattern.FindSubmatch(payload)
	if m == nil {
		t.parts = [][]byte{payload}
		return t
	}
	t.parts = bytes.Split(payload, m[1])
	t.ids = make([][]byte, n)
	for i := range t.ids {
		t.ids[i] = fmt.Appendf(nil, "0b0d1a0d-%04x-4%03x-8%03x-%012x", (i>>24)&0xffff, (i>>12)&0xfff, i&0xfff, i)
	}
	return t
}

// body appends the i-th request's body to buf.
func (t *template) body(buf []byte, i int) []byte {
	buf = append(buf, t.parts[0]...)
	for _, p := range t.parts[1:] {
		buf = append(buf, t.ids[i%len(t.ids)]...)
		buf = append(buf, p...)
	}
	return buf
}

// result is what a notify, max or report run measured.
type result struct {
	mode      string
	offered   float64 // requests per second scheduled (notify); 0 for max
	scheduled int
	sent      int
	elapsed   time.Duration
	statuses  map[int]int
	errors    map[string]int
	latencies []time.Duration // sorted
	scrapes
}

func (r *result) achieved() float64 {
	ok := 0
	for _, n := range r.statuses {
		ok += n
	}
	if r.elapsed <= 0 {
		return 0
	}
	return float64(ok) / r.elapsed.Seconds()
}

func (r *result) errorCount() int {
	n := 0
	for code, c := range r.statuses {
		if code >= 400 {
			n += c
		}
	}
	for _, c := range r.errors {
		n += c
	}
	return n
}

// accounted is every scheduled request: answered with a status, or an error.
func (r *result) accounted() int {
	n := 0
	for _, c := range r.statuses {
		n += c
	}
	for _, c := range r.errors {
		n += c
	}
	return n
}

func newClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// tally is one worker's counts, merged at the end.
type tally struct {
	statuses  map[int]int
	errors    map[string]int
	latencies []time.Duration
}

func newTally() *tally { return &tally{statuses: map[int]int{}, errors: map[string]int{}} }

func (t *tally) post(ctx context.Context, c *http.Client, url, auth string, body []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.errors[errClass(err)]++
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.errors[errClass(err)]++
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	t.statuses[resp.StatusCode]++
}

func errClass(err error) string {
	s := err.Error()
	switch {
	case bytes.Contains([]byte(s), []byte("connection refused")):
		return "connection refused"
	case bytes.Contains([]byte(s), []byte("Client.Timeout")), bytes.Contains([]byte(s), []byte("deadline exceeded")):
		return "timeout"
	case bytes.Contains([]byte(s), []byte("context canceled")):
		return "canceled"
	case bytes.Contains([]byte(s), []byte("connection reset")):
		return "connection reset"
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func merge(r *result, ts []*tally) {
	r.statuses, r.errors = map[int]int{}, map[string]int{}
	for _, t := range ts {
		for k, v := range t.statuses {
			r.statuses[k] += v
		}
		for k, v := range t.errors {
			r.errors[k] += v
		}
		r.latencies = append(r.latencies, t.latencies...)
	}
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
}

// errNotSent accounts for a scheduled request that could not be started
// before the run's end plus a grace period, because every connection of
// -concurrency was busy: the server could not keep up with the offered rate.
const errNotSent = "not sent: -concurrency exhausted past the run's end"

type job struct {
	i     int
	sched time.Time
}

// schedule returns the send times of an open-loop run: n = rate*duration
// requests, evenly spaced from start.
func schedule(start time.Time, rate float64, d time.Duration) []time.Time {
	n := int(rate*d.Seconds() + 0.5)
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
	}
	return out
}

// runNotify posts rate*duration notifications, each at its scheduled time
// (open loop). A request that finds all -concurrency connections busy waits
// for one; its latency still counts from its scheduled time, so a slow server
// shows in the percentiles instead of slowing the offered load (no
// coordinated omission). Requests still waiting one -timeout after the run's
// end are counted as errNotSent.
func runNotify(ctx context.Context, o options, tmpl *template) *result {
	r := &result{mode: "notify", offered: o.rate}
	r.scrapeBefore(ctx, o.metrics)
	client := newClient(o.concurrency, o.timeout)
	defer client.CloseIdleConnections()

	start := time.Now().Add(10 * time.Millisecond)
	times := schedule(start, o.rate, o.duration)
	if o.requests > 0 && len(times) > o.requests {
		times = times[:o.requests]
	}
	r.scheduled = len(times)
	cutoff := start.Add(o.duration + o.timeout)

	jobs := make(chan job)
	ts, wait := startWorkers(o.concurrency, func(t *tally) {
		var buf []byte
		for j := range jobs {
			buf = tmpl.body(buf[:0], o.firstCall+j.i%o.calls)
			t.post(ctx, client, o.url, o.auth, buf)
			t.latencies = append(t.latencies, time.Since(j.sched))
		}
	})
	notSent := 0
	for i, at := range times {
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil || time.Now().After(cutoff) {
			notSent += len(times) - i
			break
		}
		select {
		case jobs <- job{i: i, sched: at}:
			r.sent++
			continue
		default:
		}
		// Every worker is busy: wait for one, until the cutoff.
		select {
		case jobs <- job{i: i, sched: at}:
			r.sent++
		case <-time.After(time.Until(cutoff)):
			notSent += len(times) - i
		case <-ctx.Done():
			notSent += len(times) - i
		}
		if notSent > 0 {
			break
		}
	}
	close(jobs)
	wait()
	r.elapsed = time.Since(start)
	merge(r, ts)
	if notSent > 0 {
		r.errors[errNotSent] += notSent
	}
	r.scrapeAfter(ctx, o.metrics)
	return r
}

// runMax keeps -concurrency requests in flight for -duration (closed loop):
// its achieved rate is the server's ceiling. Latency is per request.
func runMax(ctx context.Context, o options, tmpl *template) *result {
	r := &result{mode: "max"}
	r.scrapeBefore(ctx, o.metrics)
	client := newClient(o.concurrency, o.timeout)
	defer client.CloseIdleConnections()
	ctx2, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	next := 0
	ts, wait := startWorkers(o.concurrency, func(t *tally) {
		var buf []byte
		for ctx2.Err() == nil {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			buf = tmpl.body(buf[:0], i%o.calls)
			t0 := time.Now()
			// The request itself is not bound to ctx2, so the run's end
			// does not turn the last requests into errors.
			t.post(ctx, client, o.url, o.auth, buf)
			t.latencies = append(t.latencies, time.Since(t0))
		}
	})
	wait()
	r.elapsed = time.Since(start)
	r.scheduled, r.sent = next, next
	merge(r, ts)
	r.scrapeAfter(ctx, o.metrics)
	return r
}

// startWorkers starts n workers, each running work with a tally of its
// own; wait returns when every work has returned.
func startWorkers(n int, work func(t *tally)) (ts []*tally, wait func()) {
	ts = make([]*tally, n)
	var wg sync.WaitGroup
	for w := range ts {
		t := newTally()
		ts[w] = t
		wg.Go(func() { work(t) })
	}
	return ts, wg.Wait
}

func (r *result) print(w io.Writer) {
	if r.mode == "notify" {
		fmt.Fprintf(w, "offered:   %.0f req/s (%d scheduled, %d sent)\n", r.offered, r.scheduled, r.sent)
	} else {
		fmt.Fprintf(w, "closed loop: %d requests\n", r.sent)
	}
	fmt.Fprintf(w, "achieved:  %.0f req/s over %s\n", r.achieved(), r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "statuses: ")
	for _, c := range slices.Sorted(maps.Keys(r.statuses)) {
		fmt.Fprintf(w, " %d=%d", c, r.statuses[c])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "errors:    %d\n", r.errorCount())
	for _, k := range slices.Sorted(maps.Keys(r.errors)) {
		fmt.Fprintf(w, "  %s: %d\n", k, r.errors[k])
	}
	p := percentiles(r.latencies)
	fmt.Fprintf(w, "latency:   p50=%s p90=%s p99=%s p999=%s max=%s\n", fmtDur(p.p50), fmtDur(p.p90), fmtDur(p.p99), fmtDur(p.p999), fmtDur(p.max))
	printMemory(w, r.before, r.after, r.metricsErr)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0fµs", float64(d)/1e3)
}

// fetchToken reads {"token": ...} from url: the callback token botd's
// emulator signs its own callbacks with.
func fetchToken(ctx context.Context, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("-token-url: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("-token-url: %w", err)
	}
	defer res.Body.Close()
	var v struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&v); err != nil || res.StatusCode != http.StatusOK || v.Token == "" {
		return "", fmt.Errorf("-token-url %s: status %d, no token (%v)", url, res.StatusCode, err)
	}
	return v.Token, nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

const fakeMetrics = `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5165824e+07
go_memstats_heap_inuse_bytes 1.048576e+07
go_gc_heap_live_bytes 5.24288e+06
botd_calls{state="established"} 3
botd_calls{state="unknown"} 7
botd_graph_requests_total{operation="createCall",status_class="2xx"} 10
botd_graph_requests_total{operation="deleteCall",status_class="2xx"} 5 1700000000000
go_gc_duration_seconds{quantile="0.5"} NaN
`

// fakeBotd answers the callback with status (202 unless told) and serves
// /metrics; it records the call ids it saw.
type fakeBotd struct {
	mu      sync.Mutex
	ids     map[string]int
	status  func(n int64) int
	n       atomic.Int64
	payload atomic.Int64
	auth    map[string]int // Authorization headers seen, by value
}

func (f *fakeBotd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		_, _ = io.WriteString(w, fakeMetrics)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.payload.Store(int64(len(b)))
	var doc struct {
		Value []struct {
			Resource string `json:"resource"`
		} `json:"value"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Value) != 1 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.ids[doc.Value[0].Resource]++
	f.auth[r.Header.Get("Authorization")]++
	f.mu.Unlock()
	n := f.n.Add(1)
	code := http.StatusAccepted
	if f.status != nil {
		code = f.status(n)
	}
	w.WriteHeader(code)
}

func startFake(t *testing.T, status func(int64) int) (*fakeBotd, *httptest.Server) {
	f := &fakeBotd{ids: map[string]int{}, auth: map[string]int{}, status: status}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func testOptions(srv *httptest.Server) options {
	return options{
		mode: "notify", url: srv.URL + "/api/calls", metrics: srv.URL + "/metrics",
		rate: 2000, duration: 250 * time.Millisecond, concurrency: 8, calls: 10,
		timeout: 5 * time.Second, rates: []float64{1000, 2000},
	}
}

func TestTemplateVariesTheCallID(t *testing.T) {
	if len(defaultPayload) != 847 || !json.Valid(defaultPayload) {
		t.Fatalf("embedded payload: %d bytes, valid %v", len(defaultPayload), json.Valid(defaultPayload))
	}
	tm := newTemplate(defaultPayload, 5)
	seen := map[string]bool{}
	for i := range 10 {
		b := tm.body(nil, i)
		if !json.Valid(b) || len(b) != len(defaultPayload) {
			t.Fatalf("body %d: %d bytes, valid %v", i, len(b), json.Valid(b))
		}
		if bytes.Contains(b, []byte("ab6233a5-20b7-4c5e-bea2-ce56c9776429")) {
			t.Fatalf("body %d keeps the example's call id", i)
		}
		m := callIDPattern.FindAllSubmatch(b, -1)
		if len(m) != 2 || !bytes.Equal(m[0][1], m[1][1]) {
			t.Fatalf("body %d: resource and resourceUrl should name one call: %q", i, m)
		}
		seen[string(m[0][1])] = true
	}
	if len(seen) != 5 {
		t.Fatalf("%d distinct call ids over 10 bodies, want 5", len(seen))
	}
	if got := newTemplate([]byte(`{"x":1}`), 3).body(nil, 2); string(got) != `{"x":1}` {
		t.Fatalf("a payload without a call id is sent as is, got %s", got)
	}
}

func TestScheduleCount(t *testing.T) {
	start := time.Unix(0, 0)
	times := schedule(start, 4000, 2*time.Second)
	if len(times) != 8000 {
		t.Fatalf("%d scheduled, want 8000", len(times))
	}
	if !times[0].Equal(start) || times[4000].Sub(start) != time.Second {
		t.Fatalf("spacing: first %v, 4000th %v", times[0].Sub(start), times[4000].Sub(start))
	}
}

func TestNotifyAccountsForEveryRequest(t *testing.T) {
	f, srv := startFake(t, nil)
	o := testOptions(srv)
	r := runNotify(context.Background(), o, newTemplate(defaultPayload, o.calls))
	if r.scheduled != 500 {
		t.Fatalf("scheduled %d, want rate*duration = 500", r.scheduled)
	}
	if r.accounted() != r.scheduled {
		t.Fatalf("accounted %d (statuses %v, errors %v), want %d", r.accounted(), r.statuses, r.errors, r.scheduled)
	}
	if len(r.latencies) != r.sent {
		t.Fatalf("%d latencies for %d sent", len(r.latencies), r.sent)
	}
	if int64(r.statuses[202]) != f.n.Load() {
		t.Fatalf("202s counted %d, server answered %d", r.statuses[202], f.n.Load())
	}
	f.mu.Lock()
	nids := len(f.ids)
	f.mu.Unlock()
	if f.n.Load() > 0 && nids != o.calls {
		t.Fatalf("server saw %d call ids, want %d", nids, o.calls)
	}
	if f.payload.Load() != 847 {
		t.Fatalf("payload %d bytes", f.payload.Load())
	}
	if r.before[metricCalls] != 10 || r.after[metricRSS] != 25165824 || r.metricsErr != nil {
		t.Fatalf("metrics before %v after %v err %v", r.before, r.after, r.metricsErr)
	}
	var out strings.Builder
	r.print(&out)
	for _, want := range []string{"offered:   2000 req/s (500 scheduled", "p999=", "botd RSS:  24.0 MiB", "botd_calls: 10 -> 10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestNotifyCountsStatusesAndErrors(t *testing.T) {
	_, srv := startFake(t, func(n int64) int {
		if n%2 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	o := testOptions(srv)
	o.metrics = ""
	r := runNotify(context.Background(), o, newTemplate(defaultPayload, o.calls))
	if r.accounted() != 500 || r.statuses[202]+r.statuses[503]+len(r.errors) == 0 {
		t.Fatalf("accounted %d: %v %v", r.accounted(), r.statuses, r.errors)
	}
	if r.errorCount() < r.statuses[503] {
		t.Fatalf("503s are errors: %d < %d", r.errorCount(), r.statuses[503])
	}

	// A server that is gone: every request is an error.
	srv.Close()
	r = runNotify(context.Background(), o, newTemplate(defaultPayload, o.calls))
	if r.accounted() != 500 || len(r.statuses) != 0 || r.errorCount() != 500 {
		t.Fatalf("closed server: accounted %d, statuses %v, errors %v", r.accounted(), r.statuses, r.errors)
	}
}

func TestNotifyCanceled(t *testing.T) {
	_, srv := startFake(t, nil)
	o := testOptions(srv)
	o.metrics = ""
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := runNotify(ctx, o, newTemplate(defaultPayload, o.calls))
	if r.accounted() != r.scheduled {
		t.Fatalf("canceled run: accounted %d of %d: %v", r.accounted(), r.scheduled, r.errors)
	}
}

func TestMaxAccountsForEveryRequest(t *testing.T) {
	_, srv := startFake(t, nil)
	o := testOptions(srv)
	o.mode = "max"
	r := runMax(context.Background(), o, newTemplate(defaultPayload, o.calls))
	if r.sent == 0 || r.accounted() != r.sent || len(r.latencies) != r.sent {
		t.Fatalf("sent %d, accounted %d, latencies %d", r.sent, r.accounted(), len(r.latencies))
	}
}

// With -token-url, every notification carries the one token botd's
// emulator hands out, which is the token its own callbacks carry.
func TestTokenURL(t *testing.T) {
	emu := emulator.New(emulator.Options{})
	emu.Start()
	t.Cleanup(emu.Close)
	f, srv := startFake(t, nil)
	o := testOptions(srv)
	o.mode, o.metrics = "max", ""
	o.tokenURL = emu.URL() + "/emulator/callback-token"
	var out bytes.Buffer
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	want, err := fetchToken(context.Background(), o.tokenURL, time.Second)
	if err != nil || strings.Count(want, ".") != 2 {
		t.Fatalf("token %q: %v", want, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auth) != 1 || f.auth["Bearer "+want] == 0 {
		t.Fatalf("Authorization headers seen: %d distinct, want only Bearer <the emulator's token>", len(f.auth))
	}

	o.tokenURL = emu.URL() + "/emulator/nothing"
	if err := run(context.Background(), o, &out); err == nil || !strings.Contains(err.Error(), "-token-url") {
		t.Fatalf("a token URL without a token: %v", err)
	}
}

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(s)
	want := pcts{500 * time.Millisecond, 900 * time.Millisecond, 990 * time.Millisecond, 999 * time.Millisecond, 1000 * time.Millisecond}
	if p != want {
		t.Fatalf("got %v, want %v", p, want)
	}
	if (percentiles(nil) != pcts{}) {
		t.Fatal("no samples: zero percentiles")
	}
	one := []time.Duration{7}
	if p := percentiles(one); p.p50 != 7 || p.p999 != 7 || p.max != 7 {
		t.Fatalf("one sample: %v", p)
	}
	if q := quantile([]time.Duration{1, 2, 3, 4}, 0.5); q != 2 {
		t.Fatalf("median of 1..4 by nearest rank: %v", q)
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(fakeMetrics))
	if err != nil {
		t.Fatal(err)
	}
	want := metricsSnapshot{metricRSS: 25165824, metricHeap: 10485760, metricCalls: 10, metricGraph: 15}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["go_gc_duration_seconds"]; ok {
		t.Error("NaN samples are skipped")
	}
	for _, bad := range []string{"x{a=\"1\" 3", "novalue", "x{a=\"1\"}", "x abc"} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestCallsMode(t *testing.T) {
	var created, deleted, prompts, gets atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/calls", func(w http.ResponseWriter, r *http.Request) {
		created.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"c1","state":"establishing"}`)
	})
	mux.HandleFunc("GET /v1/calls/c1", func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		_, _ = io.WriteString(w, `{"id":"c1","state":"established"}`)
	})
	mux.HandleFunc("POST /v1/calls/c1/playPrompt", func(w http.ResponseWriter, r *http.Request) {
		prompts.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("DELETE /v1/calls/c1", func(w http.ResponseWriter, r *http.Request) {
		deleted.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, fakeMetrics) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	o := options{admin: srv.URL, metrics: srv.URL + "/metrics", concurrency: 2, duration: 100 * time.Millisecond,
		timeout: 5 * time.Second, estTimeout: 5 * time.Second, poll: time.Millisecond, prompt: true}
	r, err := runCalls(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.completed == 0 || r.started != r.completed || len(r.errors) != 0 {
		t.Fatalf("started %d completed %d errors %v", r.started, r.completed, r.errors)
	}
	if created.Load() != int64(r.started) || deleted.Load() != created.Load() || prompts.Load() != created.Load() || gets.Load() < created.Load() {
		t.Fatalf("created %d, gets %d, prompts %d, deleted %d", created.Load(), gets.Load(), prompts.Load(), deleted.Load())
	}
	if len(r.toEstablished) != r.completed {
		t.Fatalf("%d establish times for %d calls", len(r.toEstablished), r.completed)
	}
	var out strings.Builder
	r.print(&out)
	if !strings.Contains(out.String(), "graph:     0.0 requests/s") {
		t.Errorf("output:\n%s", out.String())
	}

	// With invitees: one invite after the other, each waited for, then the
	// roster.
	var invites atomic.Int64
	var inviteBodyGot atomic.Value
	mux.HandleFunc("GET /v1/calls/c2", func(w http.ResponseWriter, r *http.Request) {
		// The invitation running on two reads in three: each invite is
		// polled until it reads completed.
		status := "running"
		if gets.Add(1)%3 == 0 {
			status = "completed"
		}
		_, _ = io.WriteString(w, `{"id":"c2","state":"established","participants":[{},{},{},{}],"operations":[{"clientContext":"other","status":"completed"},{"clientContext":"cc-1","status":"`+status+`"}]}`)
	})
	mux.HandleFunc("POST /v1/calls/c2/participants/invite", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		inviteBodyGot.Store(string(b))
		invites.Add(1)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"op1","status":"running","clientContext":"cc-1"}`)
	})
	mux.HandleFunc("POST /v1/calls/c2/playPrompt", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("DELETE /v1/calls/c2", func(w http.ResponseWriter, r *http.Request) {
		deleted.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	mux2 := http.NewServeMux()
	mux2.HandleFunc("POST /v1/calls", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"c2","state":"establishing"}`)
	})
	mux2.Handle("/", mux)
	srv2 := httptest.NewServer(mux2)
	defer srv2.Close()
	o2 := o
	o2.admin, o2.concurrency, o2.invitees = srv2.URL, 1, 3
	r, err = runCalls(context.Background(), o2)
	if err != nil || r.completed == 0 || len(r.errors) != 0 || invites.Load() != 3*int64(r.started) {
		t.Fatalf("with invitees: %v, started %d completed %d invites %d errors %v", err, r.started, r.completed, invites.Load(), r.errors)
	}
	if len(r.rosters) != r.completed || r.rosters[0] != 4 || len(r.toInvited) != r.completed {
		t.Fatalf("rosters %v, invitation times %v", r.rosters, r.toInvited)
	}
	var inv struct {
		Participants []struct {
			Identity struct{ Phone struct{ ID string } }
		}
	}
	_ = json.Unmarshal([]byte(inviteBodyGot.Load().(string)), &inv)
	if len(inv.Participants) != 1 || inv.Participants[0].Identity.Phone.ID != "+15550000003" {
		t.Fatalf("the last invite body: %s, want the third number alone", inviteBodyGot.Load())
	}
	out.Reset()
	r.print(&out)
	if !strings.Contains(out.String(), "roster:    4.0 participants a call on average when its invitations had ended, at most 4") {
		t.Errorf("output:\n%s", out.String())
	}

	// A botd that refuses creates: every life is a create error.
	o.admin = srv.URL + "/nowhere"
	r, _ = runCalls(context.Background(), o)
	if r.completed != 0 || r.errors["create: status 404"] != r.started {
		t.Fatalf("refused: %+v", r.errors)
	}
}

var sampleRows = []reportRow{
	{Offered: 1000, Achieved: 999, P50: 300 * time.Microsecond, P99: 2 * time.Millisecond, RSS: 30 << 20, Calls: 1000},
	{Offered: 2000, Achieved: 1990, P50: 400 * time.Microsecond, P99: 5 * time.Millisecond, Errors: 3},
	{Offered: 4000, Achieved: 2500, P50: 90 * time.Millisecond, P99: 800 * time.Millisecond, Errors: 1500, RSS: 40 << 20},
}

func TestMarkdown(t *testing.T) {
	var b strings.Builder
	writeMarkdown(&b, options{url: "http://x/api/calls", duration: time.Second, concurrency: 4, calls: 9}, sampleRows)
	s := b.String()
	for _, want := range []string{
		"| offered (req/s) | achieved (req/s) | p50 (ms) | p99 (ms) | errors | RSS (MiB) | calls |",
		"| 1000 | 999 | 0.30 | 2.00 | 0 | 30.0 | 1000 |",
		"| 2000 | 1990 | 0.40 | 5.00 | 3 | n/a | 0 |",
		"| 4000 | 2500 | 90.00 | 800.00 | 1500 | 40.0 | 0 |",
		"(report.svg)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %q:\n%s", want, s)
		}
	}
}

func TestSVG(t *testing.T) {
	var b strings.Builder
	writeSVG(&b, sampleRows)
	polylines, circles := svgShapes(t, b.String())
	if polylines != 2 || circles != 2*len(sampleRows) {
		t.Fatalf("%d polylines and %d points, want 2 and %d", polylines, circles, 2*len(sampleRows))
	}
	if niceMax(2500) != 5000 || niceMax(800) != 1000 || niceMax(0) != 1 || niceMax(1000) != 1000 {
		t.Fatal("niceMax")
	}
}

// svgShapes counts the lines and points of an SVG, failing on XML that is
// not well-formed.
func svgShapes(t *testing.T, svg string) (polylines, circles int) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return polylines, circles
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "circle":
				circles++
			}
		}
	}
}

func TestReportWritesFiles(t *testing.T) {
	_, srv := startFake(t, nil)
	o := testOptions(srv)
	o.duration = 100 * time.Millisecond
	o.report = t.TempDir()
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(o.report, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| 1000 |") || !strings.Contains(string(md), "| 2000 |") {
		t.Fatalf("report.md:\n%s", md)
	}
	if _, err := os.Stat(filepath.Join(o.report, "report.svg")); err != nil {
		t.Fatal(err)
	}
}

func TestBareHandler(t *testing.T) {
	srv := httptest.NewServer(bareHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/calls", "application/json", bytes.NewReader(defaultPayload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-rate", "5000", "-rates", "1000, 3000", "-calls", "7"}, io.Discard)
	if err != nil || o.rate != 5000 || len(o.rates) != 2 || o.rates[1] != 3000 || o.calls != 7 || o.mode != "notify" {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range [][]string{{"-rates", "1,x"}, {"-concurrency", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestRosterOfAChosenSize(t *testing.T) {
	for _, n := range []int{1, 2, 7} {
		body, err := rosterOf(defaultPayload, n)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		// botd's own decoder takes it, as a roster of n participants.
		b, err := notify.NewDecoder(notify.Limits{}).Decode(body)
		if err != nil || len(b.Rejected) != 0 || len(b.Events) != 1 {
			t.Fatalf("%d participants: decoded %+v, %v\n%s", n, b, err, body)
		}
		ev := b.Events[0]
		if ev.Kind != model.EventRoster || len(ev.Participants) != n {
			t.Fatalf("%d participants: event %v with %d participants", n, ev.Kind, len(ev.Participants))
		}
		seen := map[string]bool{}
		for _, p := range ev.Participants[1:] {
			if p.ID == "" || seen[p.ID] {
				t.Fatalf("%d participants: participant id %q empty or repeated", n, p.ID)
			}
			seen[p.ID] = true
		}
		// Graph's order, the one botd decodes in one pass.
		if bytes.Index(body, []byte(`"resourceUrl"`)) > bytes.Index(body, []byte(`"resourceData"`)) {
			t.Fatalf("resourceData before resourceUrl:\n%s", body)
		}
		// The template still finds the call id to vary.
		if tm := newTemplate(body, 2); len(tm.parts) < 2 {
			t.Fatalf("the call id is gone from:\n%s", body)
		}
	}
	state, err := os.ReadFile("testdata/call-established.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		payload []byte
		n       int
	}{{state, 2}, {[]byte("[]"), 2}, {defaultPayload, 0}, {defaultPayload, maxParticipants + 1}} {
		if _, err := rosterOf(c.payload, c.n); err == nil || !strings.Contains(err.Error(), "-participants") {
			t.Errorf("rosterOf(%.40s, %d) = %v, want a -participants error", c.payload, c.n, err)
		}
	}
}

func TestReportMemoryPostsOnceToEachNewCall(t *testing.T) {
	f, srv := startFake(t, nil)
	o := testOptions(srv)
	o.rate = 5000
	o.reportCalls = []int{5, 12}
	tmpl := newTemplate(defaultPayload, 12)
	var out strings.Builder
	mem, err := runMemory(context.Background(), o, tmpl, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem) != 2 || mem[0].Target != 5 || mem[1].Target != 12 || mem[1].Calls != 10 || mem[1].RSS != 25165824 || mem[1].Heap != 10485760 || mem[1].Live != 5242880 {
		t.Fatalf("rows %+v", mem)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ids) != 12 {
		t.Fatalf("%d call ids posted to, want 12: %v", len(f.ids), f.ids)
	}
	for id, n := range f.ids {
		if n != 1 {
			t.Fatalf("%s posted to %d times, want once", id, n)
		}
	}
}

func TestMemoryReport(t *testing.T) {
	mem := []memoryRow{
		{Target: 1000, Calls: 1000, RSS: 30 << 20, Heap: 10 << 20, Live: 5 << 20},
		{Target: 11000, Calls: 11000, RSS: 60 << 20, Heap: 30 << 20, Live: 25 << 20, Errors: 2},
		{Target: 21000, Calls: 20000, Heap: 50 << 20, Live: 45 << 20},
	}
	var b strings.Builder
	writeMemoryMarkdown(&b, options{rate: 5000}, mem)
	for _, want := range []string{
		"| calls posted to | calls held (botd_calls) | RSS (MiB) | heap in use (MiB) | live heap (MiB) | live heap per call (bytes) | errors |",
		"| 1000 | 1000 | 30.0 | 10.0 | 5.0 | n/a | 0 |",
		"| 11000 | 11000 | 60.0 | 30.0 | 25.0 | 2097 | 2 |", // 20 MiB over 10,000 calls
		"| 21000 | 20000 | n/a | 50.0 | 45.0 | 2208 | 0 |",  // 40 MiB over 19,000
		"(memory.svg)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	var svg strings.Builder
	writeMemorySVG(&svg, mem)
	if polylines, circles := svgShapes(t, svg.String()); polylines != 3 || circles != 3*len(mem) {
		t.Fatalf("%d polylines and %d points, want 3 and %d", polylines, circles, 3*len(mem))
	}

	_, srv := startFake(t, nil)
	o := testOptions(srv)
	o.duration = 100 * time.Millisecond
	o.report = t.TempDir()
	o.reportCalls = []int{3, 6}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(o.report, "report.md"))
	if err != nil || !strings.Contains(string(md), "## Memory against calls held") || !strings.Contains(string(md), "| 6 | 10 |") {
		t.Fatalf("report.md (%v):\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(o.report, "memory.svg")); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsOfRosterAndMemory(t *testing.T) {
	o, err := parseFlags([]string{"-participants", "5", "-report", "d", "-report-calls", "1000, 5000,20000"}, io.Discard)
	if err != nil || o.participants != 5 || len(o.reportCalls) != 3 || o.reportCalls[2] != 20000 {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err := parseFlags([]string{"-invite"}, io.Discard); err != nil || o.invitees != 1 {
		t.Fatalf("-invite: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"-participants", "-1"}, {"-participants", "1001"}, {"-invitees", "101"},
		{"-report", "d", "-report-calls", "5000,1000"}, {"-report", "d", "-report-calls", "0"},
		{"-report-calls", "1000"}, // no -report
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

// TestDecodeServer: the decode-server handler answers 202 to Graph's
// roster notification and 400 to a body botd's decoder refuses, as a botd
// would, and the bare handler 202 to both.
func TestDecodeServer(t *testing.T) {
	good, err := os.ReadFile("notification.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
		body string
		want int
	}{
		{"decode, roster", decodeHandler(), string(good), http.StatusAccepted},
		{"decode, not JSON", decodeHandler(), `{"value":[`, http.StatusBadRequest},
		{"decode, no value", decodeHandler(), `{}`, http.StatusBadRequest},
		{"bare, not JSON", bareHandler(), `{"value":[`, http.StatusAccepted},
	} {
		srv := httptest.NewServer(c.h)
		resp, err := http.Post(srv.URL+"/api/calls", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/auth"
	"github.com/botd/botd/internal/automation"
	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

// rig is botd's HTTP surface wired as cmd/botd wires it: real decoder, call
// store, calls service, automation and Graph client, the Graph client talking to the
// project's emulator over loopback, and both routers behind real listeners.
// It is for the full-stack tests (stack_test.go, and the auth tests, whose
// keys the emulator serves); the tests of the handlers' own job use
// newFakeRig (thin_test.go), the same rig over a fake calls service.
type rig struct {
	t       *testing.T
	emu     *emulator.Server
	store   *callstate.Store
	engine  *automation.Engine
	flows   *flows.Engine
	metrics *Metrics
	reg     *prometheus.Registry
	public  *httptest.Server
	admin   *httptest.Server
	deps    Deps
	calls   *calls.Service
	// callbackURL is botd's own callbackUri.
	callbackURL string
	logs        *testkit.Buffer
	sec         *security
}

type rigOptions struct {
	automation automation.Config
	// incoming is the built-in flow's incoming action (default answer).
	incoming string
	// flows is BOTD_FLOWS: a flow file or directory ("" none).
	flows string
	// maxRuns is BOTD_FLOW_MAX_RUNS (0: the default).
	maxRuns int
	store   callstate.Config
	cluster Cluster
	// secure turns on inbound callback authentication (against keys the
	// test holds, served through the emulator's JWKS) and the admin token.
	secure *security
	// recovering is Deps.Recovering.
	recovering *atomic.Bool
	// history is Deps.History.
	history History
	// pprof is Deps.Pprof (BOTD_ADMIN_PPROF).
	pprof bool
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}}
	log := zerolog.New(r.logs)

	eo := emulator.Options{TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "secret-1", Tenants: []string{emulator.AnyTenant}}
	if o.secure != nil {
		eo.SigningKey = o.secure.key
	}
	r.emu = emulator.New(eo)
	r.emu.Start()
	t.Cleanup(r.emu.Close)

	gc, err := graph.New(graph.Config{
		TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "secret-1",
		BaseURL: r.emu.GraphURL(), TokenURL: r.emu.TokenURL(),
		RequestTimeout: 5 * time.Second, RetryBudget: 5 * time.Second, MaxRetries: 2,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxTenants: graph.DefaultMaxTenants,
	}, log, r.reg)
	if err != nil {
		t.Fatal(err)
	}

	// The public listener exists before the handlers, because its address
	// is botd's callbackUri.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.public = httptest.NewUnstartedServer(nil)
	r.public.Listener.Close()
	r.public.Listener = ln
	callbackURL := "http://" + ln.Addr().String() + "/api/calls"

	r.store, err = callstate.New(storeConfig(o.store), log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.callbackURL = callbackURL
	r.calls = calls.New(calls.Config{CallbackURL: callbackURL, TenantID: "tenant-1", BotAppID: "app-1", BotName: "botd-test"}, gc, r.store, log)
	if o.incoming == "" {
		o.incoming = "answer"
	}
	if o.automation.KeepAlive == 0 {
		o.automation.KeepAlive = time.Hour
	}
	if o.automation.Workers == 0 {
		o.automation.Workers = automation.DefaultWorkers
	}
	if o.automation.QueueSize == 0 {
		o.automation.QueueSize = automation.DefaultQueueSize
	}
	if o.automation.ActionTimeout == 0 {
		o.automation.ActionTimeout = automation.DefaultActionTimeout
	}
	r.engine, err = automation.New(o.automation, r.calls, r.store, log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	// The incoming action is the built-in flow's, as in cmd/botd.
	fcfg := flows.DefaultConfig()
	bf, err := flows.Builtin(fcfg.Options(), map[string]any{"incomingAction": o.incoming})
	if err != nil {
		t.Fatal(err)
	}
	var set *flows.Set
	if o.flows != "" {
		fcfg.Path = o.flows
		if set, err = flows.LoadPath(o.flows, fcfg.Options()); err != nil {
			t.Fatal(err)
		}
	}
	if o.maxRuns > 0 {
		fcfg.MaxRuns = o.maxRuns
	}
	r.flows, err = flows.New(fcfg, set, r.calls, r.store, log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.flows.SetBuiltin(bf)
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); r.flows.Run(ctx) }()
	go func() { defer bg.Done(); r.engine.Run(ctx) }()
	go func() { defer bg.Done(); _ = r.store.Run(ctx) }()
	t.Cleanup(func() {
		r.engine.Close()
		cancel()
		bg.Wait()
	})

	ready := r.setDeps(log, r.calls, gc.CheckToken, o)
	r.deps.Flows = r.flows
	if o.secure != nil {
		o.secure.setup(t, r, log)
	}
	return r.serve(t, ready)
}

// setDeps sets r.metrics and r.deps for the rig's store and c, with a
// readiness over check; the caller adds what else it has.
func (r *rig) setDeps(log zerolog.Logger, c Calls, check func(context.Context) error, o rigOptions) *Readiness {
	r.metrics = NewMetrics(r.reg)
	ready := NewReadiness(check, time.Second, r.metrics)
	r.deps = Deps{
		Log: log, Decoder: notify.NewDecoder(notify.DefaultLimits()), Store: r.store, Calls: c,
		Metrics: r.metrics, Ready: ready, Gatherer: r.reg,
		CallbackPath: "/api/calls", MaxBody: 1 << 20,
		RequestTimeout: 10 * time.Second,
		Cluster:        o.cluster,
		Recovering:     o.recovering,
		History:        o.history,
		Pprof:          o.pprof,
	}
	return ready
}

// serve starts both routers over r.deps and turns readiness on.
func (r *rig) serve(t *testing.T, ready *Readiness) *rig {
	r.public.Config.Handler = Public(r.deps)
	r.public.Start()
	t.Cleanup(r.public.Close)
	r.admin = httptest.NewServer(Admin(r.deps))
	t.Cleanup(r.admin.Close)
	ready.Set(true)
	return r
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (rp reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(rp.body, v); err != nil {
		t.Fatalf("decode %s: %v", rp.body, err)
	}
}

// untracked checks that rp is the 404 for call "nope", which is not
// tracked, at instance.
func (rp reply) untracked(t *testing.T, instance string) {
	t.Helper()
	if rp.status != http.StatusNotFound {
		t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
	}
	p := rp.problem(t)
	if p.Code != problem.NotFound || p.Detail != `call "nope" is not tracked` || p.Instance != instance {
		t.Errorf("problem = %+v", p)
	}
}

// refused checks that rp is a problem with status and, when rule is not
// empty, that rule; every 422 must name its rule and field (the README).
func (rp reply) refused(t *testing.T, status int, rule string) {
	t.Helper()
	if rp.status != status {
		t.Fatalf("status %d, want %d: %s", rp.status, status, rp.body)
	}
	p := rp.problem(t)
	if rule != "" && p.Rule != rule {
		t.Errorf("rule = %q, want %q (%s)", p.Rule, rule, p.Detail)
	}
	if rp.status == http.StatusUnprocessableEntity && (p.Rule == "" || p.Field == "") {
		t.Errorf("422 without rule or field: %s", rp.body)
	}
}

func (rp reply) problem(t *testing.T) Problem {
	t.Helper()
	if ct := rp.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (status %d, body %s)", ct, rp.status, rp.body)
	}
	var p Problem
	rp.decode(t, &p)
	if p.Status != rp.status {
		t.Fatalf("problem status %d, HTTP status %d", p.Status, rp.status)
	}
	return p
}

func do(t *testing.T, method, url, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return roundTrip(t, req)
}

// notify posts a callback body as Graph does, signed when the rig is
// secure.
func (r *rig) notify(body []byte) reply {
	r.t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	if r.sec != nil {
		h.Set("Authorization", "Bearer "+r.sec.good)
	}
	return send(r.t, http.MethodPost, r.public.URL+"/api/calls", h, body)
}

// send makes one request with the given headers.
func send(t *testing.T, method, url string, h http.Header, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return roundTrip(t, req)
}

// roundTrip sends req and reads the whole answer.
func roundTrip(t *testing.T, req *http.Request) reply {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

func (r *rig) mustNotify(body []byte) {
	r.t.Helper()
	if rp := r.notify(body); rp.status != http.StatusAccepted {
		r.t.Fatalf("callback answered %d: %s", rp.status, rp.body)
	}
}

func (r *rig) adminDo(method, path string, body []byte) reply {
	r.t.Helper()
	h := http.Header{}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	if r.sec != nil {
		h.Set("Authorization", "Bearer "+r.sec.adminToken)
	}
	return send(r.t, method, r.admin.URL+path, h, body)
}

func (r *rig) view(id string) callstate.CallView {
	r.t.Helper()
	rp := r.adminDo(http.MethodGet, "/v1/calls/"+id, nil)
	if rp.status != http.StatusOK {
		r.t.Fatalf("GET /v1/calls/%s = %d: %s", id, rp.status, rp.body)
	}
	var v callstate.CallView
	rp.decode(r.t, &v)
	return v
}

// eventually polls cond until it holds; it fails the test only after a
// generous bound, so it never asserts on timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, cond)
}

// drain waits for queued automation to finish; a rig without automation
// (newFakeRig's) has none.
func (r *rig) drain() {
	r.t.Helper()
	if r.engine == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.engine.Wait(ctx); err != nil {
		r.t.Fatal(err)
	}
}

// withoutCallback removes callbackUri from a seed request, as a user of
// the admin API does: botd fills its own.
func withoutCallback(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "callbackUri")
	out, _ := json.Marshal(m)
	return out
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func readAll(res *http.Response) []byte {
	b, _ := io.ReadAll(res.Body)
	return b
}

// storeConfig is the store's defaults with o's non-zero fields laid over
// them (tests set only what they test).
func storeConfig(o callstate.Config) callstate.Config {
	sc := callstate.DefaultConfig()
	if o.DeltaGapTimeout != 0 {
		sc.DeltaGapTimeout = o.DeltaGapTimeout
	}
	return sc
}

// verifierConfig is auth's defaults for a verifier of app-1's callbacks
// signed with the keys at metadataURL.
func verifierConfig(metadataURL string) auth.VerifierConfig {
	c := auth.DefaultVerifierConfig()
	c.Audience, c.MetadataURL = "app-1", metadataURL
	return c
}

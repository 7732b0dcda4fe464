package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botd/botd/internal/emulator"
)

// The multi-replica end-to-end tests: three botd replicas started through
// run, each with its own instance name and ports, behind one front address
// that spreads Graph's callbacks over the ready replicas the way a
// Kubernetes Service does, knowing nothing of instances. The emulator, as
// Graph, posts every notification to the front; forwarding between the
// replicas brings each one to the call's owner.

const (
	clusterTenant = "3f1c2a1e-5b7d-4c2a-9e1f-000000000001"
	clusterApp    = "3f1c2a1e-5b7d-4c2a-9e1f-000000000002"
	clusterSecret = "cluster-s3cr3t"
	// clusterWait bounds every wait for a condition; the test fails only
	// when a condition has not held by then.
	clusterWait = 30 * time.Second
)

// clusterFront is the one address Graph knows: it proxies each request to
// the next ready replica, round robin, and never looks at the path.
type clusterFront struct {
	srv       *httptest.Server
	transport *http.Transport
	ready     *http.Client

	// gate is held shared from a request's readiness check until its hit
	// is counted, so that a snapshot taken under the write lock sees every
	// request that chose a replica before it.
	gate     sync.RWMutex
	mu       sync.Mutex
	replicas []*clusterReplica
	next     int
	hits     map[string]int
	errs     []string
}

type clusterReplica struct {
	name  string
	proxy *httputil.ReverseProxy
	*botd
}

func newClusterFront(t *testing.T) *clusterFront {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	f := &clusterFront{transport: tr, ready: &http.Client{Transport: tr, Timeout: 5 * time.Second}, hits: map[string]int{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// add puts a replica behind the front.
func (f *clusterFront) add(r *clusterReplica) {
	target, _ := url.Parse(r.public)
	r.proxy = &httputil.ReverseProxy{
		Transport: f.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			f.mu.Lock()
			f.errs = append(f.errs, fmt.Sprintf("%s %s -> %s: %v", req.Method, req.URL.Path, r.name, err))
			f.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	f.mu.Lock()
	f.replicas = append(f.replicas, r)
	f.mu.Unlock()
}

func (f *clusterFront) isReady(r *clusterReplica) bool {
	res, err := f.ready.Get(r.admin + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func (f *clusterFront) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.gate.RLock()
	f.mu.Lock()
	start, rs := f.next, append([]*clusterReplica(nil), f.replicas...)
	f.next++
	f.mu.Unlock()
	var pick *clusterReplica
	for i := range rs {
		if r := rs[(start+i)%len(rs)]; f.isReady(r) {
			pick = r
			break
		}
	}
	if pick != nil {
		f.mu.Lock()
		f.hits[pick.name]++
		f.mu.Unlock()
	}
	f.gate.RUnlock()
	if pick == nil {
		http.Error(w, "no ready replica", http.StatusServiceUnavailable)
		return
	}
	pick.proxy.ServeHTTP(w, req)
}

// routed returns how many requests the front sent to each replica so far,
// counting every request that had already picked one.
func (f *clusterFront) routed() map[string]int {
	f.gate.Lock()
	defer f.gate.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.hits {
		out[k] = v
	}
	return out
}

func (f *clusterFront) proxyErrors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

// cluster is the emulator, the front and the replicas.
type cluster struct {
	emu      *emulator.Server
	front    *clusterFront
	replicas []*clusterReplica
}

// clusterStart starts the emulator, the front and three replicas botd-0,
// botd-1 and botd-2; extra adds environment variables per instance.
func clusterStart(t *testing.T, extra map[string]map[string]string) *cluster {
	t.Helper()
	front := newClusterFront(t)
	emu := emulator.New(emulator.Options{
		TenantID: clusterTenant, ClientID: clusterApp, ClientSecret: clusterSecret,
		BotCallbackURL: front.srv.URL + "/api/calls",
		TimeScale:      0.01,
		Seed:           20260801,
		Timing: emulator.Timing{
			// Scaled to 30 s and 1 h: neither rule may end a call during
			// the test, however slow the machine.
			Incoming:  50 * time.Minute,
			KeepAlive: 100 * time.Hour,
		},
	})
	emu.Start()
	t.Cleanup(emu.Close)

	// Reserve three public ports, so that every replica can be given the
	// static peer list before any of them starts.
	names := []string{"botd-0", "botd-1", "botd-2"}
	addrs := make([]string, len(names))
	var peers []string
	var reserved []net.Listener
	for i, n := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		reserved = append(reserved, ln)
		addrs[i] = ln.Addr().String()
		peers = append(peers, n+"=http://"+addrs[i])
	}
	for _, ln := range reserved {
		ln.Close()
	}
	c := &cluster{emu: emu, front: front}
	for i, n := range names {
		env := map[string]string{
			"BOTD_TENANT_ID": clusterTenant, "BOTD_CLIENT_ID": clusterApp, "BOTD_CLIENT_SECRET": clusterSecret,
			"BOTD_GRAPH_BASE_URL": emu.GraphURL(), "BOTD_TOKEN_URL": emu.TokenURL(),
			// Inbound auth stays on: every callback, forwarded or not, is
			// checked against the emulator's signing keys.
			"BOTD_AUTH_METADATA_URL": emu.OpenIDConfigURL(),
			"BOTD_PUBLIC_URL":        front.srv.URL,
			"BOTD_INSTANCE":          n,
			"BOTD_LISTEN":            addrs[i],
			"BOTD_ADMIN_LISTEN":      "127.0.0.1:0",
			"BOTD_PEERS":             strings.Join(peers, ","),
		}
		for k, v := range extra[n] {
			env[k] = v
		}
		r := &clusterReplica{name: n, botd: start(t, env)}
		if r.public != "http://"+addrs[i] {
			t.Fatalf("%s listens on %s, want http://%s", n, r.public, addrs[i])
		}
		front.add(r)
		c.replicas = append(c.replicas, r)
	}
	for _, r := range c.replicas {
		clusterEventually(t, r.name+" ready", func() bool { return front.isReady(r) })
	}
	// Before the replicas stop (cleanups run last first), close the
	// connections the front, the peers and the test keep idle: a server's
	// Shutdown waits up to 5 s for a connection that never sent a request,
	// which the Transport leaves behind when it dials for a request that
	// an idle connection then took.
	t.Cleanup(func() {
		front.transport.CloseIdleConnections()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	return c
}

// clusterEventually polls cond until it holds, failing after clusterWait.
func clusterEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", clusterWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterDo sends an admin request and returns the status and body.
func clusterDo(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

type clusterCall struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	CallbackURI string `json:"callbackUri"`
}

// clusterGet returns the call as r tracks it, or ok false on 404.
func clusterGet(t *testing.T, r *clusterReplica, id string) (clusterCall, bool) {
	t.Helper()
	code, body := clusterDo(t, http.MethodGet, r.admin+"/v1/calls/"+id, nil)
	switch code {
	case http.StatusOK:
		var v clusterCall
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: call %s: %v: %s", r.name, id, err, body)
		}
		return v, true
	case http.StatusNotFound:
		return clusterCall{}, false
	}
	t.Fatalf("%s: GET call %s = %d: %s", r.name, id, code, body)
	return clusterCall{}, false
}

// clusterCreate creates a peer-to-peer call through r's admin API; the
// simulated callee answers.
func clusterCreate(t *testing.T, c *cluster, r *clusterReplica, n int) string {
	t.Helper()
	body := fmt.Sprintf(`{"targets":[{"identity":{"user":{"id":"9b2e7c41-6a0d-4f4e-8c1a-%012d","displayName":"Callee %d"}}}],
		"requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`, n, n)
	code, out := clusterDo(t, http.MethodPost, r.admin+"/v1/calls", []byte(body))
	if code != http.StatusCreated {
		t.Fatalf("%s: create call = %d: %s", r.name, code, out)
	}
	var v clusterCall
	_ = json.Unmarshal(out, &v)
	if want := c.front.srv.URL + "/api/calls/" + r.name; v.ID == "" || v.CallbackURI != want {
		t.Fatalf("%s: created call %+v, want callbackUri %s", r.name, v, want)
	}
	return v.ID
}

// clusterIncoming makes someone call the bot through the emulator's
// /emulator/incoming; the notification goes to the front, not to a
// replica of the test's choosing.
func clusterIncoming(t *testing.T, c *cluster, n int) string {
	t.Helper()
	body := fmt.Sprintf(`{"from":{"user":"5d8f0a3c-2b1e-4c7d-9a6f-%012d","displayName":"Caller %d"}}`, n, n)
	code, out := post(t, c.emu.URL()+"/emulator/incoming", []byte(body))
	if code != http.StatusCreated {
		t.Fatalf("incoming call = %d: %s", code, out)
	}
	var v clusterCall
	_ = json.Unmarshal(out, &v)
	if v.ID == "" {
		t.Fatalf("incoming call without id: %s", out)
	}
	return v.ID
}

// clusterOwner waits until one replica holds the call in state want, and
// returns it; no other replica may hold the call at all.
func clusterOwner(t *testing.T, c *cluster, id, want string) *clusterReplica {
	t.Helper()
	var owner *clusterReplica
	clusterEventually(t, "call "+id+" "+want+" on some replica", func() bool {
		for _, r := range c.replicas {
			if v, ok := clusterGet(t, r, id); ok && v.State == want {
				owner = r
				return true
			}
		}
		return false
	})
	clusterOnlyOn(t, c, id, owner, c.replicas)
	return owner
}

// clusterOnlyOn checks that owner holds the call with its own callbackUri
// and that none of the others (among rs) track it.
func clusterOnlyOn(t *testing.T, c *cluster, id string, owner *clusterReplica, rs []*clusterReplica) {
	t.Helper()
	v, ok := clusterGet(t, owner, id)
	if !ok {
		t.Fatalf("call %s is not on its owner %s", id, owner.name)
	}
	if want := c.front.srv.URL + "/api/calls/" + owner.name; v.CallbackURI != want {
		t.Errorf("call %s on %s has callbackUri %q, want %q", id, owner.name, v.CallbackURI, want)
	}
	for _, r := range rs {
		if r == owner {
			continue
		}
		if v, ok := clusterGet(t, r, id); ok {
			t.Errorf("call %s, owned by %s, is also tracked by %s (state %q)", id, owner.name, r.name, v.State)
		}
	}
}

// clusterWaitState waits until r holds the call in state want.
func clusterWaitState(t *testing.T, r *clusterReplica, id, want string) {
	t.Helper()
	clusterEventually(t, fmt.Sprintf("call %s %s on %s", id, want, r.name), func() bool {
		v, ok := clusterGet(t, r, id)
		return ok && v.State == want
	})
}

func clusterHangup(t *testing.T, r *clusterReplica, id string) {
	t.Helper()
	if code, out := clusterDo(t, http.MethodDelete, r.admin+"/v1/calls/"+id, nil); code != http.StatusAccepted {
		t.Fatalf("%s: hang up %s = %d: %s", r.name, id, code, out)
	}
}

// clusterMetric returns the value of the sample name{labels} on r's
// /metrics, 0 when there is none.
func clusterMetric(t *testing.T, r *clusterReplica, name, labels string) float64 {
	t.Helper()
	code, body := get(t, r.admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s: /metrics = %d", r.name, code)
	}
	prefix := name + "{" + labels + "} "
	if labels == "" {
		prefix = name + " "
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %s%s", r.name, prefix, v)
			}
			return f
		}
	}
	return 0
}

// clusterDeliveries checks that Graph got 2xx for every notification it
// posted: nothing refused, lost or unreachable.
func clusterDeliveries(t *testing.T, c *cluster) {
	t.Helper()
	st := c.emu.DeliveryStats()
	if st.Delivered == 0 || st.Failed != 0 || st.Skipped != 0 || st.Dropped != 0 {
		t.Errorf("emulator deliveries: %+v", st)
		for _, d := range c.emu.Deliveries() {
			if d.Err != "" || d.Status/100 != 2 {
				t.Logf("delivery to %s for call %s: status %d, %s", d.URL, d.CallID, d.Status, d.Err)
			}
		}
	}
	if errs := c.front.proxyErrors(); len(errs) > 0 {
		t.Errorf("the front could not reach a replica it chose:\n%s", strings.Join(errs, "\n"))
	}
}

// TestClusterCallsSpreadOverReplicas: calls created on every replica and
// calls rung in through the front each end up on exactly one replica, whose
// instance is in their callbackUri; every notification reaches that owner
// through whichever replica the front picked, and forwarding shows in the
// metrics.
func TestClusterCallsSpreadOverReplicas(t *testing.T) {
	c := clusterStart(t, nil)
	const created, incoming = 21, 9

	owners := map[string]*clusterReplica{}
	var ids []string
	for i := range created {
		r := c.replicas[i%len(c.replicas)]
		id := clusterCreate(t, c, r, i)
		owners[id] = r
		ids = append(ids, id)
	}
	var rung []string
	for i := range incoming {
		rung = append(rung, clusterIncoming(t, c, i))
	}

	for _, id := range ids {
		if got := clusterOwner(t, c, id, "established"); got != owners[id] {
			t.Fatalf("call %s created on %s is established on %s", id, owners[id].name, got.name)
		}
	}
	perOwner := map[string]int{}
	for _, id := range rung {
		r := clusterOwner(t, c, id, "established")
		owners[id] = r
		perOwner[r.name]++
		ids = append(ids, id)
	}
	t.Logf("incoming calls answered per replica: %v", perOwner)

	for _, id := range ids {
		clusterHangup(t, owners[id], id)
	}
	for _, id := range ids {
		clusterWaitState(t, owners[id], id, "terminated")
		clusterOnlyOn(t, c, id, owners[id], c.replicas)
	}

	// Every replica took a share of the front's traffic, and the share
	// that was for another replica's calls went on to its owner.
	routed := c.front.routed()
	var forwarded float64
	for _, r := range c.replicas {
		if routed[r.name] == 0 {
			t.Errorf("the front sent nothing to %s: %v", r.name, routed)
		}
		forwarded += clusterMetric(t, r, "botd_forward_requests_total", `result="forwarded"`)
		for _, res := range []string{"failed", "loop"} {
			if n := clusterMetric(t, r, "botd_forward_requests_total", `result="`+res+`"`); n != 0 {
				t.Errorf("%s: botd_forward_requests_total{result=%q} = %v", r.name, res, n)
			}
		}
		if n := clusterMetric(t, r, "botd_calls", `state="established"`); n != 0 {
			t.Errorf("%s: %v calls still established", r.name, n)
		}
	}
	if forwarded == 0 {
		t.Errorf("no notification was forwarded (front: %v)", routed)
	}
	t.Logf("front requests per replica: %v; forwarded: %v", routed, forwarded)
	clusterDeliveries(t, c)
}

// TestClusterDrainOneReplica: a replica told to stop with live calls turns
// unready at once, takes no new call, keeps getting its calls'
// notifications through the other replicas until they end, and only then
// exits cleanly.
func TestClusterDrainOneReplica(t *testing.T) {
	c := clusterStart(t, map[string]map[string]string{"botd-1": {"BOTD_DRAIN_TIMEOUT": "1m"}})
	r0, r1, r2 := c.replicas[0], c.replicas[1], c.replicas[2]

	var mine []string
	for i := range 3 {
		mine = append(mine, clusterCreate(t, c, r1, i))
	}
	other := clusterCreate(t, c, r0, 3)
	for _, id := range mine {
		if got := clusterOwner(t, c, id, "established"); got != r1 {
			t.Fatalf("call %s created on botd-1 is established on %s", id, got.name)
		}
	}
	clusterOwner(t, c, other, "established")

	stopped := make(chan error, 1)
	go func() { stopped <- r1.stop() }()
	r1.logs.wait(t, "botd-1 draining", func(m map[string]any) bool {
		return m["message"] == "draining: waiting for live calls to end"
	})
	clusterEventually(t, "botd-1 unready", func() bool {
		code, _ := get(t, r1.admin+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	before := c.front.routed()
	answersBefore := len(c.emu.Requests(emulator.RouteAnswer))

	// New calls ring in while botd-1 drains: the others take them all.
	var rung []string
	for i := range 6 {
		rung = append(rung, clusterIncoming(t, c, 100+i))
	}
	for _, id := range rung {
		if got := clusterOwner(t, c, id, "established"); got == r1 {
			t.Errorf("incoming call %s was answered by the draining botd-1", id)
		}
	}
	for _, rq := range c.emu.Requests(emulator.RouteAnswer)[answersBefore:] {
		if bytes.Contains(rq.Body, []byte("/api/calls/botd-1")) {
			t.Errorf("an answer sent during the drain names botd-1: %s", rq.Body)
		}
	}
	code, body := get(t, r1.admin+"/v1/calls")
	if code != http.StatusOK {
		t.Fatalf("botd-1 list calls while draining = %d: %s", code, body)
	}
	var list struct{ Value []clusterCall }
	_ = json.Unmarshal(body, &list)
	if len(list.Value) != len(mine) {
		t.Errorf("botd-1 tracks %d calls while draining, want its %d: %s", len(list.Value), len(mine), body)
	}
	select {
	case err := <-stopped:
		t.Fatalf("botd-1 exited with live calls: %v", err)
	default:
	}

	// botd-1's calls end through its admin API, which still serves; their
	// notifications come through the front, which no longer picks botd-1,
	// so the other replicas forward them to it.
	forwardedBefore := clusterMetric(t, r0, "botd_forward_requests_total", `result="forwarded"`) +
		clusterMetric(t, r2, "botd_forward_requests_total", `result="forwarded"`)
	for _, id := range mine[:len(mine)-1] {
		clusterHangup(t, r1, id)
		clusterWaitState(t, r1, id, "terminated")
	}
	select {
	case err := <-stopped:
		t.Fatalf("botd-1 exited with a live call: %v", err)
	default:
	}
	last := mine[len(mine)-1]
	clusterHangup(t, r1, last)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("botd-1 run returned %v", err)
		}
	case <-time.After(clusterWait):
		t.Fatalf("botd-1 did not exit after its last call ended:\n%s", r1.logs.String())
	}
	r1.logs.wait(t, "botd-1 drained", func(m map[string]any) bool { return m["message"] == "drained: no live calls" })
	if strings.Contains(r1.logs.String(), "drain timeout passed") {
		t.Error("botd-1 hit its drain timeout instead of draining")
	}
	// The last call's terminated notification reached botd-1 (that is why
	// it drained), and Graph got botd-1's 202 for it through the replica
	// that forwarded it, which may answer just after botd-1 exits.
	clusterEventually(t, "Graph got 202 for the terminated notification of "+last, func() bool {
		for _, d := range c.emu.Deliveries() {
			if d.CallID == last && bytes.Contains(d.Body, []byte(`"terminated"`)) && d.Status == http.StatusAccepted {
				return true
			}
		}
		return false
	})

	after := c.front.routed()
	if after["botd-1"] != before["botd-1"] {
		t.Errorf("the front sent %d requests to botd-1 after it turned unready", after["botd-1"]-before["botd-1"])
	}
	forwardedAfter := clusterMetric(t, r0, "botd_forward_requests_total", `result="forwarded"`) +
		clusterMetric(t, r2, "botd_forward_requests_total", `result="forwarded"`)
	if forwardedAfter <= forwardedBefore {
		t.Errorf("botd-1's hang-up notifications were not forwarded to it: forwarded %v then %v", forwardedBefore, forwardedAfter)
	}
	for _, r := range []*clusterReplica{r0, r2} {
		if n := clusterMetric(t, r, "botd_forward_requests_total", `result="failed"`); n != 0 {
			t.Errorf("%s: %v forwards failed", r.name, n)
		}
	}

	// The others keep working after botd-1 is gone.
	for _, id := range append(rung, other) {
		var owner *clusterReplica
		for _, r := range []*clusterReplica{r0, r2} {
			if _, ok := clusterGet(t, r, id); ok {
				owner = r
			}
		}
		if owner == nil {
			t.Fatalf("call %s is on neither botd-0 nor botd-2", id)
		}
		clusterHangup(t, owner, id)
		clusterWaitState(t, owner, id, "terminated")
		clusterOnlyOn(t, c, id, owner, []*clusterReplica{r0, r2})
	}
	clusterDeliveries(t, c)
}

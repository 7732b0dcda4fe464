package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// peers is a table of instance -> base URL, filled as replicas start.
type peers struct {
	mu   sync.Mutex
	urls map[string]string
}

func (p *peers) url(instance string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls[instance]
}

func (p *peers) set(instance, url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls[instance] = url
}

// twoReplicas are two replicas without Graph: forwarding is the public
// router's and the store's alone.
func twoReplicas(t *testing.T) (a, b *rig, table *peers) {
	table = &peers{urls: map[string]string{}}
	client := &http.Client{Timeout: 5 * time.Second}
	a = newFakeRig(t, &fakeCalls{}, rigOptions{cluster: Cluster{Self: "botd-0", PeerURL: table.url, Client: client}})
	b = newFakeRig(t, &fakeCalls{}, rigOptions{cluster: Cluster{Self: "botd-1", PeerURL: table.url, Client: client}})
	table.set("botd-0", a.public.URL)
	table.set("botd-1", b.public.URL)
	return a, b, table
}

func established(id string) []byte {
	return []byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, id, id))
}

// TestNotificationReachesItsOwner: a notification for botd-1's call that
// lands on botd-0 is forwarded and applied on botd-1 only.
func TestNotificationReachesItsOwner(t *testing.T) {
	a, b, _ := twoReplicas(t)
	rp := do(t, http.MethodPost, a.public.URL+"/api/calls/botd-1", "application/json", established("call-1"))
	if rp.status != http.StatusAccepted {
		t.Fatalf("forwarded callback = %d: %s", rp.status, rp.body)
	}
	if _, ok := b.store.Call("call-1"); !ok {
		t.Fatal("the owner did not get the notification")
	}
	if _, ok := a.store.Call("call-1"); ok {
		t.Fatal("the forwarding replica applied it too")
	}
	if got := testutil.ToFloat64(a.metrics.forward.requests.WithLabelValues("forwarded")); got != 1 {
		t.Errorf("botd-0 forwarded = %v", got)
	}
	if got := testutil.ToFloat64(b.metrics.forward.requests.WithLabelValues("local")); got != 1 {
		t.Errorf("botd-1 local = %v", got)
	}
	// Its own calls a replica handles itself.
	if rp := do(t, http.MethodPost, a.public.URL+"/api/calls/botd-0", "application/json", established("call-0")); rp.status != http.StatusAccepted {
		t.Fatalf("own callback = %d", rp.status)
	}
	if _, ok := a.store.Call("call-0"); !ok {
		t.Fatal("own notification not applied")
	}
	// The owner's answer comes back as is: a bad body is the owner's 400.
	rp = do(t, http.MethodPost, a.public.URL+"/api/calls/botd-1", "application/json", []byte("nope"))
	if rp.status != http.StatusBadRequest {
		t.Fatalf("owner's error = %d", rp.status)
	}
	rp.problem(t)
}

// TestForwardBodyLimit: a body over BOTD_MAX_BODY for another replica is
// refused where it lands, 413, and never forwarded.
func TestForwardBodyLimit(t *testing.T) {
	a, b, _ := twoReplicas(t)
	huge := append([]byte(`{"value":[`), bytes.Repeat([]byte(" "), int(a.deps.MaxBody))...)
	rp := do(t, http.MethodPost, a.public.URL+"/api/calls/botd-1", "application/json", huge)
	if rp.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized forwarded body = %d: %s", rp.status, rp.body)
	}
	rp.problem(t)
	if got := testutil.ToFloat64(a.metrics.forward.requests.WithLabelValues("forwarded")); got != 0 {
		t.Errorf("an oversized body was forwarded (%v)", got)
	}
	if len(b.store.Calls()) != 0 {
		t.Fatal("state changed")
	}
}

func TestForwardLoopGuard(t *testing.T) {
	a, b, _ := twoReplicas(t)
	rp := doWithHeader(t, a.public.URL+"/api/calls/botd-1", established("call-1"), ForwardedHeader, "botd-1")
	if rp.status != http.StatusServiceUnavailable || rp.header.Get("Retry-After") == "" {
		t.Fatalf("loop = %d (Retry-After %q)", rp.status, rp.header.Get("Retry-After"))
	}
	if got := testutil.ToFloat64(a.metrics.forward.requests.WithLabelValues("loop")); got != 1 {
		t.Errorf("loop counted %v", got)
	}
	if _, ok := b.store.Call("call-1"); ok {
		t.Fatal("a looping notification was forwarded")
	}
}

func TestUnreachableOwnerGives503(t *testing.T) {
	a, b, _ := twoReplicas(t)
	b.public.Close()
	rp := do(t, http.MethodPost, a.public.URL+"/api/calls/botd-1", "application/json", established("call-1"))
	if rp.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rp.status)
	}
	rp.problem(t)
	if got := testutil.ToFloat64(a.metrics.forward.requests.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed counted %v", got)
	}
	rp = do(t, http.MethodPost, a.public.URL+"/api/calls/botd-9", "application/json", established("call-9"))
	if rp.status != http.StatusServiceUnavailable {
		t.Fatalf("unknown instance: status %d", rp.status)
	}
	if len(a.store.Calls()) != 0 {
		t.Fatal("state changed")
	}
}

func doWithHeader(t *testing.T, url string, body []byte, k, v string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytesReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(k, v)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b := readAll(res)
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

func TestPeerURLFunc(t *testing.T) {
	if PeerURLFunc(nil, "", 8080) != nil {
		t.Fatal("no peers must mean no PeerURL")
	}
	f := PeerURLFunc(map[string]string{"botd-0": "http://127.0.0.1:9001"}, "botd-peers.calls.svc.cluster.local", 8080)
	if got := f("botd-0"); got != "http://127.0.0.1:9001" {
		t.Errorf("static = %q", got)
	}
	if got := f("botd-1"); got != "http://botd-1.botd-peers.calls.svc.cluster.local:8080" {
		t.Errorf("dns = %q", got)
	}
	if got := PeerURLFunc(map[string]string{"a": "http://x:1"}, "", 8080)("b"); got != "" {
		t.Errorf("unknown without a domain = %q", got)
	}
}

package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

// TestJSONTypeErrorsSpeakJSON: a body member of the wrong type is named by
// its JSON path and the type the API expects in JSON's and Graph's words,
// never Go's.
func TestJSONTypeErrorsSpeakJSON(t *testing.T) {
	f := &fakeCalls{}
	r := newFakeRig(t, f, rigOptions{})
	const known = "k-1" // live: the fake's Live refuses nothing
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	cases := []struct {
		name, path string
		body       []byte
		detail     string
	}{
		{"targets a string", "/v1/calls", setJSON(t, p2p, "targets", "john"),
			`invalid JSON body: "targets" must be an array of invitationParticipantInfo, got a string`},
		{"nested identity a string", "/v1/calls", setJSON(t, p2p, "source", map[string]any{"identity": "bot"}),
			`invalid JSON body: "source.identity" must be an identitySet, got a string`},
		{"modalities an object", "/v1/calls", setJSON(t, p2p, "requestedModalities", map[string]any{}),
			`invalid JSON body: "requestedModalities" must be an array of strings, got an object`},
		{"phone id a number", "/v1/calls/" + known + "/participants/invite", []byte(`{"participants":[{"identity":{"phone":{"id":12345678901}}}]}`),
			`invalid JSON body: "participants.identity.phone.id" must be a string, got a number`},
		{"clientContext a boolean", "/v1/calls/" + known + "/participants/invite", []byte(`{"clientContext":true}`),
			`invalid JSON body: "clientContext" must be a string, got a boolean`},
		{"body an array", "/v1/calls", []byte(`[]`),
			`invalid JSON body: the body must be a call, got an array`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rp := r.adminDo(http.MethodPost, tc.path, tc.body)
			if rp.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rp.status, rp.body)
			}
			if p := rp.problem(t); p.Code != problem.Invalid || p.Detail != tc.detail {
				t.Errorf("problem = %+v\nwant detail %s", p, tc.detail)
			}
			f.askedNothing(t)
		})
	}
}

// TestEmptyBody: a route that needs a body answers an empty one 400
// "the request body is empty" and asks the calls service nothing; a route
// whose body is optional asks it with the zero body (Graph's defaults).
func TestEmptyBody(t *testing.T) {
	f := &fakeCalls{}
	r := newFakeRig(t, f, rigOptions{})
	const id = "k-1"
	for _, rt := range []struct{ method, path string }{
		{http.MethodPost, "/v1/calls"},
		{http.MethodPost, "/v1/calls/" + id + "/participants/invite"},
		{http.MethodPost, "/v1/calls/" + id + "/redirect"},
		{http.MethodPost, "/v1/calls/" + id + "/transfer"},
	} {
		for _, body := range [][]byte{nil, []byte(" \n")} {
			t.Run("required"+rt.path, func(t *testing.T) {
				before := f.askedCount()
				rp := r.adminDo(rt.method, rt.path, body)
				if rp.status != http.StatusBadRequest {
					t.Fatalf("status %d, want 400: %s", rp.status, rp.body)
				}
				p := rp.problem(t)
				if p.Code != problem.Invalid || p.Detail != "the request body is empty" || p.Instance != rt.path {
					t.Errorf("problem = %+v", p)
				}
				if n := f.askedCount(); n != before {
					t.Errorf("the calls service was asked %d times", n-before)
				}
			})
		}
	}
	for _, rt := range []struct{ method, path string }{
		{http.MethodPost, "/answer"},
		{http.MethodPost, "/reject"},
		{http.MethodPost, "/keepAlive"},
		{http.MethodDelete, ""},
	} {
		t.Run("optional"+rt.path, func(t *testing.T) {
			before := f.askedCount()
			rp := r.adminDo(rt.method, "/v1/calls/"+id+rt.path, nil)
			if bytes.Contains(rp.body, []byte("the request body is empty")) || rp.status == http.StatusBadRequest {
				t.Fatalf("status %d: %s", rp.status, rp.body)
			}
			if n := f.askedCount(); n == before {
				t.Errorf("the calls service was not asked (status %d: %s)", rp.status, rp.body)
			}
		})
	}
}

// logLines are the rig's JSON log lines with the message msg.
func logLines(t *testing.T, r *rig, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestLogFieldNames: the access log's latency is latency_ms, a number of
// milliseconds; request_id is botd's own request id (Graph's is
// graph_request_id: TestCallCreatedLogsGraphRequestID).
func TestLogFieldNames(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{view: callstate.CallView{ID: "new-1", State: model.StateEstablishing}}, rigOptions{})
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"botd-req-1"}}
	rp := send(t, http.MethodPost, r.admin.URL+"/v1/calls", h, withoutCallback(t, testkit.Seed(t, "003_01_request.json")))
	if rp.status != http.StatusCreated {
		t.Fatalf("create call = %d: %s", rp.status, rp.body)
	}
	access := logLines(t, r, "request")
	if len(access) != 1 {
		t.Fatalf("%d access log lines: %s", len(access), r.logs)
	}
	a := access[0]
	if ms, ok := a["latency_ms"].(float64); !ok || ms < 0 {
		t.Errorf("latency_ms = %#v, want a number of milliseconds: %v", a["latency_ms"], a)
	}
	if _, ok := a["latency"]; ok {
		t.Errorf("access log still has latency: %v", a)
	}
	if a["request_id"] != "botd-req-1" {
		t.Errorf("access log request_id = %v", a["request_id"])
	}
}

// problemKeys are the member names of a problem body, in order.
func problemKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			if depth == 1 && dec.More() {
				keys = append(keys, v)
				if _, err := dec.Token(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return keys
}

// TestCallbackMethodBeforeAuth: with inbound auth on, any method but POST
// on the callback paths answers 405 with Allow: POST and a problem body,
// not 401: the method is checked before the token.
func TestCallbackMethodBeforeAuth(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: newSecurity(t)})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		for _, path := range []string{"/api/calls", "/api/calls/botd-9"} {
			t.Run(method+path, func(t *testing.T) {
				rp := send(t, method, r.public.URL+path, http.Header{}, nil)
				if rp.status != http.StatusMethodNotAllowed {
					t.Fatalf("status %d, want 405: %s", rp.status, rp.body)
				}
				if a := rp.header.Get("Allow"); a != http.MethodPost {
					t.Errorf("Allow = %q", a)
				}
				p := rp.problem(t)
				if p.Code != problem.MethodNotAllow || p.Instance != path || p.Detail != "method "+method+" not allowed: Graph posts notifications" {
					t.Errorf("problem = %+v", p)
				}
			})
		}
	}
	if got := testutil.ToFloat64(r.metrics.callbackRequests.WithLabelValues("405")); got != 6 {
		t.Errorf("405s counted %v, want 6", got)
	}
}

// TestAuthProblemShape: the 401s of the callback and the admin API have the
// members, in the order, of every other problem botd writes, the request
// path as instance among them.
func TestAuthProblemShape(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: newSecurity(t)})
	want := problemKeys(t, r.adminDo(http.MethodGet, "/v1/calls/nope", nil).body)
	if strings.Join(want, ",") != "type,title,status,detail,instance,code" {
		t.Fatalf("handlers' problem members: %v", want)
	}
	for _, tc := range []struct{ url, path, detail string }{
		{r.public.URL + "/api/calls", "/api/calls", "missing bearer token"},
		{r.admin.URL + "/v1/calls", "/v1/calls", "admin API requires a valid bearer token"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rp := send(t, http.MethodPost, tc.url, http.Header{"Content-Type": {"application/json"}}, []byte(`{}`))
			if rp.status != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", rp.status, rp.body)
			}
			if got := problemKeys(t, rp.body); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("members %v, want %v: %s", got, want, rp.body)
			}
			p := rp.problem(t)
			if p.Type != "about:blank" || p.Title != "Unauthorized" || p.Code != problem.Unauthorized || p.Instance != tc.path || p.Detail != tc.detail {
				t.Errorf("problem = %+v", p)
			}
		})
	}
}

// handlersFamilies are the handlers' metrics whose series are set from
// start.
var handlersFamilies = []string{
	"botd_callback_requests_total", "botd_callback_documents_total", "botd_notifications_total",
	"botd_admin_requests_total", "botd_forward_requests_total",
}

func seriesCounts(t *testing.T, reg prometheus.Gatherer) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, name := range handlersFamilies {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	return out
}

// TestHandlersMetricsFromStart: the handlers' counters are on /metrics at
// 0 before any traffic, every fixed label combination, so that traffic on
// every route adds no series; a method outside the known ones is "other".
func TestHandlersMetricsFromStart(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{view: callstate.CallView{ID: "new-1", State: model.StateEstablishing}}, rigOptions{})
	before := seriesCounts(t, r.reg)
	for name, min := range map[string]int{
		"botd_callback_requests_total": len(callbackCodes), "botd_callback_documents_total": len(allDocumentResults),
		"botd_notifications_total": 1 + 4*5*4, "botd_admin_requests_total": 32 * len(adminCodes), // 32 admin routes
		"botd_forward_requests_total": 4,
	} {
		if before[name] != min {
			t.Errorf("%s: %d series from start, want %d", name, before[name], min)
		}
	}
	code, body := func() (int, string) {
		res, err := http.Get(r.admin.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res.StatusCode, string(readAll(res))
	}()
	for _, name := range handlersFamilies {
		if code != http.StatusOK || !strings.Contains(body, "# HELP "+name+" ") {
			t.Errorf("/metrics (%d) lacks %s", code, name)
		}
	}

	// Traffic on every route, successes and errors.
	const id = "m-1"
	r.track(id, model.StateEstablished)
	r.notify([]byte(`{"value":[{}]}`))
	r.notify([]byte(`not json`))
	send(t, http.MethodGet, r.public.URL+"/api/calls", nil, nil)
	send(t, http.MethodPost, r.public.URL+"/api/calls", http.Header{"Content-Type": {"text/plain"}}, []byte("x"))
	send(t, http.MethodPost, r.public.URL+"/api/calls/"+r.deps.Cluster.Self, http.Header{"Content-Type": {"application/json"}}, []byte(`{"value":[]}`))
	r.adminDo(http.MethodPost, "/v1/calls", withoutCallback(t, testkit.Seed(t, "003_01_request.json")))
	r.adminDo(http.MethodPost, "/v1/calls", []byte(`{`))
	r.adminDo(http.MethodGet, "/v1/calls", nil)
	r.adminDo(http.MethodGet, "/v1/calls/nope", nil)
	r.adminDo(http.MethodGet, "/v1/calls/"+id, nil)
	r.adminDo(http.MethodGet, "/v1/calls/"+id+"/participants", nil)
	r.adminDo(http.MethodPost, "/v1/calls/"+id+"/keepAlive", nil)
	r.adminDo(http.MethodPost, "/v1/calls/"+id+"/participants/invite", []byte(`{}`))
	r.adminDo(http.MethodDelete, "/v1/calls/"+id, nil)
	r.adminDo(http.MethodGet, "/livez", nil)
	r.adminDo(http.MethodGet, "/readyz", nil)
	r.drain()
	if after := seriesCounts(t, r.reg); after["botd_admin_requests_total"] != before["botd_admin_requests_total"] ||
		after["botd_callback_requests_total"] != before["botd_callback_requests_total"] ||
		after["botd_callback_documents_total"] != before["botd_callback_documents_total"] ||
		after["botd_forward_requests_total"] != before["botd_forward_requests_total"] {
		t.Errorf("traffic added series: %v -> %v", before, after)
	}
	if got := testutil.ToFloat64(r.metrics.adminRequests.WithLabelValues("/v1/calls", http.MethodPost, "201")); got != 1 {
		t.Errorf("create call counted %v", got)
	}
	if got := testutil.ToFloat64(r.metrics.adminRequests.WithLabelValues("/v1/calls/{callID}/participants/invite", http.MethodPost, "202")); got != 1 {
		t.Errorf("invite counted %v", got)
	}
	send(t, "BREW", r.admin.URL+"/v1/calls", nil, nil)
	if got := testutil.ToFloat64(r.metrics.adminRequests.WithLabelValues("unmatched", methodOther, "405")); got != 1 {
		t.Errorf("BREW counted %v under other", got)
	}
}

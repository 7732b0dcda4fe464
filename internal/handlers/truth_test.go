package handlers

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/botd/botd/internal/callstate"

	"github.com/botd/botd/internal/model"
)

// callRoutes is every admin route that names a call and acts on it, with a
// body Graph would take.
var callRoutes = []struct {
	method, path, body string
}{
	{http.MethodDelete, "", ""},
	{http.MethodPost, "/keepAlive", ""},
	{http.MethodPost, "/participants/invite", `{"participants":[{"identity":{"phone":{"id":"+12345678901"}}}]}`},
	{http.MethodPost, "/answer", `{}`},
	{http.MethodPost, "/reject", `{"reason":"busy"}`},
	{http.MethodPost, "/redirect", `{"targets":[{"identity":{"phone":{"id":"+12345678901"}}}]}`},
	{http.MethodPost, "/transfer", `{"transferTarget":{"identity":{"user":{"id":"u1"}}}}`},
	{http.MethodPost, "/playPrompt", `{"prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt","mediaInfo":{"uri":"https://cdn.contoso.com/beep.wav","resourceId":"r1"}}]}`},
	{http.MethodPost, "/recordResponse", `{"prompts":[{"mediaInfo":{"uri":"https://cdn.contoso.com/beep.wav"}}],"maxRecordDurationInSeconds":10}`},
	{http.MethodPost, "/subscribeToTone", ""},
	{http.MethodPost, "/sendDtmfTones", `{"tones":["tone1","pound"]}`},
	{http.MethodPost, "/cancelMediaProcessing", ""},
	{http.MethodPost, "/mute", ""},
	{http.MethodPost, "/unmute", `{}`},
	{http.MethodPost, "/updateRecordingStatus", `{"status":"recording"}`},
	{http.MethodPost, "/changeScreenSharingRole", `{"role":"viewer"}`},
}

// participantRoutes are the admin routes that name a participant of a call.
var participantRoutes = []struct {
	method, path, body string
}{
	{http.MethodPost, "/participants/p1/mute", ""},
	{http.MethodPost, "/participants/p1/startHoldMusic", ""},
	{http.MethodPost, "/participants/p1/stopHoldMusic", `{"clientContext":"cc"}`},
	{http.MethodDelete, "/participants/p1", ""},
}

func (r *rig) track(id string, state model.CallState) {
	r.t.Helper()
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"%s"}}]}`, id, id, state)))
}

func bodyOf(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// TestUnknownCallIs404: every route that names a call botd does not track
// answers 404 not_found, sends nothing to Graph, and never 502.
func TestUnknownCallIs404(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	routes := append([]struct{ method, path, body string }{{http.MethodGet, "", ""}, {http.MethodGet, "/participants", ""}}, callRoutes...)
	routes = append(routes, participantRoutes...)
	for _, rt := range routes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			rp := r.adminDo(rt.method, "/v1/calls/nope"+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != CodeNotFound || p.Detail != `call "nope" is not tracked` || p.Instance != "/v1/calls/nope"+rt.path {
				t.Errorf("problem = %+v", p)
			}
			if n := len(r.emu.GraphRequests()); n != before {
				t.Errorf("Graph got %d requests", n-before)
			}
		})
	}
}

// TestTerminatedCallIs409: every action on a call the store holds as
// terminated answers 409 conflict "call already terminated" and sends
// nothing; the call can still be read.
func TestTerminatedCallIs409(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.track(id, model.StateEstablished)
	r.track(id, model.StateTerminated)
	for _, rt := range append(callRoutes[:len(callRoutes):len(callRoutes)], participantRoutes...) {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			rp := r.adminDo(rt.method, "/v1/calls/"+id+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusConflict {
				t.Fatalf("status %d, want 409: %s", rp.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != CodeConflict || p.Detail != "call already terminated" || p.Title != "Conflict" {
				t.Errorf("problem = %+v", p)
			}
			if n := len(r.emu.GraphRequests()); n != before {
				t.Errorf("Graph got %d requests", n-before)
			}
			if v := r.view(id); len(v.Operations) != 0 || v.State != model.StateTerminated {
				t.Errorf("state changed: %s, %d operations", v.State, len(v.Operations))
			}
		})
	}
}

// TestGraphNotFoundIs404: a call botd holds as live that Graph no longer
// knows answers 404 not_found with Graph's ids, not 502.
func TestGraphNotFoundIs404(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	for _, rt := range callRoutes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			// Tracked by botd, unknown to Graph.
			id := fmt.Sprintf("0000000%d-0000-0000-0000-000000000000", len(r.store.Calls()))
			r.track(id, model.StateEstablished)
			rp := r.adminDo(rt.method, "/v1/calls/"+id+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != CodeNotFound || p.GraphStatus != http.StatusNotFound || p.ClientRequestID == "" {
				t.Errorf("problem = %+v", p)
			}
			if len(r.emu.GraphRequests()) == 0 {
				t.Error("Graph was not asked")
			}
		})
	}
}

// TestUnknownParticipantIs404: a participant route naming someone not in
// the call's roster answers 404 and sends nothing; one in the roster is
// sent to Graph.
func TestUnknownParticipantIs404(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.track(id, model.StateEstablished)
	for _, rt := range participantRoutes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			rp := r.adminDo(rt.method, "/v1/calls/"+id+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
			}
			if p := rp.problem(t); p.Code != CodeNotFound || p.Detail != `participant "p1" is not in call "`+id+`"` {
				t.Errorf("problem = %+v", p)
			}
			if n := len(r.emu.GraphRequests()); n != before {
				t.Errorf("Graph got %d requests", n-before)
			}
			if v := r.view(id); len(v.Operations) != 0 {
				t.Errorf("%d operations recorded", len(v.Operations))
			}
		})
	}
}

// TestEachCallItsTenantsToken: two calls of two tenants (their create-call
// tenantId) are each acted on with a token for their own tenant, and each
// tenant's token is fetched once for all the requests of its lifetime; a
// call whose notifications name no tenant takes the callback token's tid.
func TestEachCallItsTenantsToken(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	const tenantA, tenantB = "3f7c9a10-1b2c-4d3e-8f40-5a6b7c8d9e01", "contoso.onmicrosoft.com"
	p2p := withoutCallback(t, seed(t, "003_01_request.json"))
	ids := map[string]string{}
	before := r.emu.TokenFetches()
	for _, tenant := range []string{tenantA, tenantB} {
		rp := r.adminDo(http.MethodPost, "/v1/calls", setJSON(t, p2p, "tenantId", tenant))
		if rp.status != http.StatusCreated {
			t.Fatalf("create for %s = %d: %s", tenant, rp.status, rp.body)
		}
		var v callstate.CallView
		rp.decode(t, &v)
		ids[v.ID] = tenant
	}
	fetches := r.emu.TokenFetches()
	if fetches-before != 2 {
		t.Errorf("%d token fetches for two tenants' creates, want 2", fetches-before)
	}
	for round := 0; round < 3; round++ {
		for id := range ids {
			if rp := r.adminDo(http.MethodPost, "/v1/calls/"+id+"/keepAlive", nil); rp.status != http.StatusOK {
				t.Fatalf("keepAlive %s = %d: %s", id, rp.status, rp.body)
			}
		}
	}
	if n := r.emu.TokenFetches(); n != fetches {
		t.Errorf("%d more token fetches for 6 keepAlives: tokens are not cached per tenant", n-fetches)
	}
	seen := map[string]int{}
	for _, req := range r.emu.GraphRequests() {
		want, ok := ids[req.CallID]
		if !ok {
			continue
		}
		if got := r.emu.RequestTenant(req); got != want {
			t.Errorf("%s %s carried a token of tenant %q, want %q", req.Method, req.Path, got, want)
		}
		seen[want]++
	}
	if seen[tenantA] != 3 || seen[tenantB] != 3 {
		t.Errorf("keepAlives per tenant %v, want 3 each", seen)
	}

}

// TestCallTakesCallbackTenant: a call whose notifications name no tenantId
// takes the tid of the callback token that carried them, and is acted on
// with that tenant's token.
func TestCallTakesCallbackTenant(t *testing.T) {
	sec := newSecurity(t)
	r := newRig(t, rigOptions{automation: automation0(), secure: sec})
	const tid = "fabrikam.onmicrosoft.com"
	r.emu.PutCall(model.Call{ID: "t-1", State: model.StateEstablished})
	tok := sec.sign(t, jwt.SigningMethodRS256, sec.key, with(sec.claims(), "tid", tid), sec.kid)
	body := []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/t-1","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}`)
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}}
	if rp := send(t, http.MethodPost, r.public.URL+"/api/calls", h, body); rp.status != http.StatusAccepted {
		t.Fatalf("callback = %d: %s", rp.status, rp.body)
	}
	if v := r.view("t-1"); v.TenantID != tid {
		t.Fatalf("tenantId %q, want the token's %q", v.TenantID, tid)
	}
	rp := send(t, http.MethodPost, r.admin.URL+"/v1/calls/t-1/keepAlive", http.Header{"Authorization": {"Bearer " + sec.adminToken}}, nil)
	if rp.status != http.StatusOK {
		t.Fatalf("keepAlive = %d: %s", rp.status, rp.body)
	}
	reqs := r.emu.GraphRequests()
	if last := reqs[len(reqs)-1]; last.CallID != "t-1" || r.emu.RequestTenant(last) != tid {
		t.Fatalf("keepAlive went with a token of %q", r.emu.RequestTenant(last))
	}
}

// TestChangesStream: GET /v1/changes streams the store's changes as
// server-sent events, only the named call's with ?callId=, in order.
func TestChangesStream(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0()})
	if rp := r.adminDo(http.MethodGet, "/v1/changes?callId=a%2Fb", nil); rp.status != http.StatusBadRequest {
		t.Fatalf("bad callId = %d: %s", rp.status, rp.body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.admin.URL+"/v1/changes?callId=s-1", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(res.Body)
	lines.Scan() // the opening comment: the stream is subscribed
	r.track("other", model.StateEstablished)
	r.track("s-1", model.StateEstablishing)
	r.track("s-1", model.StateEstablished)
	var events []string
	for len(events) < 4 && lines.Scan() {
		if ev, ok := strings.CutPrefix(lines.Text(), "event: "); ok {
			events = append(events, ev)
		}
		if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok && !strings.Contains(data, `"callId":"s-1"`) {
			t.Fatalf("another call's change: %s", data)
		}
	}
	if got := strings.Join(events, ","); got != "call_tracked,call_state_changed,call_state_changed,call_established" {
		t.Fatalf("events %s", got)
	}
}

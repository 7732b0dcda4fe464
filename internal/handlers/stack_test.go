// The handler-level integration tests: the admin API and the callback
// over the whole stack (the rig: the real call store, calls service,
// automation and Graph client against the emulator), for the rules that
// are the calls service's and Graph's, not the handlers' own: what reaches
// Graph and with which token, what is recorded, what is validated and
// counted, how Graph's answers come back. The handlers' own job (decoding,
// routes, status codes, problem bodies, logs and metrics, the callback)
// is tested over the fake calls service (fakeCalls and newFakeRig, in
// thin_test.go); internal/calls has the service's unit tests, and cmd/botd
// the end-to-end ones.

package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/automation"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

var emulatorFault503 = emulator.Fault{Status: http.StatusServiceUnavailable}

// automation0 leaves incoming calls alone and keepAlive far away, for tests
// that watch notifications only.
func automation0() automation.Config {
	return automation.Config{KeepAlive: time.Hour}
}

// sameJSON compares two JSON documents semantically, treating null as
// absent (Graph's examples write unset fields as null).
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got: %v", err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want: %v", err)
	}
	g, w = dropNulls(g), dropNulls(w)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", " ")
		wb, _ := json.MarshalIndent(w, "", " ")
		t.Fatalf("request bodies differ:\ngot  %s\nwant %s", gb, wb)
	}
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNulls(e)
		}
	case []any:
		for i := range x {
			x[i] = dropNulls(x[i])
		}
	}
	return v
}

// setJSON sets a top-level member of a JSON object.
func setJSON(t *testing.T, body []byte, key string, val any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = val
	out, _ := json.Marshal(m)
	return out
}

// TestCreateCallSeedFlow joins the seed's scheduled meeting through the
// admin API: Graph receives the seed's body with botd's callbackUri, answers
// with the seed's 201, and the seed's notifications drive the call to
// established with its roster.
func TestCreateCallSeedFlow(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	r.emu.Script(emulator.RouteCreateCall, emulator.Fault{
		Status: http.StatusCreated, Body: testkit.Seed(t, "003_15_response.json"),
		Header: http.Header{"Location": {r.emu.GraphURL() + "/communications/calls/2f1a1100-b174-40a0-aba7-0b405e01ed92"}, "Content-Type": {"application/json"}},
	})
	rp := r.adminDo(http.MethodPost, "/v1/calls", withoutCallback(t, testkit.Seed(t, "003_14_request.json")))
	if rp.status != http.StatusCreated {
		t.Fatalf("POST /v1/calls = %d: %s", rp.status, rp.body)
	}
	const id = "2f1a1100-b174-40a0-aba7-0b405e01ed92"
	if loc := rp.header.Get("Location"); loc != "/v1/calls/"+id {
		t.Errorf("Location = %q", loc)
	}
	var v callstate.CallView
	rp.decode(t, &v)
	if v.ID != id || v.State != model.StateEstablishing || v.MyParticipantID != "05491616-385f-44a8-9974-18cc5f9933c1" || v.CallChainID == "" || !v.CreatedByBot {
		t.Fatalf("created view = %+v", v)
	}
	sent := r.emu.Requests(emulator.RouteCreateCall)
	if len(sent) != 1 {
		t.Fatalf("Graph got %d create-call requests", len(sent))
	}
	sameJSON(t, sent[0].Body, r.expectedCreateBody(testkit.Seed(t, "003_14_request.json")))

	r.mustNotify(testkit.Seed(t, "003_16_notification.json"))
	r.mustNotify(testkit.Seed(t, "003_17_notification.json"))
	r.mustNotify(testkit.Seed(t, "003_18_notification.json"))
	v = r.view(id)
	if v.State != model.StateEstablished || len(v.Participants) != 2 {
		t.Fatalf("after notifications: state %s, %d participants", v.State, len(v.Participants))
	}
	var from []string
	for _, tr := range v.Transitions {
		from = append(from, string(tr.From)+">"+string(tr.To))
	}
	if got := strings.Join(from, " "); !strings.Contains(got, "establishing>established") {
		t.Errorf("transitions = %s", got)
	}
	rp = r.adminDo(http.MethodGet, "/v1/calls", nil)
	var list listReply[callstate.CallSummary]
	rp.decode(t, &list)
	if len(list.Value) != 1 || list.Value[0].ID != id || list.Value[0].ParticipantCount != 2 || list.Value[0].State != model.StateEstablished {
		t.Fatalf("GET /v1/calls = %+v", list)
	}
}

// TestCreateCallEveryForm sends every create-call seed request through the
// admin API (without its callbackUri) and checks that Graph received the
// seed's body with botd's callbackUri and, where the seed has none, botd's
// source and tenant.
func TestCreateCallEveryForm(t *testing.T) {
	for _, name := range []string{"003_01_request.json", "003_08_request.json", "003_10_request.json", "003_12_request.json", "003_14_request.json", "003_20_request.json", "003_22_request.json", "003_24_request.json", "003_26_request.json", "003_28_request.json"} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
			body := testkit.Seed(t, name)
			rp := r.adminDo(http.MethodPost, "/v1/calls", withoutCallback(t, body))
			if rp.status != http.StatusCreated {
				t.Fatalf("POST /v1/calls = %d: %s", rp.status, rp.body)
			}
			var v callstate.CallView
			rp.decode(t, &v)
			if v.ID == "" || v.CallbackURI != r.callbackURL {
				t.Fatalf("view = %+v", v)
			}
			want := r.expectedCreateBody(body)
			sent := r.emu.Requests(emulator.RouteCreateCall)
			if len(sent) != 1 {
				t.Fatalf("Graph got %d requests", len(sent))
			}
			sameJSON(t, sent[0].Body, want)
		})
	}
}

// expectedCreateBody is what Graph should receive for a seed create-call
// request sent through the admin API: botd's callbackUri, and botd's source
// and tenant where the seed has none.
func (r *rig) expectedCreateBody(body []byte) []byte {
	t := r.t
	want := setJSON(t, body, "callbackUri", r.callbackURL)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	if m["source"] == nil {
		want = setJSON(t, want, "source", map[string]any{
			"@odata.type": model.ODataParticipantInfo,
			"identity": map[string]any{"@odata.type": model.ODataIdentitySet, "application": map[string]any{
				"@odata.type": model.ODataIdentity, "id": "app-1", "displayName": "botd-test"}},
		})
	}
	if m["tenantId"] == nil {
		want = setJSON(t, want, "tenantId", "tenant-1")
	}
	return want
}

// TestInviteSeedFlows runs the invite examples: botd records the operation,
// sends the seed's body, answers 202 with Graph's operation, and the seed's
// notifications complete it and update the roster, including example 2's
// id-less operation matched by clientContext.
func TestInviteSeedFlows(t *testing.T) {
	cases := []struct {
		name, callID, request, response, opNote, roster string
		opID                                            string
		rosterCall                                      string
		rosterSize                                      int
	}{
		{"one participant", inviteCall, "001_01_request.json", "001_02_response.json", "001_03_notification.json", "001_04_notification.json", "eec3812a-fdc3-4fb4-825c-a06c9f35414e", inviteCall, 1},
		{"several participants", inviteCall2, "001_05_request.json", "001_06_response.json", "001_07_notification.json", "001_08_notification.json", "eec3812a-fdc3-4fb4-825c-a06c9f35414e", inviteCall2, 2},
		{"replacing a p2p call", inviteCall, "001_09_request.json", "001_10_response.json", "001_11_notification.json", "001_12_notification.json", "278405a3-f568-4b3e-b684-009193463064", replacedCall, 1},
		{"pstn", inviteCall, "001_13_request.json", "001_14_response.json", "001_15_notification.json", "001_16_notification.json", "eec3812a-fdc3-4fb4-825c-a06c9f35414e", inviteCall, 1},
		{"move a participant", inviteCall, "001_17_request.json", "001_18_response.json", "001_19_notification.json", "001_20_notification.json", "278405a3-f568-4b3e-b684-009193463064", inviteCall, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
			// The call exists: an established call botd knows.
			r.emu.PutCall(model.Call{ID: tc.callID, State: model.StateEstablished, CallbackURI: r.callbackURL})
			r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, tc.callID, tc.callID)))
			r.emu.Script(emulator.RouteInvite, emulator.Fault{
				Status: http.StatusOK, Body: testkit.Seed(t, tc.response),
				Header: http.Header{"Content-Type": {"application/json"}, "Location": {r.emu.GraphURL() + "/communications/calls/" + tc.callID + "/operations/" + tc.opID}},
			})
			rp := r.adminDo(http.MethodPost, "/v1/calls/"+tc.callID+"/participants/invite", testkit.Seed(t, tc.request))
			if rp.status != http.StatusAccepted {
				t.Fatalf("invite = %d: %s", rp.status, rp.body)
			}
			var op model.Operation
			rp.decode(t, &op)
			if op.ID != tc.opID || op.ClientContext != ctxSeed || op.Status != model.OpRunning {
				t.Fatalf("operation = %+v", op)
			}
			sent := r.emu.Requests(emulator.RouteInvite)
			if len(sent) != 1 {
				t.Fatalf("Graph got %d invites", len(sent))
			}
			sameJSON(t, sent[0].Body, testkit.Seed(t, tc.request))

			v := r.view(tc.callID)
			if len(v.Operations) != 1 || v.Operations[0].Status != model.OpRunning {
				t.Fatalf("before the notification: %+v", v.Operations)
			}
			r.mustNotify(testkit.Seed(t, tc.opNote))
			r.mustNotify(testkit.Seed(t, tc.roster))
			v = r.view(tc.callID)
			if len(v.Operations) != 1 || v.Operations[0].Status != model.OpCompleted || v.Operations[0].ClientContext != ctxSeed {
				t.Fatalf("operation after its notification: %+v", v.Operations)
			}
			rv := r.view(tc.rosterCall)
			if len(rv.Participants) != tc.rosterSize {
				t.Fatalf("roster of %s: %d participants, want %d", tc.rosterCall, len(rv.Participants), tc.rosterSize)
			}
			if got := testutil.ToFloat64(r.metrics.adminRequests.WithLabelValues("/v1/calls/{callID}/participants/invite", "POST", "202")); got != 1 {
				t.Errorf("admin requests counted %v", got)
			}
		})
	}
}

func TestInviteGeneratesClientContext(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, id, id)))
	rp := r.adminDo(http.MethodPost, "/v1/calls/"+id+"/participants/invite", []byte(`{"participants":[{"identity":{"phone":{"id":"+12345678901"}}}]}`))
	if rp.status != http.StatusAccepted {
		t.Fatalf("invite = %d: %s", rp.status, rp.body)
	}
	var op model.Operation
	rp.decode(t, &op)
	if op.ClientContext == "" || op.ID == "" {
		t.Fatalf("operation = %+v", op)
	}
	v := r.view(id)
	if len(v.Operations) != 1 || v.Operations[0].ClientContext != op.ClientContext || v.Operations[0].ID != op.ID {
		t.Fatalf("recorded = %+v", v.Operations)
	}
}

// TestAdminErrors: each admin request the calls service refuses by its
// rules gets its status and a problem body, sends nothing to Graph and
// changes no state (the requests the handlers refuse themselves:
// TestAdminDecodingErrors).
func TestAdminErrors(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	known := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, known, known)))
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		rule               string
	}{
		{"foreign callbackUri", http.MethodPost, "/v1/calls", setJSON(t, p2p, "callbackUri", "https://evil.example/cb"), http.StatusUnprocessableEntity, "callbackUri.own"},
		{"no targets", http.MethodPost, "/v1/calls", setJSON(t, p2p, "targets", []any{}), http.StatusUnprocessableEntity, "required"},
		{"bad phone", http.MethodPost, "/v1/calls", setJSON(t, p2p, "targets", []any{map[string]any{"identity": map[string]any{"phone": map[string]any{"id": "12345"}}}}), http.StatusUnprocessableEntity, "phone.e164"},
		{"six group targets", http.MethodPost, "/v1/calls", setJSON(t, p2p, "targets", sixUsers()), http.StatusUnprocessableEntity, "groupCall.maxTargets"},
		{"invite unknown call", http.MethodPost, "/v1/calls/nope/participants/invite", testkit.Seed(t, "001_13_request.json"), http.StatusNotFound, ""},
		{"invite long clientContext", http.MethodPost, "/v1/calls/" + known + "/participants/invite", setJSON(t, testkit.Seed(t, "001_13_request.json"), "clientContext", strings.Repeat("x", 257)), http.StatusUnprocessableEntity, "clientContext.maxLength"},
		{"invite six", http.MethodPost, "/v1/calls/" + known + "/participants/invite", []byte(`{"participants":` + string(mustJSON(sixUsers())) + `}`), http.StatusUnprocessableEntity, "invite.maxParticipants"},
		{"invite move two", http.MethodPost, "/v1/calls/" + known + "/participants/invite", []byte(`{"participants":[{"participantId":"p1","identity":{"user":{"id":"u1"}}},{"identity":{"user":{"id":"u2"}}}]}`), http.StatusUnprocessableEntity, "invite.participantIdSingle"},
		{"invite no participants", http.MethodPost, "/v1/calls/" + known + "/participants/invite", []byte(`{}`), http.StatusUnprocessableEntity, "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			calls := r.store.Calls()
			rp := r.adminDo(tc.method, tc.path, tc.body)
			rp.refused(t, tc.status, tc.rule)
			if n := len(r.emu.GraphRequests()); n != before {
				t.Errorf("Graph got %d requests", n-before)
			}
			if after := r.store.Calls(); len(after) != len(calls) {
				t.Errorf("calls %d -> %d", len(calls), len(after))
			}
			v := r.view(known)
			if len(v.Operations) != 0 {
				t.Errorf("an operation was recorded: %+v", v.Operations)
			}
		})
	}
}

func sixUsers() []any {
	var out []any
	for i := 0; i < 6; i++ {
		out = append(out, map[string]any{"identity": map[string]any{"user": map[string]any{"id": fmt.Sprintf("u%d", i)}}})
	}
	return out
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// TestGraphErrorsBecome502 checks that Graph's refusal reaches the user
// with Graph's code and request id, and that a failed invite is failed.
func TestGraphErrorsBecome502(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	r.emu.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusForbidden, Code: "Forbidden"})
	rp := r.adminDo(http.MethodPost, "/v1/calls", withoutCallback(t, testkit.Seed(t, "003_01_request.json")))
	if rp.status != http.StatusBadGateway {
		t.Fatalf("status %d: %s", rp.status, rp.body)
	}
	p := rp.problem(t)
	if p.GraphStatus != http.StatusForbidden || p.GraphCode != "Forbidden" || p.RequestID == "" || p.ClientRequestID == "" {
		t.Fatalf("problem = %+v", p)
	}
	if len(r.store.Calls()) != 0 {
		t.Fatal("a refused call was tracked")
	}

	id := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, id, id)))
	r.emu.Script(emulator.RouteInvite, emulator.Fault{Status: http.StatusBadRequest, Code: "BadRequest"})
	rp = r.adminDo(http.MethodPost, "/v1/calls/"+id+"/participants/invite", testkit.Seed(t, "001_13_request.json"))
	if rp.status != http.StatusBadGateway {
		t.Fatalf("invite status %d: %s", rp.status, rp.body)
	}
	v := r.view(id)
	if len(v.Operations) != 1 || v.Operations[0].Status != model.OpFailed {
		t.Fatalf("operations = %+v", v.Operations)
	}
}

// TestRetriedThenSucceeds: a 503 then success is invisible to the user.
func TestRetriedThenSucceeds(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	r.emu.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "0"})
	rp := r.adminDo(http.MethodPost, "/v1/calls", withoutCallback(t, testkit.Seed(t, "003_01_request.json")))
	if rp.status != http.StatusCreated {
		t.Fatalf("status %d: %s", rp.status, rp.body)
	}
	if n := len(r.emu.Requests(emulator.RouteCreateCall)); n != 2 {
		t.Fatalf("Graph got %d create-call attempts, want 2", n)
	}
}

// TestIncomingCallIsAnswered: a created incoming-call notification makes
// botd answer, with its own callbackUri, outside the callback request.
func TestIncomingCallIsAnswered(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation.Config{KeepAlive: time.Hour}, incoming: "answer"})
	id := r.emu.PutCall(model.Call{State: model.StateIncoming, Direction: "incoming"})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"created","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"incoming","direction":"incoming",
		"source":{"identity":{"phone":{"id":"+12345678901"}}},"targets":[{"identity":{"application":{"id":"app-1"}}}]}}]}`, id, id)))
	eventually(t, "the incoming call is answered", func() bool { return len(r.emu.Requests(emulator.RouteAnswer)) == 1 })
	var body map[string]any
	if err := json.Unmarshal(r.emu.Requests(emulator.RouteAnswer)[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["callbackUri"] != r.callbackURL {
		t.Errorf("answer callbackUri = %v", body["callbackUri"])
	}
	r.drain()
	v := r.view(id)
	if v.State != model.StateIncoming || v.Direction != "incoming" {
		t.Errorf("view = %s %s", v.State, v.Direction)
	}
}

// TestKeepAliveIsSent: an established call gets keepAlive on the interval.
func TestKeepAliveIsSent(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation.Config{KeepAlive: 20 * time.Millisecond}, incoming: "ignore"})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, id, id)))
	eventually(t, "two keepAlives", func() bool { return len(r.emu.Requests(emulator.RouteKeepAlive)) >= 2 })
	if got := r.emu.Requests(emulator.RouteKeepAlive)[0].CallID; got != id {
		t.Errorf("keepAlive for %q", got)
	}
}

// TestRosterGapResync: a delta roster with a gap that never fills makes
// botd list the participants and replace the roster.
func TestRosterGapResync(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", store: callstate.Config{DeltaGapTimeout: 20 * time.Millisecond}})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished})
	john := model.Participant{ID: "p-john", Info: model.ParticipantInfo{Identity: &model.IdentitySet{User: &model.Identity{ID: "john"}}}}
	r.emu.SetParticipants(id, []model.Participant{john})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, id, id)))
	// Delta 2 arrives; delta 1 never does.
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s/participants","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","sequenceNumber":2,"participants":[{"@odata.type":"#microsoft.graph.participant","id":"p-x","rosterSequenceNumber":2,"info":{"identity":{"user":{"id":"x"}}}}]}]}]}`, id)))
	eventually(t, "list participants", func() bool { return len(r.emu.Requests(emulator.RouteListParticipants)) == 1 })
	eventually(t, "roster replaced", func() bool {
		v := r.view(id)
		return !v.RosterNeedsResync && len(v.Participants) == 1 && v.Participants[0].ID == "p-john"
	})
}

func TestCallActions(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	for _, tc := range []struct {
		path   string
		body   string
		route  emulator.Route
		status int
	}{
		{"/answer", `{}`, emulator.RouteAnswer, http.StatusAccepted},
		{"/reject", `{"reason":"busy"}`, emulator.RouteReject, http.StatusAccepted},
		{"/redirect", `{"targets":[{"identity":{"phone":{"id":"+12345678901"}}}]}`, emulator.RouteRedirect, http.StatusAccepted},
		{"/transfer", `{"transferTarget":{"identity":{"user":{"id":"u1"}}}}`, emulator.RouteTransfer, http.StatusAccepted},
		{"/keepAlive", ``, emulator.RouteKeepAlive, http.StatusOK},
		{"", ``, emulator.RouteDeleteCall, http.StatusAccepted},
	} {
		t.Run(string(tc.route), func(t *testing.T) {
			state := model.StateEstablished
			if tc.route == emulator.RouteAnswer || tc.route == emulator.RouteReject || tc.route == emulator.RouteRedirect {
				state = model.StateIncoming
			}
			id := r.emu.PutCall(model.Call{State: state, CallbackURI: r.callbackURL})
			// botd acts only on calls it tracks: it hears of this one first.
			r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"%s"}}]}`, id, id, state)))
			method := http.MethodPost
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			if tc.route == emulator.RouteDeleteCall {
				method = http.MethodDelete
			}
			rp := r.adminDo(method, "/v1/calls/"+id+tc.path, body)
			if rp.status != tc.status {
				t.Fatalf("status %d: %s", rp.status, rp.body)
			}
			var ar actionReply
			rp.decode(t, &ar)
			if ar.CallID != id || ar.ClientRequestID == "" {
				t.Errorf("reply = %+v", ar)
			}
			got := r.emu.Requests(tc.route)
			if len(got) == 0 || got[len(got)-1].CallID != id {
				t.Fatalf("Graph did not get %s for %s", tc.route, id)
			}
			if tc.route == emulator.RouteAnswer || tc.route == emulator.RouteRedirect {
				var m map[string]any
				_ = json.Unmarshal(got[len(got)-1].Body, &m)
				if m["callbackUri"] != r.callbackURL {
					t.Errorf("callbackUri = %v", m["callbackUri"])
				}
			}
		})
	}
}

// TestUnknownCallSendsNothing: every route that names a call botd does
// not track answers 404 not_found, sends nothing to Graph, and never 502,
// over the whole stack (the handlers' side: TestUntrackedCallIs404).
func TestUnknownCallSendsNothing(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	routes := append([]struct{ method, path, body string }{{http.MethodGet, "", ""}, {http.MethodGet, "/participants", ""}}, callRoutes...)
	routes = append(routes, participantRoutes...)
	for _, rt := range routes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			rp := r.adminDo(rt.method, "/v1/calls/nope"+rt.path, bodyOf(rt.body))
			rp.untracked(t, "/v1/calls/nope"+rt.path)
			if n := len(r.emu.GraphRequests()); n != before {
				t.Errorf("Graph got %d requests", n-before)
			}
		})
	}
}

// TestTerminatedCallSendsNothing: every action on a call the store holds
// as terminated answers 409 conflict "call already terminated" and sends
// nothing; the call can still be read (the handlers' side:
// TestTerminatedCallIs409).
func TestTerminatedCallSendsNothing(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
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
			if p.Code != problem.Conflict || p.Detail != "call already terminated" || p.Title != "Conflict" {
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
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
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
			if p.Code != problem.NotFound || p.GraphStatus != http.StatusNotFound || p.ClientRequestID == "" {
				t.Errorf("problem = %+v", p)
			}
			if len(r.emu.GraphRequests()) == 0 {
				t.Error("Graph was not asked")
			}
		})
	}
}

// TestUnknownParticipantSendsNothing: a participant route naming someone
// not in the call's roster answers 404 and sends nothing (the handlers'
// side: TestUnknownParticipantIs404).
func TestUnknownParticipantSendsNothing(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	id := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.track(id, model.StateEstablished)
	for _, rt := range participantRoutes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			before := len(r.emu.GraphRequests())
			rp := r.adminDo(rt.method, "/v1/calls/"+id+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
			}
			if p := rp.problem(t); p.Code != problem.NotFound || p.Detail != `participant "p1" is not in call "`+id+`"` {
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
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	const tenantA, tenantB = "3f7c9a10-1b2c-4d3e-8f40-5a6b7c8d9e01", "contoso.onmicrosoft.com"
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
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
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: sec})
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

// validationFailures is botd_graph_validation_failures_total{operation, rule}.
func validationFailures(t *testing.T, reg prometheus.Gatherer, op, rule string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "botd_graph_validation_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["operation"] == op && l["rule"] == rule {
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no series operation=%q rule=%q", op, rule)
	}
	t.Fatal("botd_graph_validation_failures_total not gathered")
	return 0
}

// TestAdminRefusalsAreRuleFailures: the 422s the admin API answers itself
// (a foreign callbackUri, and Graph's rules checked before the request
// reaches the client) carry rule and field, and are counted in the Graph
// client's validation metric under the operation and rule, in series that
// existed from start.
func TestAdminRefusalsAreRuleFailures(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	known := r.emu.PutCall(model.Call{State: model.StateEstablished, CallbackURI: r.callbackURL})
	r.track(known, model.StateEstablished)
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	before, err := testutil.GatherAndCount(r.reg, "botd_graph_validation_failures_total")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, op, rule, field string
		body                        []byte
		detail                      string
	}{
		{"foreign callbackUri", "/v1/calls", "create_call", "callbackUri.own", "callbackUri",
			setJSON(t, p2p, "callbackUri", "https://evil.example/cb"),
			`invalid callbackUri: "https://evil.example/cb" is not botd's own (` + r.callbackURL + `): botd must receive the call's notifications to track it; leave it out [callbackUri.own]`},
		{"answer, foreign callbackUri", "/v1/calls/" + known + "/answer", "answer", "callbackUri.own", "callbackUri",
			[]byte(`{"callbackUri":"https://evil.example/cb"}`), ""},
		{"redirect, foreign callbackUri", "/v1/calls/" + known + "/redirect", "redirect", "callbackUri.own", "callbackUri",
			[]byte(`{"targets":[{"identity":{"user":{"id":"8e1b6a2c-5d5f-4f0e-9b3a-2f1c3d4e5f60"}}}],"callbackUri":"https://evil.example/cb"}`), ""},
		{"bad phone", "/v1/calls", "create_call", "phone.e164", "",
			setJSON(t, p2p, "targets", []any{map[string]any{"identity": map[string]any{"phone": map[string]any{"id": "12345"}}}}), ""},
		{"invite six", "/v1/calls/" + known + "/participants/invite", "invite", "invite.maxParticipants", "",
			[]byte(`{"participants":` + string(mustJSON(sixUsers())) + `}`), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			was := validationFailures(t, r.reg, tc.op, tc.rule)
			rp := r.adminDo(http.MethodPost, tc.path, tc.body)
			if rp.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", rp.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != problem.Unprocessable || p.Rule != tc.rule || p.Field == "" || (tc.field != "" && p.Field != tc.field) {
				t.Errorf("problem = %+v", p)
			}
			if tc.detail != "" && p.Detail != tc.detail {
				t.Errorf("detail %s\nwant   %s", p.Detail, tc.detail)
			}
			if got := validationFailures(t, r.reg, tc.op, tc.rule); got != was+1 {
				t.Errorf("counted %v, want %v", got, was+1)
			}
		})
	}
	if after, _ := testutil.GatherAndCount(r.reg, "botd_graph_validation_failures_total"); after != before {
		t.Errorf("validation series %d -> %d: a label value outside the pre-set ones", before, after)
	}
}

// TestCallCreatedLogsGraphRequestID: the calls service's "call created"
// line carries Graph's request id as graph_request_id, never botd's
// request_id.
func TestCallCreatedLogsGraphRequestID(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"botd-req-1"}}
	rp := send(t, http.MethodPost, r.admin.URL+"/v1/calls", h, withoutCallback(t, testkit.Seed(t, "003_01_request.json")))
	if rp.status != http.StatusCreated {
		t.Fatalf("create call = %d: %s", rp.status, rp.body)
	}
	created := logLines(t, r, "call created")
	if len(created) != 1 {
		t.Fatalf("%d call created lines: %s", len(created), r.logs)
	}
	c := created[0]
	if id, _ := c["graph_request_id"].(string); id == "" || id == "botd-req-1" {
		t.Errorf("graph_request_id = %#v: %v", c["graph_request_id"], c)
	}
	if _, ok := c["request_id"]; ok {
		t.Errorf("call created has request_id, which is botd's: %v", c)
	}
}

// TestReadyzNeedsAToken: readiness asks the Graph client for a token.
func TestReadyzNeedsAToken(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	r.emu.SetFault("token", &emulatorFault503)
	if rp := r.adminDo(http.MethodGet, "/readyz", nil); rp.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a failing token endpoint = %d: %s", rp.status, rp.body)
	}
	if strings.Contains(r.logs.String(), "secret-1") {
		t.Error("client secret in the logs")
	}
}

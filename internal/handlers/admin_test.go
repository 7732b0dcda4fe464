package handlers

import (
	"net/http"
	"testing"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

// TestAdminDecodingErrors: each admin request the handlers refuse
// themselves (routing, method, decoding) gets its status and a problem
// body, asks the calls service nothing and changes no state; a rule
// refusal of the service is a 422 naming its rule and field.
func TestAdminDecodingErrors(t *testing.T) {
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	const known = "k-1"
	cases := []struct {
		name, method, path string
		body               []byte
		err                error // the calls service's answer
		status             int
		rule               string
	}{
		{"unknown call", http.MethodGet, "/v1/calls/nope", nil, nil, http.StatusNotFound, ""},
		{"unknown route", http.MethodGet, "/v1/nothing", nil, nil, http.StatusNotFound, ""},
		{"method", http.MethodPut, "/v1/calls", p2p, nil, http.StatusMethodNotAllowed, ""},
		{"not json", http.MethodPost, "/v1/calls", []byte("{"), nil, http.StatusBadRequest, ""},
		{"unknown field", http.MethodPost, "/v1/calls", setJSON(t, p2p, "colour", "blue"), nil, http.StatusBadRequest, ""},
		{"wrong type", http.MethodPost, "/v1/calls", setJSON(t, p2p, "targets", "john"), nil, http.StatusBadRequest, ""},
		{"trailing data", http.MethodPost, "/v1/calls", append(append([]byte{}, p2p...), []byte(" {}")...), nil, http.StatusBadRequest, ""},
		{"invite empty body", http.MethodPost, "/v1/calls/" + known + "/participants/invite", nil, nil, http.StatusBadRequest, ""},
		{"service rule", http.MethodPost, "/v1/calls", p2p, &graph.ValidationError{Rule: "phone.e164", Field: "targets.identity.phone.id", Message: "not E.164"}, http.StatusUnprocessableEntity, "phone.e164"},
		{"service rule, invite", http.MethodPost, "/v1/calls/" + known + "/participants/invite", []byte(`{}`), &graph.ValidationError{Rule: "required", Field: "participants", Message: "required"}, http.StatusUnprocessableEntity, "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeCalls{err: tc.err}
			r := newFakeRig(t, f, rigOptions{})
			rp := r.adminDo(tc.method, tc.path, tc.body)
			rp.refused(t, tc.status, tc.rule)
			if tc.err == nil {
				f.askedNothing(t)
			}
			if n := len(r.store.Calls()); n != 0 {
				t.Errorf("%d calls tracked", n)
			}
		})
	}
}

// adminRoutes is every admin route that names a call: the reads and the
// actions.
func adminRoutes() []struct{ method, path, body string } {
	routes := append([]struct{ method, path, body string }{{http.MethodGet, "", ""}, {http.MethodGet, "/participants", ""}}, callRoutes...)
	return append(routes, participantRoutes...)
}

// TestUntrackedCallIs404: every route that names a call botd does not
// track answers 404 not_found with the route as instance, never 502: the
// reads from the store, the actions from the calls service's refusal,
// which comes before the body is read (hangup asks the service itself).
func TestUntrackedCallIs404(t *testing.T) {
	refusal := &calls.Error{Kind: calls.NotFound, Message: `call "nope" is not tracked`}
	for _, rt := range adminRoutes() {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			f := &fakeCalls{liveErr: refusal, err: refusal}
			r := newFakeRig(t, f, rigOptions{})
			rp := r.adminDo(rt.method, "/v1/calls/nope"+rt.path, bodyOf(rt.body))
			rp.untracked(t, "/v1/calls/nope"+rt.path)
			if rt.method == http.MethodDelete && rt.path == "" {
				if len(f.asked) != 1 || f.asked[0] != "Hangup nope " {
					t.Errorf("asked %v, want [Hangup nope]", f.asked)
				}
				return
			}
			f.askedNothing(t)
		})
	}
}

// TestTerminatedCallIs409: every action on a call the calls service holds
// as terminated answers 409 conflict "call already terminated".
func TestTerminatedCallIs409(t *testing.T) {
	refusal := &calls.Error{Kind: calls.Conflict, Message: "call already terminated"}
	for _, rt := range append(callRoutes[:len(callRoutes):len(callRoutes)], participantRoutes...) {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			f := &fakeCalls{liveErr: refusal, err: refusal}
			r := newFakeRig(t, f, rigOptions{})
			rp := r.adminDo(rt.method, "/v1/calls/c1"+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusConflict {
				t.Fatalf("status %d, want 409: %s", rp.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != problem.Conflict || p.Detail != "call already terminated" || p.Title != "Conflict" {
				t.Errorf("problem = %+v", p)
			}
		})
	}
}

// TestUnknownParticipantIs404: a participant route naming someone the
// calls service does not find in the roster answers 404 with its text, and
// the body is never read.
func TestUnknownParticipantIs404(t *testing.T) {
	refusal := &calls.Error{Kind: calls.NotFound, Message: `participant "p1" is not in call "c1"`}
	for _, rt := range participantRoutes {
		t.Run(rt.method+rt.path, func(t *testing.T) {
			f := &fakeCalls{liveErr: refusal, err: refusal}
			r := newFakeRig(t, f, rigOptions{})
			rp := r.adminDo(rt.method, "/v1/calls/c1"+rt.path, bodyOf(rt.body))
			if rp.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", rp.status, rp.body)
			}
			if p := rp.problem(t); p.Code != problem.NotFound || p.Detail != `participant "p1" is not in call "c1"` {
				t.Errorf("problem = %+v", p)
			}
		})
	}
}

// TestGraphRefusalsReachTheUser: Graph's refusal, as the calls service
// returns it, reaches the user with Graph's status, code and ids: a 404 on
// a call botd holds as live is 404 not_found, not 502; any other refusal is
// 502 (over the whole stack: TestGraphErrorsBecome502,
// TestGraphNotFoundIs404).
func TestGraphRefusalsReachTheUser(t *testing.T) {
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	for _, tc := range []struct {
		name, path string
		body       []byte
		err        *graph.APIError
		status     int
		code       Code
	}{
		{"create forbidden", "/v1/calls", p2p, &graph.APIError{StatusCode: http.StatusForbidden, Code: "Forbidden", RequestID: "rid-1", ClientRequestID: "crid-1"}, http.StatusBadGateway, problem.Upstream},
		{"invite bad request", "/v1/calls/c1/participants/invite", testkit.Seed(t, "001_13_request.json"), &graph.APIError{StatusCode: http.StatusBadRequest, Code: "BadRequest", RequestID: "rid-1", ClientRequestID: "crid-1"}, http.StatusBadGateway, problem.Upstream},
		{"keepAlive, Graph has no such call", "/v1/calls/c1/keepAlive", nil, &graph.APIError{StatusCode: http.StatusNotFound, Code: "NotFound", RequestID: "rid-1", ClientRequestID: "crid-1"}, http.StatusNotFound, problem.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFakeRig(t, &fakeCalls{err: tc.err}, rigOptions{})
			rp := r.adminDo(http.MethodPost, tc.path, tc.body)
			if rp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", rp.status, tc.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != tc.code || p.GraphStatus != tc.err.StatusCode || p.GraphCode != tc.err.Code || p.RequestID != "rid-1" || p.ClientRequestID != "crid-1" {
				t.Fatalf("problem = %+v", p)
			}
			if len(r.store.Calls()) != 0 {
				t.Fatal("a refused call was tracked")
			}
		})
	}
}

package handlers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

// fakeCalls is a calls service that records what the handlers asked of it
// and answers from its fields: the handlers' tests without the stack (the
// full stack is the rig's, and the end-to-end tests').
type fakeCalls struct {
	mu sync.Mutex
	// asked is "<method> <call id> <participant id>" per call, Live
	// excepted.
	asked   []string
	bodies  []any
	liveErr error // Live's answer
	err     error // every action's answer
	view    callstate.CallView
}

func (f *fakeCalls) ask(method, callID, pid string, body any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, method+" "+callID+" "+pid)
	f.bodies = append(f.bodies, body)
}

func (f *fakeCalls) result(method, callID, pid string, body any, action string) (calls.Result, error) {
	f.ask(method, callID, pid, body)
	if f.err != nil {
		return calls.Result{}, f.err
	}
	return calls.Result{CallID: callID, Action: action, Meta: graph.Meta{ClientRequestID: "crid-" + method, RequestID: "rid"}}, nil
}

func (f *fakeCalls) op(method, callID, pid string, body any) (*model.Operation, error) {
	f.ask(method, callID, pid, body)
	if f.err != nil {
		return nil, f.err
	}
	return &model.Operation{ID: "op-" + method, Status: model.OpRunning, ClientContext: "cc"}, nil
}

func (f *fakeCalls) Live(string, string) (callstate.CallView, error) { return f.view, f.liveErr }

func (f *fakeCalls) CreateCall(_ context.Context, c *model.Call) (callstate.CallView, error) {
	f.ask("CreateCall", "", "", c)
	return f.view, f.err
}

func (f *fakeCalls) Answer(_ context.Context, id string, b *graph.AnswerRequest) (calls.Result, error) {
	return f.result("Answer", id, "", b, "answer")
}

func (f *fakeCalls) Reject(_ context.Context, id string, b *graph.RejectRequest) (calls.Result, error) {
	return f.result("Reject", id, "", b, "reject")
}

func (f *fakeCalls) Redirect(_ context.Context, id string, b *graph.RedirectRequest) (calls.Result, error) {
	return f.result("Redirect", id, "", b, "redirect")
}

func (f *fakeCalls) Transfer(_ context.Context, id string, b *graph.TransferRequest) (calls.Result, error) {
	return f.result("Transfer", id, "", b, "transfer")
}

func (f *fakeCalls) KeepAlive(_ context.Context, id string) (calls.Result, error) {
	return f.result("KeepAlive", id, "", nil, "keepAlive")
}

func (f *fakeCalls) Hangup(_ context.Context, id string) (calls.Result, error) {
	return f.result("Hangup", id, "", nil, "hangup")
}

func (f *fakeCalls) Invite(_ context.Context, id string, b *graph.InviteRequest) (*model.Operation, error) {
	return f.op("Invite", id, "", b)
}

func (f *fakeCalls) PlayPrompt(_ context.Context, id string, b *graph.PlayPromptRequest) (*model.Operation, error) {
	return f.op("PlayPrompt", id, "", b)
}

func (f *fakeCalls) RecordResponse(_ context.Context, id string, b *graph.RecordResponseRequest) (*model.Operation, error) {
	return f.op("RecordResponse", id, "", b)
}

func (f *fakeCalls) SubscribeToTone(_ context.Context, id string, b *graph.SubscribeToToneRequest) (*model.Operation, error) {
	return f.op("SubscribeToTone", id, "", b)
}

func (f *fakeCalls) SendDtmfTones(_ context.Context, id string, b *graph.SendDtmfTonesRequest) (*model.Operation, error) {
	return f.op("SendDtmfTones", id, "", b)
}

func (f *fakeCalls) CancelMediaProcessing(_ context.Context, id string, b *graph.CancelMediaProcessingRequest) (*model.Operation, error) {
	return f.op("CancelMediaProcessing", id, "", b)
}

func (f *fakeCalls) Mute(_ context.Context, id string, b *graph.MuteRequest) (*model.Operation, error) {
	return f.op("Mute", id, "", b)
}

func (f *fakeCalls) Unmute(_ context.Context, id string, b *graph.MuteRequest) (*model.Operation, error) {
	return f.op("Unmute", id, "", b)
}

func (f *fakeCalls) UpdateRecordingStatus(_ context.Context, id string, b *graph.UpdateRecordingStatusRequest) (*model.Operation, error) {
	return f.op("UpdateRecordingStatus", id, "", b)
}

func (f *fakeCalls) ChangeScreenSharingRole(_ context.Context, id string, b *graph.ChangeScreenSharingRoleRequest) (*model.Operation, error) {
	return f.op("ChangeScreenSharingRole", id, "", b)
}

func (f *fakeCalls) MuteParticipant(_ context.Context, id, pid string, b *graph.MuteRequest) (*model.Operation, error) {
	return f.op("MuteParticipant", id, pid, b)
}

func (f *fakeCalls) StartHoldMusic(_ context.Context, id, pid string, b *graph.StartHoldMusicRequest) (*model.Operation, error) {
	return f.op("StartHoldMusic", id, pid, b)
}

func (f *fakeCalls) StopHoldMusic(_ context.Context, id, pid string, b *graph.StopHoldMusicRequest) (*model.Operation, error) {
	return f.op("StopHoldMusic", id, pid, b)
}

func (f *fakeCalls) RemoveParticipant(_ context.Context, id, pid string) (*model.Operation, error) {
	return f.op("RemoveParticipant", id, pid, nil)
}

func (f *fakeCalls) GraphCall(_ context.Context, id string) (*model.Call, error) {
	f.ask("GraphCall", id, "", nil)
	if f.err != nil {
		return nil, f.err
	}
	return &model.Call{ID: id, State: model.StateEstablished}, nil
}

func (f *fakeCalls) GraphOperation(_ context.Context, id, opID string) (*model.Operation, error) {
	f.ask("GraphOperation", id, opID, nil)
	if f.err != nil {
		return nil, f.err
	}
	return &model.Operation{ID: opID, Status: model.OpCompleted}, nil
}

func (f *fakeCalls) Recording(_ context.Context, id, opID string) (io.ReadCloser, string, error) {
	f.ask("Recording", id, opID, nil)
	if f.err != nil {
		return nil, "", f.err
	}
	return io.NopCloser(strings.NewReader("RIFF....WAVE")), "audio/wav", nil
}

// thinAdmin is the admin router over a fake calls service and an empty
// store.
func thinAdmin(t *testing.T, f *fakeCalls) http.Handler {
	t.Helper()
	reg := prometheus.NewRegistry()
	st, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(reg)
	return Admin(Deps{
		Log: zerolog.Nop(), Decoder: notify.NewDecoder(notify.DefaultLimits()), Store: st, Calls: f,
		Metrics: m, Ready: NewReadiness(nil, time.Second, m), Gatherer: reg,
		MaxBody: 1 << 20, RequestTimeout: 5 * time.Second,
	})
}

func thinDo(h http.Handler, method, path string, body []byte) reply {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return reply{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// thinRoutes pairs each action route of callRoutes and participantRoutes
// with the service method it calls and the status it answers.
var thinRoutes = map[string]struct {
	method string
	status int
}{
	"DELETE":                              {"Hangup", http.StatusAccepted},
	"POST/keepAlive":                      {"KeepAlive", http.StatusOK},
	"POST/participants/invite":            {"Invite", http.StatusAccepted},
	"POST/answer":                         {"Answer", http.StatusAccepted},
	"POST/reject":                         {"Reject", http.StatusAccepted},
	"POST/redirect":                       {"Redirect", http.StatusAccepted},
	"POST/transfer":                       {"Transfer", http.StatusAccepted},
	"POST/playPrompt":                     {"PlayPrompt", http.StatusAccepted},
	"POST/recordResponse":                 {"RecordResponse", http.StatusAccepted},
	"POST/subscribeToTone":                {"SubscribeToTone", http.StatusAccepted},
	"POST/sendDtmfTones":                  {"SendDtmfTones", http.StatusAccepted},
	"POST/cancelMediaProcessing":          {"CancelMediaProcessing", http.StatusAccepted},
	"POST/mute":                           {"Mute", http.StatusAccepted},
	"POST/unmute":                         {"Unmute", http.StatusAccepted},
	"POST/updateRecordingStatus":          {"UpdateRecordingStatus", http.StatusAccepted},
	"POST/changeScreenSharingRole":        {"ChangeScreenSharingRole", http.StatusAccepted},
	"POST/participants/p1/mute":           {"MuteParticipant", http.StatusAccepted},
	"POST/participants/p1/startHoldMusic": {"StartHoldMusic", http.StatusAccepted},
	"POST/participants/p1/stopHoldMusic":  {"StopHoldMusic", http.StatusAccepted},
	"DELETE/participants/p1":              {"RemoveParticipant", http.StatusAccepted},
}

// TestRoutesCallTheService: each action route decodes its body, calls its
// one method of the calls service with the route's ids, and writes the
// service's answer.
func TestRoutesCallTheService(t *testing.T) {
	for _, rt := range append(callRoutes[:len(callRoutes):len(callRoutes)], participantRoutes...) {
		key := rt.method + rt.path
		want, ok := thinRoutes[key]
		if !ok {
			t.Fatalf("no expectation for %s", key)
		}
		t.Run(key, func(t *testing.T) {
			f := &fakeCalls{}
			rp := thinDo(thinAdmin(t, f), rt.method, "/v1/calls/c1"+rt.path, bodyOf(rt.body))
			if rp.status != want.status {
				t.Fatalf("status %d, want %d: %s", rp.status, want.status, rp.body)
			}
			pid := ""
			if strings.HasPrefix(rt.path, "/participants/p1") {
				pid = "p1"
			}
			if len(f.asked) != 1 || f.asked[0] != want.method+" c1 "+pid {
				t.Fatalf("asked %v, want [%s c1 %s]", f.asked, want.method, pid)
			}
			var got map[string]any
			rp.decode(t, &got)
			if _, isOp := got["status"]; isOp {
				if got["id"] != "op-"+want.method || got["clientContext"] != "cc" {
					t.Errorf("operation = %v", got)
				}
			} else if got["callId"] != "c1" || got["clientRequestId"] != "crid-"+want.method {
				t.Errorf("reply = %v", got)
			}
		})
	}
}

// TestServiceRefusalsAreProblems: the service's refusals become the
// problems the API documents, the live rules before the body is read.
func TestServiceRefusalsAreProblems(t *testing.T) {
	cases := []struct {
		name      string
		live, err error
		body      string
		status    int
		code      Code
		detail    string
	}{
		{"not tracked", &calls.Error{Kind: calls.NotFound, Message: `call "c1" is not tracked`}, nil, "{", http.StatusNotFound, problem.NotFound, `call "c1" is not tracked`},
		{"terminated", &calls.Error{Kind: calls.Conflict, Message: "call already terminated"}, nil, "{", http.StatusConflict, problem.Conflict, "call already terminated"},
		{"bad body", nil, nil, "{", http.StatusBadRequest, problem.Invalid, ""},
		{"rule", nil, &graph.ValidationError{Rule: graph.RuleCallbackOwn, Field: "callbackUri", Message: "not botd's"}, "{}", http.StatusUnprocessableEntity, problem.Unprocessable, ""},
		{"graph 404", nil, &graph.APIError{StatusCode: http.StatusNotFound, Code: "NotFound", Message: "gone"}, "{}", http.StatusNotFound, problem.NotFound, "Graph has no such call: gone"},
		{"graph 403", nil, &graph.APIError{StatusCode: http.StatusForbidden, Code: "Forbidden", Message: "no"}, "{}", http.StatusBadGateway, problem.Upstream, "Graph refused the request: no"},
		{"unknown outcome", nil, &graph.OutcomeUnknownError{Op: "answer", Err: context.DeadlineExceeded}, "{}", http.StatusGatewayTimeout, problem.UpstreamTimeout, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeCalls{liveErr: tc.live, err: tc.err}
			rp := thinDo(thinAdmin(t, f), http.MethodPost, "/v1/calls/c1/answer", []byte(tc.body))
			if rp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", rp.status, tc.status, rp.body)
			}
			p := rp.problem(t)
			if p.Code != tc.code || (tc.detail != "" && p.Detail != tc.detail) {
				t.Errorf("problem = %+v", p)
			}
			if tc.live != nil && len(f.asked) != 0 {
				t.Errorf("asked %v after a live refusal", f.asked)
			}
		})
	}
}

// TestCreateCallWritesTheView: POST /v1/calls hands the decoded body to the
// service and answers 201 with the view and its Location.
func TestCreateCallWritesTheView(t *testing.T) {
	f := &fakeCalls{view: callstate.CallView{ID: "new-1", State: model.StateEstablishing}}
	rp := thinDo(thinAdmin(t, f), http.MethodPost, "/v1/calls", []byte(`{"targets":[{"identity":{"phone":{"id":"+12345678901"}}}]}`))
	if rp.status != http.StatusCreated || rp.header.Get("Location") != "/v1/calls/new-1" {
		t.Fatalf("status %d, Location %q: %s", rp.status, rp.header.Get("Location"), rp.body)
	}
	if c, ok := f.bodies[0].(*model.Call); !ok || len(c.Targets) != 1 {
		t.Errorf("service got %#v", f.bodies[0])
	}
	var v callstate.CallView
	rp.decode(t, &v)
	if v.ID != "new-1" {
		t.Errorf("view = %+v", v)
	}
}

// newFakeRig is the rig without Graph: the real decoder and call store and
// both routers behind real listeners, over the fake calls service f
// instead of the calls service, its Graph client and the emulator, and
// with no automation. r.emu, r.calls and r.engine are nil.
func newFakeRig(t *testing.T, f *fakeCalls, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}}
	log := zerolog.New(r.logs)
	var err error
	r.store, err = callstate.New(storeConfig(o.store), log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	r.public = httptest.NewUnstartedServer(nil)
	r.callbackURL = "http://" + r.public.Listener.Addr().String() + "/api/calls"
	return r.serve(t, r.setDeps(log, f, nil, o))
}

// askedNothing fails the test if the fake calls service was asked for any
// action.
func (f *fakeCalls) askedNothing(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) != 0 {
		t.Errorf("the calls service was asked %v", f.asked)
	}
}

// askedCount is how many actions the fake calls service was asked for.
func (f *fakeCalls) askedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

// TestInspectRoutes: Graph's own view of a call and of an operation, and
// a recording's audio, each from its one service method; a refusal is the
// service's problem.
func TestInspectRoutes(t *testing.T) {
	f := &fakeCalls{}
	h := thinAdmin(t, f)
	if rp := thinDo(h, http.MethodGet, "/v1/calls/c1/graph", nil); rp.status != http.StatusOK || !strings.Contains(string(rp.body), `"id":"c1"`) {
		t.Fatalf("graph call = %d %s", rp.status, rp.body)
	}
	if rp := thinDo(h, http.MethodGet, "/v1/calls/c1/operations/op1/graph", nil); rp.status != http.StatusOK || !strings.Contains(string(rp.body), `"id":"op1"`) {
		t.Fatalf("graph operation = %d %s", rp.status, rp.body)
	}
	rp := thinDo(h, http.MethodGet, "/v1/calls/c1/operations/op1/recording", nil)
	if rp.status != http.StatusOK || rp.header.Get("Content-Type") != "audio/wav" || string(rp.body) != "RIFF....WAVE" || rp.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("recording = %d %v %q", rp.status, rp.header, rp.body)
	}
	if strings.Join(f.asked, ",") != "GraphCall c1 ,GraphOperation c1 op1,Recording c1 op1" {
		t.Fatalf("asked %v", f.asked)
	}
	f.err = &calls.Error{Kind: calls.NotFound, Message: `operation "op2" has no recording`}
	rp = thinDo(h, http.MethodGet, "/v1/calls/c1/operations/op2/recording", nil)
	if p := rp.problem(t); rp.status != http.StatusNotFound || p.Detail != `operation "op2" has no recording` {
		t.Fatalf("refused recording = %d %+v", rp.status, p)
	}
}

// TestListsArePaged: the calls list and a roster come in pages of $top,
// each with the @odata.nextLink of the next, and following the links gives
// every item once, in order; a call added between pages shifts nothing.
func TestListsArePaged(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	for _, id := range []string{"p-1", "p-2", "p-3", "p-4", "p-5"} {
		r.track(id, model.StateEstablished)
	}
	var ids []string
	link := "/v1/calls?$top=2"
	for pages := 0; link != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		rp := r.adminDo(http.MethodGet, link, nil)
		if rp.status != http.StatusOK {
			t.Fatalf("%s = %d: %s", link, rp.status, rp.body)
		}
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		rp.decode(t, &page)
		if len(page.Value) > 2 {
			t.Fatalf("page of %d", len(page.Value))
		}
		for _, c := range page.Value {
			ids = append(ids, c.ID)
		}
		if pages == 0 {
			r.track("p-6", model.StateEstablished) // added after the first page
		}
		link = page.NextLink
	}
	if strings.Join(ids, ",") != "p-1,p-2,p-3,p-4,p-5,p-6" {
		t.Fatalf("listed %v", ids)
	}
	for path, detail := range map[string]string{
		"/v1/calls?$top=0":          `"$top" must be a whole number from 1 to 1000, got "0"`,
		"/v1/calls?$top=x":          `"$top" must be a whole number from 1 to 1000, got "x"`,
		"/v1/calls?$skiptoken=zz!!": `"$skiptoken" is not one this list gave`,
	} {
		rp := r.adminDo(http.MethodGet, path, nil)
		if p := rp.problem(t); rp.status != http.StatusBadRequest || p.Detail != detail {
			t.Errorf("%s = %d %+v", path, rp.status, p)
		}
	}
	// A roster pages by position.
	r.mustNotify([]byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/p-1/participants","resourceData":[` +
		`{"@odata.type":"#microsoft.graph.participant","id":"a","info":{"identity":{"user":{"id":"ua"}}}},` +
		`{"@odata.type":"#microsoft.graph.participant","id":"b","info":{"identity":{"user":{"id":"ub"}}}},` +
		`{"@odata.type":"#microsoft.graph.participant","id":"c","info":{"identity":{"user":{"id":"uc"}}}}]}]}`))
	rp := r.adminDo(http.MethodGet, "/v1/calls/p-1/participants?$top=2", nil)
	var page struct {
		Value    []model.Participant `json:"value"`
		NextLink string              `json:"@odata.nextLink"`
	}
	rp.decode(t, &page)
	if len(page.Value) != 2 || page.NextLink != "/v1/calls/p-1/participants?%24skiptoken=2&%24top=2" {
		t.Fatalf("roster page %d %q", len(page.Value), page.NextLink)
	}
	rp = r.adminDo(http.MethodGet, page.NextLink, nil)
	page.NextLink = ""
	rp.decode(t, &page)
	if len(page.Value) != 1 || page.Value[0].ID != "c" || page.NextLink != "" {
		t.Fatalf("last roster page %+v", page)
	}
}

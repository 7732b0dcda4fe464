package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(opts)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func send(t *testing.T, method, u, token, crid string, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if crid != "" {
		req.Header.Set("client-request-id", crid)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{res.StatusCode, res.Header, b}
}

func tokenForm(o Options) url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {o.ClientID},
		"client_secret": {o.ClientSecret},
		"scope":         {"https://graph.microsoft.com/.default"},
	}
}

func fetchToken(t *testing.T, s *Server) string {
	t.Helper()
	res, err := http.PostForm(s.TokenURL(), tokenForm(s.Options()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 {
		t.Fatalf("token: %d %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

const createBody = `{"@odata.type":"#microsoft.graph.call","callbackUri":"https://bot.contoso.com/callback",
  "targets":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"u1","displayName":"John"}}}],
  "requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`

func TestTokenEndpoint(t *testing.T) {
	s := start(t, Options{TokenTTL: 90 * time.Second})
	o := s.Options()
	post := func(u string, form url.Values, basic bool) answer {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(o.ClientID, o.ClientSecret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header, b}
	}
	with := func(k, v string) url.Values {
		f := tokenForm(o)
		f.Set(k, v)
		return f
	}
	cases := []struct {
		name   string
		url    string
		form   url.Values
		basic  bool
		status int
		code   string
	}{
		{"ok", s.TokenURL(), tokenForm(o), false, 200, ""},
		{"ok with basic auth", s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.us/.default"}}, true, 200, ""},
		{"wrong tenant", s.URL() + "/other/oauth2/v2.0/token", tokenForm(o), false, 400, "invalid_request"},
		{"wrong grant", s.TokenURL(), with("grant_type", "password"), false, 400, "unsupported_grant_type"},
		{"wrong client", s.TokenURL(), with("client_id", "x"), false, 400, "unauthorized_client"},
		{"wrong secret", s.TokenURL(), with("client_secret", "x"), false, 401, "invalid_client"},
		{"bad scope", s.TokenURL(), with("scope", "User.Read"), false, 400, "invalid_scope"},
	}
	for _, c := range cases {
		a := post(c.url, c.form, c.basic)
		if a.status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, a.status, c.status, a.body)
			continue
		}
		var body map[string]any
		a.json(t, &body)
		if c.code != "" && body["error"] != c.code {
			t.Errorf("%s: error %v, want %s", c.name, body["error"], c.code)
		}
		if c.code == "" && (body["access_token"] == "" || body["expires_in"] != float64(90) || body["token_type"] != "Bearer") {
			t.Errorf("%s: body %v", c.name, body)
		}
	}
	if n := s.TokenFetches(); n != len(cases) {
		t.Errorf("TokenFetches = %d, want %d (failures count too)", n, len(cases))
	}
	if n := s.TokensIssued(); n != 2 {
		t.Errorf("TokensIssued = %d, want 2", n)
	}
	for _, r := range s.Requests(RouteToken) {
		if strings.Contains(string(r.Body), o.ClientSecret) || strings.Contains(r.Header.Get("Authorization"), "ZmFrZS") {
			t.Errorf("recorded token request keeps the secret: %s / %s", r.Body, r.Header.Get("Authorization"))
		}
	}
}

func TestTokenEndpointScriptedFailure(t *testing.T) {
	s := start(t, Options{})
	s.SetFault(RouteToken, &Fault{Status: http.StatusServiceUnavailable})
	for range 3 {
		res, err := http.PostForm(s.TokenURL(), tokenForm(s.Options()))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != 503 || body["error"] != "temporarily_unavailable" {
			t.Errorf("status %d body %v", res.StatusCode, body)
		}
	}
	s.SetFault(RouteToken, nil)
	if tok := fetchToken(t, s); tok == "" {
		t.Error("no token after clearing the fault")
	}
	if n, issued := s.TokenFetches(), s.TokensIssued(); n != 4 || issued != 1 {
		t.Errorf("fetches %d issued %d", n, issued)
	}
}

func TestGraphRoutesNeedAValidToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s := start(t, Options{TokenTTL: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	u := s.BaseURL() + "/communications/calls"

	a := send(t, http.MethodPost, u, "", "crid-1", createBody)
	var eb ErrorBody
	a.json(t, &eb)
	if a.status != 401 || eb.Error.Code != "InvalidAuthenticationToken" || eb.Error.InnerError.RequestID == "" ||
		eb.Error.InnerError.RequestID != a.header.Get("request-id") || eb.Error.InnerError.ClientRequestID != "crid-1" ||
		a.header.Get("client-request-id") != "crid-1" {
		t.Errorf("no token: %d %+v headers %v", a.status, eb, a.header)
	}
	if a := send(t, http.MethodPost, u, "made-up", "", createBody); a.status != 401 {
		t.Errorf("unknown token: %d", a.status)
	}
	tok := fetchToken(t, s)
	if a := send(t, http.MethodPost, u, tok, "", createBody); a.status != 201 {
		t.Errorf("valid token: %d %s", a.status, a.body)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if a := send(t, http.MethodGet, u+"/x", tok, "", ""); a.status != 401 {
		t.Errorf("expired token: %d", a.status)
	}
}

func TestCallLifecycle(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	s := start(t, Options{TimeScale: 0.001, PeopleByID: map[string]Behaviour{"u2": {Answer: AnswerNoAnswer}}, Timing: Timing{Ring: time.Hour}, OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	tok := fetchToken(t, s)
	base := s.BaseURL() + "/communications/calls"

	a := send(t, http.MethodPost, base, tok, "c1", createBody)
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var created map[string]any
	a.json(t, &created)
	id, _ := created["id"].(string)
	if id == "" || created["state"] != "establishing" || created["myParticipantId"] == nil || created["callChainId"] == nil ||
		created["@odata.context"] == nil || created["callbackUri"] != "https://bot.contoso.com/callback" {
		t.Errorf("create body %v", created)
	}
	if a.header.Get("Location") != base+"/"+id || a.header.Get("request-id") == "" {
		t.Errorf("create headers %v", a.header)
	}

	// Roster: the bot first, the target once they have answered.
	var roster struct {
		Value []model.Participant `json:"value"`
	}
	a = send(t, http.MethodGet, base+"/"+id+"/participants", tok, "", "")
	a.json(t, &roster)
	if a.status != 200 || len(roster.Value) == 0 || roster.Value[0].ID != created["myParticipantId"] {
		t.Errorf("participants %d %+v", a.status, roster)
	}
	waitFor(t, func() bool {
		a = send(t, http.MethodGet, base+"/"+id+"/participants", tok, "", "")
		a.json(t, &roster)
		return len(roster.Value) == 2
	})
	if got := roster.Value[1].Info.Identity; got == nil || got.User == nil || got.User.ID != "u1" {
		t.Errorf("second participant %+v, want the target u1", roster.Value[1])
	}

	// Invite: 200, Location, running operation with clientContext echoed.
	a = send(t, http.MethodPost, base+"/"+id+"/participants/invite", tok, "", `{"participants":[{"identity":{"phone":{"id":"+12345678901"}}}],"clientContext":"ctx-1"}`)
	var op model.Operation
	a.json(t, &op)
	if a.status != 200 || op.Status != model.OpRunning || op.ClientContext != "ctx-1" || op.ODataType != model.ODataInviteParticipantsOp ||
		a.header.Get("Location") != base+"/"+id+"/operations/"+op.ID || len(op.Participants) != 1 {
		t.Errorf("invite %d %+v %v", a.status, op, a.header)
	}
	a = send(t, http.MethodGet, base+"/"+id+"/operations/"+op.ID, tok, "", "")
	var got model.Operation
	a.json(t, &got)
	if a.status != 200 || got.ID != op.ID || got.ClientContext != "ctx-1" {
		t.Errorf("get operation %d %+v", a.status, got)
	}
	if a := send(t, http.MethodGet, base+"/"+id+"/operations/nope", tok, "", ""); a.status != 404 {
		t.Errorf("unknown operation: %d", a.status)
	}

	if a := send(t, http.MethodPost, base+"/"+id+"/keepAlive", tok, "", ""); a.status != 200 {
		t.Errorf("keepAlive %d", a.status)
	}
	s.PutCall(model.Call{ID: id, State: model.StateEstablished})
	if a := send(t, http.MethodPost, base+"/"+id+"/transfer", tok, "", `{"transferTarget":{"identity":{"user":{"id":"u2"}}}}`); a.status != 202 {
		t.Errorf("transfer %d %s", a.status, a.body)
	}
	if c, _ := s.Call(id); c.State != model.StateTransferring {
		t.Errorf("state after transfer %q", c.State)
	}
	if a := send(t, http.MethodGet, base+"/"+id, tok, "", ""); a.status != 200 {
		t.Errorf("get %d", a.status)
	}
	if a := send(t, http.MethodDelete, base+"/"+id, tok, "", ""); a.status != 204 || len(a.body) != 0 {
		t.Errorf("delete %d %q", a.status, a.body)
	}
	if a := send(t, http.MethodDelete, base+"/"+id, tok, "", ""); a.status != 404 {
		t.Errorf("second delete %d", a.status)
	}
	if a := send(t, http.MethodPost, base+"/"+id+"/keepAlive", tok, "", ""); a.status != 404 {
		t.Errorf("keepAlive after delete %d", a.status)
	}
	if a := send(t, http.MethodPost, base+"/"+id+"/participants/invite", tok, "", `{"participants":[{"identity":{"user":{"id":"u"}}}]}`); a.status != 404 {
		t.Errorf("invite after delete %d", a.status)
	}

	mu.Lock()
	defer mu.Unlock()
	var kinds []EventKind
	for _, e := range events {
		kinds = append(kinds, e.Kind)
		if e.CallID != id {
			t.Errorf("event %s for call %q", e.Kind, e.CallID)
		}
	}
	want := []EventKind{EventCallCreated, EventInvite, EventTransfer, EventHangup}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Errorf("events %v, want %v", kinds, want)
		}
	}
	if events[1].Operation == nil || events[1].Operation.ClientContext != "ctx-1" || !strings.Contains(string(events[1].Body), "ctx-1") {
		t.Errorf("invite event %+v", events[1])
	}
	if events[0].Call.CallbackURI != "https://bot.contoso.com/callback" {
		t.Errorf("created event carries no callbackUri: %+v", events[0].Call)
	}
}

func TestIncomingCallActions(t *testing.T) {
	// Step and Connect are long so that the states right after each action
	// are what the test sees.
	s := start(t, Options{Timing: Timing{Step: time.Hour, Connect: time.Hour}})
	tok := fetchToken(t, s)
	base := s.BaseURL() + "/communications/calls/"
	const media = `"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}`
	cases := []struct {
		verb, body string
		status     int
		state      model.CallState
	}{
		{"answer", `{"acceptedModalities":["audio"],` + media + `}`, 202, model.StateEstablishing},
		{"answer", `{` + media + `}`, 400, model.StateIncoming},
		{"reject", `{"reason":"busy"}`, 202, model.StateTerminated},
		{"reject", `{"reason":"Forbidden"}`, 202, model.StateTerminated},
		{"reject", `{"reason":"bored"}`, 400, model.StateIncoming},
		{"redirect", `{"targets":[{"identity":{"phone":{"id":"+12345678901"}}}],"timeout":30}`, 202, model.StateRedirecting},
		{"redirect", `{"targets":[]}`, 400, model.StateIncoming},
		{"redirect", `{"targets":[{"identity":{"user":{"id":"u"}}}],"timeout":5}`, 400, model.StateIncoming},
		{"transfer", `{"transferTarget":{"identity":{"user":{"id":"u"}}}}`, 400, model.StateIncoming}, // not yet established
		{"answer", `not json`, 400, model.StateIncoming},
	}
	for _, c := range cases {
		id := s.PutCall(model.Call{State: model.StateIncoming})
		a := send(t, http.MethodPost, base+id+"/"+c.verb, tok, "crid", c.body)
		if a.status != c.status {
			t.Errorf("%s %s: status %d, want %d (%s)", c.verb, c.body, a.status, c.status, a.body)
		}
		if a.status >= 400 {
			var eb ErrorBody
			a.json(t, &eb)
			if eb.Error.Code == "" || eb.Error.Message == "" || eb.Error.InnerError.RequestID == "" || eb.Error.InnerError.ClientRequestID != "crid" {
				t.Errorf("%s: error body %s", c.verb, a.body)
			}
		}
		if got, _ := s.Call(id); got.State != c.state {
			t.Errorf("%s %s: state %q, want %q", c.verb, c.body, got.State, c.state)
		}
	}
	if a := send(t, http.MethodPost, base+"missing/answer", tok, "", `{"acceptedModalities":["audio"],`+media+`}`); a.status != 404 {
		t.Errorf("answer unknown call: %d", a.status)
	}
}

func TestInvalidCreateCall(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	for _, body := range []string{`{`, ``, `{"requestedModalities":["audio"]}`, `{"callbackUri":"https://x","requestedModalities":["audio"],"mediaConfig":{}}`} {
		a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", body)
		var eb ErrorBody
		a.json(t, &eb)
		if a.status != 400 || eb.Error.Code != "BadRequest" || eb.Error.InnerError.RequestID != a.header.Get("request-id") {
			t.Errorf("body %q: %d %s", body, a.status, a.body)
		}
	}
	if n := len(s.Calls()); n != 0 {
		t.Errorf("%d calls stored from invalid requests", n)
	}
}

func TestScriptedFaults(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	id := s.PutCall(model.Call{State: model.StateEstablished})
	u := s.BaseURL() + "/communications/calls/" + id
	s.Script(RouteGetCall,
		Fault{Status: 429, RetryAfter: "1"},
		Fault{Status: 503},
		Fault{Status: 200, Body: []byte(`{"id":"scripted"}`), Header: http.Header{"X-Test": {"yes"}}},
	)

	a := send(t, http.MethodGet, u, tok, "", "")
	var eb ErrorBody
	a.json(t, &eb)
	if a.status != 429 || a.header.Get("Retry-After") != "1" || eb.Error.Code != "TooManyRequests" {
		t.Errorf("first: %d %v %s", a.status, a.header, a.body)
	}
	if a = send(t, http.MethodGet, u, tok, "", ""); a.status != 503 {
		t.Errorf("second: %d", a.status)
	}
	a = send(t, http.MethodGet, u, tok, "", "")
	if a.status != 200 || string(a.body) != `{"id":"scripted"}` || a.header.Get("X-Test") != "yes" {
		t.Errorf("third: %d %s", a.status, a.body)
	}
	var call model.Call
	a = send(t, http.MethodGet, u, tok, "", "")
	a.json(t, &call)
	if a.status != 200 || call.ID != id {
		t.Errorf("script exhausted, want normal answer: %d %s", a.status, a.body)
	}

	// Sticky fault until cleared; other routes unaffected.
	s.SetFault(RouteKeepAlive, &Fault{Status: 504})
	for range 2 {
		if a := send(t, http.MethodPost, u+"/keepAlive", tok, "", ""); a.status != 504 {
			t.Errorf("sticky: %d", a.status)
		}
	}
	if a := send(t, http.MethodGet, u, tok, "", ""); a.status != 200 {
		t.Errorf("other route: %d", a.status)
	}
	s.SetFault(RouteKeepAlive, nil)
	if a := send(t, http.MethodPost, u+"/keepAlive", tok, "", ""); a.status != 200 {
		t.Errorf("cleared: %d", a.status)
	}
}

func TestFaultApplyProcessesTheRequest(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	s.Script(RouteCreateCall, Fault{Status: 504, Apply: true})
	a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", createBody)
	if a.status != 504 || a.header.Get("Location") != "" {
		t.Errorf("status %d, Location %q", a.status, a.header.Get("Location"))
	}
	if calls := s.Calls(); len(calls) != 1 || calls[0].State != model.StateEstablishing {
		t.Errorf("calls %+v, want the call created behind the 504", calls)
	}
}

func TestDelayedRequestStillProcessedWhenClientGivesUp(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	s.Script(RouteCreateCall, Fault{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL()+"/communications/calls", strings.NewReader(createBody))
	req.Header.Set("Authorization", "Bearer "+tok)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return len(s.Requests(RouteCreateCall)) == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("request should have been abandoned")
	}
	// Graph had the request: the call exists although nobody got the answer.
	waitFor(t, func() bool { return len(s.Calls()) == 1 })
}

func TestCloseEndsPendingDelays(t *testing.T) {
	s := New(Options{})
	s.Start()
	tok := fetchToken(t, s)
	s.SetFault(RouteGetCall, &Fault{Delay: time.Hour})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.BaseURL()+"/communications/calls/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return len(s.Requests(RouteGetCall)) == 1 })
	s.Close() // must not wait for the hour
	<-done
	s.Close() // idempotent
	New(Options{}).Close()
}

func TestListParticipantsPaging(t *testing.T) {
	s := start(t, Options{PageSize: 2})
	tok := fetchToken(t, s)
	id := s.PutCall(model.Call{State: model.StateEstablished})
	var ps []model.Participant
	for _, pid := range []string{"a", "b", "c"} {
		ps = append(ps, model.Participant{ID: pid})
	}
	if !s.SetParticipants(id, ps) || s.SetParticipants("nope", ps) {
		t.Fatal("SetParticipants")
	}
	next := s.BaseURL() + "/communications/calls/" + id + "/participants"
	var ids []string
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		a := send(t, http.MethodGet, next, tok, "", "")
		var page struct {
			Value []model.Participant `json:"value"`
			Next  string              `json:"@odata.nextLink"`
		}
		a.json(t, &page)
		for _, p := range page.Value {
			ids = append(ids, p.ID)
		}
		next = page.Next
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("ids %v", ids)
	}
	if a := send(t, http.MethodGet, s.BaseURL()+"/communications/calls/"+id+"/participants?$skiptoken=x", tok, "", ""); a.status != 400 {
		t.Errorf("bad skiptoken: %d", a.status)
	}
}

func TestRoutingAndRecording(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	id := s.PutCall(model.Call{ID: "a b/c", State: model.StateEstablished})
	a := send(t, http.MethodGet, s.URL()+"/beta/communications/calls/"+url.PathEscape(id), tok, "crid-9", "")
	if a.status != 200 {
		t.Errorf("beta path with escaped id: %d %s", a.status, a.body)
	}
	if a := send(t, http.MethodGet, s.URL()+"/v2/communications/calls/x", tok, "", ""); a.status != 404 {
		t.Errorf("unknown version: %d", a.status)
	}
	if a := send(t, http.MethodGet, s.URL()+"/v1.0/me", tok, "", ""); a.status != 404 {
		t.Errorf("unknown route: %d", a.status)
	}
	rs := s.Requests()
	if len(rs) != 4 || rs[0].Route != RouteToken || rs[1].Route != RouteGetCall || rs[1].CallID != id ||
		rs[1].ClientRequestID != "crid-9" || rs[3].Route != RouteUnknown {
		t.Errorf("recorded %+v", rs)
	}
	if g := s.GraphRequests(); len(g) != 3 {
		t.Errorf("GraphRequests = %d", len(g))
	}
	s.Reset()
	if len(s.Requests()) != 0 {
		t.Error("Reset kept requests")
	}
	if _, ok := s.Call(id); !ok {
		t.Error("Reset dropped calls")
	}
}

func TestHandlerWithoutStart(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	req := httptest.NewRequest(http.MethodPost, "/"+DefaultTenantID+"/oauth2/v2.0/token", strings.NewReader(tokenForm(s.Options()).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("mounted token endpoint: %d %s", rec.Code, rec.Body)
	}
	if s.URL() != "" {
		t.Error("URL before Start")
	}
}

func TestConcurrentUse(t *testing.T) {
	s := start(t, Options{})
	tok := fetchToken(t, s)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", createBody)
			var c model.Call
			a.json(t, &c)
			send(t, http.MethodPost, s.BaseURL()+"/communications/calls/"+c.ID+"/participants/invite", tok, "", `{"participants":[{"identity":{"user":{"id":"u"}}}]}`)
			_ = s.Calls()
			_ = s.Requests(RouteInvite)
		})
	}
	wg.Wait()
	if n := len(s.Calls()); n != 16 {
		t.Errorf("%d calls", n)
	}
}

// waitFor polls cond until it holds; it fails the test only if it never
// does (no assertion on how long it took).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, "condition", cond)
}

func TestStartFuncAndLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	s, err := Start(Options{Log: zerolog.New(lockedWriter{&mu, &buf}).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.GraphURL() != s.BaseURL() || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URLs %q %q", s.URL(), s.GraphURL())
	}
	if err := s.listen("127.0.0.1:0"); err == nil {
		t.Error("second start accepted")
	}
	tok := fetchToken(t, s)
	send(t, http.MethodGet, s.BaseURL()+"/communications/calls/x", tok, "crid-log", "")
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	for _, want := range []string{`"route":"token"`, `"route":"get_call"`, `"status":404`, `"client_request_id":"crid-log"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, s.Options().ClientSecret) || strings.Contains(logs, tok) {
		t.Error("log leaks a secret")
	}
	s.Close()
	if _, err := http.Get(s.BaseURL()); err == nil {
		t.Error("still serving after Close")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

var bg = context.Background()

func TestAnswerRejectRedirectTransfer(t *testing.T) {
	e := newEnv(t, emulator.Options{})

	t.Run("answer", func(t *testing.T) {
		id := e.fg.PutCall(model.Call{ID: "57dab8b1-894c-409a-b240-bd8beae78896", State: model.StateIncoming})
		meta, err := e.c.Answer(bg, id, &AnswerRequest{
			CallbackURI:         "https://bot.contoso.com/api/calls",
			AcceptedModalities:  []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig, Blob: "<Media Session Configuration Blob>"},
			CallOptions:         &model.CallOptions{ODataType: model.ODataIncomingCallOptions, IsContentSharingNotificationEnabled: ptr(true)},
			ParticipantCapacity: 200,
		})
		if err != nil {
			t.Fatal(err)
		}
		if meta.StatusCode != http.StatusAccepted {
			t.Errorf("status %d, want 202", meta.StatusCode)
		}
		req := lastRequest(t, e.fg, emulator.RouteAnswer)
		// The request of Graph's call-answer page.
		assertJSONEquivalent(t, []byte(`{
		  "callbackUri": "https://bot.contoso.com/api/calls",
		  "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": "<Media Session Configuration Blob>"},
		  "acceptedModalities": ["audio"],
		  "callOptions": {"@odata.type": "#microsoft.graph.incomingCallOptions", "isContentSharingNotificationEnabled": true},
		  "participantCapacity": 200}`), req.Body)
		if req.Method != http.MethodPost || !strings.HasSuffix(req.Path, "/v1.0/communications/calls/"+id+"/answer") {
			t.Errorf("sent %s %s", req.Method, req.Path)
		}
		if c, _ := e.fg.Call(id); c.State != model.StateEstablishing {
			t.Errorf("fake call state %q, want establishing", c.State)
		}
	})

	t.Run("reject", func(t *testing.T) {
		id := e.fg.PutCall(model.Call{State: model.StateIncoming})
		meta, err := e.c.Reject(bg, id, &RejectRequest{Reason: RejectBusy})
		if err != nil {
			t.Fatal(err)
		}
		if meta.StatusCode != http.StatusAccepted {
			t.Errorf("status %d", meta.StatusCode)
		}
		assertJSONEquivalent(t, []byte(`{"reason":"busy"}`), lastRequest(t, e.fg, emulator.RouteReject).Body)
		if c, _ := e.fg.Call(id); c.State != model.StateTerminated {
			t.Errorf("fake call state %q, want terminated", c.State)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		id := e.fg.PutCall(model.Call{State: model.StateIncoming})
		_, err := e.c.Redirect(bg, id, &RedirectRequest{
			Targets:     []model.InvitationParticipantInfo{phoneTarget("+12345678901")},
			CallbackURI: "https://bot.contoso.com/api/calls/24701998-1a73-4d42-8085-bf46ed0ae039",
		})
		if err != nil {
			t.Fatal(err)
		}
		// The PSTN request of Graph's call-redirect page.
		assertJSONEquivalent(t, []byte(`{
		  "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
		    "identity": {"@odata.type": "#microsoft.graph.identitySet",
		      "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+12345678901"}}}],
		  "callbackUri": "https://bot.contoso.com/api/calls/24701998-1a73-4d42-8085-bf46ed0ae039"}`),
			lastRequest(t, e.fg, emulator.RouteRedirect).Body)
	})

	t.Run("transfer", func(t *testing.T) {
		id := e.fg.PutCall(model.Call{State: model.StateEstablished})
		target := model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant, EndpointType: "default",
			Identity:       &model.IdentitySet{ODataType: model.ODataIdentitySet, User: identity("550fae72-d251-43ec-868c-373732c2704f", "Heidi Steen")},
			ReplacesCallID: "e5d39592-99bd-4db8-bca8-30fb894ec51d"}
		meta, err := e.c.Transfer(bg, id, &TransferRequest{TransferTarget: &target})
		if err != nil {
			t.Fatal(err)
		}
		if meta.StatusCode != http.StatusAccepted {
			t.Errorf("status %d", meta.StatusCode)
		}
		// The consultative transfer request of Graph's call-transfer page.
		assertJSONEquivalent(t, []byte(`{"transferTarget": {
		  "@odata.type": "#microsoft.graph.invitationParticipantInfo", "endpointType": "default",
		  "identity": {"@odata.type": "#microsoft.graph.identitySet",
		    "user": {"@odata.type": "#microsoft.graph.identity", "id": "550fae72-d251-43ec-868c-373732c2704f", "displayName": "Heidi Steen"}},
		  "replacesCallId": "e5d39592-99bd-4db8-bca8-30fb894ec51d"}}`), lastRequest(t, e.fg, emulator.RouteTransfer).Body)
		if c, _ := e.fg.Call(id); c.State != model.StateTransferring {
			t.Errorf("fake call state %q, want transferring", c.State)
		}
	})

	t.Run("answer a call that is not incoming", func(t *testing.T) {
		id := e.fg.PutCall(model.Call{State: model.StateEstablished})
		_, err := e.c.Answer(bg, id, &AnswerRequest{AcceptedModalities: []string{"audio"},
			MediaConfig: &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}})
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || ae.RequestID == "" {
			t.Fatalf("err = %v, want a 400 APIError with request-id", err)
		}
		if !strings.HasPrefix(err.Error(), "answer call: ") {
			t.Errorf("error not wrapped with the action: %v", err)
		}
	})
}

func lastRequest(t *testing.T, fg *emulator.Server, r emulator.Route) emulator.Request {
	t.Helper()
	rs := fg.Requests(r)
	if len(rs) == 0 {
		t.Fatalf("no %s request recorded", r)
	}
	return rs[len(rs)-1]
}

func TestKeepAliveHangupGetCall(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	call, _, err := e.c.CreateCall(bg, validCall())
	if err != nil {
		t.Fatal(err)
	}

	meta, err := e.c.KeepAlive(bg, call.ID)
	if err != nil || meta.StatusCode != http.StatusOK {
		t.Fatalf("KeepAlive = %+v, %v", meta, err)
	}
	ka := lastRequest(t, e.fg, emulator.RouteKeepAlive)
	if len(ka.Body) != 0 || ka.Method != http.MethodPost || ka.Header.Get("Content-Type") != "" {
		t.Errorf("keepAlive sent %s with body %q content-type %q, want an empty POST", ka.Method, ka.Body, ka.Header.Get("Content-Type"))
	}

	got, meta, err := e.c.GetCall(bg, call.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != call.ID || got.State != model.StateEstablishing || got.CallbackURI != callback || meta.StatusCode != http.StatusOK {
		t.Errorf("GetCall = %+v (%+v)", got, meta)
	}

	meta, err = e.c.Hangup(bg, call.ID)
	if err != nil || meta.StatusCode != http.StatusNoContent {
		t.Fatalf("Hangup = %+v, %v", meta, err)
	}
	if req := lastRequest(t, e.fg, emulator.RouteDeleteCall); req.Method != http.MethodDelete {
		t.Errorf("hangup sent %s", req.Method)
	}
	if c, _ := e.fg.Call(call.ID); c.State != model.StateTerminated {
		t.Errorf("state after hangup %q", c.State)
	}

	// The call is gone: keepAlive gets 404, which is not retried.
	_, err = e.c.KeepAlive(bg, call.ID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || ae.Code != "itemNotFound" {
		t.Fatalf("KeepAlive after hangup: %v, want 404 itemNotFound", err)
	}
	if n := len(e.fg.Requests(emulator.RouteKeepAlive)); n != 2 {
		t.Errorf("keepAlive requests = %d, want 2 (404 not retried)", n)
	}
	if Retryable(err) {
		t.Error("404 must not be retryable")
	}
}

func TestListParticipantsFollowsNextLink(t *testing.T) {
	e := newEnv(t, emulator.Options{PageSize: 2})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	var roster []model.Participant
	for i := range 5 {
		roster = append(roster, model.Participant{ODataType: model.ODataParticipant, ID: fmt.Sprintf("p%d", i),
			Info: model.ParticipantInfo{Identity: aadUser(fmt.Sprintf("u%d", i))}})
	}
	e.fg.SetParticipants(id, roster)

	got, meta, err := e.c.ListParticipants(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d participants, want 5", len(got))
	}
	for i, p := range got {
		if p.ID != fmt.Sprintf("p%d", i) {
			t.Errorf("participant %d = %q", i, p.ID)
		}
	}
	reqs := e.fg.Requests(emulator.RouteListParticipants)
	if len(reqs) != 3 || meta.Attempts != 3 {
		t.Fatalf("%d page requests, meta.Attempts %d, want 3", len(reqs), meta.Attempts)
	}
	for _, r := range reqs {
		if r.ClientRequestID != meta.ClientRequestID {
			t.Errorf("page sent client-request-id %q, want %q", r.ClientRequestID, meta.ClientRequestID)
		}
	}
}

func TestListParticipantsRefusesForeignNextLink(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.Script(emulator.RouteListParticipants, emulator.Fault{Status: http.StatusOK,
		Body: []byte(`{"value":[{"id":"p0"}],"@odata.nextLink":"https://evil.example/v1.0/communications/calls/x/participants?$skiptoken=1"}`)})
	_, _, err := e.c.ListParticipants(bg, id)
	if err == nil || !strings.Contains(err.Error(), "nextLink") {
		t.Fatalf("err = %v, want nextLink refused", err)
	}
	if n := len(e.fg.GraphRequests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestGetOperation(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	op, _, err := e.c.Invite(bg, id, validInvite())
	if err != nil {
		t.Fatal(err)
	}
	got, meta, err := e.c.GetOperation(bg, id, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != op.ID || got.Status != model.OpRunning || got.ClientContext != seedCtx || meta.StatusCode != http.StatusOK {
		t.Errorf("GetOperation = %+v", got)
	}
	// A completed one, capitalised as Graph sometimes does.
	e.fg.Script(emulator.RouteGetOperation, emulator.Fault{Status: http.StatusOK,
		Body: []byte(`{"@odata.type":"#microsoft.graph.commsOperation","id":"` + op.ID + `","status":"Completed","resultInfo":{"code":200,"subcode":0}}`)})
	got, _, err = e.c.GetOperation(bg, id, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != model.OpCompleted || !got.Status.Final() || got.ResultInfo == nil || got.ResultInfo.Code != 200 {
		t.Errorf("GetOperation = %+v", got)
	}
	if _, _, err := e.c.GetOperation(bg, id, "nope"); err == nil {
		t.Error("unknown operation: want 404")
	}
}

func TestPathIDsAreEscaped(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := "abc def?x=1#y%"
	e.fg.PutCall(model.Call{ID: id, State: model.StateEstablished})
	if _, _, err := e.c.GetCall(bg, id); err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, e.fg, emulator.RouteGetCall)
	if req.CallID != id {
		t.Errorf("fake saw id %q, want %q", req.CallID, id)
	}
	if !strings.HasSuffix(req.Path, "/calls/abc%20def%3Fx=1%23y%25") {
		t.Errorf("path %q not escaped", req.Path)
	}
}

func TestClientRequestID(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	seen := map[string]bool{}
	for range 10 {
		call, meta, err := e.c.CreateCall(bg, validCall())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := uuid.Parse(meta.ClientRequestID); err != nil {
			t.Fatalf("client-request-id %q is not a uuid", meta.ClientRequestID)
		}
		if seen[meta.ClientRequestID] {
			t.Fatalf("client-request-id %q reused", meta.ClientRequestID)
		}
		seen[meta.ClientRequestID] = true
		req := lastRequest(t, e.fg, emulator.RouteCreateCall)
		if req.ClientRequestID != meta.ClientRequestID {
			t.Errorf("sent %q, Meta says %q", req.ClientRequestID, meta.ClientRequestID)
		}
		if meta.RequestID == "" {
			t.Error("Meta.RequestID empty: Graph's request-id header not kept")
		}
		meta2, err := e.c.KeepAlive(bg, call.ID)
		if err != nil {
			t.Fatal(err)
		}
		if seen[meta2.ClientRequestID] || meta2.ClientRequestID == "" {
			t.Fatalf("keepAlive client-request-id %q not fresh", meta2.ClientRequestID)
		}
		seen[meta2.ClientRequestID] = true
	}
	for _, r := range e.fg.GraphRequests() {
		if r.ClientRequestID == "" {
			t.Errorf("%s %s without client-request-id", r.Method, r.Path)
		}
	}
}

// TestRetry429RetryAfterThenSuccess: invite is a POST, and a 429 means
// Graph did not process it, so it is resent after the Retry-After wait.
func TestRetry429RetryAfterThenSuccess(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.Script(emulator.RouteInvite, emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})

	op, meta, err := e.c.Invite(bg, id, validInvite())
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != model.OpRunning || meta.Attempts != 2 || meta.StatusCode != http.StatusOK {
		t.Errorf("op %+v meta %+v, want running after 2 attempts", op, meta)
	}
	if w := e.sleeps.waits(); len(w) != 1 || w[0] != time.Second {
		t.Errorf("waits = %v, want [1s] from Retry-After", w)
	}
	reqs := e.fg.Requests(emulator.RouteInvite)
	if len(reqs) != 2 || reqs[0].ClientRequestID != reqs[1].ClientRequestID || reqs[0].ClientRequestID != meta.ClientRequestID {
		t.Errorf("requests %d; a retry keeps the call's client-request-id", len(reqs))
	}
	m := e.c.m
	for name, got := range map[string]float64{
		"retries{invite,throttled}": testutil.ToFloat64(m.retries.WithLabelValues(OpInvite, reasonThrottled)),
		"requests{invite,4xx}":      testutil.ToFloat64(m.requests.WithLabelValues(OpInvite, "4xx")),
		"requests{invite,2xx}":      testutil.ToFloat64(m.requests.WithLabelValues(OpInvite, "2xx")),
		"token fetches":             testutil.ToFloat64(m.tokenFetches),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
	// Every operation's series exists from start; only invite's observed.
	if n := testutil.CollectAndCount(m.latency); n != len(allOps) {
		t.Errorf("latency series = %d, want %d (one per operation)", n, len(allOps))
	}
	if n := histCount(t, m.latency, OpInvite); n != 2 {
		t.Errorf("latency{invite} samples = %d, want 2 (the 429 and the retry)", n)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e.c.now = func() time.Time { return now }
	e.fg.Script(emulator.RouteGetCall, emulator.Fault{Status: http.StatusServiceUnavailable,
		RetryAfter: now.Add(3 * time.Second).Format(http.TimeFormat)})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, _, err := e.c.GetCall(bg, id); err != nil {
		t.Fatal(err)
	}
	if w := e.sleeps.waits(); len(w) != 1 || w[0] != 3*time.Second {
		t.Errorf("waits = %v, want [3s]", w)
	}
}

func TestRetry503ThenSuccess(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusServiceUnavailable})
	call, meta, err := e.c.CreateCall(bg, validCall())
	if err != nil {
		t.Fatal(err)
	}
	if call.ID == "" || meta.Attempts != 2 {
		t.Errorf("meta %+v", meta)
	}
	// No Retry-After: capped exponential backoff with jitter.
	if w := e.sleeps.waits(); len(w) != 1 || w[0] <= 0 || w[0] > e.cfg.BackoffMax {
		t.Errorf("waits = %v, want one backoff in (0, %s]", w, e.cfg.BackoffMax)
	}
	if n := len(e.fg.Calls()); n != 1 {
		t.Errorf("fake holds %d calls, want 1", n)
	}
	if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpCreateCall, reasonUnavailable)); v != 1 {
		t.Errorf("retries{create_call,unavailable} = %v", v)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) {
		c.MaxRetries = 8
		c.BackoffInitial = 10 * time.Millisecond
		c.BackoffMax = 40 * time.Millisecond
	})
	e.fg.SetFault(emulator.RouteGetCall, &emulator.Fault{Status: http.StatusServiceUnavailable})
	_, meta, err := e.c.GetCall(bg, "any")
	if err == nil || meta.Attempts != 9 {
		t.Fatalf("err %v after %d attempts, want failure after 9", err, meta.Attempts)
	}
	w := e.sleeps.waits()
	if len(w) != 8 {
		t.Fatalf("waits %v", w)
	}
	for i, d := range w {
		if d < 5*time.Millisecond || d > 60*time.Millisecond { // ±50% jitter around 10ms..40ms
			t.Errorf("wait %d = %s outside jittered [5ms, 60ms]", i, d)
		}
	}
	if w[7] < 20*time.Millisecond {
		t.Errorf("late wait %s did not grow toward the cap", w[7])
	}
}

func TestBadRequestNotRetried(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusBadRequest, Code: "BadRequest"})
	_, meta, err := e.c.CreateCall(bg, validCall())
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if ae.StatusCode != 400 || ae.Code != "BadRequest" || ae.RequestID == "" || ae.RequestID != meta.RequestID ||
		ae.ClientRequestID != meta.ClientRequestID || ae.Date == "" {
		t.Errorf("APIError = %+v, meta %+v", ae, meta)
	}
	if n := len(e.fg.Requests(emulator.RouteCreateCall)); n != 1 || meta.Attempts != 1 {
		t.Errorf("%d requests / %d attempts, want 1", n, meta.Attempts)
	}
	if len(e.sleeps.waits()) != 0 || Retryable(err) {
		t.Error("400 must not be retried")
	}
	if !strings.HasPrefix(err.Error(), "create call: graph answered 400 BadRequest") {
		t.Errorf("error text %q", err)
	}
}

func TestTimeoutOnPostIsOutcomeUnknown(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	// The fake holds the answer far longer than the attempt deadline.
	e.fg.Script(emulator.RouteInvite, emulator.Fault{Delay: time.Minute})

	_, meta, err := e.c.Invite(bg, id, validInvite())
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	var ou *OutcomeUnknownError
	if !errors.As(err, &ou) || ou.ClientRequestID != meta.ClientRequestID || ou.Op != "invite participants" {
		t.Errorf("OutcomeUnknownError = %+v", ou)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause lost: %v", err)
	}
	if n := len(e.fg.Requests(emulator.RouteInvite)); n != 1 {
		t.Errorf("fake recorded %d invite requests, want exactly 1", n)
	}
	if Retryable(err) {
		t.Error("unknown outcome must not be retryable before reconciling")
	}
	if v := testutil.ToFloat64(e.c.m.outcomeUnknown.WithLabelValues(OpInvite)); v != 1 {
		t.Errorf("outcome_unknown{invite} = %v", v)
	}
	if v := testutil.ToFloat64(e.c.m.requests.WithLabelValues(OpInvite, "error")); v != 1 {
		t.Errorf("requests{invite,error} = %v", v)
	}
}

func Test504OnPostIsOutcomeUnknown(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	// Graph created the call, but the gateway answered 504.
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusGatewayTimeout, Apply: true})
	_, _, err := e.c.CreateCall(bg, validCall())
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("504 APIError not wrapped: %v", err)
	}
	if n := len(e.fg.Requests(emulator.RouteCreateCall)); n != 1 {
		t.Errorf("fake recorded %d create requests, want 1 (not resent)", n)
	}
	if n := len(e.fg.Calls()); n != 1 {
		t.Errorf("fake holds %d calls, want 1", n)
	}
}

func Test504OnGetIsRetried(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.Script(emulator.RouteGetCall, emulator.Fault{Status: http.StatusGatewayTimeout})
	_, meta, err := e.c.GetCall(bg, id)
	if err != nil || meta.Attempts != 2 {
		t.Fatalf("GetCall: %v after %d attempts", err, meta.Attempts)
	}
	if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpGetCall, reasonGatewayTimeout)); v != 1 {
		t.Errorf("retries{get_call,gateway_timeout} = %v", v)
	}
}

func TestTimeoutOnIdempotentIsRetried(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.Script(emulator.RouteKeepAlive, emulator.Fault{Delay: time.Minute})
	meta, err := e.c.KeepAlive(bg, id)
	if err != nil || meta.Attempts != 2 {
		t.Fatalf("KeepAlive: %v after %d attempts", err, meta.Attempts)
	}
	if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpKeepAlive, reasonTimeout)); v != 1 {
		t.Errorf("retries{keep_alive,timeout} = %v", v)
	}
}

func TestRetriesStopAtMaxRetries(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.MaxRetries = 3 })
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.SetFault(emulator.RouteInvite, &emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: "0"})
	_, meta, err := e.c.Invite(bg, id, validInvite())
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("err = %v, want the last 429", err)
	}
	if meta.Attempts != 4 || len(e.fg.Requests(emulator.RouteInvite)) != 4 {
		t.Errorf("attempts %d, requests %d, want 4", meta.Attempts, len(e.fg.Requests(emulator.RouteInvite)))
	}
	if !Retryable(err) {
		t.Error("a 429 is retryable later")
	}
}

func TestRetriesStopWithinBudget(t *testing.T) {
	t.Run("Retry-After beyond the budget", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, func(c *Config) { c.RetryBudget = 10 * time.Second })
		e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: "60"})
		_, meta, err := e.c.CreateCall(bg, validCall())
		var ae *APIError
		if !errors.As(err, &ae) || ae.RetryAfter != time.Minute {
			t.Fatalf("err = %v, want 429 with RetryAfter 1m", err)
		}
		if meta.Attempts != 1 || len(e.sleeps.waits()) != 0 {
			t.Errorf("attempts %d waits %v, want no retry", meta.Attempts, e.sleeps.waits())
		}
	})
	t.Run("waits add up to the budget", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, func(c *Config) {
			c.RetryBudget = 30 * time.Second
			c.MaxRetries = 50
		})
		var mu sync.Mutex
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		e.c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		e.c.sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			return nil
		}
		e.fg.SetFault(emulator.RouteGetCall, &emulator.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "10"})
		_, meta, err := e.c.GetCall(bg, "x")
		if err == nil {
			t.Fatal("want failure")
		}
		// Attempts at t=0, 10, 20, 30s; the next wait would end past 30s.
		if meta.Attempts != 4 {
			t.Errorf("attempts = %d, want 4", meta.Attempts)
		}
	})
}

func TestContextCancelStopsRetries(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx, cancel := context.WithCancel(bg)
	e.c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	e.fg.SetFault(emulator.RouteGetCall, &emulator.Fault{Status: http.StatusServiceUnavailable})
	_, meta, err := e.c.GetCall(ctx, "x")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Errorf("last answer lost: %v", err)
	}
	if meta.Attempts != 1 || len(e.fg.GraphRequests()) != 1 {
		t.Errorf("attempts %d, want 1", meta.Attempts)
	}
}

func TestConnectionRefused(t *testing.T) {
	// A port nobody listens on: the POST never got written, so it is safe
	// to retry and is not an unknown outcome.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/v1.0"
	l.Close()
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.BaseURL = dead; c.MaxRetries = 2 })
	_, meta, err := e.c.CreateCall(bg, validCall())
	if err == nil || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want a connection error, not an unknown outcome", err)
	}
	if meta.Attempts != 3 || !Retryable(err) {
		t.Errorf("attempts %d retryable %v", meta.Attempts, Retryable(err))
	}
	if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpCreateCall, reasonConnection)); v != 2 {
		t.Errorf("retries{create_call,connection} = %v, want 2", v)
	}
}

func TestRedirectsNotFollowed(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteGetCall, emulator.Fault{Status: http.StatusFound,
		Header: http.Header{"Location": {e.fg.URL() + "/elsewhere"}}})
	_, _, err := e.c.GetCall(bg, "x")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusFound {
		t.Fatalf("err = %v, want the 302 as an error", err)
	}
	if n := len(e.fg.Requests()); n != 2 { // token + the GET, no hop
		t.Errorf("%d requests, want 2", n)
	}
}

// TestResponseBodiesClosed wraps the transport and checks every response
// body was read to the end and closed, on success and on error paths.
func TestResponseBodiesClosed(t *testing.T) {
	tr := &trackingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.Transport = tr })
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	e.fg.Script(emulator.RouteGetCall,
		emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: "0"},
		emulator.Fault{Status: http.StatusNotFound})
	_, _, _ = e.c.GetCall(bg, id)
	_, _, _ = e.c.GetCall(bg, id)
	_, _ = e.c.KeepAlive(bg, id)
	_, _ = e.c.Hangup(bg, id)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.bodies) < 5 {
		t.Fatalf("saw %d responses", len(tr.bodies))
	}
	for i, b := range tr.bodies {
		if !b.closed.Load() || !b.eof.Load() {
			t.Errorf("response %d: closed=%v drained=%v", i, b.closed.Load(), b.eof.Load())
		}
	}
}

type trackingTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	bodies []*trackedBody
}

func (t *trackingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b := &trackedBody{rc: res.Body}
	res.Body = b
	t.mu.Lock()
	t.bodies = append(t.bodies, b)
	t.mu.Unlock()
	return res, nil
}

type trackedBody struct {
	rc     io.ReadCloser
	closed atomic.Bool
	eof    atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.closed.Store(true)
	return b.rc.Close()
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&ValidationError{Rule: RuleRequired}, false},
		{&OutcomeUnknownError{Err: &APIError{StatusCode: 504}}, false},
		{fmt.Errorf("x: %w", &APIError{StatusCode: 429}), true},
		{&APIError{StatusCode: 503}, true},
		{&APIError{StatusCode: 504}, true},
		{&APIError{StatusCode: 500}, false},
		{&APIError{StatusCode: 404}, false},
		{&TokenError{StatusCode: 401, Code: "invalid_client"}, false},
		{&TokenError{StatusCode: 500}, true},
		{&TokenError{Err: errors.New("dial")}, true},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, true},
		{errors.New("other"), false},
	}
	for _, c := range cases {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestClientIsSafeForConcurrentUse(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: 429, RetryAfter: "0"}, emulator.Fault{Status: 503})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			call, _, err := e.c.CreateCall(bg, validCall())
			if err == nil {
				_, err = e.c.KeepAlive(bg, call.ID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := e.fg.TokenFetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := withTunables(Config{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	cases := map[string]func(*Config){
		"china":            func(c *Config) { c.Cloud = "china" },
		"unknown cloud":    func(c *Config) { c.Cloud = "mars" },
		"no client id":     func(c *Config) { c.ClientID = "" },
		"no secret":        func(c *Config) { c.ClientSecret = "" },
		"no tenant":        func(c *Config) { c.TenantID = "" },
		"http base":        func(c *Config) { c.BaseURL = "http://graph.example.com/v1.0" },
		"relative base":    func(c *Config) { c.BaseURL = "/v1.0" },
		"http token URL":   func(c *Config) { c.TokenURL = "http://login.example.com/t/oauth2/v2.0/token" },
		"ftp token URL":    func(c *Config) { c.TokenURL = "ftp://login.example.com/token" },
		"garbage base URL": func(c *Config) { c.BaseURL = "https://%zz" },
	}
	for name, mut := range cases {
		cfg := good
		mut(&cfg)
		if _, err := New(cfg, zerolog.Nop(), prometheus.NewRegistry()); err == nil {
			t.Errorf("%s: New accepted %v", name, cfg)
		}
	}
	if _, err := New(good, zerolog.Nop(), prometheus.NewRegistry()); err != nil {
		t.Errorf("good config refused: %v", err)
	}
	if _, err := New(good, zerolog.Nop(), nil); err != nil {
		t.Errorf("nil registry refused: %v", err)
	}
}

// TestNewRefusesZeroTunables: no tunable is silently defaulted; a zero
// one is refused with its name, and MaxRetries 0 is accepted as no
// retries.
func TestNewRefusesZeroTunables(t *testing.T) {
	good := DefaultConfig()
	good.TenantID, good.ClientID, good.ClientSecret = "t", "c", "s"
	for field, zero := range map[string]func(*Config){
		"RequestTimeout": func(c *Config) { c.RequestTimeout = 0 },
		"RetryBudget":    func(c *Config) { c.RetryBudget = 0 },
		"BackoffInitial": func(c *Config) { c.BackoffInitial = 0 },
		"BackoffMax":     func(c *Config) { c.BackoffMax = 0 },
		"MaxTenants":     func(c *Config) { c.MaxTenants = 0 },
		"MaxRetries":     func(c *Config) { c.MaxRetries = -1 },
	} {
		cfg := good
		zero(&cfg)
		if _, err := New(cfg, zerolog.Nop(), nil); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s zero: err = %v, want one naming %s", field, err, field)
		}
	}
	none := good
	none.MaxRetries = 0
	c, err := New(none, zerolog.Nop(), nil)
	if err != nil || c.cfg.MaxRetries != 0 {
		t.Fatalf("MaxRetries 0: %v, want accepted as no retries", err)
	}
	if _, err := New(Config{TenantID: "t", ClientID: "c", ClientSecret: "s"}, zerolog.Nop(), nil); err == nil {
		t.Error("a Config without tunables was accepted")
	}
}

func TestResolveCloud(t *testing.T) {
	for name, want := range map[string]Cloud{
		"":       {Name: "global", GraphBaseURL: "https://graph.microsoft.com/v1.0", LoginBaseURL: "https://login.microsoftonline.com"},
		"Global": {Name: "global", GraphBaseURL: "https://graph.microsoft.com/v1.0", LoginBaseURL: "https://login.microsoftonline.com"},
		"usgov":  {Name: "usgov", GraphBaseURL: "https://graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us"},
		"dod":    {Name: "dod", GraphBaseURL: "https://dod-graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us"},
	} {
		got, err := ResolveCloud(name)
		if err != nil || got.Name != want.Name || got.GraphBaseURL != want.GraphBaseURL || got.LoginBaseURL != want.LoginBaseURL {
			t.Errorf("ResolveCloud(%q) = %+v, %v", name, got, err)
		}
	}
	_, err := ResolveCloud("china")
	if !errors.Is(err, ErrCloudUnsupported) || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("china: %v, want ErrCloudUnsupported", err)
	}

	c, err := New(withTunables(Config{Cloud: "dod", TenantID: "contoso.onmicrosoft.com", ClientID: "c", ClientSecret: "s"}), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "https://dod-graph.microsoft.us/v1.0" ||
		c.cfg.tokenURL != "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token" ||
		c.cfg.scope != "https://dod-graph.microsoft.us/.default" {
		t.Errorf("dod preset: base %q token %q scope %q", c.BaseURL(), c.cfg.tokenURL, c.cfg.scope)
	}
}

func TestConfigStringMasksSecret(t *testing.T) {
	s := Config{ClientID: "c", ClientSecret: "hunter2"}.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "REDACTED") {
		t.Errorf("String() = %s", s)
	}
	if s := fmt.Sprintf("%v", Config{ClientSecret: "hunter2"}); strings.Contains(s, "hunter2") {
		t.Errorf("%%v leaks the secret: %s", s)
	}
}

func TestCertificateErrorNotRetried(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	ts.StartTLS()
	defer ts.Close()
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.BaseURL = ts.URL + "/v1.0" })
	_, meta, err := e.c.GetCall(bg, "x")
	if err == nil || meta.Attempts != 1 || Retryable(err) {
		t.Fatalf("err %v after %d attempts (retryable %v), want one attempt, not retryable", err, meta.Attempts, Retryable(err))
	}
}

func TestOutcomeUnknownErrorText(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusGatewayTimeout})
	_, meta, err := e.c.CreateCall(bg, validCall())
	if err == nil || !strings.HasPrefix(err.Error(), "create call: outcome unknown, not resent") ||
		!strings.Contains(err.Error(), meta.ClientRequestID) {
		t.Errorf("error text %q", err)
	}
}

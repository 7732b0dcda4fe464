package handlers

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

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

// TestChangesStream: GET /v1/changes streams the store's changes as
// server-sent events, only the named call's with ?callId=, in order.
func TestChangesStream(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
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

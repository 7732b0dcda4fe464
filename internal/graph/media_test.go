package graph

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

// mediaGraph is a fake Graph for the media and participant actions, which
// the emulator does not model: it records each request and answers with
// the scripted status, headers and body. Tokens still come from the
// emulator, so the client runs its real OAuth path.
type mediaGraph struct {
	mu     sync.Mutex
	seen   []seenRequest
	status int
	header http.Header
	body   []byte
}

type seenRequest struct {
	method, path, auth string
	body               []byte
}

func (g *mediaGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.seen = append(g.seen, seenRequest{method: r.Method, path: r.URL.EscapedPath(), auth: r.Header.Get("Authorization"), body: b})
	status, header, body := g.status, g.header, g.body
	g.mu.Unlock()
	for k, vs := range header {
		w.Header()[k] = vs
	}
	if len(body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("request-id", "req-1")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (g *mediaGraph) answer(status int, location string, body []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status, g.body = status, body
	g.header = http.Header{}
	if location != "" {
		g.header.Set("Location", location)
	}
}

func (g *mediaGraph) requests() []seenRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenRequest(nil), g.seen...)
}

// newMediaEnv is newEnv with Graph requests going to a mediaGraph.
func newMediaEnv(t *testing.T) (*env, *mediaGraph) {
	t.Helper()
	g := &mediaGraph{status: http.StatusOK}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.BaseURL = srv.URL + "/v1.0" })
	return e, g
}

func readMedia(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "media", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	docCallID = "57dab8b1-894c-409a-b240-bd8beae78896"
	docPartID = "2765eb15-01f8-47c6-b12b-c32111a4a86f"
)

// decodeDoc decodes a documented request body into the request type, so
// that sending it checks both directions of the JSON mapping.
func decodeDoc[T any](t *testing.T, name string) *T {
	t.Helper()
	var v T
	if err := json.Unmarshal(readMedia(t, name), &v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return &v
}

// TestMediaActionsOnTheWire sends each documented request and checks the
// path, method and body Graph would see, and the operation parsed from
// the documented answer.
func TestMediaActionsOnTheWire(t *testing.T) {
	type result struct {
		op   *model.Operation
		meta Meta
		err  error
	}
	opResult := func(op *model.Operation, meta Meta, err error) result { return result{op, meta, err} }
	cases := []struct {
		name     string
		doc      string // testdata/media/{doc}.request.json and .response.json
		status   int
		method   string
		path     string
		noAnswer bool // 202/204 without a body
		wantType string
		wantOpID string
		wantStat model.OperationStatus
		run      func(c *Client, t *testing.T) result
	}{
		{"playPrompt", "playPrompt", 200, "POST", "/playPrompt", false, model.ODataPlayPromptOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpRunning,
			func(c *Client, t *testing.T) result {
				return opResult(c.PlayPrompt(bg, docCallID, decodeDoc[PlayPromptRequest](t, "playPrompt.request.json")))
			}},
		{"recordResponse", "recordResponse", 200, "POST", "/recordResponse", false, model.ODataRecordOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpRunning,
			func(c *Client, t *testing.T) result {
				req := decodeDoc[RecordResponseRequest](t, "recordResponse.request.json")
				want := []model.Tone{model.TonePound, model.Tone1, model.ToneStar}
				if strings.Join(toneStrings(req.StopTones), ",") != strings.Join(toneStrings(want), ",") {
					t.Errorf("stopTones decoded as %v, want %v", req.StopTones, want)
				}
				return opResult(c.RecordResponse(bg, docCallID, req))
			}},
		{"subscribeToTone", "subscribeToTone", 200, "POST", "/subscribeToTone", false, model.ODataSubscribeToToneOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.SubscribeToTone(bg, docCallID, decodeDoc[SubscribeToToneRequest](t, "subscribeToTone.request.json")))
			}},
		{"sendDtmfTones", "sendDtmfTones", 200, "POST", "/sendDtmfTones", false, model.ODataSendDtmfTonesOp, "d36fe651-9f50-484d-bd4b-1e6415eae448", model.OpRunning,
			func(c *Client, t *testing.T) result {
				return opResult(c.SendDtmfTones(bg, docCallID, decodeDoc[SendDtmfTonesRequest](t, "sendDtmfTones.request.json")))
			}},
		{"cancelMediaProcessing", "cancelMediaProcessing", 200, "POST", "/cancelMediaProcessing", false, model.ODataCancelMediaProcessingOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.CancelMediaProcessing(bg, docCallID, decodeDoc[CancelMediaProcessingRequest](t, "cancelMediaProcessing.request.json")))
			}},
		{"mute", "mute", 200, "POST", "/mute", false, model.ODataMuteParticipantOp, "17e3b46c-f61d-4f4d-9635-c626ef18e6ad", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.Mute(bg, docCallID, decodeDoc[MuteRequest](t, "mute.request.json")))
			}},
		{"unmute", "unmute", 200, "POST", "/unmute", false, model.ODataUnmuteParticipantOp, "17e3b46c-f61d-4f4d-9635-c626ef18e6ad", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.Unmute(bg, docCallID, decodeDoc[MuteRequest](t, "unmute.request.json")))
			}},
		{"muteParticipant", "participantMute", 200, "POST", "/participants/" + docPartID + "/mute", false, model.ODataMuteParticipantOp, "17e3b46c-f61d-4f4d-9635-c626ef18e6ad", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.MuteParticipant(bg, docCallID, docPartID, decodeDoc[MuteRequest](t, "participantMute.request.json")))
			}},
		{"startHoldMusic", "startHoldMusic", 202, "POST", "/participants/" + docPartID + "/startHoldMusic", false, model.ODataStartHoldMusicOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpRunning,
			func(c *Client, t *testing.T) result {
				return opResult(c.StartHoldMusic(bg, docCallID, docPartID, decodeDoc[StartHoldMusicRequest](t, "startHoldMusic.request.json")))
			}},
		{"stopHoldMusic", "stopHoldMusic", 202, "POST", "/participants/" + docPartID + "/stopHoldMusic", false, model.ODataStopHoldMusicOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpRunning,
			func(c *Client, t *testing.T) result {
				return opResult(c.StopHoldMusic(bg, docCallID, docPartID, decodeDoc[StopHoldMusicRequest](t, "stopHoldMusic.request.json")))
			}},
		{"updateRecordingStatus", "updateRecordingStatus", 200, "POST", "/updateRecordingStatus", false, model.ODataUpdateRecordingStatusOp, "0fe0623f-d628-42ed-b4bd-8ac290072cc5", model.OpCompleted,
			func(c *Client, t *testing.T) result {
				return opResult(c.UpdateRecordingStatus(bg, docCallID, decodeDoc[UpdateRecordingStatusRequest](t, "updateRecordingStatus.request.json")))
			}},
		{"changeScreenSharingRole", "changeScreenSharingRole", 202, "POST", "/changeScreenSharingRole", true, "", "", "",
			func(c *Client, t *testing.T) result {
				meta, err := c.ChangeScreenSharingRole(bg, docCallID, decodeDoc[ChangeScreenSharingRoleRequest](t, "changeScreenSharingRole.request.json"))
				return result{meta: meta, err: err}
			}},
		{"removeParticipant", "", 204, "DELETE", "/participants/" + docPartID, true, "", "", "",
			func(c *Client, t *testing.T) result {
				meta, err := c.RemoveParticipant(bg, docCallID, docPartID)
				return result{meta: meta, err: err}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, g := newMediaEnv(t)
			location := ""
			var body []byte
			if !tc.noAnswer {
				location = "https://graph.microsoft.com/v1.0/communications/calls/" + docCallID + "/operations/" + tc.wantOpID
				body = readMedia(t, tc.doc+".response.json")
			}
			g.answer(tc.status, location, body)
			res := tc.run(e.c, t)
			if res.err != nil {
				t.Fatalf("err = %v", res.err)
			}
			rs := g.requests()
			if len(rs) != 1 {
				t.Fatalf("fake saw %d requests, want 1", len(rs))
			}
			r := rs[0]
			if want := "/v1.0/communications/calls/" + docCallID + tc.path; r.method != tc.method || r.path != want {
				t.Errorf("sent %s %s, want %s %s", r.method, r.path, tc.method, want)
			}
			if !strings.HasPrefix(r.auth, "Bearer ") {
				t.Errorf("Authorization = %q, want a bearer token", r.auth)
			}
			if tc.doc == "" {
				if len(r.body) != 0 {
					t.Errorf("DELETE sent a body: %s", r.body)
				}
			} else {
				assertJSONEquivalent(t, readMedia(t, tc.doc+".request.json"), r.body)
			}
			if res.meta.StatusCode != tc.status || res.meta.RequestID != "req-1" || res.meta.ClientRequestID == "" {
				t.Errorf("meta = %+v", res.meta)
			}
			if tc.noAnswer {
				return
			}
			op := res.op
			if op == nil {
				t.Fatal("no operation")
			}
			if op.ODataType != tc.wantType || op.ID != tc.wantOpID || op.Status != tc.wantStat {
				t.Errorf("operation = %+v, want %s %s %s", op, tc.wantType, tc.wantOpID, tc.wantStat)
			}
			var doc model.Operation
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if op.ClientContext != doc.ClientContext || op.ClientContext == "" {
				t.Errorf("clientContext = %q, want %q", op.ClientContext, doc.ClientContext)
			}
			if res.meta.Location != location {
				t.Errorf("Location = %q, want %q", res.meta.Location, location)
			}
		})
	}
}

func toneStrings(ts []model.Tone) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// TestMediaOperationStatusAndLocation: a capitalised status is normalised,
// and an operation answered without an id takes it from Location.
func TestMediaOperationStatusAndLocation(t *testing.T) {
	e, g := newMediaEnv(t)
	g.answer(200, "https://graph.microsoft.com/v1.0/communications/calls/c1/operations/op-9", []byte(`{"@odata.type":"#microsoft.graph.playPromptOperation","status":"Running"}`))
	op, _, err := e.c.PlayPrompt(bg, "c1", &PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("https://cdn.contoso.com/a.wav")}})
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != model.OpRunning || op.ID != "op-9" {
		t.Errorf("operation = %+v, want running op-9", op)
	}
	for loc, want := range map[string]string{
		"":                                   "",
		"https://x/calls/c/operations/":      "",
		"https://x/calls/c/operations/a%2Fb": "",
		"https://x/calls/c/operations/..":    "",
		"https://x/calls/c/operations/o%201": "o 1",
		"https://x/calls/c":                  "",
	} {
		if got := operationIDFromLocation(loc); got != want {
			t.Errorf("operationIDFromLocation(%q) = %q, want %q", loc, got, want)
		}
	}
}

// TestMediaNilBodiesSendEmptyObject: the clientContext-only actions send
// {} when given no request.
func TestMediaNilBodiesSendEmptyObject(t *testing.T) {
	e, g := newMediaEnv(t)
	g.answer(200, "", []byte(`{"id":"o","status":"completed"}`))
	calls := []func() error{
		func() error { _, _, err := e.c.SubscribeToTone(bg, "c1", nil); return err },
		func() error { _, _, err := e.c.CancelMediaProcessing(bg, "c1", nil); return err },
		func() error { _, _, err := e.c.Mute(bg, "c1", nil); return err },
		func() error { _, _, err := e.c.Unmute(bg, "c1", nil); return err },
		func() error { _, _, err := e.c.MuteParticipant(bg, "c1", "p1", nil); return err },
		func() error { _, _, err := e.c.StartHoldMusic(bg, "c1", "p1", nil); return err },
		func() error { _, _, err := e.c.StopHoldMusic(bg, "c1", "p1", nil); return err },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for _, r := range g.requests() {
		if string(r.body) != "{}" {
			t.Errorf("%s sent %q, want {}", r.path, r.body)
		}
	}
}

// TestMediaRetries: the actions that set a state are resent after a 504;
// those that start media end in OutcomeUnknownError, sent once.
func TestMediaRetries(t *testing.T) {
	pp := &PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("https://cdn.contoso.com/a.wav")}}
	cases := []struct {
		name       string
		idempotent bool
		run        func(c *Client) error
	}{
		{"playPrompt", false, func(c *Client) error { _, _, err := c.PlayPrompt(bg, "c1", pp); return err }},
		{"recordResponse", false, func(c *Client) error { _, _, err := c.RecordResponse(bg, "c1", &RecordResponseRequest{}); return err }},
		{"sendDtmfTones", false, func(c *Client) error {
			_, _, err := c.SendDtmfTones(bg, "c1", &SendDtmfTonesRequest{Tones: []model.Tone{model.Tone1}})
			return err
		}},
		{"subscribeToTone", false, func(c *Client) error { _, _, err := c.SubscribeToTone(bg, "c1", nil); return err }},
		{"cancelMediaProcessing", false, func(c *Client) error { _, _, err := c.CancelMediaProcessing(bg, "c1", nil); return err }},
		{"startHoldMusic", false, func(c *Client) error { _, _, err := c.StartHoldMusic(bg, "c1", "p1", nil); return err }},
		{"stopHoldMusic", false, func(c *Client) error { _, _, err := c.StopHoldMusic(bg, "c1", "p1", nil); return err }},
		{"mute", true, func(c *Client) error { _, _, err := c.Mute(bg, "c1", nil); return err }},
		{"unmute", true, func(c *Client) error { _, _, err := c.Unmute(bg, "c1", nil); return err }},
		{"muteParticipant", true, func(c *Client) error { _, _, err := c.MuteParticipant(bg, "c1", "p1", nil); return err }},
		{"updateRecordingStatus", true, func(c *Client) error {
			_, _, err := c.UpdateRecordingStatus(bg, "c1", &UpdateRecordingStatusRequest{Status: model.RecordingRecording})
			return err
		}},
		{"changeScreenSharingRole", true, func(c *Client) error {
			_, err := c.ChangeScreenSharingRole(bg, "c1", &ChangeScreenSharingRoleRequest{Role: model.ScreenSharingSharer})
			return err
		}},
		{"removeParticipant", true, func(c *Client) error { _, err := c.RemoveParticipant(bg, "c1", "p1"); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, g := newMediaEnv(t)
			g.answer(http.StatusGatewayTimeout, "", nil)
			err := tc.run(e.c)
			n := len(g.requests())
			var ou *OutcomeUnknownError
			if tc.idempotent {
				if n != DefaultMaxRetries+1 {
					t.Errorf("sent %d times, want %d (retried)", n, DefaultMaxRetries+1)
				}
				if errors.As(err, &ou) {
					t.Errorf("err = %v, want the 504 itself", err)
				}
			} else {
				if n != 1 {
					t.Errorf("sent %d times, want 1", n)
				}
				if !errors.As(err, &ou) {
					t.Errorf("err = %v, want *OutcomeUnknownError", err)
				}
			}
		})
	}
}

func prompt(uri string) model.MediaPrompt {
	return model.MediaPrompt{ODataType: model.ODataMediaPrompt, MediaInfo: &model.MediaInfo{ODataType: model.ODataMediaInfo, URI: uri, ResourceID: "r1"}}
}

func prompts(n int) []model.MediaPrompt {
	out := make([]model.MediaPrompt, n)
	for i := range out {
		out[i] = prompt("https://cdn.contoso.com/p.wav")
	}
	return out
}

// TestMediaValidationSendsNothing runs each media rule through the
// client: a *ValidationError with the rule and field, nothing sent (no
// Graph request, no token fetch), the refusal counted under the op.
func TestMediaValidationSendsNothing(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", MaxClientContext+1)
	cases := []struct {
		name, op, rule, field string
		run                   func(c *Client) error
	}{
		{"playPrompt: no prompts", OpPlayPrompt, RuleRequired, "prompts", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{})
			return err
		}},
		{"playPrompt: nil", OpPlayPrompt, RuleRequired, "prompts", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", nil)
			return err
		}},
		{"playPrompt: 21 prompts", OpPlayPrompt, RulePromptsMax, "prompts", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: prompts(MaxPlayPrompts + 1)})
			return err
		}},
		{"playPrompt: no mediaInfo", OpPlayPrompt, RuleRequired, "prompts[1].mediaInfo", func(c *Client) error {
			ps := prompts(2)
			ps[1].MediaInfo = nil
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: ps})
			return err
		}},
		{"playPrompt: no uri", OpPlayPrompt, RuleRequired, "prompts[0].mediaInfo.uri", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("")}})
			return err
		}},
		{"playPrompt: http uri", OpPlayPrompt, RulePromptURI, "prompts[0].mediaInfo.uri", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("http://cdn.contoso.com/a.wav")}})
			return err
		}},
		{"playPrompt: relative uri", OpPlayPrompt, RulePromptURI, "prompts[0].mediaInfo.uri", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("/a.wav")}})
			return err
		}},
		{"playPrompt: clientContext", OpPlayPrompt, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "c1", &PlayPromptRequest{Prompts: prompts(1), ClientContext: long})
			return err
		}},
		{"playPrompt: bad call id", OpPlayPrompt, RuleIDFormat, "callId", func(c *Client) error {
			_, _, err := c.PlayPrompt(ctx, "a/b", &PlayPromptRequest{Prompts: prompts(1)})
			return err
		}},
		{"record: nil", OpRecordResponse, RuleRequired, "recordResponse", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", nil)
			return err
		}},
		{"record: 2 prompts", OpRecordResponse, RulePromptsMax, "prompts", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{Prompts: prompts(2)})
			return err
		}},
		{"record: prompt uri", OpRecordResponse, RulePromptURI, "prompts[0].mediaInfo.uri", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{Prompts: []model.MediaPrompt{prompt("ftp://x/a.wav")}})
			return err
		}},
		{"record: initial silence 0", OpRecordResponse, RuleRecordInitialSilence, "initialSilenceTimeoutInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{InitialSilenceTimeoutInSeconds: ptr[int32](0)})
			return err
		}},
		{"record: initial silence 121", OpRecordResponse, RuleRecordInitialSilence, "initialSilenceTimeoutInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{InitialSilenceTimeoutInSeconds: ptr[int32](121)})
			return err
		}},
		{"record: max silence 121", OpRecordResponse, RuleRecordMaxSilence, "maxSilenceTimeoutInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{MaxSilenceTimeoutInSeconds: ptr[int32](121)})
			return err
		}},
		{"record: max silence -1", OpRecordResponse, RuleRecordMaxSilence, "maxSilenceTimeoutInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{MaxSilenceTimeoutInSeconds: ptr[int32](-1)})
			return err
		}},
		{"record: duration 121", OpRecordResponse, RuleRecordMaxDuration, "maxRecordDurationInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{MaxRecordDurationInSeconds: ptr[int32](121)})
			return err
		}},
		{"record: duration 0", OpRecordResponse, RuleRecordMaxDuration, "maxRecordDurationInSeconds", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{MaxRecordDurationInSeconds: ptr[int32](0)})
			return err
		}},
		{"record: stop tone", OpRecordResponse, RuleToneValue, "stopTones[1]", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{StopTones: []model.Tone{model.TonePound, "hash"}})
			return err
		}},
		{"record: clientContext", OpRecordResponse, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.RecordResponse(ctx, "c1", &RecordResponseRequest{ClientContext: long})
			return err
		}},
		{"subscribeToTone: clientContext", OpSubscribeToTone, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.SubscribeToTone(ctx, "c1", &SubscribeToToneRequest{ClientContext: long})
			return err
		}},
		{"subscribeToTone: empty call id", OpSubscribeToTone, RuleRequired, "callId", func(c *Client) error {
			_, _, err := c.SubscribeToTone(ctx, "", nil)
			return err
		}},
		{"dtmf: no tones", OpSendDtmfTones, RuleRequired, "tones", func(c *Client) error {
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{})
			return err
		}},
		{"dtmf: too many", OpSendDtmfTones, RuleDtmfMaxTones, "tones", func(c *Client) error {
			ts := make([]model.Tone, MaxDtmfTones+1)
			for i := range ts {
				ts[i] = model.Tone5
			}
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{Tones: ts})
			return err
		}},
		{"dtmf: key not tone", OpSendDtmfTones, RuleToneValue, "tones[0]", func(c *Client) error {
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{Tones: []model.Tone{"1"}})
			return err
		}},
		{"dtmf: negative delay", OpSendDtmfTones, RuleDtmfDelay, "delayBetweenTonesMs", func(c *Client) error {
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{Tones: []model.Tone{model.Tone1}, DelayBetweenTonesMs: ptr[int32](-1)})
			return err
		}},
		{"dtmf: long delay", OpSendDtmfTones, RuleDtmfDelay, "delayBetweenTonesMs", func(c *Client) error {
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{Tones: []model.Tone{model.Tone1}, DelayBetweenTonesMs: ptr[int32](MaxDtmfDelayMs + 1)})
			return err
		}},
		{"dtmf: clientContext", OpSendDtmfTones, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.SendDtmfTones(ctx, "c1", &SendDtmfTonesRequest{Tones: []model.Tone{model.Tone1}, ClientContext: long})
			return err
		}},
		{"cancel: clientContext", OpCancelMediaProcessing, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.CancelMediaProcessing(ctx, "c1", &CancelMediaProcessingRequest{ClientContext: long})
			return err
		}},
		{"mute: clientContext", OpMute, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.Mute(ctx, "c1", &MuteRequest{ClientContext: long})
			return err
		}},
		{"unmute: dot id", OpUnmute, RuleIDFormat, "callId", func(c *Client) error {
			_, _, err := c.Unmute(ctx, "..", nil)
			return err
		}},
		{"unmute: clientContext", OpUnmute, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.Unmute(ctx, "c1", &MuteRequest{ClientContext: long})
			return err
		}},
		{"muteParticipant: slash in pid", OpMuteParticipant, RuleIDFormat, "participantId", func(c *Client) error {
			_, _, err := c.MuteParticipant(ctx, "c1", "p/1", nil)
			return err
		}},
		{"muteParticipant: empty pid", OpMuteParticipant, RuleRequired, "participantId", func(c *Client) error {
			_, _, err := c.MuteParticipant(ctx, "c1", "", nil)
			return err
		}},
		{"muteParticipant: clientContext", OpMuteParticipant, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.MuteParticipant(ctx, "c1", "p1", &MuteRequest{ClientContext: long})
			return err
		}},
		{"remove: control char pid", OpRemoveParticipant, RuleIDFormat, "participantId", func(c *Client) error {
			_, err := c.RemoveParticipant(ctx, "c1", "p\x00")
			return err
		}},
		{"remove: empty call id", OpRemoveParticipant, RuleRequired, "callId", func(c *Client) error {
			_, err := c.RemoveParticipant(ctx, "", "p1")
			return err
		}},
		{"startHold: no mediaInfo", OpStartHoldMusic, RuleRequired, "customPrompt.mediaInfo", func(c *Client) error {
			_, _, err := c.StartHoldMusic(ctx, "c1", "p1", &StartHoldMusicRequest{CustomPrompt: &model.MediaPrompt{}})
			return err
		}},
		{"startHold: http uri", OpStartHoldMusic, RulePromptURI, "customPrompt.mediaInfo.uri", func(c *Client) error {
			p := prompt("http://bot.contoso.com/onHold.wav")
			_, _, err := c.StartHoldMusic(ctx, "c1", "p1", &StartHoldMusicRequest{CustomPrompt: &p})
			return err
		}},
		{"startHold: dot-dot pid", OpStartHoldMusic, RuleIDFormat, "participantId", func(c *Client) error {
			_, _, err := c.StartHoldMusic(ctx, "c1", "..", nil)
			return err
		}},
		{"startHold: clientContext", OpStartHoldMusic, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.StartHoldMusic(ctx, "c1", "p1", &StartHoldMusicRequest{ClientContext: long})
			return err
		}},
		{"stopHold: clientContext", OpStopHoldMusic, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.StopHoldMusic(ctx, "c1", "p1", &StopHoldMusicRequest{ClientContext: long})
			return err
		}},
		{"stopHold: empty pid", OpStopHoldMusic, RuleRequired, "participantId", func(c *Client) error {
			_, _, err := c.StopHoldMusic(ctx, "c1", "", nil)
			return err
		}},
		{"recording status: empty", OpUpdateRecordingStatus, RuleRequired, "status", func(c *Client) error {
			_, _, err := c.UpdateRecordingStatus(ctx, "c1", &UpdateRecordingStatusRequest{})
			return err
		}},
		{"recording status: unknown", OpUpdateRecordingStatus, RuleRecordingStatus, "status", func(c *Client) error {
			_, _, err := c.UpdateRecordingStatus(ctx, "c1", &UpdateRecordingStatusRequest{Status: "Recording"})
			return err
		}},
		{"recording status: clientContext", OpUpdateRecordingStatus, RuleClientContextMax, "clientContext", func(c *Client) error {
			_, _, err := c.UpdateRecordingStatus(ctx, "c1", &UpdateRecordingStatusRequest{Status: model.RecordingFailed, ClientContext: long})
			return err
		}},
		{"screen sharing: empty", OpChangeScreenSharingRole, RuleRequired, "role", func(c *Client) error {
			_, err := c.ChangeScreenSharingRole(ctx, "c1", nil)
			return err
		}},
		{"screen sharing: unknown", OpChangeScreenSharingRole, RuleScreenSharingRole, "role", func(c *Client) error {
			_, err := c.ChangeScreenSharingRole(ctx, "c1", &ChangeScreenSharingRoleRequest{Role: "presenter"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, g := newMediaEnv(t)
			err := tc.run(e.c)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Rule != tc.rule || ve.Field != tc.field {
				t.Errorf("rule, field = %q, %q (%v), want %q, %q", ve.Rule, ve.Field, ve, tc.rule, tc.field)
			}
			if Retryable(err) {
				t.Error("a validation error must not be retryable")
			}
			if n := len(g.requests()); n != 0 {
				t.Errorf("fake Graph saw %d requests, want 0", n)
			}
			if n := len(e.fg.Requests()); n != 0 {
				t.Errorf("emulator recorded %d requests (token fetch?), want 0", n)
			}
			if v := testutil.ToFloat64(e.c.m.validation.WithLabelValues(tc.op, tc.rule)); v != 1 {
				t.Errorf("validation failures{%s,%s} = %v, want 1", tc.op, tc.rule, v)
			}
		})
	}
}

// TestMediaValidationAccepts pins the edges that must pass.
func TestMediaValidationAccepts(t *testing.T) {
	hold := prompt("https://bot.contoso.com/onHold.wav")
	hold.MediaInfo.ResourceID = "" // optional: Graph's startHoldMusic example has none
	ok := map[string]error{
		"20 prompts":            ValidatePlayPrompt(&PlayPromptRequest{Prompts: prompts(MaxPlayPrompts)}),
		"loopback http prompt":  ValidatePlayPrompt(&PlayPromptRequest{Prompts: []model.MediaPrompt{prompt("http://127.0.0.1:8080/a.wav")}}),
		"record with defaults":  ValidateRecordResponse(&RecordResponseRequest{}),
		"record at 1 and 120":   ValidateRecordResponse(&RecordResponseRequest{Prompts: prompts(1), InitialSilenceTimeoutInSeconds: ptr[int32](1), MaxSilenceTimeoutInSeconds: ptr[int32](120), MaxRecordDurationInSeconds: ptr[int32](120)}),
		"record all stop tones": ValidateRecordResponse(&RecordResponseRequest{StopTones: model.Tones}),
		"dtmf 100 tones delay 0": ValidateSendDtmfTones(&SendDtmfTonesRequest{Tones: func() []model.Tone {
			ts := make([]model.Tone, MaxDtmfTones)
			for i := range ts {
				ts[i] = model.Tones[i%len(model.Tones)]
			}
			return ts
		}(), DelayBetweenTonesMs: ptr[int32](0)}),
		"dtmf delay max":          ValidateSendDtmfTones(&SendDtmfTonesRequest{Tones: []model.Tone{model.ToneFlash}, DelayBetweenTonesMs: ptr[int32](MaxDtmfDelayMs)}),
		"nil subscribe":           ValidateSubscribeToTone(nil),
		"nil cancel":              ValidateCancelMediaProcessing(nil),
		"nil mute":                ValidateMute(nil),
		"nil start hold":          ValidateStartHoldMusic(nil),
		"hold without resourceId": ValidateStartHoldMusic(&StartHoldMusicRequest{CustomPrompt: &hold}),
		"nil stop hold":           ValidateStopHoldMusic(nil),
		"clientContext of 256":    ValidateMute(&MuteRequest{ClientContext: strings.Repeat("x", MaxClientContext)}),
	}
	for _, s := range model.RecordingStatuses {
		ok["status "+string(s)] = ValidateUpdateRecordingStatus(&UpdateRecordingStatusRequest{Status: s})
	}
	for _, r := range model.ScreenSharingRoles {
		ok["role "+string(r)] = ValidateChangeScreenSharingRole(&ChangeScreenSharingRoleRequest{Role: r})
	}
	for name, err := range ok {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRecordResponseStopTonesJSON: stopTones go out as keypad characters
// and come in as either form; a value that is not a tone survives both
// ways so that validation sees it.
func TestRecordResponseStopTonesJSON(t *testing.T) {
	b, err := json.Marshal(&RecordResponseRequest{StopTones: []model.Tone{model.TonePound, model.Tone0, model.ToneStar, model.ToneA, model.ToneFlash, "bogus"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"stopTones":["#","0","*","A","F","bogus"]}`; string(b) != want {
		t.Errorf("marshal = %s, want %s", b, want)
	}
	var r RecordResponseRequest
	if err := json.Unmarshal([]byte(`{"stopTones":["#","pound","9","tone9","d","x","bogus"],"playBeep":false}`), &r); err != nil {
		t.Fatal(err)
	}
	want := []model.Tone{model.TonePound, model.TonePound, model.Tone9, model.Tone9, model.ToneD, "x", "bogus"}
	if got := strings.Join(toneStrings(r.StopTones), ","); got != strings.Join(toneStrings(want), ",") {
		t.Errorf("unmarshal = %v, want %v", r.StopTones, want)
	}
	if r.PlayBeep == nil || *r.PlayBeep {
		t.Errorf("playBeep = %v, want false", r.PlayBeep)
	}
	if b, _ := json.Marshal(&RecordResponseRequest{}); string(b) != `{}` {
		t.Errorf("empty request = %s, want {}", b)
	}
}

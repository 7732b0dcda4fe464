package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/model"
)

// data is a notification's resourceData, decoded loosely.
func data(t *testing.T, n note) map[string]any {
	t.Helper()
	var env struct {
		Value []struct {
			ResourceData map[string]any `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.Unmarshal(n.Body, &env); err != nil || len(env.Value) != 1 {
		t.Fatalf("notification %s: %v", n.Body, err)
	}
	return env.Value[0].ResourceData
}

// opEnd waits for the end of operation opID and returns its resourceData.
func (e *emu) opEnd(callID, opID string) (note, map[string]any) {
	e.t.Helper()
	is := func(n note) bool { return n.Kind == model.EventOperation && n.Operation.ID == opID }
	ns := e.bot.waitFor("the end of operation "+opID, func(ns []note) bool {
		_, ok := lastWhere(ns, callID, is)
		return ok
	})
	n, _ := lastWhere(ns, callID, is)
	if n.ChangeType != model.ChangeDeleted || !strings.HasSuffix(n.ResourceURL, "/operations/"+opID) {
		e.t.Errorf("operation end %s %s", n.ChangeType, n.ResourceURL)
	}
	return n, data(e.t, n)
}

// action posts a media action and checks Graph's answer: status, and the
// running operation of type odataType echoing clientContext.
func (e *emu) action(callID, path, body string, status int, odataType string) model.Operation {
	e.t.Helper()
	a := e.graph(http.MethodPost, "/communications/calls/"+callID+path, body)
	if a.status != status {
		e.t.Fatalf("POST %s: %d %s, want %d", path, a.status, a.body, status)
	}
	var op model.Operation
	a.json(e.t, &op)
	if op.ODataType != odataType || op.Status != model.OpRunning || op.ID == "" || op.ClientContext != "ctx-1" {
		e.t.Fatalf("POST %s: operation %s", path, a.body)
	}
	if loc := a.header.Get("Location"); !strings.HasSuffix(loc, "/operations/"+op.ID) {
		e.t.Errorf("Location %q", loc)
	}
	return op
}

const onePrompt = `{"clientContext":"ctx-1","prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt",
  "mediaInfo":{"@odata.type":"#microsoft.graph.mediaInfo","uri":"https://cdn.contoso.com/beep.wav","resourceId":"1D6DE2D4-CD51-4309-8DAA-70768651088E"}}]}`

// johnCall is an established peer-to-peer call with John; it returns the
// call and John's participant id.
func (e *emu) johnCall() (model.Call, string) {
	e.t.Helper()
	c := e.create(callTo(user(johnID, "John")))
	roster := e.established(c.ID)
	return c, roster[1].ID
}

func completion(t *testing.T, d map[string]any, status, reason string) {
	t.Helper()
	if d["status"] != status || d["completionReason"] != reason && reason != "" || d["clientContext"] != "ctx-1" {
		t.Errorf("operation %v, want status %s completionReason %s", d, status, reason)
	}
}

func TestPlayPromptCompletes(t *testing.T) {
	e := newEmu(t, Options{})
	c, _ := e.johnCall()
	op := e.action(c.ID, "/playPrompt", onePrompt, http.StatusOK, model.ODataPlayPromptOp)
	_, d := e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", model.CompletedSuccessfully)
	if d["@odata.type"] != model.ODataPlayPromptOp || d["id"] != op.ID {
		t.Errorf("operation %v", d)
	}
	if got, _ := e.s.Operation(c.ID, op.ID); got.Status != model.OpCompleted || got.CompletionReason != model.CompletedSuccessfully {
		t.Errorf("stored %+v", got)
	}
	a := e.graph(http.MethodGet, "/communications/calls/"+c.ID+"/operations/"+op.ID, "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), model.CompletedSuccessfully) {
		t.Errorf("GET operation: %d %s", a.status, a.body)
	}
}

func TestCancelMediaProcessing(t *testing.T) {
	e := newEmu(t, Options{Timing: Timing{Prompt: time.Hour}})
	c, _ := e.johnCall()
	play := e.action(c.ID, "/playPrompt", onePrompt, http.StatusOK, model.ODataPlayPromptOp)
	cancel := e.action(c.ID, "/cancelMediaProcessing", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataCancelMediaProcessingOp)
	_, dc := e.opEnd(c.ID, cancel.ID)
	completion(t, dc, "completed", "")
	ns, _ := e.bot.snapshot()
	var order []string
	for _, n := range forCall(ns, c.ID) {
		if n.Kind == model.EventOperation {
			order = append(order, n.Operation.ID)
		}
	}
	if !slices.Equal(order, []string{play.ID, cancel.ID}) {
		t.Fatalf("operation ends %q, want the prompt's then the cancel's", order)
	}
	pn, _ := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation && n.Operation.ID == play.ID })
	completion(t, data(t, pn), "completed", model.MediaOperationCanceled)
}

func TestSendDtmfTonesAndValidation(t *testing.T) {
	e := newEmu(t, Options{})
	c, _ := e.johnCall()
	op := e.action(c.ID, "/sendDtmfTones", `{"clientContext":"ctx-1","tones":["tone1","pound"],"delayBetweenTonesMs":100}`,
		http.StatusOK, model.ODataSendDtmfTonesOp)
	_, d := e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", model.CompletedSuccessfully)

	bad := []struct{ path, body, want string }{
		{"/playPrompt", `{"clientContext":"x"}`, "prompts is required"},
		{"/playPrompt", `{"prompts":[{"mediaInfo":{}}]}`, "prompts[0].mediaInfo.uri is required"},
		{"/sendDtmfTones", `{"tones":[]}`, "tones is required"},
		{"/sendDtmfTones", `{"tones":["tone1","tone10"]}`, `tones[1]: "tone10" is not a tone`},
		{"/recordResponse", `{"stopTones":["hash"]}`, `stopTones[0]: "hash" is not a tone`},
		{"/recordResponse", `{"maxRecordDurationInSeconds":0}`, "maxRecordDurationInSeconds must be at least 1"},
		{"/updateRecordingStatus", `{"status":"paused"}`, `status "paused" must be notRecording, recording or failed`},
		{"/changeScreenSharingRole", `{"role":"owner"}`, `role "owner" must be viewer or sharer`},
		{"/subscribeToTone", `{`, "invalid request body: unexpected end of JSON input"},
		{"/subscribeToTone", `{"clientContext":"` + strings.Repeat("x", 257) + `"}`, "clientContext exceeds 256 characters"},
		{"/playPrompt", `{"clientContext":"` + strings.Repeat("x", 257) + `"}`, "clientContext exceeds 256 characters"},
	}
	for _, b := range bad {
		a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+b.path, b.body)
		var eb ErrorBody
		a.json(t, &eb)
		if a.status != http.StatusBadRequest || eb.Error.Code != "BadRequest" || eb.Error.Message != b.want {
			t.Errorf("POST %s %s: %d %s, want 400 %q", b.path, b.body, a.status, a.body, b.want)
		}
	}
	for _, path := range []string{"/playPrompt", "/mute", "/participants/nope/mute"} {
		if a := e.graph(http.MethodPost, "/communications/calls/no-such-call"+path, onePrompt); a.status != http.StatusNotFound {
			t.Errorf("POST %s on an unknown call: %d %s", path, a.status, a.body)
		}
	}
	for _, path := range []string{"/participants/nope/mute", "/participants/nope/startHoldMusic"} {
		a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+path, `{}`)
		if a.status != http.StatusNotFound || !strings.Contains(string(a.body), "Participant nope not found.") {
			t.Errorf("POST %s: %d %s", path, a.status, a.body)
		}
	}
	if a := e.graph(http.MethodDelete, "/communications/calls/"+c.ID+"/participants/nope", ""); a.status != http.StatusNotFound {
		t.Errorf("DELETE unknown participant: %d %s", a.status, a.body)
	}
}

func TestUpdateRecordingStatusAndScreenSharing(t *testing.T) {
	e := newEmu(t, Options{})
	c, _ := e.johnCall()
	op := e.action(c.ID, "/updateRecordingStatus", `{"clientContext":"ctx-1","status":"recording"}`, http.StatusOK, model.ODataUpdateRecordingStatusOp)
	_, d := e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", "")
	before := len(forCall(e.bot.notesNow(), c.ID))
	a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/changeScreenSharingRole", `{"role":"sharer"}`)
	if a.status != http.StatusAccepted || len(a.body) != 0 {
		t.Fatalf("changeScreenSharingRole: %d %s", a.status, a.body)
	}
	e.bot.waitFor("a roster update", func(ns []note) bool {
		cn := forCall(ns, c.ID)
		return len(cn) > before && cn[len(cn)-1].Kind == model.EventRoster
	})
	v := e.emuCalls()[0]
	if v.RecordingStatus != model.RecordingRecording || v.ScreenSharingRole != model.ScreenSharingSharer {
		t.Errorf("/emulator/calls %+v", v)
	}
}

func (b *bot) notesNow() []note { ns, _ := b.snapshot(); return ns }

func (e *emu) emuCalls() []callView {
	e.t.Helper()
	a := send(e.t, http.MethodGet, e.s.URL()+"/emulator/calls", "", "", "")
	var out struct {
		Calls []callView `json:"calls"`
	}
	a.json(e.t, &out)
	return out.Calls
}

// rosterWhere waits for a roster of the call satisfying pred.
func (e *emu) rosterWhere(callID, what string, pred func([]model.Participant) bool) {
	e.t.Helper()
	e.bot.waitFor(what, func(ns []note) bool {
		r, ok := lastWhere(ns, callID, func(n note) bool { return n.Kind == model.EventRoster })
		return ok && pred(r.Participants)
	})
}

func find(ps []model.Participant, id string) (model.Participant, bool) {
	i := slices.IndexFunc(ps, func(p model.Participant) bool { return p.ID == id })
	if i < 0 {
		return model.Participant{}, false
	}
	return ps[i], true
}

func TestMuteHoldRemoveChangeTheRoster(t *testing.T) {
	e := newEmu(t, Options{})
	c, john := e.johnCall()
	bot := c.MyParticipantID

	op := e.action(c.ID, "/mute", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataMuteParticipantOp)
	e.opEnd(c.ID, op.ID)
	e.rosterWhere(c.ID, "the bot muted", func(ps []model.Participant) bool { p, ok := find(ps, bot); return ok && p.IsMuted })
	op = e.action(c.ID, "/unmute", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataUnmuteParticipantOp)
	e.opEnd(c.ID, op.ID)
	e.rosterWhere(c.ID, "the bot unmuted", func(ps []model.Participant) bool { p, ok := find(ps, bot); return ok && !p.IsMuted })

	op = e.action(c.ID, "/participants/"+john+"/mute", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataMuteParticipantOp)
	e.opEnd(c.ID, op.ID)
	e.rosterWhere(c.ID, "John muted", func(ps []model.Participant) bool { p, ok := find(ps, john); return ok && p.IsMuted })

	inactive := func(want string) func([]model.Participant) bool {
		return func(ps []model.Participant) bool {
			p, ok := find(ps, john)
			return ok && len(p.MediaStreams) > 0 && p.MediaStreams[0].Direction == want
		}
	}
	op = e.action(c.ID, "/participants/"+john+"/startHoldMusic",
		`{"clientContext":"ctx-1","customPrompt":{"@odata.type":"#microsoft.graph.mediaPrompt","mediaInfo":{"uri":"https://bot.contoso.com/onHold.wav"}}}`,
		http.StatusAccepted, model.ODataStartHoldMusicOp)
	_, d := e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", "")
	e.rosterWhere(c.ID, "John on hold", inactive("inactive"))
	if a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/participants/"+bot+"/startHoldMusic", `{}`); a.status != http.StatusBadRequest ||
		!strings.Contains(string(a.body), "Only one participant can be placed on hold at any given time.") {
		t.Errorf("second hold: %d %s", a.status, a.body)
	}
	v := e.emuCalls()[0]
	if p := v.Participants[1]; p.ID != john || !p.OnHold || !p.Muted {
		t.Errorf("/emulator/calls participant %+v", p)
	}
	op = e.action(c.ID, "/participants/"+john+"/stopHoldMusic", `{"clientContext":"ctx-1"}`, http.StatusAccepted, model.ODataStopHoldMusicOp)
	e.opEnd(c.ID, op.ID)
	e.rosterWhere(c.ID, "John off hold", inactive("sendReceive"))

	if a := e.graph(http.MethodDelete, "/communications/calls/"+c.ID+"/participants/"+john, ""); a.status != http.StatusNoContent {
		t.Fatalf("DELETE participant: %d %s", a.status, a.body)
	}
	e.rosterWhere(c.ID, "John gone", func(ps []model.Participant) bool { _, ok := find(ps, john); return len(ps) == 1 && !ok })
	if got := e.s.Participants(c.ID); len(got) != 1 {
		t.Errorf("stored roster %d", len(got))
	}
}

// toneNotes are the call's toneInfo updates: sequenceId and tone of each.
func toneNotes(t *testing.T, ns []note, callID string) (seqs []float64, tones []string) {
	for _, n := range forCall(ns, callID) {
		if n.Kind != model.EventCall {
			continue
		}
		ti, ok := data(t, n)["toneInfo"].(map[string]any)
		if !ok {
			continue
		}
		if ti["@odata.type"] != model.ODataToneInfo {
			t.Errorf("toneInfo %v", ti)
		}
		seqs = append(seqs, ti["sequenceId"].(float64))
		tones = append(tones, ti["tone"].(string))
	}
	return seqs, tones
}

func (e *emu) putPerson(key, body string) answer {
	e.t.Helper()
	return send(e.t, http.MethodPut, e.s.URL()+"/emulator/people/"+url.PathEscape(key), "", "", body)
}

func TestScriptedPersonPressesTones(t *testing.T) {
	for _, faulty := range []bool{false, true} {
		name := "clean"
		if faulty {
			name = "duplicated and reordered"
		}
		t.Run(name, func(t *testing.T) {
			e := newEmu(t, Options{})
			if a := e.putPerson(johnID, `{"answer":"accept","answerAfter":"1s","tones":"1#","tonesAfter":"500ms"}`); a.status != http.StatusCreated {
				t.Fatalf("PUT person: %d %s", a.status, a.body)
			}
			c, _ := e.johnCall()
			op := e.action(c.ID, "/subscribeToTone", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataSubscribeToToneOp)
			e.opEnd(c.ID, op.ID)
			if faulty {
				e.s.SetFaultRule(FaultDuplicate, FaultRule{Probability: 1})
				e.s.SetFaultRule(FaultReorder, FaultRule{Probability: 0.5})
			}
			e.action(c.ID, "/playPrompt", onePrompt, http.StatusOK, model.ODataPlayPromptOp)
			want := 2
			if faulty {
				want = 4
			}
			ns := e.bot.waitFor("the key presses", func(ns []note) bool {
				seqs, _ := toneNotes(t, ns, c.ID)
				return len(seqs) >= want
			})
			seqs, tones := toneNotes(t, ns, c.ID)
			byseq := map[float64]string{}
			for i, s := range seqs {
				if prev, ok := byseq[s]; ok && prev != tones[i] {
					t.Errorf("sequenceId %v carries %s and %s", s, prev, tones[i])
				}
				byseq[s] = tones[i]
			}
			if len(byseq) != 2 || byseq[1] != string(model.Tone1) || byseq[2] != string(model.TonePound) {
				t.Errorf("presses %v %v, want sequenceId 1 tone1 and 2 pound", seqs, tones)
			}
			if !faulty && !slices.Equal(seqs, []float64{1, 2}) {
				t.Errorf("sequenceIds %v", seqs)
			}
		})
	}
}

func TestRecordResponse(t *testing.T) {
	e := newEmu(t, Options{})
	if a := e.putPerson(johnID, `{"tones":"1#"}`); a.status != http.StatusCreated {
		t.Fatalf("PUT person: %d %s", a.status, a.body)
	}
	c, _ := e.johnCall()
	op := e.action(c.ID, "/recordResponse", `{"clientContext":"ctx-1","prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt",
	  "mediaInfo":{"uri":"https://cdn.contoso.com/beep.wav"}}],"bargeInAllowed":true,"maxRecordDurationInSeconds":3600,
	  "playBeep":true,"stopTones":["pound"]}`, http.StatusOK, model.ODataRecordOp)
	_, d := e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", model.RecordStopToneDetected)
	loc, _ := d["recordingLocation"].(string)
	tok, _ := d["recordingAccessToken"].(string)
	if !strings.HasPrefix(loc, e.s.URL()+"/emulator/recordings/") || len(tok) < 32 {
		t.Fatalf("recording %q token %q", loc, tok)
	}
	if a := send(t, http.MethodGet, loc, "", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("GET recording without the token: %d", a.status)
	}
	if a := send(t, http.MethodGet, loc, "wrong", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("GET recording with a wrong token: %d", a.status)
	}
	a := send(t, http.MethodGet, loc, tok, "", "")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "audio/wav" || !strings.HasPrefix(string(a.body), "RIFF") {
		t.Errorf("GET recording: %d %q %.8q", a.status, a.header.Get("Content-Type"), a.body)
	}
	if a := send(t, http.MethodGet, e.s.URL()+"/emulator/recordings/nope", tok, "", ""); a.status != http.StatusNotFound {
		t.Errorf("GET unknown recording: %d", a.status)
	}
	for _, r := range e.s.Requests(RouteRecording) {
		if strings.Contains(r.Header.Get("Authorization"), tok) {
			t.Errorf("the recording token was recorded")
		}
	}

	// Nobody stops it: the maximum duration ends it.
	op = e.action(c.ID, "/recordResponse", `{"clientContext":"ctx-1","maxRecordDurationInSeconds":1}`, http.StatusOK, model.ODataRecordOp)
	_, d = e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", model.RecordMaxDurationReached)

	// Cancelled: operationCanceled, and no recording.
	op = e.action(c.ID, "/recordResponse", `{"clientContext":"ctx-1","maxRecordDurationInSeconds":3600}`, http.StatusOK, model.ODataRecordOp)
	e.action(c.ID, "/cancelMediaProcessing", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataCancelMediaProcessingOp)
	_, d = e.opEnd(c.ID, op.ID)
	completion(t, d, "completed", model.RecordOperationCanceled)
	if _, ok := d["recordingLocation"]; ok {
		t.Errorf("a cancelled recording has a location: %v", d)
	}
}

func TestPeopleScriptsOverHTTP(t *testing.T) {
	e := newEmu(t, Options{})
	bad := []struct{ key, body, want string }{
		{johnID, `{"answer":"maybe"}`, `answer: unknown "maybe", want accept, decline, busy or noAnswer`},
		{johnID, `{"answerAfter":"soon"}`, `answerAfter: "soon" is not a duration (e.g. "1s", "500ms")`},
		{johnID, `{"tonesAfter":"-1s"}`, `tonesAfter: "-1s" is negative`},
		{johnID, `{"tones":"12x"}`, `tones: "x" at 2 is not a key (0-9, *, #, A-D, F)`},
		{johnID, `{"tone":"1"}`, `invalid JSON: json: unknown field "tone"`},
		{johnID, `{} {}`, `invalid JSON: more than one value`},
		{"+12ab", `{}`, `key: want an E.164 number (+ and 3 to 20 digits) or a user id`},
	}
	for _, b := range bad {
		a := e.putPerson(b.key, b.body)
		var eb ErrorBody
		a.json(t, &eb)
		if a.status != http.StatusBadRequest || eb.Error.Message != b.want {
			t.Errorf("PUT %s %s: %d %s, want 400 %q", b.key, b.body, a.status, a.body, b.want)
		}
	}
	if a := e.putPerson("+15550001234", `{"answer":"busy"}`); a.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", a.status, a.body)
	}
	if a := e.putPerson("+15550001234", `{"answer":"decline","answerAfter":"2s"}`); a.status != http.StatusOK {
		t.Fatalf("PUT again: %d %s", a.status, a.body)
	}
	a := send(t, http.MethodGet, e.s.URL()+"/emulator/people", "", "", "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `{"key":"+15550001234","script":{"answer":"decline","answerAfter":"2s"}}`) {
		t.Errorf("GET people: %d %s", a.status, a.body)
	}
	c := e.create(callTo(phone("+15550001234")))
	ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
	end, _ := lastWhere(ns, c.ID, isTerminated)
	if r := end.Call.ResultInfo; r == nil || r.Code != ResultDeclined.Code {
		t.Errorf("scripted decline: %+v", r)
	}
	if a := send(t, http.MethodDelete, e.s.URL()+"/emulator/people/%2B15550001234", "", "", ""); a.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", a.status, a.body)
	}
	if a := send(t, http.MethodDelete, e.s.URL()+"/emulator/people/%2B15550001234", "", "", ""); a.status != http.StatusNotFound {
		t.Errorf("DELETE again: %d %s", a.status, a.body)
	}
	// SetPerson is the same in Go, and checks as strictly.
	if err := e.s.SetPerson("+15550001234", PersonScript{Tones: "9z"}); err == nil || err.Error() != `tones: "z" at 1 is not a key (0-9, *, #, A-D, F)` {
		t.Errorf("SetPerson bad tones: %v", err)
	}
	if err := e.s.SetPerson("bad key", PersonScript{}); err == nil {
		t.Errorf("SetPerson accepted a bad key")
	}
	if err := e.s.SetPerson(maryID, PersonScript{Answer: AnswerBusy}); err != nil {
		t.Fatal(err)
	}
	c = e.create(callTo(user(maryID, "Mary")))
	ns = e.bot.waitFor("terminated", terminatedCall(c.ID))
	if end, _ := lastWhere(ns, c.ID, isTerminated); end.Call.ResultInfo.Code != ResultBusy.Code {
		t.Errorf("SetPerson busy: %+v", end.Call.ResultInfo)
	}
	// Without a script the number-suffix rules apply again.
	c = e.create(callTo(phone("+15550000000")))
	ns = e.bot.waitFor("terminated", terminatedCall(c.ID))
	if end, _ := lastWhere(ns, c.ID, isTerminated); end.Call.ResultInfo.Code != ResultDeclined.Code {
		t.Errorf("suffix rule: %+v", end.Call.ResultInfo)
	}
}

func TestEmulatorRequestsFilterAndRedaction(t *testing.T) {
	e := newEmu(t, Options{})
	c, _ := e.johnCall()
	send(t, http.MethodPost, e.s.BaseURL()+"/communications/calls/"+c.ID+"/playPrompt", e.tok, "crid-7",
		`{"clientContext":"ctx-1","recordingAccessToken":"sekrit-1","prompts":[{"mediaInfo":{"uri":"https://x/y.wav"}}]}`)
	form := tokenForm(e.s.Options())
	form.Set("client_assertion", "sekrit-2")
	if _, err := http.PostForm(e.s.TokenURL(), form); err != nil {
		t.Fatal(err)
	}
	a := send(t, http.MethodGet, e.s.URL()+"/emulator/requests?route=play_prompt,token", "", "", "")
	if a.status != http.StatusOK {
		t.Fatalf("GET requests: %d %s", a.status, a.body)
	}
	for _, secret := range []string{"sekrit", e.s.Options().ClientSecret} {
		if strings.Contains(string(a.body), secret) {
			t.Errorf("secret %q listed: %s", secret, a.body)
		}
	}
	var out struct {
		Requests []requestView `json:"requests"`
		Dropped  int           `json:"dropped"`
	}
	a.json(t, &out)
	var routes []Route
	for _, r := range out.Requests {
		routes = append(routes, r.Route)
	}
	if !slices.Equal(routes, []Route{RouteToken, RoutePlayPrompt, RouteToken}) {
		t.Fatalf("routes %v", routes)
	}
	pp := out.Requests[1]
	if pp.Method != http.MethodPost || pp.CallID != c.ID || pp.ClientRequestID != "crid-7" ||
		pp.Pattern != "POST /{version}/communications/calls/{id}/playPrompt" || !strings.Contains(string(pp.Body), `"recordingAccessToken":"[REDACTED]"`) {
		t.Errorf("request %+v body %s", pp, pp.Body)
	}
	if tb := string(out.Requests[2].Body); !strings.Contains(tb, "client_assertion=%5BREDACTED%5D") || !strings.Contains(tb, "client_secret=%5BREDACTED%5D") {
		t.Errorf("token body %s", tb)
	}
	a = send(t, http.MethodGet, e.s.URL()+"/emulator/requests?route=create_call", "", "", "")
	a.json(t, &out)
	if len(out.Requests) != 1 || out.Requests[0].Route != RouteCreateCall {
		t.Errorf("create_call filter: %s", a.body)
	}
	calls := e.emuCalls()
	if len(calls) != 1 || calls[0].ID != c.ID || calls[0].State != model.StateEstablished || len(calls[0].Participants) != 2 ||
		!calls[0].Participants[0].IsBot || calls[0].Participants[1].Identity != johnID {
		t.Errorf("/emulator/calls %+v", calls)
	}
}

func TestOperationsPerCallBounded(t *testing.T) {
	e := newEmu(t, Options{})
	id := e.s.PutCall(model.Call{State: model.StateEstablished})
	e.s.mu.Lock()
	cs := e.s.calls[id]
	for range maxOperations + 5 {
		e.s.storeOpLocked(cs, model.Operation{ID: e.s.newIDLocked()})
	}
	n, first := len(cs.operations), cs.opOrder[0]
	e.s.mu.Unlock()
	if n != maxOperations {
		t.Errorf("%d operations kept, want %d", n, maxOperations)
	}
	if _, ok := e.s.Operation(id, first); !ok {
		t.Errorf("the oldest kept is not readable")
	}
}

// An injected FaultOperation fails a media operation, which then has no
// effect.
func TestMediaOperationFault(t *testing.T) {
	e := newEmu(t, Options{})
	c, _ := e.johnCall()
	e.s.SetFaultRule(FaultOperation, FaultRule{Next: 2})
	op := e.action(c.ID, "/playPrompt", onePrompt, http.StatusOK, model.ODataPlayPromptOp)
	_, d := e.opEnd(c.ID, op.ID)
	ri, _ := d["resultInfo"].(map[string]any)
	if d["status"] != "failed" || d["completionReason"] != nil || ri["code"] != float64(500) {
		t.Errorf("operation %v, want failed 500", d)
	}
	op = e.action(c.ID, "/subscribeToTone", `{"clientContext":"ctx-1"}`, http.StatusOK, model.ODataSubscribeToToneOp)
	if _, d := e.opEnd(c.ID, op.ID); d["status"] != "failed" {
		t.Errorf("subscribeToTone %v, want failed", d)
	}
	if v := e.emuCalls()[0]; v.ToneSubscribed {
		t.Errorf("a failed subscribeToTone subscribed")
	}
}

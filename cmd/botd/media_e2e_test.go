package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
)

// e2eMediaCall creates a PSTN call to a scripted person who presses keys
// after each prompt, and waits until it is established.
func e2eMediaCall(t *testing.T, b *e2eBot, number, keys string) callstate.CallView {
	t.Helper()
	emu := strings.TrimSuffix(b.incoming, "/emulator/incoming")
	code, out, err := e2eDo(http.MethodPut, emu+"/emulator/people/"+number, map[string]any{"answer": "accept", "tones": keys, "tonesAfter": "200ms"})
	if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
		t.Fatalf("PUT /emulator/people: %d %s %v", code, out, err)
	}
	raw, err := os.ReadFile("../../examples/create-p2p-pstn.json")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	body["targets"] = []any{map[string]any{"identity": map[string]any{"phone": map[string]any{"id": number}}}}
	v := e2eCreateCall(t, b, body)
	return e2eWaitCall(t, b, v.ID, "established with the person", func(v *callstate.CallView) error {
		if v.State != model.StateEstablished || e2ePhone(v, number) == nil {
			return fmt.Errorf("state %s, %d participants", v.State, len(v.Participants))
		}
		return nil
	})
}

func e2ePhone(v *callstate.CallView, number string) *model.Participant {
	for i, p := range v.Participants {
		if p.Info.Identity != nil && p.Info.Identity.Phone != nil && p.Info.Identity.Phone.ID == number {
			return &v.Participants[i]
		}
	}
	return nil
}

// e2eOperate posts an operation route and returns the operation answered.
func e2eOperate(t *testing.T, b *e2eBot, method, path string, body any) model.Operation {
	t.Helper()
	code, out, err := e2eDo(method, b.admin+path, body)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("%s %s = %d %s %v", method, path, code, out, err)
	}
	var op model.Operation
	if err := json.Unmarshal(out, &op); err != nil || op.ClientContext == "" {
		t.Fatalf("%s %s answer %s: %v", method, path, out, err)
	}
	return op
}

func e2eOpDone(cc, reason string) func(v *callstate.CallView) error {
	return func(v *callstate.CallView) error {
		op := e2eOp(v, cc)
		switch {
		case op == nil:
			return fmt.Errorf("no operation %s", cc)
		case op.Status == model.OpFailed:
			return fmt.Errorf("%w: operation %s failed: %+v", errE2EStop, cc, op)
		case op.Status != model.OpCompleted:
			return fmt.Errorf("operation %s is %s", cc, op.Status)
		case reason != "" && op.CompletionReason != reason:
			return fmt.Errorf("%w: completionReason %q, want %q", errE2EStop, op.CompletionReason, reason)
		}
		return nil
	}
}

func e2eToneKeys(v *callstate.CallView) string {
	var b strings.Builder
	for _, t := range v.Tones {
		b.WriteString(t.Key)
	}
	return b.String()
}

var prompt = map[string]any{"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": map[string]any{
	"@odata.type": "#microsoft.graph.mediaInfo", "uri": "https://cdn.contoso.com/beep.wav", "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"}}

// TestE2EMediaIVR: through run() and the admin API against the emulator:
// the bot subscribes to tones and plays a prompt, the scripted person's
// keys arrive on the call once each and in order, a recording completes
// with a location and a masked token, and mute, hold and remove change the
// roster.
func TestE2EMediaIVR(t *testing.T) {
	b := e2eStartEmbedded(t, nil)
	const number = "+14255550123"
	v := e2eMediaCall(t, b, number, "1#")
	calls := "/v1/calls/" + v.ID

	sub := e2eOperate(t, b, http.MethodPost, calls+"/subscribeToTone", map[string]any{})
	e2eWaitCall(t, b, v.ID, "tones subscribed", e2eOpDone(sub.ClientContext, ""))
	play := e2eOperate(t, b, http.MethodPost, calls+"/playPrompt", map[string]any{"clientContext": "menu-1", "prompts": []any{prompt}})
	if play.ClientContext != "menu-1" || play.ID == "" {
		t.Fatalf("playPrompt answer %+v", play)
	}
	e2eWaitCall(t, b, v.ID, "prompt played, then 1# pressed", func(v *callstate.CallView) error {
		if err := e2eOpDone("menu-1", model.CompletedSuccessfully)(v); err != nil {
			return err
		}
		if k := e2eToneKeys(v); k != "1#" {
			return fmt.Errorf("tones %q", k)
		}
		return nil
	})

	rec := e2eOperate(t, b, http.MethodPost, calls+"/recordResponse", map[string]any{
		"prompts": []any{prompt}, "maxRecordDurationInSeconds": 2, "playBeep": true})
	rv := e2eWaitCall(t, b, v.ID, "recording done", e2eOpDone(rec.ClientContext, ""))
	op := e2eOp(&rv, rec.ClientContext)
	if op.RecordingLocation == "" || op.RecordingAccessToken.Reveal() == "" || op.CompletionReason == "" {
		t.Fatalf("recording %+v", op)
	}
	// The admin API shows the token masked: too short to be the token, and
	// refused where the token is needed.
	if shown := op.RecordingAccessToken.Reveal(); !strings.HasPrefix(shown, "****") || len(shown) > 8 {
		t.Fatalf("recording token shown as %q", shown)
	}
	req, _ := http.NewRequest(http.MethodGet, op.RecordingLocation, nil)
	req.Header.Set("Authorization", "Bearer "+op.RecordingAccessToken.Reveal())
	if res, err := e2eClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("recording fetched with the masked token: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// botd fetches the audio with the token the client never sees.
	code, audio, err := e2eDo(http.MethodGet, b.admin+calls+"/operations/"+op.ID+"/recording", nil)
	if err != nil || code != http.StatusOK || !strings.HasPrefix(string(audio), "RIFF") {
		t.Fatalf("recording through botd = %d %q %v", code, audio[:min(len(audio), 64)], err)
	}
	// Graph's own view of the call agrees with botd's.
	code, raw, err := e2eDo(http.MethodGet, b.admin+calls+"/graph", nil)
	if err != nil || code != http.StatusOK || !strings.Contains(string(raw), `"state":"established"`) {
		t.Fatalf("Graph's view = %d %s %v", code, raw, err)
	}

	pid := e2ePhone(&rv, number).ID
	part := calls + "/participants/" + pid
	mute := e2eOperate(t, b, http.MethodPost, part+"/mute", nil)
	e2eWaitCall(t, b, v.ID, "person muted", func(v *callstate.CallView) error {
		if err := e2eOpDone(mute.ClientContext, "")(v); err != nil {
			return err
		}
		if p := e2ePhone(v, number); p == nil || !p.IsMuted {
			return errors.New("not muted in the roster")
		}
		return nil
	})
	hold := e2eOperate(t, b, http.MethodPost, part+"/startHoldMusic", map[string]any{})
	e2eWaitCall(t, b, v.ID, "person on hold", func(v *callstate.CallView) error {
		if err := e2eOpDone(hold.ClientContext, "")(v); err != nil {
			return err
		}
		p := e2ePhone(v, number)
		if p == nil || len(p.MediaStreams) == 0 || p.MediaStreams[0].Direction != "inactive" {
			return fmt.Errorf("media streams %+v", p)
		}
		return nil
	})
	unhold := e2eOperate(t, b, http.MethodPost, part+"/stopHoldMusic", map[string]any{})
	e2eWaitCall(t, b, v.ID, "person off hold", func(v *callstate.CallView) error {
		if err := e2eOpDone(unhold.ClientContext, "")(v); err != nil {
			return err
		}
		if p := e2ePhone(v, number); p == nil || len(p.MediaStreams) == 0 || p.MediaStreams[0].Direction == "inactive" {
			return fmt.Errorf("media streams %+v", p)
		}
		return nil
	})
	e2eOperate(t, b, http.MethodDelete, part, nil)
	e2eWaitCall(t, b, v.ID, "person removed", func(v *callstate.CallView) error {
		if e2ePhone(v, number) != nil {
			return errors.New("still in the roster")
		}
		return nil
	})
	for _, st := range []string{"completed"} {
		if got := e2eMetric(t, b, "botd_call_operations_total", "type", "playPrompt", "status", st); got < 1 {
			t.Errorf("playPrompt %s counted %v", st, got)
		}
	}
	// 1# after the menu prompt, and again when the recording started.
	if got := e2eMetric(t, b, "botd_call_changes_total", "kind", "tone_received"); got != 4 {
		t.Errorf("tone_received counted %v, want 4", got)
	}
	if k := e2eToneKeys(&rv); k != "1#1#" {
		t.Errorf("tones after the recording %q, want 1#1#", k)
	}
}

// TestE2ETonesUnderFaults: with the emulator duplicating and reordering
// notifications, each key press still shows up once, in order.
func TestE2ETonesUnderFaults(t *testing.T) {
	b := e2eStartEmbedded(t, map[string]string{"BOTD_EMULATOR_FAULTS": "duplicate=0.5,reorder=0.5"})
	v := e2eMediaCall(t, b, "+14255550124", "123#")
	calls := "/v1/calls/" + v.ID
	sub := e2eOperate(t, b, http.MethodPost, calls+"/subscribeToTone", nil)
	e2eWaitCall(t, b, v.ID, "tones subscribed", e2eOpDone(sub.ClientContext, ""))
	e2eOperate(t, b, http.MethodPost, calls+"/playPrompt", map[string]any{"prompts": []any{prompt}})
	e2eWaitCall(t, b, v.ID, "123# once each, in order", func(v *callstate.CallView) error {
		if k := e2eToneKeys(v); k != "123#" {
			return fmt.Errorf("tones %q", k)
		}
		for i, tone := range v.Tones {
			if tone.SequenceID != int64(i+1) {
				return fmt.Errorf("%w: sequence ids %+v", errE2EStop, v.Tones)
			}
		}
		return nil
	})
	if got := e2eMetric(t, b, "botd_call_changes_total", "kind", "tone_received"); got != 4 {
		t.Errorf("tone_received counted %v, want 4", got)
	}
}

// mediaExamples maps each examples/ body of a media or participant action
// to its admin route ("{pid}": the person's participant id), as the
// README's examples paragraph says.
var mediaExamples = []struct{ file, method, route string }{
	{"subscribe-to-tone.json", http.MethodPost, "/subscribeToTone"},
	{"play-prompt.json", http.MethodPost, "/playPrompt"},
	{"record-response.json", http.MethodPost, "/recordResponse"},
	{"send-dtmf-tones.json", http.MethodPost, "/sendDtmfTones"},
	{"cancel-media-processing.json", http.MethodPost, "/cancelMediaProcessing"},
	{"mute.json", http.MethodPost, "/mute"},
	{"unmute.json", http.MethodPost, "/unmute"},
	{"update-recording-status.json", http.MethodPost, "/updateRecordingStatus"},
	{"participant-mute.json", http.MethodPost, "/participants/{pid}/mute"},
	{"start-hold-music.json", http.MethodPost, "/participants/{pid}/startHoldMusic"},
	{"stop-hold-music.json", http.MethodPost, "/participants/{pid}/stopHoldMusic"},
	{"change-screen-sharing-role.json", http.MethodPost, "/changeScreenSharingRole"},
}

// TestE2EMediaExamples: every media and participant body in examples/,
// pasted as is into its admin route, is accepted and its operation
// finishes without failing.
func TestE2EMediaExamples(t *testing.T) {
	b := e2eStartEmbedded(t, nil)
	const number = "+14255550125"
	v := e2eMediaCall(t, b, number, "")
	pid := e2ePhone(&v, number).ID
	files, _ := filepath.Glob("../../examples/*.json")
	listed := map[string]bool{}
	for _, ex := range mediaExamples {
		listed[ex.file] = true
		raw, err := os.ReadFile(filepath.Join("../../examples", ex.file))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %v", ex.file, err)
		}
		path := "/v1/calls/" + v.ID + strings.ReplaceAll(ex.route, "{pid}", pid)
		op := e2eOperate(t, b, ex.method, path, body)
		e2eWaitCall(t, b, v.ID, ex.file+" finished", func(v *callstate.CallView) error {
			o := e2eOp(v, op.ClientContext)
			switch {
			case o == nil:
				return fmt.Errorf("no operation %s", op.ClientContext)
			case o.Status == model.OpFailed:
				return fmt.Errorf("%w: %s failed: %+v", errE2EStop, ex.file, o)
			case o.Status != model.OpCompleted:
				return fmt.Errorf("%s is %s", ex.file, o.Status)
			}
			return nil
		})
	}
	for _, f := range files {
		name := filepath.Base(f)
		if !listed[name] && !strings.HasPrefix(name, "create-") && !strings.HasPrefix(name, "join-meeting-") && !strings.HasPrefix(name, "invite-") {
			t.Errorf("examples/%s is not tried by any test", name)
		}
	}
}

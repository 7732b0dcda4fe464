package callstate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

func toneEvent(callID string, seq int64, tone model.Tone) *model.Event {
	ev := testkit.CallEvent(callID, model.ChangeUpdated, model.StateEstablished)
	ev.Call.ToneInfo = &model.ToneInfo{ODataType: model.ODataToneInfo, SequenceID: seq, Tone: tone}
	return ev
}

func toneKeys(v CallView) string {
	var b strings.Builder
	for _, t := range v.Tones {
		b.WriteString(t.Key)
	}
	return b.String()
}

// Each press is reported once, whatever the order and repeats it arrives
// in, and the call lists them by sequenceId.
func TestTonesOnceEachInOrder(t *testing.T) {
	s := newStore(t, Config{})
	established(t, s, "c1")
	var got []string
	for _, ev := range []*model.Event{
		toneEvent("c1", 2, model.TonePound),
		toneEvent("c1", 1, model.Tone1),
		toneEvent("c1", 2, model.TonePound), // a duplicate delivery
		toneEvent("c1", 3, model.ToneStar),
		toneEvent("c1", 1, model.Tone1),
	} {
		for _, ch := range mustApply(t, s, ev) {
			if ch.Kind == ToneReceived {
				got = append(got, ch.Tone.Key)
			}
		}
	}
	if strings.Join(got, "") != "#1*" {
		t.Fatalf("tone changes %q, want #1*", got)
	}
	v := mustCall(t, s, "c1")
	if toneKeys(v) != "1#*" || v.Tones[0].SequenceID != 1 || v.Tones[0].Tone != model.Tone1 {
		t.Fatalf("view tones %+v", v.Tones)
	}
	if ignored(s, reasonDuplicateTone) != 2 {
		t.Fatalf("duplicate_tone = %d", ignored(s, reasonDuplicateTone))
	}
	// A key press is not part of the call resource.
	if v.State != model.StateEstablished {
		t.Fatalf("state %s", v.State)
	}
	for _, ch := range mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateHold)) {
		if ch.Call != nil && ch.Call.ToneInfo != nil {
			t.Fatalf("call snapshot carries a tone: %+v", ch.Call.ToneInfo)
		}
	}
}

// The list is bounded; a press older than every one kept is stale, not new.
func TestTonesBounded(t *testing.T) {
	s := newStore(t, Config{MaxTonesPerCall: 3})
	established(t, s, "c1")
	for seq := int64(1); seq <= 5; seq++ {
		mustApply(t, s, toneEvent("c1", seq, model.Tones[seq]))
	}
	if got := toneKeys(mustCall(t, s, "c1")); got != "345" {
		t.Fatalf("kept %q, want 345", got)
	}
	if cs := mustApply(t, s, toneEvent("c1", 1, model.Tone1)); len(cs) != 0 {
		t.Fatalf("stale press reported: %s", kindsString(cs))
	}
	if ignored(s, reasonStaleTone) != 1 {
		t.Fatalf("stale_tone = %d", ignored(s, reasonStaleTone))
	}
	if cs := mustApply(t, s, toneEvent("c1", 6, model.Tone6)); kindsString(cs) != "tone_received" {
		t.Fatalf("new press: %s", kindsString(cs))
	}
}

func TestToneNotATone(t *testing.T) {
	s := newStore(t, Config{})
	established(t, s, "c1")
	before := ignored(s, reasonMalformed)
	if cs := mustApply(t, s, toneEvent("c1", 1, "tone11")); strings.Contains(kindsString(cs), "tone_received") {
		t.Fatal("a non-tone was reported")
	}
	if ignored(s, reasonMalformed) != before+1 || len(mustCall(t, s, "c1").Tones) != 0 {
		t.Fatal("non-tone kept or not counted")
	}
}

// A recording's results are kept from its final notification; the access
// token is shown only masked, and never logged.
func TestRecordResultMaskedToken(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(testConfig(Config{}), zerolog.New(&logs).Level(zerolog.DebugLevel), nil)
	must(t, err)
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "recordResponse", ClientContext: "rec1"}))
	s.OperationSent("c1", "rec1", &model.Operation{ODataType: model.ODataRecordOp, ID: "op1", Status: model.OpRunning, ClientContext: "rec1"})
	const token = "eyJhbGciOiJIUzI1NiJ9.secret-recording-token-7d3f"
	cs := mustApply(t, s, opEvent("c1", model.ChangeDeleted, &model.Operation{
		ODataType: model.ODataRecordOp, ID: "op1", Status: model.OpCompleted, ClientContext: "rec1",
		CompletionReason: model.RecordMaxDurationReached, RecordingLocation: "https://media.example/rec/1",
		RecordingAccessToken: token,
		ResultInfo:           &model.ResultInfo{Code: 200}}))
	if kindsString(cs) != "operation_completed" {
		t.Fatalf("changes %s", kindsString(cs))
	}
	op := mustCall(t, s, "c1").Operations[0]
	if op.CompletionReason != model.RecordMaxDurationReached || op.RecordingLocation != "https://media.example/rec/1" ||
		op.RecordingAccessToken.Reveal() != token {
		t.Fatalf("op %+v", op)
	}
	out, err := json.Marshal(op)
	must(t, err)
	if strings.Contains(string(out), "secret-recording") || !strings.Contains(string(out), `"recordingAccessToken":"****7d3f"`) {
		t.Fatalf("view JSON %s", out)
	}
	if strings.Contains(logs.String(), "secret-recording") {
		t.Fatalf("token logged: %s", logs.String())
	}
	if !strings.Contains(logs.String(), `"completion_reason":"maxRecordDurationReached"`) {
		t.Fatalf("completion reason not logged: %s", logs.String())
	}
	// A later notification cannot rewrite a finished result.
	mustApply(t, s, opEvent("c1", model.ChangeUpdated, &model.Operation{ID: "op1", Status: model.OpCompleted, CompletionReason: "operationCanceled"}))
	if got := mustCall(t, s, "c1").Operations[0].CompletionReason; got != model.RecordMaxDurationReached {
		t.Fatalf("rewritten to %s", got)
	}
}

func TestSecretMasks(t *testing.T) {
	for in, want := range map[Secret]string{"": "", "short": "****", "0123456789abcdefXYZW": "****XYZW"} {
		b, _ := Secret(in).MarshalText()
		if string(b) != want {
			t.Errorf("MarshalText(%q) = %q, want %q", in, b, want)
		}
	}
}

package emulator

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/botd/botd/internal/model"
)

func TestParseIncoming(t *testing.T) {
	ic, err := parseIncoming([]byte(`{"from":{"user":"u1","displayName":"Megan"},"to":{"phone":"+15555550199"},
	  "callbackUri":"https://bot.contoso.com/api/calls","modalities":["audio","video"]}`))
	want := IncomingCall{From: Party{User: "u1", DisplayName: "Megan"}, To: &Party{Phone: "+15555550199"},
		CallbackURI: "https://bot.contoso.com/api/calls", Modalities: []string{"audio", "video"}}
	if err != nil || !reflect.DeepEqual(ic, want) {
		t.Errorf("parseIncoming = %+v, %v", ic, err)
	}
	for _, bad := range []string{``, `null`, `[]`, `{}`, `{"from":{"phone":"+1"}}`, `{"from":{"phone":"+1234567890123456789012"}}`,
		`{"from":{"phone":"+12a45"}}`, `{"from":{"user":"u"},"modalities":["audio","audio","audio","audio","audio"]}`,
		`{"from":{"user":"u"},"to":{}}`, `{"from":{"user":"u","displayName":"` + string(make([]byte, 300)) + `"}}`} {
		if _, err := parseIncoming([]byte(bad)); err == nil {
			t.Errorf("parseIncoming(%.60q) accepted", bad)
		}
	}
}

// FuzzParseIncoming: the parser never panics, and whatever it accepts is
// a valid request that survives a round trip and that Incoming's own
// check accepts.
func FuzzParseIncoming(f *testing.F) {
	for _, s := range []string{
		`{"from":{"phone":"+15555550100"}}`,
		`{"from":{"user":"8a34a46b","displayName":"Test User","tenantId":"t"},"to":{"phone":"+15555550199"}}`,
		`{"from":{"user":"u"},"callbackUri":"http://127.0.0.1:8080/api/calls","modalities":["audio"]}`,
		`{"from":{"phone":"+1","user":"u"}}`, `{"from":{}}`, `{"from":{"user":"u"}}{}`, `{"from":{"user":"\u00e9"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ic, err := parseIncoming(b)
		if err != nil {
			return
		}
		if (ic.From.Phone == "") == (ic.From.User == "") {
			t.Fatalf("accepted a caller with not exactly one of phone and user: %+v", ic.From)
		}
		again, err := json.Marshal(ic)
		if err != nil {
			t.Fatal(err)
		}
		ic2, err := parseIncoming(again)
		if err != nil || !reflect.DeepEqual(normal(ic), normal(ic2)) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", ic, again, ic2, err)
		}
		if err := ic.validate(); err != nil {
			t.Fatalf("Incoming would refuse what the parser accepted: %v", err)
		}
	})
}

func normal(ic IncomingCall) IncomingCall {
	if len(ic.Modalities) == 0 {
		ic.Modalities = nil
	}
	return ic
}

// FuzzParsePersonScript: the parser never panics, and whatever it accepts
// has valid tones and durations and survives a round trip (SetPerson's
// path).
func FuzzParsePersonScript(f *testing.F) {
	for _, s := range []string{
		`{"answer":"accept","answerAfter":"1s","tones":"1#","tonesAfter":"500ms"}`, `{}`, `{"tones":"*0aF"}`,
		`{"answer":"maybe"}`, `{"tones":"x"}`, `{"answerAfter":"-1s"}`, `{"x":1}`, `{} {}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := parsePersonScript(b)
		if err != nil {
			return
		}
		for i := 0; i < len(sc.tones); i++ {
			if _, ok := model.ToneForKey(sc.tones[i]); !ok {
				t.Fatalf("accepted key %q", sc.tones[i])
			}
		}
		if sc.answerAfter < 0 || sc.tonesAfter < 0 {
			t.Fatalf("negative durations %v %v", sc.answerAfter, sc.tonesAfter)
		}
		again, err := json.Marshal(sc.raw)
		if err != nil {
			t.Fatal(err)
		}
		sc2, err := parsePersonScript(again)
		if err != nil || !reflect.DeepEqual(sc, sc2) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", sc, again, sc2, err)
		}
	})
}

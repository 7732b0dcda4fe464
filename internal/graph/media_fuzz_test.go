package graph

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mediaValidators decode a JSON body into each media request type and
// validate it, as the admin API does with a body it is given.
var mediaValidators = []struct {
	name     string
	validate func(body []byte) (req any, err error, ok bool)
}{
	{"playPrompt", fuzzValidate(ValidatePlayPrompt)},
	{"recordResponse", fuzzValidate(ValidateRecordResponse)},
	{"subscribeToTone", fuzzValidate(ValidateSubscribeToTone)},
	{"sendDtmfTones", fuzzValidate(ValidateSendDtmfTones)},
	{"cancelMediaProcessing", fuzzValidate(ValidateCancelMediaProcessing)},
	{"mute", fuzzValidate(ValidateMute)},
	{"startHoldMusic", fuzzValidate(ValidateStartHoldMusic)},
	{"stopHoldMusic", fuzzValidate(ValidateStopHoldMusic)},
	{"updateRecordingStatus", fuzzValidate(ValidateUpdateRecordingStatus)},
	{"changeScreenSharingRole", fuzzValidate(ValidateChangeScreenSharingRole)},
}

func fuzzValidate[T any](v func(*T) error) func([]byte) (any, error, bool) {
	return func(body []byte) (any, error, bool) {
		var req *T
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, false
		}
		return req, v(req), true
	}
}

// FuzzMediaValidators: no body panics a validator; a refusal names a rule
// of allRules (so its series exists) and a field; an accepted request
// still passes after a marshal and decode, as it does on its way to Graph.
func FuzzMediaValidators(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "media", "*.request.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i := range mediaValidators {
			f.Add(uint8(i), string(b))
		}
	}
	for _, s := range []string{`null`, `{}`, `{"prompts":[null]}`, `{"prompts":[{"mediaInfo":{}}]}`, `{"stopTones":["#","x",""]}`,
		`{"tones":["tone1","1"],"delayBetweenTonesMs":-5}`, `{"customPrompt":{}}`, `{"status":"Recording"}`, `{"role":""}`,
		`{"maxRecordDurationInSeconds":2147483647}`, `{"clientContext":"` + strings.Repeat("é", 300) + `"}`} {
		for i := range mediaValidators {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body string) {
		mv := mediaValidators[int(kind)%len(mediaValidators)]
		req, err, ok := mv.validate([]byte(body))
		if !ok {
			return
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("%s: %v is not a *ValidationError", mv.name, err)
			}
			if !slices.Contains(allRules, ve.Rule) || ve.Field == "" {
				t.Fatalf("%s: rule %q field %q: the rule must be in allRules and the field named", mv.name, ve.Rule, ve.Field)
			}
			return
		}
		wire, merr := json.Marshal(req)
		if merr != nil {
			t.Fatalf("%s: accepted request does not marshal: %v", mv.name, merr)
		}
		if _, err, ok := mv.validate(wire); !ok || err != nil {
			t.Fatalf("%s: accepted %s, but refused its wire form %s: %v", mv.name, body, wire, err)
		}
	})
}

func FuzzOperationIDFromLocation(f *testing.F) {
	for _, s := range []string{"https://graph.microsoft.com/v1.0/communications/calls/c/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5",
		"https://x/operations/", "/operations/a%2Fb", "::", "https://x/operations/%2e%2e", "https://x/operations/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		id := operationIDFromLocation(loc)
		if id != "" && checkID("operationId", id) != nil {
			t.Fatalf("operationIDFromLocation(%q) = %q, an id the client would refuse", loc, id)
		}
	})
}

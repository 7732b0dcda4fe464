package notify

import (
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// opItem is an operation notification of the given type and members.
func opItem(odataType, members string) string {
	if members != "" {
		members = "," + members
	}
	return `{"changeType":"deleted","resourceUrl":"` + callURL + `/operations/o1","resourceData":{"@odata.type":"` + odataType + `","id":"o1"` + members + `}}`
}

func TestDecodeQuirks(t *testing.T) {
	tests := []struct {
		name  string
		item  string
		want  model.Quirk
		check func(t *testing.T, ev *model.Event)
	}{
		{
			name: "result codes as strings",
			item: callItem(`"state":"terminated","resultInfo":{"code":"200","subcode":"5001","message":"The conversation has ended."}`),
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ri := ev.Call.ResultInfo; ri.Code != 200 || ri.Subcode != 5001 || ri.Message != "The conversation has ended." {
					t.Errorf("resultInfo %+v", ri)
				}
			},
		},
		{
			name: "negative and zero codes as strings",
			item: opItem(model.ODataPlayPromptOp, `"resultInfo":{"code":"-1","subcode":"0"}`),
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ri := ev.Operation.ResultInfo; ri.Code != -1 || ri.Subcode != 0 {
					t.Errorf("resultInfo %+v", ri)
				}
			},
		},
		{
			name: "code at the int32 bounds as strings",
			item: callItem(`"resultInfo":{"code":"2147483647","subcode":"-2147483648"}`),
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ri := ev.Call.ResultInfo; ri.Code != 2147483647 || ri.Subcode != -2147483648 {
					t.Errorf("resultInfo %+v", ri)
				}
			},
		},
		{
			name: "escaped digits",
			item: callItem(`"resultInfo":{"code":"\u0032\u0030\u0030"}`),
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Call.ResultInfo.Code != 200 {
					t.Errorf("resultInfo %+v", ev.Call.ResultInfo)
				}
			},
		},
		{
			name: "sequence numbers as strings",
			item: `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","sequenceNumber":"7","participants":[{"id":"p","rosterSequenceNumber":"7"}]}]}`,
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Delta.SequenceNumber != 7 || ev.Delta.Participants[0].RosterSequenceNumber != 7 {
					t.Errorf("delta %+v", ev.Delta)
				}
			},
		},
		{
			name: "tone sequence id as string",
			item: callItem(`"toneInfo":{"sequenceId":"12","tone":"star"}`),
			want: model.QuirkNumberAsString,
			check: func(t *testing.T, ev *model.Event) {
				if ti := ev.Call.ToneInfo; ti.SequenceID != 12 || ti.Tone != model.ToneStar {
					t.Errorf("toneInfo %+v", ti)
				}
			},
		},
		{
			name: "operation id as number",
			item: `{"changeType":"deleted","resourceUrl":"` + callURL + `/operations/o1","resourceData":{"id":7}}`,
			want: model.QuirkStringAsNumber,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Operation.ID != "7" {
					t.Errorf("operation id %q", ev.Operation.ID)
				}
			},
		},
		{
			name: "numbers kept as their literal text",
			item: callItem(`"subject":-1.50e+3,"tenantId":0,"meetingInfo":{"joinMeetingId":1234567,"passcode":42},"source":{"identity":{"phone":{"id":12345678901}}}`),
			want: model.QuirkStringAsNumber,
			check: func(t *testing.T, ev *model.Event) {
				c := ev.Call
				if c.Subject != "-1.50e+3" || c.TenantID != "0" || c.MeetingInfo.JoinMeetingID != "1234567" ||
					*c.MeetingInfo.Passcode != "42" || c.Source.Identity.Phone.ID != "12345678901" {
					t.Errorf("call %+v", c)
				}
			},
		},
		{
			name: "completion reason as number",
			item: opItem(model.ODataSendDtmfTonesOp, `"completionReason":3`),
			want: model.QuirkStringAsNumber,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Operation.CompletionReason != "3" {
					t.Errorf("completionReason %q", ev.Operation.CompletionReason)
				}
			},
		},
		{
			name: "callbackUri as number",
			item: `{"changeType":"updated","resourceUrl":"` + callURL + `","callbackUri":1}`,
			want: model.QuirkStringAsNumber,
			check: func(t *testing.T, ev *model.Event) {
				if ev.CallbackURI != "1" {
					t.Errorf("callbackUri %q", ev.CallbackURI)
				}
			},
		},
		{
			name: "resourceUrl without slash",
			item: `{"changeType":"deleted","resourceUrl":"communications/calls/` + cid + `/operations/o1","resourceData":{"@odata.type":"#microsoft.graph.startHoldMusicOperation","status":"completed"}}`,
			want: model.QuirkPathWithoutSlash,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Path != (model.ResourcePath{CallID: cid, Kind: model.ResourceOperation, SubID: "o1"}) || ev.Kind != model.EventOperation {
					t.Errorf("path %+v kind %v", ev.Path, ev.Kind)
				}
				if ev.ResourceURL != "communications/calls/"+cid+"/operations/o1" {
					t.Errorf("ResourceURL %q: the event keeps what was sent", ev.ResourceURL)
				}
			},
		},
		{
			name: "legacy resource without slash",
			item: `{"changeType":"updated","resource":"app/calls/` + cid + `","resourceUrl":"` + callURL + `","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}`,
			want: model.QuirkPathWithoutSlash,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Path.CallID != cid || ev.Call.State != model.StateEstablished {
					t.Errorf("path %+v call %+v", ev.Path, ev.Call)
				}
			},
		},
		{
			name: "call id differs from the path",
			item: `{"changeType":"updated","resourceUrl":"/communications/calls/other","resourceData":{"@odata.type":"#microsoft.graph.call","id":"` + cid + `","state":"established"}}`,
			want: model.QuirkIDMismatch,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Call.ID != "other" || ev.Path.CallID != "other" || ev.CallID() != "other" || ev.Call.State != model.StateEstablished {
					t.Errorf("call id %q path %+v", ev.Call.ID, ev.Path)
				}
			},
		},
		{
			name: "call id differs by case only",
			item: `{"changeType":"updated","resourceUrl":"/communications/calls/57DAB8B1","resourceData":{"@odata.type":"#microsoft.graph.call","id":"57dab8b1"}}`,
			want: model.QuirkIDMismatch,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Call.ID != "57DAB8B1" {
					t.Errorf("call id %q", ev.Call.ID)
				}
			},
		},
		{
			name: "every quirk at once",
			item: `{"changeType":"updated","resourceUrl":"communications/calls/other","resourceData":{"@odata.type":"#microsoft.graph.call","id":"` + cid + `","subject":5,"resultInfo":{"code":"200"}}}`,
			want: model.QuirkNumberAsString | model.QuirkStringAsNumber | model.QuirkPathWithoutSlash | model.QuirkIDMismatch,
			check: func(t *testing.T, ev *model.Event) {
				if ev.Call.ID != "other" || ev.Call.Subject != "5" || ev.Call.ResultInfo.Code != 200 {
					t.Errorf("call %+v", ev.Call)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A quirk-free item either side must stay quirk-free: the
			// accumulator is per item.
			clean := callItem(`"state":"established","resultInfo":{"code":200}`)
			b, err := NewDecoder(DefaultLimits()).Decode(doc(clean, tt.item, clean))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Rejected) != 0 || len(b.Events) != 3 {
				t.Fatalf("events %d, rejected %v; want 3 events", len(b.Events), b.Rejected)
			}
			if q := b.Events[0].Quirks | b.Events[2].Quirks; q != 0 {
				t.Errorf("quirk-free neighbours have quirks %b", q)
			}
			ev := &b.Events[1]
			if ev.Quirks != tt.want {
				t.Errorf("Quirks %b, want %b", ev.Quirks, tt.want)
			}
			tt.check(t, ev)
		})
	}
}

func TestDecodeQuirkFree(t *testing.T) {
	items := []string{
		callItem(""),
		callItem(`"state":"established","subject":"5","resultInfo":{"code":200,"subcode":5001,"message":"200"}`),
		callItem(`"toneInfo":{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":1,"tone":"tone1"}`),
		rosterItem(participant(`"isMuted":true`)),
		opItem(model.ODataRecordOp, `"status":"completed","completionReason":"maxRecordDurationReached","recordingLocation":"https://file.location/x","recordingAccessToken":"t"`),
		`{"changeType":"updated","resource":"/app/calls/` + cid + `","resourceData":{"@odata.type":"#microsoft.graph.call","id":"` + cid + `"}}`,
		`{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","id":"` + cid + `"}}`,
		`{"changeType":"updated","resourceUrl":"` + callURL + `/x"}`,
	}
	for _, item := range items {
		ev := decodeOne(t, item)
		if ev.Quirks != 0 {
			t.Errorf("Quirks %b for %s", ev.Quirks, item)
		}
	}
	for _, name := range notificationFiles(t) {
		b, err := NewDecoder(DefaultLimits()).Decode(testkit.Seed(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, ev := range b.Events {
			if ev.Quirks != 0 {
				t.Errorf("%s: Quirks %b", name, ev.Quirks)
			}
		}
	}
}

// TestDecodeQuirkHostile: tolerance stops at what is plainly not the value
// the schema asks for, and every limit still holds.
func TestDecodeQuirkHostile(t *testing.T) {
	digits := strings.Repeat("1", 20<<10)
	tests := []struct {
		name string
		lim  Limits
		item string
		want string
	}{
		{name: "not digits", item: callItem(`"resultInfo":{"code":"20x"}`), want: `resourceData/resultInfo/code: string "20x" is not an integer in [-2147483648, 2147483647]`},
		{name: "out of range", item: callItem(`"resultInfo":{"code":"99999999999"}`), want: `resourceData/resultInfo/code: string "99999999999" is not an integer in [-2147483648, 2147483647]`},
		{name: "just out of range", item: callItem(`"resultInfo":{"subcode":"2147483648"}`), want: `string "2147483648" is not an integer`},
		{name: "beyond int64", item: callItem(`"resultInfo":{"code":"99999999999999999999"}`), want: "is not an integer"},
		{name: "negative sequence as string", item: rosterItem(participant(`"rosterSequenceNumber":"-1"`)), want: `resourceData/0/rosterSequenceNumber: string "-1" is not an integer in [0, 9223372036854775807]`},
		{name: "empty string", item: callItem(`"resultInfo":{"code":""}`), want: `string "" is not an integer`},
		{name: "fraction", item: callItem(`"resultInfo":{"code":"200.0"}`), want: `string "200.0" is not an integer`},
		{name: "exponent", item: callItem(`"resultInfo":{"code":"2e2"}`), want: `string "2e2" is not an integer`},
		{name: "plus sign", item: callItem(`"resultInfo":{"code":"+200"}`), want: `string "+200" is not an integer`},
		{name: "spaces", item: callItem(`"resultInfo":{"code":" 200"}`), want: `string " 200" is not an integer`},
		{name: "trailing space", item: callItem(`"resultInfo":{"code":"200 "}`), want: `string "200 " is not an integer`},
		{name: "leading zero", item: callItem(`"resultInfo":{"code":"0200"}`), want: `string "0200" is not an integer`},
		{name: "negative zero", item: callItem(`"resultInfo":{"code":"-0"}`), want: `string "-0" is not an integer`},
		{name: "lone minus", item: callItem(`"resultInfo":{"code":"-"}`), want: `string "-" is not an integer`},
		{name: "hex", item: callItem(`"resultInfo":{"code":"0x10"}`), want: `string "0x10" is not an integer`},
		{name: "NUL", item: callItem(`"resultInfo":{"code":"2\u00000"}`), want: "is not an integer"},
		{name: "20 KB numeric string", item: callItem(`"resultInfo":{"code":"` + digits + `"}`), want: "resourceData/resultInfo/code: string of 20480 bytes exceeds the limit of 16384"},
		{name: "numeric string over a custom limit", lim: Limits{MaxStringLen: 64}, item: callItem(`"resultInfo":{"code":"` + strings.Repeat("0", 65) + `"}`), want: "string of 65 bytes exceeds the limit of 64"},
		{name: "boolean for integer", item: callItem(`"resultInfo":{"code":true}`), want: "got a boolean, want integer"},
		{name: "20 KB number for a string", item: callItem(`"subject":` + digits), want: "resourceData/subject: string of 20480 bytes exceeds the limit of 16384"},
		{name: "20 KB number for a symbol", item: callItem(`"direction":` + digits), want: "resourceData/direction: string of 20480 bytes exceeds the limit of 16384"},
		{name: "number over a custom limit", lim: Limits{MaxStringLen: 64}, item: callItem(`"subject":` + strings.Repeat("1", 65)), want: "resourceData/subject: string of 65 bytes exceeds the limit of 64"},
		{name: "number for a call state", item: callItem(`"state":1`), want: "resourceData/state: got a number, want string"},
		{name: "number for a tone", item: callItem(`"toneInfo":{"tone":1}`), want: "resourceData/toneInfo/tone: got a number, want string"},
		{name: "number for an operation status", item: opItem(model.ODataPlayPromptOp, `"status":2`), want: "resourceData/status: got a number, want string"},
		{name: "number for changeType", item: `{"changeType":1,"resourceUrl":"` + callURL + `"}`, want: "changeType: got a number, want string"},
		{name: "path without slash, traversal", item: `{"changeType":"updated","resourceUrl":"communications/calls/../x"}`, want: "dot segment"},
		{name: "path without slash, absolute URL", item: `{"changeType":"updated","resourceUrl":"https://graph.microsoft.com/v1.0/communications/calls/x"}`, want: `byte ":"`},
		{name: "path without slash, other root", item: `{"changeType":"updated","resourceUrl":"calls/x"}`, want: "not under /communications/calls/"},
		{name: "path of two slashes", item: `{"changeType":"updated","resourceUrl":"//communications/calls/x"}`, want: "empty segment"},
		{name: "path without slash disagrees with resource", item: `{"changeType":"updated","resourceUrl":"communications/calls/a","resource":"/app/calls/b"}`, want: "resource and resourceUrl address different resources"},
		{name: "mismatched call id that is not an id", item: `{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","id":"../x"}}`, want: "not a valid id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := callItem(`"state":"established"`)
			b, err := NewDecoder(tt.lim).Decode(doc(good, tt.item, good))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Events) != 2 || len(b.Rejected) != 1 || b.Rejected[0].Index != 1 {
				t.Fatalf("events %d, rejected %v; want item 1 rejected", len(b.Events), b.Rejected)
			}
			if r := b.Rejected[0].Reason; !strings.Contains(r, tt.want) {
				t.Errorf("reason %q does not say %q", r, tt.want)
			} else if len(r) > 300 {
				t.Errorf("reason is %d bytes long; attacker-sized values must be cut", len(r))
			}
		})
	}
}

func TestDecodeMediaOperationTypes(t *testing.T) {
	for _, odt := range []string{
		model.ODataPlayPromptOp, model.ODataRecordOp, model.ODataSubscribeToToneOp,
		model.ODataSendDtmfTonesOp, model.ODataCancelMediaProcessingOp,
		model.ODataMuteParticipantOp, model.ODataUnmuteParticipantOp,
		model.ODataStartHoldMusicOp, model.ODataStopHoldMusicOp,
		model.ODataUpdateRecordingStatusOp, model.ODataInviteParticipantsOp, model.ODataCommsOperation,
	} {
		ev := decodeOne(t, opItem(odt, `"status":"completed","clientContext":"c1"`))
		if ev.Kind != model.EventOperation || ev.ODataType != odt || ev.Operation.ODataType != odt ||
			ev.Operation.Status != model.OpCompleted || ev.Operation.ID != "o1" || ev.Operation.ClientContext != "c1" {
			t.Errorf("%s: kind %v, event %+v, operation %+v", odt, ev.Kind, ev, ev.Operation)
		}
		if _, ok := symbols[odt]; !ok {
			t.Errorf("%s is not interned", odt)
		}
		// At a call's path, the type still decides.
		ev = decodeOne(t, `{"changeType":"deleted","resourceUrl":"`+callURL+`","resourceData":{"@odata.type":"`+odt+`","status":"failed"}}`)
		if ev.Kind != model.EventOperation || ev.Operation.Status != model.OpFailed {
			t.Errorf("%s at a call path: kind %v", odt, ev.Kind)
		}
	}
	for _, s := range []string{model.ODataToneInfo, model.ODataMediaPrompt, model.ODataMediaInfo,
		model.CompletedSuccessfully, model.MediaOperationCanceled, model.RecordOperationCanceled,
		model.RecordStopToneDetected, model.RecordMaxDurationReached, model.RecordInitialSilence, model.RecordMaxSilence} {
		if _, ok := symbols[s]; !ok {
			t.Errorf("%s is not interned", s)
		}
	}
}

func TestDecodeMediaFields(t *testing.T) {
	t.Run("record operation", func(t *testing.T) {
		op := decodeOne(t, opItem(model.ODataRecordOp, `"status":"completed","completionReason":"stopToneDetected",
			"recordingLocation":"https://file.location/17e3b46c","recordingAccessToken":"eyJ0eXAi","resultInfo":{"code":200,"subcode":8514}`)).Operation
		if op.CompletionReason != model.RecordStopToneDetected || op.RecordingLocation != "https://file.location/17e3b46c" ||
			op.RecordingAccessToken != "eyJ0eXAi" || op.ResultInfo.Subcode != 8514 {
			t.Errorf("operation %+v", op)
		}
	})
	t.Run("unknown completion reason is kept", func(t *testing.T) {
		op := decodeOne(t, opItem(model.ODataPlayPromptOp, `"completionReason":"somethingNew"`)).Operation
		if op.CompletionReason != "somethingNew" {
			t.Errorf("completionReason %q", op.CompletionReason)
		}
	})
	t.Run("null media fields", func(t *testing.T) {
		ev := decodeOne(t, callItem(`"toneInfo":null`))
		op := decodeOne(t, opItem(model.ODataRecordOp, `"completionReason":null,"recordingLocation":null,"recordingAccessToken":null`)).Operation
		if ev.Call.ToneInfo != nil || op.CompletionReason != "" || op.RecordingLocation != "" || op.RecordingAccessToken != "" {
			t.Errorf("call %+v operation %+v", ev.Call, op)
		}
	})
	t.Run("every tone", func(t *testing.T) {
		for i, tone := range model.Tones {
			for _, spelling := range []string{string(tone), strings.ToUpper(string(tone))} {
				ti := decodeOne(t, callItem(`"toneInfo":{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":`+string(rune('1'+i%9))+`,"tone":"`+spelling+`","x":[1]}`)).Call.ToneInfo
				if ti == nil || ti.Tone != tone || ti.ODataType != model.ODataToneInfo || ti.SequenceID != int64(1+i%9) {
					t.Errorf("%s: toneInfo %+v", spelling, ti)
				}
			}
		}
	})
	t.Run("media info type", func(t *testing.T) {
		mi := decodeOne(t, callItem(`"mediaConfig":{"preFetchMedia":[{"@odata.type":"#microsoft.graph.mediaInfo","uri":"https://cdn.contoso.com/beep.wav"}]}`)).Call.MediaConfig.PreFetchMedia[0]
		if mi.ODataType != model.ODataMediaInfo || mi.URI != "https://cdn.contoso.com/beep.wav" {
			t.Errorf("mediaInfo %+v", mi)
		}
	})
	bad := []struct{ members, want string }{
		{`"toneInfo":{"tone":"tone10"}`, `resourceData/toneInfo/tone: unknown tone "tone10"`},
		{`"toneInfo":{"sequenceId":-1}`, `resourceData/toneInfo/sequenceId: number "-1" is not an integer`},
		{`"toneInfo":{"sequenceId":1.5}`, `resourceData/toneInfo/sequenceId: number "1.5"`},
		{`"toneInfo":"tone1"`, "resourceData/toneInfo: got a string, want object"},
		{`"toneInfo":[]`, "resourceData/toneInfo: got an array, want object"},
	}
	for _, tt := range bad {
		b, err := NewDecoder(DefaultLimits()).Decode(doc(callItem(tt.members)))
		if err != nil || len(b.Rejected) != 1 || !strings.Contains(b.Rejected[0].Reason, tt.want) {
			t.Errorf("%s: err %v, rejected %v; want %q", tt.members, err, b.Rejected, tt.want)
		}
	}
	b, err := NewDecoder(DefaultLimits()).Decode(doc(opItem(model.ODataRecordOp, `"recordingLocation":{}`), opItem(model.ODataRecordOp, `"recordingAccessToken":[]`)))
	if err != nil || len(b.Rejected) != 2 {
		t.Errorf("recording fields of the wrong type: %v, rejected %v", err, b.Rejected)
	}
}

func TestParsePathLenient(t *testing.T) {
	for _, p := range []string{
		"communications/calls/" + cid,
		"app/calls/" + cid + "/participants/p1",
		"communications/calls/e141b67c-90fd-455d-858b-b48a40b9cc8d/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5",
	} {
		got, noSlash, err := parsePath(p, true)
		want, werr := ParseResourcePath("/" + p)
		if err != nil || werr != nil || !noSlash || got != want {
			t.Errorf("parsePath(%q) = %+v, %v, %v; want %+v", p, got, noSlash, err, want)
		}
		if _, err := ParseResourcePath(p); err == nil || !strings.Contains(err.Error(), "does not start with '/'") {
			t.Errorf("ParseResourcePath(%q) accepted a path without '/': %v", p, err)
		}
	}
	got, noSlash, err := parsePath(callURL, true)
	if err != nil || noSlash || got.CallID != cid {
		t.Errorf("parsePath(%q) = %+v, %v, %v", callURL, got, noSlash, err)
	}
	for _, p := range []string{"", "communications/calls", "communications/calls/", "x/communications/calls/a", "communications/calls/a?b", "/" + strings.Repeat("a", 1024)} {
		if rp, noSlash, err := parsePath(p, true); err == nil || noSlash || rp != (model.ResourcePath{}) {
			t.Errorf("parsePath(%q) = %+v, %v, %v; want an error", p, rp, noSlash, err)
		}
	}
}

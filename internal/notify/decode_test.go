package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// doc wraps items into a commsNotifications body.
func doc(items ...string) []byte {
	return []byte(`{"@odata.type":"#microsoft.graph.commsNotifications","value":[` + strings.Join(items, ",") + `]}`)
}

const (
	cid      = "2e1a0b00-2db4-4022-9570-243709c565ab"
	callURL  = "/communications/calls/" + cid
	partsURL = callURL + "/participants"
)

// callItem is a call notification whose resourceData members are given.
func callItem(members string) string {
	if members != "" {
		members = "," + members
	}
	return `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":{"@odata.type":"#microsoft.graph.call","id":"` + cid + `"` + members + `}}`
}

// rosterItem is a roster notification with the given participants.
func rosterItem(participants ...string) string {
	return `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":[` + strings.Join(participants, ",") + `]}`
}

func participant(members string) string {
	if members != "" {
		members = "," + members
	}
	return `{"@odata.type":"#microsoft.graph.participant","id":"p1","info":{"identity":{"user":{"id":"u1"}}}` + members + `}`
}

func nest(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func TestDecodeDocumentErrors(t *testing.T) {
	big := make([]string, 4)
	for i := range big {
		big[i] = callItem("")
	}
	tests := []struct {
		name    string
		lim     Limits
		body    string
		want    error
		wantMsg string // a substring of the message
	}{
		{name: "empty", body: "", want: ErrNotJSON, wantMsg: "empty body"},
		{name: "whitespace", body: " \n\t", want: ErrNotJSON, wantMsg: "empty body"},
		{name: "truncated", body: `{"value":[`, want: ErrNotJSON, wantMsg: "unexpected EOF"},
		{name: "garbage", body: `{"value":[]}x`, want: ErrNotJSON, wantMsg: "offset 12"},
		{name: "bad literal", body: `{"value":[tru]}`, want: ErrNotJSON, wantMsg: "offset"},
		{name: "two documents", body: `{"value":[]}{"value":[]}`, want: ErrNotJSON, wantMsg: "more than one top-level value"},
		{name: "duplicate value", body: `{"value":[],"value":[]}`, want: ErrNotJSON, wantMsg: "duplicate"},
		{name: "duplicate in item", body: string(doc(`{"changeType":"updated","changeType":"deleted"}`)), want: ErrNotJSON, wantMsg: "duplicate"},
		{name: "invalid UTF-8", body: "{\"value\":[],\"x\":\"\xff\"}", want: ErrNotJSON, wantMsg: "UTF-8"},
		{name: "syntax error after good items", body: `{"value":[` + callItem("") + `,{"changeType":}]}`, want: ErrNotJSON},
		// Too deep in a roster decoded in place, then cut short: the syntax
		// error wins, as with the two passes, which read the whole value
		// before its depth (found by FuzzInPlaceMatchesTwoPasses).
		{name: "too deep, then cut short", body: `{"value":[{"resource":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","x":` + nest("[", "]", 40), want: ErrNotJSON, wantMsg: "unexpected EOF"},
		{name: "too deep, whole", body: `{"value":[{"resource":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","x":` + nest("[", "]", 40) + `}]}]}`, want: ErrLimitExceeded, wantMsg: "nesting deeper than"},
		{name: "array", body: `[]`, want: ErrNotCommsNotifications, wantMsg: "top-level value is an array"},
		{name: "string", body: `"value"`, want: ErrNotCommsNotifications, wantMsg: "a string"},
		{name: "null", body: `null`, want: ErrNotCommsNotifications},
		{name: "number", body: `12`, want: ErrNotCommsNotifications},
		{name: "other odata type", body: `{"@odata.type":"#microsoft.graph.changeNotificationCollection","value":[]}`, want: ErrNotCommsNotifications, wantMsg: "changeNotificationCollection"},
		{name: "odata type after value", body: `{"value":[` + callItem("") + `],"@odata.type":"#microsoft.graph.call"}`, want: ErrNotCommsNotifications},
		{name: "odata type number", body: `{"@odata.type":1,"value":[]}`, want: ErrNotCommsNotifications, wantMsg: "got a number"},
		{name: "no value", body: `{}`, want: ErrMissingValue, wantMsg: "missing"},
		{name: "no value but others", body: `{"@odata.type":"#microsoft.graph.commsNotifications","values":[]}`, want: ErrMissingValue, wantMsg: "missing"},
		{name: "null value", body: `{"value":null}`, want: ErrMissingValue, wantMsg: "null"},
		{name: "object value", body: `{"value":{}}`, want: ErrMissingValue, wantMsg: "an object"},
		{name: "string value", body: `{"value":"[]"}`, want: ErrMissingValue, wantMsg: "a string"},
		{name: "too deep in resourceData", body: string(doc(`{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":` + nest("[", "]", 30) + `}`)), want: ErrLimitExceeded, wantMsg: "deeper than 32"},
		{name: "too deep in unknown member", body: string(doc(`{"changeType":"updated","x":` + strings.Repeat(`{"a":`, 30) + "1" + strings.Repeat("}", 30) + `}`)), want: ErrLimitExceeded},
		{name: "too deep at top level", body: `{"x":` + nest("[", "]", 32) + `,"value":[]}`, want: ErrLimitExceeded},
		{name: "too deep as item", body: string(doc(nest("[", "]", 31))), want: ErrLimitExceeded},
		{name: "deep nesting within a string is fine", body: `{"x":"` + nest("[", "]", 100) + `","value":[]}`},
		{name: "at the depth limit", body: `{"x":` + nest("[", "]", 31) + `,"value":[]}`},
		{name: "custom depth", lim: Limits{MaxDepth: 5}, body: string(doc(callItem(`"x":[]`)))},
		{name: "custom depth exceeded", lim: Limits{MaxDepth: 5}, body: string(doc(callItem(`"x":[[]]`))), want: ErrLimitExceeded, wantMsg: "deeper than 5"},
		{name: "at the item limit", lim: Limits{MaxItems: 4}, body: string(doc(big...))},
		{name: "over the item limit", lim: Limits{MaxItems: 3}, body: string(doc(big...)), want: ErrLimitExceeded, wantMsg: "more than 3 items"},
		{name: "null odata type", body: `{"@odata.type":null,"value":[]}`},
		{name: "no odata type", body: `{"value":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewDecoder(tt.lim).Decode([]byte(tt.body))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if len(b.Rejected) != 0 {
					t.Fatalf("rejected: %v", b.Rejected)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: err %v, want %v", err, tt.want)
			}
			if b != nil {
				t.Errorf("Decode returned a batch with its error: %+v", b)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			for _, other := range []error{ErrNotJSON, ErrNotCommsNotifications, ErrMissingValue, ErrLimitExceeded} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %q also matches %v", err, other)
				}
			}
		})
	}
}

func TestDecodeOneBadItemAmongGood(t *testing.T) {
	body := doc(
		callItem(`"state":"established"`),
		rosterItem(participant(`"isMuted":"yes"`)),
		`"not an item"`,
		rosterItem(participant(`"isMuted":true`)),
	)
	b, err := NewDecoder(DefaultLimits()).Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 2 || b.Events[0].Index != 0 || b.Events[1].Index != 3 {
		t.Fatalf("events %+v, want indexes 0 and 3", b.Events)
	}
	if b.Events[0].Call.State != model.StateEstablished || !b.Events[1].Participants[0].IsMuted {
		t.Errorf("good items decoded wrong: %+v", b.Events)
	}
	want := []ItemError{
		{Index: 1, Reason: "resourceData/0/isMuted: got a string, want boolean"},
		{Index: 2, Reason: "item is a string, want an object"},
	}
	if fmt.Sprint(b.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %q, want %q", b.Rejected, want)
	}
	var err1 error = b.Rejected[0]
	if got := err1.Error(); got != "value[1]: resourceData/0/isMuted: got a string, want boolean" {
		t.Errorf("ItemError.Error() = %q", got)
	}
}

func TestDecodeItemErrors(t *testing.T) {
	long := strings.Repeat("a", 10<<10)
	tests := []struct {
		name string
		lim  Limits
		item string
		want string // a substring of the reason
	}{
		{name: "null item", item: `null`, want: "item is null, want an object"},
		{name: "array item", item: `[1]`, want: "item is an array"},
		{name: "no changeType", item: `{"resourceUrl":"` + callURL + `","resourceData":{"@odata.type":"#microsoft.graph.call"}}`, want: "changeType: missing"},
		{name: "null changeType", item: `{"changeType":null,"resourceUrl":"` + callURL + `"}`, want: "changeType: missing"},
		{name: "unknown changeType", item: `{"changeType":"moved","resourceUrl":"` + callURL + `"}`, want: `changeType: unknown value "moved"`},
		{name: "changeType number", item: `{"changeType":1,"resourceUrl":"` + callURL + `"}`, want: "changeType: got a number, want string"},
		{name: "changeType object", item: `{"changeType":{"a":[1]},"resourceUrl":"` + callURL + `"}`, want: "changeType: got an object, want string"},
		{name: "resourceUrl number", item: `{"changeType":"updated","resourceUrl":5}`, want: `resourceUrl: invalid resource path "5"`},
		{name: "resourceUrl object", item: `{"changeType":"updated","resourceUrl":{}}`, want: "resourceUrl: got an object, want string"},
		{name: "path traversal", item: `{"changeType":"updated","resourceUrl":"/communications/calls/` + cid + `/../other"}`, want: "resourceUrl: invalid resource path"},
		{name: "traversal in call id", item: `{"changeType":"updated","resourceUrl":"/communications/calls/..","resourceData":{}}`, want: "dot segment"},
		{name: "10 KB id", item: `{"changeType":"updated","resourceUrl":"/communications/calls/` + long + `"}`, want: "longer than 1024 bytes"},
		{name: "percent escape", item: `{"changeType":"updated","resourceUrl":"/communications/calls/ab%2F..%2Fcd"}`, want: `byte "%" at offset 24`},
		{name: "query", item: `{"changeType":"updated","resourceUrl":"/communications/calls/ab?x=1"}`, want: `byte "?"`},
		{name: "unknown prefix", item: `{"changeType":"updated","resourceUrl":"/beta/calls/ab"}`, want: "not under /communications/calls/"},
		{name: "escaped slash", item: `{"changeType":"updated","resourceUrl":"\/communications\/calls\/ab\u002f..\/cd"}`, want: "dot segment"},
		{name: "bad legacy resource", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resource":"/app/calls/a b"}`, want: "resource: invalid resource path"},
		{name: "paths disagree", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resource":"/app/calls/other"}`, want: "resource and resourceUrl address different resources"},
		{name: "no path, call without id", item: `{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}`, want: "no resource or resourceUrl"},
		{name: "no path, call with bad id", item: `{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","id":"../x"}}`, want: "not a valid id"},
		{name: "no path, roster", item: `{"changeType":"updated","resourceData":[]}`, want: "no resource or resourceUrl"},
		{name: "unknown call state", item: callItem(`"state":"ringing"`), want: `resourceData/state: unknown call state "ringing"`},
		{name: "call state number", item: callItem(`"state":3`), want: "resourceData/state: got a number, want string"},
		{name: "escaped member name", item: callItem(`"st\u0061te":"ringing"`), want: "unknown call state"},
		{name: "scalar resourceData at call path", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":"x"}`, want: "resourceData: got a string, want an object or an array"},
		{name: "array at call path", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":[]}`, want: "got an array, want an object at a call path"},
		{name: "object at participants path", item: `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":{}}`, want: "got an object, want an array at a participants path"},
		{name: "single participant object", item: `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":` + participant("") + `}`, want: "a single #microsoft.graph.participant object, want an array"},
		{name: "array of calls", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":[{"@odata.type":"#microsoft.graph.call"}]}`, want: "an array of #microsoft.graph.call"},
		{name: "roster element not an object", item: rosterItem(participant(""), `"p2"`), want: "resourceData/1: got a string, want object"},
		{name: "roster element null", item: rosterItem(`null`), want: "resourceData/0: got null, want object"},
		{name: "mixed roster", item: rosterItem(participant(""), `{"@odata.type":"#microsoft.graph.deltaParticipants"}`), want: "element of type \"#microsoft.graph.deltaParticipants\" in a list of #microsoft.graph.participant"},
		{name: "two delta elements", item: `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants"},{"@odata.type":"#microsoft.graph.deltaParticipants"}]}`, want: "more than one deltaParticipants element"},
		{name: "negative sequence", item: `{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","sequenceNumber":-1}]}`, want: "resourceData/0/sequenceNumber: number \"-1\" is not an integer"},
		{name: "fractional roster sequence", item: rosterItem(participant(`"rosterSequenceNumber":1.5`)), want: "resourceData/0/rosterSequenceNumber: number \"1.5\""},
		{name: "huge roster sequence", item: rosterItem(participant(`"rosterSequenceNumber":99999999999999999999`)), want: "is not an integer"},
		{name: "result code overflow", item: callItem(`"resultInfo":{"code":2147483648}`), want: "resourceData/resultInfo/code: number \"2147483648\" is not an integer in [-2147483648, 2147483647]"},
		{name: "isMuted string", item: rosterItem(participant(`"isMuted":"yes"`)), want: "resourceData/0/isMuted: got a string, want boolean"},
		{name: "identity not object", item: rosterItem(`{"info":{"identity":{"user":"bob"}}}`), want: "resourceData/0/info/identity/user: got a string, want object"},
		{name: "mediaStreams object", item: rosterItem(participant(`"mediaStreams":{}`)), want: "resourceData/0/mediaStreams: got an object, want array"},
		{name: "targets not array", item: callItem(`"targets":{}`), want: "resourceData/targets: got an object, want array"},
		{name: "modality number", item: callItem(`"requestedModalities":["audio",1]`), want: "resourceData/requestedModalities/1: got a number, want string"},
		{name: "optional bool string", item: callItem(`"callOptions":{"isDeltaRosterEnabled":"true"}`), want: "resourceData/callOptions/isDeltaRosterEnabled: got a string, want boolean"},
		{name: "unknown op status", item: `{"changeType":"deleted","resourceUrl":"` + callURL + `/operations/o1","resourceData":{"@odata.type":"#microsoft.graph.commsOperation","status":"paused"}}`, want: `resourceData/status: unknown operation status "paused"`},
		{name: "op id boolean", item: `{"changeType":"deleted","resourceUrl":"` + callURL + `/operations/o1","resourceData":{"id":true}}`, want: "resourceData/id: got a boolean, want string"},
		{name: "odata type number", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":{"@odata.type":5}}`, want: "resourceData/@odata.type: got a number, want string"},
		{name: "too many participants", lim: Limits{MaxParticipants: 2}, item: rosterItem(participant(""), participant(""), participant("")), want: "resourceData/2: more than 2 participants"},
		{name: "too many invitees", lim: Limits{MaxParticipants: 1}, item: `{"changeType":"deleted","resourceUrl":"` + callURL + `/operations/o1","resourceData":{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","participants":[{},{}]}}`, want: "more than 1 participants"},
		{name: "too many media streams", lim: Limits{MaxItems: 3}, item: rosterItem(participant(`"mediaStreams":[{},{},{},{}]`)), want: "resourceData/0/mediaStreams/3: more than 3 media streams"},
		{name: "too many sessions", lim: Limits{MaxItems: 3}, item: `{"changeType":"created","resourceUrl":"` + callURL + `/contentsharingsessions","resourceData":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]}`, want: "more than 3 sessions"},
		{name: "string too long", lim: Limits{MaxStringLen: 64}, item: callItem(`"subject":"` + strings.Repeat("s", 65) + `"`), want: "resourceData/subject: string of 65 bytes exceeds the limit of 64"},
		{name: "escaped string too long", lim: Limits{MaxStringLen: 64}, item: callItem(`"subject":"` + strings.Repeat(`\u0041`, 65) + `"`), want: "string of 65 bytes"},
		{name: "unknown odata type too long", lim: Limits{MaxStringLen: 64}, item: `{"changeType":"created","resourceUrl":"` + callURL + `","resourceData":{"@odata.type":"#microsoft.graph.` + strings.Repeat("x", 64) + `"}}`, want: "resourceData/@odata.type: string of 81 bytes"},
		{name: "callbackUri too long", lim: Limits{MaxStringLen: 64}, item: `{"changeType":"updated","resourceUrl":"/app/calls/a","callbackUri":"https://bot.contoso.com/` + strings.Repeat("c", 64) + `"}`, want: "callbackUri: string of 88 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := callItem(`"state":"established"`)
			b, err := NewDecoder(tt.lim).Decode(doc(good, tt.item, good))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Events) != 2 || b.Events[0].Index != 0 || b.Events[1].Index != 2 {
				t.Errorf("good items: %+v, want events 0 and 2", b.Events)
			}
			if len(b.Rejected) != 1 || b.Rejected[0].Index != 1 {
				t.Fatalf("rejected %v, want item 1", b.Rejected)
			}
			if r := b.Rejected[0].Reason; !strings.Contains(r, tt.want) {
				t.Errorf("reason %q does not say %q", r, tt.want)
			} else if len(r) > 300 {
				t.Errorf("reason is %d bytes long; attacker-sized values must be cut", len(r))
			}
		})
	}
}

// decodeOne decodes a body of one item that must become an event.
func decodeOne(t *testing.T, item string) *model.Event {
	t.Helper()
	return decodeSingle(t, doc(item))
}

// decodeSingle decodes a whole body that must hold exactly one event.
func decodeSingle(t *testing.T, body []byte) *model.Event {
	t.Helper()
	b, err := NewDecoder(DefaultLimits()).Decode(body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(b.Rejected) != 0 || len(b.Events) != 1 {
		t.Fatalf("events %+v, rejected %v; want one event", b.Events, b.Rejected)
	}
	return &b.Events[0]
}

func TestDecodeUnknownEvents(t *testing.T) {
	tests := []struct {
		name      string
		item      string
		odataType string
		pathKind  model.ResourceKind
	}{
		{name: "unknown odata type", item: `{"changeType":"updated","resourceUrl":"` + callURL + `","resourceData":{"@odata.type":"#microsoft.graph.audioRoutingGroup","id":"g1","sources":["a"]}}`, odataType: "#microsoft.graph.audioRoutingGroup", pathKind: model.ResourceCall},
		{name: "unknown element type", item: `{"changeType":"created","resourceUrl":"` + partsURL + `","resourceData":[{"@odata.type":"#microsoft.graph.recordingInfo"}]}`, odataType: "#microsoft.graph.recordingInfo", pathKind: model.ResourceParticipants},
		{name: "unknown path shape", item: `{"changeType":"created","resourceUrl":"` + callURL + `/audioRoutingGroups/g1","resourceData":{"@odata.type":"#microsoft.graph.call"}}`, odataType: model.ODataCall, pathKind: model.ResourceOther},
		{name: "unknown path, scalar data", item: `{"changeType":"created","resourceUrl":"` + callURL + `/x","resourceData":5}`, pathKind: model.ResourceOther},
		{name: "participant list at one participant's path", item: `{"changeType":"updated","resourceUrl":"` + partsURL + `/p1","resourceData":[` + participant("") + `]}`, odataType: model.ODataParticipant, pathKind: model.ResourceParticipants},
		{name: "no resourceData", item: `{"changeType":"deleted","resource":"/app/calls/` + cid + `"}`, pathKind: model.ResourceCall},
		{name: "null resourceData", item: `{"changeType":"deleted","resourceUrl":"` + callURL + `","resourceData":null}`, pathKind: model.ResourceCall},
		{name: "untyped object at participant path element", item: `{"changeType":"updated","resourceUrl":"` + callURL + `/participants/p1","resourceData":[{"@odata.type":"#microsoft.graph.somethingNew","x":{"y":[1,{"z":null}]}}]}`, odataType: "#microsoft.graph.somethingNew", pathKind: model.ResourceParticipants},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := decodeOne(t, tt.item)
			if ev.Kind != model.EventUnknown {
				t.Fatalf("Kind %v, want unknown", ev.Kind)
			}
			if ev.ODataType != tt.odataType || ev.Path.Kind != tt.pathKind || ev.Path.CallID != cid {
				t.Errorf("ODataType %q Path %+v, want %q %v %q", ev.ODataType, ev.Path, tt.odataType, tt.pathKind, cid)
			}
			if !bytes.Equal(ev.Raw, []byte(tt.item)) {
				t.Errorf("Raw %s\nwant %s", ev.Raw, tt.item)
			}
			if ev.Call != nil || ev.Participants != nil || ev.Delta != nil || ev.Operation != nil || ev.Sessions != nil {
				t.Errorf("unknown event carries a payload: %+v", ev)
			}
		})
	}
}

func TestDecodeRawIsACopy(t *testing.T) {
	item := `{"changeType":"updated","resourceUrl":"` + callURL + `/x"}`
	body := doc(item)
	b, err := NewDecoder(DefaultLimits()).Decode(body)
	if err != nil || len(b.Events) != 1 {
		t.Fatalf("Decode: %v %+v", err, b)
	}
	for i := range body {
		body[i] = ' '
	}
	if string(b.Events[0].Raw) != item || b.Events[0].ResourceURL != callURL+"/x" || b.Events[0].Path.CallID != cid {
		t.Errorf("event changed with the body: %+v", b.Events[0])
	}
}

func TestDecodeNormalises(t *testing.T) {
	t.Run("case of enumerations", func(t *testing.T) {
		ev := decodeOne(t, `{"changeType":"Updated","resourceUrl":"`+callURL+`","resourceData":{"@odata.type":"#microsoft.graph.call","state":"Established"}}`)
		if ev.ChangeType != model.ChangeUpdated || ev.Call.State != model.StateEstablished {
			t.Errorf("got %q %q", ev.ChangeType, ev.Call.State)
		}
		op := decodeOne(t, `{"changeType":"updated","resourceUrl":"`+callURL+`/operations/o1","resourceData":{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","status":"Running","id":"o1"}}`)
		if op.Operation.Status != model.OpRunning || op.Path.SubID != "o1" {
			t.Errorf("status %q, path %+v", op.Operation.Status, op.Path)
		}
	})
	t.Run("legacy path only", func(t *testing.T) {
		ev := decodeOne(t, `{"changeType":"updated","resource":"/app/calls/`+cid+`/participants","resourceData":[]}`)
		if ev.Kind != model.EventRoster || ev.Path.CallID != cid || ev.ResourceURL != "" || ev.Resource == "" {
			t.Errorf("got %+v", ev)
		}
	})
	t.Run("empty roster is a roster", func(t *testing.T) {
		ev := decodeOne(t, rosterItem())
		if ev.Kind != model.EventRoster || ev.Participants == nil || len(ev.Participants) != 0 {
			t.Errorf("Kind %v Participants %#v, want an empty roster", ev.Kind, ev.Participants)
		}
	})
	t.Run("call id from resourceData", func(t *testing.T) {
		ev := decodeOne(t, `{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","id":"`+cid+`","state":"terminated"}}`)
		if ev.Path != (model.ResourcePath{CallID: cid, Kind: model.ResourceCall}) || ev.CallID() != cid {
			t.Errorf("Path %+v", ev.Path)
		}
	})
	t.Run("untyped data follows the path", func(t *testing.T) {
		call := decodeOne(t, `{"changeType":"updated","resourceUrl":"`+callURL+`","resourceData":{"state":"hold"}}`)
		op := decodeOne(t, `{"changeType":"updated","resourceUrl":"`+callURL+`/operations/o1","resourceData":{"status":"failed","resultInfo":{"code":500,"subcode":8500,"message":"boom"}}}`)
		roster := decodeOne(t, `{"changeType":"updated","resourceUrl":"`+partsURL+`","resourceData":[{"id":"p"}]}`)
		sessions := decodeOne(t, `{"changeType":"updated","resourceUrl":"`+callURL+`/ContentSharingSessions/s","resourceData":[{"id":"s"}]}`)
		if call.Kind != model.EventCall || call.Call.State != model.StateHold ||
			op.Kind != model.EventOperation || op.Operation.Status != model.OpFailed || op.Operation.ResultInfo.Subcode != 8500 ||
			roster.Kind != model.EventRoster || roster.Participants[0].ID != "p" ||
			sessions.Kind != model.EventContentSharing || sessions.Sessions[0].ID != "s" || sessions.Path.SubID != "s" {
			t.Errorf("got %+v\n%+v\n%+v\n%+v", call, op, roster, sessions)
		}
	})
	t.Run("odata type after other members", func(t *testing.T) {
		ev := decodeOne(t, `{"resourceData":[{"id":"p","isMuted":true,"@odata.type":"#microsoft.graph.participant"}],"resourceUrl":"`+callURL+`/operations/participants","changeType":"updated"}`)
		if ev.Kind != model.EventRoster || !ev.Participants[0].IsMuted || ev.Path.Kind != model.ResourceOperation {
			t.Errorf("got %+v", ev)
		}
	})
	t.Run("null means absent", func(t *testing.T) {
		ev := decodeOne(t, callItem(`"state":null,"chatInfo":null,"meetingInfo":null,"targets":null,"source":null,"subject":null,"resultInfo":{"code":null,"message":null}`))
		c := ev.Call
		if c.State != "" || c.ChatInfo != nil || c.MeetingInfo != nil || c.Targets != nil || c.Source != nil || c.ResultInfo == nil || c.ResultInfo.Code != 0 {
			t.Errorf("got %+v", c)
		}
		p := decodeOne(t, rosterItem(`{"id":null,"info":null,"mediaStreams":null,"isMuted":null,"removedState":null}`)).Participants[0]
		if p.ID != "" || p.Info.Identity != nil || p.MediaStreams != nil || p.IsMuted || p.RemovedState != nil {
			t.Errorf("got %+v", p)
		}
	})
	t.Run("unknown members are skipped", func(t *testing.T) {
		ev := decodeOne(t, callItem(`"newThing":{"deep":[{"a":1},null,"x"]},"state":"established","another":[]`))
		if ev.Call.State != model.StateEstablished {
			t.Errorf("got %+v", ev.Call)
		}
	})
}

func TestDecodeFullCall(t *testing.T) {
	item := callItem(`"state":"incoming","direction":"incoming","subject":"Weekly","callbackUri":"https://bot.contoso.com/callback",
		"callChainId":"d8ba8dbb-7e4f-4fc4-a1b8-aa7b3d3f9c3e","myParticipantId":"mp1","tenantId":"t1",
		"source":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"application":{"id":"app1","displayName":"Bot"}},"endpointType":"default","languageId":"en-US","region":"amer","countryCode":"US","participantId":"src1"},
		"targets":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"phone":{"id":"+12345678901"}},"endpointType":"default","replacesCallId":"rc1","participantId":"tp1","hidden":true,"languageId":"de-DE","region":"emea"}],
		"requestedModalities":["audio","video"],
		"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig","preFetchMedia":[{"uri":"https://cdn.contoso.com/beep.wav","resourceId":"f8971b04"}],"removeFromDefaultAudioGroup":false},
		"chatInfo":{"@odata.type":"#microsoft.graph.chatInfo","threadId":"19:t@thread.v2","messageId":"0","replyChainMessageId":"1"},
		"meetingInfo":{"@odata.type":"#microsoft.graph.joinMeetingIdMeetingInfo","joinMeetingId":"1234567","passcode":"psw123"},
		"callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions","isContentSharingNotificationEnabled":true,"isDeltaRosterEnabled":true,"hideBotAfterEscalation":false},
		"resultInfo":{"@odata.type":"#microsoft.graph.resultInfo","code":200,"subcode":5001,"message":"ok"}`)
	ev := decodeOne(t, item)
	// The same resource decoded by encoding/json is the reference.
	var wrapper struct {
		ResourceData model.Call `json:"resourceData"`
	}
	if err := json.Unmarshal([]byte(item), &wrapper); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(ev.Call)
	want, _ := json.Marshal(wrapper.ResourceData)
	if string(got) != string(want) {
		t.Errorf("call:\n got %s\nwant %s", got, want)
	}
	if ev.Call.MeetingInfo.Passcode == nil || *ev.Call.MeetingInfo.Passcode != "psw123" || ev.Call.CallOptions.HideBotAfterEscalation == nil {
		t.Errorf("optional members lost: %+v %+v", ev.Call.MeetingInfo, ev.Call.CallOptions)
	}
}

func TestDecodeEveryIdentityKind(t *testing.T) {
	kinds := []string{"user", "application", "applicationInstance", "phone", "guest", "device", "encrypted", "onPremises"}
	var members []string
	for _, k := range kinds {
		members = append(members, fmt.Sprintf(`%q:{"@odata.type":"#microsoft.graph.identity","id":"%s-id","displayName":"%s","tenantId":"t","identityProvider":"AAD"}`, k, k, k))
	}
	ev := decodeOne(t, rosterItem(`{"info":{"identity":{`+strings.Join(members, ",")+`}}}`))
	s := ev.Participants[0].Info.Identity
	got := map[string]*model.Identity{
		"user": s.User, "application": s.Application, "applicationInstance": s.ApplicationInstance, "phone": s.Phone,
		"guest": s.Guest, "device": s.Device, "encrypted": s.Encrypted, "onPremises": s.OnPremises,
	}
	for _, k := range kinds {
		id := got[k]
		if id == nil || id.ID != k+"-id" || id.DisplayName != k || id.TenantID != "t" || id.IdentityProvider != "AAD" {
			t.Errorf("%s: %+v", k, id)
		}
	}
}

func TestDecoderConcurrent(t *testing.T) {
	d := NewDecoder(DefaultLimits())
	bodies := [][]byte{compactPayload(t, rosterPayload), compactPayload(t, callStatePayload), testkit.Seed(t, "003_19_notification.json")}
	want := make([]*Batch, len(bodies))
	for i, body := range bodies {
		b, err := d.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = b
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for n := 0; n < 200; n++ {
				i := (g + n) % len(bodies)
				b, err := d.Decode(bodies[i])
				if err == nil && !reflect.DeepEqual(b, want[i]) {
					err = fmt.Errorf("body %d decoded differently under concurrency", i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	if d.MaxDepth != 32 || d.MaxItems != 1000 || d.MaxParticipants < 1000 || d.MaxStringLen != 16<<10 {
		t.Errorf("DefaultLimits() = %+v", d)
	}
	if got := (Limits{MaxItems: 7, MaxDepth: -1}).withDefaults(); got != (Limits{MaxDepth: 32, MaxItems: 7, MaxParticipants: d.MaxParticipants, MaxStringLen: d.MaxStringLen}) {
		t.Errorf("withDefaults = %+v", got)
	}
}

func TestDecodeLargeMeetingRoster(t *testing.T) {
	lim := DefaultLimits()
	ps := make([]string, lim.MaxParticipants+1)
	for i := range ps {
		ps[i] = fmt.Sprintf(`{"@odata.type":"#microsoft.graph.participant","id":"p%d","info":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"u%d","displayName":"User %d"}},"endpointType":"default"},"mediaStreams":[{"@odata.type":"#microsoft.graph.mediaStream","mediaType":"audio","sourceId":"%d","direction":"sendReceive","serverMuted":false}],"isMuted":false,"isInLobby":false}`, i, i, i, i)
	}
	d := NewDecoder(lim)
	b, err := d.Decode(doc(rosterItem(ps[:lim.MaxParticipants]...)))
	if err != nil || len(b.Events) != 1 || len(b.Events[0].Participants) != lim.MaxParticipants {
		t.Fatalf("roster at the limit: %v, %d events, rejected %v", err, len(b.Events), b.Rejected)
	}
	if p := b.Events[0].Participants[4999]; p.ID != "p4999" || p.Info.Identity.User.DisplayName != "User 4999" || p.MediaStreams[0].SourceID != "4999" {
		t.Errorf("last participant %+v", p)
	}
	b, err = d.Decode(doc(rosterItem(ps...)))
	if err != nil || len(b.Rejected) != 1 || !strings.Contains(b.Rejected[0].Reason, "more than 5000 participants") {
		t.Fatalf("roster over the limit: %v, %+v", err, b.Rejected)
	}
}

func TestZeroDecoder(t *testing.T) {
	var d Decoder
	b, err := d.Decode(doc(callItem(`"state":"established"`)))
	if err != nil || len(b.Events) != 1 {
		t.Fatalf("zero Decoder: %v %+v", err, b)
	}
	if _, err := d.Decode(doc(nest("[", "]", 40))); !errors.Is(err, ErrLimitExceeded) {
		t.Errorf("zero Decoder enforces no depth limit: %v", err)
	}
}

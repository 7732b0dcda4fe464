package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// fuzzLimits are small, so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxDepth: 12, MaxItems: 8, MaxParticipants: 4, MaxStringLen: 256}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testkit.SeedDir, "*.json"))
	media, _ := filepath.Glob(filepath.Join("testdata", "media", "*.json"))
	if len(files) == 0 || len(media) == 0 {
		f.Fatal("no seed payloads")
	}
	files = append(files, media...)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"value":null}`, `{"value":[]}`, `{"value":{}}`, `{"value":[1,"x",null,[],{}]}`,
		`{"value":[],"value":[]}`, `{"value":[]} {}`, "{\"value\":[\"\xff\"]}",
		string(doc(callItem(`"state":"Established","resultInfo":{"code":-1,"subcode":2147483647}`))),
		string(doc(rosterItem())), string(doc(rosterItem(participant(`"isMuted":"yes"`)))),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a/../b","resourceData":{}}`)),
		string(doc(`{"changeType":"updated","resourceUrl":"/communications/calls/a/x/y","resourceData":[{"@odata.type":"#x"}]}`)),
		string(doc(`{"changeType":"updated","resourceData":{"@odata.type":"#microsoft.graph.call","id":"a"}}`)),
		string(doc(`{"changeType":"updated","resourceUrl":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","sequenceNumber":3,"participants":[{"id":"p","removedState":{"reason":"x"},"rosterSequenceNumber":3}]}]}`)),
		`{"x":` + nest("[", "]", 11) + `,"value":[]}`,
		// Media shapes and the quirks Microsoft's examples show, and the
		// hostile variants next to them.
		string(doc(callItem(`"toneInfo":{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":1,"tone":"tone1"}`))),
		string(doc(callItem(`"toneInfo":{"sequenceId":"2","tone":"Pound"}`), callItem(`"toneInfo":{"tone":"tone10","sequenceId":-1}`))),
		string(doc(opItem(model.ODataRecordOp, `"status":"completed","completionReason":"maxRecordDurationReached","recordingLocation":"https://file.location/x","recordingAccessToken":"t","resultInfo":{"code":200,"subcode":8515}`))),
		string(doc(opItem(model.ODataSendDtmfTonesOp, `"completionReason":7,"resultInfo":{"code":"200","subcode":"5001"}`))),
		string(doc(callItem(`"resultInfo":{"code":"20x","subcode":"99999999999"}`), callItem(`"resultInfo":{"code":"-0","subcode":"007"}`))),
		string(doc(callItem(`"subject":1.5e300,"resultInfo":{"code":"` + strings.Repeat("9", 300) + `"}`))),
		string(doc(`{"changeType":"deleted","resourceUrl":"communications/calls/a/operations/b","resourceData":{"@odata.type":"#microsoft.graph.startHoldMusicOperation","status":"completed"}}`)),
		string(doc(`{"changeType":"updated","resource":"app/calls/a","resourceUrl":"communications/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","id":"b"}}`)),
		string(doc(`{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{"@odata.type":5,"id":7}}`)),
		`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","subject":"\u00e9\ud83d\ude00\\\"\\\\"}}]}`,
	} {
		f.Add([]byte(s))
	}
	d := NewDecoder(fuzzLimits)
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		b, err := d.Decode(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if b != nil {
				t.Fatalf("batch %+v with error %v", b, err)
			}
			if !errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrNotCommsNotifications) &&
				!errors.Is(err, ErrMissingValue) && !errors.Is(err, ErrLimitExceeded) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		checkBatch(t, b, countItems(t, body))

		// Nothing in the batch may alias the body: overwrite it and
		// decode the original again; the first batch must not have moved.
		for i := range body {
			body[i] = '"'
		}
		again, err := d.Decode(orig)
		if err != nil || !reflect.DeepEqual(b, again) {
			t.Fatalf("batch changed when its body was overwritten, or decoding is not deterministic (%v)", err)
		}
	})
}

// countItems counts the value array's items with encoding/json, for a body
// Decode accepted.
func countItems(t *testing.T, body []byte) int {
	var top map[string]json.RawMessage // exact member names, unlike a struct
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("Decode accepted what encoding/json rejects: %v", err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(top["value"], &items); err != nil || items == nil {
		t.Fatalf("Decode accepted a body whose value is %s", top["value"])
	}
	return len(items)
}

func checkBatch(t *testing.T, b *Batch, n int) {
	if len(b.Events)+len(b.Rejected) != n {
		t.Fatalf("%d events + %d rejected, for %d items", len(b.Events), len(b.Rejected), n)
	}
	seen := make([]bool, n)
	for _, ev := range b.Events {
		if ev.Index < 0 || ev.Index >= n || seen[ev.Index] {
			t.Fatalf("event index %d out of range or repeated", ev.Index)
		}
		seen[ev.Index] = true
		checkEvent(t, &ev)
	}
	for _, r := range b.Rejected {
		if r.Index < 0 || r.Index >= n || seen[r.Index] {
			t.Fatalf("rejected index %d out of range or repeated", r.Index)
		}
		seen[r.Index] = true
		if r.Reason == "" || len(r.Reason) > 400 {
			t.Fatalf("reason %q", r.Reason)
		}
	}
}

func checkEvent(t *testing.T, ev *model.Event) {
	if ev.Kind > model.EventContentSharing {
		t.Fatalf("event kind %d", ev.Kind)
	}
	switch ev.ChangeType {
	case model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted:
	default:
		t.Fatalf("change type %q", ev.ChangeType)
	}
	checkID(t, ev.Path.CallID)
	if ev.Path.SubID != "" {
		checkID(t, ev.Path.SubID)
	}
	if ev.Path.Kind > model.ResourceContentSharing {
		t.Fatalf("path kind %d", ev.Path.Kind)
	}
	has := [...]bool{
		model.EventUnknown:        ev.Raw != nil,
		model.EventCall:           ev.Call != nil,
		model.EventRoster:         ev.Participants != nil,
		model.EventRosterDelta:    ev.Delta != nil,
		model.EventOperation:      ev.Operation != nil,
		model.EventContentSharing: ev.Sessions != nil,
	}
	for k, h := range has {
		if h != (model.EventKind(k) == ev.Kind) {
			t.Fatalf("%v event with payload fields %v", ev.Kind, has)
		}
	}
	if ev.Kind == model.EventUnknown && !json.Valid(ev.Raw) {
		t.Fatalf("unknown event with invalid Raw %q", ev.Raw)
	}
	if ev.Call != nil {
		if ev.Call.State != "" && !ev.Call.State.Valid() {
			t.Fatalf("call state %q", ev.Call.State)
		}
		if ev.Call.ID != "" && ev.Call.ID != ev.Path.CallID {
			t.Fatalf("call id %q at path call id %q", ev.Call.ID, ev.Path.CallID)
		}
	}
	if op := ev.Operation; op != nil {
		switch op.Status {
		case "", model.OpNotStarted, model.OpRunning, model.OpCompleted, model.OpFailed:
		default:
			t.Fatalf("operation status %q", op.Status)
		}
	}
	if ev.Quirks >= 1<<len(model.AllQuirks) {
		t.Fatalf("quirks %b", ev.Quirks)
	}
	noSlash := ev.ResourceURL != "" && ev.ResourceURL[0] != '/' || ev.Resource != "" && ev.Resource[0] != '/'
	if noSlash != ev.Quirks.Has(model.QuirkPathWithoutSlash) {
		t.Fatalf("resourceUrl %q, resource %q with quirks %b", ev.ResourceURL, ev.Resource, ev.Quirks)
	}
	if ev.Call != nil && ev.Call.ToneInfo != nil {
		if ti := ev.Call.ToneInfo; ti.Tone != "" && ti.Tone.Key() == "" || ti.SequenceID < 0 {
			t.Fatalf("toneInfo %+v", ti)
		}
	}
	if n := len(ev.Participants); n > fuzzLimits.MaxParticipants {
		t.Fatalf("%d participants", n)
	}
}

// checkID asserts the property ParseResourcePath promises of an id.
func checkID(t *testing.T, id string) {
	if id == "" || len(id) > maxIDLen || strings.Contains(id, "..") || id == "." {
		t.Fatalf("bad id %q", id)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			t.Fatalf("id %q has byte %q", id, id[i])
		}
	}
}

func FuzzParseResourcePath(f *testing.F) {
	for _, s := range []string{
		"/communications/calls/2e1a0b00-2db4-4022-9570-243709c565ab",
		"/app/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/operations/eec3812a-fdc3-4fb4-825c-a06c9f35414e",
		"/communications/calls/7531d31f-d10d-44de-802f-c569dbca451c/operations/participants",
		"/communications/calls/421f4c00-4436-4c3a-9d9a-c4924cf98e67/contentsharingsessions",
		"/app/calls/a/participants/p", "/app/calls/a/participants", "/communications/calls/a/audioRoutingGroups/g",
		"/communications/calls/../x", "/communications/calls/a/..", "/communications/calls/%2e%2e/x", "/app/calls//x",
		"/communications/calls/a?b", "/communications/calls/" + strings.Repeat("x", 200), "", "/", "//", "/app/calls/.",
		"communications/calls/e141b67c-90fd-455d-858b-b48a40b9cc8d/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5",
		"app/calls/a/participants", "communications/calls/../x", "calls/x", "https://graph.microsoft.com/v1.0/communications/calls/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rp, err := ParseResourcePath(p)
		if lp, noSlash, lerr := parsePath(p, true); lerr == nil && noSlash {
			// A lenient success without '/' is exactly a strict
			// success with one (bar the length bound, which counts p).
			if sp, serr := ParseResourcePath("/" + p); len(p) < maxPathLen && (serr != nil || sp != lp) {
				t.Fatalf("%q parsed leniently to %+v, but with '/' to %+v, %v", p, lp, sp, serr)
			}
		}
		if err != nil {
			if rp != (model.ResourcePath{}) {
				t.Fatalf("%+v with error %v", rp, err)
			}
			return
		}
		// Without its '/', the same path parses leniently to the same
		// result; nothing else does.
		if lp, noSlash, lerr := parsePath(p[1:], true); len(p) > 1 && p[1] != '/' && (lerr != nil || !noSlash || lp != rp) {
			t.Fatalf("%q parsed to %+v, but leniently without its '/' to %+v, %v, %v", p, rp, lp, noSlash, lerr)
		}
		if lp, noSlash, lerr := parsePath(p, true); lerr != nil || noSlash || lp != rp {
			t.Fatalf("%q parsed to %+v, but leniently to %+v, %v, %v", p, rp, lp, noSlash, lerr)
		}
		checkID(t, rp.CallID)
		if strings.Contains(rp.CallID, "/") {
			t.Fatalf("call id %q has a slash", rp.CallID)
		}
		if rp.SubID != "" {
			checkID(t, rp.SubID)
		}
		if rp.Kind > model.ResourceContentSharing {
			t.Fatalf("kind %d", rp.Kind)
		}
		// The canonical form parses back to the same path, under either
		// prefix; an unknown shape still names its call.
		canon, ok := canonicalPath(rp)
		if !ok {
			canon = "/communications/calls/" + rp.CallID
			rp = model.ResourcePath{CallID: rp.CallID, Kind: model.ResourceCall}
		}
		for _, c := range []string{canon, strings.Replace(canon, "/communications/", "/app/", 1)} {
			back, err := ParseResourcePath(c)
			if err != nil || back != rp {
				t.Fatalf("%q parsed to %+v; its canonical form %q parses to %+v, %v", p, rp, c, back, err)
			}
		}
	})
}

// twoPassDecoder decodes every resourceData in two passes (validate, then
// decode), never in place.
func twoPassDecoder(l Limits) *Decoder {
	d := &Decoder{lim: l.withDefaults()}
	d.pool.New = func() any { st := newState(d.lim); st.twoPass = true; return st }
	return d
}

// FuzzInPlaceMatchesTwoPasses: decoding resourceData in the first pass
// gives the same batch, or the same error, as validating it first and
// decoding it in a second pass.
func FuzzInPlaceMatchesTwoPasses(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testkit.SeedDir, "*.json"))
	media, _ := filepath.Glob(filepath.Join("testdata", "media", "*.json"))
	for _, name := range append(files, media...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		string(doc(rosterItem(participant(`"isMuted":"yes"`)))),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","x":` + nest("[", "]", 40) + `}]}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","participants":[{"info":{"identity":{"user":{"id":"u","x":` + nest("[", "]", 6) + `}}}}]}]}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","info":7,"y":` + nest("[", "]", 40) + `}]}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","state":5,"state":"x"}}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","subject":"\xff"}}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","resultInfo":{"code":"x"},"z":[1,}}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"},"resourceUrl":"/communications/calls/b"}`)),
		string(doc(`{"changeType":"updated","resource":"/app/calls/a/participants/p","resourceData":[{"@odata.type":"#microsoft.graph.participant"}]}`)),
	} {
		f.Add([]byte(s))
	}
	// fuzzLimits, with the least depth at which decodeInPlace runs.
	lim := fuzzLimits
	lim.MaxDepth = inPlaceMinDepth
	one, two := NewDecoder(lim), twoPassDecoder(lim)
	f.Fuzz(func(t *testing.T, body []byte) {
		b1, err1 := one.Decode(body)
		b2, err2 := two.Decode(body)
		// A syntax error is found at another token when the value is
		// read token by token: the same refusal, located differently.
		same := fmt.Sprint(err1) == fmt.Sprint(err2) || (errors.Is(err1, ErrNotJSON) && errors.Is(err2, ErrNotJSON))
		if !same {
			t.Fatalf("in place: %v\ntwo passes: %v", err1, err2)
		}
		if !reflect.DeepEqual(b1, b2) {
			t.Fatalf("in place: %+v\ntwo passes: %+v", b1, b2)
		}
	})
}

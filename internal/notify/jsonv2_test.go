package notify

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/botd/botd/internal/model"
)

// v2Decoder is the alternative the issue "One owner for each concept" asks
// to measure: the model types' struct tags are the only list of Graph
// members, and github.com/go-json-experiment/json (encoding/json/v2)
// unmarshals resourceData into them. What is hand-written is only what
// the tags cannot say:
//
//   - MaxStringLen, numbers taken for strings (QuirkStringAsNumber) and
//     interning: an UnmarshalFromFunc for *string, which also rejects a
//     longer string and interns the known OData types and enumerations.
//   - quoted integers (QuirkNumberAsString), int32 bounds: UnmarshalFromFunc
//     for *int32 and *int64 (a string must be a plain integer, as in Decode).
//   - enumerations matched ignoring case, unknown values rejected:
//     UnmarshalFromFunc for *model.ChangeType, *CallState, *OperationStatus,
//     *Tone.
//   - MaxDepth: jsontext has no depth-limit option in this version
//     (WithDepthLimit is still a TODO), so nestingExceeds scans the body
//     after v2 has validated it.
//   - MaxItems (the value array and other arrays) and MaxParticipants: a
//     pass over the decoded lengths afterwards. v2 has no per-array limit,
//     so the slices are allocated before the check; memory is bounded by
//     the body size only.
//   - DeltaRoster has no struct tags in model; it is decoded through a
//     local tagged struct.
//
// Not reproduced: a null element of a participant or session list is a
// zero element for v2 (Decode rejects it); negative sequence numbers are
// accepted (Decode rejects them); item reasons carry v2's error text, not
// Decode's. It keeps quirks in the decoder, so it is not safe for
// concurrent use: it exists for the benchmark and the cross-check below.
type v2Decoder struct {
	lim     Limits
	opts    json.Options
	quirks  model.Quirk
	scratch []byte
	src     bytes.Buffer
	dec     jsontext.Decoder
}

func newV2Decoder(l Limits) *v2Decoder {
	d := &v2Decoder{lim: l.withDefaults()}
	d.opts = json.WithUnmarshalers(json.JoinUnmarshalers(
		json.UnmarshalFromFunc(d.str),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *int32) error {
			n, err := d.integer(dec, math.MinInt32, math.MaxInt32)
			*v = int32(n)
			return err
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *int64) error {
			n, err := d.integer(dec, math.MinInt64, math.MaxInt64)
			*v = n
			return err
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *model.ChangeType) error {
			return v2Enum(d, dec, v, changeTypes, "changeType")
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *model.CallState) error {
			return v2Enum(d, dec, v, model.CallStates, "call state")
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *model.OperationStatus) error {
			return v2Enum(d, dec, v, model.OperationStatuses, "operation status")
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *model.Tone) error {
			return v2Enum(d, dec, v, model.Tones, "tone")
		}),
	))
	return d
}

// bytes reads a string (unescaped, valid until the next read), a number's
// literal (noting QuirkStringAsNumber) or null. Other kinds are left to
// v2, which reports the type error.
func (d *v2Decoder) bytes(dec *jsontext.Decoder) (b []byte, null bool, err error) {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return nil, true, err
	case '0':
		v, err := dec.ReadValue()
		if err == nil {
			d.quirks |= model.QuirkStringAsNumber
		}
		return v, false, err
	case '"':
		v, err := dec.ReadValue()
		if err != nil {
			return nil, false, err
		}
		b, err = unquote(v, &d.scratch)
		return b, false, err
	}
	return nil, false, errors.ErrUnsupported
}

func (d *v2Decoder) str(dec *jsontext.Decoder, s *string) error {
	b, _, err := d.bytes(dec)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		*s = ""
		return nil
	}
	if sym, ok := symbols[string(b)]; ok {
		*s = sym
		return nil
	}
	if len(b) > d.lim.MaxStringLen {
		return fmt.Errorf("string of %d bytes exceeds the limit of %d", len(b), d.lim.MaxStringLen)
	}
	*s = string(b)
	return nil
}

func (d *v2Decoder) integer(dec *jsontext.Decoder, lo, hi int64) (int64, error) {
	switch k := dec.PeekKind(); k {
	case 'n':
		_, err := dec.ReadToken()
		return 0, err
	case '0', '"':
		v, err := dec.ReadValue()
		if err != nil {
			return 0, err
		}
		if k == '"' {
			if v, err = unquote(v, &d.scratch); err != nil {
				return 0, err
			}
			if len(v) > d.lim.MaxStringLen || !plainInt(v) {
				return 0, fmt.Errorf("string %s is not an integer", quoteTrunc(v))
			}
			d.quirks |= model.QuirkNumberAsString
		}
		n, err := parseInt(v)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%s is not an integer in [%d, %d]", quoteTrunc(v), lo, hi)
		}
		return n, nil
	}
	return 0, errors.ErrUnsupported
}

func v2Enum[T ~string](d *v2Decoder, dec *jsontext.Decoder, v *T, set []T, what string) error {
	if dec.PeekKind() != '"' && dec.PeekKind() != 'n' {
		return errors.ErrUnsupported
	}
	b, null, err := d.bytes(dec)
	if err != nil || null {
		*v = ""
		return err
	}
	e, ok := enumFold(string(b), set)
	if !ok {
		return fmt.Errorf("unknown %s %s", what, quoteTrunc(b))
	}
	*v = e
	return nil
}

// v2Item is a commsNotification's own members.
type v2Item struct {
	ChangeType   model.ChangeType `json:"changeType"`
	Resource     string           `json:"resource"`
	ResourceURL  string           `json:"resourceUrl"`
	CallbackURI  string           `json:"callbackUri"`
	ResourceData jsontext.Value   `json:"resourceData"`
}

// v2Delta is model.DeltaRoster with the tags model does not give it.
type v2Delta struct {
	ODataType      string              `json:"@odata.type"`
	SequenceNumber int64               `json:"sequenceNumber"`
	Participants   []model.Participant `json:"participants"`
}

func (d *v2Decoder) Decode(body []byte) (*Batch, error) {
	var doc struct {
		ODataType string           `json:"@odata.type"`
		Value     []jsontext.Value `json:"value"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		var se *jsontext.SyntacticError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotCommsNotifications, err)
	}
	if nestingExceeds(body, 0, d.lim.MaxDepth) {
		return nil, fmt.Errorf("%w: nesting deeper than %d levels", ErrLimitExceeded, d.lim.MaxDepth)
	}
	if doc.ODataType != "" && doc.ODataType != model.ODataCommsNotifications {
		return nil, fmt.Errorf("%w: @odata.type is %q", ErrNotCommsNotifications, doc.ODataType)
	}
	if doc.Value == nil {
		return nil, ErrMissingValue
	}
	if len(doc.Value) > d.lim.MaxItems {
		return nil, fmt.Errorf("%w: value has more than %d items", ErrLimitExceeded, d.lim.MaxItems)
	}
	b := &Batch{}
	for i, raw := range doc.Value {
		if reason := d.item(i, raw, b); reason != "" {
			b.Rejected = append(b.Rejected, ItemError{Index: i, Reason: reason})
		}
	}
	return b, nil
}

// item decodes one value item into b.Events, or returns why it cannot.
func (d *v2Decoder) item(i int, raw []byte, b *Batch) string {
	d.quirks = 0
	var it v2Item
	if err := json.Unmarshal(raw, &it, d.opts); err != nil {
		return err.Error()
	}
	if it.ChangeType == "" {
		return "changeType: missing"
	}
	ev := model.Event{Index: i, ChangeType: it.ChangeType, Resource: it.Resource, ResourceURL: it.ResourceURL, CallbackURI: it.CallbackURI}
	havePath := false
	for _, p := range []string{it.ResourceURL, it.Resource} {
		if p == "" {
			continue
		}
		rp, noSlash, err := parsePath(p, true)
		if err != nil {
			return err.Error()
		}
		if noSlash {
			d.quirks |= model.QuirkPathWithoutSlash
		}
		if havePath && rp != ev.Path {
			return "resource and resourceUrl address different resources"
		}
		ev.Path, havePath = rp, true
	}
	data := it.ResourceData
	if len(data) > 0 && data[0] == 'n' {
		data = nil
	}
	kind, odt, err := d.classify(data, ev.Path, havePath)
	if err != nil {
		return "resourceData: " + err.Error()
	}
	ev.Kind, ev.ODataType = kind, odt
	if err := d.data(&ev, data); err != nil {
		return "resourceData: " + err.Error()
	}
	if ev.Call != nil && ev.Call.ID != "" {
		switch {
		case havePath && ev.Call.ID != ev.Path.CallID:
			ev.Call.ID = ev.Path.CallID
			d.quirks |= model.QuirkIDMismatch
		case !havePath && !validID(ev.Call.ID):
			return "resourceData: call id is not a valid id"
		case !havePath:
			ev.Path, havePath = model.ResourcePath{CallID: ev.Call.ID, Kind: model.ResourceCall}, true
		}
	}
	if !havePath {
		return "no resource or resourceUrl, and no call id in resourceData"
	}
	if ev.Kind == model.EventUnknown {
		ev.Raw = raw // already a copy: v2 clones a jsontext.Value
	}
	ev.Quirks = d.quirks
	if b.Events == nil {
		b.Events = make([]model.Event, 0, 1)
	}
	b.Events = append(b.Events, ev)
	return ""
}

// peekType unmarshals the @odata.type of resourceData, or of its first
// element.
func (d *v2Decoder) peekType(data []byte) (string, error) {
	d.src = *bytes.NewBuffer(data)
	d.dec.Reset(&d.src)
	defer d.dec.Reset(&d.src)
	if data[0] == '[' {
		if _, err := d.dec.ReadToken(); err != nil || d.dec.PeekKind() != '{' {
			return "", err
		}
	}
	var head struct {
		ODataType string `json:"@odata.type"`
	}
	err := json.UnmarshalDecode(&d.dec, &head, d.opts)
	return head.ODataType, err
}

// classify follows event.go's classify.
func (d *v2Decoder) classify(data []byte, p model.ResourcePath, havePath bool) (model.EventKind, string, error) {
	if data == nil || (data[0] != '{' && data[0] != '[') {
		return model.EventUnknown, "", nil
	}
	odt, err := d.peekType(data)
	if err != nil {
		return 0, "", err
	}
	if havePath && p.Kind == model.ResourceOther {
		return model.EventUnknown, odt, nil
	}
	var pathKind model.EventKind
	if havePath {
		pathKind = pathEvents[p.Kind]
	}
	obj := data[0] == '{'
	switch {
	case obj && odt == model.ODataCall:
		return model.EventCall, odt, nil
	case obj && isOperationType(odt):
		return model.EventOperation, odt, nil
	case obj && odt == "" && (pathKind == model.EventCall || pathKind == model.EventOperation):
		return pathKind, odt, nil
	case !obj && odt == model.ODataParticipant, !obj && odt == "" && pathKind == model.EventRoster:
		if p.Kind == model.ResourceParticipants && p.SubID != "" {
			return model.EventUnknown, odt, nil
		}
		return model.EventRoster, odt, nil
	case !obj && odt == model.ODataDeltaParticipants:
		return model.EventRosterDelta, odt, nil
	case !obj && odt == model.ODataContentSharingSession, !obj && odt == "" && pathKind == model.EventContentSharing:
		return model.EventContentSharing, odt, nil
	case odt == "" && pathKind != model.EventUnknown:
		return 0, "", fmt.Errorf("resourceData of the wrong JSON type at a %s path", p.Kind)
	}
	return model.EventUnknown, odt, nil
}

// data unmarshals resourceData into the model type kind calls for, then
// checks the list lengths v2 cannot bound.
func (d *v2Decoder) data(ev *model.Event, data []byte) error {
	var err error
	switch ev.Kind {
	case model.EventCall:
		ev.Call = new(model.Call)
		if err = json.Unmarshal(data, ev.Call, d.opts); err == nil {
			err = d.checkCall(ev.Call)
		}
	case model.EventOperation:
		ev.Operation = new(model.Operation)
		if err = json.Unmarshal(data, ev.Operation, d.opts); err == nil {
			err = d.checkInvitees(ev.Operation.Participants)
		}
	case model.EventRoster:
		ev.Participants = []model.Participant{}
		if err = json.Unmarshal(data, &ev.Participants, d.opts); err == nil {
			err = d.checkRoster(ev.Participants)
		}
	case model.EventRosterDelta:
		var ds []v2Delta
		if err = json.Unmarshal(data, &ds, d.opts); err != nil {
			break
		}
		if len(ds) > 1 {
			return errors.New("more than one deltaParticipants element")
		}
		if len(ds) == 1 {
			ev.Delta = &model.DeltaRoster{SequenceNumber: ds[0].SequenceNumber, Participants: ds[0].Participants}
			err = d.checkRoster(ev.Delta.Participants)
		}
	case model.EventContentSharing:
		ev.Sessions = []model.ContentSharingSession{}
		if err = json.Unmarshal(data, &ev.Sessions, d.opts); err == nil && len(ev.Sessions) > d.lim.MaxItems {
			err = fmt.Errorf("more than %d sessions", d.lim.MaxItems)
		}
	}
	return err
}

func (d *v2Decoder) checkCall(c *model.Call) error {
	switch {
	case len(c.RequestedModalities) > d.lim.MaxItems:
		return fmt.Errorf("more than %d elements", d.lim.MaxItems)
	case c.MediaConfig != nil && len(c.MediaConfig.PreFetchMedia) > d.lim.MaxItems:
		return fmt.Errorf("more than %d media infos", d.lim.MaxItems)
	}
	return d.checkInvitees(c.Targets)
}

func (d *v2Decoder) checkInvitees(ps []model.InvitationParticipantInfo) error {
	if len(ps) > d.lim.MaxParticipants {
		return fmt.Errorf("more than %d participants", d.lim.MaxParticipants)
	}
	return nil
}

func (d *v2Decoder) checkRoster(ps []model.Participant) error {
	if len(ps) > d.lim.MaxParticipants {
		return fmt.Errorf("more than %d participants", d.lim.MaxParticipants)
	}
	for _, p := range ps {
		if len(p.MediaStreams) > d.lim.MaxItems {
			return fmt.Errorf("more than %d media streams", d.lim.MaxItems)
		}
		if p.ODataType != "" && p.ODataType != model.ODataParticipant {
			return fmt.Errorf("element of type %q in a list of %s", p.ODataType, model.ODataParticipant)
		}
	}
	return nil
}

// mediaPayload is the media operation of the V2-against-Decode benchmarks.
const mediaPayload = "call-playprompt-1.json"

// v2Payloads are the bodies both decoders are benchmarked on, compacted.
func v2Payloads(tb testing.TB) map[string][]byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "media", mediaPayload))
	if err != nil {
		tb.Fatal(err)
	}
	media := jsontext.Value(raw)
	if err := media.Compact(); err != nil {
		tb.Fatal(err)
	}
	m := map[string][]byte{
		"roster":    compactPayload(tb, rosterPayload),
		"callState": compactPayload(tb, callStatePayload),
		"media":     media,
	}
	return m
}

// TestV2MatchesDecode: on the benchmark payloads, every media example and
// the tolerated variants of quirks_test.go, the v2 decoder produces the
// same events as Decode, so the benchmark compares equal work.
func TestV2MatchesDecode(t *testing.T) {
	bodies := v2Payloads(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "media", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies[filepath.Base(f)] = raw
	}
	for i, item := range []string{
		callItem(`"state":"terminated","resultInfo":{"code":"200","subcode":"5001","message":"The conversation has ended."}`),
		opItem(model.ODataPlayPromptOp, `"resultInfo":{"code":"-1","subcode":"0"}`),
		callItem(`"resultInfo":{"code":"2147483647","subcode":"-2147483648"}`),
		callItem(`"resultInfo":{"code":"\u0032\u0030\u0030"}`),
		`{"changeType":"updated","resourceUrl":"` + partsURL + `","resourceData":[{"@odata.type":"#microsoft.graph.deltaParticipants","sequenceNumber":"7","participants":[{"id":"p","rosterSequenceNumber":"7"}]}]}`,
		callItem(`"toneInfo":{"sequenceId":"12","tone":"star"}`),
		callItem(`"subject":7`),
		callItem(`"state":"Established"`),
	} {
		bodies[fmt.Sprintf("quirk %d", i)] = []byte(`{"value":[` + item + `]}`)
	}
	d, v2 := NewDecoder(DefaultLimits()), newV2Decoder(DefaultLimits())
	events := 0
	defer func() { t.Logf("%d bodies, %d events compared", len(bodies), events) }()
	for name, body := range bodies {
		want, err := d.Decode(body)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		got, err := v2.Decode(body)
		if err != nil {
			t.Errorf("%s: v2: %v", name, err)
			continue
		}
		if len(want.Rejected) != 0 || len(got.Rejected) != 0 {
			t.Errorf("%s: rejected: Decode %v, v2 %v", name, want.Rejected, got.Rejected)
			continue
		}
		events += len(want.Events)
		if !reflect.DeepEqual(got.Events, want.Events) {
			t.Errorf("%s:\n v2     %+v\n Decode %+v", name, got.Events, want.Events)
		}
	}
}

// TestV2Limits: the limits the v2 decoder enforces reject what Decode
// rejects.
func TestV2Limits(t *testing.T) {
	lim := Limits{MaxDepth: 8, MaxItems: 2, MaxParticipants: 2, MaxStringLen: 8}
	p := `{"id":"p"}`
	for _, tt := range []struct {
		name, body string
		doc        error // else the item is rejected
	}{
		{"depth", `{"value":[` + callItem(`"x":[[[[[[[]]]]]]]`) + `]}`, ErrLimitExceeded},
		{"items", `{"value":[` + strings.Repeat(callItem("")+",", 2) + callItem("") + `]}`, ErrLimitExceeded},
		{"participants", `{"value":[` + rosterItem(p, p, p) + `]}`, nil},
		{"string", `{"value":[` + callItem(`"subject":"123456789"`) + `]}`, nil},
		{"quoted code not plain", `{"value":[` + callItem(`"resultInfo":{"code":"0200"}`) + `]}`, nil},
		{"code beyond int32", `{"value":[` + callItem(`"resultInfo":{"code":2147483648}`) + `]}`, nil},
		{"unknown state", `{"value":[` + callItem(`"state":"gone"`) + `]}`, nil},
	} {
		b, err := newV2Decoder(lim).Decode([]byte(tt.body))
		switch {
		case tt.doc != nil && !errors.Is(err, tt.doc):
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.doc)
		case tt.doc == nil && (err != nil || len(b.Rejected) != 1):
			t.Errorf("%s: err %v, batch %+v, want the item rejected", tt.name, err, b)
		}
	}
}

func benchV2(b *testing.B, name string) {
	benchDecoder(b, newV2Decoder(DefaultLimits()).Decode, v2Payloads(b)[name])
}

func benchDecodeBody(b *testing.B, name string) {
	benchDecoder(b, NewDecoder(DefaultLimits()).Decode, v2Payloads(b)[name])
}

func BenchmarkV2Roster(b *testing.B)              { benchV2(b, "roster") }
func BenchmarkV2CallState(b *testing.B)           { benchV2(b, "callState") }
func BenchmarkV2Media(b *testing.B)               { benchV2(b, "media") }
func BenchmarkDecodeMediaPlayPrompt(b *testing.B) { benchDecodeBody(b, "media") }

// benchV2Floor is the floor of the v2 approach on the media payload: one
// v2 Unmarshal of its resourceData alone into model.Operation (no
// envelope, no dispatch, no item), with the limit and quirk unmarshalers
// (opts) or with none.
func benchV2Floor(b *testing.B, opts bool) {
	var env struct {
		Value []struct {
			ResourceData jsontext.Value `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.Unmarshal(v2Payloads(b)["media"], &env); err != nil {
		b.Fatal(err)
	}
	data := env.Value[0].ResourceData
	d := newV2Decoder(DefaultLimits())
	var o []json.Options
	if opts {
		o = append(o, d.opts)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		op := new(model.Operation)
		if err := json.Unmarshal(data, op, o...); err != nil || op.Status != model.OpCompleted {
			b.Fatalf("Unmarshal: %v, %+v", err, op)
		}
	}
}

func BenchmarkV2MediaResourceDataOnly(b *testing.B)     { benchV2Floor(b, true) }
func BenchmarkV2MediaResourceDataOnlyBare(b *testing.B) { benchV2Floor(b, false) }

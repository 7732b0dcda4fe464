package callstate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newClock is a settable clock for tests that call pass directly.
func newClock() *testkit.Clock { return testkit.NewClock(t0) }

// sinkRecorder collects what Sink gets.
type sinkRecorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *sinkRecorder) sink(cs []Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, cs...)
}

func (r *sinkRecorder) all() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Change(nil), r.changes...)
}

// tb is what the helpers need of a test: testing.TB and *rapid.T have it.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// testConfig is DefaultConfig with the non-zero fields of c laid over it:
// a test names only the settings it is about.
func testConfig(c Config) Config {
	out := DefaultConfig()
	dst, src := reflect.ValueOf(&out).Elem(), reflect.ValueOf(c)
	for i := range src.NumField() {
		if f := src.Field(i); !f.IsZero() {
			dst.Field(i).Set(f)
		}
	}
	return out
}

// newStore returns a Store on a fresh registry, logging to the test. cfg
// is laid over DefaultConfig (testConfig).
func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(testConfig(cfg), zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustApply applies events in order and returns all changes.
func mustApply(t tb, s *Store, evs ...*model.Event) []Change {
	t.Helper()
	var out []Change
	for _, ev := range evs {
		cs, err := s.Apply(ev)
		if err != nil {
			t.Fatalf("Apply(%s %s): %v", ev.Kind, ev.CallID(), err)
		}
		out = append(out, cs...)
	}
	return out
}

func mustCall(t tb, s *Store, id string) CallView {
	t.Helper()
	v, ok := s.Call(id)
	if !ok {
		t.Fatalf("Call(%q) not found", id)
	}
	return v
}

func kinds(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Kind.String()
	}
	return out
}

func kindsString(cs []Change) string { return strings.Join(kinds(cs), ",") }

func ignored(s *Store, r reason) int { return int(testutil.ToFloat64(s.m.ignored[r])) }

// histCount returns a histogram's sample count, summed over its labels.
func histCount(t testing.TB, c prometheus.Collector) uint64 {
	t.Helper()
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

// Event builders.

func user(id string) *model.IdentitySet {
	return &model.IdentitySet{User: &model.Identity{ID: id}}
}

func participant(id, userID string) model.Participant {
	return model.Participant{ID: id, Info: model.ParticipantInfo{Identity: user(userID)}}
}

func rosterEvent(callID string, ps ...model.Participant) *model.Event {
	return &model.Event{
		ChangeType: model.ChangeUpdated, Kind: model.EventRoster, ODataType: model.ODataParticipant,
		Path:         model.ResourcePath{CallID: callID, Kind: model.ResourceParticipants},
		Participants: ps,
	}
}

func deltaEvent(callID string, seq int64, ps ...model.Participant) *model.Event {
	return &model.Event{
		ChangeType: model.ChangeUpdated, Kind: model.EventRosterDelta, ODataType: model.ODataDeltaParticipants,
		Path:  model.ResourcePath{CallID: callID, Kind: model.ResourceParticipants},
		Delta: &model.DeltaRoster{SequenceNumber: seq, Participants: ps},
	}
}

func opEvent(callID string, ct model.ChangeType, op *model.Operation) *model.Event {
	sub := op.ID
	if sub == "" {
		sub = "participants"
	}
	return &model.Event{
		ChangeType: ct, Kind: model.EventOperation, ODataType: op.ODataType,
		Path:      model.ResourcePath{CallID: callID, Kind: model.ResourceOperation, SubID: sub},
		Operation: op,
	}
}

// Seed payloads, decoded as internal/notify would (test-only, minimal).

// loadJSON decodes a request or response payload.
func loadJSON(t testing.TB, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(testkit.Seed(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func loadOperation(t testing.TB, name string) *model.Operation {
	var op model.Operation
	loadJSON(t, name, &op)
	op.Status = op.Status.Normalize()
	return &op
}

func loadInviteRequest(t testing.TB, name string) (cc string, ps []model.InvitationParticipantInfo) {
	var req struct {
		Participants  []model.InvitationParticipantInfo `json:"participants"`
		ClientContext string                            `json:"clientContext"`
	}
	loadJSON(t, name, &req)
	return req.ClientContext, req.Participants
}

// loadEvents decodes a commsNotifications payload into events.
func loadEvents(t testing.TB, name string) []*model.Event {
	t.Helper()
	var body struct {
		Value []struct {
			ChangeType   model.ChangeType `json:"changeType"`
			Resource     string           `json:"resource"`
			ResourceURL  string           `json:"resourceUrl"`
			CallbackURI  string           `json:"callbackUri"`
			ResourceData json.RawMessage  `json:"resourceData"`
		} `json:"value"`
	}
	loadJSON(t, name, &body)
	var out []*model.Event
	for i, v := range body.Value {
		ev := &model.Event{
			Index: i, ChangeType: v.ChangeType, Resource: v.Resource, ResourceURL: v.ResourceURL,
			CallbackURI: v.CallbackURI,
		}
		path := v.ResourceURL
		if path == "" {
			path = v.Resource
		}
		ev.Path = parsePath(path)
		data := bytes.TrimSpace(v.ResourceData)
		var head struct {
			ODataType string `json:"@odata.type"`
		}
		first := data
		if len(data) > 0 && data[0] == '[' {
			var arr []json.RawMessage
			must(t, json.Unmarshal(data, &arr))
			if len(arr) > 0 {
				first = arr[0]
			}
		}
		must(t, json.Unmarshal(first, &head))
		ev.ODataType = head.ODataType
		switch {
		case head.ODataType == model.ODataCall:
			ev.Kind = model.EventCall
			ev.Call = new(model.Call)
			must(t, json.Unmarshal(data, ev.Call))
		case head.ODataType == model.ODataParticipant:
			ev.Kind = model.EventRoster
			must(t, json.Unmarshal(data, &ev.Participants))
		case head.ODataType == model.ODataDeltaParticipants:
			var ds []struct {
				SequenceNumber int64               `json:"sequenceNumber"`
				Participants   []model.Participant `json:"participants"`
			}
			must(t, json.Unmarshal(data, &ds))
			ev.Kind = model.EventRosterDelta
			ev.Delta = &model.DeltaRoster{SequenceNumber: ds[0].SequenceNumber, Participants: ds[0].Participants}
		case head.ODataType == model.ODataContentSharingSession:
			ev.Kind = model.EventContentSharing
			must(t, json.Unmarshal(data, &ev.Sessions))
		case strings.HasSuffix(head.ODataType, "Operation"):
			ev.Kind = model.EventOperation
			ev.Operation = new(model.Operation)
			must(t, json.Unmarshal(data, ev.Operation))
			ev.Operation.Status = ev.Operation.Status.Normalize()
		default:
			ev.Kind = model.EventUnknown
		}
		out = append(out, ev)
	}
	return out
}

func parsePath(p string) model.ResourcePath {
	for _, prefix := range []string{"/communications/calls/", "/app/calls/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			seg := strings.Split(rest, "/")
			rp := model.ResourcePath{CallID: seg[0], Kind: model.ResourceCall}
			if len(seg) > 1 {
				switch strings.ToLower(seg[1]) {
				case "participants":
					rp.Kind = model.ResourceParticipants
				case "operations":
					rp.Kind = model.ResourceOperation
				case "contentsharingsessions":
					rp.Kind = model.ResourceContentSharing
				default:
					rp.Kind = model.ResourceOther
				}
			}
			if len(seg) > 2 {
				rp.SubID = seg[2]
			}
			return rp
		}
	}
	return model.ResourcePath{}
}

func must(t tb, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func zerologNop() zerolog.Logger { return zerolog.Nop() }

// lookupForTest returns the call's internals; the caller must not race
// with the Store.
func (s *Store) lookupForTest(id string) *call {
	sh := s.shardFor(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.calls[id]
}

package callstate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// FuzzApplySequence drives a Store with any sequence of events and botd
// calls over a few call ids, and checks what must always hold: nothing
// panics, terminated stays terminated, the bounds hold, and the gauges
// agree with the calls.
func FuzzApplySequence(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte{0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed})
	f.Add([]byte{3, 3, 3, 0x13, 0x23, 0x33, 0x43, 0x53, 0x63, 0x0c, 0x0c, 0x0c})
	states := model.CallStates
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newClock()
		s, err := New(testConfig(Config{Now: clk.Now, MaxCalls: 3, DeltaHoldMax: 4, MaxTransitions: 5,
			MaxOperationsPerCall: 3, Retention: time.Minute, DeltaGapTimeout: 5 * time.Second,
			OperationTimeout: 10 * time.Second}), zerolog.Nop(), nil)
		must(t, err)
		terminated := map[string]bool{}
		for i := 0; i+1 < len(data); i += 2 {
			op, arg := data[i], data[i+1]
			id := fmt.Sprintf("c%d", op>>4&3)
			p := participant(fmt.Sprintf("p%d", arg&3), fmt.Sprintf("u%d", arg&3))
			p.IsMuted = arg&4 != 0
			if arg&8 != 0 {
				p.ID = ""
			}
			switch op & 15 {
			case 0, 1:
				s.Apply(testkit.CallEvent(id, model.ChangeUpdated, states[int(arg)%len(states)]))
			case 2:
				s.Apply(testkit.CallEvent(id, model.ChangeDeleted, ""))
			case 3:
				if arg&16 != 0 {
					p = removed(p)
				}
				s.Apply(deltaEvent(id, int64(arg>>5), p))
			case 4:
				s.Apply(rosterEvent(id, p))
			case 5:
				s.TrackOperation(id, OperationRecord{Type: "invite", ClientContext: fmt.Sprint(arg & 3)})
			case 6:
				s.OperationSent(id, fmt.Sprint(arg&3), &model.Operation{ID: fmt.Sprintf("op%d", arg&7), Status: model.OpRunning})
			case 7:
				ct := model.ChangeUpdated
				if arg&16 != 0 {
					ct = model.ChangeDeleted
				}
				opID := fmt.Sprintf("op%d", arg&7)
				if arg&8 != 0 {
					opID = ""
				}
				s.Apply(opEvent(id, ct, &model.Operation{ID: opID, ClientContext: fmt.Sprint(arg & 3), Status: model.OpCompleted}))
			case 8:
				s.FailOperation(id, fmt.Sprint(arg&3), nil, "test")
			case 9:
				s.MarkTerminated(id, "test")
			case 10:
				s.ReplaceRoster(id, []model.Participant{p})
			case 11:
				s.TrackCall(&model.Call{ID: id, State: states[int(arg)%len(states)]})
			case 12:
				clk.Advance(time.Duration(arg) * time.Second)
				s.pass(nil)
			case 13:
				ct := []model.ChangeType{model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted}[arg%3]
				s.Apply(&model.Event{ChangeType: ct, Kind: model.EventContentSharing, Path: model.ResourcePath{CallID: id},
					Sessions: []model.ContentSharingSession{{ID: fmt.Sprint(arg & 3)}}})
			default:
				s.Apply(&model.Event{Kind: model.EventUnknown, Path: model.ResourcePath{CallID: id}})
			}
			checkInvariants(t, s, terminated)
		}
	})
}

func checkInvariants(t *testing.T, s *Store, terminated map[string]bool) {
	t.Helper()
	var calls, participants float64
	live := map[string]bool{}
	for _, sum := range s.Calls() {
		v := mustCall(t, s, sum.ID)
		live[v.ID] = true
		calls++
		if v.State != model.StateTerminated {
			participants += float64(len(v.Participants))
		} else {
			terminated[v.ID] = true
		}
		if terminated[v.ID] && v.State != model.StateTerminated {
			t.Fatalf("%s left terminated for %s", v.ID, v.State)
		}
		if len(v.Transitions) > s.cfg.MaxTransitions || len(v.Operations) > s.cfg.MaxOperationsPerCall {
			t.Fatalf("%s over bounds: %d transitions, %d operations", v.ID, len(v.Transitions), len(v.Operations))
		}
		if c := s.lookupForTest(v.ID); len(c.delta.held()) > s.cfg.DeltaHoldMax {
			t.Fatalf("%s holds %d deltas", v.ID, len(c.delta.held()))
		}
		r, _ := s.Record(v.ID)
		for i := range r.Transitions {
			checkTransitionJSON(t, &r.Transitions[i])
		}
		seen := map[string]bool{}
		for _, p := range v.Participants {
			k := participantKey(&p)
			if seen[k] {
				t.Fatalf("%s: participant %q twice", v.ID, k)
			}
			seen[k] = true
		}
	}
	for id := range terminated {
		if !live[id] {
			delete(terminated, id) // swept; may come back fresh
		}
	}
	if int64(calls) != s.ncalls.Load() || calls > float64(s.cfg.MaxCalls) {
		t.Fatalf("%v calls listed, ncalls %d", calls, s.ncalls.Load())
	}
	var gauge float64
	for _, g := range s.m.callsByState {
		gauge += testutil.ToFloat64(g)
	}
	if gauge != calls {
		t.Fatalf("botd_calls sums to %v, %v calls", gauge, calls)
	}
	if got := testutil.ToFloat64(s.m.participants); got != participants {
		t.Fatalf("botd_call_participants = %v, rosters hold %v", got, participants)
	}
}

// checkTransitionJSON fails t unless tr's AppendJSON reads back as what
// encoding/json writes of tr from its tags reads back as (with the cause
// made text), and leaves what dst held; and json.Marshal writes the same.
func checkTransitionJSON(t *testing.T, tr *Transition) {
	t.Helper()
	// What encoding/json gives from the tags alone, with the cause made
	// text as views make it.
	type plain Transition
	p := plain(*tr)
	if p.Cause == "" {
		p.Cause = tr.origin.String()
	}
	want, werr := json.Marshal(p)
	got, gerr := tr.AppendJSON([]byte("prefix"))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal: %v, AppendJSON: %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("AppendJSON lost what dst held: %.40q", got)
	}
	got = got[len("prefix"):]
	if !json.Valid(got) {
		t.Fatalf("AppendJSON wrote invalid JSON: %s", got)
	}
	var a, b Transition
	must(t, json.Unmarshal(want, &a))
	must(t, json.Unmarshal(got, &b))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("AppendJSON reads back as\n%+v\nencoding/json as\n%+v\n(%s\n%s)", b, a, got, want)
	}
	m, err := json.Marshal(tr)
	must(t, err)
	var c Transition
	must(t, json.Unmarshal(m, &c))
	if !reflect.DeepEqual(a, c) {
		t.Fatalf("json.Marshal reads back as\n%+v\nwant\n%+v", c, a)
	}
}

// FuzzTransitionJSON: a transition written without reflection reads
// back as encoding/json's does, whatever its text and time, and a time
// encoding/json refuses is refused.
func FuzzTransitionJSON(f *testing.F) {
	f.Add("established", "hold", "notification value[0] changeType updated", "", false, int64(1767225600123456789), 0)
	f.Add("", "terminated", "botd: <hang up> & \"quoted\"\n", "stale \u2028 \xff", true, int64(-1), 3600)
	f.Add("a\x00b", "\t", "", "r", true, int64(math.MaxInt64), -7)
	f.Fuzz(func(t *testing.T, from, to, cause, reason string, ignored bool, unixNano int64, offset int) {
		at := time.Unix(0, unixNano).In(time.FixedZone("z", offset%(48*3600)))
		if offset%7 == 0 {
			// Years outside 0-9999, which encoding/json refuses.
			at = at.AddDate(int(unixNano%20000), 0, 0)
		}
		tr := Transition{From: model.CallState(from), To: model.CallState(to), At: at, Cause: cause, Ignored: ignored, Reason: reason}
		checkTransitionJSON(t, &tr)
	})
}

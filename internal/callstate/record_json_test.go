package callstate

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/botd/botd/internal/model"
)

// fullRecord is a record with every member set: TestRecordAppendJSON
// fails when Record gains a member this does not set, so that
// AppendJSON, which names each member, is checked for it too.
func fullRecord() Record {
	t0 := time.Date(2026, 12, 4, 21, 0, 0, 123456789, time.FixedZone("x", 3600))
	return Record{
		Version: RecordVersion,
		Call: model.Call{ID: "c1", State: model.StateEstablished, Direction: "incoming", TenantID: "t",
			ChatInfo: &model.ChatInfo{ThreadID: "19:x"}, ResultInfo: &model.ResultInfo{Code: 200, Subcode: 5001, Message: "a \"quoted\" \u2028 message"}},
		CreatedByBot:         true,
		CreatedAt:            t0,
		UpdatedAt:            t0.Add(time.Second),
		EstablishedAt:        t0.Add(2 * time.Second),
		TerminatedAt:         t0.Add(3 * time.Second),
		Transitions:          []Transition{{From: model.StateEstablishing, To: model.StateEstablished, At: t0, Cause: "notification"}, {To: model.StateTerminated, At: t0, Ignored: true, Reason: "stale"}},
		FirstTransition:      7,
		Skipped:              0, // never encoded
		Participants:         []model.Participant{{ID: "p1"}},
		Operations:           []OperationView{{ID: "op1", Type: "invite", Status: model.OperationStatus("running"), CreatedAt: t0}},
		Sessions:             []model.ContentSharingSession{{ID: "s1"}},
		Tones:                []ToneView{{Key: "1", SequenceID: 3, At: t0}},
		RosterNeedsResync:    true,
		RosterSequenceNumber: 42,
	}
}

// sameDecoded fails t unless a and b decode to the same Record.
func sameDecoded(t *testing.T, a, b []byte) {
	t.Helper()
	var ra, rb Record
	if err := json.Unmarshal(a, &ra); err != nil {
		t.Fatalf("AppendJSON wrote what does not decode: %v\n%s", err, a)
	}
	if err := json.Unmarshal(b, &rb); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("AppendJSON and encoding/json differ:\n%s\n%s", a, b)
	}
}

// TestRecordAppendJSON: AppendJSON and encoding/json give what decodes to
// the same record, with every member set, with none, and with each alone.
func TestRecordAppendJSON(t *testing.T) {
	full := fullRecord()
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Skipped" && v.Field(i).IsZero() {
			t.Fatalf("fullRecord leaves %s unset: set it, and check that AppendJSON writes it", name)
		}
	}
	cases := []Record{full, {}}
	for i := range v.NumField() {
		one := Record{}
		reflect.ValueOf(&one).Elem().Field(i).Set(v.Field(i))
		cases = append(cases, one)
	}
	for _, r := range cases {
		got, err := r.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:6]) != "prefix" {
			t.Fatalf("AppendJSON did not append: %s", got)
		}
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		sameDecoded(t, got[6:], want)
	}
}

// FuzzRecordAppendJSON: for any times, numbers, flags and text,
// AppendJSON fails where encoding/json does, and otherwise gives what
// decodes to the same record.
func FuzzRecordAppendJSON(f *testing.F) {
	f.Add(int64(0), int64(1), uint64(3), int64(-5), true, "c1", "hold", "cause")
	f.Add(int64(-1<<63), int64(1<<62), uint64(0), int64(0), false, "", "\xff", "\u2028")
	f.Fuzz(func(t *testing.T, created, ended int64, first uint64, seq int64, flag bool, id, state, cause string) {
		r := fullRecord()
		r.Call.ID, r.Call.State = id, model.CallState(state)
		r.CreatedAt = time.Unix(0, created).UTC()
		r.TerminatedAt = time.Unix(created/1e9*7, ended) // years well outside 0-9999 too
		r.EstablishedAt = time.Time{}
		r.FirstTransition, r.RosterSequenceNumber = first, seq
		r.CreatedByBot, r.RosterNeedsResync = flag, !flag
		r.Transitions[0].Cause = cause
		if flag {
			r.Participants, r.Tones = nil, nil
		}
		got, gerr := r.AppendJSON(nil)
		want, werr := json.Marshal(&r)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("AppendJSON error %v, encoding/json %v", gerr, werr)
		}
		if gerr == nil {
			sameDecoded(t, got, want)
		}
	})
}

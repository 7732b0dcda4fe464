package callstate

import (
	"slices"
	"testing"

	"github.com/botd/botd/internal/model"
)

// The create-call page (seed 003): a P2P call botd creates, whose
// "established" notification carries another call id (an error in the
// page), so it lands on a call of its own.
func TestSeedCreateCallP2P(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	var res model.Call
	loadJSON(t, "003_02_response.json", &res)
	const id, otherID = "2e1a0b00-2db4-4022-9570-243709c565ab", "2e1a0b00-b3c5-4b0f-99b3-c133bc1e6116"

	cs, err := s.TrackCall(&res)
	must(t, err)
	if got, want := kindsString(cs), "call_tracked,call_state_changed"; got != want {
		t.Fatalf("TrackCall changes = %s, want %s", got, want)
	}
	if cs := mustApply(t, s, loadEvents(t, "003_03_notification.json")...); len(cs) != 0 {
		t.Fatalf("repeated establishing: changes %s, want none", kindsString(cs))
	}
	cs = mustApply(t, s, loadEvents(t, "003_04_notification.json")...)
	if got, want := kindsString(cs), "call_tracked,call_state_changed,call_established"; got != want {
		t.Fatalf("003_04 changes = %s, want %s", got, want)
	}

	v := mustCall(t, s, id)
	if v.State != model.StateEstablishing || !v.CreatedByBot || v.Direction != "outgoing" ||
		v.CallChainID != "d8217646-3110-40b1-bae6-e9ac6c3a9f74" ||
		v.MyParticipantID != "499ff390-7a72-40e8-83a0-8fac6295ae7e" ||
		v.CallbackURI != "https://bot.contoso.com/callback" || len(v.Targets) != 1 || v.Source == nil {
		t.Errorf("tracked call = %+v", v)
	}
	if len(v.Transitions) != 1 || v.Transitions[0].Cause != "botd: create call response" {
		t.Errorf("transitions = %+v, want one from the response", v.Transitions)
	}
	if got := ignored(s, reasonDuplicateState); got != 1 {
		t.Errorf("duplicate_state = %d, want 1", got)
	}
	o := mustCall(t, s, otherID)
	if o.State != model.StateEstablished || o.CreatedByBot || o.Direction != "outgoing" || o.EstablishedAt.IsZero() {
		t.Errorf("other call = %+v", o)
	}
	if got := o.Transitions[0].Cause; got != "notification value[0] changeType updated" {
		t.Errorf("cause = %q", got)
	}
}

// Joining a meeting (003_16..18): "establishing" and "established" may
// arrive in either order; the call ends established either way.
func TestSeedCreateCallMeetingEitherOrder(t *testing.T) {
	const id = "2f1a1100-b174-40a0-aba7-0b405e01ed92"
	for _, tc := range []struct {
		name        string
		files       []string
		transitions int
		regressions int
	}{
		{"in order", []string{"003_16_notification.json", "003_17_notification.json", "003_18_notification.json"}, 2, 0},
		{"established first", []string{"003_17_notification.json", "003_16_notification.json", "003_18_notification.json"}, 2, 1},
		{"roster first", []string{"003_18_notification.json", "003_17_notification.json", "003_16_notification.json"}, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{Now: newClock().Now})
			for _, f := range tc.files {
				mustApply(t, s, loadEvents(t, f)...)
			}
			v := mustCall(t, s, id)
			if v.State != model.StateEstablished {
				t.Errorf("state = %s, want established", v.State)
			}
			if v.ChatInfo == nil || v.ChatInfo.ThreadID != "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2" {
				t.Errorf("chatInfo = %+v", v.ChatInfo)
			}
			if v.MeetingInfo == nil || v.MeetingInfo.Organizer.User.DisplayName != "Bob" {
				t.Errorf("meetingInfo = %+v", v.MeetingInfo)
			}
			if len(v.Participants) != 2 || !v.Participants[0].IsMuted || v.Participants[1].Info.Identity.Application == nil {
				t.Errorf("participants = %+v", v.Participants)
			}
			if len(v.Transitions) != tc.transitions {
				t.Errorf("transitions = %+v, want %d", v.Transitions, tc.transitions)
			}
			if got := ignored(s, reasonStateRegression); got != tc.regressions {
				t.Errorf("state_regression = %d, want %d", got, tc.regressions)
			}
			if tc.regressions > 0 {
				last := v.Transitions[len(v.Transitions)-1]
				if !last.Ignored || last.To != model.StateEstablishing || last.Reason != "state_regression" {
					t.Errorf("last transition = %+v, want an ignored regression", last)
				}
			}
		})
	}
}

// Content sharing (003_05..07): started, updated, ended.
func TestSeedContentSharing(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	const id = "421f4c00-4436-4c3a-9d9a-c4924cf98e67"
	cs := mustApply(t, s, loadEvents(t, "003_05_notification.json")...)
	if got, want := kindsString(cs), "call_tracked,content_sharing_started"; got != want {
		t.Fatalf("created: %s, want %s", got, want)
	}
	if v := mustCall(t, s, id); len(v.ContentSharingSessions) != 1 {
		t.Fatalf("sessions = %+v", v.ContentSharingSessions)
	}
	cs = mustApply(t, s, loadEvents(t, "003_06_notification.json")...)
	cs = append(cs, mustApply(t, s, loadEvents(t, "003_07_notification.json")...)...)
	if got, want := kindsString(cs), "content_sharing_updated,content_sharing_ended"; got != want {
		t.Fatalf("updated+deleted: %s, want %s", got, want)
	}
	if cs[1].Session == nil || cs[1].Session.ID != "F7D9EF30FF0A9BD3F64B274387FB8FF8E96B6CFBA8F87F8305A74DE99AF007BC" {
		t.Errorf("ended session = %+v", cs[1].Session)
	}
	// A late update does not revive the ended session.
	if cs := mustApply(t, s, loadEvents(t, "003_06_notification.json")...); len(cs) != 0 {
		t.Errorf("late update: %s", kindsString(cs))
	}
	v := mustCall(t, s, id)
	if len(v.ContentSharingSessions) != 0 || v.State != "" {
		t.Errorf("call = %+v", v)
	}
}

// The delta roster (003_19): John joins; the bot's removal is of a
// participant never seen, so it changes nothing.
func TestSeedDeltaRoster(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	cs := mustApply(t, s, loadEvents(t, "003_19_notification.json")...)
	if got, want := kindsString(cs), "call_tracked,participant_joined"; got != want {
		t.Fatalf("changes = %s, want %s", got, want)
	}
	v := mustCall(t, s, "421f7700-f4ad-4ea9-a3fc-c1d2195675ad")
	if len(v.Participants) != 1 || v.Participants[0].ID != "0d7664b6-6432-43ed-8d27-d9e7adec188c" ||
		v.RosterSequenceNumber != 1 || v.RosterNeedsResync {
		t.Errorf("call = %+v", v)
	}
	// Replayed: a duplicate sequence number, ignored.
	if cs := mustApply(t, s, loadEvents(t, "003_19_notification.json")...); len(cs) != 0 {
		t.Errorf("replay: %s", kindsString(cs))
	}
	if got := ignored(s, reasonDuplicateSequence); got != 1 {
		t.Errorf("duplicate_sequence = %d, want 1", got)
	}
}

// The five invite examples (seed 001), each on its own Store: the call
// exists, botd tracks the invite, Graph answers, then notifies. Each is
// replayed with the answer before the notifications and after the
// operation's notification (the race a real server sees).
func TestSeedInvite(t *testing.T) {
	type rosterWant struct {
		callID string
		ids    []string // primary identity ids, in order
	}
	for _, ex := range []struct {
		name        string
		callID      string
		first       int // number of the request file; response, op and roster follow
		opID        string
		roster      []rosterWant
		emptyRoster string // a call whose roster must stay empty
	}{
		{"1 one participant", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", 1, "eec3812a-fdc3-4fb4-825c-a06c9f35414e",
			[]rosterWant{{"ab6233a5-20b7-4c5e-bea2-ce56c9776429", []string{"278405a3-f568-4b3e-b684-009193463064"}}}, ""},
		{"2 multiple participants, id null", "7531d31f-d10d-44de-802f-c569dbca451c", 5, "eec3812a-fdc3-4fb4-825c-a06c9f35414e",
			[]rosterWant{{"7531d31f-d10d-44de-802f-c569dbca451c", []string{"7e1b4346-85a6-4bdd-abe3-d11c5d420efe", "1e126418-44a0-4a94-a6f8-0efe1ad71acb"}}}, ""},
		{"3 replaces a P2P call", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", 9, "278405a3-f568-4b3e-b684-009193463064",
			[]rosterWant{{"a7ebfb2d-871e-419c-87af-27290b22e8db", []string{"7e1b4346-85a6-4bdd-abe3-d11c5d420efe"}}},
			"ab6233a5-20b7-4c5e-bea2-ce56c9776429"},
		{"4 PSTN", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", 13, "eec3812a-fdc3-4fb4-825c-a06c9f35414e",
			[]rosterWant{{"ab6233a5-20b7-4c5e-bea2-ce56c9776429", []string{"+12345678901"}}}, ""},
		{"5 participantId", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", 17, "278405a3-f568-4b3e-b684-009193463064",
			[]rosterWant{{"ab6233a5-20b7-4c5e-bea2-ce56c9776429", []string{"682b6c37-0729-4fab-ace6-d730d5d9137e"}}}, ""},
	} {
		for _, responseFirst := range []bool{true, false} {
			name := ex.name + "/notification first"
			if responseFirst {
				name = ex.name + "/response first"
			}
			t.Run(name, func(t *testing.T) {
				s := newStore(t, Config{Now: newClock().Now})
				file := func(n int, kind string) string {
					return "001_" + twoDigits(n) + "_" + kind + ".json"
				}
				_, err := s.TrackCall(&model.Call{ID: ex.callID, State: model.StateEstablished})
				must(t, err)
				cc, invitees := loadInviteRequest(t, file(ex.first, "request"))
				must(t, s.TrackOperation(ex.callID, OperationRecord{Type: "invite", ClientContext: cc, Participants: invitees}))
				resp := loadOperation(t, file(ex.first+1, "response"))
				opEvents := loadEvents(t, file(ex.first+2, "notification"))
				rosterEvents := loadEvents(t, file(ex.first+3, "notification"))

				var cs []Change
				if responseFirst {
					cs = append(cs, s.OperationSent(ex.callID, cc, resp)...)
					cs = append(cs, mustApply(t, s, opEvents...)...)
				} else {
					cs = append(cs, mustApply(t, s, opEvents...)...)
					cs = append(cs, s.OperationSent(ex.callID, cc, resp)...)
				}
				cs = append(cs, mustApply(t, s, rosterEvents...)...)

				if n := countKind(cs, OperationCompleted); n != 1 {
					t.Errorf("operation_completed changes = %d, want 1 (%s)", n, kindsString(cs))
				}
				v := mustCall(t, s, ex.callID)
				if len(v.Operations) != 1 {
					t.Fatalf("operations = %+v, want 1", v.Operations)
				}
				op := v.Operations[0]
				if op.ID != ex.opID || op.Status != model.OpCompleted || op.Type != "invite" || !op.SentByBot ||
					op.ClientContext != cc || op.CompletedAt.IsZero() || len(op.Participants) == 0 {
					t.Errorf("operation = %+v", op)
				}
				for _, rw := range ex.roster {
					rv := mustCall(t, s, rw.callID)
					var got []string
					for _, p := range rv.Participants {
						_, id := p.Info.Identity.Primary()
						got = append(got, id.ID)
					}
					if !slices.Equal(got, rw.ids) {
						t.Errorf("roster of %s = %v, want %v", rw.callID, got, rw.ids)
					}
				}
				if ex.emptyRoster != "" {
					if rv := mustCall(t, s, ex.emptyRoster); len(rv.Participants) != 0 {
						t.Errorf("roster of %s = %+v, want empty", ex.emptyRoster, rv.Participants)
					}
				}
			})
		}
	}
}

// An invite botd never tracked is still recorded from its notification.
func TestSeedInviteUntracked(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	cs := mustApply(t, s, loadEvents(t, "001_03_notification.json")...)
	if got, want := kindsString(cs), "call_tracked,operation_completed"; got != want {
		t.Fatalf("changes = %s, want %s", got, want)
	}
	op := mustCall(t, s, "ab6233a5-20b7-4c5e-bea2-ce56c9776429").Operations[0]
	if op.ID != "eec3812a-fdc3-4fb4-825c-a06c9f35414e" || op.Type != "invite" || op.SentByBot || op.Status != model.OpCompleted {
		t.Errorf("operation = %+v", op)
	}
	// The same notification again: final is final, nothing new.
	if cs := mustApply(t, s, loadEvents(t, "001_03_notification.json")...); len(cs) != 0 {
		t.Errorf("duplicate: %s", kindsString(cs))
	}
	if got := ignored(s, reasonDuplicateOperation); got != 1 {
		t.Errorf("duplicate_operation = %d, want 1", got)
	}
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }

func countKind(cs []Change, k ChangeKind) int {
	n := 0
	for _, c := range cs {
		if c.Kind == k {
			n++
		}
	}
	return n
}

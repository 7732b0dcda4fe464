package callstate

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

func TestStateRules(t *testing.T) {
	const (
		inc   = model.StateIncoming
		estg  = model.StateEstablishing
		est   = model.StateEstablished
		hold  = model.StateHold
		trf   = model.StateTransferring
		trfA  = model.StateTransferAccepted
		redir = model.StateRedirecting
		term  = model.StateTerminating
		done  = model.StateTerminated
	)
	for _, tc := range []struct {
		name    string
		states  []model.CallState
		want    model.CallState
		applied int // transitions applied
		refused map[reason]int
		dups    int
	}{
		{"lifecycle", []model.CallState{estg, est, hold, est, term, done}, done, 6, nil, 0},
		{"late establishing stays established", []model.CallState{est, estg}, est, 1, map[reason]int{reasonStateRegression: 1}, 0},
		{"duplicate changes nothing", []model.CallState{estg, estg, est, est}, est, 2, nil, 2},
		{"terminated is final", []model.CallState{est, done, est, term, inc}, done, 2, map[reason]int{reasonAfterTerminated: 3}, 0},
		{"lateral moves", []model.CallState{est, hold, trf, trfA, est, redir, est}, est, 7, nil, 0},
		{"incoming redirected", []model.CallState{inc, redir, done}, done, 3, nil, 0},
		{"terminating does not go back", []model.CallState{est, term, est, hold}, term, 2, map[reason]int{reasonStateRegression: 2}, 0},
		{"incoming after establishing", []model.CallState{estg, inc}, estg, 1, map[reason]int{reasonStateRegression: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{Now: newClock().Now})
			var stateChanges int
			for i, st := range tc.states {
				ev := testkit.CallEvent("c1", model.ChangeUpdated, st)
				ev.Index = i
				cs := mustApply(t, s, ev)
				stateChanges += countKind(cs, CallStateChanged)
			}
			v := mustCall(t, s, "c1")
			if v.State != tc.want {
				t.Errorf("state = %s, want %s", v.State, tc.want)
			}
			if stateChanges != tc.applied {
				t.Errorf("call_state_changed = %d, want %d", stateChanges, tc.applied)
			}
			var applied, refused int
			for _, tr := range v.Transitions {
				if tr.Ignored {
					refused++
				} else {
					applied++
				}
			}
			wantRefused := 0
			for r, n := range tc.refused {
				wantRefused += n
				if got := ignored(s, r); got != n {
					t.Errorf("ignored %s = %d, want %d", r, got, n)
				}
			}
			if applied != tc.applied || refused != wantRefused {
				t.Errorf("transitions = %+v: %d applied, %d refused; want %d, %d", v.Transitions, applied, refused, tc.applied, wantRefused)
			}
			if got := ignored(s, reasonDuplicateState); got != tc.dups {
				t.Errorf("duplicate_state = %d, want %d", got, tc.dups)
			}
			// The gauge follows the call.
			if got := testutil.ToFloat64(s.m.callsByState[stateIndex(tc.want)]); got != 1 {
				t.Errorf("botd_calls{state=%s} = %v, want 1", tc.want, got)
			}
		})
	}
}

func TestTransitionCauseAndHistoryBound(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now, MaxTransitions: 4})
	states := []model.CallState{model.StateEstablished, model.StateHold, model.StateEstablished, model.StateHold, model.StateEstablished, model.StateEstablishing}
	for i, st := range states {
		ev := testkit.CallEvent("c1", model.ChangeUpdated, st)
		ev.Index = i
		mustApply(t, s, ev)
	}
	v := mustCall(t, s, "c1")
	if len(v.Transitions) != 4 {
		t.Fatalf("transitions = %d, want 4", len(v.Transitions))
	}
	first, last := v.Transitions[0], v.Transitions[3]
	if first.Cause != "notification value[2] changeType updated" || first.To != model.StateEstablished {
		t.Errorf("oldest kept = %+v", first)
	}
	if !last.Ignored || last.Reason != "state_regression" || last.Cause != "notification value[5] changeType updated" {
		t.Errorf("newest = %+v", last)
	}
}

// TestRecordNumbersTransitions: a record's FirstTransition counts the
// transitions the ring dropped, a restored call goes on counting from
// it, and a smaller bound at restore drops (and counts) the oldest.
func TestRecordNumbersTransitions(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now, MaxTransitions: 4})
	states := []model.CallState{model.StateEstablished, model.StateHold, model.StateEstablished, model.StateHold, model.StateEstablished, model.StateHold}
	for _, st := range states {
		mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, st))
	}
	r, _ := s.Record("c1")
	// RecordAfter leaves out the oldest, across the ring's wrap.
	life := uint64(r.CreatedAt.UnixNano())
	for next := uint64(0); next <= 8; next++ {
		p, _ := s.RecordAfter("c1", life, next)
		skip := min(max(next, 2)-2, 4)
		if p.FirstTransition != 2 || p.Skipped != skip || !slices.Equal(p.Transitions, r.Transitions[skip:]) {
			t.Errorf("after %d: first %d, skipped %d, %d transitions; want 2, %d, the whole record's from %d", next, p.FirstTransition, p.Skipped, len(p.Transitions), skip, skip)
		}
	}
	if p, _ := s.RecordAfter("c1", life+1, 5); p.Skipped != 0 || len(p.Transitions) != 4 {
		t.Errorf("another life: skipped %d", p.Skipped)
	}
	if r.FirstTransition != 2 || len(r.Transitions) != 4 || r.Transitions[0].From != model.StateHold {
		t.Fatalf("record: first %d, %d transitions, oldest %+v; want 2, 4, from hold", r.FirstTransition, len(r.Transitions), r.Transitions[0])
	}
	for _, tc := range []struct {
		max        int
		first      uint64
		afterApply uint64
	}{{4, 2, 3}, {8, 2, 2}, {3, 3, 4}} {
		s2 := newStore(t, Config{Now: newClock().Now, MaxTransitions: tc.max})
		if _, err := s2.Restore(r); err != nil {
			t.Fatal(err)
		}
		r2, _ := s2.Record("c1")
		if r2.FirstTransition != tc.first || r2.Transitions[len(r2.Transitions)-1] != r.Transitions[3] {
			t.Errorf("max %d: restored first %d, newest %+v; want %d, %+v", tc.max, r2.FirstTransition, r2.Transitions[len(r2.Transitions)-1], tc.first, r.Transitions[3])
		}
		mustApply(t, s2, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		if r2, _ = s2.Record("c1"); r2.FirstTransition != tc.afterApply {
			t.Errorf("max %d: first after one more = %d, want %d", tc.max, r2.FirstTransition, tc.afterApply)
		}
	}
}

func TestDeletedCallTerminates(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
	del := &model.Event{ChangeType: model.ChangeDeleted, Kind: model.EventCall,
		Path: model.ResourcePath{CallID: "c1", Kind: model.ResourceCall},
		Call: &model.Call{ID: "c1", ResultInfo: &model.ResultInfo{Code: 200, Message: "hung up"}}}
	cs := mustApply(t, s, del)
	if got, want := kindsString(cs), "call_state_changed,call_terminated"; got != want {
		t.Fatalf("changes = %s, want %s", got, want)
	}
	v := mustCall(t, s, "c1")
	if v.State != model.StateTerminated || v.TerminatedAt.IsZero() || v.ResultInfo == nil || v.ResultInfo.Message != "hung up" {
		t.Errorf("call = %+v", v)
	}
	if cs := mustApply(t, s, del); len(cs) != 0 {
		t.Errorf("second delete: %s", kindsString(cs))
	}
	if n := histCount(t, s.m.callDuration); n != 1 {
		t.Errorf("duration samples = %d, want 1", n)
	}
}

func TestIncomingCall(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	ev := testkit.CallEvent("in1", model.ChangeCreated, model.StateIncoming)
	ev.CallbackURI = "https://bot.contoso.com/callback"
	ev.Call.TenantID = "tenant"
	ev.Call.Source = &model.ParticipantInfo{Identity: user("caller")}
	ev.Call.Targets = []model.InvitationParticipantInfo{{Identity: &model.IdentitySet{Application: &model.Identity{ID: "bot"}}}}
	cs := mustApply(t, s, ev)
	if got, want := kindsString(cs), "call_tracked,call_state_changed,call_incoming"; got != want {
		t.Fatalf("changes = %s, want %s", got, want)
	}
	in := cs[2].Call
	if in.CallbackURI != "https://bot.contoso.com/callback" || in.TenantID != "tenant" || in.Source == nil ||
		len(in.Targets) != 1 || in.Direction != "incoming" || in.State != model.StateIncoming {
		t.Errorf("incoming call = %+v", in)
	}
	if cs := mustApply(t, s, ev); len(cs) != 0 {
		t.Errorf("duplicate incoming: %s", kindsString(cs))
	}
	if got := testutil.ToFloat64(s.m.callsStarted.WithLabelValues("incoming")); got != 1 {
		t.Errorf("calls_started{incoming} = %v", got)
	}
}

// TestCallbackURIFollowsAnswer: an incoming call rings the bot's registered
// webhook; once answered, Graph's notifications carry the callbackUri the
// answer gave, and the call shows that one. A late (reordered) incoming
// notification does not bring the old one back.
func TestCallbackURIFollowsAnswer(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	const webhook, own = "https://bot.contoso.com/api/calls", "https://bot.contoso.com/api/calls/botd-1"
	in := testkit.CallEvent("in1", model.ChangeCreated, model.StateIncoming)
	in.CallbackURI = webhook
	mustApply(t, s, in)
	if v := mustCall(t, s, "in1"); v.CallbackURI != webhook {
		t.Fatalf("incoming callbackUri = %q, want %q", v.CallbackURI, webhook)
	}
	for _, st := range []model.CallState{model.StateEstablishing, model.StateEstablished} {
		ev := testkit.CallEvent("in1", model.ChangeUpdated, st)
		ev.CallbackURI = own
		mustApply(t, s, ev)
	}
	if v := mustCall(t, s, "in1"); v.CallbackURI != own {
		t.Fatalf("answered call callbackUri = %q, want %q", v.CallbackURI, own)
	}
	mustApply(t, s, in)
	if v := mustCall(t, s, "in1"); v.CallbackURI != own || v.State != model.StateEstablished {
		t.Fatalf("after a late incoming notification: callbackUri %q, state %s", v.CallbackURI, v.State)
	}
}

func TestTrackCallMergesAndIsIdempotent(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	// The notification beats the 201 response.
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
	res := &model.Call{ID: "c1", State: model.StateEstablishing, CallChainID: "chain", Subject: "hi"}
	cs, err := s.TrackCall(res)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("TrackCall after established: %s", kindsString(cs))
	}
	cs, err = s.TrackCall(res)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("second TrackCall: %s", kindsString(cs))
	}
	v := mustCall(t, s, "c1")
	if v.State != model.StateEstablished || !v.CreatedByBot || v.CallChainID != "chain" || v.Subject != "hi" || v.Direction != "outgoing" {
		t.Errorf("call = %+v", v)
	}
	if _, err := s.TrackCall(&model.Call{}); !errors.Is(err, ErrNoCallID) {
		t.Errorf("TrackCall without id: %v", err)
	}
}

func TestMarkTerminated(t *testing.T) {
	clk := newClock()
	s := newStore(t, Config{Now: clk.Now})
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
	clk.Advance(90 * time.Second)
	cs := s.MarkTerminated("c1", "keepAlive 404")
	if got, want := kindsString(cs), "call_state_changed,call_terminated"; got != want {
		t.Fatalf("changes = %s, want %s", got, want)
	}
	if cs[1].Reason != "keepAlive 404" || cs[1].Event != -1 {
		t.Errorf("terminated change = %+v", cs[1])
	}
	v := mustCall(t, s, "c1")
	if last := v.Transitions[len(v.Transitions)-1]; last.Cause != "botd: keepAlive 404" || last.To != model.StateTerminated {
		t.Errorf("transition = %+v", last)
	}
	if s.MarkTerminated("c1", "again") != nil || s.MarkTerminated("nope", "x") != nil {
		t.Error("MarkTerminated on a terminated or unknown call reported changes")
	}
	if n := histCount(t, s.m.callDuration); n != 1 {
		t.Errorf("duration samples = %d", n)
	}
}

// After terminated, nothing changes: not the state, the roster, the
// deltas nor the sessions. Operations may still finish.
func TestTerminatedIsFinal(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	mustApply(t, s,
		testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished),
		rosterEvent("c1", participant("p1", "u1")),
	)
	must(t, s.TrackOperation("c1", OperationRecord{ID: "op1", Type: "playPrompt"}))
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateTerminated))
	cs := mustApply(t, s,
		testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished),
		rosterEvent("c1", participant("p2", "u2")),
		deltaEvent("c1", 1, participant("p3", "u3")),
		&model.Event{ChangeType: model.ChangeCreated, Kind: model.EventContentSharing,
			Path: model.ResourcePath{CallID: "c1"}, Sessions: []model.ContentSharingSession{{ID: "s1"}}},
	)
	if len(cs) != 0 {
		t.Errorf("after terminated: %s", kindsString(cs))
	}
	if got := ignored(s, reasonAfterTerminated); got != 4 {
		t.Errorf("after_terminated = %d, want 4", got)
	}
	cs = mustApply(t, s, opEvent("c1", model.ChangeDeleted, &model.Operation{ID: "op1", Status: model.OpCompleted}))
	if got, want := kindsString(cs), "operation_completed"; got != want {
		t.Errorf("op after terminated: %s, want %s", got, want)
	}
	if cs := s.ReplaceRoster("c1", nil); len(cs) != 0 {
		t.Errorf("ReplaceRoster after terminated: %s", kindsString(cs))
	}
	v := mustCall(t, s, "c1")
	if v.State != model.StateTerminated || len(v.Participants) != 1 || len(v.ContentSharingSessions) != 0 {
		t.Errorf("call = %+v", v)
	}
	if got := testutil.ToFloat64(s.m.participants); got != 0 {
		t.Errorf("participants gauge = %v, want 0 once terminated", got)
	}
}

func TestIgnoredEvents(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	for _, tc := range []struct {
		ev *model.Event
		r  reason
	}{
		{&model.Event{Kind: model.EventCall, Call: &model.Call{State: model.StateEstablished}}, reasonNoCallID},
		{&model.Event{Kind: model.EventUnknown, Path: model.ResourcePath{CallID: "c1"}}, reasonUnknownEvent},
		{&model.Event{Kind: model.EventOperation, Path: model.ResourcePath{CallID: "c1"}}, reasonMalformed},
		{&model.Event{Kind: model.EventRosterDelta, Path: model.ResourcePath{CallID: "c1"}}, reasonMalformed},
		{testkit.CallEvent("c1", model.ChangeUpdated, "ringing"), reasonInvalidState},
	} {
		before := ignored(s, tc.r)
		if cs := mustApply(t, s, tc.ev); countKind(cs, CallStateChanged) != 0 {
			t.Errorf("%s: changes %s", tc.r, kindsString(cs))
		}
		if ignored(s, tc.r) != before+1 {
			t.Errorf("%s not counted", tc.r)
		}
	}
	if _, ok := s.Call(""); ok {
		t.Error("a call with no id was tracked")
	}
	if v := mustCall(t, s, "c1"); v.State != "" {
		t.Errorf("state = %q after an invalid one", v.State)
	}
	if cs, err := s.Apply(nil); cs != nil || err != nil {
		t.Errorf("Apply(nil) = %v, %v", cs, err)
	}
}

func TestCallViewJSON(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
	b, err := json.Marshal(mustCall(t, s, "c1"))
	must(t, err)
	for _, want := range []string{`"id":"c1"`, `"state":"established"`, `"participants":[]`, `"operations":[]`,
		`"contentSharingSessions":[]`, `"rosterNeedsResync":false`, `"rosterSequenceNumber":0`, `"createdByBot":false`,
		`"transitions":[{"from":"","to":"established"`, `"establishedAt":`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "terminatedAt") {
		t.Errorf("JSON has a zero terminatedAt: %s", b)
	}
}

func TestChangeKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := CallTracked; k < numChangeKinds; k++ {
		n := k.String()
		if n == "invalid" || n == "" || seen[n] || strings.ToLower(n) != n {
			t.Errorf("ChangeKind(%d) = %q", k, n)
		}
		seen[n] = true
	}
	if CallIncoming.String() != "call_incoming" || RosterNeedsResync.String() != "roster_needs_resync" {
		t.Error("names changed: they are metric labels")
	}
	if ChangeKind(200).String() != "invalid" {
		t.Error("out of range kind")
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(testConfig(Config{Retention: -1}), zerologNop(), nil); err == nil {
		t.Error("negative Retention accepted")
	}
	if _, err := New(testConfig(Config{MaxCalls: -1}), zerologNop(), nil); err == nil {
		t.Error("negative MaxCalls accepted")
	}
	s, err := New(DefaultConfig(), zerologNop(), nil)
	must(t, err)
	if s.cfg.Retention != DefaultRetention || s.cfg.MaxCalls != DefaultMaxCalls || s.cfg.DeltaHoldMax != DefaultDeltaHoldMax || s.cfg.Now == nil {
		t.Errorf("defaults = %+v", s.cfg)
	}
	if got := s.cfg.checkInterval(); got != DefaultDeltaGapTimeout/2 {
		t.Errorf("checkInterval = %s, want %s", got, DefaultDeltaGapTimeout/2)
	}
}

// TestConfigRefusesZero: no setting is silently defaulted; a zero one is
// refused with its name.
func TestConfigRefusesZero(t *testing.T) {
	for _, tc := range []struct {
		field string
		zero  func(*Config)
	}{
		{"Retention", func(c *Config) { c.Retention = 0 }},
		{"SweepInterval", func(c *Config) { c.SweepInterval = 0 }},
		{"OperationTimeout", func(c *Config) { c.OperationTimeout = 0 }},
		{"DeltaGapTimeout", func(c *Config) { c.DeltaGapTimeout = 0 }},
		{"DeltaHoldMax", func(c *Config) { c.DeltaHoldMax = 0 }},
		{"MaxTransitions", func(c *Config) { c.MaxTransitions = 0 }},
		{"MaxCalls", func(c *Config) { c.MaxCalls = 0 }},
		{"MaxOperationsPerCall", func(c *Config) { c.MaxOperationsPerCall = 0 }},
		{"MaxTonesPerCall", func(c *Config) { c.MaxTonesPerCall = 0 }},
	} {
		cfg := DefaultConfig()
		tc.zero(&cfg)
		_, err := New(cfg, zerologNop(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s 0: err = %v, want one naming %s", tc.field, err, tc.field)
		}
	}
	if _, err := New(Config{}, zerologNop(), nil); err == nil {
		t.Error("zero Config accepted")
	}
	over := DefaultConfig()
	over.MaxTransitions = MaxTransitionsLimit + 1
	if _, err := New(over, zerologNop(), nil); err == nil || !strings.Contains(err.Error(), "MaxTransitions must be at most") {
		t.Errorf("MaxTransitions over the limit: err = %v", err)
	}
	over.MaxTransitions = MaxTransitionsLimit
	if _, err := New(over, zerologNop(), nil); err != nil {
		t.Errorf("MaxTransitions at the limit: %v", err)
	}
}

// TestCheckIntervalFollowsRetention: a short retention is swept close to
// on time, not at the next SweepInterval.
func TestCheckIntervalFollowsRetention(t *testing.T) {
	c, err := testConfig(Config{Retention: time.Second}).check()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.checkInterval(); got != 500*time.Millisecond {
		t.Fatalf("checkInterval = %s, want 500ms", got)
	}
}

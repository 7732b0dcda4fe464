package callstate

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"pgregory.net/rapid"

	"github.com/botd/botd/internal/model"
)

func muted(p model.Participant) model.Participant { p.IsMuted = true; return p }

func removed(p model.Participant) model.Participant {
	p.RemovedState = &model.RemovedState{Reason: "left"}
	return p
}

func withSeq(p model.Participant, n int64) model.Participant { p.RosterSequenceNumber = n; return p }

func participantIDs(v CallView) []string {
	var ids []string
	for _, p := range v.Participants {
		if p.ID != "" {
			ids = append(ids, p.ID)
			continue
		}
		_, id := p.Info.Identity.Primary()
		ids = append(ids, "identity:"+id.ID)
	}
	return ids
}

func TestFullRosterDiff(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	a, b, c := participant("a", "ua"), participant("b", "ub"), participant("c", "uc")
	cs := mustApply(t, s, rosterEvent("c1", a, b))
	if got, want := kindsString(cs), "call_tracked,participant_joined,participant_joined"; got != want {
		t.Fatalf("first roster: %s, want %s", got, want)
	}
	cs = mustApply(t, s, rosterEvent("c1", muted(b), c))
	if got, want := kindsString(cs), "participant_updated,participant_joined,participant_left"; got != want {
		t.Fatalf("second roster: %s, want %s", got, want)
	}
	if cs[0].Participant.ID != "b" || !cs[0].Participant.IsMuted || cs[2].Participant.ID != "a" {
		t.Errorf("changes = %+v", cs)
	}
	if cs := mustApply(t, s, rosterEvent("c1", muted(b), c)); len(cs) != 0 {
		t.Errorf("same roster again: %s", kindsString(cs))
	}
	if got := participantIDs(mustCall(t, s, "c1")); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("roster = %v", got)
	}
	if got := testutil.ToFloat64(s.m.participants); got != 2 {
		t.Errorf("participants gauge = %v, want 2", got)
	}
	// A roster of nobody: everyone left.
	cs = mustApply(t, s, rosterEvent("c1"))
	if got, want := kindsString(cs), "participant_left,participant_left"; got != want {
		t.Errorf("empty roster: %s, want %s", got, want)
	}
}

// Rosters with "id": null (the invite seeds) key participants by identity,
// and a participant first seen without an id keeps its place when Graph
// later gives the id.
func TestRosterNullIDs(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	x, y := participant("", "ux"), participant("", "uy")
	mustApply(t, s, rosterEvent("c1", x, y))
	cs := mustApply(t, s, rosterEvent("c1", x, muted(y)))
	if got, want := kindsString(cs), "participant_updated"; got != want {
		t.Fatalf("muting y: %s, want %s", got, want)
	}
	cs = mustApply(t, s, rosterEvent("c1", participant("px", "ux"), muted(y)))
	if got, want := kindsString(cs), "participant_updated"; got != want {
		t.Fatalf("x gets an id: %s, want %s", got, want)
	}
	// Same user, application kind: another participant.
	app := model.Participant{Info: model.ParticipantInfo{Identity: &model.IdentitySet{Application: &model.Identity{ID: "ux"}}}}
	cs = mustApply(t, s, rosterEvent("c1", participant("px", "ux"), muted(y), app))
	if got, want := kindsString(cs), "participant_joined"; got != want {
		t.Fatalf("app with the user's id: %s, want %s", got, want)
	}
	// Without an id again, x is still found by identity.
	if cs := mustApply(t, s, deltaEvent("c1", 1, participant("", "ux"))); len(cs) != 0 {
		t.Errorf("x by identity: %s", kindsString(cs))
	}
	// No id and no identity: cannot be tracked.
	cs = mustApply(t, s, rosterEvent("c1", participant("px", "ux"), muted(y), app, model.Participant{}))
	if len(cs) != 0 || ignored(s, reasonParticipantWithoutKey) != 1 {
		t.Errorf("keyless participant: %s, ignored %d", kindsString(cs), ignored(s, reasonParticipantWithoutKey))
	}
	if got := participantIDs(mustCall(t, s, "c1")); len(got) != 3 || got[0] != "px" {
		t.Errorf("roster = %v", got)
	}
}

// A large roster switches to a map index; removals keep it right.
func TestLargeRoster(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	var ps []model.Participant
	for i := range 40 {
		ps = append(ps, participant(fmt.Sprintf("p%02d", i), fmt.Sprintf("u%02d", i)))
	}
	mustApply(t, s, rosterEvent("c1", ps...))
	// Remove every other one by delta, then mute the rest.
	var d []model.Participant
	for i := 0; i < 40; i += 2 {
		d = append(d, removed(ps[i]))
	}
	cs := mustApply(t, s, deltaEvent("c1", 1, d...))
	if n := countKind(cs, ParticipantLeft); n != 20 {
		t.Fatalf("left = %d, want 20", n)
	}
	var m []model.Participant
	for i := 1; i < 40; i += 2 {
		m = append(m, muted(ps[i]))
	}
	cs = mustApply(t, s, deltaEvent("c1", 2, m...))
	if n := countKind(cs, ParticipantUpdated); n != 20 {
		t.Fatalf("updated = %d, want 20", n)
	}
	v := mustCall(t, s, "c1")
	for i, p := range v.Participants {
		if p.ID != fmt.Sprintf("p%02d", 2*i+1) || !p.IsMuted {
			t.Fatalf("participant %d = %+v", i, p)
		}
	}
}

func TestDeltaOrdering(t *testing.T) {
	a, b, c, d := participant("a", "ua"), participant("b", "ub"), participant("c", "uc"), participant("d", "ud")
	t.Run("in order, duplicates and stale", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock().Now})
		mustApply(t, s, deltaEvent("c1", 1, a), deltaEvent("c1", 2, b))
		cs := mustApply(t, s, deltaEvent("c1", 2, b), deltaEvent("c1", 1, a))
		if len(cs) != 0 {
			t.Errorf("duplicate/stale: %s", kindsString(cs))
		}
		if ignored(s, reasonDuplicateSequence) != 1 || ignored(s, reasonStaleSequence) != 1 {
			t.Errorf("duplicate %d, stale %d", ignored(s, reasonDuplicateSequence), ignored(s, reasonStaleSequence))
		}
		if v := mustCall(t, s, "c1"); v.RosterSequenceNumber != 2 || len(v.Participants) != 2 {
			t.Errorf("call = %+v", v)
		}
	})
	t.Run("gap filled", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock().Now})
		mustApply(t, s, deltaEvent("c1", 1, a))
		cs := mustApply(t, s, deltaEvent("c1", 3, c), deltaEvent("c1", 4, removed(a)), deltaEvent("c1", 4, removed(a)))
		if len(cs) != 0 {
			t.Fatalf("held deltas reported %s", kindsString(cs))
		}
		if ignored(s, reasonDuplicateSequence) != 1 {
			t.Errorf("duplicate held delta not counted")
		}
		cs = mustApply(t, s, deltaEvent("c1", 2, b))
		if got, want := kindsString(cs), "participant_joined,participant_joined,participant_left"; got != want {
			t.Fatalf("gap filled: %s, want %s", got, want)
		}
		if cs[0].Participant.ID != "b" || cs[1].Participant.ID != "c" || cs[2].Participant.ID != "a" {
			t.Errorf("order = %+v", cs)
		}
		v := mustCall(t, s, "c1")
		if v.RosterSequenceNumber != 4 || v.RosterNeedsResync || !slices.Equal(participantIDs(v), []string{"b", "c"}) {
			t.Errorf("call = %+v", v)
		}
	})
	t.Run("first delta ahead is held", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock().Now})
		mustApply(t, s, deltaEvent("c1", 2, b))
		if v := mustCall(t, s, "c1"); len(v.Participants) != 0 {
			t.Fatalf("delta 2 applied before 1: %+v", v.Participants)
		}
		mustApply(t, s, deltaEvent("c1", 1, a))
		if got := participantIDs(mustCall(t, s, "c1")); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("roster = %v", got)
		}
	})
	t.Run("per-participant sequence", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock().Now})
		mustApply(t, s, deltaEvent("c1", 1, withSeq(muted(a), 5)))
		cs := mustApply(t, s, deltaEvent("c1", 2, withSeq(a, 3), withSeq(d, 2)))
		if got, want := kindsString(cs), "participant_joined"; got != want {
			t.Errorf("changes = %s, want %s", got, want)
		}
		if ignored(s, reasonStaleParticipant) != 1 {
			t.Error("stale participant not counted")
		}
		cs = mustApply(t, s, deltaEvent("c1", 3, withSeq(removed(a), 4)))
		if len(cs) != 0 {
			t.Errorf("stale removal applied: %s", kindsString(cs))
		}
		if v := mustCall(t, s, "c1"); !v.Participants[0].IsMuted || len(v.Participants) != 2 {
			t.Errorf("roster = %+v", v.Participants)
		}
	})
}

func TestDeltaGapTimeoutAndResync(t *testing.T) {
	clk := newClock()
	var rec sinkRecorder
	s := newStore(t, Config{Now: clk.Now, DeltaGapTimeout: 10 * time.Second})
	s.Observe(rec.sink)
	a, b, c, d := participant("a", "ua"), participant("b", "ub"), participant("c", "uc"), participant("d", "ud")
	mustApply(t, s, deltaEvent("c1", 1, a), deltaEvent("c1", 3, c))
	clk.Advance(9 * time.Second)
	s.pass(nil)
	if v := mustCall(t, s, "c1"); v.RosterNeedsResync || len(v.Participants) != 1 {
		t.Fatalf("gave up early: %+v", v)
	}
	clk.Advance(time.Second)
	s.pass(nil)
	got := rec.all()
	last := got[len(got)-2:]
	if kindsString(last) != "participant_joined,roster_needs_resync" || last[1].Reason != "gap_timeout" || last[1].Event != -1 {
		t.Fatalf("sink got %+v", last)
	}
	v := mustCall(t, s, "c1")
	if !v.RosterNeedsResync || v.RosterSequenceNumber != 3 || !slices.Equal(participantIDs(v), []string{"a", "c"}) {
		t.Errorf("after gap timeout: %+v", v)
	}
	if got := testutil.ToFloat64(s.m.resyncs.WithLabelValues(resyncGapTimeout)); got != 1 {
		t.Errorf("resyncs{gap_timeout} = %v", got)
	}
	// The lost delta comes late: stale.
	if cs := mustApply(t, s, deltaEvent("c1", 2, b)); len(cs) != 0 {
		t.Errorf("late delta: %s", kindsString(cs))
	}
	// A new gap while resync is already needed holds again without a new
	// RosterNeedsResync.
	mustApply(t, s, deltaEvent("c1", 5, d))

	// The server lists the participants.
	cs := s.ReplaceRoster("c1", []model.Participant{a, b, c})
	if got, want := kindsString(cs), "participant_joined"; got != want {
		t.Errorf("ReplaceRoster: %s, want %s", got, want)
	}
	v = mustCall(t, s, "c1")
	if v.RosterNeedsResync {
		t.Error("still needs resync")
	}
	// Deltas continue above the highest seen (5): 5 is stale, 6 the new
	// baseline though 4 never came.
	mustApply(t, s, deltaEvent("c1", 5, d))
	cs = mustApply(t, s, deltaEvent("c1", 6, removed(b)))
	if got, want := kindsString(cs), "participant_left"; got != want {
		t.Errorf("after resync: %s, want %s", got, want)
	}
	if v := mustCall(t, s, "c1"); v.RosterSequenceNumber != 6 || !slices.Equal(participantIDs(v), []string{"a", "c"}) {
		t.Errorf("after resync: %+v", v)
	}
}

// A gap past its timeout is given up on by the next delta, even without
// Run.
func TestDeltaGapExpiresOnApply(t *testing.T) {
	clk := newClock()
	s := newStore(t, Config{Now: clk.Now, DeltaGapTimeout: time.Second})
	mustApply(t, s, deltaEvent("c1", 1, participant("a", "ua")), deltaEvent("c1", 3, participant("c", "uc")))
	clk.Advance(time.Second)
	cs := mustApply(t, s, deltaEvent("c1", 4, participant("d", "ud")))
	if got, want := kindsString(cs), "participant_joined,roster_needs_resync,participant_joined"; got != want {
		t.Errorf("changes = %s, want %s", got, want)
	}
}

func TestDeltaHoldOverflow(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now, DeltaHoldMax: 2})
	mustApply(t, s, deltaEvent("c1", 1, participant("a", "ua")))
	cs := mustApply(t, s, deltaEvent("c1", 3, participant("c", "uc")), deltaEvent("c1", 4, participant("d", "ud")))
	if len(cs) != 0 {
		t.Fatalf("held: %s", kindsString(cs))
	}
	cs = mustApply(t, s, deltaEvent("c1", 5, participant("e", "ue")))
	if got, want := kindsString(cs), "participant_joined,participant_joined,participant_joined,roster_needs_resync"; got != want {
		t.Fatalf("overflow: %s, want %s", got, want)
	}
	if cs[3].Reason != "hold_overflow" {
		t.Errorf("reason = %q", cs[3].Reason)
	}
	v := mustCall(t, s, "c1")
	if !v.RosterNeedsResync || v.RosterSequenceNumber != 5 || len(v.Participants) != 4 {
		t.Errorf("call = %+v", v)
	}
	if got := testutil.ToFloat64(s.m.resyncs.WithLabelValues(resyncHoldOverflow)); got != 1 {
		t.Errorf("resyncs{hold_overflow} = %v", got)
	}
}

// Any arrival order of deltas 1..N, with duplicates, ends in the roster
// that in-order application gives, when nothing times out.
func TestDeltaAnyOrderProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 24).Draw(rt, "n")
		pool := rapid.IntRange(1, 8).Draw(rt, "pool")
		deltas := make([]*model.Event, n)
		for i := range n {
			var ps []model.Participant
			for range rapid.IntRange(0, 3).Draw(rt, "changes") {
				k := rapid.IntRange(0, pool-1).Draw(rt, "who")
				p := participant(fmt.Sprintf("p%d", k), fmt.Sprintf("u%d", k))
				p.RosterSequenceNumber = int64(i + 1)
				switch rapid.IntRange(0, 2).Draw(rt, "what") {
				case 1:
					p.IsMuted = true
				case 2:
					p = removed(p)
				}
				ps = append(ps, p)
			}
			deltas[i] = deltaEvent("c1", int64(i+1), ps...)
		}
		order := rapid.Permutation(deltas).Draw(rt, "order")
		for range rapid.IntRange(0, n).Draw(rt, "dups") {
			at := rapid.IntRange(0, len(order)).Draw(rt, "at")
			dup := rapid.SampledFrom(deltas).Draw(rt, "dup")
			order = slices.Insert(order, at, dup)
		}

		cfg := testConfig(Config{Now: newClock().Now, DeltaHoldMax: len(order), DeltaGapTimeout: time.Hour})
		want, err := New(cfg, zerolog.Nop(), nil)
		must(rt, err)
		mustApply(rt, want, deltas...)
		got, err := New(cfg, zerolog.Nop(), nil)
		must(rt, err)
		mustApply(rt, got, order...)

		wv, gv := mustCall(rt, want, "c1"), mustCall(rt, got, "c1")
		if !reflect.DeepEqual(wv.Participants, gv.Participants) {
			rt.Fatalf("roster = %v, want %v", participantIDs(gv), participantIDs(wv))
		}
		if gv.RosterSequenceNumber != int64(n) || gv.RosterNeedsResync {
			rt.Fatalf("sequence %d (want %d), needs resync %v", gv.RosterSequenceNumber, n, gv.RosterNeedsResync)
		}
		if c := got.lookupForTest("c1"); len(c.delta.held()) != 0 {
			rt.Fatalf("%d deltas still held", len(c.delta.held()))
		}
	})
}

// A full roster has no sequence number, so a late one can bring back a
// participant who left. Graph gives a participant who rejoins a new id:
// the store keeps the roster it was given but asks for a resync, and the
// resync's list puts the roster right.
func TestFullRosterReturnedParticipantAsksResync(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	a, b, c := participant("a", "ua"), participant("b", "ub"), participant("c", "uc")
	mustApply(t, s, rosterEvent("c1", a, b, c))
	if got, want := kindsString(mustApply(t, s, rosterEvent("c1", a))), "participant_left,participant_left"; got != want {
		t.Fatalf("leave: %s, want %s", got, want)
	}
	// A new participant is no reason to resync.
	d := participant("d", "ud")
	if got, want := kindsString(mustApply(t, s, rosterEvent("c1", a, d))), "participant_joined"; got != want {
		t.Fatalf("new participant: %s, want %s", got, want)
	}
	// The late roster from before b and c left.
	cs := mustApply(t, s, rosterEvent("c1", a, b, c, d))
	if got, want := kindsString(cs), "participant_joined,participant_joined,roster_needs_resync"; got != want {
		t.Fatalf("stale roster: %s, want %s", got, want)
	}
	if cs[2].Reason != resyncParticipantReturned {
		t.Errorf("reason = %q", cs[2].Reason)
	}
	if v := mustCall(t, s, "c1"); !v.RosterNeedsResync {
		t.Error("roster not marked for resync")
	}
	if got := testutil.ToFloat64(s.m.resyncs.WithLabelValues(resyncParticipantReturned)); got != 1 {
		t.Errorf("resyncs{participant_returned} = %v", got)
	}
	// Graph's list is the truth: b and c are gone again.
	if got, want := kindsString(s.ReplaceRoster("c1", []model.Participant{a, d})), "participant_left,participant_left"; got != want {
		t.Errorf("resync: %s, want %s", got, want)
	}
	if v := mustCall(t, s, "c1"); v.RosterNeedsResync || !slices.Equal(participantIDs(v), []string{"a", "d"}) {
		t.Errorf("after resync: %+v", v)
	}
}

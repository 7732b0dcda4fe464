package emulator

import (
	"net/http"
	"strings"
	"time"

	"github.com/botd/botd/internal/model"
	"testing"
)

// The request record is capped as maxRecorded says: the oldest requests
// are dropped and counted.
func TestRequestRecordCapped(t *testing.T) {
	e := newEmu(t, Options{})
	e.s.mu.Lock()
	e.s.maxRequests = 3
	e.s.mu.Unlock()
	for range 5 {
		e.graph(http.MethodGet, "/communications/calls/nope", "")
	}
	if got := len(e.s.Requests()); got != 3 {
		t.Errorf("%d requests recorded, want the cap 3", got)
	}
	// The token fetch and five GETs: three dropped.
	if got := e.s.RequestsDropped(); got != 3 {
		t.Errorf("RequestsDropped %d, want 3", got)
	}
}

// Graph moves only the first participant when participantId is given:
// the extras are ignored, not refused.
func TestInviteParticipantIDExtrasIgnored(t *testing.T) {
	e := newEmu(t, Options{})
	meeting := e.create(meetingBody)
	e.established(meeting.ID)
	op := e.invite(meeting.ID, inviteOf("c",
		`{"participantId":"7d501bf1-5ee4-4605-ba92-0ae4513c611c","identity":{"user":{"id":"u1"}}}`, user(maryID, "Mary")))
	if len(op.Participants) != 1 || !strings.Contains(mustJSON(t, op.Participants[0]), "participantId") {
		t.Errorf("operation participants %s, want only the first", mustJSON(t, op.Participants))
	}
}

// An invite replacing a call the emulator does not hold is accepted, and
// its operation then fails with 404.
func TestInviteUnknownReplacesCallID(t *testing.T) {
	e := newEmu(t, Options{})
	group := e.create(callTo(user(johnID, "John"), user(paulID, "Paul")))
	e.established(group.ID)
	e.invite(group.ID, `{"participants":[{"replacesCallId":"no-such-call","identity":{"user":{"id":"`+maryID+`"}}}],"clientContext":"x"}`)
	ns := e.bot.waitFor("the operation's end", func(ns []note) bool {
		_, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
		return ok
	})
	o, _ := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
	if o.Operation.Status != model.OpFailed || o.Operation.ResultInfo == nil || o.Operation.ResultInfo.Code != 404 {
		t.Errorf("operation %s, want failed with 404", o.Body)
	}
}

// Inviting someone already in the roster completes without listing or
// announcing them twice.
func TestInviteSomeoneAlreadyIn(t *testing.T) {
	e := newEmu(t, Options{})
	group := e.create(callTo(user(johnID, "John"), user(maryID, "Mary")))
	e.established(group.ID)
	rosters := func(ns []note) int {
		n := 0
		for _, x := range forCall(ns, group.ID) {
			if x.Kind == model.EventRoster {
				n++
			}
		}
		return n
	}
	e.bot.waitFor("John and Mary in", func(ns []note) bool {
		r, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventRoster })
		return ok && len(r.Participants) == 3
	})
	time.Sleep(100 * time.Millisecond)
	before := len(e.s.Participants(group.ID))
	ns0, _ := e.bot.snapshot()
	e.invite(group.ID, inviteOf("c", user(johnID, "John")))
	ns := e.bot.waitFor("the operation's end", func(ns []note) bool {
		_, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
		return ok
	})
	o, _ := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
	if o.Operation.Status != model.OpCompleted {
		t.Errorf("operation %s, want completed", o.Body)
	}
	time.Sleep(100 * time.Millisecond)
	ns, _ = e.bot.snapshot()
	if got := len(e.s.Participants(group.ID)); got != before {
		t.Errorf("roster has %d entries, want %d", got, before)
	}
	if a, b := rosters(ns0), rosters(ns); a != b {
		t.Errorf("%d roster notifications after the invite, want none", b-a)
	}
}

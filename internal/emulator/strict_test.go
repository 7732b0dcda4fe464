package emulator

import (
	"net/http"
	"strings"

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

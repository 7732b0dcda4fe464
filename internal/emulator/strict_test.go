package emulator

import (
	"net/http"
	"strings"
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

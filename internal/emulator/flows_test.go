package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/model"
)

func TestCreatePeerToPeerAccepted(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(callTo(user(johnID, "John")))
	roster := e.established(c.ID)
	ns, _ := e.bot.snapshot()
	if got, want := describeCall(ns, c.ID), []string{"call updated establishing", "call updated established", "roster 2"}; !slices.Equal(got, want) {
		t.Errorf("sequence %q, want %q", got, want)
	}
	if roster[0].ID != c.MyParticipantID || roster[0].Info.Identity.Application == nil ||
		roster[0].Info.Identity.Application.ID != e.s.Options().ClientID {
		t.Errorf("first participant %+v, want the bot (%s)", roster[0], c.MyParticipantID)
	}
	if u := roster[1].Info.Identity.User; u == nil || u.ID != johnID || u.TenantID != e.s.Options().TenantID {
		t.Errorf("second participant %+v, want John with the tenant", roster[1].Info.Identity)
	}
	for _, n := range forCall(ns, c.ID) {
		if n.ResourceURL == "" || n.Resource == "" || !strings.HasPrefix(n.Resource, "/app/calls/"+c.ID) ||
			!strings.HasPrefix(n.ResourceURL, "/communications/calls/"+c.ID) || n.CallbackURI != e.bot.URL {
			t.Errorf("paths %q %q callbackUri %q", n.Resource, n.ResourceURL, n.CallbackURI)
		}
	}
	if got, _ := e.s.Call(c.ID); got.State != model.StateEstablished {
		t.Errorf("stored state %q", got.State)
	}
}

func TestCreatePeerToPeerNotAccepted(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		target string
		want   model.ResultInfo
	}{
		{"phone ending 0000 declines", Options{}, phone("+12345670000"), ResultDeclined},
		{"phone ending 9999 never answers", Options{}, phone("+12345679999"), ResultNoAnswer},
		{"phone ending 8888 is busy", Options{}, phone("+12345678888"), ResultBusy},
		{"PeopleByID", Options{PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerDecline, After: time.Second}}}, user(johnID, "John"), ResultDeclined},
		{"People func", Options{People: func(id model.IdentitySet) Behaviour {
			if id.User != nil && id.User.DisplayName == "John" {
				return Behaviour{Answer: AnswerNoAnswer}
			}
			return Behaviour{}
		}}, user(johnID, "John"), ResultNoAnswer},
		{"seeded default declines", Options{DeclineProbability: 1}, user(johnID, "John"), ResultDeclined},
		{"seeded default never answers", Options{NoAnswerProbability: 1}, user(johnID, "John"), ResultNoAnswer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmu(t, tc.opts)
			c := e.create(callTo(tc.target))
			ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
			if got := describeCall(ns, c.ID); !slices.Equal(got, []string{"call updated establishing",
				"call deleted terminated " + codes(tc.want)}) {
				t.Errorf("sequence %q, want establishing then terminated %s", got, codes(tc.want))
			}
			end, _ := lastWhere(ns, c.ID, isTerminated)
			if r := end.Call.ResultInfo; r == nil || r.Message != tc.want.Message {
				t.Errorf("resultInfo %+v", r)
			}
			if got, _ := e.s.Call(c.ID); got.State != model.StateTerminated {
				t.Errorf("stored state %q", got.State)
			}
			if a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/keepAlive", ""); a.status != http.StatusNotFound {
				t.Errorf("keepAlive on an ended call: %d", a.status)
			}
		})
	}
}

func codes(r model.ResultInfo) string { return fmt.Sprintf("%d/%d", r.Code, r.Subcode) }

func itoa(n int) string { return strconv.Itoa(n) }

func TestCreateGroupCall(t *testing.T) {
	t.Run("the roster holds the bot and who accepted", func(t *testing.T) {
		e := newEmu(t, Options{})
		c := e.create(callTo(user(johnID, "John"), phone("+15550000000"), phone("+15559999999")))
		roster := e.established(c.ID)
		if len(roster) != 2 || roster[1].Info.Identity.User == nil || roster[1].Info.Identity.User.ID != johnID {
			t.Fatalf("roster %+v, want the bot and John", roster)
		}
		// The others decline and time out; the call stays up.
		waitFor(t, func() bool {
			e.s.mu.Lock()
			defer e.s.mu.Unlock()
			return e.s.calls[c.ID].pending == 0
		})
		ns, _ := e.bot.snapshot()
		if _, ended := lastWhere(ns, c.ID, isTerminated); ended {
			t.Errorf("group call ended although John accepted: %q", describeCall(ns, c.ID))
		}
		if got := e.s.Participants(c.ID); len(got) != 2 {
			t.Errorf("stored roster has %d", len(got))
		}
	})
	t.Run("nobody accepts", func(t *testing.T) {
		e := newEmu(t, Options{})
		c := e.create(callTo(phone("+15550000000"), phone("+15558888888")))
		ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
		end, _ := lastWhere(ns, c.ID, isTerminated)
		if r := end.Call.ResultInfo; r == nil || (r.Code != 603 && r.Code != 486) {
			t.Errorf("resultInfo %+v, want the last refusal", r)
		}
	})
	t.Run("several join one by one", func(t *testing.T) {
		e := newEmu(t, Options{PeopleByID: map[string]Behaviour{
			johnID: {Answer: AnswerAccept, After: time.Second},
			maryID: {Answer: AnswerAccept, After: 30 * time.Second},
		}})
		c := e.create(callTo(user(johnID, "John"), user(maryID, "Mary")))
		ns := e.bot.waitFor("roster of 3", func(ns []note) bool {
			r, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventRoster })
			return ok && len(r.Participants) == 3
		})
		if got, want := describeCall(ns, c.ID), []string{"call updated establishing", "call updated established", "roster 2", "roster 3"}; !slices.Equal(got, want) {
			t.Errorf("sequence %q, want %q", got, want)
		}
	})
}

func TestJoinMeeting(t *testing.T) {
	cases := []struct {
		name, body string
		roster     int // bot, attendees, organizer
		organizer  bool
	}{
		{"chatInfo and organizer", meetingBody, 4, true},
		{"joinMeetingId", joinMeetingIDBody, 3, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmu(t, Options{})
			c := e.create(tc.body)
			roster := e.established(c.ID)
			ns, _ := e.bot.snapshot()
			if got, want := describeCall(ns, c.ID), []string{"call updated establishing", "call updated established", "roster " + itoa(tc.roster)}; !slices.Equal(got, want) {
				t.Errorf("sequence %q, want %q", got, want)
			}
			est, _ := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventCall && n.Call.State == model.StateEstablished })
			if est.Call.MeetingInfo == nil || (tc.organizer && (est.Call.ChatInfo == nil || est.Call.ChatInfo.ThreadID != threadX ||
				est.Call.MeetingInfo.Organizer.User.ID != "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96")) ||
				(!tc.organizer && est.Call.MeetingInfo.JoinMeetingID != "1234567") {
				t.Errorf("established does not echo chatInfo/meetingInfo: %s", est.Body)
			}
			bots := 0
			for _, p := range roster {
				if isBot(p.Info.Identity) {
					bots++
				}
			}
			if bots != 1 || roster[0].ID != c.MyParticipantID {
				t.Errorf("roster %+v: want the bot once, first", roster)
			}
		})
	}
}

func TestCreatePSTNCall(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(`{"@odata.type":"#microsoft.graph.call",` + media + `,
	  "source":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet",
	    "applicationInstance":{"@odata.type":"#microsoft.graph.identity","displayName":"Calling Bot","id":"3d913abb-aec0-4964-8fa6-3c6850c4f278"}}},
	  "targets":[` + phone("+12345678901") + `],"tenantId":"aa67bd4c-8475-432d-bd41-39f255720e0a"}`)
	roster := e.established(c.ID)
	if len(roster) != 2 || roster[0].Info.Identity.ApplicationInstance == nil || roster[1].Info.Identity.Phone == nil ||
		roster[1].Info.Identity.Phone.ID != "+12345678901" {
		t.Errorf("roster %+v, want the bot's application instance and the phone", roster)
	}
}

func TestDeltaRosterAndContentSharing(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(`{"@odata.type":"#microsoft.graph.call","targets":[` + user(johnID, "John") + `],` + media + `,
	  "callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions","isContentSharingNotificationEnabled":true,"isDeltaRosterEnabled":true}}`)
	e.bot.waitFor("content sharing", func(ns []note) bool {
		_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventContentSharing })
		return ok
	})
	e.invite(c.ID, inviteOf("ctx-delta", user(maryID, "Mary")))
	ns := e.bot.waitFor("second delta", countFor(6, c.ID))
	want := []string{"call updated establishing", "call updated established", "delta #1 +2", "sharing created 1", "operation deleted completed", "delta #2 +1"}
	if got := describeCall(ns, c.ID); !slices.Equal(got, want) {
		t.Fatalf("sequence %q, want %q", got, want)
	}
	calls := forCall(ns, c.ID)
	if d := calls[5].Delta; d.Participants[0].Info.Identity.User.ID != maryID || d.Participants[0].RosterSequenceNumber != 2 {
		t.Errorf("second delta %+v, want only Mary at #2", d.Participants)
	}
	if s := calls[3].Sessions[0].ID; !regexp.MustCompile(`^[0-9A-F]{64}$`).MatchString(s) || calls[3].Path.Kind != model.ResourceContentSharing {
		t.Errorf("session id %q at %s", s, calls[3].ResourceURL)
	}
}

func TestInviteForms(t *testing.T) {
	cases := []struct {
		name     string
		invitees []string
		status   model.OperationStatus
		code     int32
		roster   int // roster size after (bot, John, a phone, invitees), 0 for no update
	}{
		{"one user", []string{user(maryID, "Mary")}, model.OpCompleted, 0, 4},
		{"one PSTN number", []string{phone("+12345678901")}, model.OpCompleted, 0, 4},
		{"several", []string{user(maryID, "Mary"), user(paulID, "Paul")}, model.OpCompleted, 0, 5},
		{"declined", []string{phone("+12345670000")}, model.OpFailed, 603, 0},
		{"not answered", []string{phone("+12345679999")}, model.OpFailed, 408, 0},
		{"several, one declines", []string{user(maryID, "Mary"), phone("+12345670000")}, model.OpCompleted, 0, 4},
		{"several, none answer", []string{phone("+12345679999"), phone("+12345670000")}, model.OpFailed, 603, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmu(t, Options{})
			c := e.create(callTo(user(johnID, "John"), phone("+15551112222")))
			e.bot.waitFor("roster of 3", func(ns []note) bool {
				r, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventRoster })
				return ok && len(r.Participants) == 3
			})
			op := e.invite(c.ID, inviteOf("ctx-"+tc.name, tc.invitees...))
			if op.Status != model.OpRunning || op.ID == "" {
				t.Fatalf("invite answer %+v", op)
			}
			ns := e.bot.waitFor("the operation's end", func(ns []note) bool {
				_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation })
				return ok
			})
			o, _ := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation })
			several := len(tc.invitees) > 1
			if o.ChangeType != model.ChangeDeleted || o.Operation.Status != tc.status || o.Operation.ClientContext != "ctx-"+tc.name ||
				len(o.Operation.Participants) != len(tc.invitees) {
				t.Errorf("operation notification %s", o.Body)
			}
			if r := o.Operation.ResultInfo; (tc.code == 0) != (r == nil) || (r != nil && r.Code != tc.code) {
				t.Errorf("resultInfo %+v, want code %d", r, tc.code)
			}
			var raw struct {
				Value []struct {
					Resource     string `json:"resource"`
					ResourceURL  string `json:"resourceUrl"`
					ResourceData struct {
						ID json.RawMessage `json:"id"`
					} `json:"resourceData"`
				} `json:"value"`
			}
			if err := json.Unmarshal(o.Body, &raw); err != nil {
				t.Fatal(err)
			}
			it := raw.Value[0]
			wantSub := "/operations/" + op.ID
			wantID := `"` + op.ID + `"`
			if several {
				wantSub, wantID = "/operations/participants", "null"
			}
			if it.ResourceURL != "/communications/calls/"+c.ID+wantSub || it.Resource != "/app/calls/"+c.ID+wantSub || string(it.ResourceData.ID) != wantID {
				t.Errorf("operation at %q / %q with id %s, want %s and id %s", it.ResourceURL, it.Resource, it.ResourceData.ID, wantSub, wantID)
			}
			got, _ := e.s.Operation(c.ID, op.ID)
			if got.Status != tc.status {
				t.Errorf("stored operation %+v", got)
			}
			if tc.roster == 0 {
				return
			}
			ns = e.bot.waitFor("roster update", func(ns []note) bool {
				r, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventRoster })
				return ok && len(r.Participants) == tc.roster
			})
			all := describeCall(ns, c.ID)
			if i := slices.Index(all, "operation deleted completed"); i < 0 || i+1 >= len(all) || all[i+1] != "roster "+itoa(tc.roster) {
				t.Errorf("sequence %q: want the roster update right after the operation", all)
			}
		})
	}
}

func TestInviteRules(t *testing.T) {
	e := newEmu(t, Options{})
	group := e.create(callTo(user(johnID, "John"), user(maryID, "Mary")))
	p2p := e.create(callTo(user(paulID, "Paul")))
	meeting := e.create(meetingBody)
	e.established(meeting.ID)
	e.established(group.ID)
	bot := `{"identity":{"application":{"id":"another-bot","displayName":"Other Bot"}}}`
	six := []string{}
	for range 6 {
		six = append(six, phone("+12345678901"))
	}
	cases := []struct {
		name, call, body, msg string
	}{
		{"more than five", group.ID, inviteOf("c", six...), "maximum of 5"},
		{"several into a peer-to-peer call", p2p.ID, inviteOf("c", user(johnID, "John"), user(maryID, "Mary")), "only supported for group calls"},
		{"a second bot into a meeting", meeting.ID, inviteOf("c", bot), "more than one bot"},
		{"a second bot into a group call", group.ID, inviteOf("c", bot), "more than one bot"},
		{"no identity", group.ID, inviteOf("c", `{"endpointType":"default"}`), "identity is required"},
	}
	for _, tc := range cases {
		a := e.graph(http.MethodPost, "/communications/calls/"+tc.call+"/participants/invite", tc.body)
		var eb ErrorBody
		a.json(t, &eb)
		if a.status != http.StatusBadRequest || eb.Error.Code != "BadRequest" || !strings.Contains(eb.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", tc.name, a.status, a.body, tc.msg)
		}
	}
	// One participant into the peer-to-peer call is fine, and escalates it.
	e.invite(p2p.ID, inviteOf("c", user(johnID, "John")))
}

func TestInviteReplacesCallID(t *testing.T) {
	e := newEmu(t, Options{})
	p2p := e.create(callTo(user(maryID, "Mary")))
	e.established(p2p.ID)
	group := e.create(callTo(user(johnID, "John"), user(paulID, "Paul")))
	e.established(group.ID)
	op := e.invite(group.ID, `{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"`+p2p.ID+`",
	  "identity":{"user":{"id":"`+maryID+`","identityProvider":"AAD"}}}],"clientContext":"ctx-replace"}`)
	ns := e.bot.waitFor("the replaced call deleted and the operation's end", func(ns []note) bool {
		_, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
		return ok && terminatedCall(p2p.ID)(ns)
	})
	if got, want := describeCall(ns, p2p.ID)[3:], []string{"call updated terminated 200/7000", "call deleted terminated 200/7000"}; !slices.Equal(got, want) {
		t.Errorf("replaced call ends with %q, want %q", got, want)
	}
	o, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventOperation })
	if !ok || o.Operation.Status != model.OpCompleted || o.Path.SubID != op.ID {
		t.Errorf("operation %s", o.Body)
	}
	if got, _ := e.s.Call(p2p.ID); got.State != model.StateTerminated {
		t.Errorf("replaced call state %q", got.State)
	}
	ns = e.bot.waitFor("roster with Mary", func(ns []note) bool {
		r, ok := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventRoster })
		return ok && len(r.Participants) == 4
	})
	r, _ := lastWhere(ns, group.ID, func(n note) bool { return n.Kind == model.EventRoster })
	if !slices.ContainsFunc(r.Participants, func(p model.Participant) bool {
		return p.Info.Identity.User != nil && p.Info.Identity.User.ID == maryID
	}) {
		t.Errorf("group roster %s, want Mary in it", r.Body)
	}
}

func TestInviteMoveParticipant(t *testing.T) {
	e := newEmu(t, Options{})
	from := e.create(meetingBody)
	fromRoster := e.established(from.ID)
	to := e.create(joinMeetingIDBody)
	e.established(to.ID)
	moved := fromRoster[len(fromRoster)-1]
	e.invite(to.ID, `{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","participantId":"`+moved.ID+`",
	  "identity":`+mustJSON(t, moved.Info.Identity)+`}],"clientContext":"ctx-move"}`)
	ns := e.bot.waitFor("source roster update", func(ns []note) bool {
		r, ok := lastWhere(ns, from.ID, func(n note) bool { return n.Kind == model.EventRoster })
		return ok && len(r.Participants) == len(fromRoster)-1
	})
	r, _ := lastWhere(ns, from.ID, func(n note) bool { return n.Kind == model.EventRoster })
	if slices.ContainsFunc(r.Participants, func(p model.Participant) bool { return p.ID == moved.ID }) {
		t.Errorf("moved participant still in the source roster")
	}
	ns = e.bot.waitFor("target roster update", func(ns []note) bool {
		r, ok := lastWhere(ns, to.ID, func(n note) bool { return n.Kind == model.EventRoster })
		return ok && len(r.Participants) == 4
	})
	r, _ = lastWhere(ns, to.ID, func(n note) bool { return n.Kind == model.EventRoster })
	if got := r.Participants[3].Info.Identity.User; got == nil || got.ID != moved.Info.Identity.User.ID {
		t.Errorf("target roster %+v, want the moved participant last", r.Participants)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const answerBody = `{"callbackUri":"%s","acceptedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`

func TestIncomingAndAnswer(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.incoming(`{"from":{"user":"` + johnID + `","displayName":"John"}}`)
	if c.ID == "" || c.State != model.StateIncoming || c.Direction != "incoming" {
		t.Fatalf("incoming answer %+v", c)
	}
	ns := e.bot.waitFor("incoming notification", countFor(1, c.ID))
	in := forCall(ns, c.ID)[0]
	if in.ChangeType != model.ChangeCreated || in.Call.State != model.StateIncoming || in.Call.Direction != "incoming" ||
		in.Call.Source == nil || in.Call.Source.Identity.User.ID != johnID || len(in.Call.Targets) != 1 ||
		in.Call.Targets[0].Identity.Application.ID != e.s.Options().ClientID || in.Call.MyParticipantID == "" ||
		!strings.Contains(string(in.Body), `"@odata.id":"/communications/calls/`+c.ID+`"`) {
		t.Errorf("incoming notification %s", in.Body)
	}
	a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/answer", strings.Replace(answerBody, "%s", e.bot.URL, 1))
	if a.status != http.StatusAccepted {
		t.Fatalf("answer: %d %s", a.status, a.body)
	}
	roster := e.established(c.ID)
	ns, _ = e.bot.snapshot()
	if got, want := describeCall(ns, c.ID), []string{"call created incoming", "call updated establishing", "call updated established", "roster 2"}; !slices.Equal(got, want) {
		t.Errorf("sequence %q, want %q", got, want)
	}
	if roster[0].ID != c.MyParticipantID || roster[0].Info.Identity.Application == nil ||
		roster[0].Info.Identity.Application.ID != e.s.Options().ClientID || roster[1].Info.Identity.User.ID != johnID {
		t.Errorf("roster %+v, want bot and caller", roster)
	}
}

func TestIncomingRejectAndRedirect(t *testing.T) {
	cases := []struct {
		verb, body, want string
	}{
		{"reject", `{"reason":"busy"}`, "call deleted terminated 486/0"},
		{"reject", `{"reason":"none"}`, "call deleted terminated 603/0"},
		{"reject", `{"reason":"forbidden"}`, "call deleted terminated 403/0"},
		{"redirect", `{"targets":[` + phone("+12345678901") + `]}`, "call deleted terminated 302/0"},
	}
	for _, tc := range cases {
		t.Run(tc.verb+" "+tc.body, func(t *testing.T) {
			e := newEmu(t, Options{})
			c := e.incoming(`{"from":{"phone":"+15555550100"},"to":{"phone":"+15555550199"}}`)
			e.bot.waitFor("incoming", countFor(1, c.ID))
			if a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/"+tc.verb, tc.body); a.status != http.StatusAccepted {
				t.Fatalf("%s: %d %s", tc.verb, a.status, a.body)
			}
			ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
			if got := describeCall(ns, c.ID); !slices.Equal(got, []string{"call created incoming", tc.want}) {
				t.Errorf("sequence %q", got)
			}
			in := forCall(ns, c.ID)[0]
			if id := in.Call.Targets[0].Identity; id.Phone == nil || id.Phone.ID != "+15555550199" || in.Call.Source.Identity.Phone.ID != "+15555550100" {
				t.Errorf("PSTN incoming %s", in.Body)
			}
		})
	}
}

func TestHangup(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(callTo(user(johnID, "John")))
	e.established(c.ID)
	if a := e.graph(http.MethodDelete, "/communications/calls/"+c.ID, ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d", a.status)
	}
	ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
	got := describeCall(ns, c.ID)
	if want := []string{"call updated terminating", "call deleted terminated 200/5001"}; !slices.Equal(got[len(got)-2:], want) {
		t.Errorf("hangup sequence %q, want it to end with %q", got, want)
	}
}

func TestTransfer(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{user(maryID, "Mary"), []string{"call updated transferring", "call updated transferAccepted", "call deleted terminated 200/7015"}},
		{phone("+12345670000"), []string{"call updated transferring", "call updated established 603/0"}},
	} {
		e := newEmu(t, Options{})
		c := e.create(callTo(user(johnID, "John")))
		e.established(c.ID)
		if a := e.graph(http.MethodPost, "/communications/calls/"+c.ID+"/transfer", `{"transferTarget":`+tc.target+`}`); a.status != http.StatusAccepted {
			t.Fatalf("transfer: %d %s", a.status, a.body)
		}
		ns := e.bot.waitFor("transfer outcome", countFor(3+len(tc.want), c.ID))
		if got := describeCall(ns, c.ID)[3:]; !slices.Equal(got, tc.want) {
			t.Errorf("transfer sequence %q, want %q", got, tc.want)
		}
	}
}

func TestEndCallFromTheFarSide(t *testing.T) {
	for _, overHTTP := range []bool{false, true} {
		e := newEmu(t, Options{})
		c := e.create(callTo(user(johnID, "John")))
		e.established(c.ID)
		end := func(id string) bool { return e.s.EndCall(id, nil) }
		if overHTTP {
			end = func(id string) bool {
				a := send(t, http.MethodDelete, e.s.URL()+"/emulator/calls/"+id, "", "", "")
				if a.status != http.StatusNoContent && a.status != http.StatusNotFound {
					t.Fatalf("DELETE /emulator/calls/%s = %d %s", id, a.status, a.body)
				}
				return a.status == http.StatusNoContent
			}
		}
		if !end(c.ID) || end(c.ID) || end("nope") {
			t.Fatalf("EndCall (HTTP %v): want true once for a live call, false after", overHTTP)
		}
		ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
		if got := describeCall(ns, c.ID); got[len(got)-1] != "call deleted terminated 200/18503" {
			t.Errorf("sequence %q", got)
		}
	}
}

// TestLeave: people leave a joined meeting on their own (Leave, and its
// HTTP form); the bot gets each roster without them, and stays in the
// call, alone at the end. The bot itself cannot be made to leave.
func TestLeave(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(joinMeetingIDBody)
	roster := e.established(c.ID)
	if len(roster) != 3 {
		t.Fatalf("roster %d, want the bot and two attendees", len(roster))
	}
	if e.s.Leave(c.ID, c.MyParticipantID) {
		t.Error("the bot was made to leave")
	}
	if e.s.Leave(c.ID, "nobody") || e.s.Leave("nosuch", roster[1].ID) {
		t.Error("Leave reported an unknown participant or call gone")
	}
	if !e.s.Leave(c.ID, roster[1].ID) {
		t.Fatal("Leave refused an attendee")
	}
	a := send(t, http.MethodDelete, e.s.URL()+"/emulator/calls/"+c.ID+"/participants/"+roster[2].ID, "", "", "")
	if a.status != http.StatusNoContent {
		t.Fatalf("DELETE /emulator/calls/.../participants = %d %s", a.status, a.body)
	}
	if a := send(t, http.MethodDelete, e.s.URL()+"/emulator/calls/"+c.ID+"/participants/"+roster[2].ID, "", "", ""); a.status != http.StatusNotFound {
		t.Errorf("a second leave = %d", a.status)
	}
	ns := e.bot.waitFor("a roster of the bot alone", func(ns []note) bool {
		_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventRoster && len(n.Participants) == 1 })
		return ok
	})
	var sizes []int
	for _, n := range forCall(ns, c.ID) {
		if n.Kind == model.EventRoster {
			sizes = append(sizes, len(n.Participants))
		}
	}
	// A full roster is the roster when it is posted: two leaves a step
	// apart may come as one.
	if len(sizes) < 2 || sizes[0] != 3 || !slices.IsSortedFunc(sizes, func(a, b int) int { return b - a }) {
		t.Errorf("roster sizes %v, want 3 first, then fewer", sizes)
	}
	if last, _ := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventRoster }); last.Participants[0].ID != c.MyParticipantID {
		t.Errorf("last roster %s, want the bot alone", last.Body)
	}
	if got := e.s.Participants(c.ID); len(got) != 1 {
		t.Errorf("emulator holds %d participants", len(got))
	}
	if v, ok := e.s.Call(c.ID); !ok || v.State != model.StateEstablished {
		t.Errorf("call %v after everyone left, want it established", v.State)
	}
}

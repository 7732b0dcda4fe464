package notify

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// summary is what a test checks of one event: enough to tell every seed
// notification apart, compact enough to write down per file.
type summary struct {
	Kind        model.EventKind
	Change      model.ChangeType
	CallID      string
	PathKind    model.ResourceKind
	SubID       string
	ODataType   string
	Legacy      bool // the deprecated resource path was sent too
	CallbackURI string

	State       model.CallState
	Direction   string
	ChatThread  string
	MeetingType string
	Organizer   string // kind:id of the organizer's primary identity

	Seq          int64
	Participants []psum

	OpID          string
	OpStatus      model.OperationStatus
	ClientContext string
	Invitees      []string // kind:id

	Sessions []string
}

type psum struct {
	ID        string
	Identity  string // kind:id of the primary identity
	Muted     bool
	Streams   int
	RosterSeq int64
	Removed   string
}

func primary(s *model.IdentitySet) string {
	kind, id := s.Primary()
	if id == nil {
		return ""
	}
	return kind + ":" + id.ID
}

func summarize(ev *model.Event) summary {
	s := summary{
		Kind: ev.Kind, Change: ev.ChangeType, CallID: ev.CallID(),
		PathKind: ev.Path.Kind, SubID: ev.Path.SubID, ODataType: ev.ODataType,
		Legacy: ev.Resource != "", CallbackURI: ev.CallbackURI,
	}
	if c := ev.Call; c != nil {
		s.State, s.Direction = c.State, c.Direction
		if c.ChatInfo != nil {
			s.ChatThread = c.ChatInfo.ThreadID
		}
		if c.MeetingInfo != nil {
			s.MeetingType = c.MeetingInfo.ODataType
			s.Organizer = primary(c.MeetingInfo.Organizer)
		}
	}
	ps := ev.Participants
	if ev.Delta != nil {
		s.Seq, ps = ev.Delta.SequenceNumber, ev.Delta.Participants
	}
	for _, p := range ps {
		q := psum{ID: p.ID, Identity: primary(p.Info.Identity), Muted: p.IsMuted, Streams: len(p.MediaStreams), RosterSeq: p.RosterSequenceNumber}
		if p.RemovedState != nil {
			q.Removed = p.RemovedState.Reason
		}
		s.Participants = append(s.Participants, q)
	}
	if op := ev.Operation; op != nil {
		s.OpID, s.OpStatus, s.ClientContext = op.ID, op.Status, op.ClientContext
		for _, p := range op.Participants {
			s.Invitees = append(s.Invitees, primary(p.Identity))
		}
	}
	for _, ss := range ev.Sessions {
		s.Sessions = append(s.Sessions, ss.ID)
	}
	return s
}

// Ids that recur across the seed examples.
const (
	callInvite1   = "ab6233a5-20b7-4c5e-bea2-ce56c9776429"
	callInvite2   = "7531d31f-d10d-44de-802f-c569dbca451c"
	callReplaced  = "a7ebfb2d-871e-419c-87af-27290b22e8db"
	callMeeting   = "2f1a1100-b174-40a0-aba7-0b405e01ed92"
	callSharing   = "421f4c00-4436-4c3a-9d9a-c4924cf98e67"
	callDelta     = "421f7700-f4ad-4ea9-a3fc-c1d2195675ad"
	opInvite1     = "eec3812a-fdc3-4fb4-825c-a06c9f35414e"
	opInvite3     = "278405a3-f568-4b3e-b684-009193463064"
	clientContext = "f2fa86af-3c51-4bc2-8fc0-475452d9764f"
	userA         = "7e1b4346-85a6-4bdd-abe3-d11c5d420efe"
	userB         = "1e126418-44a0-4a94-a6f8-0efe1ad71acb"
	userC         = "682b6c37-0729-4fab-ace6-d730d5d9137e"
	john          = "112f7296-5fa4-42ca-bae8-6a692b15d4b8"
	bot           = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
	johnPID       = "0d7664b6-6432-43ed-8d27-d9e7adec188c"
	botPID        = "05491616-385f-44a8-9974-18cc5f9933c1"
	sharingID     = "F7D9EF30FF0A9BD3F64B274387FB8FF8E96B6CFBA8F87F8305A74DE99AF007BC"
	meetingThread = "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
)

func inviteOp(callID, opID string, invitees ...string) summary {
	sub := opID
	if opID == "" {
		sub = "participants" // invite example 2: null id, path .../operations/participants
	}
	return summary{
		Kind: model.EventOperation, Change: model.ChangeDeleted, CallID: callID,
		PathKind: model.ResourceOperation, SubID: sub, ODataType: model.ODataInviteParticipantsOp, Legacy: true,
		OpID: opID, OpStatus: model.OpCompleted, ClientContext: clientContext, Invitees: invitees,
	}
}

func roster(callID string, ps ...psum) summary {
	return summary{
		Kind: model.EventRoster, Change: model.ChangeUpdated, CallID: callID,
		PathKind: model.ResourceParticipants, ODataType: model.ODataParticipant, Legacy: true, Participants: ps,
	}
}

func callState(callID string, state model.CallState) summary {
	return summary{
		Kind: model.EventCall, Change: model.ChangeUpdated, CallID: callID, PathKind: model.ResourceCall,
		ODataType: model.ODataCall, CallbackURI: "https://bot.contoso.com/callback", State: state,
	}
}

func meetingCall(state model.CallState) summary {
	s := callState(callMeeting, state)
	s.ChatThread, s.MeetingType, s.Organizer = meetingThread, model.ODataOrganizerMeetingInfo, "user:5810cede-f3cc-42eb-b2c1-e9bd5d53ec96"
	return s
}

func sharing(change model.ChangeType) summary {
	return summary{
		Kind: model.EventContentSharing, Change: change, CallID: callSharing, PathKind: model.ResourceContentSharing,
		ODataType: model.ODataContentSharingSession, Sessions: []string{sharingID},
	}
}

// seedWant holds, for every notification among the seed payloads, the one
// event it must decode to.
var seedWant = func() map[string]summary {
	// Invite examples 1-4 of the German page (001) and its older Chinese
	// markdown twin (004) are the same notifications.
	invite := map[string]summary{
		"03": inviteOp(callInvite1, opInvite1, "user:"+opInvite3),
		"04": roster(callInvite1, psum{Identity: "application:" + opInvite3, Streams: 1}),
		// Example 2: operation with "id": null, matched by clientContext.
		"07": inviteOp(callInvite2, "", "user:"+userA, "user:"+userB),
		// Example 2: a roster at .../operations/participants.
		"08": func() summary {
			s := roster(callInvite2, psum{Identity: "application:" + userA, Streams: 1}, psum{Identity: "user:" + userB, Streams: 1})
			s.PathKind, s.SubID = model.ResourceOperation, "participants"
			return s
		}(),
		"11": inviteOp(callInvite1, opInvite3, "user:"+userA),
		// Example 3: the roster comes for the replaced call's id.
		"12": roster(callReplaced, psum{Identity: "user:" + userA, Streams: 1}),
		"15": inviteOp(callInvite1, opInvite1, "phone:+12345678901"),
		"16": roster(callInvite1, psum{Identity: "phone:+12345678901", Streams: 1}),
		"19": inviteOp(callInvite1, opInvite3, "user:"+userC),
		"20": roster(callInvite1, psum{Identity: "user:" + userC, Streams: 1}),
	}
	w := map[string]summary{}
	for n, s := range invite {
		w["001_"+n+"_notification.json"] = s
		if n != "19" && n != "20" {
			w["004_"+n+"_notification.json"] = s
		}
	}
	w["003_03_notification.json"] = callState("2e1a0b00-2db4-4022-9570-243709c565ab", model.StateEstablishing)
	established := callState("2e1a0b00-b3c5-4b0f-99b3-c133bc1e6116", model.StateEstablished)
	established.Direction = "outgoing"
	w["003_04_notification.json"] = established
	w["003_05_notification.json"] = sharing(model.ChangeCreated)
	w["003_06_notification.json"] = sharing(model.ChangeUpdated)
	w["003_07_notification.json"] = sharing(model.ChangeDeleted)
	w["003_16_notification.json"] = meetingCall(model.StateEstablishing)
	w["003_17_notification.json"] = meetingCall(model.StateEstablished)
	full := roster(callMeeting,
		psum{ID: johnPID, Identity: "user:" + john, Muted: true, Streams: 3},
		psum{ID: botPID, Identity: "application:" + bot, Streams: 1})
	full.Legacy, full.CallbackURI = false, "https://bot.contoso.com/callback"
	w["003_18_notification.json"] = full
	w["003_19_notification.json"] = summary{
		Kind: model.EventRosterDelta, Change: model.ChangeUpdated, CallID: callDelta,
		PathKind: model.ResourceParticipants, ODataType: model.ODataDeltaParticipants, Legacy: true, Seq: 1,
		Participants: []psum{
			{ID: johnPID, Identity: "user:" + john, Muted: true, Streams: 3, RosterSeq: 1},
			{ID: botPID, Identity: "application:" + bot, Streams: 1, RosterSeq: 1, Removed: "Removed from roster"},
		},
	}
	return w
}()

// notificationFiles lists the notification payloads per INDEX.tsv, and
// fails if the index and the directory disagree.
func notificationFiles(t testing.TB) []string {
	t.Helper()
	return indexedFiles(t, testkit.SeedDir, "*_notification.json", func(cols []string) bool {
		return len(cols) >= 4 && cols[3] == "notification"
	})
}

// indexedFiles lists the first column of the rows of dir/INDEX.tsv that
// keep accepts, and fails unless they are as many as the files in dir that
// match glob, and not none.
func indexedFiles(t testing.TB, dir, glob string, keep func(cols []string) bool) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if cols := strings.Split(sc.Text(), "\t"); keep(cols) {
			files = append(files, cols[0])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(onDisk) != len(files) || len(files) == 0 {
		t.Fatalf("%s/INDEX.tsv lists %d files, the directory holds %d matching %s", dir, len(files), len(onDisk), glob)
	}
	return files
}

func TestSeedNotifications(t *testing.T) {
	files := notificationFiles(t)
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := seedWant[name]
			if !ok {
				t.Fatalf("no table row for seed notification %s: add one to seedWant", name)
			}
			body := testkit.Seed(t, name)
			ev := decodeSingle(t, body)
			if ev.Index != 0 || ev.Raw != nil {
				t.Errorf("Index %d, Raw %q; want 0, nil", ev.Index, ev.Raw)
			}
			got := summarize(ev)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("event:\n got %+v\nwant %+v", got, want)
			}
			// Nothing the event holds may alias the body: callstate keeps
			// events long after the request's buffer is reused.
			for i := range body {
				body[i] = 'X'
			}
			if again := summarize(ev); !reflect.DeepEqual(again, got) {
				t.Errorf("event changed when the body was overwritten: it aliases the body\n got %+v", again)
			}
		})
	}
	for name := range seedWant {
		if _, err := os.Stat(filepath.Join(testkit.SeedDir, name)); err != nil {
			t.Errorf("table row for %s, which is not a seed payload", name)
		}
	}
}

// TestCrossCheckStdlib decodes every seed notification with Decode and with
// the plain encoding/json baseline and requires identical events.
func TestCrossCheckStdlib(t *testing.T) {
	for _, name := range notificationFiles(t) {
		t.Run(name, func(t *testing.T) {
			body := testkit.Seed(t, name)
			b, err := NewDecoder(DefaultLimits()).Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want, err := stdDecode(body)
			if err != nil {
				t.Fatalf("stdDecode: %v", err)
			}
			if !reflect.DeepEqual(b.Events, want) {
				t.Errorf("Decode and encoding/json disagree:\n got %+v\nwant %+v", b.Events, want)
			}
		})
	}
}

package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// The request bodies below are built by hand from the typed API, the way
// botd code builds them, and must marshal to JSON equivalent to the seed
// pages' request examples (testdata/seeds, copied from shared/seeds).

func ptr[T any](v T) *T { return &v }

func identity(id, name string) *model.Identity {
	return &model.Identity{ODataType: model.ODataIdentity, ID: id, DisplayName: name}
}

func aadUser(id string) *model.IdentitySet {
	return &model.IdentitySet{ODataType: model.ODataIdentitySet,
		User: &model.Identity{ODataType: model.ODataIdentity, ID: id, IdentityProvider: "AAD"}}
}

func phone(number string) *model.IdentitySet {
	return &model.IdentitySet{ODataType: model.ODataIdentitySet, Phone: identity(number, "")}
}

func userTarget(id, name string) model.InvitationParticipantInfo {
	return model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant,
		Identity: &model.IdentitySet{ODataType: model.ODataIdentitySet, User: identity(id, name)}}
}

func appSource(id, name string) *model.ParticipantInfo {
	return &model.ParticipantInfo{ODataType: model.ODataParticipantInfo,
		Identity: &model.IdentitySet{ODataType: model.ODataIdentitySet, Application: identity(id, name)}}
}

func appInstanceSource(id, name string) *model.ParticipantInfo {
	return &model.ParticipantInfo{ODataType: model.ODataParticipantInfo,
		Identity: &model.IdentitySet{ODataType: model.ODataIdentitySet, ApplicationInstance: identity(id, name)}}
}

var prefetch = []model.MediaInfo{
	{URI: "https://cdn.contoso.com/beep.wav", ResourceID: "f8971b04-b53e-418c-9222-c82ce681a582"},
	{URI: "https://cdn.contoso.com/cool.wav", ResourceID: "86dc814b-c172-4428-9112-60f8ecae1edb"},
}

const (
	callback   = "https://bot.contoso.com/callback"
	threadID   = "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
	seedCtx    = "f2fa86af-3c51-4bc2-8fc0-475452d9764f"
	replacesID = "a7ebfb2d-871e-419c-87af-27290b22e8db"
)

type createSeed struct {
	name     string
	request  string // seed request file
	response string // seed response file
	location string // call id in the seed's Location header
	call     func() *model.Call
}

var createSeeds = []createSeed{
	{"p2p service-hosted with callOptions", "003_01_request.json", "003_02_response.json", "2e1a0b00-2db4-4022-9570-243709c565ab", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			Targets:             []model.InvitationParticipantInfo{userTarget("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John")},
			RequestedModalities: []string{"audio"},
			CallOptions:         &model.CallOptions{ODataType: model.ODataOutgoingCallOptions, IsContentSharingNotificationEnabled: ptr(true), IsDeltaRosterEnabled: ptr(true)},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig},
		}
	}},
	{"p2p app-hosted", "003_08_request.json", "003_09_response.json", "2e1a0b00-2db4-4022-9570-243709c565ab", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			Source:              appSource("2891555a-92ff-42e6-80fa-6e1300c6b5c6", "Calling Bot"),
			Targets:             []model.InvitationParticipantInfo{userTarget("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John")},
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig, Blob: "<Media Session Configuration>"},
		}
	}},
	{"group service-hosted", "003_10_request.json", "003_11_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, Direction: "outgoing", Subject: "Create a group call with service hosted media", CallbackURI: callback,
			Source: appSource("dd3885da-f9ab-486b-bfae-85de3d445555", "TestBot"),
			Targets: []model.InvitationParticipantInfo{
				userTarget("98da8a1a-1b87-452c-a713-65d3f10b5555", "user1"),
				userTarget("bf5aae9a-d11d-47a8-93b1-782504c95555", "user2"),
			},
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig, RemoveFromDefaultAudioGroup: ptr(false)},
		}
	}},
	{"group app-hosted", "003_12_request.json", "003_13_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, Direction: "outgoing", Subject: "Create a group call with application hosted media", CallbackURI: callback,
			Source: appSource("dd3885da-f9ab-486b-bfae-85de3d445555", "TestBot"),
			Targets: []model.InvitationParticipantInfo{
				userTarget("98da8a1a-1b87-452c-a713-65d3f10b5555", "user1"),
				userTarget("bf5aae9a-d11d-47a8-93b1-782504c95555", "user2"),
			},
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig, RemoveFromDefaultAudioGroup: ptr(false)},
		}
	}},
	{"join meeting by chatInfo+organizer, service-hosted", "003_14_request.json", "003_15_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig, PreFetchMedia: prefetch},
			ChatInfo:            &model.ChatInfo{ODataType: model.ODataChatInfo, ThreadID: threadID, MessageID: "0"},
			MeetingInfo: &model.MeetingInfo{ODataType: model.ODataOrganizerMeetingInfo,
				Organizer: &model.IdentitySet{ODataType: model.ODataIdentitySet, User: &model.Identity{ODataType: model.ODataIdentity,
					ID: "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96", DisplayName: "Bob", TenantID: "86dc81db-c112-4228-9222-63f3esaa1edb"}},
				AllowConversationWithoutHost: ptr(true)},
			TenantID: "86dc81db-c112-4228-9222-63f3esaa1edb",
		}
	}},
	{"join meeting by chatInfo+organizer, app-hosted", "003_20_request.json", "003_21_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, Direction: "outgoing", CallbackURI: callback,
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig},
			ChatInfo:            &model.ChatInfo{ODataType: model.ODataChatInfo, ThreadID: threadID, MessageID: "0"},
			MeetingInfo: &model.MeetingInfo{ODataType: model.ODataOrganizerMeetingInfo,
				Organizer: &model.IdentitySet{ODataType: model.ODataIdentitySet, User: &model.Identity{ODataType: model.ODataIdentity,
					ID: "5810cede-f3cc-42eb-b2c1-e9bd5d53ec96", DisplayName: "Bob", TenantID: "aa67bd4c-8475-432d-bd41-39f255720e0a"}},
				AllowConversationWithoutHost: ptr(true)},
			TenantID: "aa67bd4c-8475-432d-bd41-39f255720e0a",
		}
	}},
	{"join meeting by joinMeetingId with passcode", "003_22_request.json", "003_23_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig, PreFetchMedia: prefetch},
			MeetingInfo:         &model.MeetingInfo{ODataType: model.ODataJoinMeetingIDMeetingInfo, JoinMeetingID: "1234567", Passcode: ptr("psw123")},
			TenantID:            "86dc81db-c112-4228-9222-63f3esaa1edb",
		}
	}},
	{"join meeting by joinMeetingId without passcode", "003_24_request.json", "003_25_response.json", "2f1a1100-b174-40a0-aba7-0b405e01ed92", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig, PreFetchMedia: prefetch},
			MeetingInfo:         &model.MeetingInfo{ODataType: model.ODataJoinMeetingIDMeetingInfo, JoinMeetingID: "1234567"},
			TenantID:            "86dc81db-c112-4228-9222-63f3esaa1edb",
		}
	}},
	{"p2p PSTN service-hosted", "003_26_request.json", "003_27_response.json", "2e1a0b00-2db4-4022-9570-243709c565ab", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			Source: appInstanceSource("3d913abb-aec0-4964-8fa6-3c6850c4f278", "Calling Bot"),
			Targets: []model.InvitationParticipantInfo{{ODataType: model.ODataInvitationParticipant,
				Identity: phone("+12345678901")}},
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig},
			TenantID:            "aa67bd4c-8475-432d-bd41-39f255720e0a",
		}
	}},
	{"p2p PSTN app-hosted", "003_28_request.json", "003_29_response.json", "2e1a0b00-2db4-4022-9570-243709c565ab", func() *model.Call {
		return &model.Call{ODataType: model.ODataCall, CallbackURI: callback,
			Source: appInstanceSource("3d913abb-aec0-4964-8fa6-3c6850c4f278", "Calling Bot"),
			Targets: []model.InvitationParticipantInfo{{ODataType: model.ODataInvitationParticipant,
				Identity: phone("+12345678901")}},
			RequestedModalities: []string{"audio"},
			MediaConfig:         &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig, Blob: "<Media Session Configuration>"},
			TenantID:            "aa67bd4c-8475-432d-bd41-39f255720e0a",
		}
	}},
}

type inviteSeed struct {
	name     string
	request  string
	response string
	callID   string
	req      func() *InviteRequest
	warn     bool
}

func invitee(id string, replaces, participantID string) model.InvitationParticipantInfo {
	return model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant,
		ReplacesCallID: replaces, ParticipantID: participantID, Identity: aadUser(id)}
}

var inviteSeeds = []inviteSeed{
	{"one participant", "001_01_request.json", "001_02_response.json", "7531d31f-d10d-44de-802f-c569dbca451c", func() *InviteRequest {
		return &InviteRequest{ClientContext: seedCtx, Participants: []model.InvitationParticipantInfo{
			invitee("278405a3-f568-4b3e-b684-009193463064", replacesID, "")}}
	}, false},
	{"several participants", "001_05_request.json", "001_06_response.json", "7531d31f-d10d-44de-802f-c569dbca451c", func() *InviteRequest {
		return &InviteRequest{ClientContext: seedCtx, Participants: []model.InvitationParticipantInfo{
			invitee("7e1b4346-85a6-4bdd-abe3-d11c5d420efe", replacesID, ""),
			invitee("1e126418-44a0-4a94-a6f8-0efe1ad71acb", replacesID, "")}}
	}, true},
	{"replacing a p2p call", "001_09_request.json", "001_10_response.json", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", func() *InviteRequest {
		return &InviteRequest{ClientContext: seedCtx, Participants: []model.InvitationParticipantInfo{
			invitee("7e1b4346-85a6-4bdd-abe3-d11c5d420efe", replacesID, "")}}
	}, false},
	{"PSTN participant", "001_13_request.json", "001_14_response.json", "7531d31f-d10d-44de-802f-c569dbca451c", func() *InviteRequest {
		return &InviteRequest{ClientContext: seedCtx, Participants: []model.InvitationParticipantInfo{
			{ODataType: model.ODataInvitationParticipant, Identity: phone("+12345678901")}}}
	}, false},
	{"move a participant", "001_17_request.json", "001_18_response.json", "ab6233a5-20b7-4c5e-bea2-ce56c9776429", func() *InviteRequest {
		return &InviteRequest{ClientContext: seedCtx, Participants: []model.InvitationParticipantInfo{
			invitee("682b6c37-0729-4fab-ace6-d730d5d9137e", replacesID, "7d501bf1-5ee4-4605-ba92-0ae4513c611c")}}
	}, false},
}

// TestSeedRequestBodiesMarshal compares each typed body with its seed
// request JSON (null ≡ absent, see jsonDiff).
func TestSeedRequestBodiesMarshal(t *testing.T) {
	for _, s := range createSeeds {
		t.Run("create/"+s.name, func(t *testing.T) {
			call := s.call()
			if err := ValidateCall(call); err != nil {
				t.Fatalf("seed form refused by validation: %v", err)
			}
			got, err := json.Marshal(call)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEquivalent(t, testkit.Seed(t, s.request), got)
		})
	}
	for _, s := range inviteSeeds {
		t.Run("invite/"+s.name, func(t *testing.T) {
			req := s.req()
			if err := ValidateInvite(req); err != nil {
				t.Fatalf("seed form refused by validation: %v", err)
			}
			got, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEquivalent(t, testkit.Seed(t, s.request), got)
		})
	}
}

func assertJSONEquivalent(t *testing.T, want, got []byte) {
	t.Helper()
	d, err := jsonDiff(want, got)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range d {
		t.Error(line)
	}
}

// TestSeedRequestsOnTheWire sends each seed form through the client to the
// fake Graph and compares what the fake received with the seed JSON.
func TestSeedRequestsOnTheWire(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := context.Background()
	for _, s := range createSeeds {
		t.Run("create/"+s.name, func(t *testing.T) {
			e.fg.Reset()
			call, meta, err := e.c.CreateCall(ctx, s.call())
			if err != nil {
				t.Fatalf("CreateCall: %v", err)
			}
			reqs := e.fg.Requests(emulator.RouteCreateCall)
			if len(reqs) != 1 {
				t.Fatalf("fake got %d create requests, want 1", len(reqs))
			}
			assertJSONEquivalent(t, testkit.Seed(t, s.request), reqs[0].Body)
			if call.ID == "" || call.State != model.StateEstablishing || call.MyParticipantID == "" || call.CallChainID == "" {
				t.Errorf("decoded call = %+v, want id, establishing, myParticipantId, callChainId", call)
			}
			if want := e.fg.BaseURL() + "/communications/calls/" + call.ID; meta.Location != want {
				t.Errorf("Location = %q, want %q", meta.Location, want)
			}
			if meta.StatusCode != http.StatusCreated || meta.Attempts != 1 {
				t.Errorf("meta = %+v, want 201 after 1 attempt", meta)
			}
		})
	}
	for _, s := range inviteSeeds {
		t.Run("invite/"+s.name, func(t *testing.T) {
			e.fg.Reset()
			e.fg.PutCall(model.Call{ID: s.callID, State: model.StateEstablished})
			req := s.req()
			op, meta, err := e.c.Invite(ctx, s.callID, req)
			if err != nil {
				t.Fatalf("Invite: %v", err)
			}
			reqs := e.fg.Requests(emulator.RouteInvite)
			if len(reqs) != 1 {
				t.Fatalf("fake got %d invite requests, want 1", len(reqs))
			}
			if reqs[0].CallID != s.callID {
				t.Errorf("invite went to call %q, want %q", reqs[0].CallID, s.callID)
			}
			assertJSONEquivalent(t, testkit.Seed(t, s.request), reqs[0].Body)
			if op.Status != model.OpRunning || op.ClientContext != seedCtx || op.ID == "" {
				t.Errorf("operation = %+v, want running with clientContext echoed", op)
			}
			if want := e.fg.BaseURL() + "/communications/calls/" + s.callID + "/operations/" + op.ID; meta.Location != want {
				t.Errorf("Location = %q, want %q", meta.Location, want)
			}
			warned := strings.Contains(e.logs.String(), WarnReplacesCallIDFirstOnly)
			if s.warn && !warned {
				t.Errorf("no %s warning logged", WarnReplacesCallIDFirstOnly)
			}
		})
	}
}

// TestSeedResponsesDecode serves each seed response from the fake and
// checks what the client decodes.
func TestSeedResponsesDecode(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := context.Background()
	for _, s := range createSeeds {
		t.Run("create/"+s.response, func(t *testing.T) {
			body := testkit.Seed(t, s.response)
			var want struct {
				ID, State, MyParticipantID, CallChainID string
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			loc := e.fg.BaseURL() + "/communications/calls/" + s.location
			e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusCreated, Body: body,
				Header: http.Header{"Location": {loc}}})
			call, meta, err := e.c.CreateCall(ctx, s.call())
			if err != nil {
				t.Fatalf("CreateCall: %v", err)
			}
			if call.ID != want.ID || string(call.State) != want.State || call.MyParticipantID != want.MyParticipantID || call.CallChainID != want.CallChainID {
				t.Errorf("decoded id=%q state=%q myParticipantId=%q callChainId=%q, want %+v", call.ID, call.State, call.MyParticipantID, call.CallChainID, want)
			}
			if call.State != model.StateEstablishing {
				t.Errorf("state %q", call.State)
			}
			if meta.Location != loc {
				t.Errorf("Location = %q, want %q", meta.Location, loc)
			}
			if call.MediaConfig == nil || call.RequestedModalities[0] != "audio" {
				t.Errorf("mediaConfig/requestedModalities not decoded: %+v", call)
			}
		})
	}
	for _, s := range inviteSeeds {
		t.Run("invite/"+s.response, func(t *testing.T) {
			body := testkit.Seed(t, s.response)
			var want struct {
				ID           string
				Participants []json.RawMessage
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			e.fg.PutCall(model.Call{ID: s.callID, State: model.StateEstablished})
			e.fg.Script(emulator.RouteInvite, emulator.Fault{Status: http.StatusOK, Body: body})
			op, _, err := e.c.Invite(ctx, s.callID, s.req())
			if err != nil {
				t.Fatalf("Invite: %v", err)
			}
			if op.ID != want.ID || op.Status != model.OpRunning || op.ClientContext != seedCtx || op.ODataType != model.ODataInviteParticipantsOp {
				t.Errorf("operation = %+v, want id %q, status running (from \"Running\")", op, want.ID)
			}
			if len(op.Participants) != len(want.Participants) || op.Participants[0].Identity == nil {
				t.Errorf("participants = %d, want %d", len(op.Participants), len(want.Participants))
			}
		})
	}
}

// TestCreateCallIDFromLocation: a 201 whose body lacks the id still yields
// it, from Location.
func TestCreateCallIDFromLocation(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	loc := e.fg.BaseURL() + "/communications/calls/2e1a0b00-2db4-4022-9570-243709c565ab"
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusCreated,
		Body: []byte(`{"state":"establishing"}`), Header: http.Header{"Location": {loc}}})
	call, _, err := e.c.CreateCall(context.Background(), createSeeds[0].call())
	if err != nil {
		t.Fatal(err)
	}
	if call.ID != "2e1a0b00-2db4-4022-9570-243709c565ab" {
		t.Errorf("id = %q", call.ID)
	}
}

func TestCreateCallUndecodableBody(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.fg.Script(emulator.RouteCreateCall, emulator.Fault{Status: http.StatusCreated, Body: []byte(`{"id":`)})
	_, _, err := e.c.CreateCall(context.Background(), createSeeds[0].call())
	if err == nil || !strings.Contains(err.Error(), "create call: decode response") {
		t.Fatalf("err = %v, want a decode error", err)
	}
	var ou *OutcomeUnknownError
	if errors.As(err, &ou) {
		t.Errorf("a 201 is a known outcome, got %v", err)
	}
}

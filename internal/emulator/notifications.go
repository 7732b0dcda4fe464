package emulator

import (
	"encoding/json"

	"github.com/botd/botd/internal/model"
)

// The shapes below are Graph's commsNotifications as the seed pages show
// them: one item per POST, with the current resourceUrl
// (/communications/calls/...), the legacy resource (/app/calls/...), the
// call's callbackUri and typed resourceData — an object for calls and
// operations, an array for rosters and content-sharing sessions.

type envelope struct {
	ODataType string `json:"@odata.type"`
	Value     []item `json:"value"`
}

type item struct {
	ODataType    string           `json:"@odata.type"`
	ChangeType   model.ChangeType `json:"changeType"`
	Resource     string           `json:"resource"`
	ResourceURL  string           `json:"resourceUrl"`
	CallbackURI  string           `json:"callbackUri,omitempty"`
	ResourceData any              `json:"resourceData"`
}

// callUpdate is the call resource as state notifications carry it: the
// state and what Graph echoes with it.
type callUpdate struct {
	ODataType   string             `json:"@odata.type"`
	State       model.CallState    `json:"state"`
	Direction   string             `json:"direction,omitempty"`
	CallChainID string             `json:"callChainId,omitempty"`
	ChatInfo    *model.ChatInfo    `json:"chatInfo,omitempty"`
	MeetingInfo *model.MeetingInfo `json:"meetingInfo,omitempty"`
	ResultInfo  *model.ResultInfo  `json:"resultInfo,omitempty"`
	ToneInfo    *model.ToneInfo    `json:"toneInfo,omitempty"`
	ID          string             `json:"id"`
}

// incomingCall is the whole call resource, as the "created" notification
// of an incoming call carries it (call: answer, "Notification - incoming").
type incomingCall struct {
	ODataID string `json:"@odata.id"`
	model.Call
}

// operationData is an operation's end. ID is a pointer because an invite
// of several participants is reported with "id": null at
// .../operations/participants (invite example 2).
type operationData struct {
	ODataType     string                            `json:"@odata.type"`
	Participants  []model.InvitationParticipantInfo `json:"participants"`
	Status        model.OperationStatus             `json:"status"`
	ClientContext string                            `json:"clientContext,omitempty"`
	ResultInfo    *model.ResultInfo                 `json:"resultInfo,omitempty"`
	ID            *string                           `json:"id"`
}

type deltaParticipants struct {
	ODataType      string              `json:"@odata.type"`
	Participants   []model.Participant `json:"participants"`
	SequenceNumber int64               `json:"sequenceNumber"`
}

func callPaths(id, sub string) (resource, resourceURL string) {
	return "/app/calls/" + id + sub, "/communications/calls/" + id + sub
}

// itemLocked builds an item about call cs. Callers hold s.mu.
func itemLocked(cs *callState, ct model.ChangeType, sub string, data any) item {
	res, url := callPaths(cs.call.ID, sub)
	return item{ODataType: model.ODataCommsNotification, ChangeType: ct, Resource: res, ResourceURL: url,
		CallbackURI: cs.call.CallbackURI, ResourceData: data}
}

// notifyCallLocked posts the call's current state. Callers hold s.mu.
func (s *Server) notifyCallLocked(cs *callState, ct model.ChangeType) {
	s.sendCallLocked(cs, cs.call, ct)
}

// sendCallLocked posts call c (a snapshot of cs, possibly altered) as a
// state notification. Callers hold s.mu.
func (s *Server) sendCallLocked(cs *callState, c model.Call, ct model.ChangeType) {
	u := callUpdate{ODataType: model.ODataCall, State: c.State, Direction: c.Direction, CallChainID: c.CallChainID,
		ChatInfo: c.ChatInfo, MeetingInfo: c.MeetingInfo, ResultInfo: c.ResultInfo, ToneInfo: c.ToneInfo, ID: c.ID}
	s.sendLocked(cs, itemLocked(cs, ct, "", u))
}

// notifyIncomingLocked posts the "created" notification of an incoming
// call. Callers hold s.mu.
func (s *Server) notifyIncomingLocked(cs *callState) {
	_, url := callPaths(cs.call.ID, "")
	s.sendLocked(cs, itemLocked(cs, model.ChangeCreated, "", incomingCall{ODataID: url, Call: cs.call}))
}

// notifyRosterLocked posts a roster change: the full roster, or, with
// isDeltaRosterEnabled, a deltaParticipants with the next sequenceNumber
// holding who joined and who left (everyone, the first time). Callers hold
// s.mu.
func (s *Server) notifyRosterLocked(cs *callState, added, removed []model.Participant) {
	first := !cs.rosterSent
	cs.rosterSent = true
	if !deltaRosterEnabled(&cs.call) {
		ps := append([]model.Participant{}, cs.participants...)
		s.sendLocked(cs, itemLocked(cs, model.ChangeUpdated, "/participants", ps))
		return
	}
	cs.rosterSeq++
	if s.injectLocked(FaultRosterGap, cs.faultRNG) {
		cs.rosterSeq++ // the skipped number is never sent
	}
	var ps []model.Participant
	if first {
		ps = append(ps, cs.participants...)
	} else {
		ps = append(ps, added...)
	}
	for _, p := range removed {
		p.RemovedState = &model.RemovedState{Reason: "Removed from roster"}
		ps = append(ps, p)
	}
	for i := range ps {
		ps[i].RosterSequenceNumber = cs.rosterSeq
	}
	if ps == nil {
		ps = []model.Participant{}
	}
	d := []deltaParticipants{{ODataType: model.ODataDeltaParticipants, Participants: ps, SequenceNumber: cs.rosterSeq}}
	s.sendLocked(cs, itemLocked(cs, model.ChangeUpdated, "/participants", d))
}

// notifyOperationLocked posts an invite operation's end ("deleted", with
// status completed or failed). Callers hold s.mu.
func (s *Server) notifyOperationLocked(cs *callState, op model.Operation, several bool) {
	var ps []model.InvitationParticipantInfo
	for _, p := range op.Participants {
		ps = append(ps, model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant,
			Identity: s.identity(p.Identity)})
	}
	d := operationData{ODataType: model.ODataInviteParticipantsOp, Participants: ps, Status: op.Status,
		ClientContext: op.ClientContext, ResultInfo: op.ResultInfo}
	sub := "/operations/participants"
	if !several {
		id := op.ID
		d.ID, sub = &id, "/operations/"+op.ID
	}
	s.sendLocked(cs, itemLocked(cs, model.ChangeDeleted, sub, d))
}

// notifyContentSharingLocked posts a content-sharing session's creation,
// if the call asked for it. Callers hold s.mu.
func (s *Server) notifyContentSharingLocked(cs *callState) {
	if !contentSharingEnabled(&cs.call) {
		return
	}
	ss := []model.ContentSharingSession{{ODataType: model.ODataContentSharingSession, ID: s.sessionIDLocked()}}
	s.sendLocked(cs, itemLocked(cs, model.ChangeCreated, "/contentsharingsessions", ss))
}

// body marshals one item into a commsNotifications document.
func body(it item) ([]byte, error) {
	return json.Marshal(envelope{ODataType: model.ODataCommsNotifications, Value: []item{it}})
}

package graph

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/botd/botd/internal/model"
)

// Media (service-hosted) and participant actions. Each answers with a
// commsOperation subtype (playPromptOperation, recordOperation, ...) whose
// status is normalised as Invite's is; RemoveParticipant (204) and
// ChangeScreenSharingRole (202) answer without a body.
//
// Retries: a request is sent as idempotent (resent after a timeout or a
// 504) when it sets a state to a value it names, so that a second copy
// leaves the call as the first did: mute, unmute, mute participant,
// updateRecordingStatus, changeScreenSharingRole and DELETE participant.
// The others start or stop something that runs (a prompt, a recording,
// DTMF, hold music, a tone subscription, cancelling the media queue): a
// second copy would play, record or cancel again, so they end in
// *OutcomeUnknownError instead. 429 and 503 are retried for all, as Graph
// did not act on them.

// opRequest is one POST that Graph answers with an operation.
type opRequest struct {
	op, action    string
	callID        string
	participantID string // set with participant
	participant   bool   // the path is .../participants/{participantID}/{verb}
	verb          string
	validate      func() error
	body          any
	idempotent    bool
}

func participantPath(callID, participantID string) string {
	return callPath(callID) + "/participants/" + url.PathEscape(participantID)
}

// operation validates and sends r and decodes the operation Graph answers
// with. An operation without an id takes it from Location.
func (c *Client) operation(ctx context.Context, r opRequest) (*model.Operation, Meta, error) {
	if err := ValidateID("callId", r.callID); err != nil {
		return nil, Meta{}, c.refuse(r.op, r.action, err)
	}
	path := callPath(r.callID)
	if r.participant {
		if err := ValidateID("participantId", r.participantID); err != nil {
			return nil, Meta{}, c.refuse(r.op, r.action, err)
		}
		path = participantPath(r.callID, r.participantID)
	}
	if err := r.validate(); err != nil {
		return nil, Meta{}, c.refuse(r.op, r.action, err)
	}
	meta := c.newMeta()
	var op model.Operation
	err := c.send(ctx, request{op: r.op, action: r.action, method: http.MethodPost, url: c.url(path + "/" + r.verb), callID: r.callID, idempotent: r.idempotent}, r.body, &op, &meta)
	if err != nil {
		return nil, meta, err
	}
	op.Status = op.Status.Normalize()
	if op.ID == "" {
		op.ID = operationIDFromLocation(meta.Location)
	}
	return &op, meta, nil
}

// operationIDFromLocation extracts {opId} from a Location ending in
// /operations/{opId}; "" if it does not.
func operationIDFromLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	const marker = "/operations/"
	p := u.EscapedPath()
	i := strings.LastIndex(p, marker)
	if i < 0 {
		return ""
	}
	id, err := url.PathUnescape(p[i+len(marker):])
	if err != nil || checkID("operationId", id) != nil {
		return ""
	}
	return id
}

// PlayPrompt plays up to 20 prompts (POST .../calls/{id}/playPrompt, 200,
// playPromptOperation). Not resent after a timeout: it would play twice.
func (c *Client) PlayPrompt(ctx context.Context, callID string, req *PlayPromptRequest) (*model.Operation, Meta, error) {
	return c.operation(ctx, opRequest{op: OpPlayPrompt, action: "play prompt", callID: callID, verb: "playPrompt",
		validate: func() error { return ValidatePlayPrompt(req) }, body: req})
}

// RecordResponse records a short answer from the caller
// (POST .../calls/{id}/recordResponse, 200, recordOperation). The completed
// operation, in a notification, carries recordingLocation and
// recordingAccessToken. Not resent after a timeout.
func (c *Client) RecordResponse(ctx context.Context, callID string, req *RecordResponseRequest) (*model.Operation, Meta, error) {
	return c.operation(ctx, opRequest{op: OpRecordResponse, action: "record response", callID: callID, verb: "recordResponse",
		validate: func() error { return ValidateRecordResponse(req) }, body: req})
}

// SubscribeToTone asks for a call update per key pressed
// (POST .../calls/{id}/subscribeToTone, 200, subscribeToToneOperation). A
// nil req sends {}. Not resent after a timeout.
func (c *Client) SubscribeToTone(ctx context.Context, callID string, req *SubscribeToToneRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &SubscribeToToneRequest{}
	}
	return c.operation(ctx, opRequest{op: OpSubscribeToTone, action: "subscribe to tone", callID: callID, verb: "subscribeToTone",
		validate: func() error { return ValidateSubscribeToTone(req) }, body: req})
}

// SendDtmfTones sends DTMF tones (POST .../calls/{id}/sendDtmfTones, 200,
// sendDtmfTonesOperation). Not resent after a timeout: the far end would
// hear the keys twice.
func (c *Client) SendDtmfTones(ctx context.Context, callID string, req *SendDtmfTonesRequest) (*model.Operation, Meta, error) {
	return c.operation(ctx, opRequest{op: OpSendDtmfTones, action: "send DTMF tones", callID: callID, verb: "sendDtmfTones",
		validate: func() error { return ValidateSendDtmfTones(req) }, body: req})
}

// CancelMediaProcessing cancels the running and queued playPrompt and
// recordResponse operations (POST .../calls/{id}/cancelMediaProcessing,
// 200, cancelMediaProcessingOperation). A nil req sends {}. Not resent
// after a timeout: a late copy would cancel media queued meanwhile.
func (c *Client) CancelMediaProcessing(ctx context.Context, callID string, req *CancelMediaProcessingRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &CancelMediaProcessingRequest{}
	}
	return c.operation(ctx, opRequest{op: OpCancelMediaProcessing, action: "cancel media processing", callID: callID, verb: "cancelMediaProcessing",
		validate: func() error { return ValidateCancelMediaProcessing(req) }, body: req})
}

// Mute server-mutes the bot in a group call (POST .../calls/{id}/mute, 200,
// muteParticipantOperation). A nil req sends {}. Idempotent: a second mute
// leaves the bot muted.
func (c *Client) Mute(ctx context.Context, callID string, req *MuteRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &MuteRequest{}
	}
	return c.operation(ctx, opRequest{op: OpMute, action: "mute", callID: callID, verb: "mute",
		validate: func() error { return ValidateMute(req) }, body: req, idempotent: true})
}

// Unmute lifts the bot's server mute (POST .../calls/{id}/unmute, 200,
// unmuteParticipantOperation). A nil req sends {}. Idempotent.
func (c *Client) Unmute(ctx context.Context, callID string, req *MuteRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &MuteRequest{}
	}
	return c.operation(ctx, opRequest{op: OpUnmute, action: "unmute", callID: callID, verb: "unmute",
		validate: func() error { return ValidateMute(req) }, body: req, idempotent: true})
}

// MuteParticipant server-mutes another participant of a group call
// (POST .../calls/{id}/participants/{pid}/mute, 200,
// muteParticipantOperation). A nil req sends {}. Idempotent.
func (c *Client) MuteParticipant(ctx context.Context, callID, participantID string, req *MuteRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &MuteRequest{}
	}
	return c.operation(ctx, opRequest{op: OpMuteParticipant, action: "mute participant", callID: callID,
		participantID: participantID, participant: true, verb: "mute",
		validate: func() error { return ValidateMute(req) }, body: req, idempotent: true})
}

// StartHoldMusic puts a participant on hold with music
// (POST .../participants/{pid}/startHoldMusic, 202,
// startHoldMusicOperation). A nil req sends {} (Graph's own music). Not
// resent after a timeout.
func (c *Client) StartHoldMusic(ctx context.Context, callID, participantID string, req *StartHoldMusicRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &StartHoldMusicRequest{}
	}
	return c.operation(ctx, opRequest{op: OpStartHoldMusic, action: "start hold music", callID: callID,
		participantID: participantID, participant: true, verb: "startHoldMusic",
		validate: func() error { return ValidateStartHoldMusic(req) }, body: req})
}

// StopHoldMusic takes a participant off hold
// (POST .../participants/{pid}/stopHoldMusic, 202, stopHoldMusicOperation).
// A nil req sends {}. Not resent after a timeout: a late copy would end a
// hold started meanwhile.
func (c *Client) StopHoldMusic(ctx context.Context, callID, participantID string, req *StopHoldMusicRequest) (*model.Operation, Meta, error) {
	if req == nil {
		req = &StopHoldMusicRequest{}
	}
	return c.operation(ctx, opRequest{op: OpStopHoldMusic, action: "stop hold music", callID: callID,
		participantID: participantID, participant: true, verb: "stopHoldMusic",
		validate: func() error { return ValidateStopHoldMusic(req) }, body: req})
}

// UpdateRecordingStatus tells Graph whether the bot records
// (POST .../calls/{id}/updateRecordingStatus, 200,
// updateRecordingStatusOperation). Policy-based recording must get a
// success answer before it records; the request names the status it sets,
// so it is idempotent and resent after a timeout.
func (c *Client) UpdateRecordingStatus(ctx context.Context, callID string, req *UpdateRecordingStatusRequest) (*model.Operation, Meta, error) {
	return c.operation(ctx, opRequest{op: OpUpdateRecordingStatus, action: "update recording status", callID: callID, verb: "updateRecordingStatus",
		validate: func() error { return ValidateUpdateRecordingStatus(req) }, body: req, idempotent: true})
}

// ChangeScreenSharingRole makes the bot a screen-sharing viewer or sharer
// (POST .../calls/{id}/changeScreenSharingRole, 202 without a body; Graph
// supports it for app-hosted media group calls). Idempotent: the request
// names the role.
func (c *Client) ChangeScreenSharingRole(ctx context.Context, callID string, req *ChangeScreenSharingRoleRequest) (Meta, error) {
	return c.action(ctx, OpChangeScreenSharingRole, "change screen sharing role", callID, "changeScreenSharingRole",
		func() error { return ValidateChangeScreenSharingRole(req) }, req, true)
}

// RemoveParticipant removes a participant from the call, or cancels its
// pending invitation (DELETE .../calls/{id}/participants/{pid}, 204).
// Idempotent, like Hangup: a resent DELETE may answer 404.
func (c *Client) RemoveParticipant(ctx context.Context, callID, participantID string) (Meta, error) {
	const action = "remove participant"
	if err := ValidateID("callId", callID); err != nil {
		return Meta{}, c.refuse(OpRemoveParticipant, action, err)
	}
	if err := ValidateID("participantId", participantID); err != nil {
		return Meta{}, c.refuse(OpRemoveParticipant, action, err)
	}
	meta := c.newMeta()
	err := c.send(ctx, request{op: OpRemoveParticipant, action: action, method: http.MethodDelete, url: c.url(participantPath(callID, participantID)), callID: callID, idempotent: true}, nil, nil, &meta)
	return meta, err
}

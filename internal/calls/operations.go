package calls

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

// opSpec is a Graph operation on a call, or on one of its participants.
type opSpec[T any] struct {
	// typ is the operation type, as the call store names it; op is the
	// Graph client's name of the request, for its validation metric.
	typ, op string
	// clientContext points at the body's clientContext; nil for a body
	// without one (botd then tracks the operation under its own).
	clientContext func(*T) *string
	// invitees, if set, are recorded with the operation.
	invitees func(*T) []model.InvitationParticipantInfo
	validate func(*T) error
	// send sends the request; a nil operation means Graph answered with no
	// body (204), and the operation is complete at once.
	send func(ctx context.Context, body *T) (*model.Operation, graph.Meta, error)
}

// operation runs a Graph operation: the call must be live (and the
// participant, if any, in its roster), the body gets a clientContext, is
// validated, and the operation is recorded in the call store before the
// request is sent, so that its notification completes it even when it races
// the answer. A refusal by Graph fails the operation; an unknown outcome
// leaves it pending, for its notification or the store's timeout.
func operation[T any](ctx context.Context, s *Service, callID, pid string, body *T, a opSpec[T]) (*model.Operation, error) {
	if _, err := s.Live(callID, pid); err != nil {
		return nil, err
	}
	cc := uuid.NewString()
	if a.clientContext != nil {
		if p := a.clientContext(body); *p == "" {
			*p = cc
		} else {
			cc = *p
		}
	}
	if a.validate != nil {
		if err := a.validate(body); err != nil {
			return nil, s.refuse(a.op, err)
		}
	}
	rec := callstate.OperationRecord{Type: a.typ, ClientContext: cc}
	if a.invitees != nil {
		rec.Participants = a.invitees(body)
	}
	if err := s.store.TrackOperation(callID, rec); err != nil {
		return nil, err
	}
	s.durable(callID)
	log := s.log.With().Str("call_id", callID).Str("op_type", a.typ).
		Str("client_context", cc).Str("participant_id", pid).Logger()
	op, meta, err := a.send(s.tenantCtx(ctx, callID), body)
	log = log.With().Str("client_request_id", meta.ClientRequestID).Str("graph_request_id", meta.RequestID).Logger()
	switch {
	case err == nil:
	case errors.Is(err, graph.ErrOutcomeUnknown):
		log.Warn().Err(err).Msg("operation outcome unknown; waiting for its notification")
		return nil, err
	default:
		s.store.FailOperation(callID, cc, resultInfo(err), err.Error())
		log.Warn().Err(err).Msg("operation refused")
		return nil, err
	}
	s.store.OperationSent(callID, cc, op)
	if op == nil {
		op = &model.Operation{Status: model.OpCompleted}
	}
	if op.ClientContext == "" {
		op.ClientContext = cc
	}
	log.Info().Str("op_id", op.ID).Str("status", string(op.Status)).Msg("operation sent")
	return op, nil
}

// resultInfo is Graph's refusal as an operation's resultInfo; nil for an
// error that is not Graph's.
func resultInfo(err error) *model.ResultInfo {
	var ae *graph.APIError
	if errors.As(err, &ae) {
		return &model.ResultInfo{Code: int32(ae.StatusCode), Message: ae.Code}
	}
	return nil
}

// noOperation adapts a Graph action that answers 204 with no operation.
func noOperation(meta graph.Meta, err error) (*model.Operation, graph.Meta, error) {
	return nil, meta, err
}

// Invite invites participants to a live call, recorded as an "invite"
// operation with its invitees.
func (s *Service) Invite(ctx context.Context, callID string, b *graph.InviteRequest) (*model.Operation, error) {
	return operation(ctx, s, callID, "", b, opSpec[graph.InviteRequest]{
		typ: "invite", op: graph.OpInvite,
		clientContext: func(b *graph.InviteRequest) *string { return &b.ClientContext },
		invitees:      func(b *graph.InviteRequest) []model.InvitationParticipantInfo { return b.Participants },
		validate:      graph.ValidateInvite,
		send: func(ctx context.Context, b *graph.InviteRequest) (*model.Operation, graph.Meta, error) {
			return s.graph.Invite(ctx, callID, b)
		},
	})
}

// callOp runs an operation on a call whose body has a clientContext.
func callOp[T any, P interface {
	*T
	graph.ContextBody
}](ctx context.Context, s *Service, callID string, body P, typ, op string, validate func(P) error,
	send func(context.Context, string, P) (*model.Operation, graph.Meta, error)) (*model.Operation, error) {
	return participantOp(ctx, s, callID, "", body, typ, op, validate, func(ctx context.Context, callID, _ string, b P) (*model.Operation, graph.Meta, error) {
		return send(ctx, callID, b)
	})
}

// participantOp runs an operation on a call, or on one of its participants
// (pid set), whose body has a clientContext.
func participantOp[T any, P interface {
	*T
	graph.ContextBody
}](ctx context.Context, s *Service, callID, pid string, body P, typ, op string, validate func(P) error,
	send func(context.Context, string, string, P) (*model.Operation, graph.Meta, error)) (*model.Operation, error) {
	return operation(ctx, s, callID, pid, (*T)(body), opSpec[T]{
		typ: typ, op: op,
		clientContext: func(b *T) *string { return P(b).ContextRef() },
		validate:      func(b *T) error { return validate(P(b)) },
		send: func(ctx context.Context, b *T) (*model.Operation, graph.Meta, error) {
			return send(ctx, callID, pid, P(b))
		},
	})
}

// PlayPrompt plays prompts in a call.
func (s *Service) PlayPrompt(ctx context.Context, callID string, b *graph.PlayPromptRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "playPrompt", graph.OpPlayPrompt, graph.ValidatePlayPrompt, s.graph.PlayPrompt)
}

// RecordResponse records a caller's response after a prompt.
func (s *Service) RecordResponse(ctx context.Context, callID string, b *graph.RecordResponseRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "recordResponse", graph.OpRecordResponse, graph.ValidateRecordResponse, s.graph.RecordResponse)
}

// SubscribeToTone subscribes botd to the call's DTMF tones.
func (s *Service) SubscribeToTone(ctx context.Context, callID string, b *graph.SubscribeToToneRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "subscribeToTone", graph.OpSubscribeToTone, graph.ValidateSubscribeToTone, s.graph.SubscribeToTone)
}

// SendDtmfTones sends DTMF tones in a call.
func (s *Service) SendDtmfTones(ctx context.Context, callID string, b *graph.SendDtmfTonesRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "sendDtmfTones", graph.OpSendDtmfTones, graph.ValidateSendDtmfTones, s.graph.SendDtmfTones)
}

// CancelMediaProcessing cancels the call's pending media operations.
func (s *Service) CancelMediaProcessing(ctx context.Context, callID string, b *graph.CancelMediaProcessingRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "cancelMediaProcessing", graph.OpCancelMediaProcessing, graph.ValidateCancelMediaProcessing, s.graph.CancelMediaProcessing)
}

// Mute mutes botd in a call.
func (s *Service) Mute(ctx context.Context, callID string, b *graph.MuteRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "mute", graph.OpMute, graph.ValidateMute, s.graph.Mute)
}

// Unmute unmutes botd in a call.
func (s *Service) Unmute(ctx context.Context, callID string, b *graph.MuteRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "unmute", graph.OpUnmute, graph.ValidateMute, s.graph.Unmute)
}

// UpdateRecordingStatus tells Graph botd's recording status.
func (s *Service) UpdateRecordingStatus(ctx context.Context, callID string, b *graph.UpdateRecordingStatusRequest) (*model.Operation, error) {
	return callOp(ctx, s, callID, b, "updateRecordingStatus", graph.OpUpdateRecordingStatus, graph.ValidateUpdateRecordingStatus, s.graph.UpdateRecordingStatus)
}

// ChangeScreenSharingRole changes botd's screen-sharing role; Graph
// answers with no operation, so it is complete at once.
func (s *Service) ChangeScreenSharingRole(ctx context.Context, callID string, b *graph.ChangeScreenSharingRoleRequest) (*model.Operation, error) {
	return operation(ctx, s, callID, "", b, opSpec[graph.ChangeScreenSharingRoleRequest]{
		typ: "changeScreenSharingRole", op: graph.OpChangeScreenSharingRole,
		validate: graph.ValidateChangeScreenSharingRole,
		send: func(ctx context.Context, b *graph.ChangeScreenSharingRoleRequest) (*model.Operation, graph.Meta, error) {
			return noOperation(s.graph.ChangeScreenSharingRole(ctx, callID, b))
		},
	})
}

// MuteParticipant mutes a participant of the call's roster.
func (s *Service) MuteParticipant(ctx context.Context, callID, participantID string, b *graph.MuteRequest) (*model.Operation, error) {
	return participantOp(ctx, s, callID, participantID, b, "mute", graph.OpMuteParticipant, graph.ValidateMute, s.graph.MuteParticipant)
}

// StartHoldMusic puts a participant of the call's roster on hold.
func (s *Service) StartHoldMusic(ctx context.Context, callID, participantID string, b *graph.StartHoldMusicRequest) (*model.Operation, error) {
	return participantOp(ctx, s, callID, participantID, b, "startHoldMusic", graph.OpStartHoldMusic, graph.ValidateStartHoldMusic, s.graph.StartHoldMusic)
}

// StopHoldMusic takes a participant of the call's roster off hold.
func (s *Service) StopHoldMusic(ctx context.Context, callID, participantID string, b *graph.StopHoldMusicRequest) (*model.Operation, error) {
	return participantOp(ctx, s, callID, participantID, b, "stopHoldMusic", graph.OpStopHoldMusic, graph.ValidateStopHoldMusic, s.graph.StopHoldMusic)
}

// RemoveParticipant removes a participant of the call's roster; Graph
// answers with no operation, so it is complete at once.
func (s *Service) RemoveParticipant(ctx context.Context, callID, participantID string) (*model.Operation, error) {
	var none struct{}
	return operation(ctx, s, callID, participantID, &none, opSpec[struct{}]{
		typ: "removeParticipant", op: graph.OpRemoveParticipant,
		send: func(ctx context.Context, _ *struct{}) (*model.Operation, graph.Meta, error) {
			return noOperation(s.graph.RemoveParticipant(ctx, callID, participantID))
		},
	})
}

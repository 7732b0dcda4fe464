package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

// opAction is an admin route that starts a Graph operation on a call, or on
// one of its participants: the body is Graph's own, the operation is
// recorded in the call store before the request is sent (so its
// notification completes it even when it races the answer), and the route
// answers 202 with the operation: id, status and clientContext.
type opAction[T any] struct {
	// typ is the operation type, as the call store names it; op is the
	// Graph client's name of the request, for its validation metric.
	typ, op string
	// needBody: an empty body is a 400 (else it decodes to Graph's
	// defaults).
	needBody bool
	// participant: the route names a participant ({participantID}), which
	// must be in the call's roster.
	participant bool
	// clientContext points at the body's clientContext; nil for a body
	// without one (botd then tracks the operation under its own).
	clientContext func(*T) *string
	// invitees, if set, are recorded with the operation.
	invitees func(*T) []model.InvitationParticipantInfo
	validate func(*T) error
	// send sends the request; a nil operation means Graph answered with no
	// body (204), and the operation is complete at once.
	send func(ctx context.Context, callID, participantID string, body *T) (*model.Operation, graph.Meta, error)
}

func (a opAction[T]) handler(d Deps) http.HandlerFunc {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		v, ok := trackedCall(d, w, r)
		if !ok {
			return
		}
		if v.State == model.StateTerminated {
			writeProblem(w, r, errorf(CodeConflict, "call already terminated"))
			return
		}
		var pid string
		if a.participant {
			pid = chi.URLParam(r, "participantID")
			if !inRoster(v, pid) {
				writeProblem(w, r, errorf(CodeNotFound, "participant %q is not in call %q", shorten(pid), callID))
				return
			}
		}
		body := new(T)
		if err := decodeBody(r, body, a.needBody); err != nil {
			writeProblem(w, r, err)
			return
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
				d.refuse(w, r, a.op, err)
				return
			}
		}
		rec := callstate.OperationRecord{Type: a.typ, ClientContext: cc}
		if a.invitees != nil {
			rec.Participants = a.invitees(body)
		}
		if err := d.Store.TrackOperation(callID, rec); err != nil {
			writeProblem(w, r, err)
			return
		}
		log := d.Log.With().Str("component", "admin").Str("call_id", callID).Str("op_type", a.typ).
			Str("client_context", cc).Str("participant_id", pid).Logger()
		op, meta, err := a.send(graph.WithTenant(r.Context(), v.TenantID), callID, pid, body)
		log = log.With().Str("client_request_id", meta.ClientRequestID).Str("graph_request_id", meta.RequestID).Logger()
		switch {
		case err == nil:
		case errors.Is(err, graph.ErrOutcomeUnknown):
			log.Warn().Err(err).Msg("operation outcome unknown; waiting for its notification")
			writeProblem(w, r, err)
			return
		default:
			var ri *model.ResultInfo
			var ae *graph.APIError
			if errors.As(err, &ae) {
				ri = &model.ResultInfo{Code: int32(ae.StatusCode), Message: ae.Code}
			}
			d.Store.FailOperation(callID, cc, ri, err.Error())
			log.Warn().Err(err).Msg("operation refused")
			writeProblem(w, r, err)
			return
		}
		d.Store.OperationSent(callID, cc, op)
		if op == nil {
			op = &model.Operation{Status: model.OpCompleted}
		}
		if op.ClientContext == "" {
			op.ClientContext = cc
		}
		log.Info().Str("op_id", op.ID).Str("status", string(op.Status)).Msg("operation sent")
		writeJSON(w, http.StatusAccepted, op)
	})
}

func inRoster(v callstate.CallView, pid string) bool {
	for _, p := range v.Participants {
		if p.ID == pid {
			return true
		}
	}
	return false
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// noOperation adapts a Graph action that answers 204 with no operation.
func noOperation(meta graph.Meta, err error) (*model.Operation, graph.Meta, error) {
	return nil, meta, err
}

// operationRoutes mounts the operation routes under /v1/calls/{callID}.
// Their paths mirror Graph's, and their bodies are Graph's.
func operationRoutes(r chi.Router, d Deps) {
	r.Post("/participants/invite", opAction[graph.InviteRequest]{
		typ: "invite", op: graph.OpInvite, needBody: true,
		clientContext: func(b *graph.InviteRequest) *string { return &b.ClientContext },
		invitees:      func(b *graph.InviteRequest) []model.InvitationParticipantInfo { return b.Participants },
		validate:      graph.ValidateInvite,
		send: func(ctx context.Context, id, _ string, b *graph.InviteRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.Invite(ctx, id, b)
		},
	}.handler(d))
	r.Post("/playPrompt", opAction[graph.PlayPromptRequest]{
		typ: "playPrompt", op: graph.OpPlayPrompt, needBody: true,
		clientContext: func(b *graph.PlayPromptRequest) *string { return &b.ClientContext },
		validate:      graph.ValidatePlayPrompt,
		send: func(ctx context.Context, id, _ string, b *graph.PlayPromptRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.PlayPrompt(ctx, id, b)
		},
	}.handler(d))
	r.Post("/recordResponse", opAction[graph.RecordResponseRequest]{
		typ: "recordResponse", op: graph.OpRecordResponse, needBody: true,
		clientContext: func(b *graph.RecordResponseRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateRecordResponse,
		send: func(ctx context.Context, id, _ string, b *graph.RecordResponseRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.RecordResponse(ctx, id, b)
		},
	}.handler(d))
	r.Post("/subscribeToTone", opAction[graph.SubscribeToToneRequest]{
		typ: "subscribeToTone", op: graph.OpSubscribeToTone, needBody: false,
		clientContext: func(b *graph.SubscribeToToneRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateSubscribeToTone,
		send: func(ctx context.Context, id, _ string, b *graph.SubscribeToToneRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.SubscribeToTone(ctx, id, b)
		},
	}.handler(d))
	r.Post("/sendDtmfTones", opAction[graph.SendDtmfTonesRequest]{
		typ: "sendDtmfTones", op: graph.OpSendDtmfTones, needBody: true,
		clientContext: func(b *graph.SendDtmfTonesRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateSendDtmfTones,
		send: func(ctx context.Context, id, _ string, b *graph.SendDtmfTonesRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.SendDtmfTones(ctx, id, b)
		},
	}.handler(d))
	r.Post("/cancelMediaProcessing", opAction[graph.CancelMediaProcessingRequest]{
		typ: "cancelMediaProcessing", op: graph.OpCancelMediaProcessing, needBody: false,
		clientContext: func(b *graph.CancelMediaProcessingRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateCancelMediaProcessing,
		send: func(ctx context.Context, id, _ string, b *graph.CancelMediaProcessingRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.CancelMediaProcessing(ctx, id, b)
		},
	}.handler(d))
	r.Post("/mute", opAction[graph.MuteRequest]{
		typ: "mute", op: graph.OpMute, needBody: false,
		clientContext: func(b *graph.MuteRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateMute,
		send: func(ctx context.Context, id, _ string, b *graph.MuteRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.Mute(ctx, id, b)
		},
	}.handler(d))
	r.Post("/unmute", opAction[graph.MuteRequest]{
		typ: "unmute", op: graph.OpUnmute, needBody: false,
		clientContext: func(b *graph.MuteRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateMute,
		send: func(ctx context.Context, id, _ string, b *graph.MuteRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.Unmute(ctx, id, b)
		},
	}.handler(d))
	r.Post("/updateRecordingStatus", opAction[graph.UpdateRecordingStatusRequest]{
		typ: "updateRecordingStatus", op: graph.OpUpdateRecordingStatus, needBody: true,
		clientContext: func(b *graph.UpdateRecordingStatusRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateUpdateRecordingStatus,
		send: func(ctx context.Context, id, _ string, b *graph.UpdateRecordingStatusRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.UpdateRecordingStatus(ctx, id, b)
		},
	}.handler(d))
	r.Post("/changeScreenSharingRole", opAction[graph.ChangeScreenSharingRoleRequest]{
		typ: "changeScreenSharingRole", op: graph.OpChangeScreenSharingRole, needBody: true,
		validate: graph.ValidateChangeScreenSharingRole,
		send: func(ctx context.Context, id, _ string, b *graph.ChangeScreenSharingRoleRequest) (*model.Operation, graph.Meta, error) {
			return noOperation(d.Graph.ChangeScreenSharingRole(ctx, id, b))
		},
	}.handler(d))
	r.Post("/participants/{participantID}/mute", opAction[graph.MuteRequest]{
		typ: "mute", op: graph.OpMuteParticipant, needBody: false, participant: true,
		clientContext: func(b *graph.MuteRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateMute,
		send: func(ctx context.Context, id, pid string, b *graph.MuteRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.MuteParticipant(ctx, id, pid, b)
		},
	}.handler(d))
	r.Post("/participants/{participantID}/startHoldMusic", opAction[graph.StartHoldMusicRequest]{
		typ: "startHoldMusic", op: graph.OpStartHoldMusic, needBody: false, participant: true,
		clientContext: func(b *graph.StartHoldMusicRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateStartHoldMusic,
		send: func(ctx context.Context, id, pid string, b *graph.StartHoldMusicRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.StartHoldMusic(ctx, id, pid, b)
		},
	}.handler(d))
	r.Post("/participants/{participantID}/stopHoldMusic", opAction[graph.StopHoldMusicRequest]{
		typ: "stopHoldMusic", op: graph.OpStopHoldMusic, needBody: false, participant: true,
		clientContext: func(b *graph.StopHoldMusicRequest) *string { return &b.ClientContext },
		validate:      graph.ValidateStopHoldMusic,
		send: func(ctx context.Context, id, pid string, b *graph.StopHoldMusicRequest) (*model.Operation, graph.Meta, error) {
			return d.Graph.StopHoldMusic(ctx, id, pid, b)
		},
	}.handler(d))
	r.Delete("/participants/{participantID}", opAction[emptyBody]{
		typ: "removeParticipant", op: graph.OpRemoveParticipant, needBody: false, participant: true,
		send: func(ctx context.Context, id, pid string, _ *emptyBody) (*model.Operation, graph.Meta, error) {
			return noOperation(d.Graph.RemoveParticipant(ctx, id, pid))
		},
	}.handler(d))
}

package handlers

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

// opAction is an admin route that starts a Graph operation on a call, or on
// one of its participants, through the calls service (which records it in
// the call store before sending it): the body is Graph's own, and the route
// answers 202 with the operation: id, status and clientContext.
type opAction[T any] struct {
	// needBody: an empty body is a 400 (else it decodes to Graph's
	// defaults).
	needBody bool
	// participant: the route names a participant ({participantID}), which
	// must be in the call's roster.
	participant bool
	// send asks the calls service for the operation.
	send func(ctx context.Context, callID, participantID string, body *T) (*model.Operation, error)
}

func (a opAction[T]) handler(d Deps) http.HandlerFunc {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		var pid string
		if a.participant {
			pid = chi.URLParam(r, "participantID")
		}
		if !liveCall(d, w, r, pid) {
			return
		}
		body := new(T)
		if err := decodeBody(r, body, a.needBody); err != nil {
			writeProblem(w, r, err)
			return
		}
		op, err := a.send(r.Context(), callID, pid, body)
		answer(w, r, http.StatusAccepted, op, err)
	})
}

// onCall adapts a call operation of the calls service to a route.
func onCall[T any](f func(ctx context.Context, callID string, body *T) (*model.Operation, error)) func(context.Context, string, string, *T) (*model.Operation, error) {
	return func(ctx context.Context, callID, _ string, body *T) (*model.Operation, error) {
		return f(ctx, callID, body)
	}
}

// operationRoutes mounts the operation routes under /v1/calls/{callID}.
// Their paths mirror Graph's, and their bodies are Graph's.
func operationRoutes(r chi.Router, d Deps) {
	c := d.Calls
	r.Post("/participants/invite", opAction[graph.InviteRequest]{needBody: true, send: onCall(c.Invite)}.handler(d))
	r.Post("/playPrompt", opAction[graph.PlayPromptRequest]{needBody: true, send: onCall(c.PlayPrompt)}.handler(d))
	r.Post("/recordResponse", opAction[graph.RecordResponseRequest]{needBody: true, send: onCall(c.RecordResponse)}.handler(d))
	r.Post("/subscribeToTone", opAction[graph.SubscribeToToneRequest]{send: onCall(c.SubscribeToTone)}.handler(d))
	r.Post("/sendDtmfTones", opAction[graph.SendDtmfTonesRequest]{needBody: true, send: onCall(c.SendDtmfTones)}.handler(d))
	r.Post("/cancelMediaProcessing", opAction[graph.CancelMediaProcessingRequest]{send: onCall(c.CancelMediaProcessing)}.handler(d))
	r.Post("/mute", opAction[graph.MuteRequest]{send: onCall(c.Mute)}.handler(d))
	r.Post("/unmute", opAction[graph.MuteRequest]{send: onCall(c.Unmute)}.handler(d))
	r.Post("/updateRecordingStatus", opAction[graph.UpdateRecordingStatusRequest]{needBody: true, send: onCall(c.UpdateRecordingStatus)}.handler(d))
	r.Post("/changeScreenSharingRole", opAction[graph.ChangeScreenSharingRoleRequest]{needBody: true, send: onCall(c.ChangeScreenSharingRole)}.handler(d))
	r.Post("/participants/{participantID}/mute", opAction[graph.MuteRequest]{participant: true, send: c.MuteParticipant}.handler(d))
	r.Post("/participants/{participantID}/startHoldMusic", opAction[graph.StartHoldMusicRequest]{participant: true, send: c.StartHoldMusic}.handler(d))
	r.Post("/participants/{participantID}/stopHoldMusic", opAction[graph.StopHoldMusicRequest]{participant: true, send: c.StopHoldMusic}.handler(d))
	r.Delete("/participants/{participantID}", opAction[emptyBody]{participant: true, send: func(ctx context.Context, id, pid string, _ *emptyBody) (*model.Operation, error) {
		return c.RemoveParticipant(ctx, id, pid)
	}}.handler(d))
}

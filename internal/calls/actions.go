package calls

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

// CreateCall places a call from a Graph call body. botd fills its own
// callbackUri, and the source and tenantId from config when missing; a
// foreign callbackUri is refused, since botd must receive the call's
// notifications to track it. The created call is tracked, and its view
// returned; when tracking fails the view holds only the id Graph gave it.
func (s *Service) CreateCall(ctx context.Context, call *model.Call) (callstate.CallView, error) {
	if err := s.ownCallback(&call.CallbackURI); err != nil {
		return callstate.CallView{}, s.refuse(graph.OpCreateCall, err)
	}
	s.callDefaults(call)
	if err := graph.ValidateCall(call); err != nil {
		return callstate.CallView{}, s.refuse(graph.OpCreateCall, err)
	}
	created, meta, err := s.graph.CreateCall(graph.WithTenant(ctx, call.TenantID), call)
	log := s.log.With().Str("client_request_id", meta.ClientRequestID).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("create call failed")
		return callstate.CallView{}, err
	}
	// Keep what was asked for where Graph's answer left it out.
	if created.CallbackURI == "" {
		created.CallbackURI = call.CallbackURI
	}
	if created.Targets == nil {
		created.Targets = call.Targets
	}
	if created.Source == nil {
		created.Source = call.Source
	}
	if _, err := s.store.TrackCall(created); err != nil {
		log.Error().Err(err).Str("call_id", created.ID).Msg("created call could not be tracked")
		return callstate.CallView{ID: created.ID}, err
	}
	s.durable(created.ID)
	log.Info().Str("call_id", created.ID).Str("graph_request_id", meta.RequestID).Msg("call created")
	v, _ := s.store.Call(created.ID)
	return v, nil
}

// callDefaults fills a create-call body's @odata.type, source (the bot's
// application identity) and tenantId where it has none.
func (s *Service) callDefaults(call *model.Call) {
	if call.ODataType == "" {
		call.ODataType = model.ODataCall
	}
	if call.Source == nil && s.cfg.BotAppID != "" {
		call.Source = &model.ParticipantInfo{
			ODataType: model.ODataParticipantInfo,
			Identity: &model.IdentitySet{ODataType: model.ODataIdentitySet, Application: &model.Identity{
				ODataType: model.ODataIdentity, ID: s.cfg.BotAppID, DisplayName: s.cfg.BotName,
			}},
		}
	}
	if call.TenantID == "" {
		call.TenantID = s.cfg.TenantID
	}
}

// control runs a call-control action on a live call: fill completes the
// body with botd's defaults (an error refuses it as a validation failure of
// op), and send sends it with a token for the call's tenant.
func (s *Service) control(ctx context.Context, callID, action, op string, fill func() error, send func(context.Context) (graph.Meta, error)) (Result, error) {
	if _, err := s.Live(callID, ""); err != nil {
		return Result{}, err
	}
	if fill != nil {
		if err := fill(); err != nil {
			return Result{}, s.refuse(op, err)
		}
	}
	meta, err := send(s.tenantCtx(ctx, callID))
	log := s.log.With().Str("call_id", callID).Str("action", action).Str("client_request_id", meta.ClientRequestID).Logger()
	if err != nil {
		if action == "hangup" {
			log.Warn().Err(err).Msg("hang up failed")
		} else {
			log.Warn().Err(err).Msg("call action failed")
		}
		return Result{}, err
	}
	if action == "hangup" {
		log.Info().Msg("hang up accepted by Graph; waiting for terminated")
	} else {
		log.Info().Msg("call action accepted by Graph")
	}
	return Result{CallID: callID, Action: action, Meta: meta}, nil
}

// AnswerDefaults fills an answer body with botd's defaults: its own
// callbackUri, service-hosted media and audio. A foreign callbackUri is
// refused.
func (s *Service) AnswerDefaults(b *graph.AnswerRequest) error {
	if b.MediaConfig == nil {
		b.MediaConfig = &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}
	}
	if len(b.AcceptedModalities) == 0 {
		b.AcceptedModalities = []string{"audio"}
	}
	return s.ownCallback(&b.CallbackURI)
}

// Answer answers an incoming call, with botd's defaults filled in.
func (s *Service) Answer(ctx context.Context, callID string, b *graph.AnswerRequest) (Result, error) {
	return s.control(ctx, callID, "answer", graph.OpAnswer, func() error { return s.AnswerDefaults(b) },
		func(ctx context.Context) (graph.Meta, error) { return s.graph.Answer(ctx, callID, b) })
}

// Reject rejects an incoming call.
func (s *Service) Reject(ctx context.Context, callID string, b *graph.RejectRequest) (Result, error) {
	return s.control(ctx, callID, "reject", graph.OpReject, nil,
		func(ctx context.Context) (graph.Meta, error) { return s.graph.Reject(ctx, callID, b) })
}

// Redirect redirects an incoming call, with botd's own callbackUri.
func (s *Service) Redirect(ctx context.Context, callID string, b *graph.RedirectRequest) (Result, error) {
	return s.control(ctx, callID, "redirect", graph.OpRedirect, func() error { return s.ownCallback(&b.CallbackURI) },
		func(ctx context.Context) (graph.Meta, error) { return s.graph.Redirect(ctx, callID, b) })
}

// Transfer transfers an active call.
func (s *Service) Transfer(ctx context.Context, callID string, b *graph.TransferRequest) (Result, error) {
	return s.control(ctx, callID, "transfer", graph.OpTransfer, nil,
		func(ctx context.Context) (graph.Meta, error) { return s.graph.Transfer(ctx, callID, b) })
}

// KeepAlive keeps a call alive. A 404 (*graph.APIError) means Graph no
// longer has the call; what to do of it is the caller's.
func (s *Service) KeepAlive(ctx context.Context, callID string) (Result, error) {
	return s.control(ctx, callID, "keepAlive", graph.OpKeepAlive, nil,
		func(ctx context.Context) (graph.Meta, error) { return s.graph.KeepAlive(ctx, callID) })
}

// Hangup ends botd's leg of a call; the store learns of the end from
// Graph's terminated notification.
func (s *Service) Hangup(ctx context.Context, callID string) (Result, error) {
	return s.control(ctx, callID, "hangup", graph.OpHangup, nil,
		func(ctx context.Context) (graph.Meta, error) { return s.graph.Hangup(ctx, callID) })
}

// ResyncRoster lists the call's participants from Graph and installs them
// in the store, replacing a roster whose deltas had a gap.
func (s *Service) ResyncRoster(ctx context.Context, callID string) error {
	ps, _, err := s.graph.ListParticipants(s.tenantCtx(ctx, callID), callID)
	if err != nil {
		return fmt.Errorf("list participants: %w", err)
	}
	s.store.ReplaceRoster(callID, ps)
	return nil
}

// GoneWhileDown is the reason Refresh ends a call with: Graph answered 404
// for a call botd held before it restarted.
const GoneWhileDown = "Graph no longer has the call (it ended while botd was down)"

// Refresh reads a call botd held before a restart from Graph, with its
// roster and its pending operations, and applies what changed while botd
// was down, as notifications would. A call Graph answers 404 for has ended: the store marks it
// terminated with GoneWhileDown. Errors other than 404 are returned, and
// the call is kept as it was.
func (s *Service) Refresh(ctx context.Context, callID string) error {
	ctx = s.tenantCtx(ctx, callID)
	res, _, err := s.graph.GetCall(ctx, callID)
	var ae *graph.APIError
	switch {
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		s.store.MarkTerminated(callID, GoneWhileDown)
		return nil
	case err != nil:
		return fmt.Errorf("get call: %w", err)
	}
	res.ID = callID
	ev := &model.Event{
		ChangeType: model.ChangeUpdated, Kind: model.EventCall, ODataType: model.ODataCall,
		Path: model.ResourcePath{CallID: callID, Kind: model.ResourceCall}, Call: res,
	}
	if _, err := s.store.Apply(ev); err != nil {
		return fmt.Errorf("apply call: %w", err)
	}
	if res.State == model.StateTerminated {
		return nil
	}
	if err := s.ResyncRoster(ctx, callID); err != nil {
		return err
	}
	s.refreshOperations(ctx, callID)
	return nil
}

// refreshOperations reads each pending operation of the call that has an
// id from Graph and applies what Graph says of it, as its notification
// would have: a notification lost while botd was down then completes the
// operation now instead of at the operation timeout. An operation Graph
// cannot be asked about is left for its notification or the timeout.
func (s *Service) refreshOperations(ctx context.Context, callID string) {
	v, ok := s.store.Call(callID)
	if !ok {
		return
	}
	for _, op := range v.Operations {
		if op.Status.Final() || op.ID == "" {
			continue
		}
		gop, _, err := s.graph.GetOperation(ctx, callID, op.ID)
		if err != nil {
			s.log.Info().Err(err).Str("call_id", callID).Str("op_id", op.ID).Msg("pending operation not read from Graph; waiting for its notification or timeout")
			continue
		}
		if gop.ID == "" {
			gop.ID = op.ID
		}
		ev := &model.Event{
			ChangeType: model.ChangeUpdated, Kind: model.EventOperation, ODataType: gop.ODataType,
			Path: model.ResourcePath{CallID: callID, Kind: model.ResourceOperation, SubID: op.ID}, Operation: gop,
		}
		if _, err := s.store.Apply(ev); err != nil {
			s.log.Warn().Err(err).Str("call_id", callID).Str("op_id", op.ID).Msg("operation read from Graph not applied")
		}
	}
}

// Package calls is botd's one calls service: it owns every outbound action
// on a call end to end. For each action it fills botd's defaults (its own
// callbackUri, the bot's source identity, the tenant, the answer's media
// config), checks the call is one botd tracks and can still act on,
// validates the body (counting refusals in the Graph client's validation
// metric), records the operation in the call store, sends it through the
// Graph client with a token for the call's tenant, maps the outcome back to
// the store, and returns a typed result or error.
//
// The admin handlers, automation and flows call it; nothing else sends to
// Graph. It leaves HTTP to handlers (which map its errors to problems),
// retry policy to its callers, state to callstate and the wire to graph.
package calls

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// Graph is the part of the Graph client the service sends through.
type Graph interface {
	CreateCall(ctx context.Context, call *model.Call) (*model.Call, graph.Meta, error)
	Invite(ctx context.Context, callID string, req *graph.InviteRequest) (*model.Operation, graph.Meta, error)
	Answer(ctx context.Context, callID string, req *graph.AnswerRequest) (graph.Meta, error)
	Reject(ctx context.Context, callID string, req *graph.RejectRequest) (graph.Meta, error)
	Redirect(ctx context.Context, callID string, req *graph.RedirectRequest) (graph.Meta, error)
	Transfer(ctx context.Context, callID string, req *graph.TransferRequest) (graph.Meta, error)
	KeepAlive(ctx context.Context, callID string) (graph.Meta, error)
	Hangup(ctx context.Context, callID string) (graph.Meta, error)
	ListParticipants(ctx context.Context, callID string) ([]model.Participant, graph.Meta, error)
	GetCall(ctx context.Context, callID string) (*model.Call, graph.Meta, error)
	GetOperation(ctx context.Context, callID, opID string) (*model.Operation, graph.Meta, error)

	PlayPrompt(ctx context.Context, callID string, req *graph.PlayPromptRequest) (*model.Operation, graph.Meta, error)
	RecordResponse(ctx context.Context, callID string, req *graph.RecordResponseRequest) (*model.Operation, graph.Meta, error)
	SubscribeToTone(ctx context.Context, callID string, req *graph.SubscribeToToneRequest) (*model.Operation, graph.Meta, error)
	SendDtmfTones(ctx context.Context, callID string, req *graph.SendDtmfTonesRequest) (*model.Operation, graph.Meta, error)
	CancelMediaProcessing(ctx context.Context, callID string, req *graph.CancelMediaProcessingRequest) (*model.Operation, graph.Meta, error)
	Mute(ctx context.Context, callID string, req *graph.MuteRequest) (*model.Operation, graph.Meta, error)
	Unmute(ctx context.Context, callID string, req *graph.MuteRequest) (*model.Operation, graph.Meta, error)
	UpdateRecordingStatus(ctx context.Context, callID string, req *graph.UpdateRecordingStatusRequest) (*model.Operation, graph.Meta, error)
	ChangeScreenSharingRole(ctx context.Context, callID string, req *graph.ChangeScreenSharingRoleRequest) (graph.Meta, error)
	MuteParticipant(ctx context.Context, callID, participantID string, req *graph.MuteRequest) (*model.Operation, graph.Meta, error)
	StartHoldMusic(ctx context.Context, callID, participantID string, req *graph.StartHoldMusicRequest) (*model.Operation, graph.Meta, error)
	StopHoldMusic(ctx context.Context, callID, participantID string, req *graph.StopHoldMusicRequest) (*model.Operation, graph.Meta, error)
	RemoveParticipant(ctx context.Context, callID, participantID string) (graph.Meta, error)
	// CountRefusal counts a request the service refused by a validation
	// rule under op, in the Graph client's validation metric.
	CountRefusal(op string, err error)
}

// Store is the part of the call store the service records in.
type Store interface {
	Call(id string) (callstate.CallView, bool)
	TrackCall(c *model.Call) ([]callstate.Change, error)
	TrackOperation(callID string, op callstate.OperationRecord) error
	OperationSent(callID, clientContext string, op *model.Operation) []callstate.Change
	FailOperation(callID, clientContext string, result *model.ResultInfo, reason string) []callstate.Change
	ReplaceRoster(callID string, ps []model.Participant) []callstate.Change
	Apply(ev *model.Event) ([]callstate.Change, error)
	MarkTerminated(callID, why string) []callstate.Change
	Tenant(callID string) string
}

// Config is botd's identity in outbound requests.
type Config struct {
	// CallbackURL is botd's own callbackUri: filled where a body has none,
	// and the only one accepted.
	CallbackURL string
	// TenantID fills create-call bodies that name none.
	TenantID string
	// BotAppID and BotName make the default create-call source identity.
	BotAppID string
	BotName  string
	// Fetch downloads recordings from their recordingLocation; nil: none.
	Fetch *http.Client
	// Durable, when set, writes a call's record to the journal and returns
	// when it is on disk. The service calls it after recording an
	// operation and before sending it, and after tracking a call it
	// created, so that a crash cannot leave an operation sent that no one
	// waits for. Its failure does not stop the action: botd keeps serving
	// from memory, as it does when the journal fails.
	Durable func(callID string) bool
}

// Actions are the outbound actions, the one list: the admin handlers and
// the flow engine act through it, and *Service is its implementation.
type Actions interface {
	CreateCall(ctx context.Context, call *model.Call) (callstate.CallView, error)
	Answer(ctx context.Context, callID string, req *graph.AnswerRequest) (Result, error)
	Reject(ctx context.Context, callID string, req *graph.RejectRequest) (Result, error)
	Redirect(ctx context.Context, callID string, req *graph.RedirectRequest) (Result, error)
	Transfer(ctx context.Context, callID string, req *graph.TransferRequest) (Result, error)
	KeepAlive(ctx context.Context, callID string) (Result, error)
	Hangup(ctx context.Context, callID string) (Result, error)

	Invite(ctx context.Context, callID string, req *graph.InviteRequest) (*model.Operation, error)
	PlayPrompt(ctx context.Context, callID string, req *graph.PlayPromptRequest) (*model.Operation, error)
	RecordResponse(ctx context.Context, callID string, req *graph.RecordResponseRequest) (*model.Operation, error)
	SubscribeToTone(ctx context.Context, callID string, req *graph.SubscribeToToneRequest) (*model.Operation, error)
	SendDtmfTones(ctx context.Context, callID string, req *graph.SendDtmfTonesRequest) (*model.Operation, error)
	CancelMediaProcessing(ctx context.Context, callID string, req *graph.CancelMediaProcessingRequest) (*model.Operation, error)
	Mute(ctx context.Context, callID string, req *graph.MuteRequest) (*model.Operation, error)
	Unmute(ctx context.Context, callID string, req *graph.MuteRequest) (*model.Operation, error)
	UpdateRecordingStatus(ctx context.Context, callID string, req *graph.UpdateRecordingStatusRequest) (*model.Operation, error)
	ChangeScreenSharingRole(ctx context.Context, callID string, req *graph.ChangeScreenSharingRoleRequest) (*model.Operation, error)
	MuteParticipant(ctx context.Context, callID, participantID string, req *graph.MuteRequest) (*model.Operation, error)
	StartHoldMusic(ctx context.Context, callID, participantID string, req *graph.StartHoldMusicRequest) (*model.Operation, error)
	StopHoldMusic(ctx context.Context, callID, participantID string, req *graph.StopHoldMusicRequest) (*model.Operation, error)
	RemoveParticipant(ctx context.Context, callID, participantID string) (*model.Operation, error)
}

var _ Actions = (*Service)(nil)

// Service sends botd's outbound actions. It is safe for concurrent use.
type Service struct {
	cfg   Config
	graph Graph
	store Store
	log   zerolog.Logger
}

// New builds the service.
func New(cfg Config, g Graph, s Store, log zerolog.Logger) *Service {
	return &Service{cfg: cfg, graph: g, store: s, log: log.With().Str("component", "calls").Logger()}
}

// Kind says how a caller should treat a refusal of the service's own rules.
type Kind int

// Refusal kinds.
const (
	// NotFound: botd does not track the call, or the participant is not in
	// its roster.
	NotFound Kind = iota + 1
	// Conflict: the call is terminated; Graph can do nothing more with it.
	Conflict
)

// Error is an action refused before it reached Graph, because of what the
// call store holds. Nothing was recorded or sent.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Problem: NotFound is a 404, Conflict a 409.
func (e *Error) Problem() problem.Problem {
	code := problem.NotFound
	if e.Kind == Conflict {
		code = problem.Conflict
	}
	return problem.Problem{Code: code}
}

// Result is the outcome of a call-control action Graph accepted.
type Result struct {
	CallID string
	// Action is the action's name in the admin API: answer, reject,
	// redirect, transfer, keepAlive, hangup.
	Action string
	Meta   graph.Meta
}

// Live returns the view of a call botd can act on: an unknown call is a
// NotFound error, a terminated one a Conflict. A participantID, if not
// empty, must be in the call's roster (else NotFound).
func (s *Service) Live(callID, participantID string) (callstate.CallView, error) {
	v, ok := s.store.Call(callID)
	if !ok {
		return v, &Error{Kind: NotFound, Message: fmt.Sprintf("call %q is not tracked", callID)}
	}
	if v.State == model.StateTerminated {
		return v, &Error{Kind: Conflict, Message: "call already terminated"}
	}
	if participantID != "" && !inRoster(v, participantID) {
		return v, &Error{Kind: NotFound, Message: fmt.Sprintf("participant %q is not in call %q", problem.Shorten(participantID), callID)}
	}
	return v, nil
}

func inRoster(v callstate.CallView, pid string) bool {
	for _, p := range v.Participants {
		if p.ID == pid {
			return true
		}
	}
	return false
}

// tenantCtx is ctx for a Graph request on callID: with a token for the
// call's tenant (BOTD_TENANT_ID when the call names none).
// durable writes the call's record to the journal now, when there is one.
func (s *Service) durable(callID string) {
	if s.cfg.Durable != nil && !s.cfg.Durable(callID) {
		s.log.Warn().Str("call_id", callID).Msg("call not written to the journal before acting on it; going on from memory")
	}
}

func (s *Service) tenantCtx(ctx context.Context, callID string) context.Context {
	return graph.WithTenant(ctx, s.store.Tenant(callID))
}

// ownCallback fills botd's own callbackUri where a body has none, and
// refuses another one: botd must receive the call's notifications to track
// it.
func (s *Service) ownCallback(uri *string) error {
	switch *uri {
	case "":
		*uri = s.cfg.CallbackURL
	case s.cfg.CallbackURL:
	default:
		return &graph.ValidationError{
			Rule: graph.RuleCallbackOwn, Field: "callbackUri",
			Message: fmt.Sprintf("%q is not botd's own (%s): botd must receive the call's notifications to track it; leave it out", *uri, s.cfg.CallbackURL),
		}
	}
	return nil
}

// refuse counts err, a validation failure of op, as the Graph client counts
// its own refusals, and returns it.
func (s *Service) refuse(op string, err error) error {
	s.graph.CountRefusal(op, err)
	return err
}

package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

// Store is the part of the call store the handlers use.
type Store interface {
	Apply(ev *model.Event) ([]callstate.Change, error)
	Call(id string) (callstate.CallView, bool)
	Calls() []callstate.CallSummary
	TrackCall(c *model.Call) ([]callstate.Change, error)
	TrackOperation(callID string, op callstate.OperationRecord) error
	OperationSent(callID, clientContext string, op *model.Operation) []callstate.Change
	FailOperation(callID, clientContext string, result *model.ResultInfo, reason string) []callstate.Change
	Tenant(callID string) string
	Subscribe(buffer int) (<-chan callstate.Change, func())
}

// Graph is the part of the Graph client the admin API drives.
type Graph interface {
	CreateCall(ctx context.Context, call *model.Call) (*model.Call, graph.Meta, error)
	Invite(ctx context.Context, callID string, req *graph.InviteRequest) (*model.Operation, graph.Meta, error)
	Answer(ctx context.Context, callID string, req *graph.AnswerRequest) (graph.Meta, error)
	Reject(ctx context.Context, callID string, req *graph.RejectRequest) (graph.Meta, error)
	Redirect(ctx context.Context, callID string, req *graph.RedirectRequest) (graph.Meta, error)
	Transfer(ctx context.Context, callID string, req *graph.TransferRequest) (graph.Meta, error)
	KeepAlive(ctx context.Context, callID string) (graph.Meta, error)
	Hangup(ctx context.Context, callID string) (graph.Meta, error)

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
	// CountRefusal counts a request the admin API refused by a validation
	// rule under op, in the Graph client's validation metric.
	CountRefusal(op string, err error)
}

// listReply is Graph's collection shape.
type listReply[T any] struct {
	Value []T `json:"value"`
}

// actionReply answers a call-control request Graph accepted.
type actionReply struct {
	CallID          string `json:"callId"`
	Action          string `json:"action"`
	ClientRequestID string `json:"clientRequestId,omitempty"`
	RequestID       string `json:"requestId,omitempty"`
}

func handleListCalls(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls := d.Store.Calls()
		if calls == nil {
			calls = []callstate.CallSummary{}
		}
		writeJSON(w, http.StatusOK, listReply[callstate.CallSummary]{Value: calls})
	})
}

// trackedCall returns the view of the route's call, or answers 404.
func trackedCall(d Deps, w http.ResponseWriter, r *http.Request) (callstate.CallView, bool) {
	id := chi.URLParam(r, "callID")
	v, ok := d.Store.Call(id)
	if !ok {
		writeProblem(w, r, errorf(CodeNotFound, "call %q is not tracked", id))
	}
	return v, ok
}

// liveCall is trackedCall for the routes that act on a call: a call the
// store holds as terminated answers 409, since Graph can do nothing more
// with it.
func liveCall(d Deps, w http.ResponseWriter, r *http.Request) bool {
	v, ok := trackedCall(d, w, r)
	if ok && v.State == model.StateTerminated {
		writeProblem(w, r, errorf(CodeConflict, "call already terminated"))
		return false
	}
	return ok
}

func handleGetCall(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := trackedCall(d, w, r); ok {
			writeJSON(w, http.StatusOK, v)
		}
	})
}

func handleListParticipants(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := trackedCall(d, w, r)
		if !ok {
			return
		}
		ps := v.Participants
		if ps == nil {
			ps = []model.Participant{}
		}
		writeJSON(w, http.StatusOK, listReply[model.Participant]{Value: ps})
	})
}

// handleCreateCall creates a call from a Graph call body. botd fills its own
// callbackUri, and the source and tenantId from config when missing; a
// foreign callbackUri is refused, since botd must receive the call's
// notifications to track it.
func handleCreateCall(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call model.Call
		if err := decodeBody(r, &call, true); err != nil {
			writeProblem(w, r, err)
			return
		}
		if err := d.ownCallback(&call.CallbackURI); err != nil {
			d.refuse(w, r, graph.OpCreateCall, err)
			return
		}
		if call.ODataType == "" {
			call.ODataType = model.ODataCall
		}
		if call.Source == nil && d.BotAppID != "" {
			call.Source = &model.ParticipantInfo{
				ODataType: model.ODataParticipantInfo,
				Identity: &model.IdentitySet{ODataType: model.ODataIdentitySet, Application: &model.Identity{
					ODataType: model.ODataIdentity, ID: d.BotAppID, DisplayName: d.BotName,
				}},
			}
		}
		if call.TenantID == "" {
			call.TenantID = d.TenantID
		}
		if err := graph.ValidateCall(&call); err != nil {
			d.refuse(w, r, graph.OpCreateCall, err)
			return
		}
		created, meta, err := d.Graph.CreateCall(graph.WithTenant(r.Context(), call.TenantID), &call)
		log := d.Log.With().Str("component", "admin").Str("client_request_id", meta.ClientRequestID).Logger()
		if err != nil {
			log.Warn().Err(err).Msg("create call failed")
			writeProblem(w, r, err)
			return
		}
		fieldsFrom(r.Context()).callID = created.ID
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
		_, err = d.Store.TrackCall(created)
		if err != nil {
			log.Error().Err(err).Str("call_id", created.ID).Msg("created call could not be tracked")
			writeProblem(w, r, err)
			return
		}
		log.Info().Str("call_id", created.ID).Str("graph_request_id", meta.RequestID).Msg("call created")
		v, _ := d.Store.Call(created.ID)
		w.Header().Set("Location", "/v1/calls/"+created.ID)
		writeJSON(w, http.StatusCreated, v)
	})
}

// tenantCtx is ctx for a Graph request on callID: with a token for the
// call's tenant (BOTD_TENANT_ID when the call names none).
func (d Deps) tenantCtx(ctx context.Context, callID string) context.Context {
	return graph.WithTenant(ctx, d.Store.Tenant(callID))
}

// ownCallback fills botd's own callbackUri where a body has none, and
// refuses another one: botd must receive the call's notifications to track
// it.
func (d Deps) ownCallback(uri *string) error {
	switch *uri {
	case "":
		*uri = d.CallbackURL
	case d.CallbackURL:
	default:
		return &graph.ValidationError{
			Rule: graph.RuleCallbackOwn, Field: "callbackUri",
			Message: fmt.Sprintf("%q is not botd's own (%s): botd must receive the call's notifications to track it; leave it out", *uri, d.CallbackURL),
		}
	}
	return nil
}

// refuse answers a request refused by a validation rule before it reached
// the Graph client, and counts it as the client counts its own refusals.
func (d Deps) refuse(w http.ResponseWriter, r *http.Request, op string, err error) {
	d.Graph.CountRefusal(op, err)
	writeProblem(w, r, err)
}

// Whether a call action needs a body: an empty one is a 400 where it does,
// and the zero value (Graph's defaults, botd's fill) where it does not.
const (
	bodyRequired = true
	bodyOptional = false
)

// callAction is a call-control request with a body of type T.
// fill completes the body with botd's defaults; an error refuses it as a
// validation failure of the operation op.
func callAction[T any](d Deps, action, op string, needBody bool, fill func(*T) error, send func(ctx context.Context, callID string, body *T) (graph.Meta, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		if !liveCall(d, w, r) {
			return
		}
		body := new(T)
		if err := decodeBody(r, body, needBody); err != nil {
			writeProblem(w, r, err)
			return
		}
		if fill != nil {
			if err := fill(body); err != nil {
				d.refuse(w, r, op, err)
				return
			}
		}
		meta, err := send(d.tenantCtx(r.Context(), callID), callID, body)
		log := d.Log.With().Str("component", "admin").Str("call_id", callID).Str("action", action).Str("client_request_id", meta.ClientRequestID).Logger()
		if err != nil {
			log.Warn().Err(err).Msg("call action failed")
			writeProblem(w, r, err)
			return
		}
		log.Info().Msg("call action accepted by Graph")
		status := http.StatusAccepted
		if action == "keepAlive" {
			status = http.StatusOK
		}
		writeJSON(w, status, actionReply{CallID: callID, Action: action, ClientRequestID: meta.ClientRequestID, RequestID: meta.RequestID})
	})
}

func handleAnswer(d Deps) http.Handler {
	return callAction(d, "answer", graph.OpAnswer, bodyOptional, func(b *graph.AnswerRequest) error {
		if b.MediaConfig == nil {
			b.MediaConfig = &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}
		}
		if len(b.AcceptedModalities) == 0 {
			b.AcceptedModalities = []string{"audio"}
		}
		return d.ownCallback(&b.CallbackURI)
	}, func(ctx context.Context, id string, b *graph.AnswerRequest) (graph.Meta, error) {
		return d.Graph.Answer(ctx, id, b)
	})
}

func handleReject(d Deps) http.Handler {
	return callAction(d, "reject", graph.OpReject, bodyOptional, nil, func(ctx context.Context, id string, b *graph.RejectRequest) (graph.Meta, error) {
		return d.Graph.Reject(ctx, id, b)
	})
}

func handleRedirect(d Deps) http.Handler {
	return callAction(d, "redirect", graph.OpRedirect, bodyRequired, func(b *graph.RedirectRequest) error {
		return d.ownCallback(&b.CallbackURI)
	}, func(ctx context.Context, id string, b *graph.RedirectRequest) (graph.Meta, error) {
		return d.Graph.Redirect(ctx, id, b)
	})
}

func handleTransfer(d Deps) http.Handler {
	return callAction(d, "transfer", graph.OpTransfer, bodyRequired, nil, func(ctx context.Context, id string, b *graph.TransferRequest) (graph.Meta, error) {
		return d.Graph.Transfer(ctx, id, b)
	})
}

// emptyBody is the body of actions that take none; any JSON object is
// accepted and ignored only when it is empty.
type emptyBody struct{}

func handleKeepAlive(d Deps) http.Handler {
	return callAction(d, "keepAlive", graph.OpKeepAlive, bodyOptional, nil, func(ctx context.Context, id string, _ *emptyBody) (graph.Meta, error) {
		return d.Graph.KeepAlive(ctx, id)
	})
}

func handleHangup(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		if !liveCall(d, w, r) {
			return
		}
		meta, err := d.Graph.Hangup(d.tenantCtx(r.Context(), callID), callID)
		log := d.Log.With().Str("component", "admin").Str("call_id", callID).Str("client_request_id", meta.ClientRequestID).Logger()
		if err != nil {
			log.Warn().Err(err).Msg("hang up failed")
			writeProblem(w, r, err)
			return
		}
		log.Info().Msg("hang up accepted by Graph; waiting for terminated")
		writeJSON(w, http.StatusAccepted, actionReply{CallID: callID, Action: "hangup", ClientRequestID: meta.ClientRequestID, RequestID: meta.RequestID})
	})
}

// errEmptyBody answers a request that needs a body and came without one.
var errEmptyBody = errorf(CodeInvalid, "the request body is empty")

// decodeBody decodes a JSON request body strictly: the content type must be
// JSON, unknown fields are reported by name, and trailing data is refused. An
// empty (or all-space) body is refused when required, and otherwise decodes
// to the zero value.
func decodeBody(r *http.Request, v any, required bool) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if required {
			return errEmptyBody
		}
		return nil
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return errorf(CodeMediaType, "content type must be application/json, got %q", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Code: CodeInvalid, Message: "invalid JSON body", Err: jsonError(err)}
	}
	if dec.More() {
		return errorf(CodeInvalid, "invalid JSON body: data after the JSON value")
	}
	return nil
}

// jsonError says what is wrong with a body in JSON's and Graph's words,
// never Go's: a type error names the field by its JSON path and the type
// expected the way the API documents it.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("syntax error at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		got := jsonValueName(te.Value)
		if te.Field == "" {
			return fmt.Errorf("the body must be %s, got %s", jsonTypeName(te.Type), got)
		}
		return fmt.Errorf("%q must be %s, got %s", te.Field, jsonTypeName(te.Type), got)
	}
	return err
}

// modelPkg is the package whose structs are Graph resources, named as
// Graph names them (model.InvitationParticipantInfo is an
// invitationParticipantInfo).
var modelPkg = reflect.TypeFor[model.Call]().PkgPath()

// jsonTypeName is t as JSON sees it, with an article: "a string",
// "a number", "true or false", "an object", "an array of X", and a Graph
// resource for a struct of internal/model.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.Slice, reflect.Array:
		return "an array of " + jsonPlural(t.Elem())
	case reflect.Struct:
		if name := resourceName(t); name != "" {
			return article(name) + " " + name
		}
		return "an object"
	case reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a JSON value"
}

// jsonPlural names the elements of an array: "invitationParticipantInfo"
// for Graph resources, as Graph's documentation does, else "strings",
// "numbers", "booleans", "objects" or "arrays".
func jsonPlural(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if name := resourceName(t); name != "" {
			return name
		}
		return "objects"
	case reflect.Map:
		return "objects"
	case reflect.Slice, reflect.Array:
		return "arrays"
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Interface:
		return "JSON values"
	}
	return "numbers"
}

// resourceName is a model struct's Graph name, its Go name with the first
// letter lowered; "" for any other type.
func resourceName(t reflect.Type) string {
	if t.PkgPath() != modelPkg || t.Name() == "" {
		return ""
	}
	n := t.Name()
	return strings.ToLower(n[:1]) + n[1:]
}

func article(word string) string {
	if strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}

// jsonValueName is the JSON value encoding/json found ("string", "number",
// "number 1e999", "bool", "array", "object"), with an article.
func jsonValueName(v string) string {
	switch {
	case v == "string":
		return "a string"
	case v == "number" || strings.HasPrefix(v, "number "):
		return "a number"
	case v == "bool":
		return "a boolean"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	case v == "null":
		return "null"
	}
	return v
}

// validCallID answers 404 for a call id that no notification could carry:
// the decoder's rule for ids (charset and length) is the one rule, so an id
// the admin API sends to Graph is always one Graph's notifications can name.
func validCallID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "callID")
		if p, err := notify.ParseResourcePath("/communications/calls/" + id); err != nil || p.Kind != model.ResourceCall || p.CallID != id {
			shown := id
			if len(shown) > 64 {
				shown = shown[:64] + "..."
			}
			writeProblem(w, r, errorf(CodeNotFound, "%q is not a call id", shown))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminMetrics counts admin requests by route pattern, method and status.
func adminMetrics(m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			m.adminRequests.WithLabelValues(routePattern(r), methodLabel(r.Method), strconv.Itoa(sw.status)).Inc()
		})
	}
}

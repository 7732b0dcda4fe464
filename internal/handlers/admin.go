package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/problem"
)

// Store is the part of the call store the handlers read and feed with
// notifications.
type Store interface {
	Apply(ev *model.Event) ([]callstate.Change, error)
	Call(id string) (callstate.CallView, bool)
	Calls() []callstate.CallSummary
	Subscribe(buffer int) (<-chan callstate.Change, func())
}

// Calls is the calls service: the one sender of botd's outbound actions
// (calls.Actions), and what it reads of a call for the admin API. The
// admin handlers decode a request, call it and write its answer.
type Calls interface {
	calls.Actions
	Live(callID, participantID string) (callstate.CallView, error)
	GraphCall(ctx context.Context, callID string) (*model.Call, error)
	GraphOperation(ctx context.Context, callID, opID string) (*model.Operation, error)
	Recording(ctx context.Context, callID, opID string) (io.ReadCloser, string, error)
}

// actionReply answers a call-control request Graph accepted.
type actionReply struct {
	CallID          string `json:"callId"`
	Action          string `json:"action"`
	ClientRequestID string `json:"clientRequestId,omitempty"`
	RequestID       string `json:"requestId,omitempty"`
}

// trackedCall returns the view of the route's call, or answers 404.
func trackedCall(d Deps, w http.ResponseWriter, r *http.Request) (callstate.CallView, bool) {
	id := chi.URLParam(r, "callID")
	v, ok := d.Store.Call(id)
	if !ok {
		writeProblem(w, r, errorf(problem.NotFound, "call %q is not tracked", id))
	}
	return v, ok
}

// liveCall answers the calls service's refusal (404 for a call botd does not
// track or a participant not in its roster, 409 for a terminated call)
// before the body is read.
func liveCall(d Deps, w http.ResponseWriter, r *http.Request, participantID string) bool {
	if _, err := d.Calls.Live(chi.URLParam(r, "callID"), participantID); err != nil {
		writeProblem(w, r, err)
		return false
	}
	return true
}

func handleGetCall(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := trackedCall(d, w, r)
		if !ok {
			return
		}
		reply := callReply{CallView: v}
		if d.Flows != nil {
			reply.Runs = d.Flows.RunsForCall(v.ID)
		}
		writeJSON(w, http.StatusOK, reply)
	})
}

func handleListParticipants(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := trackedCall(d, w, r)
		if !ok {
			return
		}
		page, err := indexPage(r, v.Participants)
		answer(w, r, http.StatusOK, page, err)
	})
}

// handleCreateCall creates a call from a Graph call body; the calls
// service fills botd's defaults and refuses a foreign callbackUri.
func handleCreateCall(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call model.Call
		if err := decodeBody(r, &call, true); err != nil {
			writeProblem(w, r, err)
			return
		}
		v, err := d.Calls.CreateCall(r.Context(), &call)
		if v.ID != "" {
			fieldsFrom(r.Context()).callID = v.ID
		}
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/calls/"+v.ID)
		writeJSON(w, http.StatusCreated, v)
	})
}

// Whether a call action needs a body: an empty one is a 400 where it does,
// and the zero value (Graph's defaults, botd's fill) where it does not.
const (
	bodyRequired = true
	bodyOptional = false
)

// callAction is a call-control request with a body of type T, sent by the
// calls service.
func callAction[T any](d Deps, needBody bool, send func(ctx context.Context, callID string, body *T) (calls.Result, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		if !liveCall(d, w, r, "") {
			return
		}
		body := new(T)
		if err := decodeBody(r, body, needBody); err != nil {
			writeProblem(w, r, err)
			return
		}
		res, err := send(r.Context(), callID, body)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		status := http.StatusAccepted
		if res.Action == "keepAlive" {
			status = http.StatusOK
		}
		writeJSON(w, status, actionReply{CallID: callID, Action: res.Action, ClientRequestID: res.Meta.ClientRequestID, RequestID: res.Meta.RequestID})
	})
}

func handleAnswer(d Deps) http.Handler {
	return callAction(d, bodyOptional, d.Calls.Answer)
}

func handleReject(d Deps) http.Handler {
	return callAction(d, bodyOptional, d.Calls.Reject)
}

func handleRedirect(d Deps) http.Handler {
	return callAction(d, bodyRequired, d.Calls.Redirect)
}

func handleTransfer(d Deps) http.Handler {
	return callAction(d, bodyRequired, d.Calls.Transfer)
}

// emptyBody is the body of actions that take none; any JSON object is
// accepted and ignored only when it is empty.
type emptyBody struct{}

func handleKeepAlive(d Deps) http.Handler {
	return callAction(d, bodyOptional, func(ctx context.Context, id string, _ *emptyBody) (calls.Result, error) {
		return d.Calls.KeepAlive(ctx, id)
	})
}

// handleHangup hangs up; any request body is ignored.
func handleHangup(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		res, err := d.Calls.Hangup(r.Context(), callID)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, actionReply{CallID: callID, Action: res.Action, ClientRequestID: res.Meta.ClientRequestID, RequestID: res.Meta.RequestID})
	})
}

// errEmptyBody answers a request that needs a body and came without one.
var errEmptyBody = errorf(problem.Invalid, "the request body is empty")

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
		return errorf(problem.MediaType, "content type must be application/json, got %q", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Code: problem.Invalid, Message: "invalid JSON body", Err: jsonError(err)}
	}
	if dec.More() {
		return errorf(problem.Invalid, "invalid JSON body: data after the JSON value")
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
			writeProblem(w, r, errorf(problem.NotFound, "%q is not a call id", problem.Shorten(id)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminMetrics counts admin requests by route pattern, method and status.
func adminMetrics(m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code := serveStatus(w, r, next)
			m.adminRequests.WithLabelValues(routePattern(r), methodLabel(r.Method), strconv.Itoa(code)).Inc()
		})
	}
}

package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/notify"
)

// Code classifies an error the way a client should react to it. It is the one
// coded error type handlers use; problemFor maps it, and the errors of the
// inner packages, to an HTTP status.
type Code string

// Error codes.
const (
	CodeInvalid         Code = "invalid"            // 400
	CodeUnauthorized    Code = "unauthorized"       // 401
	CodeNotFound        Code = "not_found"          // 404
	CodeMethod          Code = "method_not_allowed" // 405
	CodeConflict        Code = "conflict"           // 409
	CodeTooLarge        Code = "too_large"          // 413
	CodeMediaType       Code = "unsupported_media"  // 415
	CodeUnprocessable   Code = "unprocessable"      // 422
	CodeInternal        Code = "internal"           // 500
	CodeUpstream        Code = "graph_error"        // 502
	CodeUnavailable     Code = "unavailable"        // 503
	CodeUpstreamTimeout Code = "outcome_unknown"    // 504
)

var codeStatus = map[Code]int{
	CodeInvalid:         http.StatusBadRequest,
	CodeUnauthorized:    http.StatusUnauthorized,
	CodeNotFound:        http.StatusNotFound,
	CodeMethod:          http.StatusMethodNotAllowed,
	CodeConflict:        http.StatusConflict,
	CodeTooLarge:        http.StatusRequestEntityTooLarge,
	CodeMediaType:       http.StatusUnsupportedMediaType,
	CodeUnprocessable:   http.StatusUnprocessableEntity,
	CodeInternal:        http.StatusInternalServerError,
	CodeUpstream:        http.StatusBadGateway,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeUpstreamTimeout: http.StatusGatewayTimeout,
}

// Error is a handler-level error with a code and a message safe to show.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Problem is an RFC 9457 problem body, with botd's extension members.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     Code   `json:"code"`
	// Rule names the validation rule broken (Graph client rules).
	Rule  string `json:"rule,omitempty"`
	Field string `json:"field,omitempty"`
	// Graph's error, for failures Graph reported.
	GraphStatus     int    `json:"graphStatus,omitempty"`
	GraphCode       string `json:"graphCode,omitempty"`
	RequestID       string `json:"requestId,omitempty"`
	ClientRequestID string `json:"clientRequestId,omitempty"`
	// Items lists per-item rejections of a notification batch.
	Items []ItemProblem `json:"items,omitempty"`
}

// ItemProblem is one rejected item of a batch.
type ItemProblem struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// callsCode is the code of each refusal kind of the calls service.
var callsCode = map[calls.Kind]Code{calls.NotFound: CodeNotFound, calls.Conflict: CodeConflict}

// problemFor is the one place errors become HTTP statuses.
func problemFor(err error) Problem {
	p := Problem{Code: CodeInternal, Detail: "internal error"}
	var (
		he  *Error
		ce  *calls.Error
		ve  *graph.ValidationError
		ae  *graph.APIError
		oue *graph.OutcomeUnknownError
		te  *graph.TokenError
	)
	switch {
	case errors.As(err, &ve):
		p.Code, p.Detail, p.Rule, p.Field = CodeUnprocessable, ve.Error(), ve.Rule, ve.Field
	case errors.As(err, &oue):
		p.Code = CodeUpstreamTimeout
		p.Detail = "the outcome of the Graph request is unknown; botd will reconcile it by clientContext and will not resend it: " + oue.Error()
		p.ClientRequestID = oue.ClientRequestID
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		// Graph no longer knows what botd named: a call that ended
		// without botd hearing of it. Not a gateway failure.
		p.Code, p.Detail = CodeNotFound, "Graph has no such call: "+ae.Message
		p.GraphStatus, p.GraphCode, p.RequestID, p.ClientRequestID = ae.StatusCode, ae.Code, ae.RequestID, ae.ClientRequestID
	case errors.As(err, &ae):
		p.Code, p.Detail = CodeUpstream, "Graph refused the request: "+ae.Message
		p.GraphStatus, p.GraphCode, p.RequestID, p.ClientRequestID = ae.StatusCode, ae.Code, ae.RequestID, ae.ClientRequestID
	case errors.Is(err, graph.ErrInvalidTenant):
		p.Code, p.Detail, p.Rule, p.Field = CodeUnprocessable, err.Error(), graph.RuleTenantID, "tenantId"
	case errors.Is(err, callstate.ErrTooManyCalls):
		p.Code, p.Detail = CodeUnavailable, err.Error()
	case errors.Is(err, callstate.ErrUnknownCall):
		p.Code, p.Detail = CodeNotFound, err.Error()
	case errors.Is(err, notify.ErrNotJSON), errors.Is(err, notify.ErrNotCommsNotifications),
		errors.Is(err, notify.ErrMissingValue), errors.Is(err, notify.ErrLimitExceeded):
		p.Code, p.Detail = CodeInvalid, err.Error()
	case errors.As(err, &ce):
		p.Code, p.Detail = callsCode[ce.Kind], ce.Message
	case errors.As(err, &he):
		p.Code, p.Detail = he.Code, he.Error()
	case errors.As(err, &te):
		// The token endpoint's answer says nothing secret (TokenError keeps
		// only its code and first line); a tenant the app is not consented
		// in ends here.
		p.Code, p.Detail = CodeUpstream, "botd could not get a Graph token: "+te.Error()
		p.GraphStatus = te.StatusCode
	}
	p.Status = codeStatus[p.Code]
	p.Title = http.StatusText(p.Status)
	// No problem type of our own: the status says what kind of problem it
	// is, and the code extension member says which (README, "Errors").
	p.Type = "about:blank"
	return p
}

// writeProblem answers with err as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	p.Instance = r.URL.Path
	writeProblemBody(w, p)
}

func writeProblemBody(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

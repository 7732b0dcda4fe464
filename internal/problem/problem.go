// Package problem is botd's one coded error and its one mapping to HTTP:
// every package's errors say which Code they are (by implementing Coded,
// or by being an *Error), and For turns any error into the RFC 9457
// problem body every botd error answer carries. Which status a code is,
// and what its body holds, lives here only.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code classifies an error the way a client should react to it; it is the
// "code" member of every problem body.
type Code string

// The codes, with their HTTP status in Status.
const (
	Invalid         Code = "invalid"            // 400
	Unauthorized    Code = "unauthorized"       // 401
	NotFound        Code = "not_found"          // 404
	MethodNotAllow  Code = "method_not_allowed" // 405
	Conflict        Code = "conflict"           // 409
	TooLarge        Code = "too_large"          // 413
	MediaType       Code = "unsupported_media"  // 415
	Unprocessable   Code = "unprocessable"      // 422
	Internal        Code = "internal"           // 500
	Upstream        Code = "graph_error"        // 502
	Unavailable     Code = "unavailable"        // 503
	UpstreamTimeout Code = "outcome_unknown"    // 504
)

var statuses = map[Code]int{
	Invalid:         http.StatusBadRequest,
	Unauthorized:    http.StatusUnauthorized,
	NotFound:        http.StatusNotFound,
	MethodNotAllow:  http.StatusMethodNotAllowed,
	Conflict:        http.StatusConflict,
	TooLarge:        http.StatusRequestEntityTooLarge,
	MediaType:       http.StatusUnsupportedMediaType,
	Unprocessable:   http.StatusUnprocessableEntity,
	Internal:        http.StatusInternalServerError,
	Upstream:        http.StatusBadGateway,
	Unavailable:     http.StatusServiceUnavailable,
	UpstreamTimeout: http.StatusGatewayTimeout,
}

// Codes lists every code, for documentation tests.
func Codes() []Code {
	out := make([]Code, 0, len(statuses))
	for c := range statuses {
		out = append(out, c)
	}
	return out
}

// Status is the HTTP status of c (500 for a code botd does not have).
func (c Code) Status() int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem body, with botd's extension members.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     Code   `json:"code"`
	// Rule and Field name the validation rule broken.
	Rule  string `json:"rule,omitempty"`
	Field string `json:"field,omitempty"`
	// Graph's error, for failures Graph reported.
	GraphStatus     int    `json:"graphStatus,omitempty"`
	GraphCode       string `json:"graphCode,omitempty"`
	RequestID       string `json:"requestId,omitempty"`
	ClientRequestID string `json:"clientRequestId,omitempty"`
	// Items lists per-item rejections of a notification batch.
	Items []ItemProblem `json:"items,omitempty"`
	// Errors lists every error of a file that did not load, each
	// "file:line:column: message".
	Errors []string `json:"errors,omitempty"`
}

// ItemProblem is one rejected item of a batch.
type ItemProblem struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// Coded is an error that knows its problem: its Code, and the members it
// adds (Rule, Graph's ids...). A Detail left empty is the error's text.
type Coded interface {
	error
	Problem() Problem
}

// Error is the coded error of packages with no error type of their own:
// a code, a message safe to show, and what it wraps.
type Error struct {
	Code    Code
	Message string
	Rule    string
	Field   string
	Err     error
}

// Shorten keeps a value a client sent readable where an error echoes it:
// at most 64 bytes, then "...".
func Shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Problem is e's code and rule; the detail is the whole error text.
func (e *Error) Problem() Problem { return Problem{Code: e.Code, Rule: e.Rule, Field: e.Field} }

// For is the problem of err: that of the outermost Coded error in its
// chain, else an internal error that shows nothing of err.
func For(err error) Problem {
	var c Coded
	if !errors.As(err, &c) {
		p := Problem{Code: Internal, Detail: "internal error"}
		return complete(p)
	}
	p := c.Problem()
	if p.Detail == "" {
		p.Detail = err.Error()
	}
	return complete(p)
}

func complete(p Problem) Problem {
	p.Status = p.Code.Status()
	p.Title = http.StatusText(p.Status)
	// No problem type of botd's own: the status says what kind of problem
	// it is, and the code member which one.
	p.Type = "about:blank"
	return p
}

// Write answers with err as application/problem+json, its instance the
// request's path.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	p := For(err)
	p.Instance = r.URL.Path
	WriteBody(w, p)
}

// WriteBody answers with p as it is.
func WriteBody(w http.ResponseWriter, p Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// Closest is the entry of known nearest to s by edit distance (in bytes),
// if it is fewer than within edits away; ties go to the smaller entry.
// Error texts use it for "did you mean".
func Closest(s string, known []string, within int) (string, bool) {
	best, bestD := "", within
	for _, k := range known {
		if d := editDistance(s, k); d < bestD || (d == bestD && best != "" && k < best) {
			best, bestD = k, d
		}
	}
	return best, best != ""
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

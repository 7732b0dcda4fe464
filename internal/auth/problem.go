package auth

import (
	"encoding/json"
	"net/http"
)

// problem is an RFC 9457 body with botd's "code" member, the same shape
// internal/handlers writes, so a client sees one error format whichever
// layer answered. auth cannot import handlers (handlers imports auth), so
// the few lines are repeated here.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
}

const (
	codeUnauthorized = "unauthorized"
	codeUnavailable  = "unavailable"
)

// writeProblem answers with a problem whose instance is the request path,
// as internal/handlers' problems have it.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	p := problem{
		Type:     "about:blank", // as internal/handlers: the status and code say which problem
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
		Code:     code,
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

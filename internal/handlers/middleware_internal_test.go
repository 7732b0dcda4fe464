package handlers

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5/middleware"
)

// TestRequestContext: one context value answers the log fields and chi's
// request id key (which internal/auth reads), and delegates the rest; a
// request without X-Request-Id gets a new id, each different.
func TestRequestContext(t *testing.T) {
	type other struct{}
	parent := context.WithValue(context.Background(), other{}, "kept")
	rc := &reqCtx{Context: parent, id: "req-1"}
	if middleware.GetReqID(rc) != "req-1" || fieldsFrom(rc) != &rc.fields || rc.Value(other{}) != "kept" {
		t.Fatalf("reqCtx answers id %q, fields %p (want %p), other %v", middleware.GetReqID(rc), fieldsFrom(rc), &rc.fields, rc.Value(other{}))
	}
	r := httptest.NewRequest("POST", "/api/calls", nil)
	a, b := requestID(r), requestID(r)
	if a == b || !strings.HasPrefix(a, requestIDPrefix) || !strings.HasPrefix(b, requestIDPrefix) {
		t.Errorf("generated ids %q and %q", a, b)
	}
	r.Header.Set("X-Request-Id", "graph-7")
	if id := requestID(r); id != "graph-7" {
		t.Errorf("X-Request-Id not kept: %q", id)
	}
}

package handlers

import (
	"context"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// TestRequestContext: one context value answers the log fields, chi's
// request id key (which internal/auth reads) and chi's routing context,
// and delegates the rest; a request without X-Request-Id gets an id made
// of the process's prefix and its sequence number.
func TestRequestContext(t *testing.T) {
	type other struct{}
	parent := context.WithValue(context.Background(), other{}, "kept")
	route := chi.NewRouteContext()
	rc := &reqCtx{Context: parent, hdrID: "req-1", route: route}
	if middleware.GetReqID(rc) != "req-1" || fieldsFrom(rc) != &rc.fields || rc.Value(other{}) != "kept" || chi.RouteContext(rc) != route {
		t.Fatalf("reqCtx answers id %q, fields %p (want %p), other %v, route %p (want %p)",
			middleware.GetReqID(rc), fieldsFrom(rc), &rc.fields, rc.Value(other{}), chi.RouteContext(rc), route)
	}
	gen := &reqCtx{Context: parent, seq: 42}
	if id := middleware.GetReqID(gen); id != requestIDPrefix+"42" || !strings.Contains(id, "/") {
		t.Errorf("generated id %q, want %q", id, requestIDPrefix+"42")
	}
}

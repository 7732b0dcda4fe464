package emulator

import (
	"net/http"
	"testing"
)

// The request record is capped as maxRecorded says: the oldest requests
// are dropped and counted.
func TestRequestRecordCapped(t *testing.T) {
	e := newEmu(t, Options{})
	e.s.mu.Lock()
	e.s.maxRequests = 3
	e.s.mu.Unlock()
	for range 5 {
		e.graph(http.MethodGet, "/communications/calls/nope", "")
	}
	if got := len(e.s.Requests()); got != 3 {
		t.Errorf("%d requests recorded, want the cap 3", got)
	}
	// The token fetch and five GETs: three dropped.
	if got := e.s.RequestsDropped(); got != 3 {
		t.Errorf("RequestsDropped %d, want 3", got)
	}
}

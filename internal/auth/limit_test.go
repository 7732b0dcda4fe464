package auth

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := Limit(2, 1500*time.Millisecond, reg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	serve := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		return rec
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if rec := serve("/block"); rec.Code != http.StatusNoContent {
				t.Errorf("blocked request got %d", rec.Code)
			}
		})
	}
	<-entered
	<-entered // both slots are taken

	rec := serve("/other")
	decodeProblem(t, rec, http.StatusServiceUnavailable, "unavailable")
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", got)
	}
	limited := register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "botd_http_limited_total", Help: "Requests answered 503 because the concurrency limit was reached."}))
	if got := testutil.ToFloat64(limited); got != 1 {
		t.Errorf("limited_total %v, want 1", got)
	}

	close(release)
	wg.Wait()
	if rec := serve("/other"); rec.Code != http.StatusNoContent {
		t.Errorf("after release: %d", rec.Code)
	}
	if got := testutil.ToFloat64(limited); got != 1 {
		t.Errorf("limited_total %v, want still 1", got)
	}
}

// TestLimitReleasesOnPanic: a panicking handler must not leak its slot.
func TestLimitReleasesOnPanic(t *testing.T) {
	h := Limit(1, 0, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
	}))
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/panic", nil))
	}()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ok", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("slot leaked: %d", rec.Code)
	}
}

func TestLimitRetryAfterAtLeastOneSecond(t *testing.T) {
	block := make(chan struct{})
	entered := make(chan struct{})
	h := Limit(1, 0, nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-block
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("got %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	close(block)
	<-done
}

func TestLimitPanicsOnZero(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Limit(0) did not panic")
		}
	}()
	Limit(0, time.Second, nil)
}

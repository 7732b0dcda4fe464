package handlers

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/botd/botd/internal/problem"
)

// Readiness is botd's readiness: false until the listeners are up, false
// again as soon as shutdown starts, and otherwise true when a Graph token can
// be had within Timeout.
type Readiness struct {
	up      atomic.Bool
	Check   func(ctx context.Context) error
	Timeout time.Duration
	metrics *Metrics
}

// NewReadiness returns a not-yet-ready Readiness.
func NewReadiness(check func(context.Context) error, timeout time.Duration, m *Metrics) *Readiness {
	return &Readiness{Check: check, Timeout: timeout, metrics: m}
}

// Set marks botd ready to serve or not.
func (r *Readiness) Set(up bool) {
	r.up.Store(up)
	if r.metrics != nil {
		if up {
			r.metrics.ready.Set(1)
		} else {
			r.metrics.ready.Set(0)
		}
	}
}

// Up reports the last Set value.
func (r *Readiness) Up() bool { return r.up.Load() }

func handleLive() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReady(rd *Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rd.Up() {
			writeProblem(w, r, errorf(problem.Unavailable, "not ready: starting or shutting down"))
			return
		}
		if rd.Check != nil {
			ctx, cancel := context.WithTimeout(r.Context(), rd.Timeout)
			defer cancel()
			if err := rd.Check(ctx); err != nil {
				writeProblem(w, r, &Error{Code: problem.Unavailable, Message: "not ready: no Graph token", Err: err})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

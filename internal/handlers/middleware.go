package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/problem"
)

// logFields lets a handler add fields to its request's access log line.
type logFields struct {
	items    int
	rejected int
	callID   string
	// runID is the flow run the request starts, reads or cancels.
	runID string
	// tenant is the tid of the request's verified callback token.
	tenant string
}

// RecordTenant keeps the tenant of a verified callback token for the
// callback handler, which gives it to the calls the notifications name. It
// is the inbound verifier's OnVerified hook.
func RecordTenant(r *http.Request, tenantID string) {
	fieldsFrom(r.Context()).tenant = tenantID
}

type logFieldsKey struct{}

func fieldsFrom(ctx context.Context) *logFields {
	if f, ok := ctx.Value(logFieldsKey{}).(*logFields); ok {
		return f
	}
	return &logFields{}
}

// reqCtx is a request's context with its log fields and its request id,
// in one allocation that answers both keys: logFieldsKey, and chi's
// middleware.RequestIDKey, which internal/auth reads with GetReqID. Every
// other key, and Done, Err and Deadline, are the parent's.
type reqCtx struct {
	context.Context
	fields logFields
	id     string
}

func (c *reqCtx) Value(key any) any {
	switch key {
	case logFieldsKey{}:
		return &c.fields
	case middleware.RequestIDKey:
		return c.id
	}
	return c.Context.Value(key)
}

// requestIDPrefix starts every request id this process makes; requestSeq
// numbers them.
var (
	requestIDPrefix = func() string {
		host, _ := os.Hostname()
		if host == "" {
			host = "botd"
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		return host + "/" + base64.RawURLEncoding.EncodeToString(b[:]) + "-"
	}()
	requestSeq atomic.Uint64
)

// requestID is the request's X-Request-Id, or a new id: the process's
// prefix and a sequence number, as chi's RequestID makes them.
func requestID(r *http.Request) string {
	if id := r.Header.Get(middleware.RequestIDHeader); id != "" {
		return id
	}
	var n [20]byte
	seq := strconv.AppendUint(n[:0], requestSeq.Add(1), 10)
	var b strings.Builder
	b.Grow(len(requestIDPrefix) + len(seq))
	b.WriteString(requestIDPrefix)
	b.Write(seq)
	return b.String()
}

// accessLog writes one line per request: method, route pattern, status,
// latency, bytes and what the handler added (items, call_id, run_id). It never logs
// headers, so bearer tokens cannot reach the log.
func accessLog(log zerolog.Logger, listener string) func(http.Handler) http.Handler {
	log = log.With().Str("component", "http").Str("listener", listener).Logger()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rc := &reqCtx{Context: r.Context(), id: requestID(r)}
			f := &rc.fields
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			r = r.WithContext(rc)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			ev := log.Info()
			if status >= 500 {
				ev = log.Warn()
			}
			ev = ev.Str("request_id", rc.id).
				Str("method", r.Method).
				Str("route", routePattern(r)).
				Int("status", status).
				Float64("latency_ms", float64(time.Since(start).Microseconds())/1000).
				Int("bytes", ww.BytesWritten())
			if f.items > 0 || f.rejected > 0 {
				ev = ev.Int("items", f.items).Int("rejected", f.rejected)
			}
			if f.callID != "" {
				ev = ev.Str("call_id", f.callID)
			}
			if f.runID != "" {
				ev = ev.Str("run_id", f.runID)
			}
			ev.Msg("request")
		})
	}
}

// routePattern is the matched chi pattern, never the raw path, so that ids
// do not become log keys or metric labels.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return cleanPattern(p)
		}
	}
	return "unmatched"
}

// cleanPattern drops a sub-router's trailing slash: /v1/calls/ and
// /v1/calls are one route, as chi.Walk and a request see it.
func cleanPattern(p string) string {
	if len(p) > 1 {
		return strings.TrimSuffix(p, "/")
	}
	return p
}

// recoverer turns a panic into a logged 500 problem.
func recoverer(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error().Str("component", "http").Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("handler panicked")
					writeProblem(w, r, errorf(problem.Internal, "internal error"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func handleNotFound() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, errorf(problem.NotFound, "no such route"))
	}
}

func handleMethodNotAllowed() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, errorf(problem.MethodNotAllow, "method %s not allowed here", r.Method))
	}
}

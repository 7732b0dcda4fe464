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
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/netx"
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

// reqCtx is a request's context: its log fields, its request id, its chi
// routing context and the writer that records its status, in one
// allocation. It answers logFieldsKey, chi's middleware.RequestIDKey
// (internal/auth reads it with GetReqID) and chi.RouteCtxKey (so that the
// router finds its context there and adds none); every other key, and
// Done, Err and Deadline, are the parent's.
type reqCtx struct {
	context.Context
	fields logFields
	hdrID  string // the request's X-Request-Id, if it had one
	seq    uint64 // else the sequence number of the id botd gave it
	route  *chi.Context
	w      netx.StatusWriter
}

func (c *reqCtx) Value(key any) any {
	switch key {
	case logFieldsKey{}:
		return &c.fields
	case chi.RouteCtxKey:
		return c.route
	case middleware.RequestIDKey:
		return string(c.appendID(nil))
	}
	return c.Context.Value(key)
}

// appendID appends the request id to b.
func (c *reqCtx) appendID(b []byte) []byte {
	if c.hdrID != "" {
		return append(b, c.hdrID...)
	}
	return strconv.AppendUint(append(b, requestIDPrefix...), c.seq, 10)
}

// requestIDPrefix starts every request id this process makes, as chi's
// RequestID makes them; requestSeq numbers them.
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

// serveStatus serves next and returns the status the client got. Under
// the access log, w is its writer, which records the status already;
// otherwise (a handler served on its own) w is wrapped in one.
func serveStatus(w http.ResponseWriter, r *http.Request, next http.Handler) int {
	sw, ok := w.(*netx.StatusWriter)
	if !ok {
		sw = &netx.StatusWriter{ResponseWriter: w}
	}
	next.ServeHTTP(sw, r)
	return sw.Code()
}

// routeContexts recycles chi routing contexts, as chi's own router does.
var routeContexts = sync.Pool{New: func() any { return chi.NewRouteContext() }}

// withAccessLog serves mux with the request's context made here, and
// writes one access log line per request: method, route pattern, status,
// latency, bytes and what the handler added (items, call_id, run_id). It
// never logs headers, so bearer tokens cannot reach the log.
func withAccessLog(mux *chi.Mux, log zerolog.Logger, listener string) http.Handler {
	log = log.With().Str("component", "http").Str("listener", listener).Logger()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := &reqCtx{Context: r.Context(), hdrID: r.Header.Get(middleware.RequestIDHeader)}
		if rc.hdrID == "" {
			rc.seq = requestSeq.Add(1)
		}
		rc.route = routeContexts.Get().(*chi.Context)
		rc.route.Reset()
		rc.route.Routes = mux
		rc.w.ResponseWriter = w
		r = r.WithContext(rc)
		mux.ServeHTTP(&rc.w, r)
		status := rc.w.Code()
		ev := log.Info()
		if status >= 500 {
			ev = log.Warn()
		}
		var id [96]byte
		ev = ev.Bytes("request_id", rc.appendID(id[:0])).
			Str("method", r.Method).
			Str("route", routePattern(r)).
			Int("status", status).
			Float64("latency_ms", float64(time.Since(start).Microseconds())/1000).
			Int("bytes", rc.w.Bytes)
		f := &rc.fields
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
		routeContexts.Put(rc.route)
	})
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

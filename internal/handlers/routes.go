// Package handlers is botd's HTTP surface: the Graph callback on the public
// listener, and the admin API, health and metrics on the admin listener. It
// declares the small interfaces it consumes (the call store, the calls
// service, the decoder) and maps every error to an RFC 9457
// problem body in one place. It holds no state of its own beyond metrics and
// readiness; cmd/botd wires it to the real implementations.
package handlers

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Deps is everything the handlers use.
type Deps struct {
	Log     zerolog.Logger
	Decoder Decoder
	Store   Store
	// Calls sends every outbound action; the handlers never reach Graph
	// but through it.
	Calls Calls
	// Flows is the flow engine behind /v1/flows and /v1/runs; nil serves
	// neither (a rig that tests calls alone).
	Flows    Flows
	Metrics  *Metrics
	Ready    *Readiness
	Gatherer prometheus.Gatherer

	// CallbackPath is where Graph posts notifications.
	CallbackPath string
	// MaxBody bounds a callback body and an admin request body.
	MaxBody int64
	// RequestTimeout bounds a handler (admin requests wait for Graph).
	RequestTimeout time.Duration
	// Cluster says which replica this is and how to reach the others.
	Cluster Cluster
	// CallbackAuth authenticates Graph's callbacks before any byte of the
	// body is read; nil only when inbound auth is off.
	CallbackAuth func(http.Handler) http.Handler
	// CallbackLimit bounds the callbacks handled at once; it runs after
	// CallbackAuth, so unauthenticated requests never take a slot.
	CallbackLimit func(http.Handler) http.Handler
	// AdminAuth guards the admin API; nil runs it open (loopback only).
	AdminAuth func(http.Handler) http.Handler
	// MetricsOpen serves /metrics without AdminAuth.
	MetricsOpen bool
	// Pprof serves net/http/pprof's profiles under /debug/pprof/, behind
	// AdminAuth.
	Pprof bool
	// History is the journal's history of ended calls, for GET /v1/calls
	// with state=terminated and GET /v1/calls/export; nil without one.
	History History
	// Recovering, while true, answers callbacks 503 with Retry-After: a
	// restarted botd is putting its calls back from the journal and asking
	// Graph what changed, and Graph retries them after. Nil never defers.
	Recovering *atomic.Bool
}

// Public is the public listener's router: the Graph callback and /livez.
// Middleware order: request id, access log, recoverer. The callback bounds
// its body itself (readPooledBody, into a pooled buffer and with a pooled
// limit, where RequestSize would allocate a reader per callback). No
// handler timeout: a callback never waits on Graph (it decodes, applies and
// answers), the server's read and write timeouts bound the connection, and
// a forwarded callback has its own BOTD_FORWARD_TIMEOUT; a context with a
// deadline per request would cost every callback a timer and a request copy.
func Public(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(recoverer(d.Log))
	r.NotFound(handleNotFound())
	r.MethodNotAllowed(handleMethodNotAllowed())
	r.Get("/livez", handleLive())
	r.Group(func(r chi.Router) {
		// The method is checked before authentication: a GET carries no
		// token, and its answer is 405 with Allow: POST, not 401.
		r.Use(callbackMetrics(d.Metrics), requirePost)
		for _, mw := range []func(http.Handler) http.Handler{d.CallbackAuth, d.CallbackLimit} {
			if mw != nil {
				r.Use(mw)
			}
		}
		callback := handleCallback(d)
		// Graph posts to the bot's registered callback (incoming calls,
		// which any replica may take) and to the callbackUri botd set on
		// each call it owns, which ends in its instance name.
		r.Handle(d.CallbackPath, callback)
		r.Handle(d.CallbackPath+"/{instance}", handleInstanceCallback(d, callback))
	})
	return withAccessLog(r, d.Log, "public")
}

// Admin is the admin listener's router: the admin API, /metrics, /livez
// and /readyz.
func Admin(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(recoverer(d.Log), middleware.RequestSize(d.MaxBody), middleware.Timeout(d.RequestTimeout), adminMetrics(d.Metrics))
	r.NotFound(handleNotFound())
	r.MethodNotAllowed(handleMethodNotAllowed())
	r.Get("/livez", handleLive())
	r.Get("/readyz", handleReady(d.Ready).ServeHTTP)
	metrics := promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})
	if !d.MetricsOpen && d.AdminAuth != nil {
		metrics = d.AdminAuth(metrics)
	}
	r.Method(http.MethodGet, "/metrics", metrics)
	r.Group(func(r chi.Router) {
		if d.AdminAuth != nil {
			r.Use(d.AdminAuth)
		}
		r.Get("/v1/changes", handleChanges(d).ServeHTTP)
		if d.Pprof {
			pprofRoutes(r)
		}
		if d.Flows != nil {
			flowRoutes(r, d)
		}
		r.Route("/v1/calls", func(r chi.Router) {
			r.Get("/", handleListCalls(d).ServeHTTP)
			r.Post("/", handleCreateCall(d).ServeHTTP)
			r.Get("/export", handleExportCalls(d).ServeHTTP)
			r.Route("/{callID}", func(r chi.Router) {
				r.Use(validCallID)
				r.Get("/", handleGetCall(d).ServeHTTP)
				r.Delete("/", handleHangup(d).ServeHTTP)
				operationRoutes(r, d)
				r.Get("/participants", handleListParticipants(d).ServeHTTP)
				r.Get("/graph", handleGraphCall(d).ServeHTTP)
				r.Get("/operations/{opID}/graph", handleGraphOperation(d).ServeHTTP)
				r.Get("/operations/{opID}/recording", handleRecording(d).ServeHTTP)
				r.Post("/answer", handleAnswer(d).ServeHTTP)
				r.Post("/reject", handleReject(d).ServeHTTP)
				r.Post("/redirect", handleRedirect(d).ServeHTTP)
				r.Post("/transfer", handleTransfer(d).ServeHTTP)
				r.Post("/keepAlive", handleKeepAlive(d).ServeHTTP)
			})
		})
	})
	initAdminMetrics(d.Metrics, r)
	return withAccessLog(r, d.Log, "admin")
}

// initAdminMetrics sets the admin request series of every route of the
// router at 0, so that they are on /metrics before any traffic.
func initAdminMetrics(m *Metrics, r chi.Routes) {
	_ = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		m.initAdminRoute(cleanPattern(route), method)
		return nil
	})
}

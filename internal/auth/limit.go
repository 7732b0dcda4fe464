package auth

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/botd/botd/internal/problem"
)

// Limit returns middleware that lets at most maxInFlight requests run the wrapped
// handler at once. A request over the limit is answered at once, without
// waiting, with 503, Retry-After (retryAfter rounded up to whole seconds,
// at least 1) and a problem body, and counted in botd_http_limited_total.
// A slot is held only while the wrapped handler runs.
//
// A slot is held for as long as the handler reads the body, so a slow
// client holds one too: the server's ReadHeaderTimeout and ReadTimeout (and
// the body size limit) bound how long. Put Limit inside the auth
// middleware, so that unauthenticated requests never take a slot.
//
// Limit panics if maxInFlight < 1: that is a wiring error, not a runtime condition.
//
// chi's middleware.Throttle (with no backlog) does the counting but not
// the answer: it replies with a text/plain body, not the RFC 9457 problem
// every other botd error is, and counts nothing. So the semaphore stays
// here, a few lines of it.
func Limit(maxInFlight int, retryAfter time.Duration, reg prometheus.Registerer) func(http.Handler) http.Handler {
	if maxInFlight < 1 {
		panic("auth.Limit: maxInFlight must be at least 1")
	}
	limited := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "botd_http_limited_total",
		Help: "Requests answered 503 because the concurrency limit was reached.",
	}))
	secs := strconv.Itoa(max(1, int(math.Ceil(retryAfter.Seconds()))))
	slots := make(chan struct{}, maxInFlight)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				limited.Inc()
				w.Header().Set("Retry-After", secs)
				writeProblem(w, r, problem.Unavailable, "too many requests in progress; retry later")
				return
			}
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		})
	}
}

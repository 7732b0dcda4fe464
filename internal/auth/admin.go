package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/problem"
)

// ErrNoAdminToken is returned by NewAdminAuth for an empty token: an admin
// API without a token is a decision for the server to make openly, not a
// middleware that lets everything through.
var ErrNoAdminToken = errors.New("admin auth: token is empty")

// ErrAdminTokenSyntax is returned by NewAdminAuth for a token no client
// could send in a Bearer header (RFC 6750 b64token: letters, digits and
// -._~+/ with optional trailing =).
var ErrAdminTokenSyntax = errors.New("admin auth: token is not a valid bearer token (allowed: A-Z a-z 0-9 - . _ ~ + / and trailing =)")

// NewAdminAuth returns middleware that admits a request only with
// "Authorization: Bearer <token>". The comparison is constant time over
// SHA-256 digests, so neither the content nor the length of the token
// leaks through timing. A refusal is a 401 problem body with
// WWW-Authenticate: Bearer realm="botd-admin", counted in
// botd_admin_auth_failures_total{reason="missing"|"wrong"} and logged
// (sampled) without the token.
func NewAdminAuth(token string, log zerolog.Logger, reg prometheus.Registerer) (func(http.Handler) http.Handler, error) {
	if token == "" {
		return nil, ErrNoAdminToken
	}
	if !isB64Token(token) {
		return nil, ErrAdminTokenSyntax
	}
	want := sha256.Sum256([]byte(token))
	failures := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botd_admin_auth_failures_total",
		Help: "Admin API requests refused for a missing or wrong bearer token.",
	}, []string{"reason"}))
	missing, wrong := failures.WithLabelValues("missing"), failures.WithLabelValues("wrong")
	log = log.With().Str("component", "admin_auth").Logger().
		Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reason := "wrong"
			vals := r.Header.Values("Authorization")
			if len(vals) == 1 {
				got, why := parseBearer(vals[0])
				switch {
				case why == "" && tokenMatches(want, got):
					next.ServeHTTP(w, r)
					return
				case why == ReasonMissing:
					reason = "missing"
				}
			} else if len(vals) == 0 {
				reason = "missing"
			}
			if reason == "missing" {
				missing.Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="botd-admin"`)
			} else {
				wrong.Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="botd-admin", error="invalid_token"`)
			}
			log.Info().
				Str("reason", reason).
				Str("request_id", middleware.GetReqID(r.Context())).
				Str("method", r.Method).
				Str("remote_addr", r.RemoteAddr).
				Msg("admin request refused")
			writeProblem(w, r, problem.Unauthorized, "admin API requires a valid bearer token")
		})
	}, nil
}

// tokenMatches compares in constant time. Hashing first makes both inputs
// 32 bytes, so subtle.ConstantTimeCompare does not return early on a length
// mismatch and the length of the expected token does not leak.
func tokenMatches(want [32]byte, got string) bool {
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], g[:]) == 1
}

package auth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason is why an inbound token was refused. The set is fixed: its values
// are the values of the reason label of botd_auth_failures_total.
type Reason string

// Reasons a callback token is refused.
const (
	ReasonMissing          Reason = "missing"            // no Authorization header
	ReasonMalformed        Reason = "malformed"          // not "Bearer <JWT>", or not a well-formed JWT
	ReasonBadSignature     Reason = "bad_signature"      // signature does not verify, or alg is not RS256
	ReasonExpired          Reason = "expired"            // exp (plus clock skew) has passed
	ReasonNotYetValid      Reason = "not_yet_valid"      // nbf (minus clock skew) is still ahead
	ReasonWrongAudience    Reason = "wrong_audience"     // aud is not botd's app id
	ReasonWrongIssuer      Reason = "wrong_issuer"       // iss is not in the allowed list
	ReasonUnknownKey       Reason = "unknown_key"        // kid is not among Microsoft's keys, even after a refresh
	ReasonMissingTenant    Reason = "missing_tenant"     // no tid claim
	ReasonTenantNotAllowed Reason = "tenant_not_allowed" // tid is not in AllowedTenants
)

var allReasons = []Reason{
	ReasonMissing, ReasonMalformed, ReasonBadSignature, ReasonExpired, ReasonNotYetValid,
	ReasonWrongAudience, ReasonWrongIssuer, ReasonUnknownKey, ReasonMissingTenant, ReasonTenantNotAllowed,
}

// verifierMetrics are the Verifier's series.
type verifierMetrics struct {
	failures   *prometheus.CounterVec
	success    prometheus.Counter
	cacheHits  prometheus.Counter
	refreshes  *prometheus.CounterVec
	keys       prometheus.Gauge
	lastLoaded prometheus.Gauge
	enabled    prometheus.Gauge
}

func newVerifierMetrics(reg prometheus.Registerer) *verifierMetrics {
	m := &verifierMetrics{
		failures: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_auth_failures_total",
			Help: "Graph callbacks refused because their bearer token failed a check, by reason.",
		}, []string{"reason"})),
		success: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "botd_auth_success_total",
			Help: "Graph callbacks whose bearer token passed every check (cache hits included).",
		})),
		cacheHits: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "botd_auth_cache_hits_total",
			Help: "Graph callback tokens accepted from the verified-token cache, without a signature check.",
		})),
		refreshes: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_auth_key_refreshes_total",
			Help: "Fetches of Microsoft's OpenID metadata and signing keys, by trigger (start, periodic, unknown_kid) and result (ok, error).",
		}, []string{"trigger", "result"})),
		keys: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "botd_auth_signing_keys",
			Help: "RS256 signing keys currently loaded for Graph callback tokens.",
		})),
		lastLoaded: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "botd_auth_keys_loaded_timestamp_seconds",
			Help: "Unix time of the last successful signing-key fetch.",
		})),
		enabled: enabledGauge(reg),
	}
	for _, r := range allReasons {
		m.failures.WithLabelValues(string(r))
	}
	for _, trig := range []string{triggerStart, triggerPeriodic, triggerUnknownKID} {
		m.refreshes.WithLabelValues(trig, "ok")
		m.refreshes.WithLabelValues(trig, "error")
	}
	return m
}

func enabledGauge(reg prometheus.Registerer) prometheus.Gauge {
	return register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "botd_inbound_auth_enabled",
		Help: "1 when Graph callbacks must carry a verified Microsoft bearer token, 0 when inbound auth is off.",
	}))
}

// RegisterDisabledGauge registers botd_inbound_auth_enabled on reg and sets
// it to 0. A server that runs without a Verifier calls it so that the
// absence of callback authentication shows on dashboards and can be alerted
// on; NewVerifier sets the same gauge to 1.
func RegisterDisabledGauge(reg prometheus.Registerer) {
	enabledGauge(reg).Set(0)
}

// register registers c on reg, or returns the collector already registered
// under the same descriptor. promauto would panic instead; reusing lets the
// same middleware (Limit on both listeners, say) be built twice on one
// registry. A nil reg registers nothing, for tests.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/MicahParks/jwkset"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/tunable"
)

// The documented values of VerifierConfig's settings, as
// DefaultVerifierConfig returns them, and the bound on ClockSkew.
// NewVerifier applies none of them: a zero setting is refused.
const (
	DefaultRefreshInterval    = 24 * time.Hour
	DefaultUnknownKIDInterval = 5 * time.Minute
	DefaultRetryInterval      = time.Minute
	DefaultFetchTimeout       = 10 * time.Second
	DefaultCacheSize          = 10_000
	// MaxClockSkew is the most leeway allowed on exp and nbf: the Bot
	// Framework's documented industry-standard skew.
	MaxClockSkew = 5 * time.Minute
	// DefaultClockSkew is MaxClockSkew.
	DefaultClockSkew = MaxClockSkew
)

// DefaultVerifierConfig returns a VerifierConfig with every setting at its
// documented value: the global cloud's MetadataURL and Issuers (Preset
// gives the others) and the Default* values. Audience and AllowedTenants
// are left empty; HTTPClient, OnVerified and Now nil.
func DefaultVerifierConfig() VerifierConfig {
	metadataURL, issuers, _ := Preset("global") // a constant preset
	return VerifierConfig{
		MetadataURL:        metadataURL,
		Issuers:            issuers,
		ClockSkew:          DefaultClockSkew,
		RefreshInterval:    DefaultRefreshInterval,
		RetryInterval:      DefaultRetryInterval,
		UnknownKIDInterval: DefaultUnknownKIDInterval,
		FetchTimeout:       DefaultFetchTimeout,
		CacheSize:          DefaultCacheSize,
	}
}

// VerifierConfig configures a Verifier. Every setting is required:
// NewVerifier refuses an empty or zero one, naming it, and fills none in;
// DefaultVerifierConfig has the documented values.
type VerifierConfig struct {
	// Audience is botd's Microsoft app id; the token's aud must equal it.
	Audience string
	// MetadataURL is the OpenID configuration whose jwks_uri lists the
	// signing keys: GlobalMetadataURL, or Preset's for another cloud.
	// https, or plain http to a loopback host (tests).
	MetadataURL string
	// Issuers are the accepted iss values, compared exactly: at least one
	// (Preset's: for the global cloud https://api.botframework.com,
	// https://graph.microsoft.com).
	Issuers []string
	// AllowedTenants, when not empty, are the only tid values accepted
	// (compared without regard to case). Empty accepts any tenant; the
	// token must still carry a tid.
	AllowedTenants []string
	// ClockSkew is the leeway on exp and nbf, in (0, MaxClockSkew].
	// DefaultClockSkew 5m.
	ClockSkew time.Duration
	// RefreshInterval is how often the keys are fetched again.
	// DefaultRefreshInterval 24h.
	RefreshInterval time.Duration
	// RetryInterval replaces RefreshInterval after a failed fetch, so that
	// a Verifier that could not load keys at start does not wait a day.
	// DefaultRetryInterval 1m.
	RetryInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches triggered by
	// a token naming a key botd does not have. DefaultUnknownKIDInterval
	// 5m.
	UnknownKIDInterval time.Duration
	// FetchTimeout bounds each GET of the metadata and of the key set.
	// DefaultFetchTimeout 10s.
	FetchTimeout time.Duration
	// CacheSize bounds the verified-token cache. DefaultCacheSize 10000;
	// negative disables the cache; 0 is refused.
	CacheSize int
	// HTTPClient, OnVerified and Now are functions, not settings: nil is
	// not refused.
	//
	// HTTPClient fetches the metadata and keys. nil: a client with
	// FetchTimeout, its own transport, and at most 3 redirects, each to
	// https.
	HTTPClient *http.Client
	// OnVerified, when set, is called by Middleware with each admitted
	// request and its token's claims, before the request goes on: the
	// callback handler keeps the tenant without a copy of the request.
	OnVerified func(r *http.Request, c *Claims)
	// Now is the clock for exp, nbf, the cache and the unknown-kid rate
	// limit. nil: time.Now. Timers (periodic refresh) use the runtime's
	// clock.
	Now func() time.Time
}

// Claims are what botd learns from a verified callback token.
type Claims struct {
	Issuer    string
	Audience  string // the configured app id the token was issued for
	TenantID  string // tid
	AppID     string // appid, when present: the calling service's app id
	ExpiresAt time.Time
}

// Error is returned by Verify for a refused token. It carries only the
// reason: nothing of the token, so it is safe to log.
type Error struct {
	Reason Reason
}

func (e *Error) Error() string { return "inbound auth: token refused: " + string(e.Reason) }

// graphClaims is the payload of a callback token.
type graphClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	AppID    string `json:"appid"`
}

// Verifier authenticates Graph callbacks. It is safe for concurrent use.
type Verifier struct {
	cfg     VerifierConfig
	log     zerolog.Logger
	failLog zerolog.Logger
	m       *verifierMetrics
	failBy  map[Reason]prometheus.Counter
	client  *http.Client
	parser  *jwt.Parser
	issuers map[string]struct{}
	tenants map[string]struct{} // lower case; nil accepts any
	cache   *tokenCache
	keys    atomic.Pointer[keySet]
	started atomic.Bool
	// last is the last Authorization header verified: Graph sends one
	// token on every callback for its lifetime, so most checks are one
	// string comparison, without parsing or hashing the token.
	last atomic.Pointer[lastToken]

	refreshMu sync.Mutex // serialises fetches

	mu             sync.Mutex // guards the fields below
	lastUnknownKID time.Time
	unknownKIDDone chan struct{} // closed when the running unknown-kid fetch ends
	inflight       map[[32]byte]*verification

	// onVerify, when set by a test, runs before every uncached verification.
	onVerify func()
}

// verification is one uncached check of a token that concurrent callers
// with the same token wait for instead of repeating it.
type verification struct {
	done   chan struct{}
	claims Claims
	reason Reason
}

// resolve checks cfg, refusing a missing or zero setting by name (no
// default is applied; Now is filled when nil), and returns the issuers and
// allowed tenants as sets.
func (cfg *VerifierConfig) resolve() (issuers, tenants map[string]struct{}, err error) {
	cfg.Audience = strings.TrimSpace(cfg.Audience)
	if cfg.Audience == "" {
		return nil, nil, errors.New("inbound auth: Audience (the bot's app id) is required")
	}
	if cfg.MetadataURL == "" {
		return nil, nil, errors.New("inbound auth: MetadataURL is required (GlobalMetadataURL, or Preset's)")
	}
	if err := checkFetchURL(cfg.MetadataURL); err != nil {
		return nil, nil, fmt.Errorf("inbound auth: MetadataURL %q: %w", cfg.MetadataURL, err)
	}
	if len(cfg.Issuers) == 0 {
		return nil, nil, errors.New("inbound auth: Issuers is required (Preset's)")
	}
	issuers = make(map[string]struct{}, len(cfg.Issuers))
	for _, iss := range cfg.Issuers {
		if strings.TrimSpace(iss) == "" {
			return nil, nil, errors.New("inbound auth: Issuers has an empty entry")
		}
		issuers[iss] = struct{}{}
	}
	for _, t := range cfg.AllowedTenants {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return nil, nil, errors.New("inbound auth: AllowedTenants has an empty entry")
		}
		if tenants == nil {
			tenants = make(map[string]struct{})
		}
		tenants[t] = struct{}{}
	}
	if cfg.ClockSkew <= 0 || cfg.ClockSkew > MaxClockSkew {
		return nil, nil, fmt.Errorf("inbound auth: ClockSkew %s must be in (0, %s]", cfg.ClockSkew, MaxClockSkew)
	}
	if err := tunable.Positive(
		tunable.Duration("RefreshInterval", cfg.RefreshInterval),
		tunable.Duration("RetryInterval", cfg.RetryInterval),
		tunable.Duration("UnknownKIDInterval", cfg.UnknownKIDInterval),
		tunable.Duration("FetchTimeout", cfg.FetchTimeout),
	); err != nil {
		return nil, nil, fmt.Errorf("inbound auth: %w", err)
	}
	if cfg.CacheSize == 0 {
		return nil, nil, errors.New("inbound auth: CacheSize must not be 0 (negative disables the cache)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return issuers, tenants, nil
}

// NewVerifier checks cfg (every setting required; see
// DefaultVerifierConfig) and registers the metrics on
// reg (nil registers nothing). It sets botd_inbound_auth_enabled to 1. It
// fetches nothing: Start loads the keys.
func NewVerifier(cfg VerifierConfig, log zerolog.Logger, reg prometheus.Registerer) (*Verifier, error) {
	issuers, tenants, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = defaultClient(cfg.FetchTimeout)
	}
	log = log.With().Str("component", "auth").Logger()
	v := &Verifier{
		cfg: cfg,
		log: log,
		// A flood of bad tokens must not flood the log: the metric counts
		// every failure, the log shows a sample.
		failLog: log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second}),
		m:       newVerifierMetrics(reg),
		client:  client,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.ClockSkew),
			jwt.WithTimeFunc(cfg.Now),
			// Strict base64: otherwise the spare bits of the last signature
			// character could be flipped, giving many strings for one
			// valid token.
			jwt.WithStrictDecoding(),
		),
		issuers:  issuers,
		tenants:  tenants,
		cache:    newTokenCache(cfg.CacheSize),
		inflight: make(map[[32]byte]*verification),
	}
	v.failBy = make(map[Reason]prometheus.Counter, len(allReasons))
	for _, r := range allReasons {
		v.failBy[r] = v.m.failures.WithLabelValues(string(r))
	}
	v.m.enabled.Set(1)
	return v, nil
}

func (v *Verifier) now() time.Time { return v.cfg.Now() }

// Start loads the signing keys, then refreshes them every RefreshInterval
// until ctx ends. It may be called once.
//
// A failed first load is returned, but the Verifier keeps trying every
// RetryInterval in the background; until keys are loaded, Ready is false
// and every token is refused as unknown_key. The caller chooses whether to
// exit or to start and let readiness hold traffic back.
func (v *Verifier) Start(ctx context.Context) error {
	if !v.started.CompareAndSwap(false, true) {
		return errors.New("inbound auth: Verifier already started")
	}
	err := v.refresh(ctx, triggerStart)
	go v.run(ctx, err == nil)
	if err != nil {
		return fmt.Errorf("inbound auth: load signing keys: %w", err)
	}
	return nil
}

func (v *Verifier) run(ctx context.Context, ok bool) {
	for {
		d := v.cfg.RefreshInterval
		if !ok {
			d = min(d, v.cfg.RetryInterval)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ok = v.refresh(ctx, triggerPeriodic) == nil
	}
}

// Ready reports whether signing keys are loaded, for the readiness probe.
func (v *Verifier) Ready() bool { return v.keys.Load() != nil }

// Verify checks the Authorization header value of a callback and returns
// the token's claims, or an *Error carrying the reason. Every call is
// counted in the metrics; nothing is logged (Middleware logs).
func (v *Verifier) Verify(ctx context.Context, authorizationHeader string) (Claims, error) {
	ks := v.keys.Load()
	if l := v.last.Load(); l != nil && l.header == authorizationHeader && l.keys == ks && v.now().Before(l.validUntil) {
		v.m.cacheHits.Inc()
		v.m.success.Inc()
		return l.claims, nil
	}
	tok, reason := parseBearer(authorizationHeader)
	if reason == "" {
		var claims Claims
		if claims, reason = v.verifyToken(ctx, tok); reason == "" {
			v.m.success.Inc()
			if !v.cache.enabled() { // caching is off: every token is checked
				return claims, nil
			}
			// Remembered with the keys loaded before the check: should
			// they change meanwhile (a key withdrawn), it is never used.
			v.last.Store(&lastToken{header: authorizationHeader, claims: claims,
				validUntil: claims.ExpiresAt.Add(v.cfg.ClockSkew), keys: ks})
			return claims, nil
		}
	}
	return Claims{}, v.fail(reason)
}

// lastToken is a verified Authorization header, its claims, until when
// they hold (exp plus the clock skew) and the key set it was checked with.
type lastToken struct {
	header     string
	claims     Claims
	validUntil time.Time
	keys       *keySet
}

func (v *Verifier) fail(r Reason) error {
	v.failBy[r].Inc()
	return &Error{Reason: r}
}

// verifyToken answers from the cache when it can; otherwise one goroutine
// per token runs the signature check and the others with the same token
// wait for its answer.
func (v *Verifier) verifyToken(ctx context.Context, tok string) (Claims, Reason) {
	// The token's bytes are hashed in place: a []byte copy of a ~1 KB token
	// on every callback was the largest cost of the cached path, and
	// Sum256 neither keeps nor changes its input.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
	if claims, reason, found := v.cached(key); found {
		return claims, reason
	}

	v.mu.Lock()
	if call, ok := v.inflight[key]; ok {
		v.mu.Unlock()
		<-call.done
		if call.reason == "" {
			v.m.cacheHits.Inc()
		}
		return call.claims, call.reason
	}
	// Look again under v.mu: a check that finished since the first look
	// cached its token before leaving inflight.
	if claims, reason, found := v.cached(key); found {
		v.mu.Unlock()
		return claims, reason
	}
	// Fail closed: should the check panic, the waiters see a refusal.
	call := &verification{done: make(chan struct{}), reason: ReasonMalformed}
	v.inflight[key] = call
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		delete(v.inflight, key)
		v.mu.Unlock()
		close(call.done)
	}()

	if v.onVerify != nil {
		v.onVerify()
	}
	ks := v.keys.Load()
	claims, validUntil, reason := v.check(tok, ks)
	// Look once more if the keys changed during the check (another
	// goroutine's fetch), or if a fetch for the unknown kid is allowed.
	if reason == ReasonUnknownKey && (v.keys.Load() != ks || v.refreshForUnknownKID(ctx)) {
		claims, validUntil, reason = v.check(tok, v.keys.Load())
	}
	if reason == "" {
		v.cache.put(key, claims, validUntil, v.now())
	}
	call.claims, call.reason = claims, reason
	return claims, reason
}

// cached answers for a token verified before: its claims while it is
// valid, expired after (without checking its signature again).
func (v *Verifier) cached(key [32]byte) (Claims, Reason, bool) {
	claims, found, valid := v.cache.get(key, v.now())
	switch {
	case !found:
		return Claims{}, "", false
	case !valid:
		return Claims{}, ReasonExpired, true
	}
	v.m.cacheHits.Inc()
	return claims, "", true
}

// check is the full verification: signature, alg, exp and nbf by
// golang-jwt (signature first, so a forged token never reaches the claim
// checks), then aud, iss and tid here.
func (v *Verifier) check(tok string, ks *keySet) (Claims, time.Time, Reason) {
	var gc graphClaims
	if _, err := v.parser.ParseWithClaims(tok, &gc, ks.keyFor); err != nil {
		return Claims{}, time.Time{}, classify(err)
	}
	// aud is checked here rather than by jwt.WithAudience, which reports
	// a missing aud as a missing required claim, not as the wrong audience.
	if !slices.Contains(gc.Audience, v.cfg.Audience) {
		return Claims{}, time.Time{}, ReasonWrongAudience
	}
	if _, ok := v.issuers[gc.Issuer]; !ok {
		return Claims{}, time.Time{}, ReasonWrongIssuer
	}
	if gc.TenantID == "" {
		return Claims{}, time.Time{}, ReasonMissingTenant
	}
	if v.tenants != nil {
		if _, ok := v.tenants[strings.ToLower(gc.TenantID)]; !ok {
			return Claims{}, time.Time{}, ReasonTenantNotAllowed
		}
	}
	exp := gc.ExpiresAt.Time // required by the parser
	return Claims{
		Issuer:    gc.Issuer,
		Audience:  v.cfg.Audience,
		TenantID:  gc.TenantID,
		AppID:     gc.AppID,
		ExpiresAt: exp,
	}, exp.Add(v.cfg.ClockSkew), ""
}

// classify maps a golang-jwt error to a reason. The error itself is never
// logged or returned: keyfunc's messages quote the token's kid.
func classify(err error) Reason {
	switch {
	case errors.Is(err, errNoKID):
		return ReasonMalformed
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return ReasonUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// Includes an alg outside RS256 (none, HS256, ...), checked before
		// any key is looked up.
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYetValid
	default:
		// A missing exp, or a claim of the wrong JSON type.
		return ReasonMalformed
	}
}

// refreshForUnknownKID fetches the keys again because a token named a key
// botd does not have, at most once per UnknownKIDInterval. It never waits
// for the rate limit: inside the interval it returns false at once. Callers
// that arrive while such a fetch runs wait for it (bounded by FetchTimeout
// per GET) and then look again. The fetch is detached from ctx, so one
// caller going away does not fail it for the others.
func (v *Verifier) refreshForUnknownKID(ctx context.Context) bool {
	v.mu.Lock()
	if done := v.unknownKIDDone; done != nil {
		v.mu.Unlock()
		<-done
		return true
	}
	now := v.now()
	if !v.lastUnknownKID.IsZero() && now.Sub(v.lastUnknownKID) < v.cfg.UnknownKIDInterval {
		v.mu.Unlock()
		return false
	}
	v.lastUnknownKID = now
	done := make(chan struct{})
	v.unknownKIDDone = done
	v.mu.Unlock()

	err := v.refresh(context.WithoutCancel(ctx), triggerUnknownKID)

	v.mu.Lock()
	v.unknownKIDDone = nil
	v.mu.Unlock()
	close(done)
	return err == nil
}

// Middleware admits a request only with a valid callback token. It reads
// the Authorization header and nothing else: on failure the body is never
// touched and next is not called. The request goes on unchanged: putting
// the claims in its context would cost every callback a copy of the
// request, so VerifierConfig.OnVerified hands them over instead.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		var claims Claims
		switch vals := r.Header.Values("Authorization"); len(vals) {
		case 0:
			_, err = v.Verify(r.Context(), "")
		case 1:
			claims, err = v.Verify(r.Context(), vals[0])
		default:
			// Two credentials: which one a proxy would check is anyone's guess.
			err = v.fail(ReasonMalformed)
		}
		if err != nil {
			reason := ReasonMalformed
			var ae *Error
			if errors.As(err, &ae) {
				reason = ae.Reason
			}
			v.reject(w, r, reason)
			return
		}
		if v.cfg.OnVerified != nil {
			v.cfg.OnVerified(r, &claims)
		}
		next.ServeHTTP(w, r)
	})
}

func (v *Verifier) reject(w http.ResponseWriter, r *http.Request, reason Reason) {
	v.failLog.Info().
		Str("reason", string(reason)).
		Str("request_id", middleware.GetReqID(r.Context())).
		Str("method", r.Method).
		Str("remote_addr", r.RemoteAddr).
		Msg("callback refused: bearer token failed authentication")
	// RFC 6750 section 3.1: no error code when no credentials came.
	if reason == ReasonMissing {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		writeProblem(w, r, problem.Unauthorized, "missing bearer token")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeProblem(w, r, problem.Unauthorized, "bearer token refused: "+string(reason))
}

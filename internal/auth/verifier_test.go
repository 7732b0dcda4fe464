package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// authCase is one Authorization header and what the Verifier must make of it.
type authCase struct {
	name string
	// header builds the Authorization header; nil sends none.
	header func(t *testing.T, e *testEnv) *string
	// want is the failure reason; "" means the token must pass.
	want Reason
}

func bearer(s string) *string { h := "Bearer " + s; return &h }
func raw(s string) *string    { return &s }

func with(e *testEnv, f func(c jwt.MapClaims)) jwt.MapClaims {
	c := e.claims()
	f(c)
	return c
}

func authCases() []authCase {
	return []authCase{
		{"valid", func(t *testing.T, e *testEnv) *string { return bearer(sign(t, keyA(), kidA, e.claims())) }, ""},
		{"scheme is case-insensitive", func(t *testing.T, e *testEnv) *string {
			return raw("bEaReR   " + sign(t, keyA(), kidA, e.claims()))
		}, ""},
		{"aud as an array holding the app id", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["aud"] = []string{"other", testAppID} })))
		}, ""},
		{"tenant compared without case", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["tid"] = strings.ToUpper(testTenant) })))
		}, ""},
		{"graph issuer", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["iss"] = "https://graph.microsoft.com" })))
		}, ""},
		{"cty JWT and x5t in the header, as Teams sends", func(t *testing.T, e *testEnv) *string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, e.claims())
			tok.Header["kid"], tok.Header["x5t"], tok.Header["cty"] = kidA, kidA, "JWT"
			s, err := tok.SignedString(keyA())
			if err != nil {
				t.Fatal(err)
			}
			return bearer(s)
		}, ""},
		{"expired within skew", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["exp"] = e.clk.Now().Add(-4 * time.Minute).Unix() })))
		}, ""},
		{"nbf ahead within skew", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["nbf"] = e.clk.Now().Add(4 * time.Minute).Unix() })))
		}, ""},

		{"missing header", func(*testing.T, *testEnv) *string { return nil }, ReasonMissing},
		{"empty header", func(*testing.T, *testEnv) *string { return raw("") }, ReasonMissing},
		{"not Bearer", func(t *testing.T, e *testEnv) *string {
			return raw("Basic " + sign(t, keyA(), kidA, e.claims()))
		}, ReasonMalformed},
		{"Bearer without token", func(*testing.T, *testEnv) *string { return raw("Bearer") }, ReasonMalformed},
		{"two tokens", func(t *testing.T, e *testEnv) *string {
			tok := sign(t, keyA(), kidA, e.claims())
			return bearer(tok + " " + tok)
		}, ReasonMalformed},
		{"garbage", func(*testing.T, *testEnv) *string { return bearer("not-a-jwt") }, ReasonMalformed},
		{"garbage in three parts", func(*testing.T, *testEnv) *string { return bearer("aaa.bbb.ccc") }, ReasonMalformed},
		{"no kid", func(t *testing.T, e *testEnv) *string { return bearer(sign(t, keyA(), "", e.claims())) }, ReasonMalformed},
		{"no exp", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { delete(c, "exp") })))
		}, ReasonMalformed},
		{"exp of the wrong type", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["exp"] = "tomorrow" })))
		}, ReasonMalformed},
		{"forged: other key, same kid", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, forgerKey(), kidA, e.claims()))
		}, ReasonBadSignature},
		{"payload swapped under a valid signature", func(t *testing.T, e *testEnv) *string {
			good := strings.Split(sign(t, keyA(), kidA, e.claims()), ".")
			evil := strings.Split(sign(t, forgerKey(), kidA, with(e, func(c jwt.MapClaims) { c["tid"] = otherTenant })), ".")
			return bearer(good[0] + "." + evil[1] + "." + good[2])
		}, ReasonBadSignature},
		{"signature padded with a flipped spare bit", func(t *testing.T, e *testEnv) *string {
			tok := sign(t, keyA(), kidA, e.claims())
			// 256 signature bytes end in 2 spare bits: 'A'+1 keeps the bytes, changes the string.
			last := tok[len(tok)-1]
			return bearer(tok[:len(tok)-1] + string(flipSpareBit(last)))
		}, ReasonMalformed},
		{"alg none", func(t *testing.T, e *testEnv) *string {
			return bearer(unsigned(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kidA}, e.claims()))
		}, ReasonBadSignature},
		{"alg None", func(t *testing.T, e *testEnv) *string {
			return bearer(unsigned(t, map[string]any{"alg": "None", "kid": kidA}, e.claims()))
		}, ReasonBadSignature},
		{"HS256 keyed with the public key", func(t *testing.T, e *testEnv) *string {
			der, err := x509.MarshalPKIXPublicKey(&keyA().PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			return bearer(signWith(t, jwt.SigningMethodHS256, pemKey, kidA, e.claims()))
		}, ReasonBadSignature},
		{"RS512 with the right key", func(t *testing.T, e *testEnv) *string {
			return bearer(signWith(t, jwt.SigningMethodRS512, keyA(), kidA, e.claims()))
		}, ReasonBadSignature},
		{"PS256 with the right key", func(t *testing.T, e *testEnv) *string {
			return bearer(signWith(t, jwt.SigningMethodPS256, keyA(), kidA, e.claims()))
		}, ReasonBadSignature},
		{"expired beyond skew", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["exp"] = e.clk.Now().Add(-6 * time.Minute).Unix() })))
		}, ReasonExpired},
		{"nbf ahead beyond skew", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["nbf"] = e.clk.Now().Add(6 * time.Minute).Unix() })))
		}, ReasonNotYetValid},
		{"wrong audience", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["aud"] = "5ba1b2c3-0000-4000-8000-000000000000" })))
		}, ReasonWrongAudience},
		{"no audience", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { delete(c, "aud") })))
		}, ReasonWrongAudience},
		{"wrong issuer", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/evil/" })))
		}, ReasonWrongIssuer},
		{"issuer with a trailing slash", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["iss"] = testIssuer + "/" })))
		}, ReasonWrongIssuer},
		{"unknown kid", func(t *testing.T, e *testEnv) *string { return bearer(sign(t, keyC(), kidC, e.claims())) }, ReasonUnknownKey},
		{"missing tid", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { delete(c, "tid") })))
		}, ReasonMissingTenant},
		{"tenant not allowed", func(t *testing.T, e *testEnv) *string {
			return bearer(sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["tid"] = otherTenant })))
		}, ReasonTenantNotAllowed},
	}
}

// flipSpareBit returns the base64url character that differs from c only in
// the low bits a 256-byte value leaves unused.
func flipSpareBit(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

func allowTenant(cfg *VerifierConfig) { cfg.AllowedTenants = []string{testTenant} }

// TestMiddlewareHostileTokens runs every case through the middleware, as a
// callback would arrive: status, headers, problem body, handler not called,
// body not read, exactly one metric moved.
func TestMiddlewareHostileTokens(t *testing.T) {
	for _, tc := range authCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, allowTenant)
			called := false
			h := e.v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				w.WriteHeader(http.StatusAccepted)
			}))
			req := httptest.NewRequest(http.MethodPost, "/callback", strings.NewReader(`{"value":[]}`))
			if tc.want != "" {
				// The middleware must refuse without reading the body.
				req.Body = tripwireBody{t}
			}
			if hdr := tc.header(t, e); hdr != nil {
				req.Header.Set("Authorization", *hdr)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if tc.want == "" {
				if !called || rec.Code != http.StatusAccepted {
					t.Fatalf("valid token refused: %d %s", rec.Code, rec.Body)
				}
				if got := testutil.ToFloat64(e.v.m.success); got != 1 {
					t.Errorf("success_total %v, want 1", got)
				}
				if got := e.allFailures(); got != 0 {
					t.Errorf("failures %v, want 0", got)
				}
				return
			}
			if called {
				t.Fatal("handler called for a refused token")
			}
			p := decodeProblem(t, rec, http.StatusUnauthorized, "unauthorized")
			if !strings.Contains(p.Detail, string(tc.want)) && tc.want != ReasonMissing {
				t.Errorf("detail %q does not name %s", p.Detail, tc.want)
			}
			wantChallenge := `Bearer error="invalid_token"`
			if tc.want == ReasonMissing {
				wantChallenge = "Bearer"
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, wantChallenge)
			}
			if got := e.failures(tc.want); got != 1 {
				t.Errorf("failures{reason=%s} = %v, want 1", tc.want, got)
			}
			if got := e.allFailures(); got != 1 {
				t.Errorf("all failures %v, want 1", got)
			}
			if got := testutil.ToFloat64(e.v.m.success); got != 0 {
				t.Errorf("success_total %v, want 0", got)
			}
		})
	}
}

func TestVerifyReturnsReasonError(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.v.Verify(context.Background(), "Bearer "+sign(t, keyA(), kidA, with(e, func(c jwt.MapClaims) { c["aud"] = "nope" })))
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonWrongAudience {
		t.Fatalf("err %v, want *Error{wrong_audience}", err)
	}
	c, err := e.v.Verify(context.Background(), "Bearer "+sign(t, keyA(), kidA, e.claims()))
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Issuer: testIssuer, Audience: testAppID, TenantID: testTenant, AppID: "26a18ebc-cdf7-4a6a-91cb-beb352805e81",
		ExpiresAt: e.clk.Now().Add(time.Hour).Truncate(time.Second)}
	if !c.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("ExpiresAt %v, want %v", c.ExpiresAt, want.ExpiresAt)
	}
	c.ExpiresAt = want.ExpiresAt
	if c != want {
		t.Errorf("claims %+v, want %+v", c, want)
	}
}

func TestMiddlewareRefusesTwoAuthorizationHeaders(t *testing.T) {
	e := newEnv(t, nil)
	tok := sign(t, keyA(), kidA, e.claims())
	h := e.v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler called") }))
	req := httptest.NewRequest(http.MethodPost, "/callback", nil)
	req.Body = tripwireBody{t}
	req.Header.Add("Authorization", "Bearer "+tok)
	req.Header.Add("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	decodeProblem(t, rec, http.StatusUnauthorized, "unauthorized")
	if got := e.failures(ReasonMalformed); got != 1 {
		t.Errorf("malformed %v, want 1", got)
	}
}

func TestUnknownKIDRefreshIsRateLimited(t *testing.T) {
	e := newEnv(t, func(cfg *VerifierConfig) { cfg.UnknownKIDInterval = 5 * time.Minute })
	if n := e.fm.keyFetches.Load(); n != 1 {
		t.Fatalf("key fetches after start %d, want 1", n)
	}
	verify := func(key string, kid string) Reason {
		t.Helper()
		_, err := e.v.Verify(context.Background(), "Bearer "+sign(t, testKeys()[key], kid, e.claims()))
		var ae *Error
		if errors.As(err, &ae) {
			return ae.Reason
		}
		return ""
	}

	// Microsoft rotates key B in; the first token signed with it triggers a fetch and passes.
	e.fm.setKeys(jwk(kidA, &keyA().PublicKey), jwk(kidB, &keyB().PublicKey))
	if r := verify("B", kidB); r != "" {
		t.Fatalf("rotated-in key: %s", r)
	}
	if n := e.fm.keyFetches.Load(); n != 2 {
		t.Fatalf("key fetches %d, want 2", n)
	}
	if n := e.fm.metaFetches.Load(); n != 2 {
		t.Errorf("metadata fetches %d, want 2 (jwks_uri is read again)", n)
	}
	// Another unknown kid within the interval: refused without a fetch.
	if r := verify("C", kidC); r != ReasonUnknownKey {
		t.Fatalf("kid C: %q, want unknown_key", r)
	}
	if n := e.fm.keyFetches.Load(); n != 2 {
		t.Fatalf("key fetches %d, want still 2", n)
	}
	// After the interval a fetch is allowed again.
	e.clk.Advance(5*time.Minute + time.Second)
	if r := verify("C", kidC); r != ReasonUnknownKey {
		t.Fatalf("kid C: %q, want unknown_key", r)
	}
	if n := e.fm.keyFetches.Load(); n != 3 {
		t.Fatalf("key fetches %d, want 3", n)
	}
	if got := testutil.ToFloat64(e.v.m.refreshes.WithLabelValues(triggerUnknownKID, "ok")); got != 2 {
		t.Errorf("unknown_kid refreshes %v, want 2", got)
	}
	if got := e.failures(ReasonUnknownKey); got != 2 {
		t.Errorf("unknown_key failures %v, want 2", got)
	}
}

// TestUnknownKIDConcurrent: many different tokens with a newly rotated kid
// arrive at once; one fetch serves them all and all pass.
func TestUnknownKIDConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	e.fm.setKeys(jwk(kidA, &keyA().PublicKey), jwk(kidB, &keyB().PublicKey))
	const n = 16
	toks := make([]string, n)
	for i := range toks {
		c := e.claims()
		c["jti"] = fmt.Sprint(i)
		toks[i] = sign(t, keyB(), kidB, c)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range toks {
		wg.Go(func() { _, errs[i] = e.v.Verify(context.Background(), "Bearer "+toks[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d: %v", i, err)
		}
	}
	if got := e.fm.keyFetches.Load(); got != 2 {
		t.Errorf("key fetches %d, want 2", got)
	}
}

func TestCacheVerifiesOncePerToken(t *testing.T) {
	e := newEnv(t, nil)
	h := "Bearer " + sign(t, keyA(), kidA, e.claims())
	const n = 50
	for range n {
		if _, err := e.v.Verify(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("signature verifications %d, want 1", got)
	}
	if got := testutil.ToFloat64(e.v.m.success); got != n {
		t.Errorf("success %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(e.v.m.cacheHits); got != n-1 {
		t.Errorf("cache hits %v, want %d", got, n-1)
	}
}

// TestLastTokenIsItsOwn: the remembered last header answers only for
// itself. Two tokens in turn each get their own claims, a tampered copy of
// the last one is checked in full and refused.
func TestLastTokenIsItsOwn(t *testing.T) {
	e := newEnv(t, nil)
	ca, cb := e.claims(), e.claims()
	cb["appid"] = "other-app"
	ha := "Bearer " + sign(t, keyA(), kidA, ca)
	hb := "Bearer " + sign(t, keyA(), kidA, cb)
	for range 3 {
		for h, app := range map[string]string{ha: "26a18ebc-cdf7-4a6a-91cb-beb352805e81", hb: "other-app"} {
			got, err := e.v.Verify(context.Background(), h)
			if err != nil || got.AppID != app {
				t.Fatalf("claims %+v (%v), want appid %s", got, err, app)
			}
			if got2, err := e.v.Verify(context.Background(), h); err != nil || got2 != got {
				t.Fatalf("the same header again: %+v (%v), want %+v", got2, err, got)
			}
		}
	}
	if got := e.calls.Load(); got != 2 {
		t.Errorf("signature verifications %d, want 2", got)
	}
	tampered := ha[:len(ha)-2] + "xx"
	if tampered == ha {
		tampered = ha[:len(ha)-2] + "yy"
	}
	if _, err := e.v.Verify(context.Background(), ha); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Verify(context.Background(), tampered); err == nil {
		t.Fatal("a tampered copy of the last token verified")
	}
}

func TestCacheConcurrentSameToken(t *testing.T) {
	e := newEnv(t, nil)
	h := "Bearer " + sign(t, keyA(), kidA, e.claims())
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := e.v.Verify(context.Background(), h); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := e.calls.Load(); got != 1 {
		t.Errorf("signature verifications %d, want 1", got)
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	e := newEnv(t, nil)
	c := e.claims()
	c["exp"] = e.clk.Now().Add(10 * time.Minute).Unix()
	h := "Bearer " + sign(t, keyA(), kidA, c)
	if _, err := e.v.Verify(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	// Past exp but within the skew: still accepted, from the cache.
	e.clk.Advance(14 * time.Minute)
	if _, err := e.v.Verify(context.Background(), h); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	// Past exp + skew: refused, without verifying the signature again.
	e.clk.Advance(time.Minute + time.Second)
	_, err := e.v.Verify(context.Background(), h)
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonExpired {
		t.Fatalf("err %v, want expired", err)
	}
	// Dropped from the cache: a second try is refused by the full check.
	if _, err := e.v.Verify(context.Background(), h); !errors.As(err, &ae) || ae.Reason != ReasonExpired {
		t.Fatalf("err %v, want expired", err)
	}
	if got := e.calls.Load(); got != 2 {
		t.Errorf("signature verifications %d, want 2", got)
	}
	if got := e.failures(ReasonExpired); got != 2 {
		t.Errorf("expired %v, want 2", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	e := newEnv(t, func(cfg *VerifierConfig) { cfg.CacheSize = 3 })
	var hdrs []string
	for i := range 5 {
		c := e.claims()
		c["jti"] = fmt.Sprint(i)
		hdrs = append(hdrs, "Bearer "+sign(t, keyA(), kidA, c))
	}
	for _, h := range hdrs {
		if _, err := e.v.Verify(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.v.cache.len(); got != 3 {
		t.Fatalf("cache holds %d, want 3", got)
	}
	// The newest is cached, the oldest was evicted.
	_, _ = e.v.Verify(context.Background(), hdrs[4])
	if got := e.calls.Load(); got != 5 {
		t.Fatalf("verifications %d, want 5", got)
	}
	_, _ = e.v.Verify(context.Background(), hdrs[0])
	if got := e.calls.Load(); got != 6 {
		t.Fatalf("verifications %d, want 6", got)
	}
}

func TestCacheDisabled(t *testing.T) {
	e := newEnv(t, func(cfg *VerifierConfig) { cfg.CacheSize = -1 })
	h := "Bearer " + sign(t, keyA(), kidA, e.claims())
	for range 3 {
		if _, err := e.v.Verify(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.calls.Load(); got != 3 {
		t.Errorf("verifications %d, want 3", got)
	}
}

// TestWithdrawnKeyPurgesCache: when Microsoft withdraws a key, tokens signed
// with it are checked again instead of living on in the cache.
func TestWithdrawnKeyPurgesCache(t *testing.T) {
	e := newEnv(t, nil)
	hA := "Bearer " + sign(t, keyA(), kidA, e.claims())
	if _, err := e.v.Verify(context.Background(), hA); err != nil {
		t.Fatal(err)
	}
	e.fm.setKeys(jwk(kidB, &keyB().PublicKey))
	if err := e.v.refresh(context.Background(), triggerPeriodic); err != nil {
		t.Fatal(err)
	}
	_, err := e.v.Verify(context.Background(), hA)
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonUnknownKey {
		t.Fatalf("err %v, want unknown_key", err)
	}
	if got := e.calls.Load(); got != 2 {
		t.Errorf("verifications %d, want 2", got)
	}
}

// TestAddedKeyKeepsCache: a refresh that only adds keys keeps the cache.
func TestAddedKeyKeepsCache(t *testing.T) {
	e := newEnv(t, nil)
	hA := "Bearer " + sign(t, keyA(), kidA, e.claims())
	if _, err := e.v.Verify(context.Background(), hA); err != nil {
		t.Fatal(err)
	}
	e.fm.setKeys(jwk(kidA, &keyA().PublicKey), jwk(kidB, &keyB().PublicKey))
	if err := e.v.refresh(context.Background(), triggerPeriodic); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Verify(context.Background(), hA); err != nil {
		t.Fatal(err)
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("verifications %d, want 1", got)
	}
	if got := testutil.ToFloat64(e.v.m.keys); got != 2 {
		t.Errorf("signing_keys gauge %v, want 2", got)
	}
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

// Distinctive values, so the log test can look for them.
const (
	testAppID      = "0efc74f7-41c3-47a4-8775-7259bfef4241"
	testTenant     = "1fdd12d0-4620-44ed-baec-459b611f84b2"
	otherTenant    = "9c0c1f04-9102-4f0e-a8fc-59532912e3f4"
	testIssuer     = "https://api.botframework.com"
	kidA           = "kidAlpha-e9d2Ej_yEdf2jCBDD"
	kidB           = "kidBravo-oI2pysRK0KWZ9Jd0m"
	kidC           = "kidCharlie-b4ysOWItD13iQfLL"
	metadataPath   = "/v1/.well-known/OpenIdConfiguration"
	keysPath       = "/v1/keys"
	metadataIssuer = testIssuer
)

// Keys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	m := make(map[string]*rsa.PrivateKey)
	for _, name := range []string{"A", "B", "C", "forger"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	return m
})

func keyA() *rsa.PrivateKey      { return testKeys()["A"] }
func keyB() *rsa.PrivateKey      { return testKeys()["B"] }
func keyC() *rsa.PrivateKey      { return testKeys()["C"] }
func forgerKey() *rsa.PrivateKey { return testKeys()["forger"] }

// jwk is a public RSA key as Microsoft publishes it (minus x5c).
func jwk(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA",
		"use": "sig",
		"kid": kid,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// fakeMicrosoft serves the OpenID metadata and the JWKS and counts fetches.
type fakeMicrosoft struct {
	*httptest.Server
	mu          sync.Mutex
	keys        []map[string]any
	rawKeys     []byte // when set, served instead of keys
	jwksURI     string // when set, put in the metadata instead of the server's own
	failMeta    bool
	metaFetches atomic.Int64
	keyFetches  atomic.Int64
}

func newFakeMicrosoft(t testing.TB, keys ...map[string]any) *fakeMicrosoft {
	t.Helper()
	fm := &fakeMicrosoft{keys: keys}
	fm.Server = httptest.NewServer(http.HandlerFunc(fm.serve))
	t.Cleanup(fm.Close)
	return fm
}

func (fm *fakeMicrosoft) serve(w http.ResponseWriter, r *http.Request) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	switch r.URL.Path {
	case metadataPath:
		fm.metaFetches.Add(1)
		if fm.failMeta {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		uri := fm.jwksURI
		if uri == "" {
			uri = fm.URL + keysPath
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                metadataIssuer,
			"authorization_endpoint":                "https://invalid.botframework.com",
			"jwks_uri":                              uri,
			"id_token_signing_alg_values_supported": []string{"RSA256"},
		})
	case keysPath:
		fm.keyFetches.Add(1)
		if fm.rawKeys != nil {
			_, _ = w.Write(fm.rawKeys)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": fm.keys})
	default:
		http.NotFound(w, r)
	}
}

func (fm *fakeMicrosoft) setKeys(keys ...map[string]any) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.keys = keys
}

func (fm *fakeMicrosoft) set(f func(fm *fakeMicrosoft)) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	f(fm)
}

// newClock is a settable clock for exp, nbf, the cache and the rate limit.
func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

type testEnv struct {
	fm    *fakeMicrosoft
	clk   *testkit.Clock
	reg   *prometheus.Registry
	v     *Verifier
	log   *testkit.Buffer
	calls atomic.Int64 // uncached verifications
}

// newEnv starts a Verifier against a fake Microsoft serving key A.
// testConfig is DefaultVerifierConfig with the non-zero fields of c laid
// over it: a test names only what it is about.
func testConfig(c VerifierConfig) VerifierConfig {
	out := DefaultVerifierConfig()
	dst, src := reflect.ValueOf(&out).Elem(), reflect.ValueOf(c)
	for i := range src.NumField() {
		if f := src.Field(i); !f.IsZero() {
			dst.Field(i).Set(f)
		}
	}
	return out
}

func newEnv(t testing.TB, mutate func(*VerifierConfig)) *testEnv {
	t.Helper()
	e := &testEnv{
		fm:  newFakeMicrosoft(t, jwk(kidA, &keyA().PublicKey)),
		clk: newClock(),
		reg: prometheus.NewRegistry(),
		log: &testkit.Buffer{},
	}
	cfg := testConfig(VerifierConfig{
		Audience:    testAppID,
		MetadataURL: e.fm.URL + metadataPath,
		HTTPClient:  e.fm.Client(),
		Now:         e.clk.Now,
	})
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := NewVerifier(cfg, zerolog.New(e.log), e.reg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	v.onVerify = func() { e.calls.Add(1) }
	e.v = v
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := v.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e
}

// claims are valid for the test clock's now.
func (e *testEnv) claims() jwt.MapClaims {
	now := e.clk.Now()
	return jwt.MapClaims{
		"aud":   testAppID,
		"iss":   testIssuer,
		"tid":   testTenant,
		"appid": "26a18ebc-cdf7-4a6a-91cb-beb352805e81",
		"iat":   now.Add(-time.Minute).Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
}

func (e *testEnv) failures(r Reason) float64 {
	return testutil.ToFloat64(e.v.m.failures.WithLabelValues(string(r)))
}

func (e *testEnv) allFailures() float64 {
	sum := 0.0
	for _, r := range allReasons {
		sum += e.failures(r)
	}
	return sum
}

func sign(t testing.TB, key *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, jwt.SigningMethodRS256, key, kid, claims)
}

func signWith(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// unsigned builds header.payload. with no signature, as alg=none tokens are.
func unsigned(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// tripwireBody fails the test if anything reads it.
type tripwireBody struct{ t testing.TB }

func (b tripwireBody) Read([]byte) (int, error) {
	b.t.Errorf("request body was read")
	return 0, io.EOF
}

func (b tripwireBody) Close() error { return nil }

// decodeProblem reads a problem body and checks the members every problem has.
func decodeProblem(t testing.TB, rec *httptest.ResponseRecorder, status int, code string) problem.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d (body %s)", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p problem.Problem
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != status || string(p.Code) != code || p.Title != http.StatusText(status) || p.Detail == "" ||
		p.Type != "about:blank" {
		t.Errorf("problem %+v", p)
	}
	return p
}

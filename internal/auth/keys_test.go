package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

func TestStartLoadsKeysThroughMetadata(t *testing.T) {
	e := newEnv(t, nil)
	if !e.v.Ready() {
		t.Fatal("not ready after Start")
	}
	if m, k := e.fm.metaFetches.Load(), e.fm.keyFetches.Load(); m != 1 || k != 1 {
		t.Errorf("fetches: metadata %d, keys %d; want 1, 1", m, k)
	}
	if got := testutil.ToFloat64(e.v.m.refreshes.WithLabelValues(triggerStart, "ok")); got != 1 {
		t.Errorf("start refreshes %v", got)
	}
	if got := testutil.ToFloat64(e.v.m.keys); got != 1 {
		t.Errorf("signing_keys %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.v.m.lastLoaded); got != float64(e.clk.Now().Unix()) {
		t.Errorf("keys_loaded_timestamp %v", got)
	}
	if got := testutil.ToFloat64(e.v.m.enabled); got != 1 {
		t.Errorf("inbound_auth_enabled %v, want 1", got)
	}
	if err := e.v.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

// TestStartFailureRecoversOnFirstToken: Microsoft is down at start; Start
// says so, the Verifier is not ready, and the first token (an unknown kid,
// since nothing is known) loads the keys once Microsoft is back.
func TestStartFailureRecoversOnFirstToken(t *testing.T) {
	fm := newFakeMicrosoft(t, jwk(kidA, &keyA().PublicKey))
	fm.set(func(fm *fakeMicrosoft) { fm.failMeta = true })
	clk := newClock()
	v, err := NewVerifier(testConfig(VerifierConfig{
		Audience: testAppID, MetadataURL: fm.URL + metadataPath, HTTPClient: fm.Client(), Now: clk.Now,
	}), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := v.Start(ctx); err == nil || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("Start: %v, want the status 500", err)
	}
	if v.Ready() {
		t.Fatal("ready without keys")
	}
	e := &testEnv{clk: clk}
	h := "Bearer " + sign(t, keyA(), kidA, e.claims())
	if _, err := v.Verify(ctx, h); reasonOf(err) != ReasonUnknownKey {
		t.Fatalf("while down: %v, want unknown_key", err)
	}
	// Garbage must not spend the fetch.
	if _, err := v.Verify(ctx, "Bearer garbage"); reasonOf(err) != ReasonMalformed {
		t.Fatalf("garbage: %v", err)
	}
	fm.set(func(fm *fakeMicrosoft) { fm.failMeta = false })
	clk.Advance(DefaultUnknownKIDInterval)
	if _, err := v.Verify(ctx, h); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if !v.Ready() {
		t.Error("not ready after keys loaded")
	}
	if got := testutil.ToFloat64(v.m.refreshes.WithLabelValues(triggerStart, "error")); got != 1 {
		t.Errorf("start errors %v, want 1", got)
	}
}

func reasonOf(err error) Reason {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

func TestRefreshFailureKeepsKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(fm *fakeMicrosoft)
		want    string
	}{
		{"metadata down", func(fm *fakeMicrosoft) { fm.failMeta = true }, "status 500"},
		{"jwks_uri not https", func(fm *fakeMicrosoft) { fm.jwksURI = "http://keys.example.com/v1/keys" }, "must be https"},
		{"jwks_uri relative", func(fm *fakeMicrosoft) { fm.jwksURI = "/v1/keys" }, "not an absolute URL"},
		{"keys not JSON", func(fm *fakeMicrosoft) { fm.rawKeys = []byte("<html>") }, "decode"},
		{"no usable key", func(fm *fakeMicrosoft) { fm.rawKeys = []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) }, "no usable RS256 signing key"},
		{"empty key set", func(fm *fakeMicrosoft) { fm.rawKeys = []byte(`{"keys":[]}`) }, "no usable RS256 signing key"},
		{"key set too large", func(fm *fakeMicrosoft) { fm.rawKeys = []byte(strings.Repeat(" ", maxDocBytes+1)) }, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := "Bearer " + sign(t, keyA(), kidA, e.claims())
			e.fm.set(tc.breakIt)
			err := e.v.refresh(context.Background(), triggerPeriodic)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refresh: %v, want %q", err, tc.want)
			}
			if !e.v.Ready() {
				t.Error("lost readiness")
			}
			if _, err := e.v.Verify(context.Background(), h); err != nil {
				t.Errorf("old key no longer verifies: %v", err)
			}
			if got := testutil.ToFloat64(e.v.m.refreshes.WithLabelValues(triggerPeriodic, "error")); got != 1 {
				t.Errorf("periodic errors %v", got)
			}
		})
	}
}

// TestBuildKeySetMicrosoftShape loads a JWKS shaped like Microsoft's (x5c,
// x5t, endorsements, issuer members) among keys botd must skip.
func TestBuildKeySetMicrosoftShape(t *testing.T) {
	good := jwkWithCert(t, kidA, keyA())
	mismatched := jwkWithCert(t, kidB, keyB())
	mismatched["n"] = jwk(kidB, &keyC().PublicKey)["n"] // x5c holds another key
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecJWK, err := jwkset.NewJWKFromKey(ec.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "ec", USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	enc := jwk("enc", &keyC().PublicKey)
	enc["use"] = "enc"
	ps := jwk("ps", &keyC().PublicKey)
	ps["alg"] = "PS256"
	noKID := jwk("", &keyC().PublicKey)
	delete(noKID, "kid")
	withPrivate := jwk(kidC, &keyC().PublicKey)
	withPrivate["d"] = base64.RawURLEncoding.EncodeToString(keyC().D.Bytes())

	keys := []any{good, good, mismatched, jwk("small", &small.PublicKey), ecJWK.Marshal(), enc, ps, noKID, withPrivate}
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	ks, skipped, err := buildKeySet(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.kids) != 2 || skipped != 7 {
		t.Fatalf("loaded %v, skipped %d; want [%s %s], 7", ks.kids, skipped, kidA, kidC)
	}
	for _, kid := range []string{kidA, kidC} {
		if _, ok := ks.kids[kid]; !ok {
			t.Errorf("%s not loaded", kid)
		}
	}
	// The key with private parts was loaded as a public key only.
	jwkC, err := ks.kf.Storage().KeyRead(context.Background(), kidC)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jwkC.Key().(*rsa.PublicKey); !ok {
		t.Errorf("kid C loaded as %T", jwkC.Key())
	}
}

// jwkWithCert is a JWK the way Microsoft publishes one: x5c holds a
// certificate for the same key, x5t its SHA-1 thumbprint, plus members
// jwkset does not know.
func jwkWithCert(t *testing.T, kid string, key *rsa.PrivateKey) map[string]any {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "api.aps.skype.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	thumb := sha1.Sum(der)
	m := jwk(kid, &key.PublicKey)
	m["x5c"] = []string{base64.StdEncoding.EncodeToString(der)}
	m["x5t"] = base64.RawURLEncoding.EncodeToString(thumb[:])
	m["endorsements"] = []string{"msteams", "skype"}
	m["issuer"] = "https://api.botframework.com"
	return m
}

func TestNewVerifierConfig(t *testing.T) {
	ok := func() VerifierConfig { return testConfig(VerifierConfig{Audience: testAppID}) }
	for _, tc := range []struct {
		name   string
		mutate func(*VerifierConfig)
		want   string // error substring; "" means valid
	}{
		{"defaults", func(*VerifierConfig) {}, ""},
		{"no audience", func(c *VerifierConfig) { c.Audience = "  " }, "Audience"},
		{"metadata over http", func(c *VerifierConfig) { c.MetadataURL = "http://api.aps.skype.com/x" }, "must be https"},
		{"metadata on loopback http", func(c *VerifierConfig) { c.MetadataURL = "http://127.0.0.1:9/x" }, ""},
		{"metadata on localhost http", func(c *VerifierConfig) { c.MetadataURL = "http://localhost:9/x" }, ""},
		{"metadata not absolute", func(c *VerifierConfig) { c.MetadataURL = "api.aps.skype.com" }, "not an absolute URL"},
		{"empty issuer", func(c *VerifierConfig) { c.Issuers = []string{"https://a", ""} }, "Issuers"},
		{"empty tenant", func(c *VerifierConfig) { c.AllowedTenants = []string{" "} }, "AllowedTenants"},
		{"skew too large", func(c *VerifierConfig) { c.ClockSkew = 5*time.Minute + 1 }, "ClockSkew"},
		{"skew negative", func(c *VerifierConfig) { c.ClockSkew = -1 }, "ClockSkew"},
		{"skew 5m", func(c *VerifierConfig) { c.ClockSkew = 5 * time.Minute }, ""},
		{"negative refresh", func(c *VerifierConfig) { c.RefreshInterval = -1 }, "RefreshInterval"},
		{"negative unknown-kid interval", func(c *VerifierConfig) { c.UnknownKIDInterval = -1 }, "UnknownKIDInterval"},
		{"negative fetch timeout", func(c *VerifierConfig) { c.FetchTimeout = -1 }, "FetchTimeout"},
		{"negative retry", func(c *VerifierConfig) { c.RetryInterval = -1 }, "RetryInterval"},
		// No setting is silently defaulted: a zero one is refused by name.
		{"no metadata URL", func(c *VerifierConfig) { c.MetadataURL = "" }, "MetadataURL"},
		{"no issuers", func(c *VerifierConfig) { c.Issuers = nil }, "Issuers"},
		{"zero skew", func(c *VerifierConfig) { c.ClockSkew = 0 }, "ClockSkew"},
		{"zero refresh", func(c *VerifierConfig) { c.RefreshInterval = 0 }, "RefreshInterval"},
		{"zero retry", func(c *VerifierConfig) { c.RetryInterval = 0 }, "RetryInterval"},
		{"zero unknown-kid interval", func(c *VerifierConfig) { c.UnknownKIDInterval = 0 }, "UnknownKIDInterval"},
		{"zero fetch timeout", func(c *VerifierConfig) { c.FetchTimeout = 0 }, "FetchTimeout"},
		{"zero cache size", func(c *VerifierConfig) { c.CacheSize = 0 }, "CacheSize"},
		{"negative cache size: no cache", func(c *VerifierConfig) { c.CacheSize = -1 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok()
			tc.mutate(&cfg)
			v, err := NewVerifier(cfg, zerolog.Nop(), prometheus.NewRegistry())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if v != nil {
				t.Error("Verifier returned with an error")
			}
		})
	}

	v, err := NewVerifier(ok(), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := v.cfg
	if c.MetadataURL != GlobalMetadataURL || c.ClockSkew != 5*time.Minute || c.RefreshInterval != 24*time.Hour ||
		c.UnknownKIDInterval != 5*time.Minute || c.RetryInterval != time.Minute || c.FetchTimeout != 10*time.Second ||
		c.CacheSize != 10000 || len(c.Issuers) != 2 || v.client.Timeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

// TestMetricsTwiceOnOneRegistry: two Verifiers (or a Verifier and the
// disabled gauge) on one registry share their series instead of panicking.
func TestMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	RegisterDisabledGauge(reg)
	if got := gaugeValue(t, reg, "botd_inbound_auth_enabled"); got != 0 {
		t.Fatalf("enabled %v, want 0", got)
	}
	for range 2 {
		if _, err := NewVerifier(testConfig(VerifierConfig{Audience: testAppID}), zerolog.Nop(), reg); err != nil {
			t.Fatal(err)
		}
	}
	if got := gaugeValue(t, reg, "botd_inbound_auth_enabled"); got != 1 {
		t.Fatalf("enabled %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "botd_auth_failures_total"); err != nil || n != len(allReasons) {
		t.Errorf("failure series %d (%v), want %d", n, err, len(allReasons))
	}
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}

// roundTripper serves the fake Microsoft in memory, for synctest bubbles
// (no sockets, so the bubble's clock is the only clock).
type roundTripper struct {
	mu         sync.Mutex
	fail       bool
	keyFetches int
}

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.fail {
		return nil, errors.New("connection refused")
	}
	var body string
	switch r.URL.Path {
	case metadataPath:
		body = `{"issuer":"https://api.botframework.com","jwks_uri":"https://keys.test/v1/keys"}`
	case keysPath:
		rt.keyFetches++
		b, _ := json.Marshal(map[string]any{"keys": []any{jwk(kidA, &keyA().PublicKey)}})
		body = string(b)
	default:
		return &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody, Request: r}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func (rt *roundTripper) fetches() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.keyFetches
}

func (rt *roundTripper) setFail(b bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.fail = b
}

func TestPeriodicRefresh(t *testing.T) {
	_ = testKeys() // generate outside the bubble
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTripper{}
		v, err := NewVerifier(testConfig(VerifierConfig{
			Audience:    testAppID,
			MetadataURL: "https://meta.test" + metadataPath,
			HTTPClient:  &http.Client{Transport: rt},
		}), zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := v.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(24*time.Hour - time.Second)
		synctest.Wait()
		if got := rt.fetches(); got != 1 {
			t.Fatalf("fetches before 24h: %d, want 1", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := rt.fetches(); got != 2 {
			t.Fatalf("fetches at 24h: %d, want 2", got)
		}
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if got := rt.fetches(); got != 3 {
			t.Fatalf("fetches at 48h: %d, want 3", got)
		}
		cancel()
		synctest.Wait()
	})
}

// TestRetryAfterFailedStart: a Verifier that could not load keys at start
// tries again after RetryInterval, not after RefreshInterval.
func TestRetryAfterFailedStart(t *testing.T) {
	_ = testKeys()
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTripper{fail: true}
		v, err := NewVerifier(testConfig(VerifierConfig{
			Audience:    testAppID,
			MetadataURL: "https://meta.test" + metadataPath,
			HTTPClient:  &http.Client{Transport: rt},
		}), zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := v.Start(ctx); err == nil {
			t.Fatal("Start succeeded with Microsoft unreachable")
		}
		time.Sleep(DefaultRetryInterval)
		synctest.Wait()
		if v.Ready() {
			t.Fatal("ready while unreachable")
		}
		rt.setFail(false)
		time.Sleep(DefaultRetryInterval)
		synctest.Wait()
		if !v.Ready() {
			t.Fatal("not ready one retry after Microsoft came back")
		}
		// Then back to the long interval.
		time.Sleep(DefaultRetryInterval)
		synctest.Wait()
		if got := rt.fetches(); got != 1 {
			t.Fatalf("fetches %d, want 1", got)
		}
		cancel()
		synctest.Wait()
	})
}

func TestDefaultClientRefusesDowngradeRedirect(t *testing.T) {
	c := defaultClient(time.Second)
	req, _ := http.NewRequest(http.MethodGet, "http://keys.example.com/", nil)
	if err := c.CheckRedirect(req, nil); err == nil {
		t.Error("redirect to plain http allowed")
	}
	req, _ = http.NewRequest(http.MethodGet, "https://keys.example.com/", nil)
	if err := c.CheckRedirect(req, nil); err != nil {
		t.Errorf("https redirect refused: %v", err)
	}
	if err := c.CheckRedirect(req, make([]*http.Request, 3)); err == nil {
		t.Error("fourth redirect allowed")
	}
}

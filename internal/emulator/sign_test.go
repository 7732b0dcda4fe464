package emulator

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/botd/botd/internal/model"
)

// jwks fetches the OpenID configuration, then the key set it names, the
// way a bot's verifier does.
func jwks(t *testing.T, s *Server) map[string]*rsa.PublicKey {
	t.Helper()
	var conf struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	a := send(t, http.MethodGet, s.OpenIDConfigURL(), "", "", "")
	a.json(t, &conf)
	if a.status != http.StatusOK || conf.Issuer != CallbackIssuer || conf.JWKSURI != s.JWKSURL() || len(conf.Algs) != 1 || conf.Algs[0] != "RS256" {
		t.Fatalf("OpenID configuration %d %s", a.status, a.body)
	}
	var set struct {
		Keys []struct {
			Kty, Use, Alg, Kid, N, E string
		} `json:"keys"`
	}
	a = send(t, http.MethodGet, conf.JWKSURI, "", "", "")
	a.json(t, &set)
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || k.Kid == "" || err1 != nil || err2 != nil {
			t.Fatalf("JWK %+v", k)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(keys) != 1 {
		t.Fatalf("JWKS %s", a.body)
	}
	return keys
}

func TestCallbackJWTVerifiesAgainstTheServedJWKS(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := newBot(t)
	// No SigningKey: the emulator generates its own on first use.
	s := New(Options{Now: clock, TimeScale: 0.001, Seed: 5, TokenTTL: 100 * time.Hour, ClientID: "2891555a-92ff-42e6-80fa-6e1300c6b5c6",
		TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", Timing: Timing{KeepAlive: 1000 * time.Hour}})
	s.Start()
	t.Cleanup(s.Close)
	keys := jwks(t, s)
	tok := fetchToken(t, s)
	body := strings.Replace(callTo(user(johnID, "John")), "{", `{"callbackUri":"`+b.URL+`",`, 1)
	a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", body)
	var c model.Call
	a.json(t, &c)
	ns := b.waitFor("three callbacks", countFor(3, c.ID))

	verify := func(raw string) (jwt.MapClaims, error) {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(raw, claims, func(tk *jwt.Token) (any, error) {
			kid, _ := tk.Header["kid"].(string)
			if k := keys[kid]; k != nil {
				return k, nil
			}
			return nil, jwt.ErrTokenUnverifiable
		}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(CallbackIssuer),
			jwt.WithAudience(s.Options().ClientID), jwt.WithIssuedAt(), jwt.WithTimeFunc(clock))
		return claims, err
	}
	first := strings.TrimPrefix(ns[0].Header.Get("Authorization"), "Bearer ")
	claims, err := verify(first)
	if err != nil {
		t.Fatalf("callback JWT does not verify: %v", err)
	}
	iat, _ := claims.GetIssuedAt()
	nbf, _ := claims.GetNotBefore()
	exp, _ := claims.GetExpirationTime()
	if claims["tid"] != s.Options().TenantID || claims["aud"] != s.Options().ClientID || !iat.Equal(now) || !nbf.Equal(now) ||
		exp.Sub(iat.Time) != time.Hour {
		t.Errorf("claims %v", claims)
	}
	for _, n := range ns[1:] {
		if got := strings.TrimPrefix(n.Header.Get("Authorization"), "Bearer "); got != first {
			t.Error("callback token not reused within its lifetime")
		}
	}
	// A load generator gets the same token from /emulator/callback-token.
	res, err := http.Get(s.URL() + "/emulator/callback-token")
	if err != nil {
		t.Fatal(err)
	}
	var handed struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	err = json.NewDecoder(res.Body).Decode(&handed)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || handed.Token != first || !handed.ExpiresAt.Equal(exp.Time) {
		t.Errorf("/emulator/callback-token: %d %v %+v, want the callbacks' token expiring %v", res.StatusCode, err, handed, exp.Time)
	}
	// Tampered or foreign tokens fail, so the checks above can fail.
	parts := strings.Split(first, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://api.botframework.com","aud":"x"}`)) + "." + parts[2]
	if _, err := verify(forged); err == nil {
		t.Error("a tampered token verified")
	}
	other := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": CallbackIssuer, "aud": s.Options().ClientID, "exp": now.Add(time.Hour).Unix()})
	for kid := range keys {
		other.Header["kid"] = kid // the emulator's kid, another key (testKey)
	}
	signed, err := other.SignedString(testKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(signed); err == nil {
		t.Error("a token from another key verified")
	}

	// Near expiry, a new token is issued.
	mu.Lock()
	now = now.Add(56 * time.Minute)
	mu.Unlock()
	if a := send(t, http.MethodDelete, s.BaseURL()+"/communications/calls/"+c.ID, tok, "", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d", a.status)
	}
	ns = b.waitFor("terminated", terminatedCall(c.ID))
	last := strings.TrimPrefix(ns[len(ns)-1].Header.Get("Authorization"), "Bearer ")
	if last == first {
		t.Fatal("token not refreshed 4 minutes before expiry")
	}
	claims, err = verify(last)
	if iat, _ := claims.GetIssuedAt(); err != nil || !iat.Equal(now) {
		t.Errorf("refreshed token: %v %v", err, claims)
	}
	if ns[len(ns)-1].Header.Get("X-Microsoft-Skype-Chain-ID") != c.CallChainID {
		t.Errorf("chain id header %q, want %q", ns[len(ns)-1].Header.Get("X-Microsoft-Skype-Chain-ID"), c.CallChainID)
	}
}

func TestJWKSAlsoAtWellKnownKeys(t *testing.T) {
	s := New(Options{SigningKey: testKey(), Seed: 1})
	s.Start()
	defer s.Close()
	a := send(t, http.MethodGet, s.URL()+"/v1/.well-known/keys", "", "", "")
	var set struct {
		Keys []struct{ Kid string } `json:"keys"`
	}
	a.json(t, &set)
	if a.status != http.StatusOK || len(set.Keys) != 1 || set.Keys[0].Kid != keyID(&testKey().PublicKey) {
		t.Errorf("%d %s", a.status, a.body)
	}
}

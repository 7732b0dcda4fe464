package graph

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

type testCert struct {
	key     *rsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte // PKCS#8
}

func newTestCert(t *testing.T) testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "botd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		key: key, cert: cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
	}
}

func writeFile(t *testing.T, name string, parts ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	var b []byte
	for _, x := range parts {
		b = append(b, x...)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertificateCredential(t *testing.T) {
	tc := newTestCert(t)
	e := newEnv(t, emulator.Options{ClientCertificate: tc.cert, Tenants: []string{tenantA}}, func(c *Config) {
		c.ClientSecret = ""
		c.ClientCertificateFile = writeFile(t, "cert.pem", tc.keyPEM, tc.certPEM) // key first: order does not matter
	})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.KeepAlive(WithTenant(bg, tenantA), id); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	for i, tenant := range []string{e.cfg.TenantID, tenantA} {
		f := tokenForm(t, e.fg, i)
		if f.Has("client_secret") || f.Get("client_assertion_type") != ClientAssertionType || f.Get("client_id") != e.cfg.ClientID {
			t.Errorf("token request %d form = %v", i, f)
		}
		var claims jwt.RegisteredClaims
		tok, err := jwt.ParseWithClaims(f.Get("client_assertion"), &claims, func(*jwt.Token) (any, error) { return &tc.key.PublicKey, nil })
		if err != nil {
			t.Fatal(err)
		}
		if tok.Header["x5t"] == nil || tok.Header["x5t#S256"] == nil || tok.Method.Alg() != "RS256" ||
			claims.Issuer != e.cfg.ClientID || claims.Subject != e.cfg.ClientID || claims.ID == "" ||
			len(claims.Audience) != 1 || claims.Audience[0] != e.fg.TokenURLFor(tenant) ||
			claims.ExpiresAt.Sub(claims.IssuedAt.Time) != 10*time.Minute {
			t.Errorf("assertion %d: header %v claims %+v", i, tok.Header, claims)
		}
	}
	if a, b := tokenForm(t, e.fg, 0).Get("client_assertion"), tokenForm(t, e.fg, 1).Get("client_assertion"); a == b {
		t.Error("the same assertion twice")
	}

	// PKCS#1 works too; a certificate the emulator does not know is
	// refused, not retried.
	other := newTestCert(t)
	p1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other.key)})
	bad := newEnv(t, emulator.Options{ClientCertificate: tc.cert}, func(c *Config) {
		c.ClientSecret = ""
		c.ClientCertificateFile = writeFile(t, "other.pem", other.certPEM, p1)
	})
	_, meta, err := bad.c.CreateCall(bg, validCall())
	var te *TokenError
	if !errors.As(err, &te) || te.StatusCode != 401 || te.Code != "invalid_client" || Retryable(err) || meta.Attempts != 1 {
		t.Errorf("wrong key: %v after %d attempts, want 401 invalid_client once", err, meta.Attempts)
	}
	assertNotLogged(t, e.logs.String()+bad.logs.String(), e.fg, bad.fg)
	for _, l := range []string{e.logs.String(), bad.logs.String()} {
		if strings.Contains(l, "PRIVATE KEY") {
			t.Error("log mentions the private key")
		}
	}
}

func TestCertificateFileErrors(t *testing.T) {
	tc := newTestCert(t)
	other := newTestCert(t)
	keyBody := strings.Split(string(tc.keyPEM), "\n")[1]
	enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")})
	ec := []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n-----END PRIVATE KEY-----\n")
	cases := map[string]struct {
		path string
		want string
	}{
		"missing":     {filepath.Join(t.TempDir(), "none.pem"), "no such file"},
		"not PEM":     {writeFile(t, "a.pem", []byte("hello")), "no PEM certificate or private key"},
		"garbled":     {writeFile(t, "b.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), tc.keyPEM), "certificate does not parse"},
		"garbled key": {writeFile(t, "c.pem", tc.certPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")), "private key does not parse"},
		"no key":      {writeFile(t, "d.pem", tc.certPEM), "no private key"},
		"no cert":     {writeFile(t, "e.pem", tc.keyPEM), "no certificate"},
		"other key":   {writeFile(t, "f.pem", tc.certPEM, other.keyPEM), "does not belong"},
		"encrypted":   {writeFile(t, "g.pem", tc.certPEM, enc), "encrypted"},
		"not RSA":     {writeFile(t, "h.pem", tc.certPEM, ec), "not RSA"},
	}
	for name, c := range cases {
		_, err := New(withTunables(Config{TenantID: "t", ClientID: "c", ClientCertificateFile: c.path}), zerolog.Nop(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "client certificate file") {
			t.Errorf("%s: %v, want %q", name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), keyBody) || strings.Contains(err.Error(), "MII") {
			t.Errorf("%s: key material in %v", name, err)
		}
	}
}

func federatedJWT(t *testing.T, key *rsa.PrivateKey, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: "https://oidc.example.test/cluster", Subject: sub, Audience: jwt.ClaimStrings{emulator.FederatedAudience},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFederatedTokenFileReread: the file is read on every fetch, so a
// token the kubelet rotated in is the one sent.
func TestFederatedTokenFileReread(t *testing.T) {
	issuer := newTestCert(t)
	first := federatedJWT(t, issuer.key, "system:serviceaccount:botd:one")
	second := federatedJWT(t, issuer.key, "system:serviceaccount:botd:two")
	path := writeFile(t, "token", []byte(first+"\n"))
	e := newEnv(t, emulator.Options{FederatedIssuerKey: &issuer.key.PublicKey, TokenTTL: time.Second}, func(c *Config) {
		c.ClientSecret = ""
		c.FederatedTokenFile = path
	})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{first, second} {
		f := tokenForm(t, e.fg, i)
		if f.Get("client_assertion") != want || f.Get("client_assertion_type") != ClientAssertionType || f.Has("client_secret") {
			t.Errorf("token request %d: form %v, want the file's token of then", i, f)
		}
	}

	// A token the issuer did not sign is refused; a file gone is an error
	// naming the file, and nothing is sent.
	if err := os.WriteFile(path, []byte(federatedJWT(t, newTestCert(t).key, "x")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.KeepAlive(bg, id)
	var te *TokenError
	if !errors.As(err, &te) || te.StatusCode != 401 || te.Code != "invalid_client" {
		t.Errorf("foreign federated token: %v, want 401 invalid_client", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	before := e.fg.TokenFetches()
	_, err = e.c.KeepAlive(bg, id)
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "federated token file") {
		t.Errorf("file gone: %v", err)
	}
	if e.fg.TokenFetches() != before {
		t.Error("a token request was sent without an assertion")
	}
	assertNotLogged(t, e.logs.String(), e.fg)

	if _, err := New(withTunables(Config{TenantID: "t", ClientID: "c", FederatedTokenFile: path}), zerolog.Nop(), nil); err == nil ||
		!strings.Contains(err.Error(), "federated token file") {
		t.Errorf("New with a missing federated token file: %v", err)
	}
}

func TestExactlyOneCredential(t *testing.T) {
	tc := newTestCert(t)
	certFile := writeFile(t, "c.pem", tc.certPEM, tc.keyPEM)
	fedFile := writeFile(t, "t", []byte("x.y.z"))
	for name, cfg := range map[string]Config{
		"none":               {},
		"secret and cert":    {ClientSecret: "s", ClientCertificateFile: certFile},
		"cert and federated": {ClientCertificateFile: certFile, FederatedTokenFile: fedFile},
	} {
		cfg.TenantID, cfg.ClientID = "t", "c"
		if _, err := New(withTunables(cfg), zerolog.Nop(), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "credential") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, cfg := range map[string]Config{
		"cert":      {ClientCertificateFile: certFile},
		"federated": {FederatedTokenFile: fedFile},
	} {
		cfg.TenantID, cfg.ClientID = "t", "c"
		if _, err := New(withTunables(cfg), zerolog.Nop(), prometheus.NewRegistry()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	s := Config{ClientSecret: "hunter2", ClientCertificateFile: certFile, FederatedTokenFile: fedFile}.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, certFile) || !strings.Contains(s, fedFile) {
		t.Errorf("String() = %s", s)
	}
}

// assertNotLogged checks that no client assertion, secret or access
// token the emulators saw reaches the log.
func assertNotLogged(t *testing.T, logs string, fgs ...*emulator.Server) {
	t.Helper()
	for _, fg := range fgs {
		for i := range fg.Requests(emulator.RouteToken) {
			f := tokenForm(t, fg, i)
			for _, k := range []string{"client_assertion", "client_secret"} {
				if v := f.Get(k); v != "" && v != "[REDACTED]" && strings.Contains(logs, v) {
					t.Errorf("log contains the %s", k)
				}
			}
		}
		for _, r := range fg.GraphRequests() {
			if tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "); tok != "" && strings.Contains(logs, tok) {
				t.Error("log contains an access token")
			}
		}
	}
	if !strings.Contains(logs, `"component":"graph"`) {
		t.Error("nothing logged: the check proves nothing")
	}
}

// TestCertificateFileRotation: a rewritten certificate file is used from
// the next token request on.
func TestCertificateFileRotation(t *testing.T) {
	a, b := newTestCert(t), newTestCert(t)
	path := writeFile(t, "cert.pem", a.certPEM, a.keyPEM)
	e := newEnv(t, emulator.Options{ClientCertificate: a.cert, TokenTTL: time.Second}, func(c *Config) {
		c.ClientSecret = ""
		c.ClientCertificateFile = path
	})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	rewrite := func(parts ...[]byte) {
		t.Helper()
		if err := os.WriteFile(path, append(append([]byte(nil), parts[0]...), parts[1]...), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(b.certPEM, b.keyPEM)
	// The emulator still knows a only: b's assertion is refused, which
	// shows b was used.
	_, err := e.c.KeepAlive(bg, id)
	var te *TokenError
	if !errors.As(err, &te) || te.StatusCode != 401 {
		t.Fatalf("after rotation to an unregistered certificate: %v, want 401", err)
	}
	signedBy := func(i int, k *rsa.PrivateKey) bool {
		_, err := jwt.Parse(tokenForm(t, e.fg, i).Get("client_assertion"), func(*jwt.Token) (any, error) { return &k.PublicKey, nil })
		return err == nil
	}
	if !signedBy(0, a.key) || !signedBy(1, b.key) {
		t.Error("assertions not signed by the certificate of the time")
	}
	rewrite(b.certPEM, []byte("garbage"))
	if _, err := e.c.KeepAlive(bg, id); err == nil || !strings.Contains(err.Error(), "client certificate file") {
		t.Errorf("broken rotated file: %v", err)
	}
}

package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func testCert(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "botd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func certAssertion(t *testing.T, key *rsa.PrivateKey, cert *x509.Certificate, clientID, aud string, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{aud}, ID: uuid.NewString(),
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(exp),
	})
	sum := sha1.Sum(cert.Raw)
	tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func federatedJWT(t *testing.T, key *rsa.PrivateKey, sub, aud string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: "https://oidc.example.test/cluster", Subject: sub, Audience: jwt.ClaimStrings{aud},
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenEndpointCredentialForms(t *testing.T) {
	key, cert := testCert(t)
	otherKey, otherCert := testCert(t)
	fedKey, _ := testCert(t)
	s := start(t, Options{
		ClientCertificate: cert, FederatedIssuerKey: &fedKey.PublicKey,
		Tenants: []string{"8a1c2b3d-0000-4000-8000-000000000001"},
	})
	o := s.Options()
	other := "8a1c2b3d-0000-4000-8000-000000000001"
	soon := time.Now().Add(5 * time.Minute)
	assertionForm := func(a string) url.Values {
		return url.Values{
			"grant_type": {"client_credentials"}, "client_id": {o.ClientID}, "scope": {"https://graph.microsoft.com/.default"},
			"client_assertion_type": {ClientAssertionType}, "client_assertion": {a},
		}
	}
	withType := assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURL(), soon))
	withType.Set("client_assertion_type", "urn:other")
	withSecret := assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURL(), soon))
	withSecret.Set("client_secret", o.ClientSecret)
	cases := []struct {
		name   string
		url    string
		form   url.Values
		status int
		desc   string
	}{
		{"secret", s.TokenURL(), tokenForm(o), 200, ""},
		{"certificate", s.TokenURL(), assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURL(), soon)), 200, ""},
		{"certificate, other tenant", s.TokenURLFor(other), assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURLFor(other), soon)), 200, ""},
		{"federated", s.TokenURL(), assertionForm(federatedJWT(t, fedKey, "system:serviceaccount:botd:botd", FederatedAudience, soon)), 200, ""},
		{"no credential", s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {o.ClientID}, "scope": {"https://graph.microsoft.com/.default"}}, 401, "AADSTS7000218"},
		{"wrong key", s.TokenURL(), assertionForm(certAssertion(t, otherKey, cert, o.ClientID, s.TokenURL(), soon)), 401, "AADSTS700027"},
		{"unknown certificate", s.TokenURL(), assertionForm(certAssertion(t, otherKey, otherCert, o.ClientID, s.TokenURL(), soon)), 401, "AADSTS700027"},
		{"expired", s.TokenURL(), assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURL(), time.Now().Add(-time.Minute))), 401, "AADSTS700024"},
		{"audience of another tenant", s.TokenURL(), assertionForm(certAssertion(t, key, cert, o.ClientID, s.TokenURLFor(other), soon)), 401, "AADSTS700016"},
		{"garbage", s.TokenURL(), assertionForm("not.a.jwt"), 401, "AADSTS50027"},
		{"wrong type", s.TokenURL(), withType, 400, "AADSTS700021"},
		{"secret and assertion", s.TokenURL(), withSecret, 400, "AADSTS50027"},
		{"federated, wrong key", s.TokenURL(), assertionForm(federatedJWT(t, otherKey, "sa", FederatedAudience, soon)), 401, "AADSTS700027"},
		{"federated, wrong audience", s.TokenURL(), assertionForm(federatedJWT(t, fedKey, "sa", "api://other", soon)), 401, "AADSTS700212"},
		{"federated, no subject", s.TokenURL(), assertionForm(federatedJWT(t, fedKey, "", FederatedAudience, soon)), 401, "AADSTS70021"},
		{"federated, expired", s.TokenURL(), assertionForm(federatedJWT(t, fedKey, "sa", FederatedAudience, time.Now().Add(-time.Minute))), 401, "AADSTS700024"},
		{"unknown tenant", s.URL() + "/8a1c2b3d-0000-4000-8000-000000000002/oauth2/v2.0/token", tokenForm(o), 400, "AADSTS90002"},
	}
	for _, c := range cases {
		res, err := http.PostForm(c.url, c.form)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d (%v)", c.name, res.StatusCode, c.status, body)
			continue
		}
		if c.status == 200 {
			tok, _ := body["access_token"].(string)
			want := o.TenantID
			if strings.Contains(c.url, other) {
				want = other
			}
			if got := s.TokenTenant(tok); got != want {
				t.Errorf("%s: TokenTenant = %q, want %q", c.name, got, want)
			}
			continue
		}
		if desc, _ := body["error_description"].(string); !strings.HasPrefix(desc, c.desc) {
			t.Errorf("%s: %v, want %s", c.name, body, c.desc)
		}
		if c.status == 401 && body["error"] != "invalid_client" {
			t.Errorf("%s: error %v, want invalid_client", c.name, body["error"])
		}
	}
	if s.TokenTenant("made-up") != "" || s.TokenTenant("fake-x.y") != "" {
		t.Error("TokenTenant answers for a token it did not issue")
	}
}

func TestTokenEndpointRefusesAssertionsWithoutKeys(t *testing.T) {
	key, cert := testCert(t)
	s := start(t, Options{})
	o := s.Options()
	for name, a := range map[string]string{
		"certificate": certAssertion(t, key, cert, o.ClientID, s.TokenURL(), time.Now().Add(time.Minute)),
		"federated":   federatedJWT(t, key, "sa", FederatedAudience, time.Now().Add(time.Minute)),
	} {
		res, err := http.PostForm(s.TokenURL(), url.Values{
			"grant_type": {"client_credentials"}, "client_id": {o.ClientID}, "scope": {"https://graph.microsoft.com/.default"},
			"client_assertion_type": {ClientAssertionType}, "client_assertion": {a},
		})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("%s assertion with no key configured: %d, want 401", name, res.StatusCode)
		}
	}
}

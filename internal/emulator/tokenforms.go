package emulator

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Client assertion constants (RFC 7523, Entra ID workload identity).
const (
	// ClientAssertionType is the client_assertion_type the token endpoint
	// accepts.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// FederatedAudience is the audience a federated token must carry.
	FederatedAudience = "api://AzureADTokenExchange"
)

// TokenURLFor is the token endpoint of tenant.
func (s *Server) TokenURLFor(tenant string) string {
	return s.URL() + "/" + tenant + "/oauth2/v2.0/token"
}

// TokenTenant returns the tenant an access token the emulator issued is
// of, or "" for a string it did not issue. It also answers for tokens
// since expired or revoked.
func (s *Server) TokenTenant(token string) string {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(token, "Bearer "), "fake-")
	if !ok {
		return ""
	}
	id, tenant, ok := strings.Cut(rest, ".")
	if _, err := uuid.Parse(id); !ok || err != nil || len(id) != 36 {
		return ""
	}
	return tenant
}

// RequestTenant is the tenant of the bearer token a recorded request
// carried ("" if none).
func (s *Server) RequestTenant(r Request) string {
	return s.TokenTenant(r.Header.Get("Authorization"))
}

// newAccessToken makes an access token of tenant; the caller stores it.
func newAccessToken(tenant string) string { return "fake-" + uuid.NewString() + "." + tenant }

// acceptsTenant reports whether the token endpoint serves tenant.
// AnyTenant in Options.Tenants makes the token endpoint issue tokens for
// any tenant: a multi-tenant app consented in every tenant.
const AnyTenant = "*"

func (s *Server) acceptsTenant(tenant string) bool {
	eq := func(t string) bool { return strings.EqualFold(t, tenant) }
	return eq(s.opts.TenantID) || slices.ContainsFunc(s.opts.Tenants, func(t string) bool { return t == AnyTenant || eq(t) })
}

// tokenRefusal is how the token endpoint refuses a credential.
type tokenRefusal struct {
	status     int
	code, desc string
}

// checkCredential checks the client's credential: the secret, or a
// client assertion, certificate-signed (iss = sub = client id, checked
// against Options.ClientCertificate) or federated (any other issuer,
// checked against Options.FederatedIssuerKey, aud FederatedAudience).
func (s *Server) checkCredential(r *http.Request, clientID, secret string) *tokenRefusal {
	assertion := r.PostForm.Get("client_assertion")
	invalid := func(desc string) *tokenRefusal {
		return &tokenRefusal{http.StatusUnauthorized, "invalid_client", desc}
	}
	switch {
	case assertion == "" && secret == "":
		return invalid("AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case assertion == "":
		if secret != s.opts.ClientSecret {
			return invalid("AADSTS7000215: Invalid client secret provided.")
		}
		return nil
	case secret != "":
		return &tokenRefusal{http.StatusBadRequest, "invalid_request", "AADSTS50027: Only one of client_secret and client_assertion may be given."}
	case r.PostForm.Get("client_assertion_type") != ClientAssertionType:
		return &tokenRefusal{http.StatusBadRequest, "invalid_request", "AADSTS700021: client_assertion_type must be " + ClientAssertionType + "."}
	}
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &unverified); err != nil {
		return invalid("AADSTS50027: JWT token is invalid or malformed.")
	}
	if unverified.Issuer == clientID {
		return s.checkCertificateAssertion(r, clientID, assertion)
	}
	return s.checkFederatedAssertion(assertion)
}

func (s *Server) checkCertificateAssertion(r *http.Request, clientID, assertion string) *tokenRefusal {
	invalid := func(desc string) *tokenRefusal {
		return &tokenRefusal{http.StatusUnauthorized, "invalid_client", desc}
	}
	cert := s.opts.ClientCertificate
	if cert == nil {
		return invalid("AADSTS700027: Client assertion failed signature validation. (no certificate registered for the application)")
	}
	sha1Sum, sha256Sum := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
	x5t := base64.RawURLEncoding.EncodeToString(sha1Sum[:])
	x5t256 := base64.RawURLEncoding.EncodeToString(sha256Sum[:])
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		h1, _ := t.Header["x5t"].(string)
		h256, _ := t.Header["x5t#S256"].(string)
		if h1 != x5t && h256 != x5t256 {
			return nil, errors.New("unknown key")
		}
		return cert.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithIssuer(clientID), jwt.WithSubject(clientID),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.opts.Now))
	if err != nil {
		return assertionRefusal(err)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	want := []string{scheme + "://" + r.Host + r.URL.Path, s.TokenURLFor(r.PathValue("tenant"))}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(want, a) }) {
		return invalid("AADSTS700016: The audience of the client assertion is not the token endpoint.")
	}
	if claims.ID == "" {
		return invalid("AADSTS700023: Client assertion has no jti.")
	}
	return nil
}

func (s *Server) checkFederatedAssertion(assertion string) *tokenRefusal {
	key := s.opts.FederatedIssuerKey
	if key == nil {
		return &tokenRefusal{http.StatusUnauthorized, "invalid_client", "AADSTS70021: No matching federated identity record found for presented assertion."}
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithAudience(FederatedAudience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.opts.Now))
	if err != nil {
		return assertionRefusal(err)
	}
	if claims.Subject == "" {
		return &tokenRefusal{http.StatusUnauthorized, "invalid_client", "AADSTS70021: No matching federated identity record found for presented assertion subject."}
	}
	return nil
}

// assertionRefusal maps a JWT check failure to Entra's answer.
func assertionRefusal(err error) *tokenRefusal {
	desc := "AADSTS50027: JWT token is invalid or malformed."
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		desc = "AADSTS700024: Client assertion is not within its valid time range."
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		desc = "AADSTS700027: Client assertion failed signature validation."
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		desc = "AADSTS700212: No matching federated identity record found for presented assertion audience."
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		desc = "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter."
	}
	return &tokenRefusal{http.StatusUnauthorized, "invalid_client", desc}
}

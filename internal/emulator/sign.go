package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Callback authentication, as Graph does it for calling bots: each
// callback carries "Authorization: Bearer <JWT>", an RS256 token whose
// header names the signing key (kid), issued by https://api.botframework.com
// for the bot's app id, and whose keys are published through an OpenID
// configuration (Graph's is
// https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration).
const (
	// CallbackIssuer is the iss of the callbacks' JWTs.
	CallbackIssuer = "https://api.botframework.com"
	openIDPath     = "/v1/.well-known/OpenIdConfiguration"
	jwksPath       = "/v1/keys"
	// tokenRefresh is how long before expiry a callback token is
	// replaced; until then every callback reuses it.
	tokenRefresh = 5 * time.Minute
	keyBits      = 2048
)

// signingKey returns the key, generating it on first use. Callers hold
// s.signMu.
func (s *Server) signingKeyLocked() (*rsa.PrivateKey, error) {
	if s.key == nil {
		k, err := rsa.GenerateKey(rand.Reader, keyBits)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		s.key, s.kid = k, keyID(&k.PublicKey)
	}
	return s.key, nil
}

// callbackToken returns the JWT for the next callback: the cached one
// while it has more than 5 minutes left, else a new one.
func (s *Server) callbackToken() (string, error) {
	tok, _, err := s.callbackTokenExp()
	return tok, err
}

// callbackTokenExp is callbackToken with the token's expiry.
func (s *Server) callbackTokenExp() (string, time.Time, error) {
	s.signMu.Lock()
	defer s.signMu.Unlock()
	now := s.opts.Now()
	if s.cbToken != "" && now.Before(s.cbExp.Add(-tokenRefresh)) {
		return s.cbToken, s.cbExp, nil
	}
	key, err := s.signingKeyLocked()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(s.opts.CallbackTokenTTL)
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": CallbackIssuer,
		"aud": s.opts.ClientID,
		"tid": s.opts.TenantID,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": exp.Unix(),
	})
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign callback token: %w", err)
	}
	s.cbToken, s.cbExp = signed, exp
	return signed, exp, nil
}

// keyID is the RFC 7638 thumbprint of an RSA public key.
func keyID(k *rsa.PublicKey) string {
	canon := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// baseURL is scheme://host of the request, so that the OpenID
// configuration names the JWKS at the address the client used.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) handleOpenID(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                CallbackIssuer,
		"authorization_endpoint":                "https://invalid.botframework.com",
		"jwks_uri":                              baseURL(r) + jwksPath,
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	s.signMu.Lock()
	key, err := s.signingKeyLocked()
	kid := s.kid
	s.signMu.Unlock()
	if err != nil {
		s.graphError(w, r, http.StatusInternalServerError, "generalException", err.Error())
		return
	}
	pub := key.PublicKey
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": kid,
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// handleCallbackToken answers GET /emulator/callback-token with
// {"token": ..., "expiresAt": ...}: the JWT the emulator's own callbacks
// carry now, which botd in emulator mode accepts. A load generator posts
// notifications with it, reusing one token as Graph does. The emulator
// listens on loopback only, so this hands out nothing Graph would.
func (s *Server) handleCallbackToken(w http.ResponseWriter, r *http.Request) {
	tok, exp, err := s.callbackTokenExp()
	if err != nil {
		s.graphError(w, r, http.StatusInternalServerError, "InternalServerError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expiresAt": exp.UTC().Format(time.RFC3339)})
}

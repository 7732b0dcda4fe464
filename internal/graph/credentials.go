package graph

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2/clientcredentials"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523), certificate-signed or federated.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a certificate-signed assertion is valid.
const assertionLifetime = 10 * time.Minute

type credentialKind int

const (
	credSecret credentialKind = iota
	credCertificate
	credFederated
)

// credential is how the client proves its identity to the token
// endpoint. Its values never reach a log or an error text.
type credential struct {
	kind   credentialKind
	secret string
	// certificate: mu guards cert, which is loaded again when the file
	// changes (a rotated certificate)
	mu   sync.Mutex
	cert *certKey
	// federated, or the certificate's PEM
	file string
	now  func() time.Time
}

// certKey is a loaded certificate and its key.
type certKey struct {
	key     *rsa.PrivateKey
	x5t     string // base64url SHA-1 thumbprint of the certificate's DER
	x5tS256 string
	modTime time.Time
	size    int64
}

// checkCredentials requires exactly one credential.
func checkCredentials(cfg Config) error {
	n := 0
	for _, v := range []string{cfg.ClientSecret, cfg.ClientCertificateFile, cfg.FederatedTokenFile} {
		if v != "" {
			n++
		}
	}
	switch n {
	case 0:
		return errors.New("a credential is required: client secret, client certificate file or federated token file")
	case 1:
		return nil
	}
	return errors.New("give exactly one credential: client secret, client certificate file or federated token file")
}

// loadCredential reads the credential files: the certificate's PEM once,
// the federated token file to check it is readable (it is read again on
// every fetch).
func loadCredential(cfg Config, now func() time.Time) (*credential, error) {
	switch {
	case cfg.ClientCertificateFile != "":
		ck, err := loadCertificate(cfg.ClientCertificateFile)
		if err != nil {
			return nil, err
		}
		return &credential{kind: credCertificate, cert: ck, file: cfg.ClientCertificateFile, now: now}, nil
	case cfg.FederatedTokenFile != "":
		c := &credential{kind: credFederated, file: cfg.FederatedTokenFile, now: now}
		if _, err := c.federatedToken(); err != nil {
			return nil, err
		}
		return c, nil
	}
	return &credential{kind: credSecret, secret: cfg.ClientSecret, now: now}, nil
}

// loadCertificate reads the PEM file: the first certificate (the rest is
// its chain) and the RSA private key that belongs to it.
func loadCertificate(path string) (*certKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("client certificate file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client certificate file: %w", err)
	}
	bad := func(why string) error { return fmt.Errorf("client certificate file %q: %s", path, why) }
	var (
		cert *x509.Certificate
		key  *rsa.PrivateKey
	)
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if cert != nil {
				continue // the chain: the first is the application's
			}
			if cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
				return nil, bad("the certificate does not parse")
			}
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, bad("the private key does not parse (want unencrypted PKCS#8 or PKCS#1)")
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, bad("the private key is not RSA")
			}
			key = rk
		case "RSA PRIVATE KEY":
			if _, encrypted := blk.Headers["DEK-Info"]; encrypted {
				return nil, bad("the private key is encrypted")
			}
			if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
				return nil, bad("the private key does not parse (want unencrypted PKCS#8 or PKCS#1)")
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, bad("the private key is encrypted")
		}
	}
	switch {
	case cert == nil && key == nil:
		return nil, bad("no PEM certificate or private key found")
	case cert == nil:
		return nil, bad("no certificate found (want the certificate and its private key)")
	case key == nil:
		return nil, bad("no private key found (want the certificate and its private key)")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, bad("the private key does not belong to the certificate")
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	return &certKey{
		key:     key,
		x5t:     base64.RawURLEncoding.EncodeToString(s1[:]),
		x5tS256: base64.RawURLEncoding.EncodeToString(s256[:]),
		modTime: fi.ModTime(),
		size:    fi.Size(),
	}, nil
}

// currentCert returns the certificate, loading the file again when it
// changed since (size or modification time): a rotated certificate is
// used from the next token request on. A file that fails to load then
// fails the token request, with the error New would give.
func (c *credential) currentCert() (*certKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(c.file)
	if err != nil {
		return nil, fmt.Errorf("client certificate file: %w", err)
	}
	if fi.Size() == c.cert.size && fi.ModTime().Equal(c.cert.modTime) {
		return c.cert, nil
	}
	ck, err := loadCertificate(c.file)
	if err != nil {
		return nil, err
	}
	c.cert = ck
	return ck, nil
}

// apply sets the credential on one token request's config.
func (c *credential) apply(cc *clientcredentials.Config) error {
	var assertion string
	switch c.kind {
	case credSecret:
		cc.ClientSecret = c.secret
		return nil
	case credCertificate:
		a, err := c.signAssertion(cc.ClientID, cc.TokenURL)
		if err != nil {
			return err
		}
		assertion = a
	case credFederated:
		a, err := c.federatedToken()
		if err != nil {
			return err
		}
		assertion = a
	}
	cc.EndpointParams = url.Values{
		"client_assertion_type": {ClientAssertionType},
		"client_assertion":      {assertion},
	}
	return nil
}

// signAssertion builds Entra ID's certificate client assertion for one
// token request to tokenURL.
func (c *credential) signAssertion(clientID, tokenURL string) (string, error) {
	ck, err := c.currentCert()
	if err != nil {
		return "", err
	}
	now := c.now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{tokenURL},
		ID:        uuid.NewString(),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)),
	})
	t.Header["x5t"] = ck.x5t
	t.Header["x5t#S256"] = ck.x5tS256
	s, err := t.SignedString(ck.key)
	if err != nil {
		return "", errors.New("sign client assertion failed")
	}
	return s, nil
}

// federatedToken reads the federated token file, as it is now.
func (c *credential) federatedToken() (string, error) {
	b, err := os.ReadFile(c.file)
	if err != nil {
		return "", fmt.Errorf("federated token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("federated token file %q is empty", c.file)
	}
	return tok, nil
}

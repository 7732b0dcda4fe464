package auth

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/botd/botd/internal/netx"
)

// maxDocBytes bounds the OpenID metadata and the JWKS. Microsoft's are a few
// KiB.
const maxDocBytes = 1 << 20

// minRSABits refuses toy keys should a key set ever carry one.
const minRSABits = 2048

const (
	triggerStart      = "start"
	triggerPeriodic   = "periodic"
	triggerUnknownKID = "unknown_kid"
)

// errNoKID marks a token without a string kid header. Microsoft's tokens
// always name their key; without a kid golang-jwt would try every key,
// multiplying the cost of a hostile token by the size of the key set.
var errNoKID = errors.New("token has no kid header")

// keySet is one fetched generation of Microsoft's signing keys. It is
// immutable; a refresh swaps in a new one.
type keySet struct {
	kf      keyfunc.Keyfunc
	kids    map[string]struct{}
	jwksURI string
}

// keyFor is the jwt.Keyfunc. A nil keySet (nothing loaded yet) knows no key,
// so a well-formed token is refused as unknown_key and may trigger a fetch.
func (ks *keySet) keyFor(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errNoKID
	}
	if ks == nil {
		return nil, jwkset.ErrKeyNotFound
	}
	return ks.kf.Keyfunc(t)
}

// withdrew reports whether next lacks a key that ks had.
func (ks *keySet) withdrew(next *keySet) bool {
	for kid := range ks.kids {
		if _, ok := next.kids[kid]; !ok {
			return true
		}
	}
	return false
}

type openIDMetadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// refresh fetches the OpenID metadata, then the key set its jwks_uri names,
// and swaps it in. On failure the keys in use stay. Fetches are serialised.
func (v *Verifier) refresh(ctx context.Context, trigger string) error {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	ks, md, skipped, err := v.fetchKeys(ctx)
	if err != nil {
		v.m.refreshes.WithLabelValues(trigger, "error").Inc()
		v.log.Warn().Err(err).Str("trigger", trigger).Str("metadata_url", v.cfg.MetadataURL).Msg("signing key refresh failed; keeping the keys in use")
		return err
	}
	old := v.keys.Swap(ks)
	if old != nil && old.withdrew(ks) {
		// A token signed with a withdrawn key must not live on in the cache.
		v.cache.purge()
	}
	v.m.refreshes.WithLabelValues(trigger, "ok").Inc()
	v.m.keys.Set(float64(len(ks.kids)))
	v.m.lastLoaded.Set(float64(v.now().Unix()))
	v.log.Info().Str("trigger", trigger).Int("keys", len(ks.kids)).Int("skipped", skipped).Str("jwks_uri", ks.jwksURI).Msg("signing keys loaded")
	if _, ok := v.issuers[md.Issuer]; md.Issuer != "" && !ok {
		v.log.Warn().Str("metadata_issuer", md.Issuer).Strs("accepted_issuers", v.cfg.Issuers).Msg("the OpenID metadata names an issuer botd does not accept; check the configured issuers")
	}
	return nil
}

func (v *Verifier) fetchKeys(ctx context.Context) (*keySet, openIDMetadata, int, error) {
	var md openIDMetadata
	if err := v.getJSON(ctx, v.cfg.MetadataURL, &md); err != nil {
		return nil, md, 0, fmt.Errorf("fetch OpenID metadata: %w", err)
	}
	if err := checkFetchURL(md.JWKSURI); err != nil {
		return nil, md, 0, fmt.Errorf("OpenID metadata jwks_uri %q: %w", md.JWKSURI, err)
	}
	var set jwkset.JWKSMarshal
	if err := v.getJSON(ctx, md.JWKSURI, &set); err != nil {
		return nil, md, 0, fmt.Errorf("fetch signing keys: %w", err)
	}
	ks, skipped, err := buildKeySet(set)
	if err != nil {
		return nil, md, skipped, fmt.Errorf("signing keys from %s: %w", md.JWKSURI, err)
	}
	ks.jwksURI = md.JWKSURI
	return ks, md, skipped, nil
}

// buildKeySet keeps the RSA signature keys of a JWKS, each with a kid and
// at least 2048 bits, checked by jwkset (an x5c certificate, when present,
// must hold the same public key). Other keys are skipped and counted: a
// key type botd cannot use must not make the whole set unusable.
func buildKeySet(set jwkset.JWKSMarshal) (*keySet, int, error) {
	store := jwkset.NewMemoryStorage()
	kids := make(map[string]struct{}, len(set.Keys))
	skipped := 0
	for _, m := range set.Keys {
		if m.KTY != jwkset.KtyRSA || m.KID == "" ||
			(m.USE != "" && m.USE != jwkset.UseSig) ||
			(m.ALG != "" && m.ALG != jwkset.AlgRS256) {
			skipped++
			continue
		}
		if _, dup := kids[m.KID]; dup {
			skipped++
			continue
		}
		// JWKMarshalOptions{} leaves out private parts, should a set carry them.
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped++
			continue
		}
		pub, ok := jwk.Key().(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < minRSABits {
			skipped++
			continue
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			return nil, skipped, err
		}
		kids[m.KID] = struct{}{}
	}
	if len(kids) == 0 {
		return nil, skipped, fmt.Errorf("no usable RS256 signing key among %d keys", len(set.Keys))
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, skipped, err
	}
	return &keySet{kf: kf, kids: kids}, skipped, nil
}

func (v *Verifier) getJSON(ctx context.Context, u string, dst any) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocBytes))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if len(body) > maxDocBytes {
		return fmt.Errorf("GET %s: body larger than %d bytes", u, maxDocBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return nil
}

// checkFetchURL accepts https URLs, and plain http to a loopback host only
// (a fake Microsoft in tests or local runs): keys fetched in clear text from
// anywhere else could be swapped by anyone on the path.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && netx.IsLoopbackHost(u.Hostname()):
		return nil
	}
	return errors.New("must be https (plain http only to a loopback host)")
}

// defaultClient is bounded in time and redirects: it never follows one to a
// URL checkFetchURL would refuse.
func defaultClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return checkFetchURL(req.URL.String())
		},
	}
}

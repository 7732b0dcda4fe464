package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/botd/botd/internal/cloud"
	"github.com/botd/botd/internal/netx"
	"github.com/botd/botd/internal/tunable"
)

// The documented values of Config's tunables, as DefaultConfig returns
// them. New applies none of them: a zero or negative RequestTimeout,
// RetryBudget, BackoffInitial, BackoffMax or MaxTenants is refused, and
// MaxRetries 0 means no retries. The config layer's BOTD_GRAPH_* defaults
// are the same values.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryBudget    = 30 * time.Second
	DefaultMaxRetries     = 4
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 8 * time.Second
	DefaultMaxTenants     = 100
)

// DefaultConfig returns a Config with every tunable at its Default* value
// and nothing else set: a caller adds the tenant, the client id and one
// credential.
func DefaultConfig() Config {
	return Config{
		MaxTenants:     DefaultMaxTenants,
		RequestTimeout: DefaultRequestTimeout,
		RetryBudget:    DefaultRetryBudget,
		MaxRetries:     DefaultMaxRetries,
		BackoffInitial: DefaultBackoffInitial,
		BackoffMax:     DefaultBackoffMax,
	}
}

// Config configures a Client. The credentials and every tunable
// (MaxTenants, RequestTimeout, RetryBudget, MaxRetries, BackoffInitial,
// BackoffMax) are required: New never fills one in, and refuses a zero or
// negative one except MaxRetries 0 (no retries); DefaultConfig has the
// documented values. Empty Cloud, BaseURL, TokenURL and Scope mean the
// global cloud and that cloud's preset URLs and scope. Pointing the client
// at a fake Graph is a matter of BaseURL and TokenURL.
type Config struct {
	// Cloud selects the national cloud preset: "global" (default), "usgov"
	// (US Government L4) or "dod" (US Government L5). "china" is refused:
	// the calls API is not offered there.
	Cloud string

	// TenantID is the default tenant: the one CheckToken asks a token
	// for, and the one a request whose context names no tenant (see
	// WithTenant) acts in.
	TenantID string
	ClientID string

	// Credentials: exactly one of ClientSecret, ClientCertificateFile and
	// FederatedTokenFile.
	//
	// ClientSecret is the application's client secret.
	ClientSecret string
	// ClientCertificateFile is a PEM file holding the application's
	// certificate and its RSA private key (unencrypted PKCS#1 or PKCS#8).
	// New reads it (and fails on a file it cannot use); it is read again
	// when it changes (a rotated certificate). Each token request sends a
	// fresh client assertion signed with the key (RS256, x5t and x5t#S256 naming
	// the certificate, aud the token URL, iss and sub the client id,
	// valid 10 minutes).
	ClientCertificateFile string
	// FederatedTokenFile is a file holding a JWT from a trusted issuer
	// (AZURE_FEDERATED_TOKEN_FILE, as Azure workload identity projects it
	// into a Kubernetes pod). It is read again on every token request, so
	// that the kubelet's rotation is picked up, and sent as the client
	// assertion.
	FederatedTokenFile string

	// MaxTenants bounds the tenants with a cached token source (required,
	// DefaultMaxTenants 100; the default tenant included, which is never
	// evicted; at least one other tenant is cached; the least recently
	// used is evicted).
	MaxTenants int

	// BaseURL overrides the preset's Graph base, e.g.
	// https://graph.microsoft.com/v1.0. Plain http is accepted for loopback
	// hosts only (a fake Graph in tests).
	BaseURL string
	// TokenURL overrides the preset's
	// {login}/{tenant}/oauth2/v2.0/token. The URL of another tenant than
	// TenantID is derived from it: a literal "{tenant}" placeholder is
	// replaced by the tenant id; without one, the first path segment equal
	// to TenantID is; an override with neither serves TenantID only.
	TokenURL string
	// Scope overrides the preset's Graph origin + "/.default"; empty means
	// the preset's (derived from Cloud, as BaseURL and TokenURL are).
	Scope string

	// RequestTimeout bounds each attempt (required; DefaultRequestTimeout
	// 10s).
	RequestTimeout time.Duration
	// RetryBudget bounds the time spent retrying one call (required;
	// DefaultRetryBudget 30s): no retry is started whose wait would end
	// past it.
	RetryBudget time.Duration
	// MaxRetries is the number of retries after the first attempt. 0 means
	// no retries, as BOTD_GRAPH_MAX_RETRIES=0 says; a negative value is
	// refused. The config layer passes its default (DefaultMaxRetries)
	// explicitly, so an unset field is never turned into retries.
	MaxRetries int
	// BackoffInitial and BackoffMax shape the capped exponential backoff
	// with jitter used when Graph gives no Retry-After (required,
	// BackoffMax at least BackoffInitial; DefaultBackoffInitial 500ms,
	// DefaultBackoffMax 8s).
	BackoffInitial time.Duration
	BackoffMax     time.Duration

	// Transport is the base round tripper for Graph and token requests
	// (nil: a clone of http.DefaultTransport). Transport and Sleep are
	// functions, not settings: nil is not refused.
	Transport http.RoundTripper
	// Sleep waits between retries; nil uses a timer. Tests inject one that
	// returns at once so retry tests never wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// String renders the config with the client secret masked, so that an
// accidental %v never leaks it. The credential files are named, never
// their content.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "[REDACTED]"
	}
	return fmt.Sprintf("graph.Config{Cloud:%q TenantID:%q ClientID:%q ClientSecret:%q ClientCertificateFile:%q FederatedTokenFile:%q MaxTenants:%d BaseURL:%q TokenURL:%q Scope:%q RequestTimeout:%s RetryBudget:%s MaxRetries:%d}",
		c.Cloud, c.TenantID, c.ClientID, secret, c.ClientCertificateFile, c.FederatedTokenFile, c.MaxTenants,
		c.BaseURL, c.TokenURL, c.Scope, c.RequestTimeout, c.RetryBudget, c.MaxRetries)
}

// Cloud is a national cloud preset: where Graph and the token endpoint
// live. internal/cloud owns the list.
type Cloud = cloud.Cloud

// ErrCloudUnsupported is returned by ResolveCloud for a known cloud that
// the Graph calls API does not serve.
var ErrCloudUnsupported = cloud.ErrUnsupported

// ResolveCloud returns the preset for name ("" means global). "china" (the
// cloud operated by 21Vianet) is refused with ErrCloudUnsupported: the
// cloud-communications calls API is not available there.
func ResolveCloud(name string) (Cloud, error) { return cloud.Lookup(name) }

// resolved is a Config checked, with the cloud's preset URLs filled in.
type resolved struct {
	Config
	cloud    Cloud
	base     string // Graph base URL, no trailing slash
	tokenURL string // the default tenant's
	// tokenTemplate is the token URL with "{tenant}" where the tenant id
	// goes; empty when an override names no tenant (only the default
	// tenant is served then).
	tokenTemplate string
	scope         string
}

// tenantPlaceholder is the TokenURL placeholder replaced by a tenant id.
const tenantPlaceholder = "{tenant}"

func resolveConfig(cfg Config) (resolved, error) {
	cloud, err := ResolveCloud(cfg.Cloud)
	if err != nil {
		return resolved{}, err
	}
	r := resolved{Config: cfg, cloud: cloud}
	switch {
	case cfg.ClientID == "":
		return resolved{}, errors.New("client id is required")
	case cfg.TenantID == "" && cfg.TokenURL == "":
		return resolved{}, errors.New("tenant id is required")
	case cfg.TenantID == "" && strings.Contains(cfg.TokenURL, tenantPlaceholder):
		return resolved{}, errors.New("tenant id is required with a {tenant} token URL")
	}
	if err := checkCredentials(cfg); err != nil {
		return resolved{}, err
	}
	if cfg.TenantID != "" {
		if err := ValidTenantID(cfg.TenantID); err != nil {
			return resolved{}, err
		}
	}
	if err := checkTunables(cfg); err != nil {
		return resolved{}, err
	}

	r.base = strings.TrimRight(cfg.BaseURL, "/")
	if r.base == "" {
		r.base = cloud.GraphBaseURL
	}
	if err := checkServiceURL("base URL", r.base); err != nil {
		return resolved{}, err
	}
	r.tokenTemplate = tokenTemplate(cloud, cfg.TokenURL, cfg.TenantID)
	r.tokenURL = cfg.TokenURL
	if r.tokenTemplate != "" {
		r.tokenURL = strings.ReplaceAll(r.tokenTemplate, tenantPlaceholder, url.PathEscape(cfg.TenantID))
	}
	if err := checkServiceURL("token URL", r.tokenURL); err != nil {
		return resolved{}, err
	}
	r.scope = cfg.Scope
	if r.scope == "" {
		u, _ := url.Parse(cloud.GraphBaseURL) // presets are constants
		r.scope = u.Scheme + "://" + u.Host + "/.default"
	}
	return r, nil
}

// checkTunables names the first tunable of cfg that is out of range: zero
// or negative, except MaxRetries, where 0 means no retries.
func checkTunables(cfg Config) error {
	if err := tunable.Positive(
		tunable.Duration("RequestTimeout", cfg.RequestTimeout),
		tunable.Duration("RetryBudget", cfg.RetryBudget),
		tunable.Duration("BackoffInitial", cfg.BackoffInitial),
		tunable.Duration("BackoffMax", cfg.BackoffMax),
	); err != nil {
		return err
	}
	switch {
	case cfg.BackoffMax < cfg.BackoffInitial:
		return fmt.Errorf("BackoffMax %s must not be below BackoffInitial %s", cfg.BackoffMax, cfg.BackoffInitial)
	case cfg.MaxTenants <= 0:
		return tunable.Positive(tunable.Int("MaxTenants", cfg.MaxTenants))
	case cfg.MaxRetries < 0:
		return fmt.Errorf("MaxRetries must not be negative (0 is no retries), got %d", cfg.MaxRetries)
	}
	return nil
}

// checkServiceURL refuses URLs a bearer token or client secret must not be
// sent to: anything but https, except plain http to a loopback host.
func checkServiceURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s %q: not an absolute URL", what, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if netx.IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s %q: plain http is allowed for loopback hosts only", what, raw)
	}
	return fmt.Errorf("%s %q: scheme must be https", what, raw)
}

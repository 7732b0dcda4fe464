package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields, except DefaultMaxRetries:
// MaxRetries 0 means no retries, so a caller that wants the default passes
// DefaultMaxRetries (the config layer's BOTD_GRAPH_MAX_RETRIES default is
// the same 4).
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryBudget    = 30 * time.Second
	DefaultMaxRetries     = 4
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 8 * time.Second
)

// Config configures a Client. Only the credentials are required; the rest
// has defaults. Pointing the client at a fake Graph is a matter of BaseURL
// and TokenURL.
type Config struct {
	// Cloud selects the national cloud preset: "global" (default), "usgov"
	// (US Government L4) or "dod" (US Government L5). "china" is refused:
	// the calls API is not offered there.
	Cloud string

	TenantID     string
	ClientID     string
	ClientSecret string

	// BaseURL overrides the preset's Graph base, e.g.
	// https://graph.microsoft.com/v1.0. Plain http is accepted for loopback
	// hosts only (a fake Graph in tests).
	BaseURL string
	// TokenURL overrides the preset's
	// {login}/{tenant}/oauth2/v2.0/token.
	TokenURL string
	// Scope defaults to the preset's Graph origin + "/.default".
	Scope string

	// RequestTimeout bounds each attempt (default 10s).
	RequestTimeout time.Duration
	// RetryBudget bounds the time spent retrying one call (default 30s): no
	// retry is started whose wait would end past it.
	RetryBudget time.Duration
	// MaxRetries is the number of retries after the first attempt. 0 means
	// no retries, as BOTD_GRAPH_MAX_RETRIES=0 says; a negative value means
	// none too. The config layer passes its default (DefaultMaxRetries)
	// explicitly, so an unset field is not silently turned into retries.
	MaxRetries int
	// BackoffInitial and BackoffMax shape the capped exponential backoff
	// with jitter used when Graph gives no Retry-After (defaults 500ms, 8s).
	BackoffInitial time.Duration
	BackoffMax     time.Duration

	// Transport is the base round tripper for Graph and token requests
	// (default: a clone of http.DefaultTransport).
	Transport http.RoundTripper
	// Sleep waits between retries; nil uses a timer. Tests inject one that
	// returns at once so retry tests never wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// String renders the config with the client secret masked, so that an
// accidental %v never leaks it.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "[REDACTED]"
	}
	return fmt.Sprintf("graph.Config{Cloud:%q TenantID:%q ClientID:%q ClientSecret:%q BaseURL:%q TokenURL:%q Scope:%q RequestTimeout:%s RetryBudget:%s MaxRetries:%d}",
		c.Cloud, c.TenantID, c.ClientID, secret, c.BaseURL, c.TokenURL, c.Scope, c.RequestTimeout, c.RetryBudget, c.MaxRetries)
}

// Cloud is a national cloud preset: where Graph and the token endpoint live.
type Cloud struct {
	Name         string
	GraphBaseURL string // e.g. https://graph.microsoft.com/v1.0
	LoginBaseURL string // e.g. https://login.microsoftonline.com
}

// ErrCloudUnsupported is returned by ResolveCloud for a known cloud that
// the Graph calls API does not serve.
var ErrCloudUnsupported = errors.New("cloud not supported by the Graph calls API")

var clouds = map[string]Cloud{
	"global": {Name: "global", GraphBaseURL: "https://graph.microsoft.com/v1.0", LoginBaseURL: "https://login.microsoftonline.com"},
	"usgov":  {Name: "usgov", GraphBaseURL: "https://graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us"},
	"dod":    {Name: "dod", GraphBaseURL: "https://dod-graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us"},
}

// ResolveCloud returns the preset for name ("" means global). "china" (the
// cloud operated by 21Vianet) is refused with ErrCloudUnsupported: the
// cloud-communications calls API is not available there.
func ResolveCloud(name string) (Cloud, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "" {
		key = "global"
	}
	if c, ok := clouds[key]; ok {
		return c, nil
	}
	if key == "china" {
		return Cloud{}, fmt.Errorf("cloud %q: %w (Microsoft Graph operated by 21Vianet has no cloud communications)", name, ErrCloudUnsupported)
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q (want global, usgov or dod)", name)
}

// resolved is a Config with defaults applied and URLs checked.
type resolved struct {
	Config
	cloud    Cloud
	base     string // Graph base URL, no trailing slash
	tokenURL string
	scope    string
}

func resolveConfig(cfg Config) (resolved, error) {
	cloud, err := ResolveCloud(cfg.Cloud)
	if err != nil {
		return resolved{}, err
	}
	r := resolved{Config: cfg, cloud: cloud}
	switch {
	case cfg.ClientID == "":
		return resolved{}, errors.New("client id is required")
	case cfg.ClientSecret == "":
		return resolved{}, errors.New("client secret is required")
	case cfg.TenantID == "" && cfg.TokenURL == "":
		return resolved{}, errors.New("tenant id is required")
	}
	if r.RequestTimeout <= 0 {
		r.RequestTimeout = DefaultRequestTimeout
	}
	if r.RetryBudget <= 0 {
		r.RetryBudget = DefaultRetryBudget
	}
	if r.MaxRetries < 0 {
		r.MaxRetries = 0
	}
	if r.BackoffInitial <= 0 {
		r.BackoffInitial = DefaultBackoffInitial
	}
	if r.BackoffMax <= 0 {
		r.BackoffMax = DefaultBackoffMax
	}
	if r.BackoffMax < r.BackoffInitial {
		r.BackoffMax = r.BackoffInitial
	}

	r.base = strings.TrimRight(cfg.BaseURL, "/")
	if r.base == "" {
		r.base = cloud.GraphBaseURL
	}
	if err := checkServiceURL("base URL", r.base); err != nil {
		return resolved{}, err
	}
	r.tokenURL = cfg.TokenURL
	if r.tokenURL == "" {
		r.tokenURL = cloud.LoginBaseURL + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token"
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
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s %q: plain http is allowed for loopback hosts only", what, raw)
	}
	return fmt.Errorf("%s %q: scheme must be https", what, raw)
}

// isLoopbackHost reports whether host is localhost or a loopback IP
// (127.0.0.0/8, ::1).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

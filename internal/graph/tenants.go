package graph

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/botd/botd/internal/problem"
)

// ErrInvalidTenant is wrapped by the error for a tenant id that is not a
// GUID or a domain name, or that the configured token URL cannot serve.
var ErrInvalidTenant error = &problem.Error{Code: problem.Unprocessable, Message: "invalid tenant id", Rule: RuleTenantID, Field: "tenantId"}

type tenantKey struct{}

// WithTenant returns a context whose Graph requests act in tenantID: they
// carry an access token of that tenant (the tid of the call's callback
// token, or the call's tenantId). An empty tenantID means the configured
// default tenant. A malformed one fails the request before anything is
// sent, with an error wrapping ErrInvalidTenant.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenantID)
}

// TenantFromContext returns the tenant set by WithTenant, or "".
func TenantFromContext(ctx context.Context) string {
	s, _ := ctx.Value(tenantKey{}).(string)
	return s
}

// ValidTenantID checks the shape of a tenant id: a GUID or a domain name
// (labels of letters, digits and hyphens separated by dots), at most 253
// characters. It ends up in the token URL's path, so anything else (a
// '/', '%', '?', spaces) is refused; so are the aliases common,
// organizations and consumers, which name no tenant.
func ValidTenantID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTenant)
	}
	if len(id) > 253 {
		return fmt.Errorf("%w: %d characters, at most 253", ErrInvalidTenant, len(id))
	}
	switch strings.ToLower(id) {
	case "common", "organizations", "consumers":
		return fmt.Errorf("%w %q: an alias, not a tenant; app-only tokens need the tenant's id", ErrInvalidTenant, id)
	}
	for label := range strings.SplitSeq(id, ".") {
		if !validLabel(label) {
			return fmt.Errorf("%w %q: want a GUID or a domain name", ErrInvalidTenant, id)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// tokenTemplate is the token URL with tenantPlaceholder where a tenant id
// goes: the preset's; an override's own placeholder; or an override's
// first path segment equal to the default tenant. It is "" for an
// override with neither.
func tokenTemplate(cloud Cloud, override, defTenant string) string {
	switch {
	case override == "":
		return cloud.LoginBaseURL + "/" + tenantPlaceholder + "/oauth2/v2.0/token"
	case strings.Contains(override, tenantPlaceholder):
		return override
	case defTenant == "":
		return ""
	}
	u, err := url.Parse(override)
	if err != nil || u.Host == "" {
		return ""
	}
	prefix := u.Scheme + "://" + u.Host
	rest, ok := strings.CutPrefix(override, prefix)
	if !ok {
		return ""
	}
	path, query, _ := strings.Cut(rest, "?")
	seg := "/" + url.PathEscape(defTenant) + "/"
	i := strings.Index(path, seg)
	if i < 0 {
		return ""
	}
	t := prefix + path[:i] + "/" + tenantPlaceholder + "/" + path[i+len(seg):]
	if query != "" {
		t += "?" + query
	}
	return t
}

// tokenURLFor is the token URL of tenant (already validated).
func (r *resolved) tokenURLFor(tenant string) (string, error) {
	if strings.EqualFold(tenant, r.TenantID) {
		return r.tokenURL, nil
	}
	if r.tokenTemplate == "" {
		return "", fmt.Errorf("%w %q: the token URL override has no %s placeholder nor a /%s/ segment, so it serves the default tenant only",
			ErrInvalidTenant, tenant, tenantPlaceholder, r.TenantID)
	}
	return strings.ReplaceAll(r.tokenTemplate, tenantPlaceholder, url.PathEscape(tenant)), nil
}

// tenantEntry is one tenant's cached token source and the transport that
// adds its tokens.
type tenantEntry struct {
	key string
	ts  oauth2.TokenSource
	rt  http.RoundTripper
}

// tokenSources holds one caching token source per tenant: the default
// tenant's always, up to max-1 others, the least recently used evicted.
// As an oauth2.TokenSource it is the default tenant's (CheckToken).
type tokenSources struct {
	newEntry func(tenant string) (*tenantEntry, error)
	def      *tenantEntry
	others   int // capacity besides the default tenant
	gauge    prometheus.Gauge

	mu    sync.Mutex
	ll    *list.List // of *tenantEntry, most recently used first
	byKey map[string]*list.Element
}

func newTokenSources(def *tenantEntry, maxTenants int, gauge prometheus.Gauge, newEntry func(string) (*tenantEntry, error)) *tokenSources {
	s := &tokenSources{
		newEntry: newEntry, def: def, others: max(1, maxTenants-1), gauge: gauge,
		ll: list.New(), byKey: map[string]*list.Element{},
	}
	gauge.Set(1)
	return s
}

// Token returns a token of the default tenant.
func (s *tokenSources) Token() (*oauth2.Token, error) { return s.def.ts.Token() }

// get returns the entry of tenant ("" is the default tenant), creating it
// and evicting the least recently used other tenant if need be.
func (s *tokenSources) get(tenant string) (*tenantEntry, error) {
	key := strings.ToLower(tenant)
	if key == "" || key == s.def.key {
		return s.def, nil
	}
	if err := ValidTenantID(tenant); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byKey[key]; ok {
		s.ll.MoveToFront(el)
		return el.Value.(*tenantEntry), nil
	}
	e, err := s.newEntry(key)
	if err != nil {
		return nil, err
	}
	s.byKey[key] = s.ll.PushFront(e)
	for s.ll.Len() > s.others {
		old := s.ll.Back()
		s.ll.Remove(old)
		delete(s.byKey, old.Value.(*tenantEntry).key)
	}
	s.gauge.Set(float64(1 + s.ll.Len()))
	return e, nil
}

// cached reports whether tenant has a cached token source.
func (s *tokenSources) cached(tenant string) bool {
	key := strings.ToLower(tenant)
	if key == s.def.key {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byKey[key]
	return ok
}

// tenantTransport adds the bearer token of the request context's tenant.
type tenantTransport struct{ sources *tokenSources }

func (t *tenantTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	e, err := t.sources.get(TenantFromContext(req.Context()))
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		// A TokenError that is not transient, so that the request is
		// neither retried nor sent: no token can be had for this tenant.
		return nil, &TokenError{
			StatusCode:  http.StatusBadRequest,
			Code:        "invalid_request",
			Description: err.Error() + " (refused before any request)",
			Err:         err,
		}
	}
	return e.rt.RoundTrip(req)
}

// newTokenSourcesGauge registers botd_graph_token_sources (kept out of
// metrics so that the struct stays as it is).
func newTokenSourcesGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "botd_graph_token_sources",
		Help: "Tenants with a cached access token source, the default tenant included (bounded).",
	})
	if reg != nil {
		reg.MustRegister(g)
	}
	g.Set(0)
	return g
}

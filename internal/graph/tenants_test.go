package graph

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

const (
	tenantA = "3f7c9a10-1b2c-4d3e-8f40-5a6b7c8d9e01"
	tenantB = "contoso.onmicrosoft.com"
)

// TestTwoTenantsEachOwnToken: requests for two tenants' calls, and for
// the default tenant, each carry their own tenant's token, and each
// tenant costs one token fetch for all its requests.
func TestTwoTenantsEachOwnToken(t *testing.T) {
	e := newEnv(t, emulator.Options{Tenants: []string{tenantA, tenantB}})
	def := e.fg.Options().TenantID
	want := map[string]string{} // call id -> tenant
	ctxs := map[string]string{}
	for _, tenant := range []string{tenantA, tenantB, def} {
		id := e.fg.PutCall(model.Call{State: model.StateEstablished})
		want[id] = tenant
		ctxs[id] = tenant
	}
	ctxs[e.fg.PutCall(model.Call{State: model.StateEstablished})] = "" // no tenant: the default
	var wg sync.WaitGroup
	for id, tenant := range ctxs {
		if tenant == "" {
			want[id] = def
		}
		for range 10 {
			wg.Go(func() {
				if _, err := e.c.KeepAlive(WithTenant(bg, tenant), id); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	// The same tenant in another case is the same tenant.
	for id, tenant := range ctxs {
		if _, err := e.c.KeepAlive(WithTenant(bg, strings.ToUpper(tenant)), id); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range e.fg.GraphRequests() {
		if got := e.fg.RequestTenant(r); got != want[r.CallID] {
			t.Errorf("request for call %s carried a token of %q, want %q", r.CallID, got, want[r.CallID])
		}
	}
	if n := len(e.fg.GraphRequests()); n != 44 {
		t.Errorf("%d Graph requests, want 44", n)
	}
	fetched := map[string]int{}
	for _, r := range e.fg.Requests(emulator.RouteToken) {
		fetched[strings.Split(r.Path, "/")[1]]++
	}
	if len(fetched) != 3 || fetched[tenantA] != 1 || fetched[tenantB] != 1 || fetched[def] != 1 {
		t.Errorf("token fetches by tenant = %v, want one each for %s, %s, %s", fetched, tenantA, tenantB, def)
	}
	if v := testutil.ToFloat64(e.c.m.tokenFetches); v != 3 {
		t.Errorf("token fetches metric = %v, want 3", v)
	}
	if v := gaugeValue(t, e.reg, "botd_graph_token_sources"); v != 3 {
		t.Errorf("token sources gauge = %v, want 3", v)
	}
}

// TestTenantTokenRefetchedPerLifetime: with tokens that live less than
// oauth2's early-expiry margin, each request of each tenant fetches.
func TestTenantTokenRefetchedPerLifetime(t *testing.T) {
	e := newEnv(t, emulator.Options{Tenants: []string{tenantA}, TokenTTL: time.Second})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	for range 3 {
		if _, err := e.c.KeepAlive(WithTenant(bg, tenantA), id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fg.TokenFetches(); n != 3 {
		t.Errorf("token fetches = %d, want 3", n)
	}
}

func TestTenantSourcesBounded(t *testing.T) {
	tenants := []string{"t1.example.com", "t2.example.com", "t3.example.com"}
	e := newEnv(t, emulator.Options{Tenants: tenants}, func(c *Config) { c.MaxTenants = 3 })
	src := e.c.tokens.(*tokenSources)
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	use := func(tenant string) {
		t.Helper()
		if _, err := e.c.KeepAlive(WithTenant(bg, tenant), id); err != nil {
			t.Fatal(err)
		}
	}
	use(tenants[0])
	use(tenants[1])
	use(tenants[0]) // t1 most recently used: t2 is evicted next
	use(tenants[2])
	if src.cached(tenants[1]) || !src.cached(tenants[0]) || !src.cached(tenants[2]) || !src.cached(e.cfg.TenantID) {
		t.Errorf("after t1 t2 t1 t3 with room for 2 besides the default: t1 %v t2 %v t3 %v",
			src.cached(tenants[0]), src.cached(tenants[1]), src.cached(tenants[2]))
	}
	if v := gaugeValue(t, e.reg, "botd_graph_token_sources"); v != 3 {
		t.Errorf("token sources gauge = %v, want 3 (bounded)", v)
	}
	use(tenants[1]) // evicted: fetched again
	if n := e.fg.TokenFetches(); n != 4 {
		t.Errorf("token fetches = %d, want 4 (t1, t2, t3, t2 again)", n)
	}
	// The default tenant is never evicted.
	if err := e.c.CheckToken(bg); err != nil || !src.cached(e.cfg.TenantID) {
		t.Errorf("CheckToken: %v", err)
	}
}

func TestBadTenantRefusedBeforeAnyRequest(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	for _, bad := range []string{"a/b", "../x", "x y", "common", "t%2Fx", "x?y", "-x", "a..b", strings.Repeat("a", 254)} {
		_, meta, err := e.c.CreateCall(WithTenant(bg, bad), validCall())
		var te *TokenError
		if !errors.Is(err, ErrInvalidTenant) || errors.As(err, &te) || Retryable(err) || meta.Attempts != 0 {
			t.Errorf("tenant %q: err %v after %d attempts, want ErrInvalidTenant, no attempt, not a token error", bad, err, meta.Attempts)
		}
	}
	if n := len(e.fg.Requests()); n != 0 {
		t.Errorf("%d requests reached the emulator", n)
	}
	for _, good := range []string{tenantA, tenantB, "fake-tenant", "A1B2"} {
		if err := ValidTenantID(good); err != nil {
			t.Errorf("ValidTenantID(%q) = %v", good, err)
		}
	}
	if _, err := New(withTunables(Config{TenantID: "a/b", ClientID: "c", ClientSecret: "s"}), zerolog.Nop(), nil); !errors.Is(err, ErrInvalidTenant) {
		t.Errorf("New with a bad default tenant: %v", err)
	}
}

func TestTokenURLPerTenant(t *testing.T) {
	cases := []struct {
		name, tokenURL, def, tenant, want string
	}{
		{"preset", "", "d1", tenantA, "https://login.microsoftonline.com/" + tenantA + "/oauth2/v2.0/token"},
		{"preset default", "", "d1", "D1", "https://login.microsoftonline.com/d1/oauth2/v2.0/token"},
		{"placeholder", "https://login.example.com/x/{tenant}/token?a=b", "d1", tenantB, "https://login.example.com/x/" + tenantB + "/token?a=b"},
		{"placeholder default", "https://login.example.com/{tenant}/token", "d1", "", "https://login.example.com/d1/token"},
		{"segment", "http://127.0.0.1:8080/d1/oauth2/v2.0/token", "d1", tenantA, "http://127.0.0.1:8080/" + tenantA + "/oauth2/v2.0/token"},
		{"segment, not the host", "https://d1/p/d1/token", "d1", "t2", "https://d1/p/t2/token"},
		{"neither, default", "https://login.example.com/token", "d1", "d1", "https://login.example.com/token"},
		{"neither, other", "https://login.example.com/token", "d1", "t2", ""},
	}
	for _, c := range cases {
		r, err := resolveConfig(withTunables(Config{TenantID: c.def, ClientID: "c", ClientSecret: "s", TokenURL: c.tokenURL}))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tenant := c.tenant
		if tenant == "" {
			tenant = c.def
		}
		got, err := r.tokenURLFor(tenant)
		if c.want == "" {
			if !errors.Is(err, ErrInvalidTenant) {
				t.Errorf("%s: %q, %v, want ErrInvalidTenant", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v, want %q", c.name, got, err, c.want)
		}
	}
	if _, err := resolveConfig(withTunables(Config{ClientID: "c", ClientSecret: "s", TokenURL: "https://l.example.com/{tenant}/token"})); err == nil {
		t.Error("a {tenant} token URL without a default tenant was accepted")
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// tokenForm returns the form of the i-th recorded token request.
func tokenForm(t *testing.T, fg *emulator.Server, i int) url.Values {
	t.Helper()
	fs := tokenForms.of(fg.URL())
	if len(fs) <= i {
		t.Fatalf("%d token requests, want more than %d", len(fs), i)
	}
	return fs[i]
}

// tokenForms are the token request forms clients built by newEnv sent, by
// the origin they went to: the emulator's record redacts assertions and
// secrets, so the tests that check them read what went on the wire.
var tokenForms = &formCapture{byOrigin: map[string][]url.Values{}}

type formCapture struct {
	mu       sync.Mutex
	byOrigin map[string][]url.Values
}

func (c *formCapture) of(origin string) []url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]url.Values(nil), c.byOrigin[origin]...)
}

// transport records the form of every token request it carries.
func (c *formCapture) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && r.GetBody != nil {
			if body, err := r.GetBody(); err == nil {
				b, _ := io.ReadAll(body)
				if f, err := url.ParseQuery(string(b)); err == nil {
					c.mu.Lock()
					origin := r.URL.Scheme + "://" + r.URL.Host
					c.byOrigin[origin] = append(c.byOrigin[origin], f)
					c.mu.Unlock()
				}
			}
		}
		return base.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A create-call body's tenantId is checked like a tenant from the context.
func TestCreateCallTenantIDRule(t *testing.T) {
	c := validCall()
	c.TenantID = "a/b"
	var ve *ValidationError
	if err := ValidateCall(c); !errors.As(err, &ve) || ve.Rule != RuleTenantID || ve.Field != "tenantId" {
		t.Fatalf("ValidateCall = %v", err)
	}
	c.TenantID = tenantA
	if err := ValidateCall(c); err != nil {
		t.Fatal(err)
	}
}

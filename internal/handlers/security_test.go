package handlers

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/auth"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// security holds the keys of a secure rig: the emulator signs with key and
// serves its public half; other keys forge.
type security struct {
	key        *rsa.PrivateKey
	kid        string
	good       string // a valid callback token
	adminToken string
	metricsOff bool // /metrics behind the admin token
	tenants    []string
}

func newSecurity(t *testing.T) *security {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &security{key: k, adminToken: "admin-t0ken-value"}
}

// setup wires the verifier (on the emulator's OpenID configuration), the
// admin token and the in-flight limit into the rig's deps.
func (s *security) setup(t *testing.T, r *rig, log zerolog.Logger) {
	t.Helper()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	res, err := http.Get(r.emu.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("emulator JWKS: %v %+v", err, jwks)
	}
	s.kid = jwks.Keys[0].Kid
	s.good = s.sign(t, jwt.SigningMethodRS256, s.key, s.claims(), s.kid)

	vc := verifierConfig(r.emu.OpenIDConfigURL())
	vc.AllowedTenants = s.tenants
	vc.OnVerified = func(req *http.Request, c *auth.Claims) { RecordTenant(req, c.TenantID) } // as cmd/botd wires it
	v, err := auth.NewVerifier(vc, log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := auth.NewAdminAuth(s.adminToken, log, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.deps.CallbackAuth, r.deps.AdminAuth = v.Middleware, admin
	r.deps.CallbackLimit = auth.Limit(64, time.Second, r.reg)
	r.deps.MetricsOpen = !s.metricsOff
	r.public.Config.ReadHeaderTimeout = 300 * time.Millisecond
	r.sec = s
}

func (s *security) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "https://api.botframework.com", "aud": "app-1", "tid": "tenant-1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func (s *security) sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestHostileRequests sends hostile or broken requests to the callback and
// the admin API. Each gets its status, and none changes any state: no call
// tracked, nothing sent to Graph.
func TestHostileRequests(t *testing.T) {
	sec := newSecurity(t)
	sec.metricsOff = true
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: sec})
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&sec.key.PublicKey)
	good := sec.claims()
	bearer := func(tok string) http.Header {
		return http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}}
	}
	signed := func(m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) http.Header {
		return bearer(sec.sign(t, m, key, c, kid))
	}
	okHdr := bearer(sec.good)
	body := testkit.Seed(t, "003_17_notification.json")
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	var many strings.Builder
	many.WriteString(`{"value":[`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`{}`)
	}
	many.WriteString(`]}`)
	item := func(resource, data string) []byte {
		return []byte(`{"value":[{"changeType":"updated","resourceUrl":"` + resource + `","resourceData":` + data + `}]}`)
	}
	call := `{"@odata.type":"#microsoft.graph.call","state":"established"}`
	admin := func(tok string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		if tok != "" {
			h.Set("Authorization", "Bearer "+tok)
		}
		return h
	}
	adm := admin(sec.adminToken)
	p2p := withoutCallback(t, testkit.Seed(t, "003_01_request.json"))
	id10k := strings.Repeat("a", 10<<10)

	cb := r.public.URL + "/api/calls"
	ad := r.admin.URL
	cases := []struct {
		name, method, url string
		h                 http.Header
		body              []byte
		status            int
		reason            string // auth failure reason counted
	}{
		// Authentication of Graph's callbacks.
		{"no token", "POST", cb, http.Header{"Content-Type": {"application/json"}}, body, 401, "missing"},
		{"basic auth", "POST", cb, http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic YTpi"}}, body, 401, "malformed"},
		{"empty bearer", "POST", cb, bearer(""), body, 401, "malformed"},
		{"garbage token", "POST", cb, bearer("not.a.jwt"), body, 401, "malformed"},
		{"forged signature", "POST", cb, signed(jwt.SigningMethodRS256, other, good, sec.kid), body, 401, "bad_signature"},
		{"expired", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, with(good, "exp", time.Now().Add(-time.Hour).Unix()), sec.kid), body, 401, "expired"},
		{"not yet valid", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, with(good, "nbf", time.Now().Add(time.Hour).Unix()), sec.kid), body, 401, "not_yet_valid"},
		{"another app's audience", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, with(good, "aud", "other-app"), sec.kid), body, 401, "wrong_audience"},
		{"wrong issuer", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, with(good, "iss", "https://evil.example"), sec.kid), body, 401, "wrong_issuer"},
		{"no tenant", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, with(good, "tid", nil), sec.kid), body, 401, "missing_tenant"},
		{"alg none", "POST", cb, signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, sec.kid), body, 401, "bad_signature"},
		{"HS256 with the public key", "POST", cb, signed(jwt.SigningMethodHS256, pub, good, sec.kid), body, 401, "bad_signature"},
		{"unknown key", "POST", cb, signed(jwt.SigningMethodRS256, other, good, "some-other-kid"), body, 401, "unknown_key"},
		{"no kid", "POST", cb, signed(jwt.SigningMethodRS256, sec.key, good, ""), body, 401, "malformed"},
		{"token for the instance path", "POST", cb + "/botd-9", bearer("x"), body, 401, "malformed"},
		// Broken bodies, with a valid token.
		{"huge body", "POST", cb, okHdr, []byte(`{"value":[` + strings.Repeat(" ", 2<<20) + `]}`), 413, ""},
		{"deep nesting", "POST", cb, okHdr, []byte(deep), 400, ""},
		{"100,000 items", "POST", cb, okHdr, []byte(many.String()), 400, ""},
		{"value not an array", "POST", cb, okHdr, []byte(`{"value":"x"}`), 400, ""},
		{"null value", "POST", cb, okHdr, []byte(`{"value":null}`), 400, ""},
		{"empty body", "POST", cb, okHdr, nil, 400, ""},
		{"duplicate keys", "POST", cb, okHdr, []byte(`{"value":[],"value":[]}`), 400, ""},
		{"wrong content type", "POST", cb, http.Header{"Content-Type": {"text/plain"}, "Authorization": {"Bearer " + sec.good}}, body, 415, ""},
		{"GET the callback", "GET", cb, okHdr, nil, 405, ""},
		{"wrong field types", "POST", cb, okHdr, item("/communications/calls/c-1", `{"@odata.type":"#microsoft.graph.call","state":7}`), 202, ""},
		{"unknown odata type", "POST", cb, okHdr, item("/communications/calls/c-1/things", `{"@odata.type":"#microsoft.graph.thing"}`), 202, ""},
		{"path with ..", "POST", cb, okHdr, item("/communications/calls/../calls/c-1", call), 202, ""},
		{"encoded traversal", "POST", cb, okHdr, item("/communications/calls/%2e%2e/c-1", call), 202, ""},
		{"10 KB id", "POST", cb, okHdr, item("/communications/calls/"+id10k, call), 202, ""},
		{"unknown prefix", "POST", cb, okHdr, item("/me/calls/c-1", call), 202, ""},
		// The admin API.
		{"admin without token", "GET", ad + "/v1/calls", admin(""), nil, 401, ""},
		{"admin wrong token", "GET", ad + "/v1/calls", admin("guess"), nil, 401, ""},
		{"admin token as basic", "GET", ad + "/v1/calls", http.Header{"Authorization": {"Basic " + sec.adminToken}}, nil, 401, ""},
		{"admin create without token", "POST", ad + "/v1/calls", admin(""), p2p, 401, ""},
		{"metrics without token", "GET", ad + "/metrics", admin(""), nil, 401, ""},
		{"admin unknown field", "POST", ad + "/v1/calls", adm, setJSON(t, p2p, "colour", "blue"), 400, ""},
		{"admin not json", "POST", ad + "/v1/calls", adm, []byte("{"), 400, ""},
		{"admin deep nesting", "POST", ad + "/v1/calls", adm, []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), 400, ""},
		{"admin huge body", "POST", ad + "/v1/calls", adm, []byte(`{"subject":"` + strings.Repeat("x", 2<<20) + `"}`), 413, ""},
		{"admin wrong content type", "POST", ad + "/v1/calls", http.Header{"Authorization": {"Bearer " + sec.adminToken}, "Content-Type": {"text/plain"}}, p2p, 415, ""},
		{"admin foreign callbackUri", "POST", ad + "/v1/calls", adm, setJSON(t, p2p, "callbackUri", "https://evil.example/cb"), 422, ""},
		{"admin http callbackUri", "POST", ad + "/v1/calls", adm, setJSON(t, p2p, "callbackUri", "http://evil.example/cb"), 422, ""},
		{"admin bad phone", "POST", ad + "/v1/calls", adm, setJSON(t, p2p, "targets", []any{map[string]any{"identity": map[string]any{"phone": map[string]any{"id": "555-1234"}}}}), 422, ""},
		{"admin six targets", "POST", ad + "/v1/calls", adm, setJSON(t, p2p, "targets", sixUsers()), 422, ""},
		{"admin traversal", "GET", ad + "/v1/calls/..%2f..%2fmetrics", adm, nil, 404, ""},
		{"admin 10 KB id", "GET", ad + "/v1/calls/" + id10k, adm, nil, 404, ""},
		{"admin invite unknown call", "POST", ad + "/v1/calls/nope/participants/invite", adm, testkit.Seed(t, "001_13_request.json"), 404, ""},
		{"admin hang up a 10 KB id", "DELETE", ad + "/v1/calls/" + id10k, adm, nil, 404, ""},
		{"admin answer an id with a colon", "POST", ad + "/v1/calls/a:b/answer", adm, []byte(`{}`), 404, ""},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := 0.0
			if tc.reason != "" {
				before = authFailures(t, r, tc.reason)
			}
			graphBefore := len(r.graphCalls())
			rp := send(t, tc.method, tc.url, tc.h, tc.body)
			if rp.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", rp.status, tc.status, rp.body)
			}
			if tc.status != http.StatusAccepted {
				rp.problem(t)
			}
			if tc.status == http.StatusUnauthorized && strings.HasPrefix(tc.url, cb) {
				if got := rp.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
			if tc.reason != "" {
				if got := authFailures(t, r, tc.reason); got != before+1 {
					t.Errorf("botd_auth_failures_total{reason=%q} went %v -> %v", tc.reason, before, got)
				}
			}
			if n := len(r.store.Calls()); n != 0 {
				t.Fatalf("state changed: %d calls tracked", n)
			}
			if n := len(r.graphCalls()); n != graphBefore {
				t.Fatalf("%d requests reached Graph", n-graphBefore)
			}
		})
	}

	// After all that, a good callback still works.
	r.mustNotify(testkit.Seed(t, "003_17_notification.json"))
	if v := r.view("2f1a1100-b174-40a0-aba7-0b405e01ed92"); v.State != model.StateEstablished {
		t.Fatalf("state = %s", v.State)
	}
	// And nothing secret reached the log.
	logs := r.logs.String()
	for _, secret := range []string{"secret-1", sec.adminToken, sec.good, sec.good[strings.LastIndexByte(sec.good, '.')+1:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the log: %.20s...", secret)
		}
	}
}

// graphCalls are the requests that reached the emulator's calls API (not
// its token, OpenID or JWKS endpoints).
func (r *rig) graphCalls() []emulator.Request {
	var out []emulator.Request
	for _, q := range r.emu.GraphRequests() {
		switch q.Route {
		case emulator.RouteOpenID, emulator.RouteJWKS:
		default:
			out = append(out, q)
		}
	}
	return out
}

// authFailures reads botd_auth_failures_total{reason} from the rig's
// registry.
func authFailures(t *testing.T, r *rig, reason string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "botd_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestSlowlorisHeaders: a client that never finishes its headers is cut
// off by the server's header timeout instead of holding a connection.
func TestSlowlorisHeaders(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: newSecurity(t)})
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.public.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /api/calls HTTP/1.1\r\nHost: botd\r\nX-Slow: ")
	// Never finish; the server must close the connection.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("got a response to unfinished headers: %d %s", res.StatusCode, b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection open")
	}
}

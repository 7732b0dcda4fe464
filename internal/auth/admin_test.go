package auth

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/testkit"
)

const adminToken = "s3cr3t-Adm1n.T0ken_value~with+all/chars=="

func TestAdminAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		reason  string // "" admits
	}{
		{"right token", []string{"Bearer " + adminToken}, ""},
		{"scheme in lower case", []string{"bearer " + adminToken}, ""},
		{"missing", nil, "missing"},
		{"empty", []string{""}, "missing"},
		{"wrong token", []string{"Bearer wrong"}, "wrong"},
		{"prefix of the token", []string{"Bearer " + adminToken[:10]}, "wrong"},
		{"token plus a suffix", []string{"Bearer " + adminToken + "x"}, "wrong"},
		{"basic scheme", []string{"Basic " + adminToken}, "wrong"},
		{"token without scheme", []string{adminToken}, "wrong"},
		{"two headers", []string{"Bearer " + adminToken, "Bearer " + adminToken}, "wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			logs := &testkit.Buffer{}
			mw, err := NewAdminAuth(adminToken, zerolog.New(logs), reg)
			if err != nil {
				t.Fatal(err)
			}
			called := false
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
			req := httptest.NewRequest(http.MethodPost, "/admin/calls", nil)
			if tc.reason != "" {
				req.Body = tripwireBody{t}
			}
			for _, v := range tc.headers {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			missing := testutil.ToFloat64(counterVec(t, reg, "missing"))
			wrong := testutil.ToFloat64(counterVec(t, reg, "wrong"))
			if tc.reason == "" {
				if !called || rec.Code != http.StatusOK || missing+wrong != 0 {
					t.Fatalf("right token refused: %d, called %v, failures %v/%v", rec.Code, called, missing, wrong)
				}
				return
			}
			if called {
				t.Fatal("handler called")
			}
			decodeProblem(t, rec, http.StatusUnauthorized, "unauthorized")
			want := `Bearer realm="botd-admin"`
			if tc.reason == "wrong" {
				want += `, error="invalid_token"`
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if (tc.reason == "missing") != (missing == 1) || (tc.reason == "wrong") != (wrong == 1) || missing+wrong != 1 {
				t.Errorf("failures missing=%v wrong=%v, want reason %s", missing, wrong, tc.reason)
			}
			if !strings.Contains(logs.String(), `"reason":"`+tc.reason+`"`) {
				t.Errorf("no log line with the reason: %s", logs)
			}
			if strings.Contains(logs.String(), adminToken[:8]) {
				t.Errorf("token in the log: %s", logs)
			}
		})
	}
}

func counterVec(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Counter {
	t.Helper()
	// Registering the same vector again returns the one in use.
	v := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botd_admin_auth_failures_total",
		Help: "Admin API requests refused for a missing or wrong bearer token.",
	}, []string{"reason"}))
	return v.WithLabelValues(reason)
}

func TestNewAdminAuthRefusesUnusableTokens(t *testing.T) {
	for tok, want := range map[string]error{
		"":             ErrNoAdminToken,
		"with space":   ErrAdminTokenSyntax,
		"semi;colon":   ErrAdminTokenSyntax,
		"==":           ErrAdminTokenSyntax,
		"trailing\n":   ErrAdminTokenSyntax,
		"ok-token==":   nil,
		"ok.Token_~+/": nil,
	} {
		mw, err := NewAdminAuth(tok, zerolog.Nop(), nil)
		if !errors.Is(err, want) {
			t.Errorf("NewAdminAuth(%q): %v, want %v", tok, err, want)
		}
		if (mw == nil) != (want != nil) {
			t.Errorf("NewAdminAuth(%q): middleware %v with error %v", tok, mw != nil, err)
		}
	}
}

func TestTokenMatches(t *testing.T) {
	want := sha256Of("correct horse")
	for got, ok := range map[string]bool{
		"correct horse":  true,
		"correct hors":   false,
		"correct horse ": false,
		"Correct horse":  false,
		"":               false,
	} {
		if tokenMatches(want, got) != ok {
			t.Errorf("tokenMatches(%q) = %v", got, !ok)
		}
	}
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }

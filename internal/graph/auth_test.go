package graph

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

func TestTokenFetchedOnceForManyRequests(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	for range 50 {
		if _, err := e.c.KeepAlive(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := e.c.GetCall(bg, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.fg.TokenFetches(); n != 1 {
		t.Errorf("token endpoint got %d requests for 70 Graph requests, want 1", n)
	}
	if v := testutil.ToFloat64(e.c.m.tokenFetches); v != 1 {
		t.Errorf("token fetches metric = %v, want 1", v)
	}
	if v := testutil.ToFloat64(e.c.m.tokenErrors); v != 0 {
		t.Errorf("token errors metric = %v, want 0", v)
	}

	// The token request is client credentials with the Graph .default
	// scope of the cloud, the secret in the form body.
	tr := e.fg.Requests(emulator.RouteToken)[0]
	form, err := url.ParseQuery(string(tr.Body))
	if err != nil {
		t.Fatal(err)
	}
	if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != e.cfg.ClientID ||
		form.Get("scope") != "https://graph.microsoft.com/.default" || !form.Has("client_secret") {
		t.Errorf("token request form = %v", form)
	}
	for _, r := range e.fg.GraphRequests() {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer fake-") {
			t.Fatalf("Graph request without the bearer token: %q", r.Header.Get("Authorization"))
		}
	}
}

// TestTokenRefetchedAfterExpiry: the fake issues tokens that live 1s, less
// than the early-expiry margin oauth2 keeps (10s), so every request finds
// the cached token expired and fetches a new one — without waiting on a
// clock.
func TestTokenRefetchedAfterExpiry(t *testing.T) {
	e := newEnv(t, emulator.Options{TokenTTL: time.Second})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	for range 3 {
		if _, err := e.c.KeepAlive(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fg.TokenFetches(); n != 3 {
		t.Errorf("token fetches = %d, want 3 (one per request once expired)", n)
	}
	if v := testutil.ToFloat64(e.c.m.tokenFetches); v != 3 {
		t.Errorf("token fetches metric = %v, want 3", v)
	}
}

func TestTokenRevokedServerSideIs401(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	e.fg.ExpireTokens()
	_, err := e.c.KeepAlive(bg, id)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Code != "InvalidAuthenticationToken" {
		t.Fatalf("err = %v, want 401 InvalidAuthenticationToken", err)
	}
}

func TestTokenEndpointRefusesCredentials(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.ClientSecret = "wrong-secret" })
	_, meta, err := e.c.CreateCall(bg, validCall())
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want *TokenError", err)
	}
	if te.StatusCode != http.StatusUnauthorized || te.Code != "invalid_client" {
		t.Errorf("TokenError = %+v", te)
	}
	if !strings.Contains(err.Error(), "create call: fetch token") || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error text %q", err)
	}
	if Retryable(err) {
		t.Error("bad credentials are not retryable")
	}
	if n := e.fg.TokenFetches(); n != 1 || meta.Attempts != 1 {
		t.Errorf("token fetches %d, attempts %d, want 1 (not retried)", n, meta.Attempts)
	}
	if n := len(e.fg.GraphRequests()); n != 0 {
		t.Errorf("%d Graph requests sent without a token", n)
	}
	if v := testutil.ToFloat64(e.c.m.tokenErrors); v != 1 {
		t.Errorf("token errors metric = %v, want 1", v)
	}
}

func TestTokenEndpointDownIsRetriedBounded(t *testing.T) {
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.MaxRetries = 3 })
	e.fg.SetFault(emulator.RouteToken, &emulator.Fault{Status: http.StatusInternalServerError})
	_, meta, err := e.c.CreateCall(bg, validCall())
	var te *TokenError
	if !errors.As(err, &te) || te.StatusCode != http.StatusInternalServerError {
		t.Fatalf("err = %v, want a 500 TokenError", err)
	}
	if errors.Is(err, ErrOutcomeUnknown) {
		t.Error("nothing reached Graph: the outcome is known")
	}
	if n := e.fg.TokenFetches(); n != 4 || meta.Attempts != 4 {
		t.Errorf("token fetches %d, attempts %d, want 4 (bounded by MaxRetries)", n, meta.Attempts)
	}
	if v := testutil.ToFloat64(e.c.m.tokenErrors); v != 4 {
		t.Errorf("token errors metric = %v, want 4", v)
	}
	if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpCreateCall, reasonToken)); v != 3 {
		t.Errorf("retries{create_call,token} = %v, want 3", v)
	}
	if n := len(e.fg.GraphRequests()); n != 0 {
		t.Errorf("%d Graph requests, want 0", n)
	}

	// The endpoint recovers: the next call fetches a token and succeeds.
	e.fg.SetFault(emulator.RouteToken, nil)
	if _, _, err := e.c.CreateCall(bg, validCall()); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestCheckToken(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	if err := e.c.CheckToken(bg); err != nil {
		t.Fatal(err)
	}
	if err := e.c.CheckToken(bg); err != nil {
		t.Fatal(err)
	}
	if n := e.fg.TokenFetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1 (cached)", n)
	}

	bad := newEnv(t, emulator.Options{}, func(c *Config) { c.ClientID = "someone-else" })
	err := bad.c.CheckToken(bg)
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "unauthorized_client" {
		t.Errorf("CheckToken = %v, want unauthorized_client", err)
	}

	slow := newEnv(t, emulator.Options{})
	slow.fg.SetFault(emulator.RouteToken, &emulator.Fault{Delay: time.Minute})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := slow.c.CheckToken(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckToken with ended context = %v", err)
	}
}

// TestSecretsNeverLogged runs successful and failing calls with debug
// logging and checks neither the client secret nor the bearer token
// reaches the log.
func TestSecretsNeverLogged(t *testing.T) {
	e := newEnv(t, emulator.Options{ClientSecret: "s3cr3t-value"})
	call, _, err := e.c.CreateCall(bg, validCall())
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = e.c.Invite(bg, call.ID, inviteSeeds[1].req())
	e.fg.Script(emulator.RouteGetCall, emulator.Fault{Status: 429, RetryAfter: "0"}, emulator.Fault{Status: 400})
	_, _, _ = e.c.GetCall(bg, call.ID)

	bad := newEnv(t, emulator.Options{}, func(c *Config) { c.ClientSecret = "wrong-s3cr3t" })
	_, _, _ = bad.c.CreateCall(bg, validCall())

	token := strings.TrimPrefix(lastRequest(t, e.fg, emulator.RouteCreateCall).Header.Get("Authorization"), "Bearer ")
	logs := e.logs.String() + bad.logs.String()
	for _, secret := range []string{"s3cr3t-value", "wrong-s3cr3t", token} {
		if secret == "" || strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	for _, field := range []string{`"component":"graph"`, `"op":"create_call"`, `"client_request_id"`, `"status":201`, `"attempts":1`, `"call_id":"` + call.ID + `"`} {
		if !strings.Contains(e.logs.String(), field) {
			t.Errorf("debug log lacks %s", field)
		}
	}
}

package config

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func hostname(name string, err error) func() (string, error) {
	return func() (string, error) { return name, err }
}

// TestResolveDerivesWithoutChangingConfig: the public URL, instance, peer
// port and emulator credentials are derived into the Runtime; the Config
// from Load keeps the values it was given.
func TestResolveDerivesWithoutChangingConfig(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	before := c
	rt, err := c.Resolve(8123, hostname("Botd-3.botd-peers.calls.svc", nil))
	if err != nil {
		t.Fatal(err)
	}
	if c != before {
		t.Errorf("Resolve changed the Config: %+v", c)
	}
	if rt.PublicURL != "http://127.0.0.1:8123" || rt.Instance != "botd-3" || rt.PeerPort != 8123 {
		t.Errorf("runtime %+v", rt)
	}
	if rt.TenantID != EmulatorTenantID || rt.ClientID != EmulatorClientID || len(rt.ClientSecret) != 48 {
		t.Errorf("emulator credentials %+v", rt)
	}
	if got := rt.CallbackURL(); got != "http://127.0.0.1:8123/api/calls/botd-3" {
		t.Errorf("CallbackURL = %q", got)
	}
	if got := rt.WebhookURL(); got != "http://127.0.0.1:8123/api/calls" {
		t.Errorf("WebhookURL = %q", got)
	}
	rt.UseEmulator("http://127.0.0.1:7000/v1.0", "http://127.0.0.1:7000/t/token", "http://127.0.0.1:7000/openid")
	eff := c.Effective(rt)
	if eff.ClientSecret != rt.ClientSecret || eff.GraphBaseURL != rt.GraphBaseURL || eff.AuthMetadataURL != rt.AuthMetadataURL || eff.Instance != "botd-3" {
		t.Errorf("effective %+v", eff)
	}
	if c != before {
		t.Errorf("Effective changed the Config: %+v", c)
	}
	if m := eff.Masked(); m["BOTD_CLIENT_SECRET"] != "***" || m["BOTD_PUBLIC_URL"] != "http://127.0.0.1:8123" {
		t.Errorf("masked effective config %v", m)
	}
}

func TestResolveKeepsGivenValues(t *testing.T) {
	c, err := Load(nil, env(with(creds, "BOTD_INSTANCE", "botd-0", "BOTD_PEER_PORT", "9443", "BOTD_AUTH_METADATA_URL", "https://keys.example/openid")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.Resolve(8080, hostname("", errors.New("no host name is asked for")))
	if err != nil {
		t.Fatal(err)
	}
	if rt.PublicURL != "https://bot.contoso.com" || rt.Instance != "botd-0" || rt.PeerPort != 9443 ||
		rt.ClientSecret != "s3cr3t-value" || rt.TenantID != creds["BOTD_TENANT_ID"] {
		t.Errorf("runtime %+v", rt)
	}
	rt.UseEmulator("g", "t", "k")
	if rt.AuthMetadataURL != "https://keys.example/openid" {
		t.Errorf("an explicit BOTD_AUTH_METADATA_URL was replaced: %q", rt.AuthMetadataURL)
	}
}

func TestResolveBadHostName(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(1, hostname("botd_0", nil)); err == nil || !strings.Contains(err.Error(), `BOTD_INSTANCE: not set, and the host name "botd_0" is not a DNS label`) {
		t.Errorf("bad host name: %v", err)
	}
	if _, err := c.Resolve(1, hostname("", errors.New("boom"))); err == nil || !strings.Contains(err.Error(), "BOTD_INSTANCE: not set, and no host name: boom") {
		t.Errorf("no host name: %v", err)
	}
}

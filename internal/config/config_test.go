package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/emulator"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var creds = map[string]string{
	"BOTD_CLIENT_ID":     "11111111-1111-1111-1111-111111111111",
	"BOTD_CLIENT_SECRET": "s3cr3t-value",
	"BOTD_TENANT_ID":     "22222222-2222-2222-2222-222222222222",
	"BOTD_PUBLIC_URL":    "https://bot.contoso.com",
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestDefaultsAreEmulatorMode(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Emulator {
		t.Error("no credentials should mean emulator mode")
	}
	if c.Listen != ":8080" || c.AdminListen != "127.0.0.1:9090" || c.CallbackPath != "/api/calls" || c.MaxBody != 1<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestEnvFlagsAndPrecedence(t *testing.T) {
	c, err := Load([]string{"-listen", ":7000"}, env(with(creds, "BOTD_LISTEN", ":6000", "BOTD_RETENTION", "90s", "BOTD_MAX_CALLS", "7")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7000" {
		t.Errorf("flag should win over env, got %q", c.Listen)
	}
	if c.Retention != 90*time.Second || c.MaxCalls != 7 || c.Emulator {
		t.Errorf("env not applied: %+v", c)
	}
	if got := c.CallbackURL(); got != "https://bot.contoso.com/api/calls" {
		t.Errorf("CallbackURL = %q", got)
	}
}

func TestSecretFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := with(creds, "BOTD_CLIENT_SECRET", "", "BOTD_CLIENT_SECRET_FILE", p)
	c, err := Load(nil, env(m), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret != "from-file" {
		t.Errorf("secret = %q", c.ClientSecret)
	}
	_, err = Load(nil, env(with(creds, "BOTD_CLIENT_SECRET_FILE", p)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("both secret and file: %v", err)
	}
	_, err = Load(nil, env(with(creds, "BOTD_CLIENT_SECRET", "", "BOTD_CLIENT_SECRET_FILE", p+"-missing")), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BOTD_CLIENT_SECRET_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidationNamesTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad duration", with(creds, "BOTD_RETENTION", "soon"), "BOTD_RETENTION"},
		{"negative duration", with(creds, "BOTD_RETENTION", "-1s"), "BOTD_RETENTION"},
		{"bad int", with(creds, "BOTD_MAX_CALLS", "many"), "BOTD_MAX_CALLS"},
		{"bad listen", with(creds, "BOTD_LISTEN", "nonsense"), "BOTD_LISTEN"},
		{"bad path", with(creds, "BOTD_CALLBACK_PATH", "api/calls"), "BOTD_CALLBACK_PATH"},
		{"http public url", with(creds, "BOTD_PUBLIC_URL", "http://bot.contoso.com"), "BOTD_PUBLIC_URL"},
		{"public url with path", with(creds, "BOTD_PUBLIC_URL", "https://bot.contoso.com/x"), "BOTD_PUBLIC_URL"},
		{"missing public url", with(creds, "BOTD_PUBLIC_URL", ""), "BOTD_PUBLIC_URL"},
		{"partial creds", map[string]string{"BOTD_CLIENT_ID": "x", "BOTD_PUBLIC_URL": "https://b.example"}, "BOTD_CLIENT_SECRET"},
		{"emulator non-loopback url", map[string]string{"BOTD_PUBLIC_URL": "https://bot.contoso.com"}, "emulator mode"},
		{"china", with(creds, "BOTD_CLOUD", "china"), "not supported"},
		{"bad cloud", with(creds, "BOTD_CLOUD", "mars"), "BOTD_CLOUD"},
		{"log level", with(creds, "BOTD_LOG_LEVEL", "loud"), "BOTD_LOG_LEVEL"},
		{"log format", with(creds, "BOTD_LOG_FORMAT", "xml"), "BOTD_LOG_FORMAT"},
		{"log flush negative", with(creds, "BOTD_LOG_FLUSH", "-1s"), "BOTD_LOG_FLUSH"},
		{"log flush too long", with(creds, "BOTD_LOG_FLUSH", "1m"), "BOTD_LOG_FLUSH"},
		{"gc heap floor negative", with(creds, "BOTD_GC_HEAP_FLOOR", "-1"), "BOTD_GC_HEAP_FLOOR"},
		{"gc heap floor too big", with(creds, "BOTD_GC_HEAP_FLOOR", "2199023255552"), "BOTD_GC_HEAP_FLOOR"},
		{"incoming action", with(creds, "BOTD_INCOMING_ACTION", "dance"), "BOTD_INCOMING_ACTION"},
		{"redirect needs target", with(creds, "BOTD_INCOMING_ACTION", "redirect"), "BOTD_REDIRECT_TARGET"},
		{"bad invite target", with(creds, "BOTD_INVITE_ON_ESTABLISH", "+0123"), "BOTD_INVITE_ON_ESTABLISH"},
		{"too many invitees", with(creds, "BOTD_INVITE_ON_ESTABLISH", "+12345678901,+12345678902,+12345678903,+12345678904,+12345678905,+12345678906"), "at most 5"},
		{"keepalive too long", with(creds, "BOTD_KEEPALIVE_INTERVAL", "45m"), "BOTD_KEEPALIVE_INTERVAL"},
		{"graph url http", with(creds, "BOTD_GRAPH_BASE_URL", "http://graph.example.com"), "BOTD_GRAPH_BASE_URL"},
		{"max body", with(creds, "BOTD_MAX_BODY", "10"), "BOTD_MAX_BODY"},
		{"workers", with(creds, "BOTD_WORKERS", "0"), "BOTD_WORKERS"},
		{"state", with(creds, "BOTD_STATE", "disk"), "BOTD_STATE"},
		{"journal needs a dir", with(with(creds, "BOTD_STATE", "journal"), "BOTD_DATA_DIR", " "), "BOTD_DATA_DIR"},
		{"journal lag", with(creds, "BOTD_JOURNAL_LAG", "0s"), "BOTD_JOURNAL_LAG"},
		{"history retention", with(creds, "BOTD_HISTORY_RETENTION", "-1h"), "BOTD_HISTORY_RETENTION"},
		{"recovery rate", with(creds, "BOTD_RECOVERY_RATE", "0"), "BOTD_RECOVERY_RATE"},
		{"recovery timeout", with(creds, "BOTD_RECOVERY_TIMEOUT", "0s"), "BOTD_RECOVERY_TIMEOUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(nil, env(tc.env), io.Discard)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	c, err := Load(nil, env(creds), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Masked()
	if m["BOTD_CLIENT_SECRET"] != "***" {
		t.Errorf("secret not masked: %q", m["BOTD_CLIENT_SECRET"])
	}
	if m["BOTD_CLIENT_ID"] != creds["BOTD_CLIENT_ID"] {
		t.Errorf("client id = %q", m["BOTD_CLIENT_ID"])
	}
	for k, v := range m {
		if strings.Contains(v, "s3cr3t-value") {
			t.Errorf("%s leaks the secret", k)
		}
	}
	if c.ClientSecret != "s3cr3t-value" {
		t.Error("Masked must not change the config")
	}
	if len(m) != len(settings()) {
		t.Errorf("masked has %d settings, want %d", len(m), len(settings()))
	}
}

func TestSettingsDocumentsEverySetting(t *testing.T) {
	s := Settings()
	seen := map[string]bool{}
	for _, st := range s {
		seen[st.Env] = true
	}
	for _, want := range []string{"BOTD_LISTEN", "BOTD_ADMIN_LISTEN", "BOTD_CALLBACK_PATH", "BOTD_PUBLIC_URL", "BOTD_MAX_BODY", "BOTD_SHUTDOWN_TIMEOUT", "BOTD_CLIENT_SECRET_FILE", "BOTD_LOG_LEVEL", "BOTD_LOG_FORMAT"} {
		if !seen[want] {
			t.Errorf("Settings lacks %s", want)
		}
	}
}

func TestReadmeConfigTableIsComplete(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	for _, st := range Settings() {
		if !strings.Contains(string(b), "`"+st.Env+"`") {
			t.Errorf("README config table lacks %s", st.Env)
		}
	}
}

func TestPeers(t *testing.T) {
	c, err := Load(nil, env(with(creds, "BOTD_PEERS", "botd-0=http://127.0.0.1:9001, botd-1=http://127.0.0.1:9002/")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c.PeerMap()
	if len(m) != 2 || m["botd-1"] != "http://127.0.0.1:9002" {
		t.Fatalf("peers = %v", m)
	}
	for _, bad := range []string{"botd-0", "Botd=http://x:1", "botd-0=ftp://x", "botd-0=http://x:1/path"} {
		if _, err := Load(nil, env(with(creds, "BOTD_PEERS", bad)), io.Discard); err == nil || !strings.Contains(err.Error(), "BOTD_PEERS") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTypedValueErrorsNameTheForm(t *testing.T) {
	for _, tc := range []struct{ k, v, want string }{
		{"BOTD_RETENTION", "10", `BOTD_RETENTION: "10" is not a duration (for example 10m, 90s)`},
		{"BOTD_METRICS_OPEN", "yes", `BOTD_METRICS_OPEN: "yes" is not true or false`},
		{"BOTD_MAX_CALLS", "many", `BOTD_MAX_CALLS: "many" is not a whole number`},
		{"BOTD_MAX_BODY", "1.5", `BOTD_MAX_BODY: "1.5" is not a whole number`},
		{"BOTD_EMULATOR_SEED", "x", `BOTD_EMULATOR_SEED: "x" is not a whole number`},
		{"BOTD_EMULATOR_TIME_SCALE", "fast", `BOTD_EMULATOR_TIME_SCALE: "fast" is not a number (for example 0.5)`},
	} {
		_, err := Load(nil, env(with(creds, tc.k, tc.v)), io.Discard)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s=%s: got %v, want %s", tc.k, tc.v, err, tc.want)
		}
	}
}

func TestFlagErrorsAreOneLineWordedAsEnv(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-retention", "10"}, `-retention: "10" is not a duration (for example 10m, 90s)`},
		{[]string{"-max-calls=many"}, `-max-calls: "many" is not a whole number`},
		{[]string{"-metrics-open=yes"}, `-metrics-open: "yes" is not true or false`},
		{[]string{"-nope"}, `flag provided but not defined: -nope`},
		{[]string{"stray"}, `unexpected arguments: ["stray"]`},
	} {
		var out strings.Builder
		_, err := Load(tc.args, env(nil), &out)
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != tc.want || out.Len() != 0 {
			t.Errorf("%q: %T %v (output %q), want UsageError %s", tc.args, err, err, out.String(), tc.want)
		}
	}
	var out strings.Builder
	if _, err := Load([]string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(out.String(), "Usage: botd") {
		t.Errorf("-h: %v, %q", err, out.String())
	}
}

func TestGraphEmulator(t *testing.T) {
	c, err := Load([]string{"-graph", "emulator:http://127.0.0.1:7070/"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Emulator || c.TenantID != emulator.DefaultTenantID || c.ClientID != emulator.DefaultClientID || c.ClientSecret != emulator.DefaultClientSecret ||
		c.GraphBaseURL != "http://127.0.0.1:7070/v1.0" || c.TokenURL != "http://127.0.0.1:7070/fake-tenant/oauth2/v2.0/token" ||
		c.AuthMetadataURL != "http://127.0.0.1:7070/v1/.well-known/OpenIdConfiguration" || c.InboundAuth != "on" || c.PublicURL != "" {
		t.Fatalf("config %+v", c)
	}
	// What is set explicitly wins.
	c, err = Load(nil, env(map[string]string{"BOTD_GRAPH": "emulator:http://127.0.0.1:7070", "BOTD_TENANT_ID": "t-9", "BOTD_CLIENT_ID": "app-9", "BOTD_TOKEN_URL": "http://127.0.0.1:1/token"}), io.Discard)
	if err != nil || c.TenantID != "t-9" || c.ClientID != "app-9" || c.ClientSecret != emulator.DefaultClientSecret || c.TokenURL != "http://127.0.0.1:1/token" {
		t.Fatalf("explicit settings: %+v %v", c, err)
	}
	for _, bad := range []string{"x", "http://127.0.0.1:7070", "emulator:", "emulator:ftp://h", "emulator:http://h:1/path", "graph:https://graph.microsoft.com"} {
		_, err := Load(nil, env(map[string]string{"BOTD_GRAPH": bad}), io.Discard)
		if want := `BOTD_GRAPH: "` + bad + `" must be emulator:<URL>, e.g. emulator:http://127.0.0.1:7070`; err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", bad, err, want)
		}
	}
	if _, err := Load(nil, env(map[string]string{"BOTD_GRAPH": "emulator:http://emu.example.com"}), io.Discard); err == nil || !strings.Contains(err.Error(), "BOTD_GRAPH_BASE_URL: must be an https URL") {
		t.Errorf("plain http off loopback: %v", err)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{"BOTD_LISTNE=:8080", "BOTD_LISTEN=:1", "BOTD_CLIENT_SECRET_FILE=/s", "PATH=/bin", "BOTD_QQQQQQQQQQ=1", "BOTD_RETENTON"}, KnownEnv())
	want := []string{
		"unknown environment variable BOTD_LISTNE; did you mean BOTD_LISTEN?",
		"unknown environment variable BOTD_QQQQQQQQQQ",
		"unknown environment variable BOTD_RETENTON; did you mean BOTD_RETENTION?",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Credentials: exactly one of secret, certificate and federated token
// file; Azure workload identity's file is the default when none is set.
func TestCredentialForms(t *testing.T) {
	cert := with(creds, "BOTD_CLIENT_SECRET", "", "BOTD_CLIENT_CERTIFICATE_FILE", "/etc/botd/cert.pem")
	c, err := Load(nil, env(cert), io.Discard)
	if err != nil || c.Emulator || c.ClientCertificateFile != "/etc/botd/cert.pem" || c.ClientSecret != "" {
		t.Fatalf("certificate: %+v %v", c, err)
	}
	fed := with(creds, "BOTD_CLIENT_SECRET", "", AzureFederatedTokenFile, "/var/run/secrets/azure/tokens/azure-identity-token")
	c, err = Load(nil, env(fed), io.Discard)
	if err != nil || c.FederatedTokenFile != "/var/run/secrets/azure/tokens/azure-identity-token" {
		t.Fatalf("federated default: %+v %v", c, err)
	}
	// A secret wins over the default: the projected file is not a second
	// credential when the user chose one.
	c, err = Load(nil, env(with(creds, AzureFederatedTokenFile, "/x")), io.Discard)
	if err != nil || c.FederatedTokenFile != "" {
		t.Fatalf("secret and the Azure file: %+v %v", c, err)
	}
	_, err = Load(nil, env(with(creds, "BOTD_CLIENT_CERTIFICATE_FILE", "/etc/botd/cert.pem")), io.Discard)
	if want := "BOTD_CLIENT_SECRET: set only one of BOTD_CLIENT_SECRET, BOTD_CLIENT_CERTIFICATE_FILE and BOTD_FEDERATED_TOKEN_FILE"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("two credentials: %v", err)
	}
	_, err = Load(nil, env(with(creds, "BOTD_CLIENT_SECRET", "")), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "a credential is required") {
		t.Fatalf("no credential: %v", err)
	}
	// A certificate alone is not emulator mode: it needs the rest.
	_, err = Load(nil, env(map[string]string{"BOTD_CLIENT_CERTIFICATE_FILE": "/c.pem"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BOTD_CLIENT_ID") {
		t.Fatalf("certificate alone: %v", err)
	}
}

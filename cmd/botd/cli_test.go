package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/config"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

// environOf is the environment env stands for, as os.Environ lists it.
func environOf(env map[string]string) func() []string {
	return func() []string {
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
}

// runCLI runs botd as main does, and returns its exit code and output.
func runCLI(ctx context.Context, args []string, env map[string]string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = cli(ctx, args, func(k string) string { return env[k] }, environOf(env), &o, &e)
	return code, o.String(), e.String()
}

// TestHelp: -h and -help print the usage, by area, each flag with its
// variable and default, and exit 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help"} {
		code, out, errOut := runCLI(context.Background(), []string{arg}, nil)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		at := 0
		for _, want := range []string{
			"Usage: botd [flags]\n",
			"\nSubcommands:\n  emulator   run the standalone Graph calling emulator, for a botd elsewhere\n",
			"\n  version    print botd's version\n",
			"\nListeners:\n  -listen string\n        BOTD_LISTEN, default \":8080\"\n        public listener address (Graph callbacks, /livez)\n",
			"\nReplicas:\n", "\nLogging:\n",
			"\nGraph:\n",
			"  -client-secret string\n        BOTD_CLIENT_SECRET or BOTD_CLIENT_SECRET_FILE\n",
			"  -graph string\n        BOTD_GRAPH\n        point botd at a standalone Graph emulator",
			"\nCall store:\n  -retention duration\n        BOTD_RETENTION, default 10m0s\n",
			"\nSecurity:\n", "  -metrics-open\n        BOTD_METRICS_OPEN, default true\n",
			"\nAutomation:\n", "\nEmulator mode:\n  -emulator-listen string\n",
		} {
			i := strings.Index(out[at:], want)
			if i < 0 {
				t.Fatalf("%s: usage lacks (or misorders) %q:\n%s", arg, want, out)
			}
			at += i + len(want)
		}
		for _, s := range config.Settings() {
			if s.Flag != "" && !strings.Contains(out, "  -"+s.Flag+" ") && !strings.Contains(out, "  -"+s.Flag+"\n") {
				t.Errorf("%s: usage lacks -%s", arg, s.Flag)
			}
			if s.Area == "" {
				t.Errorf("setting %s has no area", s.Env)
			}
		}
	}
	code, out, _ := runCLI(context.Background(), []string{"emulator", "-h"}, nil)
	if code != 0 || !strings.Contains(out, "Usage: botd emulator [flags]\n") ||
		!strings.Contains(out, "  -bot-callback string\n        BOTD_EMULATOR_BOT_CALLBACK\n") ||
		!strings.Contains(out, "  -client-secret string\n        BOTD_EMULATOR_CLIENT_SECRET or BOTD_EMULATOR_CLIENT_SECRET_FILE, default \"fake-secret\"\n") {
		t.Fatalf("emulator -h: exit %d:\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(context.Background(), []string{"version"}, nil)
	if want := "botd dev (" + runtime.Version() + ")\n"; code != 0 || out != want {
		t.Fatalf("version: exit %d, %q, want %q", code, out, want)
	}
	defer func(v string) { version = v }(version)
	version = "1.4.2"
	if _, out, _ := runCLI(context.Background(), []string{"version"}, nil); !strings.HasPrefix(out, "botd 1.4.2 (go") {
		t.Fatalf("stamped version: %q", out)
	}
}

// TestUsageErrors: a bad command line is one line and a hint, exit 2; a
// bad config is exit 1.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"-nope"}, nil, 2, "botd: flag provided but not defined: -nope\nRun 'botd -h' for usage.\n"},
		{[]string{"-retention", "10"}, nil, 2, "botd: -retention: \"10\" is not a duration (for example 10m, 90s)\nRun 'botd -h' for usage.\n"},
		{[]string{"-metrics-open=yes"}, nil, 2, "botd: -metrics-open: \"yes\" is not true or false\nRun 'botd -h' for usage.\n"},
		{[]string{"stray"}, nil, 2, "botd: unexpected arguments: [\"stray\"]\nRun 'botd -h' for usage.\n"},
		{[]string{"version", "x"}, nil, 2, "botd: version: unexpected arguments [\"x\"]\nRun 'botd -h' for usage.\n"},
		{[]string{"emulator", "-nope"}, nil, 2, "botd: flag provided but not defined: -nope\nRun 'botd emulator -h' for usage.\n"},
		{[]string{"emulator", "-seed", "x"}, nil, 2, "botd: -seed: \"x\" is not a whole number\nRun 'botd emulator -h' for usage.\n"},
		{nil, map[string]string{"BOTD_RETENTION": "10"}, 1, "botd: config: BOTD_RETENTION: \"10\" is not a duration (for example 10m, 90s)\n"},
		{[]string{"emulator", "-bot-callback", "x"}, nil, 1, "botd: BOTD_EMULATOR_BOT_CALLBACK: \"x\" is not an http(s) URL\n"},
		{nil, map[string]string{"BOTD_GRAPH": "x"}, 1, "botd: config: BOTD_GRAPH: \"x\" must be emulator:<URL>, e.g. emulator:http://127.0.0.1:7070\n"},
	} {
		code, out, errOut := runCLI(context.Background(), tc.args, tc.env)
		if code != tc.code || errOut != tc.want || out != "" {
			t.Errorf("%q %v: exit %d, stderr %q, stdout %q; want exit %d, stderr %q", tc.args, tc.env, code, errOut, out, tc.code, tc.want)
		}
	}
}

// TestUnknownEnvWarned: a BOTD_* variable nothing reads is logged, with the
// closest known name when there is one.
func TestUnknownEnvWarned(t *testing.T) {
	b := start(t, map[string]string{"BOTD_LISTNE": ":8080", "BOTD_QQQQQQQQQQ": "1"})
	for _, want := range []string{
		"unknown environment variable BOTD_LISTNE; did you mean BOTD_LISTEN?",
		"unknown environment variable BOTD_QQQQQQQQQQ",
	} {
		l := b.logs.wait(t, want, func(m map[string]any) bool { return m["message"] == want })
		if l["level"] != "warn" {
			t.Errorf("%s: level %v", want, l["level"])
		}
	}
	if strings.Contains(b.logs.String(), "unknown environment variable BOTD_LISTEN\"") {
		t.Errorf("a known variable was warned of:\n%s", b.logs.String())
	}
	// Every name botd or botd emulator reads is known.
	var environ []string
	for _, k := range []string{"BOTD_GRAPH", "BOTD_CLIENT_SECRET_FILE", "BOTD_ADMIN_TOKEN_FILE", "BOTD_EMULATOR_BOT_CALLBACK", "BOTD_EMULATOR_CLIENT_SECRET_FILE", "BOTD_EMULATOR_LISTEN", "BOTD_EMULATOR_TIME_SCALE", "BOTD_INBOUND_AUTH", "OTHER_X"} {
		environ = append(environ, k+"=1")
	}
	if w := config.UnknownEnv(environ, knownEnv()); len(w) != 0 {
		t.Errorf("known variables warned of: %q", w)
	}
}

// TestConsoleLogHasNoColourOffTerminal: BOTD_LOG_FORMAT=console into a
// buffer (not a terminal) has no ANSI escapes.
func TestConsoleLogHasNoColourOffTerminal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // botd starts, logs, and stops at once
	env := map[string]string{
		"BOTD_LISTEN": "127.0.0.1:0", "BOTD_ADMIN_LISTEN": "127.0.0.1:0", "BOTD_EMULATOR_LISTEN": "127.0.0.1:0",
		"BOTD_LOG_FORMAT": "console", "BOTD_INSTANCE": "botd-0", "BOTD_DATA_DIR": t.TempDir(),
	}
	var out bytes.Buffer
	if err := run(ctx, nil, func(k string) string { return env[k] }, environOf(env), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "botd ready") || strings.Contains(out.String(), "\x1b[") {
		t.Fatalf("console log:\n%q", out.String())
	}
	if isTerminal(&out) {
		t.Error("a buffer is not a terminal")
	}
	if f, err := os.Open(os.DevNull); err == nil {
		defer f.Close()
		if isTerminal(f) {
			t.Error("/dev/null is not a terminal")
		}
	}
}

// startStandaloneEmulator runs "botd emulator" through run on a kernel
// chosen port and returns the env line it prints for a botd.
func startStandaloneEmulator(t *testing.T, args ...string) map[string]string {
	t.Helper()
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"emulator", "-listen", "127.0.0.1:0", "-time-scale", e2eTimeScale}, args...),
			func(string) string { return "" }, nil, logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("emulator did not stop")
		}
	})
	const prefix = "point a botd at this emulator: "
	l := logs.wait(t, "env line", func(m map[string]any) bool { s, _ := m["message"].(string); return strings.HasPrefix(s, prefix) })
	env := map[string]string{}
	for _, kv := range strings.Fields(strings.TrimPrefix(l["message"].(string), prefix)) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if l["env"] != strings.TrimPrefix(l["message"].(string), prefix) {
		t.Errorf("env field %v", l["env"])
	}
	return env
}

// TestGraphIsStandaloneEmulator: a botd started with the line "botd
// emulator" prints talks to that emulator, with callback authentication
// on: an outgoing call it creates becomes established, and an incoming
// call rings it.
func TestGraphIsStandaloneEmulator(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := startStandaloneEmulator(t, "-bot-callback", fmt.Sprintf("http://127.0.0.1:%d/api/calls", port))
	root, ok := strings.CutPrefix(env["BOTD_GRAPH"], "emulator:http://127.0.0.1:")
	if !ok || root == "" || env["BOTD_PUBLIC_URL"] != fmt.Sprintf("http://127.0.0.1:%d", port) || env["BOTD_LISTEN"] != fmt.Sprintf(":%d", port) || len(env) != 3 {
		t.Fatalf("env line %v", env)
	}
	env["BOTD_INSTANCE"] = "botd-0"
	b := start(t, env)
	cfg := b.logs.wait(t, "effective config", func(m map[string]any) bool { return m["message"] == "effective config" })
	c := cfg["config"].(map[string]any)
	if cfg["emulator"] != false || c["BOTD_INBOUND_AUTH"] != "on" || c["BOTD_TENANT_ID"] != emulator.DefaultTenantID || c["BOTD_CLIENT_ID"] != emulator.DefaultClientID ||
		c["BOTD_GRAPH_BASE_URL"] != "http://127.0.0.1:"+root+"/v1.0" ||
		c["BOTD_TOKEN_URL"] != "http://127.0.0.1:"+root+"/"+emulator.DefaultTenantID+"/oauth2/v2.0/token" ||
		c["BOTD_AUTH_METADATA_URL"] != "http://127.0.0.1:"+root+"/v1/.well-known/OpenIdConfiguration" {
		t.Fatalf("effective config %v (emulator %v)", c, cfg["emulator"])
	}
	if strings.Contains(b.logs.String(), `"emulator serving"`) {
		t.Fatal("botd started its own emulator")
	}
	bot := &e2eBot{botd: b, incoming: "http://127.0.0.1:" + root + "/emulator/incoming"}
	raw, err := os.ReadFile("../../examples/create-p2p-service-media.json")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	v := e2eCreateCall(t, bot, body)
	e2eWaitCall(t, bot, v.ID, "established", e2eEstablished)

	code, out, err := e2eDo("POST", bot.incoming, map[string]any{"from": map[string]any{"user": e2eCaller, "displayName": "Megan Bowen"}})
	if err != nil || code != 201 {
		t.Fatalf("emulator incoming = %d %v: %s", code, err, out)
	}
	var rung model.Call
	if err := json.Unmarshal(out, &rung); err != nil || rung.ID == "" {
		t.Fatalf("incoming answer %s: %v", out, err)
	}
	e2eWaitTracked(t, bot, rung.ID)
	e2eWaitCall(t, bot, rung.ID, "answered and established", e2eEstablished)
	if strings.Contains(b.logs.String(), "inbound authentication is OFF") {
		t.Fatal("callback authentication is off")
	}
}

func TestBotEnvFor(t *testing.T) {
	for _, tc := range []struct{ callback, want string }{
		{"http://127.0.0.1:8080/api/calls", "BOTD_PUBLIC_URL=http://127.0.0.1:8080"},
		{"http://localhost:8081/hooks/calls/", "BOTD_PUBLIC_URL=http://localhost:8081 BOTD_CALLBACK_PATH=/hooks/calls BOTD_LISTEN=:8081"},
		{"https://bot.contoso.com/api/calls", "BOTD_PUBLIC_URL=https://bot.contoso.com BOTD_LISTEN=:443"},
	} {
		env, err := botEnvFor(tc.callback)
		if got := strings.Join(env, " "); err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.callback, got, err, tc.want)
		}
	}
}

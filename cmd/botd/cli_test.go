package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/botd/botd/internal/config"
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
	for _, k := range []string{"BOTD_CLIENT_SECRET_FILE", "BOTD_ADMIN_TOKEN_FILE", "BOTD_EMULATOR_BOT_CALLBACK", "BOTD_EMULATOR_CLIENT_SECRET_FILE", "BOTD_EMULATOR_LISTEN", "BOTD_EMULATOR_TIME_SCALE", "BOTD_INBOUND_AUTH", "OTHER_X"} {
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
		"BOTD_LOG_FORMAT": "console", "BOTD_INSTANCE": "botd-0",
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

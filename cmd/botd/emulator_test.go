package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEmulatorSubcommand: "botd emulator" serves the emulator on its own,
// with flags from BOTD_EMULATOR_*.
func TestEmulatorSubcommand(t *testing.T) {
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{"BOTD_EMULATOR_SEED": "42", "BOTD_EMULATOR_FAULTS": "duplicate=0.5"}
	go func() {
		done <- run(ctx, []string{"emulator", "-listen", "127.0.0.1:0"}, func(k string) string { return env[k] }, environOf(env), logs, io.Discard)
	}()
	l := logs.wait(t, "emulator listening", func(m map[string]any) bool { return m["message"] == "emulator listening" })
	seedLine := logs.wait(t, "seed", func(m map[string]any) bool { _, ok := m["seed"]; return ok })
	if seedLine["seed"] != float64(42) {
		t.Errorf("seed = %v", seedLine["seed"])
	}
	code, body := get(t, l["openid_configuration"].(string))
	if code != http.StatusOK {
		t.Fatalf("openid configuration = %d", code)
	}
	var oidc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &oidc); err != nil || !strings.HasPrefix(oidc.JWKSURI, "http://127.0.0.1:") {
		t.Fatalf("openid configuration %s: %v", body, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("emulator returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("emulator did not stop")
	}
	err := run(context.Background(), []string{"emulator", "-faults", "sneeze=1"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BOTD_EMULATOR_FAULTS") {
		t.Errorf("bad faults: %v", err)
	}
}

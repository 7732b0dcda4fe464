package main

import (
	"io"
	"testing"

	"github.com/botd/botd/internal/config"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/graph"
)

// TestGraphMaxRetriesZeroMeansNoRetries is the regression test of the
// retries bug: BOTD_GRAPH_MAX_RETRIES=0 means no retries end to end. The
// config keeps the 0, graphConfig passes it to graph.Config as it is, and
// a throttled create call reaches Graph once and fails, with no retry.
func TestGraphMaxRetriesZeroMeansNoRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  string
		want int
	}{{"0", 0}, {"", graph.DefaultMaxRetries}, {"7", 7}} {
		getenv := func(k string) string {
			if k == "BOTD_GRAPH_MAX_RETRIES" {
				return tc.env
			}
			return ""
		}
		cfg, err := config.Load(nil, getenv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := cfg.Resolve(8080, func() (string, error) { return "botd-0", nil })
		if err != nil {
			t.Fatal(err)
		}
		if got := graphConfig(&cfg, &rt).MaxRetries; got != tc.want {
			t.Errorf("BOTD_GRAPH_MAX_RETRIES=%q: graph.Config.MaxRetries = %d, want %d", tc.env, got, tc.want)
		}
	}

	b := e2eStartExternal(t, emulator.Options{
		Seed: 20260804, TimeScale: 0.05,
		// The first Graph request, the create call, is throttled for certain.
		Faults: map[emulator.FaultKind]emulator.FaultRule{emulator.FaultThrottle: {Next: 1}},
	}, map[string]string{"BOTD_GRAPH_MAX_RETRIES": "0"})
	if _, err := e2eTryCreate(b, e2eCreateBody(t, "003_26")); err == nil {
		t.Fatal("a throttled create call with no retries must fail")
	}
	creates := 0
	for _, r := range b.emu.GraphRequests() {
		if r.Route == emulator.RouteCreateCall {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("the emulator saw %d create-call requests, want 1: BOTD_GRAPH_MAX_RETRIES=0 is no retries", creates)
	}
	if n := b.emu.FaultsInjected(emulator.FaultThrottle); n != 1 {
		t.Errorf("throttle faults injected: %d, want 1", n)
	}
	if n := e2eMetric(t, b, "botd_graph_retries_total"); n != 0 {
		t.Errorf("botd_graph_retries_total = %v, want 0", n)
	}
}

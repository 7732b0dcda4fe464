package flows

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestExamplesLoad: the shipped examples load with no error.
func TestExamplesLoad(t *testing.T) {
	set, err := LoadPath("../../examples/flows", Options{DefaultTimeout: DefaultWaitTimeout})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range set.Flows() {
		names = append(names, f.Name)
	}
	if len(names) != 3 {
		t.Fatalf("flows %v", names)
	}
}

// TestBuiltinLoads: the built-in flow loads, and its defaults are set from
// the settings given.
func TestBuiltinLoads(t *testing.T) {
	f, err := Builtin(Options{DefaultTimeout: DefaultWaitTimeout}, map[string]any{"incomingAction": "reject", "invite": []any{"+12345678901"}, "inviteRetries": 3, "inviteBackoff": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.param("incomingAction").Default; got != "reject" {
		t.Errorf("incomingAction default %v", got)
	}
	if got := f.param("inviteRetries").Default; got != int64(3) {
		t.Errorf("inviteRetries default %v (%T)", got, got)
	}
	if _, err := Builtin(Options{DefaultTimeout: DefaultWaitTimeout}, map[string]any{"inviteRetries": "x"}); err == nil {
		t.Error("a mistyped default was accepted")
	}
}

// TestREADMEFlowLoads: every YAML block of the README's Flows section is
// a flow that loads.
func TestREADMEFlowLoads(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Flows\n")
	if !ok {
		t.Fatal("README has no Flows section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := strings.Split(section, "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("the Flows section has no yaml block")
	}
	for i, blk := range blocks {
		text, _, _ := strings.Cut(blk, "```")
		if _, err := Load([]Source{{File: fmt.Sprintf("README.md block %d", i+1), Data: []byte(text)}}, Options{DefaultTimeout: DefaultWaitTimeout}); err != nil {
			t.Errorf("README block %d: %v", i+1, err)
		}
	}
}

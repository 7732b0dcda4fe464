package flows

import "testing"

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

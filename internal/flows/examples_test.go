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

package flows

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds the loader arbitrary flow files, seeded with the shipped
// examples, the built-in flow and every broken flow of TestBrokenFlows. A
// file either loads into flows that all have steps, or gives LoadErrors
// that each name the file and a position in it; it never panics.
func FuzzLoad(f *testing.F) {
	f.Add(builtinYAML)
	examples, err := filepath.Glob("../../examples/flows/*.yaml")
	if err != nil || len(examples) == 0 {
		f.Fatalf("examples: %v %v", examples, err)
	}
	for _, p := range examples {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range brokenFlows {
		f.Add([]byte(c.src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Load([]Source{{File: "f.yaml", Data: data}}, Options{DefaultTimeout: DefaultWaitTimeout})
		if err == nil {
			for _, fl := range set.Flows() {
				if fl.Name == "" || len(fl.steps) == 0 {
					t.Fatalf("loaded flow %q with %d steps", fl.Name, len(fl.steps))
				}
			}
			return
		}
		var les LoadErrors
		if !errors.As(err, &les) || len(les) == 0 {
			t.Fatalf("error %T %v, want LoadErrors", err, err)
		}
		for _, le := range les {
			if !strings.HasPrefix(le.Error(), "f.yaml:") || le.Msg == "" {
				t.Fatalf("error %q: want file:line:column: message", le.Error())
			}
		}
	})
}

package emulator

import (
	"strings"
	"testing"
)

func TestParseFaults(t *testing.T) {
	got, err := ParseFaults(" reorder=0.2, duplicate=0.1,throttle=0/2 ")
	if err != nil {
		t.Fatal(err)
	}
	want := map[FaultKind]FaultRule{
		FaultReorder:   {Probability: 0.2},
		FaultDuplicate: {Probability: 0.1},
		FaultThrottle:  {Next: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %+v, want %+v", k, got[k], v)
		}
	}
	if m, err := ParseFaults(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
	for _, bad := range []string{"reorder", "sneeze=0.1", "reorder=2", "reorder=-1", "reorder=NaN", "reorder=0.1,reorder=0.2", "throttle=0/x", "throttle=0/-1"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"", "reorder=0.2,duplicate=0.1", "throttle=0/2", "x=y", "roster_gap=1/1000000", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseFaults(s)
		if err != nil {
			return
		}
		for k, r := range m {
			if !strings.Contains(s, string(k)) {
				t.Fatalf("kind %q not in the input", k)
			}
			if r.Probability < 0 || r.Probability > 1 || r.Next < 0 {
				t.Fatalf("rule out of range: %+v", r)
			}
		}
	})
}

package emulator

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
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

// The error for an unknown kind lists the known ones as a user writes them.
func TestParseFaultsUnknownKindText(t *testing.T) {
	_, err := ParseFaults("reordr=0.1")
	want := `fault "reordr": unknown kind (known: reorder, duplicate, delay, roster_gap, operation_failed, throttle, unavailable, token)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// The seed line names the setting a user sets to repeat a run.
func TestSeedLogNamesTheSetting(t *testing.T) {
	var buf bytes.Buffer
	New(Options{Seed: 7, Log: zerolog.New(&buf)})
	if !strings.Contains(buf.String(), `"message":"emulator seed (set BOTD_EMULATOR_SEED to repeat this run)"`) || !strings.Contains(buf.String(), `"seed":7`) {
		t.Fatalf("seed log: %s", buf.String())
	}
}

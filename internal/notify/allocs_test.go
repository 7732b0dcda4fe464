package notify

import (
	"os"
	"path/filepath"
	"testing"
)

// maxRosterAllocs is the allocation budget for decoding the benchmark
// roster payload: the Batch, the events slice, the roster slice, the
// participant's identity set, identity and media streams, and the strings
// an event must own (both paths, the identity's id and tenant id, the
// stream's source id). Interned OData types and enumeration values cost
// nothing.
const maxRosterAllocs = 15

func TestDecodeRosterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	body := compactPayload(t, rosterPayload)
	d := NewDecoder(DefaultLimits())
	if _, err := d.Decode(body); err != nil { // warm the pool
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := d.Decode(body); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocs per Decode of %s", allocs, rosterPayload)
	if allocs > maxRosterAllocs {
		t.Errorf("Decode(%s) made %.1f allocations, budget %d", rosterPayload, allocs, maxRosterAllocs)
	}
}

// TestDecodeMediaAllocs: a tone update costs the Batch, the events slice,
// the call, its toneInfo and the resourceUrl; tolerating a quirk costs
// nothing: the hang-up's quoted codes parse in place (its resultInfo and
// message are the extra two), and a path without '/' is not copied.
func TestDecodeMediaAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	d := NewDecoder(DefaultLimits())
	for _, tt := range []struct {
		body   string
		budget float64
	}{
		{"call-subscribetotone-1.json", 5},
		{"call-delete-2.json", 6},
		{"participant-startholdmusic-1.json", 5},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", "media", tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Decode(body); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			if b, err := d.Decode(body); err != nil || len(b.Events) != 1 {
				t.Fatal(err)
			}
		})
		t.Logf("%.1f allocs per Decode of %s", allocs, tt.body)
		if allocs > tt.budget {
			t.Errorf("Decode(%s) made %.1f allocations, budget %.0f", tt.body, allocs, tt.budget)
		}
	}
}

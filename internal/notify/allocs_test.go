package notify

import "testing"

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

package notify

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// TestInternerShares: a tenant id seen before is the same string, not a
// copy; the table stops growing at its bound and keeps no long strings.
func TestInternerShares(t *testing.T) {
	in := newInterner(maxTenantIDs, maxTenantIDLen)
	a := in.intern([]byte("72f988bf-86f1-41af-91ab-2d7cd011db47"))
	b := in.intern([]byte("72f988bf-86f1-41af-91ab-2d7cd011db47"))
	if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("the same tenant id was copied twice")
	}
	long := strings.Repeat("x", maxTenantIDLen+1)
	if got := in.intern([]byte(long)); got != long || len(in.m) != 1 {
		t.Fatalf("a long id was kept: %d entries", len(in.m))
	}
	for i := range 2 * maxTenantIDs {
		if s := fmt.Sprint(i); in.intern([]byte(s)) != s {
			t.Fatalf("intern(%s) changed it", s)
		}
	}
	if len(in.m) != maxTenantIDs {
		t.Fatalf("%d entries, want the bound %d", len(in.m), maxTenantIDs)
	}
}

// TestDecodedTenantIDsShared: two bodies naming the same tenant decode to
// one copy of its id.
func TestDecodedTenantIDsShared(t *testing.T) {
	d := NewDecoder(DefaultLimits())
	var ids []string
	for range 2 {
		b, err := d.Decode(compactPayload(t, rosterPayload))
		if err != nil || len(b.Events) != 1 || len(b.Events[0].Participants) == 0 {
			t.Fatalf("%v %+v", err, b)
		}
		_, id := b.Events[0].Participants[0].Info.Identity.Primary()
		if id == nil || id.TenantID == "" {
			t.Fatal("the example's participant has no tenant id")
		}
		ids = append(ids, id.TenantID)
	}
	if unsafe.StringData(ids[0]) != unsafe.StringData(ids[1]) {
		t.Fatal("each decode holds its own copy of the tenant id")
	}
}

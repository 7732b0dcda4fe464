package handlers

import (
	"bytes"
	"net/http"
	"testing"
)

// TestPprof: the profiles are on the admin listener only with
// BOTD_ADMIN_PPROF, and behind the admin token like the admin API.
func TestPprof(t *testing.T) {
	off := newFakeRig(t, &fakeCalls{}, rigOptions{})
	if rp := off.adminDo(http.MethodGet, "/debug/pprof/", nil); rp.status != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without BOTD_ADMIN_PPROF = %d", rp.status)
	}

	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore", secure: newSecurity(t), pprof: true})
	if rp := do(t, http.MethodGet, r.admin.URL+"/debug/pprof/", "", nil); rp.status != http.StatusUnauthorized {
		t.Fatalf("/debug/pprof/ without the admin token = %d", rp.status)
	}
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "",
	} {
		rp := r.adminDo(http.MethodGet, path, nil)
		if rp.status != http.StatusOK || !bytes.Contains(rp.body, []byte(want)) {
			t.Errorf("%s = %d, want 200 with %q: %.200s", path, rp.status, want, rp.body)
		}
	}
	if rp := do(t, http.MethodGet, r.public.URL+"/debug/pprof/", "", nil); rp.status != http.StatusNotFound {
		t.Errorf("public /debug/pprof/ = %d", rp.status)
	}
}

package cloud

import (
	"errors"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, name := range []string{"", "global", " Global ", "usgov", "DOD"} {
		c, err := Lookup(name)
		if err != nil || c.GraphBaseURL == "" || c.LoginBaseURL == "" || c.CallbackMetadataURL == "" || len(c.CallbackIssuers) == 0 {
			t.Errorf("Lookup(%q) = %+v, %v", name, c, err)
		}
	}
	if c, _ := Lookup(""); c.Name != "global" || c.CallbackMetadataURL != GlobalCallbackMetadataURL {
		t.Errorf("default %+v", c)
	}
	if _, err := Lookup("china"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("china: %v", err)
	}
	if _, err := Lookup("mars"); err == nil || err.Error() != `unknown cloud "mars" (want global, usgov, dod)` {
		t.Errorf("mars: %v", err)
	}
	// The issuers are the caller's own copy.
	c, _ := Lookup("global")
	c.CallbackIssuers[0] = "x"
	if d, _ := Lookup("global"); d.CallbackIssuers[0] == "x" {
		t.Fatal("Lookup shares its table")
	}
	if strings.Join(Names(), ",") != "global,usgov,dod" {
		t.Fatal(Names())
	}
}

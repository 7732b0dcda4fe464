package auth

import (
	"errors"
	"slices"
	"testing"
)

func TestPreset(t *testing.T) {
	for _, tc := range []struct {
		cloud, url string
		issuers    []string
	}{
		{"", GlobalMetadataURL, []string{"https://api.botframework.com", "https://graph.microsoft.com"}},
		{"Global", GlobalMetadataURL, []string{"https://api.botframework.com", "https://graph.microsoft.com"}},
		{"usgov", "https://login.botframework.azure.us/v1/.well-known/openidconfiguration", []string{"https://api.botframework.us", "https://graph.microsoft.us"}},
		{"dod", "https://login.botframework.azure.us/v1/.well-known/openidconfiguration", []string{"https://api.botframework.us", "https://dod-graph.microsoft.us"}},
	} {
		url, iss, err := Preset(tc.cloud)
		if err != nil || url != tc.url || !slices.Equal(iss, tc.issuers) {
			t.Errorf("Preset(%q) = %q, %v, %v", tc.cloud, url, iss, err)
		}
		if err := checkFetchURL(url); err != nil {
			t.Errorf("Preset(%q) URL: %v", tc.cloud, err)
		}
	}
	for _, c := range []string{"china", "gcc-high", "mars"} {
		if _, _, err := Preset(c); !errors.Is(err, ErrCloudUnsupported) {
			t.Errorf("Preset(%q): %v, want ErrCloudUnsupported", c, err)
		}
	}
	// Callers get a copy.
	_, iss, _ := Preset("global")
	iss[0] = "https://evil"
	if _, again, _ := Preset("global"); again[0] != "https://api.botframework.com" {
		t.Error("Preset returned its own slice")
	}
}

// Package cloud owns the national clouds botd knows: for each, where Graph
// and the token endpoint live, and how Graph signs its calling callbacks
// there. Config names them, the Graph client and inbound auth read them.
package cloud

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Cloud is one national cloud's endpoints.
type Cloud struct {
	Name         string
	GraphBaseURL string // e.g. https://graph.microsoft.com/v1.0
	LoginBaseURL string // e.g. https://login.microsoftonline.com
	// CallbackMetadataURL is the OpenID configuration whose keys sign the
	// calling callbacks, and CallbackIssuers their accepted iss values.
	// Microsoft documents them for the global cloud only; the US
	// Government values are the Bot Framework's (docs/auth.md).
	CallbackMetadataURL string
	CallbackIssuers     []string
}

// GlobalCallbackMetadataURL is the global cloud's callback signing keys'
// OpenID configuration, as Microsoft documents it ("Incoming call
// notifications: Authenticate the callback").
const GlobalCallbackMetadataURL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"

const usGovCallbackMetadataURL = "https://login.botframework.azure.us/v1/.well-known/openidconfiguration"

// all is the one list of clouds, the default first.
var all = []Cloud{
	{Name: "global", GraphBaseURL: "https://graph.microsoft.com/v1.0", LoginBaseURL: "https://login.microsoftonline.com",
		CallbackMetadataURL: GlobalCallbackMetadataURL, CallbackIssuers: []string{"https://api.botframework.com", "https://graph.microsoft.com"}},
	{Name: "usgov", GraphBaseURL: "https://graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us",
		CallbackMetadataURL: usGovCallbackMetadataURL, CallbackIssuers: []string{"https://api.botframework.us", "https://graph.microsoft.us"}},
	{Name: "dod", GraphBaseURL: "https://dod-graph.microsoft.us/v1.0", LoginBaseURL: "https://login.microsoftonline.us",
		CallbackMetadataURL: usGovCallbackMetadataURL, CallbackIssuers: []string{"https://api.botframework.us", "https://dod-graph.microsoft.us"}},
}

// unsupported are clouds that exist but offer no Graph calls API: China
// (operated by 21Vianet) has no cloud communications.
var unsupported = []string{"china"}

// ErrUnsupported is returned by Lookup for a cloud without the Graph calls
// API.
var ErrUnsupported = errors.New("cloud not supported by the Graph calls API")

// Names lists the clouds botd serves, the default first.
func Names() []string {
	out := make([]string, len(all))
	for i, c := range all {
		out[i] = c.Name
	}
	return out
}

// Lookup returns the cloud called name, ignoring case and space; "" is
// the default (global).
func Lookup(name string) (Cloud, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "" {
		key = all[0].Name
	}
	for _, c := range all {
		if c.Name == key {
			c.CallbackIssuers = slices.Clone(c.CallbackIssuers)
			return c, nil
		}
	}
	if slices.Contains(unsupported, key) {
		return Cloud{}, fmt.Errorf("cloud %q: %w (Microsoft Graph operated by 21Vianet has no cloud communications)", name, ErrUnsupported)
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q (want %s)", name, strings.Join(Names(), ", "))
}

package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// GlobalMetadataURL is the OpenID configuration whose keys sign Graph's
// calling callbacks in the global cloud, as Microsoft documents it
// ("Incoming call notifications: Authenticate the callback").
const GlobalMetadataURL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"

// ErrCloudUnsupported is returned by Preset for a cloud botd has no values
// for.
var ErrCloudUnsupported = errors.New("cloud not supported for inbound callback auth")

// usGovMetadataURL is the Bot Framework's OpenID configuration for the US
// Government clouds (GCC High and DoD). Microsoft documents it for Bot
// Framework channel tokens there, not for calling callbacks; see
// docs/auth.md.
const usGovMetadataURL = "https://login.botframework.azure.us/v1/.well-known/openidconfiguration"

var presets = map[string]struct {
	metadataURL string
	issuers     []string
}{
	"global": {GlobalMetadataURL, []string{"https://api.botframework.com", "https://graph.microsoft.com"}},
	"usgov":  {usGovMetadataURL, []string{"https://api.botframework.us", "https://graph.microsoft.us"}},
	"dod":    {usGovMetadataURL, []string{"https://api.botframework.us", "https://dod-graph.microsoft.us"}},
}

// Preset returns the metadata URL and token issuers for a cloud, named as
// internal/graph names them: "global" (or ""), "usgov" (GCC High) and "dod".
// Only the global values are documented by Microsoft for calling callbacks;
// the US Government ones are the Bot Framework's and are best effort
// (docs/auth.md says what is known). "china" and anything else return
// ErrCloudUnsupported.
func Preset(cloud string) (metadataURL string, issuers []string, err error) {
	name := strings.ToLower(strings.TrimSpace(cloud))
	if name == "" {
		name = "global"
	}
	p, ok := presets[name]
	if !ok {
		return "", nil, fmt.Errorf("inbound auth preset %q: %w", cloud, ErrCloudUnsupported)
	}
	return p.metadataURL, slices.Clone(p.issuers), nil
}

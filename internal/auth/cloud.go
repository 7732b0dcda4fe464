package auth

import (
	"errors"
	"fmt"

	"github.com/botd/botd/internal/cloud"
)

// GlobalMetadataURL is the OpenID configuration whose keys sign Graph's
// calling callbacks in the global cloud.
const GlobalMetadataURL = cloud.GlobalCallbackMetadataURL

// ErrCloudUnsupported is returned by Preset for a cloud botd has no values
// for.
var ErrCloudUnsupported = errors.New("cloud not supported for inbound callback auth")

// Preset returns the metadata URL and token issuers for a cloud, named as
// internal/cloud names them: "global" (or ""), "usgov" (GCC High) and "dod".
// Only the global values are documented by Microsoft for calling callbacks;
// the US Government ones are the Bot Framework's and are best effort
// (docs/auth.md says what is known). "china" and anything else return
// ErrCloudUnsupported.
func Preset(name string) (metadataURL string, issuers []string, err error) {
	c, err := cloud.Lookup(name)
	if err != nil {
		return "", nil, fmt.Errorf("inbound auth preset %q: %w", name, ErrCloudUnsupported)
	}
	return c.CallbackMetadataURL, c.CallbackIssuers, nil
}

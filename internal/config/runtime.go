package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// Runtime is what botd derives at start from a validated Config and the
// machine it runs on: the values no setting gives. The Config itself is
// never changed after Load.
type Runtime struct {
	PublicURL string // Config.PublicURL, else http://127.0.0.1:<public port>
	Instance  string // Config.Instance, else from the host name
	PeerPort  int    // Config.PeerPort, else the public port

	// The Graph credentials and endpoints botd uses: the Config's, or in
	// emulator mode the embedded emulator's (see UseEmulator).
	TenantID, ClientID, ClientSecret        string
	GraphBaseURL, TokenURL, AuthMetadataURL string

	callbackPath string
}

// Embedded emulator's credentials: fixed ids, a secret new on each start.
const (
	EmulatorTenantID = "00000000-0000-4000-8000-000000000001"
	EmulatorClientID = "00000000-0000-4000-8000-000000000002"
)

// Resolve derives the Runtime of c, a Config from Load, for a public
// listener bound to publicPort on the host hostname names.
func (c *Config) Resolve(publicPort int, hostname func() (string, error)) (Runtime, error) {
	rt := Runtime{
		PublicURL: c.PublicURL, Instance: c.Instance, PeerPort: c.PeerPort,
		TenantID: c.TenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		GraphBaseURL: c.GraphBaseURL, TokenURL: c.TokenURL, AuthMetadataURL: c.AuthMetadataURL,
		callbackPath: c.CallbackPath,
	}
	if rt.PublicURL == "" {
		rt.PublicURL = fmt.Sprintf("http://127.0.0.1:%d", publicPort)
	}
	if rt.Instance == "" {
		host, err := hostname()
		if err != nil {
			return Runtime{}, fmt.Errorf("%s: not set, and no host name: %w", EnvName("instance"), err)
		}
		if rt.Instance = InstanceName(host); !isDNSLabel(rt.Instance) {
			return Runtime{}, fmt.Errorf("%[1]s: not set, and the host name %[2]q is not a DNS label; set it: %[1]s: %[3]s", EnvName("instance"), host, dnsLabelRule)
		}
	}
	if rt.PeerPort == 0 {
		rt.PeerPort = publicPort
	}
	if c.Emulator {
		rt.TenantID, rt.ClientID, rt.ClientSecret = EmulatorTenantID, EmulatorClientID, randomSecret()
	}
	return rt, nil
}

// UseEmulator points the Runtime at the embedded emulator's Graph and
// token endpoints, and at its signing keys unless the Config names some.
func (rt *Runtime) UseEmulator(graphURL, tokenURL, openIDConfigURL string) {
	rt.GraphBaseURL, rt.TokenURL = graphURL, tokenURL
	if rt.AuthMetadataURL == "" {
		rt.AuthMetadataURL = openIDConfigURL
	}
}

// CallbackURL is the callbackUri botd puts in every outbound request: the
// public URL, the callback path and this replica's instance, so that Graph's
// notifications for the call name the replica that owns it.
func (rt *Runtime) CallbackURL() string {
	return callbackURL(rt.PublicURL, rt.callbackPath, rt.Instance)
}

// WebhookURL is the bot's registered calling webhook, where incoming calls
// ring: the callback path with no instance, as Teams would post.
func (rt *Runtime) WebhookURL() string { return callbackURL(rt.PublicURL, rt.callbackPath, "") }

// Effective is c with rt's values in place of its own, for the start-up
// log of the effective config; c is left as it is.
func (c Config) Effective(rt Runtime) Config {
	c.PublicURL, c.Instance, c.PeerPort = rt.PublicURL, rt.Instance, rt.PeerPort
	c.TenantID, c.ClientID, c.ClientSecret = rt.TenantID, rt.ClientID, rt.ClientSecret
	c.GraphBaseURL, c.TokenURL, c.AuthMetadataURL = rt.GraphBaseURL, rt.TokenURL, rt.AuthMetadataURL
	return c
}

func callbackURL(publicURL, path, instance string) string {
	u := strings.TrimRight(publicURL, "/") + path
	if instance != "" {
		u += "/" + instance
	}
	return u
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/netx"
)

// badFunc records that the setting of flagName is bad, and why.
type badFunc func(flagName, format string, args ...any)

// Validate checks every value, naming the variable of the first bad one(s).
func (c *Config) Validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", EnvName(flagName), fmt.Sprintf(format, args...)))
	}
	c.checkListeners(bad)
	c.checkCredentials(bad)
	c.checkNumbers(bad)
	c.checkReplicas(bad)
	c.checkSecurity(bad)
	c.checkChoices(bad)
	c.checkTargets(bad)
	return errors.Join(errs...)
}

func (c *Config) checkListeners(bad badFunc) {
	for _, l := range []struct{ name, addr string }{{"listen", c.Listen}, {"admin-listen", c.AdminListen}} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			bad(l.name, "not a host:port address: %v", err)
		}
	}
	if !strings.HasPrefix(c.CallbackPath, "/") || strings.ContainsAny(c.CallbackPath, "?#") || strings.Contains(c.CallbackPath, "..") {
		bad("callback-path", "must be an absolute path without query, fragment or '..'")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil:
			bad("public-url", "not a URL: %v", err)
		case u.Scheme != "https" && !(u.Scheme == "http" && netx.IsLoopbackHost(u.Hostname())):
			bad("public-url", "must be https (http only for loopback hosts)")
		case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad("public-url", "must be scheme://host[:port] with no path, query or fragment")
		case c.Emulator && !netx.IsLoopbackHost(u.Hostname()):
			bad("public-url", "emulator mode (no BOTD_CLIENT_ID/BOTD_CLIENT_SECRET/BOTD_TENANT_ID) only serves loopback; set credentials to use a public URL")
		}
	} else if !c.Emulator && c.Graph == "" {
		bad("public-url", "required when Graph credentials are set: Graph must reach botd's callback")
	}
	if host, _, err := net.SplitHostPort(c.EmulatorListen); err != nil || !netx.IsLoopbackHost(host) {
		bad("emulator-listen", "must be a loopback host:port")
	}
}

func (c *Config) checkCredentials(bad badFunc) {
	if c.Emulator {
		return
	}
	if c.ClientID == "" {
		bad("client-id", "required when any Graph credential is set")
	}
	switch c.credentials() {
	case 0:
		bad("client-secret", "a credential is required when any Graph setting is: BOTD_CLIENT_SECRET (or BOTD_CLIENT_SECRET_FILE), BOTD_CLIENT_CERTIFICATE_FILE or BOTD_FEDERATED_TOKEN_FILE")
	case 1:
	default:
		bad("client-secret", "set only one of BOTD_CLIENT_SECRET, BOTD_CLIENT_CERTIFICATE_FILE and BOTD_FEDERATED_TOKEN_FILE")
	}
	if c.TenantID == "" {
		bad("tenant-id", "required when any Graph credential is set")
	}
}

// checkNumbers checks the durations and counts against their ranges.
func (c *Config) checkNumbers(bad badFunc) {
	for _, p := range []struct {
		name string
		d    time.Duration
	}{
		{"shutdown-timeout", c.ShutdownTimeout}, {"ready-timeout", c.ReadyTimeout},
		{"graph-timeout", c.GraphTimeout}, {"graph-retry-budget", c.GraphRetryBudget},
		{"retention", c.Retention}, {"operation-timeout", c.OperationTimeout},
		{"delta-gap-timeout", c.DeltaGapTimeout}, {"invite-retry-backoff", c.InviteRetryBackoff},
		{"keepalive-interval", c.KeepAliveInterval}, {"forward-timeout", c.ForwardTimeout},
		{"flow-wait-timeout", c.FlowWaitTimeout},
		{"history-retention", c.HistoryRetention}, {"journal-lag", c.JournalLag}, {"recovery-timeout", c.RecoveryTimeout},
	} {
		if p.d <= 0 {
			bad(p.name, "must be a positive duration")
		}
	}
	if c.DrainTimeout < 0 {
		bad("drain-timeout", "must not be negative")
	}
	if c.LogFlush < 0 || c.LogFlush > 10*time.Second {
		bad("log-flush", "must be between 0 and 10s")
	}
	if c.KeepAliveInterval >= 45*time.Minute {
		bad("keepalive-interval", "must be under 45m: Graph ends a call that has had no keepAlive for 45 minutes")
	}
	if c.RecoveryRate <= 0 {
		bad("recovery-rate", "must be above 0")
	}
	if c.EmulatorTimeScale <= 0 || c.EmulatorTimeScale > 100 {
		bad("emulator-time-scale", "must be above 0 and at most 100")
	}
	const none = -1 // no upper bound
	for _, r := range []struct {
		name          string
		v, min, max   int64
		outOfRangeMsg string
	}{
		{"max-body", c.MaxBody, 1024, 64 << 20, "must be between 1024 and 67108864 bytes"},
		{"peer-port", int64(c.PeerPort), 0, 65535, "must be a port number"},
		{"max-inflight", int64(c.MaxInflight), 1, none, ""},
		{"graph-max-tenants", int64(c.GraphMaxTenants), 1, 100000, ""},
		{"graph-max-retries", int64(c.GraphMaxRetries), 0, 20, ""},
		{"invite-retries", int64(c.InviteRetries), 0, 10, ""},
		{"max-calls", int64(c.MaxCalls), 1, none, ""},
		{"workers", int64(c.Workers), 1, 1024, ""},
		{"queue-size", int64(c.QueueSize), 1, none, ""},
		{"flow-max-runs", int64(c.FlowMaxRuns), 1, 1000000, ""},
		{"gc-heap-floor", c.GCHeapFloor, 0, 1 << 40, "must be between 0 and 1099511627776 bytes"},
	} {
		if r.v >= r.min && (r.max == none || r.v <= r.max) {
			continue
		}
		switch {
		case r.outOfRangeMsg != "":
			bad(r.name, "%s", r.outOfRangeMsg)
		case r.max == none:
			bad(r.name, "must be at least %d", r.min)
		default:
			bad(r.name, "must be between %d and %d", r.min, r.max)
		}
	}
}

func (c *Config) checkReplicas(bad badFunc) {
	if c.Instance != "" && !isDNSLabel(c.Instance) {
		bad("instance", "%s", dnsLabelRule)
	}
	if c.PeerDomain != "" {
		for _, l := range strings.Split(c.PeerDomain, ".") {
			if !isDNSLabel(l) {
				bad("peer-domain", "must be a DNS name such as botd-peers.calls.svc.cluster.local")
				break
			}
		}
	}
	if _, err := c.PeerMap(); err != nil {
		bad("peers", "%v", err)
	}
}

func (c *Config) checkSecurity(bad badFunc) {
	switch c.InboundAuth {
	case "on":
	case "off":
		host, _, _ := net.SplitHostPort(c.Listen)
		if !c.Emulator && !netx.IsLoopbackHost(host) {
			bad("inbound-auth", "off is allowed only in emulator mode or with a loopback public listener (BOTD_LISTEN=127.0.0.1:8080): anyone could forge Graph's notifications")
		}
	default:
		bad("inbound-auth", "must be on or off")
	}
	if host, _, err := net.SplitHostPort(c.AdminListen); err == nil && !netx.IsLoopbackHost(host) && c.AdminToken == "" {
		bad("admin-listen", "%s is not a loopback address, so the admin API needs BOTD_ADMIN_TOKEN (or BOTD_ADMIN_TOKEN_FILE)", c.AdminListen)
	}
	for _, u := range []struct{ name, v string }{{"graph-base-url", c.GraphBaseURL}, {"token-url", c.TokenURL}, {"auth-metadata-url", c.AuthMetadataURL}} {
		if u.v != "" && !isHTTPSURL(u.v) {
			bad(u.name, "must be an https URL (http only for loopback hosts)")
		}
	}
}

// checkChoices checks each enumerated setting against its one list.
func (c *Config) checkChoices(bad badFunc) {
	if !slices.Contains(LogLevels, strings.ToLower(c.LogLevel)) {
		bad("log-level", "must be %s", orList(LogLevels))
	}
	if !slices.Contains(LogFormats, c.LogFormat) {
		bad("log-format", "must be %s", orList(LogFormats))
	}
	if _, err := graph.ResolveCloud(c.Cloud); err != nil { // graph has the one list of clouds
		bad("cloud", "%v", err)
	}
	if !slices.Contains(IncomingActions, c.IncomingAction) {
		bad("incoming-action", "must be %s", orList(IncomingActions))
	} else if c.IncomingAction == "redirect" && c.RedirectTarget == "" {
		bad("redirect-target", "required when BOTD_INCOMING_ACTION=redirect")
	}
	if !slices.Contains(RejectReasons, c.RejectReason) {
		bad("reject-reason", "must be %s", orList(RejectReasons))
	}
	if !slices.Contains(States, c.State) {
		bad("state", "must be %s", orList(States))
	} else if c.State == StateJournal && strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "required when BOTD_STATE=journal")
	}
}

func (c *Config) checkTargets(bad badFunc) {
	if c.RedirectTarget != "" {
		if err := checkTarget(c.RedirectTarget); err != nil {
			bad("redirect-target", "%v", err)
		}
	}
	for _, t := range c.InviteTargets() {
		if err := checkTarget(t); err != nil {
			bad("invite-on-establish", "%v", err)
		}
	}
	if n := len(c.InviteTargets()); n > 5 {
		bad("invite-on-establish", "at most 5 participants can be invited at once, got %d", n)
	}
}

// isHTTPSURL reports whether raw is an https URL with a host, or an http
// one on a loopback host.
func isHTTPSURL(raw string) bool {
	p, err := url.Parse(raw)
	return err == nil && p.Host != "" && (p.Scheme == "https" || p.Scheme == "http" && netx.IsLoopbackHost(p.Hostname()))
}

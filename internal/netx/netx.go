// Package netx owns botd's one rule for which hosts are loopback (the only
// ones plain http, an open admin listener or emulator mode may use), and
// the one response writer that remembers a status, for botd's and the
// emulator's logs and metrics.
package netx

import (
	"net"
	"strings"
)

// IsLoopbackHost reports whether host (a URL's Hostname, or a listener's
// host) is localhost, in any case, or a loopback IP (127.0.0.0/8, ::1).
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

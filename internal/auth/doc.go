// Package auth owns authenticating inbound requests, and the admission
// control that sits next to it:
//
//   - Verifier checks the bearer token Microsoft puts on every Graph
//     commsNotifications callback: an RS256 JWT signed with a key published
//     behind Microsoft's OpenID configuration, for botd's app id, from an
//     allowed issuer (and optionally tenant). It fetches and refreshes the
//     keys itself and caches each verified token until it expires, so the
//     RSA check runs once per token, not once per callback.
//   - NewAdminAuth guards the admin API with a static bearer token.
//   - Limit caps how many requests run a handler at once.
//
// It knows nothing of notifications, calls or routing: it reads only the
// Authorization header, never a request body, and leaves the body, the
// route table and the error mapping of handlers to internal/handlers. Its
// 401 and 503 answers are RFC 9457 problem bodies shaped like the ones
// handlers writes. Tokens never reach a log line: failures are logged and
// counted by reason only.
package auth

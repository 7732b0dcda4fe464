package graph

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/botd/botd/internal/problem"
)

// ErrOutcomeUnknown is matched (errors.Is) by every *OutcomeUnknownError.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ValidationError is a request refused before anything was sent. Rule is a
// stable name the admin API and tests can switch on, e.g.
// "clientContext.maxLength", "phone.e164", "invite.maxParticipants",
// "invite.participantIdSingle", "groupCall.maxTargets", "callbackUri.https",
// "required".
type ValidationError struct {
	Rule    string
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s [%s]", e.Field, e.Message, e.Rule)
}

// APIError is a non-2xx answer from Graph, with Graph's error body decoded:
// {"error":{"code","message","innerError":{"request-id","client-request-id","date"}}}.
type APIError struct {
	StatusCode      int
	Code            string
	Message         string
	RequestID       string
	ClientRequestID string
	Date            string
	// RetryAfter is the wait Graph asked for (Retry-After), zero if none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph answered %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" || e.ClientRequestID != "" {
		fmt.Fprintf(&b, " (request-id %s, client-request-id %s)", e.RequestID, e.ClientRequestID)
	}
	return b.String()
}

// OutcomeUnknownError says a POST reached Graph (or may have) and no answer
// tells whether it took effect: a timeout or broken connection after the body
// was written, or a 504. Create call and invite are not idempotent, so the
// client does not resend; the caller reconciles by clientContext (or by the
// call's notifications) before trying again.
type OutcomeUnknownError struct {
	Op              string
	ClientRequestID string
	Err             error
}

func (e *OutcomeUnknownError) Error() string {
	// Op is not repeated here: the client wraps the error with the action.
	return fmt.Sprintf("outcome unknown, not resent; reconcile by clientContext (client-request-id %s): %v", e.ClientRequestID, e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrOutcomeUnknown) true.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// TokenError is a failure to get an access token from the token endpoint.
// StatusCode is 0 when the endpoint could not be reached.
type TokenError struct {
	StatusCode  int
	Code        string // OAuth error code, e.g. "invalid_client"
	Description string
	Err         error
}

func (e *TokenError) Error() string {
	switch {
	case e.StatusCode == 0:
		return fmt.Sprintf("fetch token: %v", e.Err)
	case e.Code != "":
		return fmt.Sprintf("fetch token: token endpoint answered %d %s: %s", e.StatusCode, e.Code, firstLine(e.Description))
	}
	return fmt.Sprintf("fetch token: token endpoint answered %d", e.StatusCode)
}

func (e *TokenError) Unwrap() error { return e.Err }

// transient reports whether another fetch may succeed: the endpoint was
// unreachable, throttled, or failed on its side. Bad credentials are not.
func (e *TokenError) transient() bool {
	return e.StatusCode == 0 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Retryable reports whether trying the same request again later may
// succeed. Validation errors, an unknown outcome (reconcile first), bad
// credentials and 4xx answers other than 429 are not retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		ve *ValidationError
		ou *OutcomeUnknownError
		ae *APIError
		te *TokenError
	)
	switch {
	case errors.As(err, &ve), errors.As(err, &ou):
		return false
	case errors.As(err, &ae):
		return retryableStatus(ae.StatusCode)
	case errors.As(err, &te):
		return te.transient()
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && transientTransport(err)
}

// transientTransport reports whether a transport error may go away: not a
// certificate that failed verification, which no retry will fix.
func transientTransport(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return !errors.As(err, &cv) && !errors.As(err, &ua) && !errors.As(err, &he) && !errors.As(err, &ci)
}

// retryableStatus: throttled, unavailable, gateway timeout.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// maxRetryAfter caps a Retry-After so that arithmetic on it cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 10.2.3). A date in the past means no wait. ok is false when the
// value is absent or malformed.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true // only overflow fails on digits
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	switch {
	case d < 0:
		d = 0
	case d > maxRetryAfter:
		d = maxRetryAfter
	}
	return d, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// graphErrorBody is Graph's error envelope. encoding/json matches keys
// case-insensitively, so "innererror" decodes too.
type graphErrorBody struct {
	Error *struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
			Date            string `json:"date"`
		} `json:"innerError"`
	} `json:"error"`
}

// maxMessage bounds the text kept from a body that is not Graph's JSON.
const maxMessage = 256

// parseErrorBody turns a non-2xx answer into an *APIError. Graph's body wins
// over the response headers for the ids; a body that is not Graph's error
// JSON (a gateway's HTML page) is kept, shortened, as the message.
func parseErrorBody(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{
		StatusCode:      status,
		RequestID:       h.Get("request-id"),
		ClientRequestID: h.Get("client-request-id"),
		Date:            h.Get("Date"),
	}
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		e.RetryAfter = d
	}
	var env graphErrorBody
	if err := json.Unmarshal(body, &env); err == nil && env.Error != nil {
		e.Code = env.Error.Code
		e.Message = env.Error.Message
		if in := env.Error.InnerError; in != nil {
			if in.RequestID != "" {
				e.RequestID = in.RequestID
			}
			if in.ClientRequestID != "" {
				e.ClientRequestID = in.ClientRequestID
			}
			if in.Date != "" {
				e.Date = in.Date
			}
		}
	} else if text := strings.TrimSpace(string(body)); text != "" {
		e.Message = truncate(firstLine(text), maxMessage)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// truncate shortens s to at most n bytes of valid UTF-8.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Problem: a broken rule is a 422 naming the rule and field.
func (e *ValidationError) Problem() problem.Problem {
	return problem.Problem{Code: problem.Unprocessable, Detail: e.Error(), Rule: e.Rule, Field: e.Field}
}

// Problem: Graph's error, with its ids; a 404 means Graph no longer knows
// what botd named (a call that ended without botd hearing of it), which is
// not a gateway failure.
func (e *APIError) Problem() problem.Problem {
	p := problem.Problem{Code: problem.Upstream, Detail: "Graph refused the request: " + e.Message,
		GraphStatus: e.StatusCode, GraphCode: e.Code, RequestID: e.RequestID, ClientRequestID: e.ClientRequestID}
	if e.StatusCode == http.StatusNotFound {
		p.Code, p.Detail = problem.NotFound, "Graph has no such call: "+e.Message
	}
	return p
}

// Problem: a 504 that says botd will not resend.
func (e *OutcomeUnknownError) Problem() problem.Problem {
	return problem.Problem{Code: problem.UpstreamTimeout, ClientRequestID: e.ClientRequestID,
		Detail: "the outcome of the Graph request is unknown; botd will reconcile it by clientContext and will not resend it: " + e.Error()}
}

// Problem: a 502; the token endpoint's answer says nothing secret
// (TokenError keeps only its code and first line). A tenant the app is not
// consented in ends here.
func (e *TokenError) Problem() problem.Problem {
	return problem.Problem{Code: problem.Upstream, Detail: "botd could not get a Graph token: " + e.Error(), GraphStatus: e.StatusCode}
}

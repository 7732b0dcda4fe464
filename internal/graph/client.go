package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// maxResponseBody bounds what is read of any Graph response.
const maxResponseBody = 4 << 20

// Client talks to Microsoft Graph cloud communications. It is safe for
// concurrent use; create one per process and reuse it.
type Client struct {
	cfg    resolved
	http   *http.Client
	base   http.RoundTripper
	tokens oauth2.TokenSource
	log    zerolog.Logger
	m      *metrics

	sleep func(context.Context, time.Duration) error
	now   func() time.Time
	newID func() string
}

// Meta describes what was sent and what came back, so a log line on botd's
// side can be tied to Microsoft's: ClientRequestID is the client-request-id
// botd sent (fresh per call, the same on each retry of that call),
// RequestID the request-id Graph answered with. It is zero when nothing
// was sent (a request refused by validation).
type Meta struct {
	ClientRequestID string
	RequestID       string
	Location        string
	StatusCode      int
	Attempts        int
}

// New builds a Client: one HTTP client whose transport adds the bearer
// token of the request's tenant (WithTenant; default cfg.TenantID), from
// one long-lived, caching client-credentials token source per tenant
// (at most cfg.MaxTenants). It reads the credential files but fetches no
// token yet.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Client, error) {
	r, err := resolveConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	c := &Client{
		cfg:   r,
		base:  base,
		log:   log.With().Str("component", "graph").Logger(),
		m:     newMetrics(reg),
		sleep: cfg.Sleep,
		now:   time.Now,
		newID: uuid.NewString,
	}
	if c.sleep == nil {
		c.sleep = sleepTimer
	}
	cred, err := loadCredential(cfg, time.Now)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	tokenHTTP := &http.Client{Transport: base, Timeout: r.RequestTimeout, CheckRedirect: noRedirect}
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenHTTP)
	newEntry := func(tenant string) (*tenantEntry, error) {
		tokenURL, err := c.cfg.tokenURLFor(tenant)
		if err != nil {
			return nil, err
		}
		ts := oauth2.ReuseTokenSource(nil, &fetchingSource{
			clientID: cfg.ClientID, tokenURL: tokenURL, scope: r.scope, cred: cred,
			ctx: tokenCtx, m: c.m, log: c.log.With().Str("tenant", tenant).Logger(),
		})
		return &tenantEntry{key: tenant, ts: ts, rt: &oauth2.Transport{Source: ts, Base: base}}, nil
	}
	def, err := newEntry(strings.ToLower(r.TenantID))
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	sources := newTokenSources(def, r.MaxTenants, newTokenSourcesGauge(reg), newEntry)
	c.tokens = sources
	c.http = &http.Client{
		// One cached token source per tenant, picked by the request
		// context's tenant (WithTenant).
		Transport: &tenantTransport{sources: sources},
		// The bearer token is added on every hop, so never follow one.
		CheckRedirect: noRedirect,
	}
	return c, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Close releases idle connections of the base transport.
func (c *Client) Close() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// BaseURL is the Graph base URL in use, e.g. https://graph.microsoft.com/v1.0.
func (c *Client) BaseURL() string { return c.cfg.base }

func sleepTimer(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request is one logical Graph call, retried as a unit.
type request struct {
	op     string // metric label and log field
	action string // error prefix, e.g. "invite participants"
	method string
	url    string
	callID string
	body   []byte
	// idempotent requests (GET, DELETE, keepAlive) may be resent after a
	// timeout or a 504; the others may not once their body was written.
	idempotent bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send runs r and decodes a 2xx body into out (when out is not nil and
// the body is not empty). meta must carry the client-request-id to send.
func (c *Client) send(ctx context.Context, r request, in, out any, meta *Meta) error {
	if t := TenantFromContext(ctx); t != "" {
		if err := ValidTenantID(t); err != nil {
			// A tenant id ends up in the token URL: refused before any
			// request, and not a token error.
			return fmt.Errorf("%s: %w", r.action, err)
		}
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", r.action, err)
		}
		r.body = b
	}
	start := c.now()
	res, err := c.do(ctx, r, meta)
	ev := c.log.Debug().Str("op", r.op).Str("call_id", r.callID).
		Str("client_request_id", meta.ClientRequestID).Str("graph_request_id", meta.RequestID).
		Int("status", meta.StatusCode).Int("attempts", meta.Attempts).Dur("elapsed", c.now().Sub(start))
	if err != nil {
		ev.Err(err).Msg("graph request failed")
		return fmt.Errorf("%s: %w", r.action, err)
	}
	ev.Msg("graph request")
	if out != nil && len(bytes.TrimSpace(res.body)) > 0 {
		if err := json.Unmarshal(res.body, out); err != nil {
			return fmt.Errorf("%s: decode response (request-id %s): %w", r.action, meta.RequestID, err)
		}
	}
	return nil
}

// do sends r, retrying 429 and 503 (any method) and timeouts, connection
// errors and 504 (idempotent requests only) with Retry-After or capped
// exponential backoff with jitter, within MaxRetries and RetryBudget. A
// non-idempotent request whose body was written and that got no answer,
// or a 504, ends in *OutcomeUnknownError and is not resent.
func (c *Client) do(ctx context.Context, r request, meta *Meta) (*response, error) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.BackoffInitial,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         c.cfg.BackoffMax,
	}
	bo.Reset()
	start := c.now()
	for attempt := 1; ; attempt++ {
		meta.Attempts = attempt
		res, wrote, err := c.attempt(ctx, r, meta.ClientRequestID)
		var rt retry
		if err != nil {
			rt, err = c.afterFailure(ctx, r, meta, err, wrote)
		} else {
			var ok bool
			if rt, ok, err = c.afterResponse(r, meta, res); ok {
				return res, nil
			}
		}
		if err != nil {
			return nil, err
		}
		if attempt > c.cfg.MaxRetries {
			return nil, rt.err
		}
		wait := rt.wait
		if !rt.retryAfter {
			wait = bo.NextBackOff()
		}
		if c.now().Sub(start)+wait > c.cfg.RetryBudget {
			return nil, rt.err
		}
		c.m.retries.WithLabelValues(r.op, rt.reason).Inc()
		c.log.Debug().Str("op", r.op).Str("call_id", r.callID).Str("client_request_id", meta.ClientRequestID).
			Int("attempt", attempt).Str("reason", rt.reason).Dur("wait", wait).Msg("graph request retry")
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w; retry abandoned: %w", rt.err, err)
		}
	}
}

// retry is why an attempt may be made again: the error to return if it is
// not, the reason label, and the wait Graph asked for (retryAfter).
type retry struct {
	err        error
	reason     string
	wait       time.Duration
	retryAfter bool
}

// afterFailure decides on an attempt that got no response: a non-nil
// error ends the call, else rt says how to retry.
func (c *Client) afterFailure(ctx context.Context, r request, meta *Meta, err error, wrote bool) (retry, error) {
	var te *TokenError
	switch {
	case errors.As(err, &te):
		// Nothing reached Graph: safe to retry if the token endpoint may
		// recover.
		if !te.transient() {
			return retry{}, te
		}
		return retry{err: te, reason: reasonToken}, nil
	case wrote && !r.idempotent:
		c.m.outcomeUnknown.WithLabelValues(r.op).Inc()
		return retry{}, &OutcomeUnknownError{Op: r.action, ClientRequestID: meta.ClientRequestID, Err: err}
	case ctx.Err() != nil, !transientTransport(err):
		return retry{}, err
	}
	reason := reasonConnection
	if isTimeout(err) {
		reason = reasonTimeout
	}
	return retry{err: err, reason: reason}, nil
}

// afterResponse records Graph's answer in meta and decides on it: ok for a
// 2xx, a non-nil error to end the call, else rt says how to retry.
func (c *Client) afterResponse(r request, meta *Meta, res *response) (rt retry, ok bool, err error) {
	meta.StatusCode = res.status
	meta.RequestID = res.header.Get("request-id")
	meta.Location = res.header.Get("Location")
	if res.status >= 200 && res.status < 300 {
		return retry{}, true, nil
	}
	apiErr := parseErrorBody(res.status, res.header, res.body, c.now())
	if apiErr.ClientRequestID == "" {
		apiErr.ClientRequestID = meta.ClientRequestID
	}
	if apiErr.RequestID != "" {
		meta.RequestID = apiErr.RequestID
	}
	switch res.status {
	case http.StatusTooManyRequests:
		rt.reason = reasonThrottled
	case http.StatusServiceUnavailable:
		rt.reason = reasonUnavailable
	case http.StatusGatewayTimeout:
		if !r.idempotent {
			c.m.outcomeUnknown.WithLabelValues(r.op).Inc()
			return retry{}, false, &OutcomeUnknownError{Op: r.action, ClientRequestID: meta.ClientRequestID, Err: apiErr}
		}
		rt.reason = reasonGatewayTimeout
	default:
		return retry{}, false, apiErr
	}
	rt.err = apiErr
	rt.wait, rt.retryAfter = parseRetryAfter(res.header.Get("Retry-After"), c.now())
	return rt, false, nil
}

// attempt sends one HTTP request with its own deadline and reads the whole
// (bounded) response. wrote reports whether the request was fully written,
// which decides whether an unanswered POST may be resent.
func (c *Client) attempt(ctx context.Context, r request, clientRequestID string) (res *response, wrote bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var written atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	})
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, r.url, body)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("client-request-id", clientRequestID)
	req.Header.Set("return-client-request-id", "true")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "botd-graph")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(r.op, 0, start)
		return nil, written.Load(), err
	}
	defer func() {
		// Drain what is left (bounded) so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
	}()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		c.observe(r.op, 0, start)
		return nil, true, fmt.Errorf("read response: %w", err)
	}
	c.observe(r.op, resp.StatusCode, start)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, true, nil
}

func (c *Client) observe(op string, status int, start time.Time) {
	c.m.requests.WithLabelValues(op, statusClass(status)).Inc()
	c.m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// newMeta starts the Meta of one call with a fresh client-request-id.
func (c *Client) newMeta() Meta { return Meta{ClientRequestID: c.newID()} }

// url joins the base URL and an already escaped path.
func (c *Client) url(path string) string { return c.cfg.base + path }

// refuse counts and wraps a validation failure.
func (c *Client) refuse(op, action string, err error) error {
	c.CountRefusal(op, err)
	return fmt.Errorf("%s: %w", action, err)
}

// CountRefusal counts err in botd_graph_validation_failures_total under op
// when it is a *ValidationError, so that a request the admin API refuses
// by Graph's rules before it reaches the client is counted as the client
// counts its own. Other errors are not counted.
func (c *Client) CountRefusal(op string, err error) {
	var ve *ValidationError
	if errors.As(err, &ve) {
		c.m.validation.WithLabelValues(op, ve.Rule).Inc()
		c.log.Debug().Str("op", op).Str("rule", ve.Rule).Str("field", ve.Field).Msg("graph request refused by validation")
	}
}

// sameService reports whether u is under the client's base URL, so that a
// server-supplied link (@odata.nextLink) never carries the bearer token to
// another host.
func (c *Client) sameService(u string) bool {
	return strings.HasPrefix(u, c.cfg.base+"/")
}

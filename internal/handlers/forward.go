package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/botd/botd/internal/problem"
)

// ForwardedHeader marks a notification one replica forwarded to another. A
// request that carries it is never forwarded again, which bounds every
// notification to one hop even when replicas disagree about ownership.
const ForwardedHeader = "X-Botd-Forwarded-By"

// Cluster is how a replica reaches the others. The zero value is one
// replica: every notification is handled locally.
type Cluster struct {
	// Self is this replica's instance name, the last segment of the
	// callbackUri of the calls it owns.
	Self string
	// PeerURL returns the base URL (scheme://host:port) of an instance, or
	// "" when there are no peers.
	PeerURL func(instance string) string
	// Client sends forwarded notifications; its Timeout bounds each one.
	Client *http.Client
}

// Forward results, the "result" label of botd_forward_requests_total.
const (
	forwardForwarded = "forwarded"
	forwardFailed    = "failed"
	forwardLoop      = "loop"
	forwardLocal     = "local"
)

var allForwardResults = []string{forwardForwarded, forwardFailed, forwardLoop, forwardLocal}

// forwardMetrics counts forwarded notifications.
type forwardMetrics struct {
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
}

func newForwardMetrics(reg prometheus.Registerer) *forwardMetrics {
	f := promauto.With(reg)
	return &forwardMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_forward_requests_total",
			Help: "Notifications for another replica's call, by result: forwarded (the owner answered), failed (owner unreachable or timed out: 503), loop (a forwarded request that was not ours: 503), local (addressed to this replica).",
		}, []string{"result"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "botd_forward_duration_seconds",
			Help:    "Time to forward a notification to its owner and get its answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
}

// handleInstanceCallback serves {callback path}/{instance}: the callbackUri
// of calls owned by that instance. This replica's own are handled here;
// another's are forwarded to it and answered with its answer.
func handleInstanceCallback(d Deps, local http.Handler) http.Handler {
	log := d.Log.With().Str("component", "forward").Logger()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner := chi.URLParam(r, "instance")
		if owner == d.Cluster.Self || d.Cluster.PeerURL == nil {
			d.Metrics.forward.requests.WithLabelValues(forwardLocal).Inc()
			local.ServeHTTP(w, r)
			return
		}
		if by := r.Header.Get(ForwardedHeader); by != "" {
			// Forwarded to us, yet not ours: the replicas disagree on
			// who is who. Never forward a second time.
			d.Metrics.forward.requests.WithLabelValues(forwardLoop).Inc()
			log.Error().Str("owner", owner).Str("forwarded_by", by).Msg("forwarded notification for another instance; not forwarding again")
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, errorf(problem.Unavailable, "notification for instance %q was forwarded here by %q, which is not that instance", owner, by))
			return
		}
		if !postOnly(w, r) {
			return
		}
		// The public router sets no RequestSize: bound the body here.
		r.Body = http.MaxBytesReader(w, r.Body, d.MaxBody)
		body, err := readBody(r)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		start := time.Now()
		status, header, respBody, err := d.forward(r.Context(), owner, r, body)
		d.Metrics.forward.latency.Observe(time.Since(start).Seconds())
		if err != nil {
			d.Metrics.forward.requests.WithLabelValues(forwardFailed).Inc()
			log.Error().Err(err).Str("owner", owner).Msg("forwarding a notification to its owner failed")
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, &Error{Code: problem.Unavailable, Message: fmt.Sprintf("owner instance %q is unreachable", owner), Err: err})
			return
		}
		d.Metrics.forward.requests.WithLabelValues(forwardForwarded).Inc()
		log.Debug().Str("owner", owner).Int("status", status).Msg("notification forwarded")
		for _, k := range []string{"Content-Type", "Retry-After", "WWW-Authenticate"} {
			if v := header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(respBody)
	})
}

// forward posts body to the owner's instance callback and returns its
// answer. The caller's Authorization header goes along: the owner checks
// Graph's token itself.
func (d Deps) forward(ctx context.Context, owner string, in *http.Request, body []byte) (int, http.Header, []byte, error) {
	base := d.Cluster.PeerURL(owner)
	if base == "" {
		return 0, nil, nil, fmt.Errorf("no address for instance %q", owner)
	}
	url := base + d.CallbackPath + "/" + owner
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for _, k := range []string{"Content-Type", "Authorization", "X-Request-Id"} {
		if v := in.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set(ForwardedHeader, d.Cluster.Self)
	res, err := d.Cluster.Client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read owner's answer: %w", err)
	}
	if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
		return 0, nil, nil, fmt.Errorf("owner answered %d", res.StatusCode)
	}
	return res.StatusCode, res.Header, respBody, nil
}

// PeerURLFunc returns a Cluster.PeerURL: an instance in static is at its
// URL there; any other is found through a headless Service, at
// http://{instance}.{domain}:{port}. With neither there are no peers.
func PeerURLFunc(static map[string]string, domain string, port int) func(string) string {
	if len(static) == 0 && domain == "" {
		return nil
	}
	return func(instance string) string {
		if u, ok := static[instance]; ok {
			return u
		}
		if domain == "" {
			return ""
		}
		return "http://" + instance + "." + domain + ":" + strconv.Itoa(port)
	}
}

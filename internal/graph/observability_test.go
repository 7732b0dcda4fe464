package graph

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

// TestMaxRetriesZeroMeansNoRetries: BOTD_GRAPH_MAX_RETRIES=0 reaches New as
// MaxRetries 0 and must mean one attempt, not the default 4 retries. (A
// negative MaxRetries is refused: TestNewRefusesZeroTunables.)
func TestMaxRetriesZeroMeansNoRetries(t *testing.T) {
	for _, n := range []int{0} {
		e := newEnv(t, emulator.Options{}, func(c *Config) { c.MaxRetries = n })
		id := e.fg.PutCall(model.Call{State: model.StateEstablished})
		e.fg.SetFault(emulator.RouteInvite, &emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: "0"})
		_, meta, err := e.c.Invite(bg, id, validInvite())
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("MaxRetries %d: err = %v, want the 429", n, err)
		}
		if meta.Attempts != 1 || len(e.fg.Requests(emulator.RouteInvite)) != 1 {
			t.Errorf("MaxRetries %d: attempts %d, requests %d, want 1", n, meta.Attempts, len(e.fg.Requests(emulator.RouteInvite)))
		}
		if v := testutil.ToFloat64(e.c.m.retries.WithLabelValues(OpInvite, reasonThrottled)); v != 0 {
			t.Errorf("MaxRetries %d: retries{invite,throttled} = %v, want 0", n, v)
		}
	}
	e := newEnv(t, emulator.Options{}, func(c *Config) { c.MaxRetries = DefaultMaxRetries })
	if e.c.cfg.MaxRetries != 4 {
		t.Errorf("DefaultMaxRetries resolved to %d, want 4", e.c.cfg.MaxRetries)
	}
}

// TestMetricsExportedFromStart: every series with fixed labels is there,
// at 0, before the first request.
func TestMetricsExportedFromStart(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	for name, want := range map[string]int{
		"botd_graph_requests_total":            len(allOps) * len(allStatusClasses),
		"botd_graph_request_duration_seconds":  len(allOps),
		"botd_graph_retries_total":             len(allOps) * len(allRetryReasons),
		"botd_graph_outcome_unknown_total":     len(allOps),
		"botd_graph_validation_failures_total": -1,
		"botd_graph_token_fetches_total":       1,
		"botd_graph_token_errors_total":        1,
	} {
		n, err := testutil.GatherAndCount(e.reg, name)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || (want > 0 && n != want) {
			t.Errorf("%s: %d series before traffic, want %d", name, n, want)
		}
	}
	if v := testutil.ToFloat64(e.c.m.requests.WithLabelValues(OpAnswer, "2xx")); v != 0 {
		t.Errorf("requests{answer,2xx} = %v before traffic", v)
	}
}

// TestRequestLogNamesGraphRequestID: Graph's request-id header is logged
// as graph_request_id; request_id is botd's own inbound request id.
func TestRequestLogNamesGraphRequestID(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id := e.fg.PutCall(model.Call{State: model.StateEstablished})
	if _, err := e.c.KeepAlive(bg, id); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"graph_request_id":"`) || strings.Contains(logs, `"request_id"`) {
		t.Errorf("want graph_request_id and no request_id in:\n%s", logs)
	}
}

// histCount is the number of observations in one series of h.
func histCount(t *testing.T, h *prometheus.HistogramVec, labels ...string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.WithLabelValues(labels...).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

package handlers

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// Metrics are the HTTP surface's metrics. Labels are status codes, route
// patterns and fixed enumerations, never ids.
type Metrics struct {
	callbackRequests *prometheus.CounterVec
	// callbackByCode holds callbackRequests' series of callbackCodes, so
	// that counting a callback looks no label up.
	callbackByCode map[int]prometheus.Counter
	// byDocument and byItem hold the fixed series of callbackDocuments and
	// notifications, for the same reason.
	byDocument        map[string]prometheus.Counter
	byItem            map[[3]string]prometheus.Counter
	callbackLatency   prometheus.Histogram
	callbackDocuments *prometheus.CounterVec
	notifications     *prometheus.CounterVec
	quirks            *prometheus.CounterVec
	adminRequests     *prometheus.CounterVec
	ready             prometheus.Gauge
	forward           *forwardMetrics
}

// The label values of the handlers' metrics. Every fixed combination is
// set at 0 from start, from these lists, so that each series is on
// /metrics before any traffic.
var (
	// callbackCodes are the statuses the callback answers: 202, the
	// errors of its table in the README, auth's 401 and 503 (limit,
	// forwarding), 500 (a panic) and 504 (the handler timeout).
	callbackCodes = []int{
		http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusMethodNotAllowed,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusInternalServerError,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout,
	}
	allDocumentResults = []string{documentAccepted, documentRejected, documentDeferred}
	// allItemResults are the results of a decoded item; a rejected item has
	// no change type or resource, and is counted as invalid, invalid.
	allItemResults  = []string{resultApplied, resultNoChange, resultRefused, resultUnknown}
	allChangeLabels = []string{string(model.ChangeCreated), string(model.ChangeUpdated), string(model.ChangeDeleted), changeOther}
	// adminCodes are the statuses of the admin API: its successes and
	// every Code's.
	adminCodes = append([]int{http.StatusOK, http.StatusCreated, http.StatusAccepted}, codeStatuses()...)
	// adminMethods are the methods the method label takes; any other is
	// "other", so that a client cannot mint series.
	adminMethods = []string{
		http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
	}
)

const (
	documentAccepted = "accepted"
	documentRejected = "rejected"
	documentDeferred = "deferred" // answered 503 while botd recovers at start
	changeOther      = "other"
	invalidLabel     = "invalid"
	methodOther      = "other"
)

// allResourceLabels are model.ResourceKind's names, in order, up to the
// first kind with none.
func allResourceLabels() []string {
	var out []string
	for k := model.ResourceKind(0); k.String() != "invalid"; k++ {
		out = append(out, k.String())
	}
	return out
}

func codeStatuses() []int {
	var out []int
	for _, c := range problem.Codes() {
		out = append(out, c.Status())
	}
	return out
}

// methodLabel is r's method, or "other" for a method not in adminMethods.
func methodLabel(method string) string {
	for _, m := range adminMethods {
		if m == method {
			return m
		}
	}
	return methodOther
}

// callbackCounter is the callback requests counter of an HTTP status.
func (m *Metrics) callbackCounter(code int) prometheus.Counter {
	if c, ok := m.callbackByCode[code]; ok {
		return c
	}
	return m.callbackRequests.WithLabelValues(strconv.Itoa(code))
}

// documentCounter is the callback documents counter of a result.
func (m *Metrics) documentCounter(result string) prometheus.Counter {
	if c, ok := m.byDocument[result]; ok {
		return c
	}
	return m.callbackDocuments.WithLabelValues(result)
}

// itemCounter is the notifications counter of a change type, a resource
// and a result.
func (m *Metrics) itemCounter(change, resource, result string) prometheus.Counter {
	if c, ok := m.byItem[[3]string{change, resource, result}]; ok {
		return c
	}
	return m.notifications.WithLabelValues(change, resource, result)
}

// NewMetrics registers the handlers' metrics on reg, each fixed series at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := buildMetrics(reg)
	m.callbackByCode = make(map[int]prometheus.Counter, len(callbackCodes))
	for _, c := range callbackCodes {
		m.callbackByCode[c] = m.callbackRequests.WithLabelValues(strconv.Itoa(c))
	}
	m.byDocument = make(map[string]prometheus.Counter, len(allDocumentResults))
	for _, r := range allDocumentResults {
		m.byDocument[r] = m.callbackDocuments.WithLabelValues(r)
	}
	m.byItem = map[[3]string]prometheus.Counter{}
	m.byItem[[3]string{invalidLabel, invalidLabel, resultRejected}] = m.notifications.WithLabelValues(invalidLabel, invalidLabel, resultRejected)
	for _, q := range model.AllQuirks {
		m.quirks.WithLabelValues(q.String())
	}
	for _, ct := range allChangeLabels {
		for _, res := range allResourceLabels() {
			for _, r := range allItemResults {
				m.byItem[[3]string{ct, res, r}] = m.notifications.WithLabelValues(ct, res, r)
			}
		}
	}
	for _, r := range allForwardResults {
		m.forward.requests.WithLabelValues(r)
	}
	return m
}

// initAdminRoute sets the admin request series of one route at 0, for
// every admin status.
func (m *Metrics) initAdminRoute(route, method string) {
	for _, c := range adminCodes {
		m.adminRequests.WithLabelValues(route, methodLabel(method), strconv.Itoa(c))
	}
}

func buildMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		callbackRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_callback_requests_total",
			Help: "Graph callback requests by HTTP status code.",
		}, []string{"code"}),
		callbackLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "botd_callback_duration_seconds",
			Help:    "Time to answer a Graph callback.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		callbackDocuments: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_callback_documents_total",
			Help: "Callback bodies by result: accepted (a commsNotifications document), rejected, or deferred (answered 503 with Retry-After while botd recovers its calls at start).",
		}, []string{"result"}),
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_notifications_total",
			Help: "Notification items by change type, resource kind and result (applied, no_change, rejected, refused, unknown).",
		}, []string{"change_type", "resource", "result"}),
		quirks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_notification_quirks_total",
			Help: "Notification items applied although they departed from Graph's schema as Microsoft's own examples do, by quirk: number_as_string, string_as_number, path_without_slash, id_mismatch (the path's call id won).",
		}, []string{"quirk"}),
		adminRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_admin_requests_total",
			Help: "Admin API requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		ready: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_ready",
			Help: "1 while botd reports ready, 0 during start-up and shutdown.",
		}),
		forward: newForwardMetrics(reg),
	}
}

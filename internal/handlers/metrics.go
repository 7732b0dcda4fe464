package handlers

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the HTTP surface's metrics. Labels are status codes, route
// patterns and fixed enumerations, never ids.
type Metrics struct {
	callbackRequests  *prometheus.CounterVec
	callbackLatency   prometheus.Histogram
	callbackDocuments *prometheus.CounterVec
	notifications     *prometheus.CounterVec
	adminRequests     *prometheus.CounterVec
	ready             prometheus.Gauge
	forward           *forwardMetrics
}

// NewMetrics registers the handlers' metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
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
			Help: "Callback bodies by result: accepted (a commsNotifications document) or rejected.",
		}, []string{"result"}),
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_notifications_total",
			Help: "Notification items by change type, resource kind and result (applied, no_change, rejected, refused, unknown).",
		}, []string{"change_type", "resource", "result"}),
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

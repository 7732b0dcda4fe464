package graph

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Operation names: the "operation" label of every metric and the "op" field
// of every log line. Bounded: never an id.
const (
	OpCreateCall       = "create_call"
	OpInvite           = "invite"
	OpAnswer           = "answer"
	OpReject           = "reject"
	OpRedirect         = "redirect"
	OpTransfer         = "transfer"
	OpKeepAlive        = "keep_alive"
	OpHangup           = "hangup"
	OpGetCall          = "get_call"
	OpListParticipants = "list_participants"
	OpGetOperation     = "get_operation"

	OpPlayPrompt              = "play_prompt"
	OpRecordResponse          = "record_response"
	OpSubscribeToTone         = "subscribe_to_tone"
	OpSendDtmfTones           = "send_dtmf_tones"
	OpCancelMediaProcessing   = "cancel_media_processing"
	OpMute                    = "mute"
	OpUnmute                  = "unmute"
	OpMuteParticipant         = "mute_participant"
	OpRemoveParticipant       = "remove_participant"
	OpStartHoldMusic          = "start_hold_music"
	OpStopHoldMusic           = "stop_hold_music"
	OpUpdateRecordingStatus   = "update_recording_status"
	OpChangeScreenSharingRole = "change_screen_sharing_role"
)

// Retry reasons: the "reason" label of botd_graph_retries_total.
const (
	reasonThrottled      = "throttled"       // 429
	reasonUnavailable    = "unavailable"     // 503
	reasonGatewayTimeout = "gateway_timeout" // 504 on an idempotent request
	reasonTimeout        = "timeout"         // attempt deadline passed
	reasonConnection     = "connection"      // transport error before the body was written, or on an idempotent request
	reasonToken          = "token"           // token endpoint unreachable or failing on its side
)

// metrics are the client's Prometheus series, registered on the injected
// registry. One Client per registry: a second would collide.
type metrics struct {
	requests       *prometheus.CounterVec   // per HTTP attempt
	latency        *prometheus.HistogramVec // per HTTP attempt
	retries        *prometheus.CounterVec
	outcomeUnknown *prometheus.CounterVec
	validation     *prometheus.CounterVec
	tokenFetches   prometheus.Counter
	tokenErrors    prometheus.Counter
}

// allOps are the operation label values, pre-initialised so that every
// series is exported, at 0, from start.
var allOps = []string{
	OpCreateCall, OpInvite, OpAnswer, OpReject, OpRedirect, OpTransfer,
	OpKeepAlive, OpHangup, OpGetCall, OpListParticipants, OpGetOperation,
	OpPlayPrompt, OpRecordResponse, OpSubscribeToTone, OpSendDtmfTones, OpCancelMediaProcessing,
	OpMute, OpUnmute, OpMuteParticipant, OpRemoveParticipant, OpStartHoldMusic, OpStopHoldMusic,
	OpUpdateRecordingStatus, OpChangeScreenSharingRole,
}

var allRetryReasons = []string{
	reasonThrottled, reasonUnavailable, reasonGatewayTimeout, reasonTimeout, reasonConnection, reasonToken,
}

var allStatusClasses = []string{"2xx", "3xx", "4xx", "5xx", "error"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := buildMetrics(reg)
	for _, op := range allOps {
		for _, sc := range allStatusClasses {
			m.requests.WithLabelValues(op, sc)
		}
		m.latency.WithLabelValues(op)
		for _, r := range allRetryReasons {
			m.retries.WithLabelValues(op, r)
		}
		m.outcomeUnknown.WithLabelValues(op)
		for _, r := range allRules {
			m.validation.WithLabelValues(op, r)
		}
	}
	return m
}

func buildMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_graph_requests_total",
			Help: "HTTP requests sent to Microsoft Graph (each attempt), by operation and status class (2xx, 4xx, 5xx, error).",
		}, []string{"operation", "status_class"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "botd_graph_request_duration_seconds",
			Help:    "Duration of one HTTP attempt to Microsoft Graph, by operation.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_graph_retries_total",
			Help: "Retries of Graph requests, by operation and reason (throttled, unavailable, gateway_timeout, timeout, connection, token).",
		}, []string{"operation", "reason"}),
		outcomeUnknown: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_graph_outcome_unknown_total",
			Help: "POSTs whose outcome is unknown (timeout after sending, or 504) and that were not resent, by operation.",
		}, []string{"operation"}),
		validation: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_graph_validation_failures_total",
			Help: "Requests refused by validation before sending, by operation and rule.",
		}, []string{"operation", "rule"}),
		tokenFetches: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_graph_token_fetches_total",
			Help: "Access token requests made to the token endpoint.",
		}),
		tokenErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_graph_token_errors_total",
			Help: "Access token requests that failed.",
		}),
	}
}

// statusClass maps an HTTP status to a bounded label value.
func statusClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	}
	return "error"
}

package flows

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics is the engine's instrumentation. The flow and step labels take
// the names of the flows loaded, a bounded set; never an id.
type metrics struct {
	started        *prometheus.CounterVec
	ended          *prometheus.CounterVec
	refused        *prometheus.CounterVec
	steps          *prometheus.CounterVec
	actions        *prometheus.CounterVec
	notify         *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	running        prometheus.Gauge
	orphansDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		started: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_runs_started_total",
			Help: "Flow runs started, by flow and how (trigger, api, flow).",
		}, []string{"flow", "how"}),
		ended: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_runs_ended_total",
			Help: "Flow runs ended, by flow and status (completed, failed, canceled).",
		}, []string{"flow", "status"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_runs_refused_total",
			Help: "Flow runs not started, by flow and reason (limit, shutting_down).",
		}, []string{"flow", "reason"}),
		steps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_step_transitions_total",
			Help: "Steps entered by flow runs, by flow and step.",
		}, []string{"flow", "step"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_actions_total",
			Help: "Actions flow runs sent, by flow, action and result (ok, error, outcome_unknown).",
		}, []string{"flow", "action", "result"}),
		notify: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_notify_attempts_total",
			Help: "Attempts of notify actions, by flow and result (ok, transport_error, retryable_status, refused).",
		}, []string{"flow", "result"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_flow_reloads_total",
			Help: "Flow reloads, by result (ok, error).",
		}, []string{"result"}),
		running: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_flow_runs_running",
			Help: "Flow runs in flight.",
		}),
		orphansDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_flow_held_changes_dropped_total",
			Help: "Changes of calls being created that were not held for their run, because too many were held.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// init exports a flow's series at 0.
func (m *metrics) init(f *Flow) {
	for _, how := range []string{startTrigger, startAPI, startFlow} {
		m.started.WithLabelValues(f.Name, how)
	}
	for _, s := range Statuses[1:] {
		m.ended.WithLabelValues(f.Name, s)
	}
	for _, r := range []string{"limit", "shutting_down"} {
		m.refused.WithLabelValues(f.Name, r)
	}
	for _, name := range f.order {
		m.steps.WithLabelValues(f.Name, name)
		for _, a := range f.steps[name].actions {
			for _, r := range []string{resultOK, resultError, resultOutcomeUnknown} {
				m.actions.WithLabelValues(f.Name, a.kind, r)
			}
		}
	}
	for _, r := range []string{"ok", "transport_error", "retryable_status", "refused"} {
		m.notify.WithLabelValues(f.Name, r)
	}
}

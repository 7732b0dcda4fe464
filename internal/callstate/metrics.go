package callstate

import (
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/botd/botd/internal/model"
)

// reason is why the Store ignored an event or part of one. Its names are the
// values of the reason label, so the label stays bounded.
type reason uint8

const (
	reasonDuplicateState reason = iota
	reasonStateRegression
	reasonAfterTerminated
	reasonInvalidState
	reasonMalformed
	reasonUnknownEvent
	reasonNoCallID
	reasonSweptCall
	reasonDuplicateSequence
	reasonStaleSequence
	reasonStaleParticipant
	reasonParticipantWithoutKey
	reasonDuplicateParticipant
	reasonDuplicateOperation
	reasonOperationFinal
	reasonTooManyOperations
	reasonDuplicateSession
	reasonUnknownSession
	reasonSessionEnded
	reasonTooManySessions
	reasonDuplicateTone
	reasonStaleTone
	numReasons
)

var reasonNames = [numReasons]string{
	reasonDuplicateState:        "duplicate_state",
	reasonStateRegression:       "state_regression",
	reasonAfterTerminated:       "after_terminated",
	reasonInvalidState:          "invalid_state",
	reasonMalformed:             "malformed",
	reasonUnknownEvent:          "unknown_event",
	reasonNoCallID:              "no_call_id",
	reasonSweptCall:             "swept_call",
	reasonDuplicateSequence:     "duplicate_sequence",
	reasonStaleSequence:         "stale_sequence",
	reasonStaleParticipant:      "stale_participant",
	reasonParticipantWithoutKey: "participant_without_key",
	reasonDuplicateParticipant:  "duplicate_participant",
	reasonDuplicateOperation:    "duplicate_operation",
	reasonOperationFinal:        "operation_final",
	reasonTooManyOperations:     "too_many_operations",
	reasonDuplicateSession:      "duplicate_session",
	reasonUnknownSession:        "unknown_session",
	reasonSessionEnded:          "session_ended",
	reasonTooManySessions:       "too_many_sessions",
	reasonDuplicateTone:         "duplicate_tone",
	reasonStaleTone:             "stale_tone",
}

func (r reason) String() string { return reasonNames[r] }

// Resync reasons (values of botd_call_roster_resyncs_total's reason label).
const (
	resyncGapTimeout          = "gap_timeout"
	resyncHoldOverflow        = "hold_overflow"
	resyncParticipantReturned = "participant_returned"
)

// resyncReasons lists every resync reason, for the metric's series and help.
var resyncReasons = []string{resyncGapTimeout, resyncHoldOverflow, resyncParticipantReturned}

// Operation statuses counted besides Graph's completed and failed.
const (
	opLabelSent    = "sent"
	opLabelTimeout = "timeout"
)

// Metrics is the Store's instrumentation, registered on the registry given
// to New. Every label takes values from a fixed set: states, kinds, reasons,
// operation types; never an id.
type Metrics struct {
	calls        *prometheus.GaugeVec
	callsByState [len(stateLabels)]prometheus.Gauge
	callsStarted *prometheus.CounterVec
	callDuration prometheus.Histogram
	participants prometheus.Gauge
	operations   *prometheus.CounterVec
	opLatency    *prometheus.HistogramVec
	events       [model.EventContentSharing + 1]prometheus.Counter
	ignored      [numReasons]prometheus.Counter
	changes      [numChangeKinds]prometheus.Counter
	resyncs      *prometheus.CounterVec
	refused      prometheus.Counter
	subsDropped  prometheus.Counter
	subscribers  prometheus.Gauge
	swept        prometheus.Counter
}

// stateLabels are the values of the state label: "unknown" for a call that
// has had no state yet, then Graph's callStates.
var stateLabels = [...]string{
	"unknown",
	string(model.StateIncoming), string(model.StateEstablishing), string(model.StateEstablished),
	string(model.StateHold), string(model.StateTransferring), string(model.StateTransferAccepted),
	string(model.StateRedirecting), string(model.StateTerminating), string(model.StateTerminated),
}

func stateIndex(s model.CallState) int {
	for i, l := range stateLabels[1:] {
		if string(s) == l {
			return i + 1
		}
	}
	return 0
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		calls: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botd_calls",
			Help: "Calls tracked, by Graph call state (unknown: no call notification yet).",
		}, []string{"state"}),
		callsStarted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_calls_started_total",
			Help: "Calls that got their first state, by direction (incoming, outgoing, unknown).",
		}, []string{"direction"}),
		callDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "botd_call_duration_seconds",
			Help:    "Duration of terminated calls: from established (or first seen, if never established) to terminated.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}),
		participants: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_call_participants",
			Help: "Participants in the rosters of calls not terminated.",
		}),
		operations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_call_operations_total",
			Help: "Operations by type and status: sent (tracked), completed, failed, timeout.",
		}, []string{"type", "status"}),
		opLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "botd_call_operation_duration_seconds",
			Help:    "Time from sending an operation to its final status, for operations botd sent.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 13),
		}, []string{"type"}),
		resyncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_call_roster_resyncs_total",
			Help: "Times a call's roster was marked as needing a resync, by reason (" + strings.Join(resyncReasons, ", ") + ").",
		}, []string{"reason"}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_calls_refused_total",
			Help: "New calls refused because BOTD_MAX_CALLS calls were tracked.",
		}),
		subsDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_call_subscribers_dropped_total",
			Help: "Subscribers dropped because their channel was full.",
		}),
		subscribers: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_call_subscribers",
			Help: "Subscribers currently attached.",
		}),
		swept: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_calls_swept_total",
			Help: "Calls removed from memory after their retention (BOTD_RETENTION).",
		}),
	}
	for i, l := range stateLabels {
		m.callsByState[i] = m.calls.WithLabelValues(l)
	}
	ignored := f.NewCounterVec(prometheus.CounterOpts{
		Name: "botd_call_events_ignored_total",
		Help: "Events, or parts of events, ignored: duplicate, stale, out of order, after terminated..., by reason.",
	}, []string{"reason"})
	for r := range numReasons {
		m.ignored[r] = ignored.WithLabelValues(r.String())
	}
	events := f.NewCounterVec(prometheus.CounterOpts{
		Name: "botd_call_events_total",
		Help: "Well-formed notification events applied, by kind.",
	}, []string{"kind"})
	for k := range m.events {
		m.events[k] = events.WithLabelValues(model.EventKind(k).String())
	}
	changes := f.NewCounterVec(prometheus.CounterOpts{
		Name: "botd_call_changes_total",
		Help: "Changes reported, by kind.",
	}, []string{"kind"})
	for k := CallTracked; k < numChangeKinds; k++ {
		m.changes[k] = changes.WithLabelValues(k.String())
	}
	for _, r := range resyncReasons {
		m.resyncs.WithLabelValues(r)
	}
	// Series with fixed labels are exported, at 0, from start.
	for _, d := range append(slices.Clone(model.CallDirections), directionUnknown) {
		m.callsStarted.WithLabelValues(d)
	}
	for _, t := range opTypeLabels() {
		for _, st := range []string{string(model.OpCompleted), string(model.OpFailed), opLabelTimeout} {
			m.operations.WithLabelValues(t, st)
		}
	}
	for _, t := range botdSentOpTypes {
		m.operations.WithLabelValues(t, opLabelSent)
		m.opLatency.WithLabelValues(t)
	}
	return m
}

// botdSentOpTypes are the operation types botd itself sends and tracks
// (TrackOperation): only these are counted as sent and timed.
var botdSentOpTypes = []string{"invite"}

// opTypeLabels are the values of the type label, sorted.
func opTypeLabels() []string {
	ts := make([]string, 0, len(knownOpTypes)+1)
	for t := range knownOpTypes {
		ts = append(ts, t)
	}
	ts = append(ts, "other")
	sort.Strings(ts)
	return ts
}

// knownOpTypes are the operation types counted under their own label: those
// Graph's notifications name (opTypesByOData) and the actions that answer
// with no operation (botdActions). Any other counts as "other".
var knownOpTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range opTypesByOData {
		m[t] = true
	}
	for _, t := range botdActions {
		m[t] = true
	}
	return m
}()

func opTypeLabel(t string) string {
	if knownOpTypes[t] {
		return t
	}
	return "other"
}

// directionUnknown labels a call started with no direction known.
const directionUnknown = "unknown"

func directionLabel(d string) string {
	if slices.Contains(model.CallDirections, d) {
		return d
	}
	return directionUnknown
}

package journal

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results, the "result" label of the write and compaction counters.
const (
	resultOK    = "ok"
	resultError = "error"
)

// What recovery did with a call, the "result" label of
// botd_recovery_calls_total.
const (
	recoveredRestored  = "restored"
	recoveredRefreshed = "refreshed"
	recoveredFailed    = "failed"
	recoveredSkipped   = "skipped"
	recoveredRefused   = "refused"
	recoveredDropped   = "dropped" // a flow run that could not be put back
)

type metrics struct {
	writes             *prometheus.CounterVec
	records            prometheus.Counter
	duration           prometheus.Histogram
	healthy            prometheus.Gauge
	pending            prometheus.Gauge
	checkpoints        *prometheus.CounterVec
	checkpointDuration prometheus.Histogram
	logBytes           prometheus.Gauge
	compactions        *prometheus.CounterVec
	compacted          prometheus.Counter
	recovered          *prometheus.CounterVec
	recoveredRuns      *prometheus.CounterVec
	recoverySeconds    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		writes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_journal_writes_total",
			Help: "Journal writes (appends to its log, one per write-behind tick with changes, and one per write before a send), by result (ok, error).",
		}, []string{"result"}),
		records: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_journal_records_written_total",
			Help: "Call records written to the journal.",
		}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "botd_journal_write_duration_seconds",
			Help:    "Time of one journal write (an append to its log), fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10),
		}),
		healthy: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_journal_healthy",
			Help: "1 while the journal's last write succeeded, 0 while writes fail (botd serves from memory and retries).",
		}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_journal_pending_records",
			Help: "Records of calls and flow runs changed since the journal's last write, waiting for the next one.",
		}),
		checkpoints: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_journal_checkpoints_total",
			Help: "Checkpoints of the journal's log into its file (the log's next generation started, the calls the older one holds written into the file, and that log deleted), by result (ok, error).",
		}, []string{"result"}),
		checkpointDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "botd_journal_checkpoint_duration_seconds",
			Help:    "Time of one checkpoint of the journal's log into its file, from start to end (one in the background rests between its transactions).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
		}),
		logBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_journal_log_bytes",
			Help: "Length of the journal's log: the changes written since the last checkpoint, which a restart after a crash folds into the file.",
		}),
		compactions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_journal_compactions_total",
			Help: "Journal compactions of ended calls past the history retention, by result (ok, error).",
		}, []string{"result"}),
		compacted: f.NewCounter(prometheus.CounterOpts{
			Name: "botd_journal_compacted_calls_total",
			Help: "Ended calls deleted from the journal by compaction.",
		}),
		recovered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_recovery_calls_total",
			Help: "Calls handled by recovery at start, by result: restored (put back from the journal), refreshed (read again from Graph), failed (Graph could not be asked; kept as stored), skipped (not refreshed within the recovery timeout; kept as stored), refused (not restored: over the call limit; kept in the journal).",
		}, []string{"result"}),
		recoveredRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_recovery_runs_total",
			Help: "Flow runs handled by recovery at start, by result: restored (waiting at their step again), dropped (not restorable: flow gone or changed, parent not restored, limit; logged and deleted from the journal).",
		}, []string{"result"}),
		recoverySeconds: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_recovery_duration_seconds",
			Help: "Time the last recovery at start took, from loading the journal to the last call refreshed.",
		}),
	}
	for _, r := range []string{resultOK, resultError} {
		m.writes.WithLabelValues(r)
		m.compactions.WithLabelValues(r)
		m.checkpoints.WithLabelValues(r)
	}
	for _, r := range []string{recoveredRestored, recoveredDropped} {
		m.recoveredRuns.WithLabelValues(r)
	}
	for _, r := range []string{recoveredRestored, recoveredRefreshed, recoveredFailed, recoveredSkipped, recoveredRefused} {
		m.recovered.WithLabelValues(r)
	}
	return m
}

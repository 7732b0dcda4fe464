package journal

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
)

// Source is the call store as the writer reads it.
type Source interface {
	Observe(fn func([]callstate.Change)) (stop func())
	// RecordAfter is a call's record less the transitions of its life
	// numbered below next (callstate.Store.RecordAfter).
	RecordAfter(id string, life, next uint64) (callstate.Record, bool)
}

// WriterConfig tunes a Writer.
type WriterConfig struct {
	// Lag is the longest a change waits before its call's record is
	// written (group commit): every Lag, the calls changed since the last
	// write are written in one transaction.
	Lag time.Duration
	// HistoryRetention is how long an ended call's record is kept; then
	// compaction deletes it.
	HistoryRetention time.Duration
	// CompactEvery is the time between two compactions.
	CompactEvery time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Writer writes the call store's changes behind: a change marks its call,
// and every Lag the marked calls' current records are written in one
// transaction. The store's callers never wait for the disk. A write that
// fails keeps its calls marked, turns botd_journal_healthy to 0, and is
// tried again at the next tick; botd keeps serving from memory meanwhile.
type Writer struct {
	j   *Journal
	src Source
	cfg WriterConfig
	log zerolog.Logger
	m   *metrics

	mu      sync.Mutex
	dirty   map[string]struct{}
	runs    map[string]flows.RunRecord // the latest record of each run changed since the last write
	failing bool
}

// NewWriter makes a writer of src's changes into j, and starts observing
// src at once, so that no change made after NewWriter returns is missed.
// Run writes them.
func NewWriter(j *Journal, src Source, cfg WriterConfig, log zerolog.Logger, reg prometheus.Registerer) *Writer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{j: j, src: src, cfg: cfg, log: log.With().Str("component", "journal").Logger(), m: newMetrics(reg), dirty: map[string]struct{}{}, runs: map[string]flows.RunRecord{}}
	w.m.healthy.Set(1)
	src.Observe(w.observe)
	return w
}

// observe marks the calls of a batch of changes; it is on the callback
// path, so it only takes a lock and fills a map.
func (w *Writer) observe(changes []callstate.Change) {
	w.mu.Lock()
	for i := range changes {
		w.dirty[changes[i].CallID] = struct{}{}
	}
	w.pendingLocked()
	w.mu.Unlock()
}

// MarkRun keeps a flow run's latest record for the next write
// (flows.Config.OnRunChange): a run's steps are written behind, as the
// calls' changes are.
func (w *Writer) MarkRun(rec flows.RunRecord) {
	w.mu.Lock()
	w.runs[rec.View.ID] = rec
	w.pendingLocked()
	w.mu.Unlock()
}

// pendingLocked shows how many records wait for the next write. Callers
// hold w.mu.
func (w *Writer) pendingLocked() { w.m.pending.Set(float64(len(w.dirty) + len(w.runs))) }

// Run writes every Lag, and compacts every CompactEvery, until ctx ends;
// then it writes once more, so that a clean shutdown loses nothing.
func (w *Writer) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Lag)
	defer tick.Stop()
	compact := time.NewTicker(w.cfg.CompactEvery)
	defer compact.Stop()
	w.compact()
	for {
		select {
		case <-ctx.Done():
			w.Flush()
			return
		case <-tick.C:
			w.Flush()
		case <-compact.C:
			w.compact()
		}
	}
}

// Flush writes the marked calls now, and reports whether the write
// succeeded (or there was nothing to write).
func (w *Writer) Flush() bool {
	w.mu.Lock()
	if len(w.dirty) == 0 && len(w.runs) == 0 {
		w.mu.Unlock()
		return true
	}
	ids := make([]string, 0, len(w.dirty))
	for id := range w.dirty {
		ids = append(ids, id)
	}
	clear(w.dirty)
	runs := make([]flows.RunRecord, 0, len(w.runs))
	for _, r := range w.runs {
		runs = append(runs, r)
	}
	clear(w.runs)
	w.mu.Unlock()
	return w.write(ids, runs)
}

// WriteNow writes one call's record at once, in its own transaction, and
// returns when it is on disk: for what botd decides to send (an
// operation, a created call), written before the request goes to Graph.
// A failure is counted and logged as Flush's are, and the call stays
// marked for the next tick.
func (w *Writer) WriteNow(callID string) bool { return w.write([]string{callID}, nil) }

// write writes the current records of ids, and runs, in one transaction;
// on failure they are marked again (a run only if no newer record of it
// came meanwhile).
func (w *Writer) write(ids []string, runs []flows.RunRecord) bool {
	// Each record leaves out the transitions the journal has, as the
	// heads say; all are whole when the heads cannot be read.
	heads, err := w.j.heads(ids)
	if err != nil {
		heads = nil
	}
	return w.writeAfter(ids, runs, heads)
}

// writeAfter is write with the heads read: when a record left out
// transitions the journal does not have after all (another write came
// between), the records are taken whole and written again.
func (w *Writer) writeAfter(ids []string, runs []flows.RunRecord, heads []head) bool {
	recs := w.records(ids, heads)
	start := time.Now()
	err := w.j.Put(recs, runs)
	if errors.Is(err, errPartial) {
		recs = w.records(ids, nil)
		err = w.j.Put(recs, runs)
	}
	w.m.duration.Observe(time.Since(start).Seconds())
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.pendingLocked()
	if err != nil {
		for _, id := range ids {
			w.dirty[id] = struct{}{}
		}
		for _, r := range runs {
			if _, newer := w.runs[r.View.ID]; !newer {
				w.runs[r.View.ID] = r
			}
		}
		w.m.writes.WithLabelValues(resultError).Inc()
		w.m.healthy.Set(0)
		if !w.failing {
			w.log.Error().Err(err).Int("calls", len(ids)).Str("path", w.j.Path()).Msg("journal write failed; serving from memory and retrying")
		}
		w.failing = true
		return false
	}
	w.m.writes.WithLabelValues(resultOK).Inc()
	w.m.records.Add(float64(len(recs)))
	w.m.healthy.Set(1)
	if w.failing {
		w.log.Info().Int("calls", len(recs)).Msg("journal write recovered")
	}
	w.failing = false
	return true
}

// records are the current records of ids, each less the transitions its
// head (heads[i], when heads is not nil) says the journal has. A call
// swept from memory has none: it keeps its last record, as history.
func (w *Writer) records(ids []string, heads []head) []callstate.Record {
	recs := make([]callstate.Record, 0, len(ids))
	for i, id := range ids {
		var h head
		if heads != nil {
			h = heads[i]
		}
		if r, ok := w.src.RecordAfter(id, h.life, h.next); ok {
			recs = append(recs, r)
		}
	}
	return recs
}

// compact deletes the records of calls that ended before the history
// retention.
func (w *Writer) compact() {
	n, err := w.j.Compact(w.cfg.Now().Add(-w.cfg.HistoryRetention))
	if err != nil {
		w.m.compactions.WithLabelValues(resultError).Inc()
		w.log.Error().Err(err).Msg("journal compaction failed")
		return
	}
	w.m.compactions.WithLabelValues(resultOK).Inc()
	w.m.compacted.Add(float64(n))
	if n > 0 {
		w.log.Info().Int("calls", n).Dur("history_retention", w.cfg.HistoryRetention).Msg("journal compacted")
	}
}

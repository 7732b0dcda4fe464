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
	// write are appended to the log, synced once.
	Lag time.Duration
	// HistoryRetention is how long an ended call's record is kept; then
	// compaction deletes it.
	HistoryRetention time.Duration
	// CompactEvery is the time between two compactions.
	CompactEvery time.Duration
	// CheckpointBytes is the log's length from which the writer
	// checkpoints it into the file; DefaultCheckpointBytes when 0.
	CheckpointBytes int64
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// DefaultCheckpointBytes is the log length the writer checkpoints at: the
// most a restart after a crash folds in (about 40,000 changed calls'
// records), and the disk the log takes.
const DefaultCheckpointBytes = 32 << 20

// Writer writes the call store's changes behind: a change marks its call,
// and every Lag the marked calls' current records are appended to the
// journal's log, synced once. The store's callers never wait for the
// disk. A write that fails keeps its calls marked, turns
// botd_journal_healthy to 0, and is tried again at the next tick; botd
// keeps serving from memory meanwhile. When the log is
// CheckpointBytes long, at a compaction, before a history read that
// would miss an ended call the log holds, and when Run ends, the writer
// checkpoints: the calls the log holds go into the file, and the log
// starts again.
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

	// wmu orders the writes: appends and checkpoints, and what they keep.
	wmu sync.Mutex
	// logged is what the file and the log hold of each call the log has
	// a record of: the transitions, so that the next record of the call
	// leaves them out.
	logged map[string]head
	// loggedRuns is the latest record of each run the log holds.
	loggedRuns map[string]flows.RunRecord
	// loggedEnd is set when the log holds an ended call, which the
	// file's history does not list until a checkpoint.
	loggedEnd bool
}

// NewWriter makes a writer of src's changes into j, and starts observing
// src at once, so that no change made after NewWriter returns is missed.
// Run writes them.
func NewWriter(j *Journal, src Source, cfg WriterConfig, log zerolog.Logger, reg prometheus.Registerer) *Writer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckpointBytes <= 0 {
		cfg.CheckpointBytes = DefaultCheckpointBytes
	}
	w := &Writer{
		j: j, src: src, cfg: cfg, log: log.With().Str("component", "journal").Logger(), m: newMetrics(reg),
		dirty: map[string]struct{}{}, runs: map[string]flows.RunRecord{},
		logged: map[string]head{}, loggedRuns: map[string]flows.RunRecord{},
	}
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
// then it writes once more and checkpoints, so that a clean shutdown
// loses nothing and the next start has no log to fold in.
func (w *Writer) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Lag)
	defer tick.Stop()
	compact := time.NewTicker(w.cfg.CompactEvery)
	defer compact.Stop()
	w.compact()
	for {
		select {
		case <-ctx.Done():
			if w.Flush() {
				w.Checkpoint()
			}
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

// write appends the current records of ids, and runs, to the log, each
// record less the transitions the journal has; on failure they are
// marked again (a run only if no newer record of it came meanwhile).
func (w *Writer) write(ids []string, runs []flows.RunRecord) bool {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	recs, _ := w.records(ids, w.headsLocked(ids))
	start := time.Now()
	size, err := w.j.Append(recs, runs)
	w.m.duration.Observe(time.Since(start).Seconds())
	w.m.logBytes.Set(float64(size))
	if err == nil {
		for i := range recs {
			r := &recs[i]
			held := r.FirstTransition + r.Skipped
			w.logged[r.Call.ID] = head{life: r.Life(), first: r.FirstTransition, next: held + uint64(len(r.Transitions))}
			w.loggedEnd = w.loggedEnd || !r.TerminatedAt.IsZero()
		}
		for _, r := range runs {
			w.loggedRuns[r.View.ID] = r
		}
	}
	w.mu.Lock()
	if err != nil {
		for _, id := range ids {
			w.dirty[id] = struct{}{}
		}
		for _, r := range runs {
			if _, newer := w.runs[r.View.ID]; !newer {
				w.runs[r.View.ID] = r
			}
		}
	}
	w.pendingLocked()
	w.mu.Unlock()
	w.outcome(w.m.writes, err, len(ids))
	if err != nil {
		return false
	}
	w.m.records.Add(float64(len(recs)))
	if size >= w.cfg.CheckpointBytes {
		w.checkpointLocked()
	}
	return true
}

// headsLocked is, for each of ids, what the journal holds of its
// transitions: the log's, or else the file's; the zero head (a whole
// record) where neither reads. Callers hold w.wmu.
func (w *Writer) headsLocked(ids []string) []head {
	out := make([]head, len(ids))
	var missing []int
	for i, id := range ids {
		if h, ok := w.logged[id]; ok {
			out[i] = h
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out
	}
	rest := make([]string, len(missing))
	for k, i := range missing {
		rest[k] = ids[i]
	}
	if hs, err := w.j.heads(rest); err == nil {
		for k, i := range missing {
			out[i] = hs[k]
		}
	}
	return out
}

// Checkpoint writes the calls and runs the log holds into the journal's
// file and starts the log again; it reports whether that succeeded (or
// there was nothing to do).
func (w *Writer) Checkpoint() bool {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.checkpointLocked()
}

// checkpointLocked is Checkpoint with w.wmu held. Each call's record is
// its current one, from the store, less the transitions the file has;
// a call the store no longer holds (swept) gets the last record the log
// has of it. On failure the log stays, and the next append or
// checkpoint tries again.
func (w *Writer) checkpointLocked() bool {
	if len(w.logged) == 0 && len(w.loggedRuns) == 0 {
		return true
	}
	ids := make([]string, 0, len(w.logged))
	for id := range w.logged {
		ids = append(ids, id)
	}
	runs := make([]flows.RunRecord, 0, len(w.loggedRuns))
	for _, r := range w.loggedRuns {
		runs = append(runs, r)
	}
	heads, err := w.j.heads(ids)
	if err != nil {
		heads = nil
	}
	return w.checkpointAfter(ids, runs, heads)
}

// checkpointAfter is checkpointLocked with the file's heads of ids read:
// when a record left out transitions the file does not have after all,
// the records are taken whole and written again.
func (w *Writer) checkpointAfter(ids []string, runs []flows.RunRecord, heads []head) bool {
	recs, gone := w.records(ids, heads)
	start := time.Now()
	err := w.j.Checkpoint(recs, runs, gone)
	if errors.Is(err, errPartial) {
		recs, gone = w.records(ids, nil)
		err = w.j.Checkpoint(recs, runs, gone)
	}
	w.m.checkpointDuration.Observe(time.Since(start).Seconds())
	w.outcome(w.m.checkpoints, err, len(ids))
	if err != nil {
		return false
	}
	w.m.logBytes.Set(float64(w.j.LogSize()))
	clear(w.logged)
	clear(w.loggedRuns)
	w.loggedEnd = false
	return true
}

// outcome counts a write or checkpoint in c, and turns the journal's
// health, logging the first failure and the recovery.
func (w *Writer) outcome(c *prometheus.CounterVec, err error, calls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		c.WithLabelValues(resultError).Inc()
		w.m.healthy.Set(0)
		if !w.failing {
			w.log.Error().Err(err).Int("calls", calls).Str("path", w.j.Path()).Msg("journal write failed; serving from memory and retrying")
		}
		w.failing = true
		return
	}
	c.WithLabelValues(resultOK).Inc()
	w.m.healthy.Set(1)
	if w.failing {
		w.log.Info().Int("calls", calls).Msg("journal write recovered")
	}
	w.failing = false
}

// records are the current records of ids, each less the transitions its
// head (heads[i], when heads is not nil) says the journal has, and the
// ids the store no longer holds (swept from memory).
func (w *Writer) records(ids []string, heads []head) (recs []callstate.Record, gone []string) {
	recs = make([]callstate.Record, 0, len(ids))
	for i, id := range ids {
		var h head
		if heads != nil {
			h = heads[i]
		}
		if r, ok := w.src.RecordAfter(id, h.life, h.next); ok {
			recs = append(recs, r)
		} else {
			gone = append(gone, id)
		}
	}
	return recs, gone
}

// History is the journal's History, checkpointed first when the log holds
// an ended call, so that the page lists it.
func (w *Writer) History(q HistoryQuery) ([]callstate.Record, string, error) {
	if err := w.readable(); err != nil {
		return nil, "", err
	}
	return w.j.History(q)
}

// Export is the journal's Export, checkpointed first as History is.
func (w *Writer) Export(q HistoryQuery, fn func(callstate.Record) error) error {
	if err := w.readable(); err != nil {
		return err
	}
	return w.j.Export(q, fn)
}

// errNotCheckpointed is the error of a history read when the log holds an
// ended call and cannot be checkpointed.
var errNotCheckpointed = errors.New("journal: the log holds ended calls and cannot be written into the file")

// readable checkpoints when the log holds an ended call.
func (w *Writer) readable() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.loggedEnd && !w.checkpointLocked() {
		return errNotCheckpointed
	}
	return nil
}

// compact deletes the records of calls that ended before the history
// retention.
func (w *Writer) compact() {
	w.Checkpoint()
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

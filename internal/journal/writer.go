package journal

import (
	"context"
	"errors"
	"maps"
	"slices"
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
// most a restart after a crash folds in (50,000 to 80,000 records, at the
// 800 to 1,300 bytes of the load generator's calls), and the disk the
// log takes.
const DefaultCheckpointBytes = 64 << 20

// Writer writes the call store's changes behind: a change marks its call,
// and every Lag the marked calls' current records are appended to the
// journal's log, synced once. The store's callers never wait for the
// disk. A write that fails keeps its calls marked, turns
// botd_journal_healthy to 0, and is tried again at the next tick; botd
// keeps serving from memory meanwhile. When the log is CheckpointBytes
// long, before a compaction, before a history read that would miss an
// ended call a log holds, and when Run ends, the writer checkpoints:
// the log starts its next generation, and the calls the ones before hold
// go into the file, while the appends go on.
type Writer struct {
	j   *Journal
	src Source
	cfg WriterConfig
	log zerolog.Logger
	m   *metrics

	mu    sync.Mutex
	dirty map[string]struct{}
	runs  map[string]flows.RunRecord // the latest record of each run changed since the last write
	// failing is set while appends fail, cpFailing while checkpoints do:
	// the journal is healthy when neither is.
	failing, cpFailing bool

	// wmu orders the appends, and guards what they keep: logged,
	// loggedRuns and loggedEnd.
	wmu sync.Mutex
	// logged is, for each call a log not yet folded into the file holds,
	// what the file and the logs hold of its transitions (so that the
	// next record of it leaves them out), and the generation of the log
	// its last record is in.
	logged map[string]loggedCall
	// loggedRuns is the latest record of each run the log appended to
	// holds; loggedEnd is set when it holds an ended call, which the
	// file's history lists only once folded in.
	loggedRuns map[string]flows.RunRecord
	loggedEnd  bool

	// cpMu lets one checkpoint run at a time, and guards what the logs
	// before the one appended to hold that the file does not yet:
	// retiredRuns and retiredEnd (a failed checkpoint leaves them for the
	// next).
	cpMu        sync.Mutex
	retiredRuns map[string]flows.RunRecord
	retiredEnd  bool
	// checkpoint asks Run's checkpointer for a checkpoint.
	checkpoint chan struct{}
}

// loggedCall is what Writer.logged holds of a call.
type loggedCall struct {
	head
	gen uint64
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
		logged: map[string]loggedCall{}, loggedRuns: map[string]flows.RunRecord{}, retiredRuns: map[string]flows.RunRecord{},
		checkpoint: make(chan struct{}, 1),
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

// Run writes every Lag until ctx ends; then it writes once more and
// checkpoints, so that a clean shutdown loses nothing and the next start
// has no log to fold in. Meanwhile a goroutine of its own checkpoints
// when a write asks, and compacts every CompactEvery: the ticks go on
// during a checkpoint.
func (w *Writer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { w.checkpointer(ctx) })
	tick := time.NewTicker(w.cfg.Lag)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			ok := w.Flush()
			wg.Wait()
			if ok {
				w.Checkpoint()
			}
			return
		case <-tick.C:
			w.Flush()
		}
	}
}

// checkpointer checkpoints when asked, and compacts every CompactEvery,
// until ctx ends.
func (w *Writer) checkpointer(ctx context.Context) {
	compact := time.NewTicker(w.cfg.CompactEvery)
	defer compact.Stop()
	w.compact()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.checkpoint:
			if !w.checkpointPaced(true) {
				// Not again at every tick while it fails: the log grows
				// meanwhile, and the failure is counted and logged.
				select {
				case <-ctx.Done():
				case <-time.After(checkpointRetry):
				}
			}
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

// WriteNow appends one call's record to the log at once, synced, and
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
	size, gen, err := w.j.Append(recs, runs)
	w.m.duration.Observe(time.Since(start).Seconds())
	w.m.logBytes.Set(float64(size))
	if err == nil {
		for i := range recs {
			r := &recs[i]
			held := r.FirstTransition + r.Skipped
			w.logged[r.Call.ID] = loggedCall{head{life: r.Life(), first: r.FirstTransition, next: held + uint64(len(r.Transitions))}, gen}
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
	w.outcome(w.m.writes, &w.failing, "journal write", err, len(ids))
	if err != nil {
		return false
	}
	w.m.records.Add(float64(len(recs)))
	if size >= w.cfg.CheckpointBytes {
		select {
		case w.checkpoint <- struct{}{}:
		default: // asked already
		}
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
		if l, ok := w.logged[id]; ok {
			out[i] = l.head
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

// Checkpoint starts the log's next generation and writes the calls and
// runs the logs before it hold into the journal's file; it reports
// whether that succeeded (or there was nothing to do). The appends go on
// meanwhile, to the new log.
func (w *Writer) Checkpoint() bool { return w.checkpointPaced(false) }

// checkpointPaced is Checkpoint; paced, it rests after each transaction
// as long as the transaction took, so that a checkpoint in the
// background takes at most about half of a core: one of 100,000 calls,
// at once, held one core for 1.6 s and took the p99 of the callbacks
// meanwhile from 100 to 221 ms.
func (w *Writer) checkpointPaced(paced bool) bool {
	w.cpMu.Lock()
	defer w.cpMu.Unlock()
	w.wmu.Lock()
	if len(w.logged) == 0 && len(w.loggedRuns) == 0 && len(w.retiredRuns) == 0 {
		w.wmu.Unlock()
		return true
	}
	upTo, err := w.j.Rotate()
	if err != nil {
		w.wmu.Unlock()
		w.outcome(w.m.checkpoints, &w.cpFailing, "journal checkpoint", err, 0)
		return false
	}
	// In key order, so that each of the checkpoint's transactions
	// changes the pages of one range of keys, not pages all over the
	// file.
	ids := slices.SortedFunc(maps.Keys(w.logged), compareIDs)
	maps.Copy(w.retiredRuns, w.loggedRuns)
	clear(w.loggedRuns)
	w.retiredEnd = w.retiredEnd || w.loggedEnd
	w.loggedEnd = false
	w.wmu.Unlock()

	start := time.Now()
	err = w.checkpointCalls(ids, upTo, paced)
	w.m.checkpointDuration.Observe(time.Since(start).Seconds())
	w.outcome(w.m.checkpoints, &w.cpFailing, "journal checkpoint", err, len(ids))
	w.m.logBytes.Set(float64(w.j.LogSize()))
	if err != nil {
		return false
	}
	// The file is now the base of every call whose last record was in a
	// log folded in; the others' last records are in the log appended
	// to.
	w.wmu.Lock()
	for _, id := range ids {
		if l, ok := w.logged[id]; ok && l.gen <= upTo {
			delete(w.logged, id)
		}
	}
	w.wmu.Unlock()
	clear(w.retiredRuns)
	w.retiredEnd = false
	return true
}

// checkpointRetry is the rest after a failed checkpoint before the next.
const checkpointRetry = time.Second

// checkpointChunk is how many calls' records one transaction of a
// checkpoint writes: bbolt holds what a write transaction changes in
// memory until it commits (100,000 calls in one took 2.3 s, and botd's
// RSS after the 100,000-call load went from about 420 to 599 MiB).
var checkpointChunk = 1000

// checkpointCalls writes the current records of ids into the file,
// checkpointChunk at a time (paced: resting after each as long as it
// took), then folds in the logs up to generation upTo with the retired
// runs and the last records of the calls the store no longer holds.
// Callers hold w.cpMu.
func (w *Writer) checkpointCalls(ids []string, upTo uint64, paced bool) error {
	var gone []string
	for chunk := range slices.Chunk(ids, checkpointChunk) {
		start := time.Now()
		heads, err := w.j.heads(chunk)
		if err != nil {
			heads = nil
		}
		g, err := w.putCurrent(chunk, heads)
		if err != nil {
			return err
		}
		gone = append(gone, g...)
		if paced {
			time.Sleep(time.Since(start))
		}
	}
	return w.j.FoldIn(slices.Collect(maps.Values(w.retiredRuns)), gone, upTo)
}

// putCurrent writes the current records of ids, each less the
// transitions heads (the file's) say it holds, with where in the logs
// they were read, and returns the ids the store no longer holds. When a
// record left out transitions the file does not have after all, the
// records are taken whole and written again.
func (w *Writer) putCurrent(ids []string, heads []head) ([]string, error) {
	recs, gone, at := w.current(ids, heads)
	err := w.j.PutCurrent(recs, at)
	if errors.Is(err, errPartial) {
		recs, gone, at = w.current(ids, nil)
		err = w.j.PutCurrent(recs, at)
	}
	return gone, err
}

// current is records, read between two appends, and where the log
// appended to then ended.
func (w *Writer) current(ids []string, heads []head) ([]callstate.Record, []string, logPos) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	recs, gone := w.records(ids, heads)
	return recs, gone, w.j.Position()
}

// outcome counts a write or checkpoint (what) in c, sets its failing
// flag, and turns the journal's health, logging the first failure of
// each kind and the recovery. Callers do not hold w.mu.
func (w *Writer) outcome(c *prometheus.CounterVec, failing *bool, what string, err error, calls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		c.WithLabelValues(resultError).Inc()
		if !*failing {
			w.log.Error().Err(err).Int("calls", calls).Str("path", w.j.Path()).Msg(what + " failed; serving from memory and retrying")
		}
		*failing = true
	} else {
		c.WithLabelValues(resultOK).Inc()
		if *failing {
			w.log.Info().Int("calls", calls).Msg(what + " recovered")
		}
		*failing = false
	}
	if w.failing || w.cpFailing {
		w.m.healthy.Set(0)
	} else {
		w.m.healthy.Set(1)
	}
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

// readable checkpoints when a log holds an ended call.
func (w *Writer) readable() error {
	w.cpMu.Lock()
	w.wmu.Lock()
	ended := w.loggedEnd || w.retiredEnd
	w.wmu.Unlock()
	w.cpMu.Unlock()
	if ended && !w.Checkpoint() {
		return errNotCheckpointed
	}
	return nil
}

// compact deletes the records of calls that ended before the history
// retention.
func (w *Writer) compact() {
	w.checkpointPaced(true)
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

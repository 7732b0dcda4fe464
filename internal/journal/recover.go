package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/model"
)

// Restorer is the call store as recovery fills it.
type Restorer interface {
	Restore(r callstate.Record) ([]callstate.Change, error)
}

// RunRestorer is the flow engine as recovery fills it.
type RunRestorer interface {
	RestoreAll(recs []flows.RunRecord) map[string]error
}

// Refresher asks Graph for a call's state and roster and applies them
// (calls.Service.Refresh).
type Refresher interface {
	Refresh(ctx context.Context, callID string) error
}

// RecoverConfig tunes Recover.
type RecoverConfig struct {
	// Retention is how long an ended call stays in memory (BOTD_RETENTION):
	// an ended call within it is put back, so that it can still be read;
	// an older one stays in the journal only, as history.
	Retention time.Duration
	// Rate bounds the Graph requests recovery makes per second (each call
	// takes two: the call and its participants), so that a restart with
	// many calls is not throttled.
	Rate float64
	// Workers is how many calls are refreshed at once.
	Workers int
	// Timeout bounds the refresh from Graph: the calls not refreshed by
	// then are kept as the journal had them (counted as skipped), and botd
	// turns ready, so that a Graph outage at start cannot keep it
	// unready, deferring callbacks, for long. 0 means no bound.
	Timeout time.Duration
	// Runs, when set, gets the flow runs the journal holds back, after
	// the calls and before the refresh, so that what the refresh changes
	// reaches them.
	Runs RunRestorer
	// Restored, when set, is called once every call and run is back, before
	// the refresh from Graph: from then on notifications can be applied
	// (the store judges a refresh older than a notification as stale).
	Restored func()
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Recovered counts what Recover did.
type Recovered struct {
	Restored  int // calls put back in memory
	Refused   int // records the store refused (over BOTD_MAX_CALLS); kept in the journal
	History   int // ended calls left in the journal only
	Refreshed int // live calls read again from Graph
	Failed    int // live calls Graph could not be asked about (kept as they were)
	Skipped   int // live calls not refreshed within the timeout (kept as they were)
	Runs      int // flow runs put back, waiting at their step
	RunsLost  int // flow runs that could not be put back (dropped from the journal)
}

// Recover puts the journal's calls back into st, then refreshes
// every live one from Graph at cfg.Rate (a call Graph no longer has is
// ended by the refresher). It returns when every call is done or ctx
// ends. A record that does not decode stops it (the journal is not one
// this botd reads); a record the store refuses (over its call limit) is
// logged, counted and left in the journal.
// Run it before botd serves, with the writer already observing st, so
// that what the refresh changes is written.
func (w *Writer) Recover(ctx context.Context, st Restorer, ref Refresher, cfg RecoverConfig) (Recovered, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	start := time.Now()
	var got Recovered
	live, err := w.restoreCalls(st, cfg, &got)
	if err != nil {
		return got, fmt.Errorf("recover: %w", err)
	}
	if cfg.Runs != nil {
		if err := w.restoreRuns(cfg.Runs, &got); err != nil {
			return got, fmt.Errorf("recover: %w", err)
		}
	}
	if cfg.Restored != nil {
		cfg.Restored()
	}
	w.log.Info().Int("restored", got.Restored).Int("live", len(live)).Int("history", got.History).Int("runs", got.Runs).
		Str("path", w.j.Path()).Msg("journal loaded; refreshing the live calls from Graph")
	w.refresh(ctx, live, ref, cfg, &got)
	w.m.recoverySeconds.Set(time.Since(start).Seconds())
	w.log.Info().Int("refreshed", got.Refreshed).Int("failed", got.Failed).Int("skipped", got.Skipped).Dur("took", time.Since(start)).Msg("recovery done")
	return got, ctx.Err()
}

// restoreCalls puts the journal's calls back into st, and returns the ids
// of the live ones.
func (w *Writer) restoreCalls(st Restorer, cfg RecoverConfig, got *Recovered) ([]string, error) {
	var live []string
	now := cfg.Now()
	err := w.j.Load(func(r callstate.Record) error {
		if r.Call.State == model.StateTerminated && now.Sub(r.TerminatedAt) >= cfg.Retention {
			got.History++
			return nil
		}
		if _, err := st.Restore(r); err != nil {
			// Over the call limit, or a record this store cannot hold:
			// the record stays in the journal, and botd starts without
			// the call rather than not at all.
			got.Refused++
			w.m.recovered.WithLabelValues(recoveredRefused).Inc()
			w.log.Error().Err(err).Str("call_id", r.Call.ID).Msg("call not restored from the journal")
			return nil
		}
		got.Restored++
		if r.Call.State != model.StateTerminated {
			live = append(live, r.Call.ID)
		}
		return nil
	})
	w.m.recovered.WithLabelValues(recoveredRestored).Add(float64(got.Restored))
	return live, err
}

// refresh has ref read each live call from Graph, cfg.Workers at a time
// within cfg.Rate, until cfg.Timeout; the calls it does not reach are
// counted skipped.
func (w *Writer) refresh(ctx context.Context, live []string, ref Refresher, cfg RecoverConfig, got *Recovered) {
	m, log := w.m, w.log
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
	}
	defer cancel()
	lim := rate.NewLimiter(rate.Limit(cfg.Rate), max(1, cfg.Workers))
	ids := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, cfg.Workers) {
		wg.Go(func() {
			for id := range ids {
				// Each call costs two requests: the call and its roster.
				err := lim.WaitN(rctx, min(2, lim.Burst()))
				if err == nil {
					err = ref.Refresh(rctx, id)
				}
				mu.Lock()
				if rctx.Err() != nil && ctx.Err() == nil {
					got.Skipped++
					m.recovered.WithLabelValues(recoveredSkipped).Inc()
				} else if err != nil {
					got.Failed++
					m.recovered.WithLabelValues(recoveredFailed).Inc()
					log.Warn().Err(err).Str("call_id", id).Msg("recovery could not refresh the call from Graph; kept as the journal had it")
				} else {
					got.Refreshed++
					m.recovered.WithLabelValues(recoveredRefreshed).Inc()
				}
				mu.Unlock()
			}
		})
	}
	sent := 0
	for _, id := range live {
		if rctx.Err() != nil {
			break
		}
		ids <- id
		sent++
	}
	close(ids)
	wg.Wait()
	if n := len(live) - sent; n > 0 && ctx.Err() == nil {
		got.Skipped += n
		m.recovered.WithLabelValues(recoveredSkipped).Add(float64(n))
	}
	if got.Skipped > 0 {
		log.Warn().Int("skipped", got.Skipped).Dur("timeout", cfg.Timeout).Msg("recovery timed out; the calls not refreshed from Graph are kept as the journal had them")
	}
}

// restoreRuns puts the journal's flow runs back, all at once so that
// child runs find their parents. A run that cannot be is logged, counted
// and deleted from the journal: it has ended.
func (w *Writer) restoreRuns(rr RunRestorer, got *Recovered) error {
	var recs []flows.RunRecord
	if err := w.j.LoadRuns(func(rec flows.RunRecord) error { recs = append(recs, rec); return nil }); err != nil {
		return err
	}
	errs := rr.RestoreAll(recs)
	var err error
	for _, rec := range recs {
		rerr, lost := errs[rec.View.ID]
		if !lost {
			got.Runs++
			w.m.recoveredRuns.WithLabelValues(recoveredRestored).Inc()
			continue
		}
		got.RunsLost++
		w.m.recoveredRuns.WithLabelValues(recoveredDropped).Inc()
		w.log.Error().Err(rerr).Str("run_id", rec.View.ID).Str("flow", rec.View.Flow).Msg("flow run not restored; it ends here")
		err = errors.Join(err, w.j.deleteRun(rec.View.ID))
	}
	return err
}

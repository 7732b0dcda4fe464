package callstate

import (
	"context"
	"time"

	"github.com/botd/botd/internal/model"
)

// Run does the Store's timed work until ctx ends, then returns nil: it fails
// operations pending past OperationTimeout, gives up on roster gaps older
// than DeltaGapTimeout, and sweeps calls past their Retention. The Changes
// this makes go to observers and subscribers. It passes every SweepInterval, or
// every half of the shorter timeout if that is less. Run one per Store.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.checkInterval())
	defer t.Stop()
	var buf []*call
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			buf = s.pass(buf[:0])
			clear(buf)
		}
	}
}

// pass is one round of Run's work; buf is scratch space, returned for reuse.
func (s *Store) pass(buf []*call) []*call {
	now := s.now()
	buf = s.allCalls(buf)
	for _, c := range buf {
		c.mu.Lock()
		if c.gone {
			c.mu.Unlock()
			continue
		}
		a := &applyCtx{callID: c.id, now: now, idx: -1}
		a.botd = "operation timeout"
		s.expireOpsLocked(c, a)
		a.botd = "roster gap timeout"
		s.expireGapLocked(c, a)
		if s.sweepableLocked(c, now) {
			a.botd = "call swept"
			s.failPendingOpsLocked(c, a, "call_swept")
			s.removeLocked(c, now)
			c.log().Debug().Str("state", string(c.res.State)).Msg("call swept")
		}
		s.finishLocked(c, a)
	}
	s.expireTombstones(now)
	return buf
}

// sweepableLocked reports whether c has outlived its retention: terminated
// that long ago, or never given a state by Graph nor created by botd and
// idle that long (a roster or operation for a call botd does not know).
func (s *Store) sweepableLocked(c *call, now time.Time) bool {
	switch {
	case c.res.State == model.StateTerminated:
		return now.Sub(c.terminatedAt) >= s.cfg.Retention
	case c.res.State == "" && !c.createdByBot:
		return now.Sub(c.updatedAt) >= s.cfg.Retention
	}
	return false
}

// expireTombstones forgets swept ids older than Retention.
func (s *Store) expireTombstones(now time.Time) {
	if s.ntombs.Load() == 0 {
		return
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, at := range sh.tombs {
			if now.Sub(at) >= s.cfg.Retention {
				delete(sh.tombs, id)
				s.ntombs.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

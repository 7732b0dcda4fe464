package flows

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// twoWaits waits an hour, counts, and waits an hour again.
const twoWaits = `name: twowaits
variables:
  n: {type: int}
steps:
  first:
    timeout: 1h
    on:
      - event: timeout
        set: {n: '${vars.n + 1}'}
        goto: second
  second:
    timeout: 1h
    on:
      - event: timeout
        end: completed
`

// recorder keeps each run's latest record, as the journal does.
type recorder struct {
	mu   sync.Mutex
	last map[string]RunRecord
}

func (r *recorder) keep(rec RunRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[rec.View.ID] = rec
}

func (r *recorder) get(id string) RunRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[id]
}

// TestRestoreRun: a run's record, taken while it waits at its second
// step, puts it back in a new engine at that step, with its variables and
// its deadline: it neither runs the step again nor waits a full timeout
// anew, and a deadline that passed while botd was down fires at once.
func TestRestoreRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		down time.Duration // between the record and the restore
		// after the restore: how long until the run must still be
		// running, and until it must have completed
		stillRunning, completed time.Duration
	}{
		{"deadline kept", 30 * time.Minute, 29 * time.Minute, 2 * time.Minute},
		{"deadline passed while down", 2 * time.Hour, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{last: map[string]RunRecord{}}
				cfg := DefaultConfig()
				cfg.OnRunChange = rec.keep
				a := newEngineRig(t, twoWaits, cfg)
				v, err := a.eng.Start("twowaits", nil)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Hour + time.Second)
				synctest.Wait()
				saved := rec.get(v.ID)
				if saved.View.Step != "second" || saved.View.Variables["n"] != int64(1) || saved.View.Status != StatusRunning {
					t.Fatalf("record %+v", saved.View)
				}
				a.stop()

				time.Sleep(tc.down)
				b := newEngineRig(t, twoWaits, DefaultConfig())
				defer b.stop()
				if err := b.eng.RestoreAll([]RunRecord{saved})[saved.View.ID]; err != nil {
					t.Fatal(err)
				}
				if tc.stillRunning > 0 {
					synctest.Wait()
					got, _ := b.eng.RunView(v.ID)
					if got.Status != StatusRunning || got.Step != "second" || got.Variables["n"] != int64(1) {
						t.Fatalf("restored run %+v", got)
					}
					time.Sleep(tc.stillRunning)
					synctest.Wait()
					if got, _ := b.eng.RunView(v.ID); got.Status != StatusRunning {
						t.Fatalf("restored run ended early: %+v", got)
					}
				}
				time.Sleep(tc.completed)
				synctest.Wait()
				got, _ := b.eng.RunView(v.ID)
				if got.Status != StatusCompleted {
					t.Fatalf("restored run %s at %s, want completed", got.Status, got.Step)
				}
				if n := len(got.History); n == 0 || got.History[n-1].From != "second" {
					t.Errorf("history %+v", got.History)
				}
			})
		})
	}
}

// TestRestoreRefuses: a run whose flow is not loaded, or whose step the
// flow no longer has, is not put back.
func TestRestoreRefuses(t *testing.T) {
	r := newEngineRig(t, twoWaits, DefaultConfig())
	defer r.stop()
	for name, rec := range map[string]RunRecord{
		"no flow":    {Version: RunRecordVersion, View: RunView{ID: "r1", Flow: "gone", Status: StatusRunning, Step: "first"}},
		"no step":    {Version: RunRecordVersion, View: RunView{ID: "r2", Flow: "twowaits", Status: StatusRunning, Step: "third"}},
		"bad var":    {Version: RunRecordVersion, View: RunView{ID: "r3", Flow: "twowaits", Status: StatusRunning, Step: "first", Variables: map[string]any{"n": "x"}}},
		"a child":    {Version: RunRecordVersion, View: RunView{ID: "r4", Flow: "twowaits", Status: StatusRunning, Step: "first", Parent: "r0"}},
		"newer form": {Version: 2, View: RunView{ID: "r5", Flow: "twowaits", Status: StatusRunning, Step: "first"}},
	} {
		if err := r.eng.RestoreAll([]RunRecord{rec})[rec.View.ID]; !errors.Is(err, ErrNotRestored) {
			t.Errorf("%s: Restore = %v, want ErrNotRestored", name, err)
		}
	}
	if n := len(r.eng.Runs("", "")); n != 0 {
		t.Errorf("%d runs after refused restores", n)
	}
}

// parentChild: the parent starts a child and waits for its end; the child
// waits an hour.
const parentChild = `name: parent
steps:
  s:
    actions: [{startFlow: {flow: child, as: kid}}]
    timeout: 3h
    on:
      - event: flowEnded
        run: kid
        end: completed
---
name: child
steps:
  w:
    timeout: 1h
    on:
      - event: timeout
        end: completed
`

// TestRestoreParentAndChild: a parent waiting for its child and the child
// come back together, linked: the child's end reaches the parent, which
// completes. A child whose parent is not restored is refused.
func TestRestoreParentAndChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{last: map[string]RunRecord{}}
		cfg := DefaultConfig()
		cfg.OnRunChange = rec.keep
		a := newEngineRig(t, parentChild, cfg)
		p, err := a.eng.Start("parent", nil)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		pv, _ := a.eng.RunView(p.ID)
		kid := pv.Children["kid"]
		if kid == "" {
			t.Fatalf("parent %+v started no child", pv)
		}
		saved := []RunRecord{rec.get(p.ID), rec.get(kid)}
		a.stop()

		b := newEngineRig(t, parentChild, DefaultConfig())
		defer b.stop()
		if errs := b.eng.RestoreAll(saved); len(errs) != 0 {
			t.Fatal(errs)
		}
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		if v, _ := b.eng.RunView(kid); v.Status != StatusCompleted || v.Parent != p.ID {
			t.Fatalf("child %+v", v)
		}
		if v, _ := b.eng.RunView(p.ID); v.Status != StatusCompleted {
			t.Fatalf("parent %s at %s: the child's end did not reach it", v.Status, v.Step)
		}

		c := newEngineRig(t, parentChild, DefaultConfig())
		defer c.stop()
		if errs := c.eng.RestoreAll(saved[1:]); !errors.Is(errs[kid], ErrNotRestored) {
			t.Errorf("a child without its parent: %v", errs)
		}
	})
}

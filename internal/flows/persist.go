package flows

import (
	"errors"
	"fmt"
	"time"

	"cel.dev/cel-go/common/types/ref"
)

// RunRecordVersion is the version of RunRecord's layout.
const RunRecordVersion = 1

// RunRecord is what a journal keeps of a running flow run: its view, and
// what the view does not show (the call each operation it sent is on, and
// its event count). The engine hands one to Config.OnRunChange each time
// the run's state changes; Restore puts a run back from it.
type RunRecord struct {
	Version int               `json:"v"`
	View    RunView           `json:"view"`
	Ops     map[string]string `json:"ops,omitempty"`
	Seq     int               `json:"seq,omitempty"`
}

// ErrNotRestored is wrapped by RestoreAll for a run it cannot put back.
var ErrNotRestored = errors.New("flow run not restored")

// RestoreAll puts back the runs a journal kept, each waiting at the step
// it had reached: the step's actions are not run again. A wait keeps its
// deadline; one that passed while botd was down fires at once. A child run
// is linked to its parent again, so that its end reaches it. A run that is
// not running needs nothing. It returns, by run id, why each run it did
// not put back was refused (ErrNotRestored): its flow is no longer loaded
// or no longer has its step, a value no longer fits, its parent was not
// put back, or the engine is at its run limit.
func (e *Engine) RestoreAll(recs []RunRecord) map[string]error {
	errs := map[string]error{}
	ready := map[string]*run{}
	parents := map[string]string{}
	for _, rec := range recs {
		r, err := e.prepare(rec)
		switch {
		case err != nil:
			errs[rec.View.ID] = err
		case r != nil:
			ready[r.id] = r
			if rec.View.Parent != "" {
				parents[r.id] = rec.View.Parent
			}
		}
	}
	// Link children to parents; a child whose parent is not back is not
	// either, nor are its own children.
	for changed := true; changed; {
		changed = false
		for id, pid := range parents {
			r, p := ready[id], ready[pid]
			if r == nil {
				continue
			}
			if p == nil {
				errs[id] = fmt.Errorf("%w: run %s: its parent run %s is not restored", ErrNotRestored, id, pid)
				delete(ready, id)
				changed = true
				continue
			}
			r.parent = p
			for name, cid := range p.children {
				if cid == id {
					r.childName = name
				}
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range ready {
		if e.runs[r.id] != nil {
			continue
		}
		if e.running >= e.cfg.MaxRuns {
			errs[r.id] = fmt.Errorf("%w: run %s: %w", ErrNotRestored, r.id, ErrTooManyRuns)
			continue
		}
		e.registerLocked(r)
	}
	return errs
}

// prepare builds the run of rec, not yet registered; nil, nil for a run
// that is not running.
func (e *Engine) prepare(rec RunRecord) (*run, error) {
	v := rec.View
	if rec.Version != RunRecordVersion {
		return nil, fmt.Errorf("%w: run %s: record version %d, want %d", ErrNotRestored, v.ID, rec.Version, RunRecordVersion)
	}
	if v.Status != StatusRunning {
		return nil, nil
	}
	f, ok := e.flows.Load().Flow(v.Flow)
	if !ok {
		return nil, fmt.Errorf("%w: run %s: flow %s is no longer loaded", ErrNotRestored, v.ID, v.Flow)
	}
	if _, ok := f.steps[v.Step]; !ok {
		return nil, fmt.Errorf("%w: run %s: flow %s has no step %q any more", ErrNotRestored, v.ID, v.Flow, v.Step)
	}
	params, err := restoreVals(f.Parameters, v.Parameters)
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: parameter %v", ErrNotRestored, v.ID, err)
	}
	vars, err := restoreVals(f.Variables, v.Variables)
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: variable %v", ErrNotRestored, v.ID, err)
	}
	r := &run{
		e: e, id: v.ID, flow: f, status: StatusRunning, step: v.Step, params: params, vars: vars,
		calls: cloneMap(v.Calls), names: map[string]string{}, ops: cloneMap(rec.Ops), children: cloneMap(v.Children),
		touched: map[string]bool{}, history: v.History, historyDropped: v.HistoryDropped,
		deadline: v.Deadline, seq: rec.Seq, gen: 1, startedAt: v.StartedAt, last: &EventInfo{Kind: "restored"},
	}
	for _, id := range v.Touched {
		r.touched[id] = true
	}
	r.log = e.log.With().Str("run_id", r.id).Str("flow", f.Name).Logger()
	return r, nil
}

// registerLocked makes a prepared run live: it gets its calls' changes,
// counts as running, and its wait's timer runs. Callers hold e.mu.
func (e *Engine) registerLocked(r *run) {
	for name, id := range r.calls {
		r.names[id], r.touched[id] = name, true
		e.bindLocked(r, id)
		if name == "call" {
			r.log = r.log.With().Str("call_id", id).Logger()
		}
	}
	e.runs[r.id] = r
	e.running++
	e.metrics.running.Inc()
	r.publish()
	r.log.Info().Str("step", r.step).Time("deadline", r.deadline).Str("parent", r.viewParent()).Msg("flow run restored")
	// Last: once the timer runs, the run belongs to its worker.
	if !r.deadline.IsZero() {
		r.armTimer(max(0, time.Until(r.deadline)), r.gen)
	}
}

func (r *run) viewParent() string {
	if r.parent == nil {
		return ""
	}
	return r.parent.id
}

// restoreVals converts the JSON values a view shows back into the values
// of the fields they belong to; a field the record lacks takes its
// default.
func restoreVals(fields []*Field, given map[string]any) (map[string]ref.Val, error) {
	out := make(map[string]ref.Val, len(fields))
	for _, fd := range fields {
		raw, ok := given[fd.Name]
		if !ok || raw == nil {
			out[fd.Name] = fd.def
			continue
		}
		v, err := fd.convert(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fd.Name, err)
		}
		out[fd.Name] = v
	}
	return out, nil
}

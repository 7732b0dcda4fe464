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

// ErrNotRestored is wrapped by Restore for a run it cannot put back.
var ErrNotRestored = errors.New("flow run not restored")

// Restore puts back a run a journal kept, waiting at the step it had
// reached: the step's actions are not run again. Its wait keeps its
// deadline; one that passed while botd was down fires at once. A run that
// is not running needs nothing (nil). A run whose flow is no longer
// loaded, whose step the flow no longer has, or that has a parent or
// children (not restored yet), is refused with ErrNotRestored.
func (e *Engine) Restore(rec RunRecord) error {
	v := rec.View
	if rec.Version != RunRecordVersion {
		return fmt.Errorf("%w: run %s: record version %d, want %d", ErrNotRestored, v.ID, rec.Version, RunRecordVersion)
	}
	if v.Status != StatusRunning {
		return nil
	}
	if v.Parent != "" || len(v.Children) > 0 {
		return fmt.Errorf("%w: run %s of %s: runs with a parent or child runs are not restored", ErrNotRestored, v.ID, v.Flow)
	}
	f, ok := e.flows.Load().Flow(v.Flow)
	if !ok {
		return fmt.Errorf("%w: run %s: flow %s is no longer loaded", ErrNotRestored, v.ID, v.Flow)
	}
	if _, ok := f.steps[v.Step]; !ok {
		return fmt.Errorf("%w: run %s: flow %s has no step %q any more", ErrNotRestored, v.ID, v.Flow, v.Step)
	}
	params, err := restoreVals(f.Parameters, v.Parameters)
	if err != nil {
		return fmt.Errorf("%w: run %s: parameter %v", ErrNotRestored, v.ID, err)
	}
	vars, err := restoreVals(f.Variables, v.Variables)
	if err != nil {
		return fmt.Errorf("%w: run %s: variable %v", ErrNotRestored, v.ID, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[v.ID] != nil {
		return nil
	}
	if e.running >= e.cfg.MaxRuns {
		return fmt.Errorf("%w: run %s: %w", ErrNotRestored, v.ID, ErrTooManyRuns)
	}
	r := &run{
		e: e, id: v.ID, flow: f, status: StatusRunning, step: v.Step, params: params, vars: vars,
		calls: cloneMap(v.Calls), names: map[string]string{}, ops: cloneMap(rec.Ops), children: map[string]string{},
		touched: map[string]bool{}, history: v.History, historyDropped: v.HistoryDropped,
		deadline: v.Deadline, seq: rec.Seq, gen: 1, startedAt: v.StartedAt, last: &EventInfo{Kind: "restored"},
	}
	for _, id := range v.Touched {
		r.touched[id] = true
	}
	r.log = e.log.With().Str("run_id", r.id).Str("flow", f.Name).Logger()
	for name, id := range r.calls {
		r.names[id] = name
		e.bindLocked(r, id)
		if name == "call" {
			r.log = r.log.With().Str("call_id", id).Logger()
		}
	}
	e.runs[r.id] = r
	e.running++
	e.metrics.running.Inc()
	r.publish()
	if !v.Deadline.IsZero() {
		r.armTimer(max(0, time.Until(v.Deadline)), r.gen)
	}
	r.log.Info().Str("step", r.step).Time("deadline", v.Deadline).Msg("flow run restored")
	return nil
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

package flows

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/common/types/ref"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/problem"
)

// Calls is the calls service's outbound actions, which flows act
// through: nothing else sends to Graph.
type Calls = calls.Actions

// Store is the part of the call store flows read: the calls, and every
// change to them, in order per call.
type Store interface {
	Call(id string) (callstate.CallView, bool)
	Observe(fn func([]callstate.Change)) (stop func())
}

// Config bounds and tunes the engine. Every setting is required (see
// DefaultConfig).
type Config struct {
	// MaxRuns bounds the runs in flight; a start beyond it is refused.
	MaxRuns int
	// Workers run the runs' steps (and so their Graph requests).
	Workers int
	// ActionTimeout bounds one action.
	ActionTimeout time.Duration
	// DefaultTimeout bounds a wait that names no timeout.
	DefaultTimeout time.Duration
	// MaxHistory bounds each run's step history (oldest dropped).
	MaxHistory int
	// MaxEnded bounds the ended runs kept for the admin API (oldest
	// dropped).
	MaxEnded int
	// MaxStepsWithoutWait ends a run that takes more steps than this
	// without waiting for an event.
	MaxStepsWithoutWait int
	// Path is the flow file or directory Reload reads (BOTD_FLOWS); ""
	// when botd runs only the built-in flow.
	Path string
	// Notify sends notify actions; NotifyTimeout bounds one attempt when
	// the action names none.
	Notify        *http.Client
	NotifyTimeout time.Duration
	// OnRunChange, when set, gets a running run's record each time its
	// state changes, and the record of its end: the journal keeps the
	// runs in flight with it. It is called on the engine's workers and
	// must not block or call back into the engine.
	OnRunChange func(RunRecord)
}

// Documented defaults of Config, as DefaultConfig returns them.
const (
	DefaultMaxRuns             = 10000
	DefaultWorkers             = 8
	DefaultActionTimeout       = 30 * time.Second
	DefaultWaitTimeout         = 5 * time.Minute
	DefaultMaxHistory          = 64
	DefaultMaxEnded            = 1000
	DefaultMaxStepsWithoutWait = 100
	DefaultNotifyTimeout       = 5 * time.Second
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{MaxRuns: DefaultMaxRuns, Workers: DefaultWorkers, ActionTimeout: DefaultActionTimeout,
		DefaultTimeout: DefaultWaitTimeout, MaxHistory: DefaultMaxHistory, MaxEnded: DefaultMaxEnded,
		MaxStepsWithoutWait: DefaultMaxStepsWithoutWait, Notify: &http.Client{}, NotifyTimeout: DefaultNotifyTimeout}
}

func (c Config) check() error {
	for _, s := range []struct {
		name string
		ok   bool
	}{
		{"MaxRuns", c.MaxRuns > 0}, {"Workers", c.Workers > 0}, {"ActionTimeout", c.ActionTimeout > 0},
		{"DefaultTimeout", c.DefaultTimeout > 0}, {"MaxHistory", c.MaxHistory > 0}, {"MaxEnded", c.MaxEnded > 0},
		{"MaxStepsWithoutWait", c.MaxStepsWithoutWait > 0}, {"Notify", c.Notify != nil}, {"NotifyTimeout", c.NotifyTimeout > 0},
	} {
		if !s.ok {
			return fmt.Errorf("flows config: %s must be set and positive", s.name)
		}
	}
	return nil
}

// Options are the loader options the engine's settings imply.
func (c Config) Options() Options { return Options{DefaultTimeout: c.DefaultTimeout} }

// Engine runs flows. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	calls   Calls
	store   Store
	log     zerolog.Logger
	metrics *metrics

	flows atomic.Pointer[Set]
	// builtin, if set, is kept in every set Reload loads.
	builtin *Flow

	mu       sync.Mutex
	closed   bool
	runs     map[string]*run // running and ended
	endedIDs []string        // ended run ids, oldest first
	running  int
	byCall   map[string][]*run
	creating int
	// orphans holds the changes of calls no run holds yet, while a run is
	// creating a call: its first notifications may come before Graph's
	// answer gives botd its id.
	orphans     map[string][]callstate.Change
	orphanCount int

	ready chan *run
	// busy counts runs scheduled or being handled, for Drain.
	busy atomic.Int64
}

// maxOrphans bounds the changes held for calls being created.
const maxOrphans = 4096

// New builds an engine for the flows of set (nil: none), and starts
// observing the store. Start its workers with Run.
func New(cfg Config, set *Set, c Calls, s Store, log zerolog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if set == nil {
		set = newSet(nil)
	}
	e := &Engine{
		cfg: cfg, calls: c, store: s,
		log:     log.With().Str("component", "flows").Logger(),
		metrics: newMetrics(reg),
		runs:    map[string]*run{},
		byCall:  map[string][]*run{},
		orphans: map[string][]callstate.Change{},
		ready:   make(chan *run, cfg.MaxRuns+1),
	}
	e.setFlows(set)
	s.Observe(e.observe)
	return e, nil
}

// setFlows installs set, with the built-in flow if it has none of that
// name.
func (e *Engine) setFlows(set *Set) {
	if e.builtin != nil {
		if _, ok := set.Flow(e.builtin.Name); !ok {
			set = set.with(e.builtin)
		}
	}
	e.flows.Store(set)
	for _, f := range set.Flows() {
		e.metrics.init(f)
	}
}

// SetBuiltin installs f, kept through every reload unless a loaded flow
// has its name.
func (e *Engine) SetBuiltin(f *Flow) {
	e.builtin = f
	e.setFlows(e.flows.Load())
}

// Flows is the current set.
func (e *Engine) Flows() *Set { return e.flows.Load() }

// ErrNoPath refuses a reload when botd was started without BOTD_FLOWS.
var ErrNoPath = &problem.Error{Code: problem.Conflict, Message: "no flow files to reload: botd was started without BOTD_FLOWS"}

// Reload loads Config.Path again and, if every file loads, replaces the
// flows; runs in flight keep the flow they started with. On error (a 422
// problem listing every load error) the flows stay as they were.
func (e *Engine) Reload() (*Set, error) {
	path := e.cfg.Path
	if path == "" {
		return nil, ErrNoPath
	}
	set, err := LoadPath(path, e.cfg.Options())
	if err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		e.log.Error().Err(err).Str("path", path).Msg("flows not reloaded; keeping the flows loaded before")
		return nil, &reloadError{err: err}
	}
	e.setFlows(set)
	e.metrics.reloads.WithLabelValues("ok").Inc()
	e.log.Info().Str("path", path).Int("flows", len(set.names)).Msg("flows reloaded")
	return e.flows.Load(), nil
}

// reloadError is a reload refused: a 422 problem whose errors member
// lists every load error with its position.
type reloadError struct{ err error }

func (e *reloadError) Error() string { return "flows not reloaded: " + e.err.Error() }
func (e *reloadError) Unwrap() error { return e.err }

func (e *reloadError) Problem() problem.Problem {
	var lines []string
	var les LoadErrors
	if errors.As(e.err, &les) {
		for _, le := range les {
			lines = append(lines, le.Error())
		}
	} else {
		lines = []string{e.err.Error()}
	}
	return problem.Problem{Code: problem.Unprocessable, Rule: "flows.load", Errors: lines,
		Detail: fmt.Sprintf("flows not reloaded (%d errors); the flows loaded before stay", len(lines))}
}

// Run runs the workers until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < e.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-e.ready:
					e.process(ctx, r)
				}
			}
		}()
	}
	<-ctx.Done()
	e.mu.Lock()
	e.closed = true
	for _, r := range e.runs {
		r.stopTimer()
	}
	e.mu.Unlock()
	wg.Wait()
}

// Drain waits until every run's queued events have been handled (so an
// action a callback asked for before shutdown is sent), or ctx ends.
func (e *Engine) Drain(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for e.busy.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain flows: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Errors of Start.
var (
	ErrTooManyRuns = &problem.Error{Code: problem.Unavailable, Message: "too many flow runs in flight"}
	errClosed      = &problem.Error{Code: problem.Unavailable, Message: "flows are shutting down"}
)

// How a run started: the how label of the runs-started metric.
const (
	startTrigger = "trigger"
	startAPI     = "api"
	startFlow    = "flow"
)

// Start starts a run of the named flow with parameters (JSON values).
func (e *Engine) Start(name string, params map[string]any) (RunView, error) {
	f, ok := e.flows.Load().Flow(name)
	if !ok {
		return RunView{}, problem.Errorf(problem.NotFound, "flow %q is not loaded", problem.Shorten(name))
	}
	ps, err := f.bind(params)
	if err != nil {
		return RunView{}, err
	}
	e.mu.Lock()
	r, err := e.startLocked(f, ps, startAPI, nil, "", "")
	e.mu.Unlock()
	if err != nil {
		return RunView{}, err
	}
	return r.view(), nil
}

// bind checks parameters against the flow's declarations and fills the
// defaults.
func (f *Flow) bind(given map[string]any) (map[string]ref.Val, error) {
	out := make(map[string]ref.Val, len(f.Parameters))
	for k := range given {
		if !slices.ContainsFunc(f.Parameters, func(p *Field) bool { return p.Name == k }) {
			names := make([]string, len(f.Parameters))
			for i, p := range f.Parameters {
				names[i] = p.Name
			}
			return nil, &problem.Error{Code: problem.Unprocessable, Rule: "parameters.unknown", Field: "parameters." + problem.Shorten(k),
				Message: fmt.Sprintf("flow %s has no parameter %q%s", f.Name, problem.Shorten(k), suggest(k, names))}
		}
	}
	for _, p := range f.Parameters {
		raw, ok := given[p.Name]
		if !ok || raw == nil {
			if p.Required {
				return nil, &problem.Error{Code: problem.Unprocessable, Rule: "parameters.required", Field: "parameters." + p.Name,
					Message: fmt.Sprintf("parameter %s (%s) is required", p.Name, p.Type)}
			}
			out[p.Name] = p.def
			continue
		}
		v, err := p.convert(raw)
		if err != nil {
			return nil, &problem.Error{Code: problem.Unprocessable, Rule: "parameters.type", Field: "parameters." + p.Name,
				Message: fmt.Sprintf("parameter %s: %v", p.Name, err)}
		}
		out[p.Name] = v
	}
	return out, nil
}

// startLocked makes a run and queues its start; callID, if set, is its
// main call, which it holds from the start. Callers hold e.mu.
func (e *Engine) startLocked(f *Flow, params map[string]ref.Val, how string, parent *run, childName, callID string) (*run, error) {
	if e.closed {
		e.metrics.refused.WithLabelValues(f.Name, "shutting_down").Inc()
		return nil, errClosed
	}
	if e.running >= e.cfg.MaxRuns {
		e.metrics.refused.WithLabelValues(f.Name, "limit").Inc()
		e.log.Warn().Str("flow", f.Name).Int("max_runs", e.cfg.MaxRuns).Msg("flow run refused: too many runs in flight")
		return nil, ErrTooManyRuns
	}
	id, _ := uuid.NewV7()
	r := &run{
		e: e, id: id.String(), flow: f, parent: parent, childName: childName,
		status: StatusRunning, params: params, vars: make(map[string]ref.Val, len(f.Variables)),
		calls: map[string]string{}, names: map[string]string{}, ops: map[string]string{}, children: map[string]string{},
		touched: map[string]bool{}, startedAt: time.Now(),
	}
	for _, v := range f.Variables {
		r.vars[v.Name] = v.def
	}
	r.log = e.log.With().Str("run_id", r.id).Str("flow", f.Name).Logger()
	if callID != "" {
		r.calls["call"], r.names[callID], r.touched[callID] = callID, "call", true
		e.byCall[callID] = append(e.byCall[callID], r)
		r.log = r.log.With().Str("call_id", callID).Logger()
	}
	e.runs[r.id] = r
	e.running++
	e.metrics.running.Inc()
	e.metrics.started.WithLabelValues(f.Name, how).Inc()
	r.publish()
	r.post(event{kind: evStart})
	r.log.Info().Str("how", how).Msg("flow run started")
	return r, nil
}

// RunView returns the run's current view.
func (e *Engine) RunView(id string) (RunView, bool) {
	e.mu.Lock()
	r, ok := e.runs[id]
	e.mu.Unlock()
	if !ok {
		return RunView{}, false
	}
	return r.view(), true
}

// Runs lists runs, oldest first, filtered by flow and status ("" any).
func (e *Engine) Runs(flow, status string) []RunView {
	e.mu.Lock()
	rs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		rs = append(rs, r)
	}
	e.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].id < rs[j].id })
	out := make([]RunView, 0, len(rs))
	for _, r := range rs {
		v := r.view()
		if (flow == "" || v.Flow == flow) && (status == "" || v.Status == status) {
			out = append(out, v)
		}
	}
	return out
}

// RunsForCall names the runs that hold a call, the first the one that
// drives it.
func (e *Engine) RunsForCall(callID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.byCall[callID] {
		out = append(out, r.id)
	}
	return out
}

// Cancel cancels a running run: its onCancel actions run, and it ends
// canceled. Its calls are left as they are unless onCancel acts on them.
func (e *Engine) Cancel(id string) (RunView, error) {
	e.mu.Lock()
	r, ok := e.runs[id]
	e.mu.Unlock()
	if !ok {
		return RunView{}, problem.Errorf(problem.NotFound, "run %q is not known", problem.Shorten(id))
	}
	v := r.view()
	if v.Status != StatusRunning {
		return v, problem.Errorf(problem.Conflict, "run %s already ended (%s)", id, v.Status)
	}
	r.post(event{kind: evCancel})
	return v, nil
}

// observe routes the store's changes to the runs that hold their calls,
// and starts a triggered flow for an incoming call no run holds.
func (e *Engine) observe(changes []callstate.Change) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range changes {
		c := changes[i]
		rs := e.byCall[c.CallID]
		if len(rs) == 0 {
			switch {
			case c.Kind == callstate.CallIncoming:
				e.triggerLocked(&c, TriggerIncoming)
			case c.Kind == callstate.CallEstablished && e.creating == 0:
				e.triggerLocked(&c, TriggerEstablished)
			case e.creating > 0 && e.orphanCount < maxOrphans:
				e.orphans[c.CallID] = append(e.orphans[c.CallID], c)
				e.orphanCount++
			case e.creating > 0:
				e.metrics.orphansDropped.Inc()
			}
			continue
		}
		for _, r := range rs {
			r.post(event{kind: evChange, change: &c})
		}
	}
}

// triggerLocked starts the first flow whose trigger matches a call no run
// holds that became incoming or established (on). Callers hold e.mu.
func (e *Engine) triggerLocked(c *callstate.Change, on string) {
	set := e.flows.Load()
	if len(set.triggers) == 0 {
		return
	}
	info := callInfoFrom(c.CallID, "call", c.Call)
	for _, f := range set.triggers {
		t := f.Trigger
		if !slices.Contains(t.On, on) || !matchGlob(t.Caller, info.Source) || !matchGlob(t.Called, info.Target) || !matchGlob(t.Tenant, info.Tenant) {
			continue
		}
		params, err := f.bind(nil)
		if err != nil {
			e.log.Error().Err(err).Str("flow", f.Name).Msg("triggered flow cannot start")
			continue
		}
		if t.cond != nil {
			probe := &run{flow: f, params: params, vars: map[string]ref.Val{}, calls: map[string]string{}}
			ok, err := t.cond.test(&activation{run: probe, event: &EventInfo{Kind: on, CallID: c.CallID, Call: "call"},
				call: func() *CallInfo { return info }})
			if err != nil {
				e.log.Warn().Err(err).Str("flow", f.Name).Str("call_id", c.CallID).Msg("flow trigger condition failed; skipped")
				continue
			}
			if !ok {
				continue
			}
		}
		if _, err := e.startLocked(f, params, startTrigger, nil, "", c.CallID); err != nil {
			e.log.Error().Err(err).Str("flow", f.Name).Str("call_id", c.CallID).Msg("incoming call left to Graph: no flow run")
		}
		return
	}
}

// bindLocked makes r receive the changes of callID. Callers hold e.mu.
func (e *Engine) bindLocked(r *run, callID string) {
	if !slices.Contains(e.byCall[callID], r) {
		e.byCall[callID] = append(e.byCall[callID], r)
	}
	if held := e.orphans[callID]; len(held) > 0 {
		delete(e.orphans, callID)
		e.orphanCount -= len(held)
		for i := range held {
			r.post(event{kind: evChange, change: &held[i]})
		}
	}
}

// beginCreate and endCreate bracket a createCall, during which changes of
// unknown calls are held (see orphans).
func (e *Engine) beginCreate() {
	e.mu.Lock()
	e.creating++
	e.mu.Unlock()
}

func (e *Engine) endCreate(r *run, callID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.creating--
	if callID != "" && r != nil {
		e.bindLocked(r, callID)
	}
	if e.creating == 0 {
		// Calls no run claimed: a placed call that became established
		// meanwhile may start a flow.
		for id, held := range e.orphans {
			for i := range held {
				if held[i].Kind == callstate.CallEstablished && len(e.byCall[id]) == 0 {
					e.triggerLocked(&held[i], TriggerEstablished)
				}
			}
		}
		clear(e.orphans)
		e.orphanCount = 0
	}
}

// bind makes r receive callID's changes.
func (e *Engine) bind(r *run, callID string) {
	e.mu.Lock()
	e.bindLocked(r, callID)
	e.mu.Unlock()
}

// ended unbinds a run that ended, keeps it for the admin API, and tells
// its parent.
func (e *Engine) ended(r *run) {
	e.mu.Lock()
	for id := range r.touched {
		rs := slices.DeleteFunc(e.byCall[id], func(x *run) bool { return x == r })
		if len(rs) == 0 {
			delete(e.byCall, id)
		} else {
			e.byCall[id] = rs
		}
	}
	e.running--
	e.metrics.running.Dec()
	e.endedIDs = append(e.endedIDs, r.id)
	for len(e.endedIDs) > e.cfg.MaxEnded {
		delete(e.runs, e.endedIDs[0])
		e.endedIDs = e.endedIDs[1:]
	}
	e.mu.Unlock()
	if p := r.parent; p != nil {
		p.post(event{kind: evChild, child: &childEnd{name: r.childName, id: r.id, status: r.status, outputs: r.outputs}})
	}
}

// process runs r's queued events, in order.
func (e *Engine) process(ctx context.Context, r *run) {
	for {
		r.boxMu.Lock()
		if len(r.mailbox) == 0 {
			r.scheduled = false
			r.boxMu.Unlock()
			e.busy.Add(-1)
			return
		}
		ev := r.mailbox[0]
		r.mailbox[0] = event{}
		r.mailbox = r.mailbox[1:]
		r.boxMu.Unlock()
		r.handle(ctx, ev)
	}
}

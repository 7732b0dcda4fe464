// Package automation is what botd does for every call, whatever flow drives
// it: it keeps established calls alive (keepAlive before Graph's 45-minute
// limit, and a call whose keepAlive Graph answers 404 is marked ended) and
// resyncs a roster after a delta gap. It runs them on a bounded pool of
// workers, never inside a Graph callback.
//
// The bot's behaviour (answer, reject, redirect, invite on establish and
// its retries) is not here: it is the flows engine's built-in flow
// (internal/flows), so that there is one engine. Automation owns the
// queue, the workers and the keepAlive timers; it leaves decoding to
// notify, state to callstate, and every outbound action to the calls
// service, through the small interfaces below.
package automation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/tunable"
)

// Calls is the part of the calls service automation acts through: it
// fills botd's defaults, records operations and sends to Graph.
type Calls interface {
	KeepAlive(ctx context.Context, callID string) (calls.Result, error)
	ResyncRoster(ctx context.Context, callID string) error
}

// Store is the part of the call store automation uses: a call whose
// keepAlive Graph answers 404 has ended without telling botd.
type Store interface {
	MarkTerminated(callID, reason string) []callstate.Change
	Observe(fn func([]callstate.Change)) (stop func())
}

// Config is automation's behaviour.
type Config struct {
	// KeepAlive is the keepAlive period of established calls. Required.
	KeepAlive time.Duration
	// Workers run the queued actions; QueueSize bounds the actions waiting
	// for one. Both are required (see DefaultWorkers, DefaultQueueSize).
	Workers   int
	QueueSize int
	// ActionTimeout bounds one action, retries included. Incoming calls must
	// be answered well inside Graph's 15 s deadline. Required (see
	// DefaultActionTimeout).
	ActionTimeout time.Duration
}

// The package's documented values of the settings New requires. New
// applies none of them: a zero or negative setting is refused, and a
// caller that wants one of these passes it.
const (
	DefaultWorkers       = 4
	DefaultQueueSize     = 1024
	DefaultActionTimeout = 30 * time.Second
)

// check names the first required setting of c that is zero or negative.
func (c Config) check() error {
	if err := tunable.Positive(
		tunable.Duration("KeepAlive", c.KeepAlive),
		tunable.Int("Workers", c.Workers),
		tunable.Int("QueueSize", c.QueueSize),
		tunable.Duration("ActionTimeout", c.ActionTimeout),
	); err != nil {
		return fmt.Errorf("automation config: %w", err)
	}
	return nil
}

// job is one queued action.
type job struct {
	kind   string
	callID string
	run    func(ctx context.Context) error
}

// Engine runs automation.
type Engine struct {
	cfg     Config
	calls   Calls
	store   Store
	log     zerolog.Logger
	metrics *metrics

	queue chan job

	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup // queued + running jobs
	keepalive map[string]*time.Timer
}

type metrics struct {
	actions  *prometheus.CounterVec
	queued   prometheus.Gauge
	refused  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_automation_actions_total",
			Help: "Automation actions by kind and result (ok, error, outcome_unknown, not_found).",
		}, []string{"action", "result"}),
		queued: f.NewGauge(prometheus.GaugeOpts{
			Name: "botd_automation_queue_length",
			Help: "Automation actions waiting for a worker.",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "botd_automation_refused_total",
			Help: "Automation actions that could not be queued, by kind and reason (queue_full, shutting_down).",
		}, []string{"action", "reason"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "botd_automation_action_duration_seconds",
			Help:    "Time from an action's start to its end, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}, []string{"action"}),
	}
	// Every action's series is exported, at 0, from start.
	for _, a := range actionKinds {
		for _, r := range []string{resultOK, resultError, resultOutcomeUnknown, resultNotFound} {
			m.actions.WithLabelValues(a, r)
		}
		for _, r := range []string{refusedQueueFull, refusedShuttingDown} {
			m.refused.WithLabelValues(a, r)
		}
		m.duration.WithLabelValues(a)
	}
	return m
}

// Action kinds: the action label of the automation metrics.
const (
	actionKeepAlive    = "keepalive"
	actionRosterResync = "roster_resync"
)

var actionKinds = []string{actionKeepAlive, actionRosterResync}

// Action results and refusal reasons: the result and reason labels.
const (
	resultOK             = "ok"
	resultError          = "error"
	resultOutcomeUnknown = "outcome_unknown"
	resultNotFound       = "not_found"
	refusedQueueFull     = "queue_full"
	refusedShuttingDown  = "shutting_down"
)

// New builds an engine, or refuses a cfg whose KeepAlive, Workers,
// QueueSize or ActionTimeout is not positive, naming it. Start its workers with Run.
func New(cfg Config, c Calls, s Store, log zerolog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:       cfg,
		calls:     c,
		store:     s,
		log:       log.With().Str("component", "automation").Logger(),
		metrics:   newMetrics(reg),
		queue:     make(chan job, cfg.QueueSize),
		keepalive: map[string]*time.Timer{},
	}
	// Every change, from a notification, from botd's own requests or from
	// a timer, reaches the engine from here on, and for good: after Close
	// the engine still sees them, and refuses and counts what they ask.
	s.Observe(e.Handle)
	return e, nil
}

// Run starts the workers and returns when ctx ends and every queued job has
// run. Call Close first for an orderly drain.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < e.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range e.queue {
				e.metrics.queued.Dec()
				e.runJob(ctx, j)
				e.inflight.Done()
			}
		}()
	}
	wg.Wait()
}

// Close stops accepting new actions and timers, and closes the queue so the
// workers end once it is empty. It is safe to call more than once.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for _, t := range e.keepalive {
		t.Stop()
	}
	close(e.queue)
}

// Wait blocks until every accepted action has finished or ctx ends.
func (e *Engine) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain automation: %w", ctx.Err())
	}
}

// enqueue queues j without blocking; a job that cannot be queued is logged
// as an error and counted, never dropped silently.
func (e *Engine) enqueue(j job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		e.metrics.refused.WithLabelValues(j.kind, refusedShuttingDown).Inc()
		e.log.Error().Str("call_id", j.callID).Str("action", j.kind).Msg("automation action refused: shutting down")
		return false
	}
	e.inflight.Add(1)
	select {
	case e.queue <- j:
		e.metrics.queued.Inc()
		return true
	default:
		e.inflight.Done()
		e.metrics.refused.WithLabelValues(j.kind, refusedQueueFull).Inc()
		e.log.Error().Str("call_id", j.callID).Str("action", j.kind).Int("queue_size", e.cfg.QueueSize).Msg("automation action refused: queue full")
		return false
	}
}

func (e *Engine) runJob(ctx context.Context, j job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.ActionTimeout)
	defer cancel()
	start := time.Now()
	err := j.run(ctx)
	e.metrics.duration.WithLabelValues(j.kind).Observe(time.Since(start).Seconds())
	result := resultOK
	log := e.log.With().Str("call_id", j.callID).Str("action", j.kind).Logger()
	var ae *graph.APIError
	switch {
	case err == nil:
		log.Info().Msg("automation action done")
	case errors.Is(err, graph.ErrOutcomeUnknown):
		result = resultOutcomeUnknown
		log.Warn().Err(err).Msg("automation action outcome unknown; reconciling by clientContext")
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		result = resultNotFound
		log.Warn().Err(err).Msg("automation action: Graph no longer knows the call")
	default:
		result = resultError
		log.Error().Err(err).Msg("automation action failed")
	}
	e.metrics.actions.WithLabelValues(j.kind, result).Inc()
}

// Handle reacts to changes the store reported; it observes the store, so it
// sees every change, including those of botd's own requests and timers. It
// never blocks on Graph: it queues work.
func (e *Engine) Handle(changes []callstate.Change) {
	for i := range changes {
		c := &changes[i]
		switch c.Kind {
		case callstate.CallEstablished:
			e.startKeepAlive(c.CallID)
		case callstate.CallRestored:
			// A call put back after a restart may have gone without a
			// keepAlive for as long as botd was down: its first one is
			// sent soon, at a random point of the first minute so that a
			// restart with many calls spreads them.
			if c.To == model.StateEstablished {
				e.startKeepAliveAfter(c.CallID, rand.N(min(e.cfg.KeepAlive, restoredKeepAliveSpread)))
			}
		case callstate.CallTerminated:
			e.stopKeepAlive(c.CallID)
		case callstate.RosterNeedsResync:
			e.resync(c.CallID)
		}
	}
}

// restoredKeepAliveSpread is the window the first keepAlives of restored
// calls are spread over.
const restoredKeepAliveSpread = time.Minute

func (e *Engine) startKeepAlive(callID string) { e.startKeepAliveAfter(callID, e.cfg.KeepAlive) }

// startKeepAliveAfter sends the call's first keepAlive after first, then
// one every KeepAlive.
func (e *Engine) startKeepAliveAfter(callID string, first time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.keepalive[callID] != nil {
		return
	}
	tick := func() {
		e.enqueue(job{kind: actionKeepAlive, callID: callID, run: func(ctx context.Context) error {
			_, err := e.calls.KeepAlive(ctx, callID)
			var ae *graph.APIError
			if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
				// Graph no longer has the call: it ended without telling us.
				e.store.MarkTerminated(callID, "keepAlive returned 404")
			}
			return wrap("keepAlive", err)
		}})
		e.mu.Lock()
		defer e.mu.Unlock()
		if t, ok := e.keepalive[callID]; ok && !e.closed {
			t.Reset(e.cfg.KeepAlive)
		}
	}
	e.keepalive[callID] = time.AfterFunc(first, tick)
}

func (e *Engine) stopKeepAlive(callID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.keepalive[callID]; ok {
		t.Stop()
		delete(e.keepalive, callID)
	}
}

// KeepAlives reports how many calls have a keepAlive timer.
func (e *Engine) KeepAlives() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.keepalive)
}

func (e *Engine) resync(callID string) {
	e.enqueue(job{kind: actionRosterResync, callID: callID, run: func(ctx context.Context) error {
		return e.calls.ResyncRoster(ctx, callID)
	}})
}

func wrap(action string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", action, err)
}

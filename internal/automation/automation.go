// Package automation is the bot's behaviour: it turns the changes the call
// store reports into outbound Graph actions (answer incoming calls, invite on
// establish, retry failed invites, keep established calls alive, resync a
// roster after a gap) and runs them on a bounded pool of workers, never inside
// a Graph callback.
//
// It owns the queue, the workers, the timers and the retry policy. It leaves
// decoding to notify, state to callstate, and every outbound action to the
// calls service, which fills botd's defaults, records operations and sends
// to Graph; it reaches them through the small interfaces below.
package automation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

// Calls is the part of the calls service automation acts through: it
// fills botd's defaults, records operations and sends to Graph.
type Calls interface {
	Answer(ctx context.Context, callID string, req *graph.AnswerRequest) (calls.Result, error)
	Reject(ctx context.Context, callID string, req *graph.RejectRequest) (calls.Result, error)
	Redirect(ctx context.Context, callID string, req *graph.RedirectRequest) (calls.Result, error)
	Invite(ctx context.Context, callID string, req *graph.InviteRequest) (*model.Operation, error)
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
	IncomingAction string // answer, reject, redirect, ignore
	RejectReason   string
	RedirectTarget string
	// InviteOnEstablish are invited when a call becomes established.
	InviteOnEstablish []model.InvitationParticipantInfo
	InviteRetries     int
	InviteBackoff     time.Duration
	KeepAlive         time.Duration
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
	switch {
	case c.Workers <= 0:
		return fmt.Errorf("automation config: Workers must be positive, got %d", c.Workers)
	case c.QueueSize <= 0:
		return fmt.Errorf("automation config: QueueSize must be positive, got %d", c.QueueSize)
	case c.ActionTimeout <= 0:
		return fmt.Errorf("automation config: ActionTimeout must be positive, got %s", c.ActionTimeout)
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
	retries   map[string]inviteAttempt // by clientContext of the op automation sent
	timers    map[*time.Timer]struct{} // pending retry timers
}

type inviteAttempt struct {
	callID       string
	participants []model.InvitationParticipantInfo
	attempt      int
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
	actionAnswer       = "answer"
	actionReject       = "reject"
	actionRedirect     = "redirect"
	actionInvite       = "invite"
	actionKeepAlive    = "keepalive"
	actionRosterResync = "roster_resync"
)

var actionKinds = []string{actionAnswer, actionReject, actionRedirect, actionInvite, actionKeepAlive, actionRosterResync}

// Action results and refusal reasons: the result and reason labels.
const (
	resultOK             = "ok"
	resultError          = "error"
	resultOutcomeUnknown = "outcome_unknown"
	resultNotFound       = "not_found"
	refusedQueueFull     = "queue_full"
	refusedShuttingDown  = "shutting_down"
)

// New builds an engine, or refuses a cfg whose Workers, QueueSize or
// ActionTimeout is not positive, naming it. Start its workers with Run.
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
		retries:   map[string]inviteAttempt{},
		timers:    map[*time.Timer]struct{}{},
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
	for t := range e.timers {
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
		case callstate.CallIncoming:
			e.onIncoming(c)
		case callstate.CallEstablished:
			e.startKeepAlive(c.CallID)
			if len(e.cfg.InviteOnEstablish) > 0 {
				e.invite(c.CallID, e.cfg.InviteOnEstablish, 0)
			}
		case callstate.CallTerminated:
			e.stopKeepAlive(c.CallID)
		case callstate.OperationFailed:
			e.onOperationFailed(c)
		case callstate.OperationCompleted:
			if c.Operation != nil {
				e.mu.Lock()
				delete(e.retries, c.Operation.ClientContext)
				e.mu.Unlock()
			}
		case callstate.RosterNeedsResync:
			e.resync(c.CallID)
		}
	}
}

func (e *Engine) onIncoming(c *callstate.Change) {
	callID := c.CallID
	switch e.cfg.IncomingAction {
	case "ignore":
		e.log.Info().Str("call_id", callID).Msg("incoming call left unanswered (incoming-action=ignore)")
	case "reject":
		e.enqueue(job{kind: actionReject, callID: callID, run: func(ctx context.Context) error {
			_, err := e.calls.Reject(ctx, callID, &graph.RejectRequest{Reason: e.cfg.RejectReason})
			return wrap("reject", err)
		}})
	case "redirect":
		e.enqueue(job{kind: actionRedirect, callID: callID, run: func(ctx context.Context) error {
			_, err := e.calls.Redirect(ctx, callID, &graph.RedirectRequest{
				Targets: []model.InvitationParticipantInfo{model.Invitee(e.cfg.RedirectTarget)},
			})
			return wrap("redirect", err)
		}})
	default:
		e.enqueue(job{kind: actionAnswer, callID: callID, run: func(ctx context.Context) error {
			// The calls service fills botd's answer defaults.
			_, err := e.calls.Answer(ctx, callID, &graph.AnswerRequest{})
			return wrap("answer", err)
		}})
	}
}

// invite sends an invite for callID through the calls service, which
// records it in the store first so that a notification racing the response
// is matched by clientContext. The attempt is kept by that clientContext,
// for onOperationFailed to retry.
func (e *Engine) invite(callID string, ps []model.InvitationParticipantInfo, attempt int) {
	clientContext := uuid.NewString()
	e.enqueue(job{kind: actionInvite, callID: callID, run: func(ctx context.Context) error {
		e.mu.Lock()
		e.retries[clientContext] = inviteAttempt{callID: callID, participants: ps, attempt: attempt}
		e.mu.Unlock()
		op, err := e.calls.Invite(ctx, callID, &graph.InviteRequest{Participants: ps, ClientContext: clientContext})
		switch {
		case err == nil:
			e.log.Info().Str("call_id", callID).Str("op_id", op.ID).
				Str("client_context", clientContext).Int("attempt", attempt).Msg("invite sent")
		case notRecorded(err):
			// Refused before it was recorded: no operation will fail.
			e.mu.Lock()
			delete(e.retries, clientContext)
			e.mu.Unlock()
		}
		// An unknown outcome is not resent: the operation stays running
		// and is completed by its notification (matched by clientContext)
		// or by the store's operation timeout.
		return wrap("invite participants", err)
	}})
}

// notRecorded reports whether the calls service refused an operation
// before recording it in the store.
func notRecorded(err error) bool {
	var ce *calls.Error
	var ve *graph.ValidationError
	return errors.As(err, &ce) || errors.As(err, &ve) ||
		errors.Is(err, callstate.ErrUnknownCall) || errors.Is(err, callstate.ErrTooManyOperations)
}

func (e *Engine) onOperationFailed(c *callstate.Change) {
	if c.Operation == nil {
		return
	}
	e.mu.Lock()
	a, ok := e.retries[c.Operation.ClientContext]
	delete(e.retries, c.Operation.ClientContext)
	closed := e.closed
	e.mu.Unlock()
	if !ok || closed {
		return
	}
	log := e.log.With().Str("call_id", a.callID).Str("op_id", c.Operation.ID).Str("client_context", c.Operation.ClientContext).Logger()
	if c.Operation.FailureReason == "timeout" {
		// The invite may have succeeded without botd hearing of it; a
		// resend could ring people twice.
		log.Warn().Msg("invite timed out with no result; not retried")
		return
	}
	if a.attempt >= e.cfg.InviteRetries {
		log.Warn().Int("attempts", a.attempt+1).Msg("invite failed; retries exhausted")
		return
	}
	wait := e.cfg.InviteBackoff << a.attempt
	log.Info().Dur("wait", wait).Int("attempt", a.attempt+1).Msg("invite failed; retrying")
	e.after(wait, func() { e.invite(a.callID, a.participants, a.attempt+1) })
}

// after runs f after d unless the engine closes first.
func (e *Engine) after(d time.Duration, f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		e.mu.Lock()
		delete(e.timers, t)
		e.mu.Unlock()
		f()
	})
	e.timers[t] = struct{}{}
}

func (e *Engine) startKeepAlive(callID string) {
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
	e.keepalive[callID] = time.AfterFunc(e.cfg.KeepAlive, tick)
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

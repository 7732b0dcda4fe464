package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
)

type evKind uint8

const (
	evStart evKind = iota + 1
	evChange
	evTimeout
	evCancel
	evChild
)

type event struct {
	kind   evKind
	change *callstate.Change
	gen    uint64
	child  *childEnd
}

type childEnd struct {
	name, id, status string
	outputs          map[string]any
}

// run is one run of a flow. Its state is plain data (RunView shows it):
// the step, the parameters and variables, the deadline of its wait, and
// the ids of its calls, operations and children. The fields below boxMu
// are the worker's: one worker at a time handles a run's events, in the
// order they were posted.
type run struct {
	e         *Engine
	id        string
	flow      *Flow
	parent    *run
	childName string
	log       zerolog.Logger

	boxMu     sync.Mutex
	mailbox   []event
	scheduled bool
	done      atomic.Bool
	snap      atomic.Pointer[RunView]

	timerMu sync.Mutex
	timer   *time.Timer

	status, step, errMsg string
	params, vars         map[string]ref.Val
	calls                map[string]string // name -> call id
	names                map[string]string // call id -> its current name ("" touched only)
	touched              map[string]bool
	ops                  map[string]string // clientContext -> call id, of the operations it sent
	children             map[string]string // name -> child run id
	outputs              map[string]any
	history              []HistoryEntry
	historyDropped       int
	deadline             time.Time
	gen                  uint64
	seq                  int
	last                 *EventInfo
	startedAt, endedAt   time.Time
}

// HistoryEntry is one step a run took, and the event that moved it.
type HistoryEntry struct {
	At    time.Time `json:"at"`
	From  string    `json:"from,omitempty"`
	To    string    `json:"to"`
	Event string    `json:"event"`
	Call  string    `json:"call,omitempty"`
	// Detail is the tone, the participant or the result, where the event
	// has one.
	Detail string `json:"detail,omitempty"`
}

// RunView is a run as the admin API shows it.
type RunView struct {
	ID             string            `json:"id"`
	Flow           string            `json:"flow"`
	Status         string            `json:"status"`
	Step           string            `json:"step,omitempty"`
	Error          string            `json:"error,omitempty"`
	Parameters     map[string]any    `json:"parameters"`
	Variables      map[string]any    `json:"variables"`
	Outputs        map[string]any    `json:"outputs,omitempty"`
	Calls          map[string]string `json:"calls"`
	Touched        []string          `json:"touchedCalls"`
	Operations     []string          `json:"operations"`
	Parent         string            `json:"parent,omitempty"`
	Children       map[string]string `json:"children,omitempty"`
	Deadline       time.Time         `json:"deadline,omitzero"`
	History        []HistoryEntry    `json:"history"`
	HistoryDropped int               `json:"historyDropped,omitempty"`
	StartedAt      time.Time         `json:"startedAt"`
	EndedAt        time.Time         `json:"endedAt,omitzero"`
}

func (r *run) view() RunView {
	if v := r.snap.Load(); v != nil {
		return *v
	}
	return RunView{ID: r.id, Flow: r.flow.Name, Status: StatusRunning}
}

// publish makes the worker's state the view the admin API reads.
func (r *run) publish() {
	v := &RunView{
		ID: r.id, Flow: r.flow.Name, Status: r.status, Step: r.step, Error: r.errMsg,
		Parameters: jsonVals(r.params), Variables: jsonVals(r.vars), Outputs: r.outputs,
		Calls: cloneMap(r.calls), Children: cloneMap(r.children), Deadline: r.deadline,
		History: append([]HistoryEntry(nil), r.history...), HistoryDropped: r.historyDropped,
		StartedAt: r.startedAt, EndedAt: r.endedAt, Touched: []string{}, Operations: []string{},
	}
	for id := range r.touched {
		v.Touched = append(v.Touched, id)
	}
	for cc := range r.ops {
		v.Operations = append(v.Operations, cc)
	}
	slices.Sort(v.Touched)
	slices.Sort(v.Operations)
	if r.parent != nil {
		v.Parent = r.parent.id
	}
	r.snap.Store(v)
	if r.e.cfg.OnRunChange != nil {
		r.e.cfg.OnRunChange(RunRecord{Version: RunRecordVersion, View: *v, Ops: cloneMap(r.ops), Seq: r.seq})
	}
}

func jsonVals(m map[string]ref.Val) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = ToJSON(v)
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// post queues ev for the run, and the run for a worker.
func (r *run) post(ev event) {
	if r.done.Load() {
		return
	}
	r.boxMu.Lock()
	r.mailbox = append(r.mailbox, ev)
	schedule := !r.scheduled
	r.scheduled = true
	r.boxMu.Unlock()
	if schedule {
		r.e.busy.Add(1)
		select {
		case r.e.ready <- r:
		default:
			r.e.busy.Add(-1)
			// Cannot happen: the queue holds one entry per running run.
			r.log.Error().Msg("flow run could not be scheduled")
		}
	}
}

func (r *run) armTimer(d time.Duration, gen uint64) {
	r.timerMu.Lock()
	defer r.timerMu.Unlock()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(d, func() { r.post(event{kind: evTimeout, gen: gen}) })
}

func (r *run) stopTimer() {
	r.timerMu.Lock()
	defer r.timerMu.Unlock()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// handle applies one event.
func (r *run) handle(ctx context.Context, ev event) {
	if r.status != StatusRunning {
		return
	}
	defer r.publish()
	switch ev.kind {
	case evStart:
		r.enter(ctx, r.flow.Start, &EventInfo{Kind: "start"})
	case evCancel:
		for _, a := range r.flow.onCancel {
			if err := r.exec(ctx, a, r.last); err != nil {
				r.log.Warn().Err(err).Str("action", a.kind).Msg("onCancel action failed")
			}
		}
		if r.status == StatusRunning {
			r.finish(StatusCanceled, "canceled through the admin API")
		}
	case evTimeout:
		if ev.gen != r.gen {
			return
		}
		if !r.fire(ctx, &EventInfo{Kind: EvTimeout}) {
			r.finish(StatusFailed, fmt.Sprintf("step %s: nothing it waits for happened by its timeout", r.step))
		}
	case evChild:
		c := ev.child
		r.fire(ctx, &EventInfo{Kind: EvFlowEnded, Run: c.name, Status: c.status, Outputs: c.outputs})
	case evChange:
		r.onChange(ctx, ev.change)
	}
}

// onChange turns a store change into the run's event, and fires it.
func (r *run) onChange(ctx context.Context, c *callstate.Change) {
	name, named := r.names[c.CallID]
	fe := &EventInfo{Call: name, CallID: c.CallID}
	switch c.Kind {
	case callstate.CallEstablished:
		fe.Kind = EvEstablished
	case callstate.CallTerminated:
		fe.Kind = EvTerminated
		if c.Call != nil && c.Call.ResultInfo != nil {
			ri := c.Call.ResultInfo
			fe.ResultCode, fe.ResultSubcode, fe.ResultMessage = int64(ri.Code), int64(ri.Subcode), ri.Message
		}
	case callstate.ParticipantJoined, callstate.ParticipantLeft:
		fe.Kind = EvParticipantJoined
		if c.Kind == callstate.ParticipantLeft {
			fe.Kind = EvParticipantLeft
		}
		if c.Participant != nil {
			fe.Participant = participantInfo(c.Participant)
		}
	case callstate.ToneReceived:
		fe.Kind = EvTone
		if c.Tone != nil {
			fe.Tone = c.Tone.Key
		}
	case callstate.OperationCompleted, callstate.OperationFailed:
		op := c.Operation
		if op == nil || r.ops[op.ClientContext] != c.CallID {
			return // not an operation this run sent
		}
		fe.Operation = OperationInfo{Type: op.Type, Status: string(op.Status), ClientContext: op.ClientContext,
			CompletionReason: op.CompletionReason, RecordingLocation: op.RecordingLocation, Reason: op.FailureReason}
		if op.ResultInfo != nil {
			fe.Operation.ResultCode, fe.Operation.ResultMessage = int64(op.ResultInfo.Code), op.ResultInfo.Message
		}
		if c.Kind == callstate.OperationFailed {
			fe.Kind = EvOperationFailed
			break
		}
		switch op.Type {
		case "playPrompt":
			fe.Kind = EvPromptCompleted
		case "recordResponse":
			fe.Kind = EvRecordingCompleted
		default:
			fe.Kind = EvOperationCompleted
		}
		if r.fire(ctx, fe) {
			return
		}
		fe.Kind = EvOperationCompleted
	default:
		return
	}
	if r.fire(ctx, fe) {
		return
	}
	switch {
	case fe.Kind == EvTerminated && named && name == "call":
		// The run's main call ended and the step does not handle it: the
		// run ends with it. Other calls' ends are the steps' business.
		r.last = fe
		r.record(r.step, "end", fe)
		r.finish(StatusCompleted, fmt.Sprintf("the call terminated in step %s, which does not handle it", r.step))
	case fe.Kind == EvOperationFailed:
		r.log.Warn().Str("call_id", c.CallID).Str("op_type", fe.Operation.Type).Str("step", r.step).
			Msg("operation failed; the step does not handle it and keeps waiting")
	}
}

// match finds the current step's transition for fe, or nil; a condition
// that cannot be evaluated fails the run (ok false).
func (r *run) match(s *step, fe *EventInfo) (t *transition, ok bool) {
	for _, t := range s.on {
		if t.event != fe.Kind || (t.call != "" && t.call != fe.Call) || (t.child != "" && t.child != fe.Run) {
			continue
		}
		if t.cond != nil {
			hit, err := t.cond.test(r.activation(fe))
			if err != nil {
				r.finish(StatusFailed, fmt.Sprintf("step %s: %v", s.name, err))
				return nil, false
			}
			if !hit {
				continue
			}
		}
		return t, true
	}
	return nil, true
}

// fire takes the current step's transition for fe, if it has one.
func (r *run) fire(ctx context.Context, fe *EventInfo) bool {
	s := r.flow.steps[r.step]
	if s == nil || s.immediate {
		return false
	}
	t, ok := r.match(s, fe)
	if !ok {
		return true
	}
	if t == nil {
		return false
	}
	if next, ok := r.follow(t, fe); ok {
		r.enter(ctx, next, fe)
	}
	return true
}

// follow applies t's variables and records it; it ends the run for an
// end transition. It returns the next step, and false if the run ended.
func (r *run) follow(t *transition, fe *EventInfo) (string, bool) {
	r.last = fe
	a := r.activation(fe)
	for _, nv := range t.set {
		if err := r.assign(nv, a); err != nil {
			r.finish(StatusFailed, fmt.Sprintf("step %s: %v", r.step, err))
			return "", false
		}
	}
	if t.end != "" {
		r.record(r.step, "end", fe)
		msg := ""
		if t.err != nil {
			if v, err := t.err.eval(a); err == nil {
				msg = textOf(v)
			} else {
				msg = err.Error()
			}
		}
		r.finish(t.end, msg)
		return "", false
	}
	r.record(r.step, t.next, fe)
	return t.next, true
}

// MaxVariableBytes bounds one variable's value, as JSON: with the
// declared variables and the bounded history, it bounds a run's memory.
const MaxVariableBytes = 64 << 10

func (r *run) assign(nv namedValue, a *activation) error {
	v, err := nv.v.eval(a)
	if err != nil {
		return fmt.Errorf("set %s: %w", nv.name, err)
	}
	for _, f := range r.flow.Variables {
		if f.Name == nv.name {
			cv, err := f.convert(v)
			if err != nil {
				return fmt.Errorf("set %s: %w", nv.name, err)
			}
			b, err := json.Marshal(ToJSON(cv))
			if err != nil {
				return fmt.Errorf("set %s: %w", nv.name, err)
			}
			if len(b) > MaxVariableBytes {
				return fmt.Errorf("set %s: the value is %d bytes of JSON, more than the %d a variable may hold", nv.name, len(b), MaxVariableBytes)
			}
			r.vars[nv.name] = cv
			return nil
		}
	}
	return fmt.Errorf("set %s: no such variable", nv.name)
}

func (r *run) record(from, to string, fe *EventInfo) {
	h := HistoryEntry{At: time.Now(), From: from, To: to, Event: fe.Kind, Call: fe.Call}
	switch {
	case fe.Tone != "":
		h.Detail = "tone " + fe.Tone
	case fe.Participant.ID != "":
		h.Detail = "participant " + fe.Participant.ID
	case fe.ResultCode != 0:
		h.Detail = fmt.Sprintf("result %d/%d", fe.ResultCode, fe.ResultSubcode)
	case fe.Operation.Type != "":
		h.Detail = fe.Operation.Type + " " + fe.Operation.Status
	case fe.Run != "":
		h.Detail = "run " + fe.Run + " " + fe.Status
	}
	if len(r.history) >= r.e.cfg.MaxHistory {
		r.history = append(r.history[:0], r.history[1:]...)
		r.historyDropped++
	}
	r.history = append(r.history, h)
	if from != "" && to != "end" {
		r.e.metrics.steps.WithLabelValues(r.flow.Name, to).Inc()
	}
}

// enter enters a step: runs its actions, then leaves at once (done) or
// waits, with a deadline.
func (r *run) enter(ctx context.Context, name string, fe *EventInfo) {
	r.last = fe
	if fe.Kind == "start" {
		r.record("", name, fe)
		r.e.metrics.steps.WithLabelValues(r.flow.Name, name).Inc()
	}
	for n := 0; ; n++ {
		if n >= r.e.cfg.MaxStepsWithoutWait {
			r.finish(StatusFailed, fmt.Sprintf("more than %d steps without waiting", r.e.cfg.MaxStepsWithoutWait))
			return
		}
		s := r.flow.steps[name]
		r.step, r.deadline = name, time.Time{}
		r.gen++
		r.stopTimer()
		r.log.Debug().Str("step", name).Msg("flow run entered step")
		next, left := "", false
		for _, a := range s.actions {
			err := r.exec(ctx, a, fe)
			if r.status != StatusRunning {
				return
			}
			if err == nil {
				continue
			}
			ofe := &EventInfo{Kind: EvOperationFailed, Call: fe.Call, CallID: fe.CallID,
				Operation: OperationInfo{Type: a.kind, Status: string(model.OpFailed), Reason: err.Error(), ResultCode: resultCode(err)}}
			t, ok := r.match(s, ofe)
			if !ok {
				return
			}
			if t == nil {
				r.finish(StatusFailed, fmt.Sprintf("step %s: %s: %v", name, a.kind, err))
				return
			}
			if next, left = r.follow(t, ofe); !left {
				return
			}
			fe = ofe
			break
		}
		if next == "" && s.immediate {
			done := &EventInfo{Kind: EvDone, Call: fe.Call, CallID: fe.CallID}
			t, ok := r.match(s, done)
			if !ok {
				return
			}
			if t == nil {
				r.finish(StatusFailed, fmt.Sprintf("step %s: no done transition applies", name))
				return
			}
			if next, left = r.follow(t, done); !left {
				return
			}
		}
		if next != "" {
			name = next
			continue
		}
		d := r.flow.DefaultTimeout
		if s.timeout != nil {
			v, err := s.timeout.eval(r.activation(fe))
			if err != nil {
				r.finish(StatusFailed, fmt.Sprintf("step %s timeout: %v", name, err))
				return
			}
			dv, ok := v.(types.Duration)
			if !ok || dv.Duration <= 0 {
				r.finish(StatusFailed, fmt.Sprintf("step %s timeout: %v is not a positive duration", name, ToJSON(v)))
				return
			}
			d = dv.Duration
		}
		r.deadline = time.Now().Add(d)
		r.armTimer(d, r.gen)
		return
	}
}

// finish ends the run.
func (r *run) finish(status, msg string) {
	if r.status != StatusRunning {
		return
	}
	r.status, r.errMsg, r.endedAt, r.deadline = status, msg, time.Now(), time.Time{}
	r.stopTimer()
	if len(r.flow.outputs) > 0 {
		r.outputs = map[string]any{}
		a := r.activation(r.last)
		for _, nv := range r.flow.outputs {
			v, err := nv.v.eval(a)
			if err != nil {
				r.log.Warn().Err(err).Str("output", nv.name).Msg("flow output could not be evaluated")
				continue
			}
			r.outputs[nv.name] = ToJSON(v)
		}
	}
	r.done.Store(true)
	r.e.metrics.ended.WithLabelValues(r.flow.Name, status).Inc()
	ev := r.log.Info()
	if status == StatusFailed {
		ev = r.log.Warn()
	}
	ev.Str("status", status).Str("step", r.step).Str("reason", msg).Msg("flow run ended")
	r.publish()
	r.e.ended(r)
}

// activation is what expressions read for event fe.
func (r *run) activation(fe *EventInfo) *activation {
	return &activation{run: r, event: fe, call: func() *CallInfo {
		id, name := r.calls["call"], "call"
		if fe != nil && fe.CallID != "" {
			id, name = fe.CallID, fe.Call
		}
		if id == "" {
			return &CallInfo{}
		}
		v, ok := r.e.store.Call(id)
		if !ok {
			return &CallInfo{ID: id, Name: name}
		}
		return callInfoView(&v, name)
	}}
}

func callInfoView(v *callstate.CallView, name string) *CallInfo {
	c := &CallInfo{ID: v.ID, Name: name, State: string(v.State), Direction: v.Direction, Tenant: v.TenantID}
	if v.Source != nil {
		c.Source, c.SourceName = identityID(v.Source.Identity)
	}
	if len(v.Targets) > 0 {
		c.Target, _ = identityID(v.Targets[0].Identity)
	}
	if ri := v.ResultInfo; ri != nil {
		c.ResultCode, c.ResultSubcode = int64(ri.Code), int64(ri.Subcode)
	}
	c.Roster = make([]ParticipantInfo, len(v.Participants))
	for i := range v.Participants {
		c.Roster[i] = participantInfo(&v.Participants[i])
	}
	return c
}

// callInfoFrom is a call resource as expressions see it (for triggers).
func callInfoFrom(id, name string, call *model.Call) *CallInfo {
	c := &CallInfo{ID: id, Name: name, Roster: []ParticipantInfo{}}
	if call == nil {
		return c
	}
	c.State, c.Direction, c.Tenant = string(call.State), call.Direction, call.TenantID
	if call.Source != nil {
		c.Source, c.SourceName = identityID(call.Source.Identity)
	}
	if len(call.Targets) > 0 {
		c.Target, _ = identityID(call.Targets[0].Identity)
	}
	return c
}

func identityID(s *model.IdentitySet) (id, name string) {
	if _, x := s.Primary(); x != nil {
		return x.ID, x.DisplayName
	}
	return "", ""
}

func participantInfo(p *model.Participant) ParticipantInfo {
	out := ParticipantInfo{ID: p.ID, IsMuted: p.IsMuted, InLobby: p.IsInLobby}
	kind, x := p.Info.Identity.Primary()
	if x != nil {
		out.Identity, out.DisplayName = x.ID, x.DisplayName
	}
	switch kind {
	case "application", "applicationInstance":
		out.Kind, out.IsBot = "application", true
	case "user", "phone", "guest":
		out.Kind = kind
	case "":
	default:
		out.Kind = "other"
	}
	return out
}

package flows

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"cel.dev/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"
)

// Options are the loader's defaults.
type Options struct {
	// DefaultTimeout bounds a wait that names no timeout of its own.
	DefaultTimeout time.Duration
}

// Flow is a loaded, checked flow.
type Flow struct {
	Name           string        `json:"name"`
	Description    string        `json:"description,omitempty"`
	File           string        `json:"file"`
	Parameters     []*Field      `json:"parameters"`
	Variables      []*Field      `json:"variables"`
	Start          string        `json:"start"`
	DefaultTimeout time.Duration `json:"-"`
	Trigger        *Trigger      `json:"trigger,omitempty"`

	namePos, startPos Pos
	steps             map[string]*step
	order             []string
	outputs           []namedValue
	onCancel          []*action
}

// Steps lists the flow's step names, in file order.
func (f *Flow) Steps() []string { return slices.Clone(f.order) }

// Field is a declared parameter or variable.
type Field struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required,omitempty"`
	Default     any    `json:"default,omitempty"`
	Description string `json:"description,omitempty"`

	def        ref.Val // Default, as expressions see it
	hasDefault bool
	pos        Pos
}

// Trigger says which incoming calls start the flow: every condition given
// must hold. Caller, Called and Tenant are glob patterns (path.Match) over
// the caller's id (a phone number or user id), the called target's id and
// the tenant id.
type Trigger struct {
	Order int `json:"order"`
	// On lists what starts the flow for a call no run holds: incoming (a
	// call to the bot; the default) and established (a call botd placed
	// through the admin API reached established).
	On     []string `json:"on"`
	Caller string   `json:"caller,omitempty"`
	Called string   `json:"called,omitempty"`
	Tenant string   `json:"tenant,omitempty"`
	If     string   `json:"if,omitempty"`

	cond *expr
}

// What a trigger starts on.
const (
	TriggerIncoming    = "incoming"
	TriggerEstablished = "established"
)

type step struct {
	name    string
	pos     Pos
	actions []*action
	// timeout, if set, bounds the wait; else the flow's DefaultTimeout.
	timeout *valueNode
	on      []*transition
	// immediate: the step leaves by a done transition once its actions
	// ran, and never waits.
	immediate bool
}

// Events a transition can wait for.
const (
	EvEstablished        = "established"
	EvTerminated         = "terminated"
	EvParticipantJoined  = "participantJoined"
	EvParticipantLeft    = "participantLeft"
	EvTone               = "tone"
	EvPromptCompleted    = "promptCompleted"
	EvRecordingCompleted = "recordingCompleted"
	EvOperationCompleted = "operationCompleted"
	EvOperationFailed    = "operationFailed"
	EvFlowEnded          = "flowEnded"
	EvTimeout            = "timeout"
	EvDone               = "done"
)

// Events lists every event, in the order docs show them.
var Events = []string{EvEstablished, EvTerminated, EvParticipantJoined, EvParticipantLeft, EvTone,
	EvPromptCompleted, EvRecordingCompleted, EvOperationCompleted, EvOperationFailed, EvFlowEnded, EvTimeout, EvDone}

// callEvents are the events about one of the run's calls.
var callEvents = []string{EvEstablished, EvTerminated, EvParticipantJoined, EvParticipantLeft, EvTone,
	EvPromptCompleted, EvRecordingCompleted, EvOperationCompleted, EvOperationFailed}

type transition struct {
	pos   Pos
	event string
	call  string // a call name; "" any
	child string // a child run name, for flowEnded; "" any
	cond  *expr
	set   []namedValue
	next  string // a step, or "" when end is set
	end   string // completed or failed
	err   *valueNode
}

// Run statuses.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Statuses lists them.
var Statuses = []string{StatusRunning, StatusCompleted, StatusFailed, StatusCanceled}

type namedValue struct {
	name string
	v    *valueNode
}

// scope is what a flow's expressions may name.
type scope struct {
	params   map[string]*Field
	vars     map[string]*Field
	calls    map[string]bool
	children map[string]bool
	steps    map[string]bool
}

func newScope() *scope {
	return &scope{params: map[string]*Field{}, vars: map[string]*Field{}, calls: map[string]bool{},
		children: map[string]bool{}, steps: map[string]bool{}}
}

type compiler struct {
	l    *loader
	env  *env
	sc   *scope
	flow *Flow
}

func (c *compiler) trigger(n *yaml.Node) *Trigger {
	fs, ok := c.l.fields(n, "trigger", "order", "on", "caller", "called", "tenant", "if")
	if !ok {
		return nil
	}
	t := &Trigger{On: []string{TriggerIncoming}}
	if v := fs["on"]; v != nil {
		t.On = nil
		if v.Kind != yaml.SequenceNode {
			c.l.errf(c.l.pos(v), "trigger on must be a list (of %s, %s), got %s", TriggerIncoming, TriggerEstablished, kindName(v))
		}
		for _, x := range v.Content {
			if s, ok := c.l.str(x, "trigger on"); ok {
				if s != TriggerIncoming && s != TriggerEstablished {
					c.l.errf(c.l.pos(x), "trigger on: unknown %q (known: %s, %s)", s, TriggerIncoming, TriggerEstablished)
				}
				t.On = append(t.On, s)
			}
		}
	}
	if v := fs["order"]; v != nil {
		if v.Tag != "!!int" {
			c.l.errf(c.l.pos(v), "trigger order must be an integer, got %s", kindName(v))
		} else {
			fmt.Sscan(v.Value, &t.Order)
		}
	}
	for key, dst := range map[string]*string{"caller": &t.Caller, "called": &t.Called, "tenant": &t.Tenant} {
		if v := fs[key]; v != nil {
			if s, ok := c.l.str(v, "trigger "+key); ok {
				if err := checkGlob(s); err != nil {
					c.l.errf(c.l.pos(v), "trigger %s: %v", key, err)
				}
				*dst = s
			}
		}
	}
	if v := fs["if"]; v != nil {
		t.If, _ = c.l.str(v, "trigger if")
		t.cond = c.cond(v, "trigger if")
	}
	return t
}

var stepFields = []string{"description", "actions", "timeout", "on"}
var transitionFields = []string{"event", "call", "run", "if", "set", "goto", "end", "error"}

func (c *compiler) step(name string, k, n *yaml.Node) *step {
	s := &step{name: name, pos: c.l.pos(k)}
	fs, ok := c.l.fields(n, "step "+name, stepFields...)
	if !ok {
		return s
	}
	if v := fs["actions"]; v != nil {
		s.actions = c.actions(v, "step "+name)
	}
	if v := fs["timeout"]; v != nil {
		s.timeout = c.value(v, "step "+name+" timeout", durationType)
	}
	on := fs["on"]
	if on == nil {
		c.l.errf(s.pos, "step %s has no way out: give it on: transitions (or end the flow with end:)", name)
		return s
	}
	if on.Kind != yaml.SequenceNode {
		c.l.errf(c.l.pos(on), "step %s: on must be a list of transitions, got %s", name, kindName(on))
		return s
	}
	var done, waits, unconditionalDone int
	for _, tn := range on.Content {
		t := c.transition(name, tn)
		if t == nil {
			continue
		}
		s.on = append(s.on, t)
		switch t.event {
		case EvDone:
			done++
			if t.cond == nil {
				unconditionalDone++
			}
		case EvOperationFailed:
		default:
			waits++
		}
	}
	switch {
	case len(s.on) == 0 && len(on.Content) == 0:
		c.l.errf(c.l.pos(on), "step %s has no way out: on lists no transition", name)
	case done > 0 && waits > 0:
		c.l.errf(c.l.pos(on), "step %s mixes done with waiting events: a step either leaves once its actions ran (done) or waits", name)
	case done > 0 && unconditionalDone == 0:
		c.l.errf(c.l.pos(on), "step %s has no way out when no done condition holds: add a done transition without if", name)
	case done > 0:
		s.immediate = true
		if s.timeout != nil {
			c.l.errf(s.timeout.pos, "step %s leaves by done and never waits: timeout has no use", name)
		}
	case waits == 0 && len(s.on) > 0:
		c.l.errf(c.l.pos(on), "step %s waits for nothing: add a done transition or an event to wait for", name)
	}
	return s
}

func (c *compiler) transition(stepName string, n *yaml.Node) *transition {
	where := "step " + stepName + " transition"
	fs, ok := c.l.fields(n, where, transitionFields...)
	if !ok {
		return nil
	}
	t := &transition{pos: c.l.pos(n)}
	ev := fs["event"]
	if ev == nil {
		c.l.errf(t.pos, "%s: event is required (one of %s)", where, strings.Join(Events, ", "))
		return nil
	}
	if t.event, ok = c.l.str(ev, where+" event"); !ok {
		return nil
	}
	if !slices.Contains(Events, t.event) {
		c.l.errf(c.l.pos(ev), "%s: unknown event %q%s (known: %s)", where, t.event, suggest(t.event, Events), strings.Join(Events, ", "))
		return nil
	}
	if v := fs["call"]; v != nil {
		if !slices.Contains(callEvents, t.event) {
			c.l.errf(c.l.pos(v), "%s: call: only applies to call events (%s)", where, strings.Join(callEvents, ", "))
		} else if s, ok := c.l.str(v, where+" call"); ok {
			if !c.sc.calls[s] {
				c.l.errf(c.l.pos(v), "%s: unknown call %q%s (the flow's calls: %s)", where, s, suggest(s, keys(c.sc.calls)), strings.Join(keys(c.sc.calls), ", "))
			}
			t.call = s
		}
	}
	if v := fs["run"]; v != nil {
		if t.event != EvFlowEnded {
			c.l.errf(c.l.pos(v), "%s: run: only applies to flowEnded", where)
		} else if s, ok := c.l.str(v, where+" run"); ok {
			if !c.sc.children[s] {
				c.l.errf(c.l.pos(v), "%s: unknown child run %q (name one with startFlow as:)", where, s)
			}
			t.child = s
		}
	}
	if v := fs["if"]; v != nil {
		t.cond = c.cond(v, where+" if")
	}
	if v := fs["set"]; v != nil {
		t.set = c.sets(v, where+" set")
	}
	g, e := fs["goto"], fs["end"]
	switch {
	case g == nil && e == nil:
		c.l.errf(t.pos, "%s: goto or end is required", where)
	case g != nil && e != nil:
		c.l.errf(c.l.pos(e), "%s: goto and end exclude each other", where)
	case g != nil:
		if s, ok := c.l.str(g, where+" goto"); ok {
			if !c.sc.steps[s] {
				c.l.errf(c.l.pos(g), "%s: unknown step %q%s", where, s, suggest(s, keys(c.sc.steps)))
			}
			t.next = s
		}
	default:
		if s, ok := c.l.str(e, where+" end"); ok {
			if s != StatusCompleted && s != StatusFailed {
				c.l.errf(c.l.pos(e), "%s: end must be completed or failed, got %q", where, s)
			}
			t.end = s
		}
	}
	if v := fs["error"]; v != nil {
		if t.end != StatusFailed {
			c.l.errf(c.l.pos(v), "%s: error: only applies with end: failed", where)
		}
		t.err = c.value(v, where+" error", stringType)
	}
	return t
}

// sets compiles a mapping of variable names to values.
func (c *compiler) sets(n *yaml.Node, where string) []namedValue {
	var out []namedValue
	for _, kv := range c.l.pairs(n, where) {
		name := kv[0].Value
		f, ok := c.sc.vars[name]
		if !ok {
			c.l.errf(c.l.pos(kv[0]), "%s: unknown variable %q%s (declare it under variables)", where, name, suggest(name, keysF(c.sc.vars)))
			continue
		}
		out = append(out, namedValue{name: name, v: c.value(kv[1], where+" "+name, fieldType(f.Type))})
	}
	return out
}

// link checks what needs every flow loaded: startFlow names, the start
// step, and loops that never wait.
func (l *loader) link(f *Flow, all map[string]*Flow) {
	l.file_ = f.File
	if f.Start != "" && f.steps[f.Start] == nil {
		l.errf(f.startPos, "start: unknown step %q%s", f.Start, suggest(f.Start, f.order))
	}
	for _, name := range f.order {
		for _, a := range f.steps[name].actions {
			l.linkAction(a, all)
		}
	}
	for _, a := range f.onCancel {
		l.linkAction(a, all)
	}
	// A loop with no wait: a cycle through immediate steps only.
	state := map[string]int{} // 0 unseen, 1 on the path, 2 done
	var visit func(name string, path []string)
	visit = func(name string, path []string) {
		s := f.steps[name]
		if s == nil || !s.immediate {
			return
		}
		switch state[name] {
		case 1:
			i := slices.Index(path, name)
			cycle := append(slices.Clone(path[i:]), name)
			l.errf(s.pos, "steps %s loop without waiting: one of them must wait for an event", strings.Join(cycle, " -> "))
			return
		case 2:
			return
		}
		state[name] = 1
		for _, t := range s.on {
			if t.next != "" {
				visit(t.next, append(path, name))
			}
		}
		state[name] = 2
	}
	for _, name := range f.order {
		visit(name, nil)
	}
}

func (l *loader) linkAction(a *action, all map[string]*Flow) {
	if a.kind != actStartFlow || a.flow == "" {
		return
	}
	if all[a.flow] == nil {
		l.errf(a.flowPos, "startFlow: unknown flow %q%s", a.flow, suggest(a.flow, keysFlow(all)))
		return
	}
	child := all[a.flow]
	for _, p := range child.Parameters {
		if p.Required && !slices.ContainsFunc(a.params, func(nv namedValue) bool { return nv.name == p.Name }) {
			l.errf(a.pos, "startFlow %s: parameter %q is required", a.flow, p.Name)
		}
	}
	for _, nv := range a.params {
		if !slices.ContainsFunc(child.Parameters, func(p *Field) bool { return p.Name == nv.name }) {
			l.errf(nv.v.pos, "startFlow %s: unknown parameter %q", a.flow, nv.name)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keysF(m map[string]*Field) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keysFlow(m map[string]*Flow) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Set is a loaded set of flows, read-only once built.
type Set struct {
	byName   map[string]*Flow
	names    []string
	triggers []*Flow // flows with a trigger, in declared order
}

func newSet(flows []*Flow) *Set {
	s := &Set{byName: map[string]*Flow{}}
	for _, f := range flows {
		s.byName[f.Name] = f
		s.names = append(s.names, f.Name)
		if f.Trigger != nil {
			s.triggers = append(s.triggers, f)
		}
	}
	sort.Strings(s.names)
	sort.SliceStable(s.triggers, func(i, j int) bool {
		a, b := s.triggers[i], s.triggers[j]
		if a.Trigger.Order != b.Trigger.Order {
			return a.Trigger.Order < b.Trigger.Order
		}
		return a.Name < b.Name
	})
	return s
}

// Flow returns the named flow.
func (s *Set) Flow(name string) (*Flow, bool) {
	if s == nil {
		return nil, false
	}
	f, ok := s.byName[name]
	return f, ok
}

// Flows lists the flows by name.
func (s *Set) Flows() []*Flow {
	if s == nil {
		return nil
	}
	out := make([]*Flow, len(s.names))
	for i, n := range s.names {
		out[i] = s.byName[n]
	}
	return out
}

// with returns a set holding s's flows and f, which must have a name s
// does not.
func (s *Set) with(f *Flow) *Set {
	all := s.Flows()
	return newSet(append(all, f))
}

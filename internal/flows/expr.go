package flows

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"go.yaml.in/yaml/v3"

	"github.com/botd/botd/internal/problem"
)

// What expressions read. The field names are CEL's (the cel tags).

// CallInfo is a call, as expressions see it (call, and event.call's).
type CallInfo struct {
	ID        string `cel:"id"`
	Name      string `cel:"name"` // the run's name for it ("call" for the main call)
	State     string `cel:"state"`
	Direction string `cel:"direction"`
	Tenant    string `cel:"tenant"`
	// Source is the caller's id: a phone number, or a user's or an
	// application's id; SourceName their display name.
	Source     string `cel:"source"`
	SourceName string `cel:"sourceName"`
	// Target is the first target's id.
	Target        string            `cel:"target"`
	Roster        []ParticipantInfo `cel:"roster"`
	ResultCode    int64             `cel:"resultCode"`
	ResultSubcode int64             `cel:"resultSubcode"`
}

// ParticipantInfo is a roster entry.
type ParticipantInfo struct {
	ID string `cel:"id"`
	// Identity is the participant's id: a phone number, or a user's or an
	// application's id; Kind says which (phone, user, application, guest,
	// other).
	Identity    string `cel:"identity"`
	Kind        string `cel:"kind"`
	DisplayName string `cel:"displayName"`
	IsBot       bool   `cel:"isBot"`
	IsMuted     bool   `cel:"isMuted"`
	InLobby     bool   `cel:"inLobby"`
}

// OperationInfo is the operation of an operation event.
type OperationInfo struct {
	Type              string `cel:"type"`
	Status            string `cel:"status"`
	ClientContext     string `cel:"clientContext"`
	CompletionReason  string `cel:"completionReason"`
	RecordingLocation string `cel:"recordingLocation"`
	ResultCode        int64  `cel:"resultCode"`
	ResultMessage     string `cel:"resultMessage"`
	Reason            string `cel:"reason"`
}

// EventInfo is the event that moved the run (event).
type EventInfo struct {
	Kind string `cel:"kind"`
	// Call is the run's name for the event's call; CallID its id.
	Call        string          `cel:"call"`
	CallID      string          `cel:"callId"`
	Tone        string          `cel:"tone"`
	Participant ParticipantInfo `cel:"participant"`
	// ResultCode, ResultSubcode and ResultMessage are a terminated call's
	// resultInfo.
	ResultCode    int64         `cel:"resultCode"`
	ResultSubcode int64         `cel:"resultSubcode"`
	ResultMessage string        `cel:"resultMessage"`
	Operation     OperationInfo `cel:"operation"`
	// Run, Status and Outputs are a child run's, for flowEnded.
	Run     string         `cel:"run"`
	Status  string         `cel:"status"`
	Outputs map[string]any `cel:"outputs"`
}

// RunInfo is the run itself (run).
type RunInfo struct {
	ID   string `cel:"id"`
	Flow string `cel:"flow"`
}

var (
	anyType      = cel.DynType
	stringType   = cel.StringType
	boolType     = cel.BoolType
	durationType = cel.DurationType
)

func fieldType(t string) *cel.Type {
	switch t {
	case TypeString:
		return cel.StringType
	case TypeInt:
		return cel.IntType
	case TypeBool:
		return cel.BoolType
	case TypeDuration:
		return cel.DurationType
	case TypeList:
		return cel.ListType(cel.DynType)
	case TypeStrings:
		return cel.ListType(cel.StringType)
	case TypeMap:
		return cel.MapType(cel.StringType, cel.DynType)
	}
	return cel.DynType
}

// env is one flow's expression environment.
type env struct{ cel *cel.Env }

// baseEnv holds what every flow's expressions read; a flow's env extends
// it with its parameters and variables.
var baseEnv = mustBase()

func mustBase() *cel.Env {
	e, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[CallInfo](), reflect.TypeFor[ParticipantInfo](), reflect.TypeFor[EventInfo](),
			reflect.TypeFor[OperationInfo](), reflect.TypeFor[RunInfo](), ext.ParseStructTags(true)),
		cel.Variable("call", cel.ObjectType("flows.CallInfo")),
		cel.Variable("event", cel.ObjectType("flows.EventInfo")),
		cel.Variable("run", cel.ObjectType("flows.RunInfo")),
		cel.Variable("calls", cel.MapType(cel.StringType, cel.StringType)),
		ext.Strings(),
	)
	if err != nil {
		panic(err)
	}
	return e
}

func newEnv(sc *scope) (*env, error) {
	var opts []cel.EnvOption
	for name, f := range sc.params {
		opts = append(opts, cel.Variable("params."+name, fieldType(f.Type)))
	}
	for name, f := range sc.vars {
		opts = append(opts, cel.Variable("vars."+name, fieldType(f.Type)))
	}
	e, err := baseEnv.Extend(opts...)
	if err != nil {
		return nil, err
	}
	return &env{cel: e}, nil
}

// costLimit bounds one evaluation, so that no expression runs long.
const costLimit = 1_000_000

// expr is a compiled expression.
type expr struct {
	src string
	pos Pos
	prg cel.Program
	out *cel.Type
}

// compile compiles src, at pos (col is where src starts), and checks its
// type is assignable to want.
func (c *compiler) compile(src string, pos Pos, what string, want *cel.Type) *expr {
	ast, iss := c.env.cel.Compile(src)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			p := pos
			if loc := e.Location; loc != nil && loc.Line() > 0 {
				if loc.Line() == 1 {
					p.Col += loc.Column()
				} else {
					p.Line += loc.Line() - 1
					p.Col = loc.Column() + 1
				}
			}
			c.l.errf(p, "%s: %s", what, e.Message)
		}
		return nil
	}
	out := ast.OutputType()
	if want != nil && want != anyType && !want.IsAssignableType(out) && out != cel.DynType {
		c.l.errf(pos, "%s: %s is %s, want %s", what, quoteExpr(src), typeName(out), typeName(want))
		return nil
	}
	prg, err := c.env.cel.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		c.l.errf(pos, "%s: %v", what, err)
		return nil
	}
	return &expr{src: src, pos: pos, prg: prg, out: out}
}

func quoteExpr(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return "`" + s + "`"
}

func typeName(t *cel.Type) string {
	switch t.String() {
	case "list(dyn)":
		return "list"
	case "map(string, dyn)":
		return "map"
	case "list(string)":
		return "list of strings"
	}
	return t.String()
}

// exprPos is where a scalar's text starts: one column on for a quoted one.
func (l *loader) exprPos(n *yaml.Node) Pos {
	p := l.pos(n)
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		p.Col++
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		p.Line++
		p.Col = 1
	}
	return p
}

// cond compiles a bare condition (if:): a bool expression.
func (c *compiler) cond(n *yaml.Node, what string) *expr {
	s, ok := c.l.str(n, what)
	if !ok {
		return nil
	}
	if strings.Contains(s, "${") {
		c.l.errf(c.l.pos(n), "%s: a condition is an expression itself; write it without ${ }", what)
		return nil
	}
	return c.compile(s, c.l.exprPos(n), what, boolType)
}

// valueNode is a value: a literal, an expression ("${...}" alone), a
// string with expressions in it, or a list or mapping of values.
type valueNode struct {
	pos   Pos
	lit   ref.Val
	ex    *expr
	parts []part
	items []*valueNode
	keys  []string
	vals  []*valueNode
	kind  valueKind
}

type valueKind uint8

const (
	vLit valueKind = iota
	vExpr
	vInterp
	vList
	vMap
)

type part struct {
	lit string
	ex  *expr
}

// value compiles a YAML value; want is the type it must have (anyType:
// any).
func (c *compiler) value(n *yaml.Node, what string, want *cel.Type) *valueNode {
	v := &valueNode{pos: c.l.pos(n)}
	switch n.Kind {
	case yaml.SequenceNode:
		if want != anyType && want.Kind() != types.ListKind && want != cel.DynType {
			c.l.errf(v.pos, "%s: a list, want %s", what, typeName(want))
		}
		v.kind = vList
		elem := anyType
		if want.Kind() == types.ListKind && len(want.Parameters()) == 1 {
			elem = want.Parameters()[0]
		}
		for i, it := range n.Content {
			v.items = append(v.items, c.value(it, fmt.Sprintf("%s[%d]", what, i), elem))
		}
		return v
	case yaml.MappingNode:
		if want != anyType && want.Kind() != types.MapKind && want != cel.DynType {
			c.l.errf(v.pos, "%s: a mapping, want %s", what, typeName(want))
		}
		v.kind = vMap
		for _, kv := range c.l.pairs(n, what) {
			v.keys = append(v.keys, kv[0].Value)
			v.vals = append(v.vals, c.value(kv[1], what+"."+kv[0].Value, anyType))
		}
		return v
	case yaml.ScalarNode:
	default:
		c.l.errf(v.pos, "%s: aliases are not supported", what)
		return v
	}
	if n.Tag == "!!str" && strings.Contains(n.Value, "${") {
		return c.template(n, what, want, v)
	}
	var lit ref.Val
	switch n.Tag {
	case "!!int":
		var i int64
		if _, err := fmt.Sscan(n.Value, &i); err != nil {
			c.l.errf(v.pos, "%s: %q is not an integer", what, n.Value)
			return v
		}
		lit = types.Int(i)
	case "!!bool":
		lit = types.Bool(n.Value == "true")
	case "!!float":
		var f float64
		fmt.Sscan(n.Value, &f)
		lit = types.Double(f)
	case "!!null":
		lit = types.NullValue
	default:
		s := strings.ReplaceAll(n.Value, "$${", "${")
		lit = types.String(s)
		if want == durationType {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				c.l.errf(v.pos, "%s: %q is not a positive duration (for example 30s, 2m)", what, s)
				return v
			}
			lit = types.Duration{Duration: d}
		}
	}
	if want != anyType && want != cel.DynType && !want.IsAssignableType(typeOfVal(lit)) {
		c.l.errf(v.pos, "%s: %s is %s, want %s", what, kindName(n), typeName(typeOfVal(lit)), typeName(want))
		return v
	}
	v.lit = lit
	return v
}

func typeOfVal(v ref.Val) *cel.Type {
	switch v.Type() {
	case types.IntType:
		return cel.IntType
	case types.BoolType:
		return cel.BoolType
	case types.DoubleType:
		return cel.DoubleType
	case types.StringType:
		return cel.StringType
	case types.DurationType:
		return cel.DurationType
	case types.NullType:
		return cel.NullType
	}
	return cel.DynType
}

// template compiles a string holding ${...}: alone, its expression's value;
// within text, the text with each expression's value in it.
func (c *compiler) template(n *yaml.Node, what string, want *cel.Type, v *valueNode) *valueNode {
	s := n.Value
	base := c.l.exprPos(n)
	at := func(off int) Pos {
		p := base
		if !strings.Contains(s[:off], "\n") {
			p.Col += off
		}
		return p
	}
	trimmed := strings.TrimSpace(s)
	if strings.HasPrefix(trimmed, "${") && strings.HasSuffix(trimmed, "}") && strings.Count(trimmed, "${") == 1 {
		off := strings.Index(s, "${") + 2
		v.kind = vExpr
		v.ex = c.compile(trimmed[2:len(trimmed)-1], at(off), what, want)
		return v
	}
	if want != anyType && want != stringType && want != cel.DynType {
		c.l.errf(v.pos, "%s: text with ${ } in it is a string, want %s", what, typeName(want))
		return v
	}
	v.kind = vInterp
	rest, off := s, 0
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			v.parts = append(v.parts, part{lit: rest})
			break
		}
		if i > 0 && rest[i-1] == '$' {
			v.parts = append(v.parts, part{lit: rest[:i-1] + "${"})
			rest, off = rest[i+2:], off+i+2
			continue
		}
		j := strings.Index(rest[i:], "}")
		if j < 0 {
			c.l.errf(at(off+i), "%s: ${ without its closing }", what)
			return v
		}
		v.parts = append(v.parts, part{lit: rest[:i]})
		v.parts = append(v.parts, part{ex: c.compile(rest[i+2:i+j], at(off+i+2), what, anyType)})
		rest, off = rest[i+j+1:], off+i+j+1
	}
	return v
}

// activation is what one evaluation reads.
type activation struct {
	run   *run
	event *EventInfo
	call  func() *CallInfo
	cache *CallInfo
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "call":
		if a.cache == nil {
			a.cache = a.call()
		}
		return a.cache, true
	case "event":
		if a.event == nil {
			return &EventInfo{}, true
		}
		return a.event, true
	case "run":
		return &RunInfo{ID: a.run.id, Flow: a.run.flow.Name}, true
	case "calls":
		return a.run.calls, true
	}
	if p, ok := strings.CutPrefix(name, "params."); ok {
		v, ok := a.run.params[p]
		return v, ok
	}
	if p, ok := strings.CutPrefix(name, "vars."); ok {
		v, ok := a.run.vars[p]
		return v, ok
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (x *expr) eval(a *activation) (ref.Val, error) {
	v, _, err := x.prg.Eval(a)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", x.pos, quoteExpr(x.src), err)
	}
	if types.IsError(v) {
		return nil, fmt.Errorf("%s: %s: %v", x.pos, quoteExpr(x.src), v)
	}
	return v, nil
}

func (x *expr) test(a *activation) (bool, error) {
	v, err := x.eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%s: %s is %s, not a bool", x.pos, quoteExpr(x.src), v.Type().TypeName())
	}
	return bool(b), nil
}

func (v *valueNode) eval(a *activation) (ref.Val, error) {
	switch v.kind {
	case vLit:
		if v.lit == nil {
			return types.NullValue, nil
		}
		return v.lit, nil
	case vExpr:
		if v.ex == nil {
			return types.NullValue, nil
		}
		return v.ex.eval(a)
	case vInterp:
		var b strings.Builder
		for _, p := range v.parts {
			if p.ex == nil {
				b.WriteString(p.lit)
				continue
			}
			x, err := p.ex.eval(a)
			if err != nil {
				return nil, err
			}
			b.WriteString(textOf(x))
		}
		return types.String(b.String()), nil
	case vList:
		out := make([]ref.Val, len(v.items))
		for i, it := range v.items {
			x, err := it.eval(a)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out), nil
	case vMap:
		m := make(map[ref.Val]ref.Val, len(v.keys))
		for i, k := range v.keys {
			x, err := v.vals[i].eval(a)
			if err != nil {
				return nil, err
			}
			m[types.String(k)] = x
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, m), nil
	}
	return types.NullValue, nil
}

// textOf is a value as text in a string.
func textOf(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case types.Duration:
		return x.Duration.String()
	case types.Null:
		return ""
	}
	if j := ToJSON(v); j != nil {
		return fmt.Sprint(j)
	}
	return ""
}

// ToJSON is v as plain Go data (string, int64, float64, bool, nil, []any,
// map[string]any); durations are Go duration strings.
func ToJSON(v ref.Val) any {
	switch x := v.(type) {
	case nil:
		return nil
	case types.String:
		return string(x)
	case types.Int:
		return int64(x)
	case types.Uint:
		return uint64(x)
	case types.Double:
		return float64(x)
	case types.Bool:
		return bool(x)
	case types.Null:
		return nil
	case types.Duration:
		return x.Duration.String()
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano)
	}
	switch x := v.(type) {
	case traits.Lister:
		n := int(x.Size().(types.Int))
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			out = append(out, ToJSON(x.Get(types.Int(i))))
		}
		return out
	case traits.Mapper:
		out := map[string]any{}
		it := x.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			out[textOf(k)] = ToJSON(x.Get(k))
		}
		return out
	}
	if nv, err := v.ConvertToNative(reflect.TypeFor[any]()); err == nil {
		return nv
	}
	return v.Value()
}

// errType marks a value of the wrong type for its field.
var errType = errors.New("wrong type")

// convert turns a value from JSON or YAML (or a ref.Val) into the field's
// type, or says why it cannot.
func (f *Field) convert(raw any) (ref.Val, error) {
	if rv, ok := raw.(ref.Val); ok {
		raw = ToJSON(rv)
	}
	want := func() error { return fmt.Errorf("%w: want %s, got %s", errType, article(f.Type), describe(raw)) }
	switch f.Type {
	case TypeString:
		if s, ok := raw.(string); ok {
			return types.String(s), nil
		}
	case TypeInt:
		switch x := raw.(type) {
		case int:
			return types.Int(x), nil
		case int64:
			return types.Int(x), nil
		case uint64:
			if x <= math.MaxInt64 {
				return types.Int(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return types.Int(int64(x)), nil
			}
		}
	case TypeBool:
		if b, ok := raw.(bool); ok {
			return types.Bool(b), nil
		}
	case TypeDuration:
		if s, ok := raw.(string); ok {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("%w: %q is not a duration (for example 30s, 2m)", errType, s)
			}
			return types.Duration{Duration: d}, nil
		}
	case TypeList, TypeStrings:
		l, ok := raw.([]any)
		if !ok {
			break
		}
		out := make([]ref.Val, len(l))
		for i, e := range l {
			if f.Type == TypeStrings {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%w: [%d]: want a string, got %s", errType, i, describe(e))
				}
				out[i] = types.String(s)
				continue
			}
			out[i] = types.DefaultTypeAdapter.NativeToValue(normalize(e))
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out), nil
	case TypeMap:
		if m, ok := raw.(map[string]any); ok {
			return types.DefaultTypeAdapter.NativeToValue(normalize(m)), nil
		}
	}
	return nil, want()
}

// normalize turns JSON numbers that are integers into int64, so that
// expressions compare them with ints.
func normalize(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case int:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

func (f *Field) zero() ref.Val {
	switch f.Type {
	case TypeString:
		return types.String("")
	case TypeInt:
		return types.Int(0)
	case TypeBool:
		return types.False
	case TypeDuration:
		return types.Duration{}
	case TypeList, TypeStrings:
		return types.NewRefValList(types.DefaultTypeAdapter, nil)
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{})
}

func article(t string) string {
	switch t {
	case TypeInt:
		return "an int"
	case TypeList:
		return "a list"
	case TypeStrings:
		return "a list of strings"
	case TypeMap:
		return "a map"
	}
	return "a " + t
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", problem.Shorten(x))
	case bool:
		return fmt.Sprintf("the bool %v", x)
	case float64, int, int64, uint64:
		return fmt.Sprintf("the number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

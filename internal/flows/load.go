package flows

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/botd/botd/internal/problem"
)

// Pos is a place in a flow file: 1-based line and column.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"column"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// LoadError is one thing wrong in a flow file, with where it is.
type LoadError struct {
	Pos Pos
	Msg string
}

func (e *LoadError) Error() string { return e.Pos.String() + ": " + e.Msg }

// LoadErrors is every problem found in the files loaded, in file order.
type LoadErrors []*LoadError

func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxFlowFile bounds one flow file; maxFlowFiles the files in a directory.
const (
	maxFlowFile  = 1 << 20
	maxFlowFiles = 1000
)

// LoadPath loads the flow file at path, or every *.yaml and *.yml file of
// the directory at path (not recursively), and checks them completely. An
// error is LoadErrors, each with file, line and column; then no flow is
// returned.
func LoadPath(path string, opts Options) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != path {
				return filepath.SkipDir
			}
			if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("flows: %w", err)
		}
		if len(files) > maxFlowFiles {
			return nil, fmt.Errorf("flows: %s holds %d flow files, more than %d", path, len(files), maxFlowFiles)
		}
		sort.Strings(files)
	}
	srcs := make([]Source, 0, len(files))
	for _, f := range files {
		b, err := readBounded(f)
		if err != nil {
			return nil, fmt.Errorf("flows: %w", err)
		}
		srcs = append(srcs, Source{File: f, Data: b})
	}
	return Load(srcs, opts)
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxFlowFile+1)
	n, err := f.Read(b)
	for err == nil && n < len(b) {
		var m int
		m, err = f.Read(b[n:])
		n += m
	}
	if n > maxFlowFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxFlowFile)
	}
	return b[:n], nil
}

// Source is one flow file's name and contents.
type Source struct {
	File string
	Data []byte
}

// Load parses and checks flow files: every flow, expression, step and
// action. It reports every problem it finds, not only the first.
func Load(srcs []Source, opts Options) (*Set, error) {
	l := &loader{opts: opts}
	var flows []*Flow
	for _, src := range srcs {
		if f := l.file(src); f != nil {
			flows = append(flows, f)
		}
	}
	seen := map[string]*Flow{}
	for _, f := range flows {
		if prev, ok := seen[f.Name]; ok {
			l.errf(f.namePos, "flow %q is already defined at %s", f.Name, prev.namePos)
			continue
		}
		seen[f.Name] = f
	}
	for _, f := range flows {
		l.link(f, seen)
	}
	if len(l.errs) > 0 {
		// In file order: the checks run in passes, not line by line.
		slices.SortStableFunc(l.errs, func(a, b *LoadError) int {
			return cmp.Or(strings.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
		})
		return nil, l.errs
	}
	return newSet(flows), nil
}

type loader struct {
	opts  Options
	file_ string
	errs  LoadErrors
}

func (l *loader) errf(p Pos, format string, args ...any) {
	if len(l.errs) < 100 {
		l.errs = append(l.errs, &LoadError{Pos: p, Msg: fmt.Sprintf(format, args...)})
	}
}

func (l *loader) pos(n *yaml.Node) Pos { return Pos{File: l.file_, Line: n.Line, Col: n.Column} }

// yamlLocation turns "yaml: line 3: ..." into a position and message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) file(src Source) *Flow {
	l.file_ = src.File
	var doc yaml.Node
	if err := yaml.Unmarshal(src.Data, &doc); err != nil {
		msg := err.Error()
		p := Pos{File: src.File, Line: 1, Col: 1}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		l.errf(p, "YAML: %s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		l.errf(Pos{File: src.File, Line: 1, Col: 1}, "the file is empty: a flow needs name and steps")
		return nil
	}
	return l.flow(doc.Content[0])
}

// fields checks that n is a mapping whose keys are all known, each once,
// and returns its values by key. what names n in errors.
func (l *loader) fields(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		l.errf(l.pos(n), "%s must be a mapping, got %s", what, kindName(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errf(l.pos(k), "%s: a key must be a plain name", what)
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			l.errf(l.pos(k), "%s: unknown field %q%s (known: %s)", what, k.Value, suggest(k.Value, known), strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.errf(l.pos(k), "%s: %q is given twice", what, k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out, true
}

// pairs returns the key and value nodes of mapping n, in order.
func (l *loader) pairs(n *yaml.Node, what string) [][2]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		l.errf(l.pos(n), "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			l.errf(l.pos(k), "%s: a key must be a plain name", what)
			continue
		}
		if seen[k.Value] {
			l.errf(l.pos(k), "%s: %q is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, n.Content[i+1]})
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// str reads a scalar string field.
func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errf(l.pos(n), "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

var namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// name reads a name: a letter, then letters, digits, _ or -.
func (l *loader) name(n *yaml.Node, what string) (string, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return "", false
	}
	if !namePattern.MatchString(s) {
		l.errf(l.pos(n), "%s %q is not a name (a letter, then up to 63 letters, digits, _ or -)", what, s)
		return "", false
	}
	return s, true
}

var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ident reads a name usable in expressions (no -).
func (l *loader) ident(k *yaml.Node, what string) (string, bool) {
	if !identPattern.MatchString(k.Value) {
		l.errf(l.pos(k), "%s %q is not a name usable in expressions (a letter or _, then letters, digits or _)", what, k.Value)
		return "", false
	}
	return k.Value, true
}

// Top-level fields of a flow file.
var flowFields = []string{"name", "description", "trigger", "parameters", "variables", "outputs", "start", "steps", "onCancel", "defaultTimeout"}

func (l *loader) flow(n *yaml.Node) *Flow {
	fs, ok := l.fields(n, "flow", flowFields...)
	if !ok {
		return nil
	}
	f := l.flowHeader(n, fs)
	sc := l.flowScope(n, fs, f)
	env, err := newEnv(sc)
	if err != nil {
		l.errf(l.pos(n), "expressions: %v", err)
		return nil
	}
	c := &compiler{l: l, env: env, sc: sc, flow: f}
	if v := fs["trigger"]; v != nil {
		f.Trigger = c.trigger(v)
		// A call starts a triggered flow with no parameters given.
		for _, p := range f.Parameters {
			if p.Required {
				l.errf(p.pos, "parameter %s is required, but a triggered flow starts with none given: give it a default", p.Name)
			}
		}
	}
	if v := fs["outputs"]; v != nil {
		for _, kv := range l.pairs(v, "outputs") {
			if name, ok := l.ident(kv[0], "output"); ok {
				f.outputs = append(f.outputs, namedValue{name: name, v: c.value(kv[1], "outputs."+name, anyType)})
			}
		}
	}
	c.flowSteps(fs["steps"])
	if v := fs["start"]; v != nil {
		f.Start, _ = l.str(v, "start")
		f.startPos = l.pos(v)
	} else if len(f.order) > 0 {
		f.Start, f.startPos = f.order[0], f.namePos
	}
	if v := fs["onCancel"]; v != nil {
		f.onCancel = c.actions(v, "onCancel")
	}
	return f
}

// flowHeader reads a flow's name, description and defaultTimeout.
func (l *loader) flowHeader(n *yaml.Node, fs map[string]*yaml.Node) *Flow {
	f := &Flow{File: l.file_, namePos: l.pos(n), steps: map[string]*step{}}
	ok := false
	if v := fs["name"]; v == nil {
		l.errf(l.pos(n), "flow: name is required")
	} else if f.Name, ok = l.name(v, "flow name"); ok {
		f.namePos = l.pos(v)
	}
	if v := fs["description"]; v != nil {
		f.Description, _ = l.str(v, "description")
	}
	f.DefaultTimeout = l.opts.DefaultTimeout
	if v := fs["defaultTimeout"]; v != nil {
		if d, ok := l.duration(v, "defaultTimeout"); ok {
			f.DefaultTimeout = d
		}
	}
	return f
}

// flowScope reads a flow's parameters and variables into f, and returns the
// scope its expressions compile in: those, and every call name.
func (l *loader) flowScope(n *yaml.Node, fs map[string]*yaml.Node, f *Flow) *scope {
	sc := newScope()
	if v := fs["parameters"]; v != nil {
		f.Parameters = l.fieldDecls(v, "parameter", true)
	}
	if v := fs["variables"]; v != nil {
		f.Variables = l.fieldDecls(v, "variable", false)
	}
	for _, p := range f.Parameters {
		sc.params[p.Name] = p
	}
	for _, v := range f.Variables {
		if _, clash := sc.params[v.Name]; clash {
			l.errf(v.pos, "variable %q has the name of a parameter", v.Name)
		}
		sc.vars[v.Name] = v
	}
	// Call names: the main call, and every createCall's "as". They are
	// collected first so that a step may name a call created later.
	sc.calls["call"] = true
	if steps := fs["steps"]; steps == nil {
		l.errf(l.pos(n), "flow: steps is required")
	} else {
		l.collectNames(steps, sc)
	}
	if v := fs["onCancel"]; v != nil {
		sc.collectActions(l, v)
	}
	return sc
}

// flowSteps compiles the steps mapping (nil: absent, already reported) into
// the flow, in file order.
func (c *compiler) flowSteps(steps *yaml.Node) {
	if steps == nil {
		return
	}
	l, f := c.l, c.flow
	for _, kv := range l.pairs(steps, "steps") {
		if name, ok := l.name(kv[0], "step name"); ok {
			if name == "end" {
				l.errf(l.pos(kv[0]), "step name \"end\" is reserved (use end: in a transition)")
				continue
			}
			f.steps[name] = c.step(name, kv[0], kv[1])
			f.order = append(f.order, name)
		}
	}
	if len(f.order) == 0 && len(l.errs) == 0 {
		l.errf(l.pos(steps), "steps: a flow needs at least one step")
	}
}

// collectNames records the step names and the call names the steps'
// actions define.
func (l *loader) collectNames(steps *yaml.Node, sc *scope) {
	if steps.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(steps.Content); i += 2 {
		sc.steps[steps.Content[i].Value] = true
		if steps.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		st := steps.Content[i+1]
		for j := 0; j+1 < len(st.Content); j += 2 {
			if st.Content[j].Value == "actions" {
				sc.collectActions(l, st.Content[j+1])
			}
		}
	}
}

// collectActions records the names createCall and startFlow give.
func (sc *scope) collectActions(l *loader, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		return
	}
	for _, a := range n.Content {
		if a.Kind != yaml.MappingNode || len(a.Content) != 2 || a.Content[1].Kind != yaml.MappingNode {
			continue
		}
		kind, args := a.Content[0].Value, a.Content[1]
		for j := 0; j+1 < len(args.Content); j += 2 {
			if args.Content[j].Value != "as" {
				continue
			}
			switch kind {
			case "createCall":
				sc.calls[args.Content[j+1].Value] = true
			case "startFlow":
				sc.children[args.Content[j+1].Value] = true
			}
		}
	}
}

// Field types of parameters and variables.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeBool     = "bool"
	TypeDuration = "duration"
	TypeList     = "list"
	TypeStrings  = "strings"
	TypeMap      = "map"
)

// FieldTypes lists them, for errors and docs.
var FieldTypes = []string{TypeString, TypeInt, TypeBool, TypeDuration, TypeList, TypeStrings, TypeMap}

func (l *loader) fieldDecls(n *yaml.Node, what string, isParam bool) []*Field {
	known := []string{"type", "default", "description"}
	if isParam {
		known = append(known, "required")
	}
	var out []*Field
	for _, kv := range l.pairs(n, what+"s") {
		name, ok := l.ident(kv[0], what)
		if !ok {
			continue
		}
		fs, ok := l.fields(kv[1], what+" "+name, known...)
		if !ok {
			continue
		}
		f := &Field{Name: name, pos: l.pos(kv[0])}
		t := fs["type"]
		if t == nil {
			l.errf(l.pos(kv[1]), "%s %s: type is required (one of %s)", what, name, strings.Join(FieldTypes, ", "))
			continue
		}
		if f.Type, ok = l.str(t, what+" "+name+" type"); !ok {
			continue
		}
		if !slices.Contains(FieldTypes, f.Type) {
			l.errf(l.pos(t), "%s %s: unknown type %q%s (known: %s)", what, name, f.Type, suggest(f.Type, FieldTypes), strings.Join(FieldTypes, ", "))
			continue
		}
		if v := fs["description"]; v != nil {
			f.Description, _ = l.str(v, "description")
		}
		if v := fs["required"]; v != nil {
			if v.Tag != "!!bool" {
				l.errf(l.pos(v), "%s %s: required must be true or false, got %s", what, name, kindName(v))
			} else {
				f.Required = v.Value == "true"
			}
		}
		if v := fs["default"]; v != nil {
			if f.Required {
				l.errf(l.pos(v), "%s %s: a required parameter has no default", what, name)
			}
			var raw any
			if err := v.Decode(&raw); err != nil {
				l.errf(l.pos(v), "%s %s: default: %v", what, name, err)
				continue
			}
			d, err := f.convert(raw)
			if err != nil {
				l.errf(l.pos(v), "%s %s: default: %v", what, name, err)
				continue
			}
			f.def, f.Default, f.hasDefault = d, ToJSON(d), true
		} else if !f.Required {
			f.def = f.zero()
			f.Default, f.hasDefault = ToJSON(f.def), true
		}
		out = append(out, f)
	}
	return out
}

// duration reads a literal Go duration.
func (l *loader) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.errf(l.pos(n), "%s: %q is not a positive duration (for example 30s, 2m)", what, s)
		return 0, false
	}
	return d, true
}

// suggest returns `; did you mean "x"?` for the known name closest to s.
func suggest(s string, known []string) string {
	if best, ok := problem.Closest(s, known, 3); ok {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

package deploy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// A minimal Dockerfile reader: enough of the syntax (line continuations,
// comments, stages, ARG/ENV scoping, shell-form RUN with quotes and
// ${VAR}) to check the file and to replay its go build line.

var (
	goBuildRE = regexp.MustCompile(`(^|[\s;&|])go\s+build\s`)
	assignRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	nameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest of the line, continuations joined
}

type stage struct {
	image    string // FROM's image reference
	name     string // FROM ... AS name
	platform string
	instrs   []instruction
}

type dockerfile struct {
	stages []stage
}

func parseDockerfileAt(path string) (*dockerfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDockerfile(string(b))
}

func parseDockerfile(text string) (*dockerfile, error) {
	var logical []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		// Comment lines are dropped, also inside a continued instruction.
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		logical = append(logical, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	if cur.Len() > 0 {
		return nil, errors.New("Dockerfile ends inside a continued line")
	}
	df := &dockerfile{}
	for _, in := range logical {
		if in.cmd != "FROM" {
			if len(df.stages) == 0 {
				if in.cmd == "ARG" {
					continue // global ARG before the first FROM
				}
				return nil, fmt.Errorf("line %d: %s before FROM", in.line, in.cmd)
			}
			s := &df.stages[len(df.stages)-1]
			s.instrs = append(s.instrs, in)
			continue
		}
		var st stage
		fields := strings.Fields(in.args)
		for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
			if v, ok := strings.CutPrefix(fields[0], "--platform="); ok {
				st.platform = v
			}
			fields = fields[1:]
		}
		switch {
		case len(fields) == 1:
		case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
			st.name = fields[2]
		default:
			return nil, fmt.Errorf("line %d: cannot read FROM %q", in.line, in.args)
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: FROM without an image", in.line)
		}
		st.image = fields[0]
		df.stages = append(df.stages, st)
	}
	if len(df.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return df, nil
}

// all returns the stage's instructions named cmd.
func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// argDeclared reports whether the stage declares ARG name (ARGs are scoped
// to the stage that declares them).
func (s *stage) argDeclared(name string) bool {
	for _, in := range s.all("ARG") {
		for _, f := range strings.Fields(in.args) {
			if n, _, _ := strings.Cut(f, "="); n == name {
				return true
			}
		}
	}
	return false
}

// goBuildStage returns the index of the one stage with a `go build` RUN.
func (df *dockerfile) goBuildStage() (int, instruction, error) {
	idx, found := -1, instruction{}
	for i := range df.stages {
		for _, in := range df.stages[i].all("RUN") {
			if goBuildRE.MatchString(in.args) {
				if idx >= 0 {
					return 0, instruction{}, fmt.Errorf("more than one go build RUN (lines %d and %d): the tests replay exactly one", found.line, in.line)
				}
				idx, found = i, in
			}
		}
	}
	if idx < 0 {
		return 0, instruction{}, errors.New("no RUN with go build")
	}
	return idx, found, nil
}

// buildSpec is the Dockerfile's go build command, variables expanded.
type buildSpec struct {
	env  []string // ENV of the stage, then the command's own NAME=value prefixes
	args []string // after "go": build, flags..., package
}

// flagValue returns the value of -name (as "-name value" or "-name=value").
func (b buildSpec) flagValue(name string) (string, bool) {
	for i, a := range b.args {
		if a == "-"+name && i+1 < len(b.args) {
			return b.args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (b buildSpec) hasFlag(name string) bool {
	for _, a := range b.args {
		if a == "-"+name || strings.HasPrefix(a, "-"+name+"=") {
			return true
		}
	}
	return false
}

// envValue returns the last assignment of name.
func (b buildSpec) envValue(name string) (string, bool) {
	v, ok := "", false
	for _, e := range b.env {
		if n, val, _ := strings.Cut(e, "="); n == name {
			v, ok = val, true
		}
	}
	return v, ok
}

// packages are the build's non-flag arguments.
func (b buildSpec) packages() []string {
	var out []string
	for i := 1; i < len(b.args); i++ {
		a := b.args[i]
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && flagTakesValue(a) {
				i++
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

func flagTakesValue(f string) bool {
	switch strings.TrimLeft(f, "-") {
	case "o", "ldflags", "gcflags", "asmflags", "tags", "p", "mod", "modfile", "pgo", "buildmode", "compiler", "gccgoflags", "installsuffix", "overlay", "pkgdir", "toolexec", "covermode", "coverpkg":
		return true
	}
	return false
}

// argsWithOutput is args with -o pointing at out.
func (b buildSpec) argsWithOutput(out string) []string {
	args := append([]string(nil), b.args...)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = out
			return args
		}
		if strings.HasPrefix(a, "-o=") {
			args[i] = "-o=" + out
			return args
		}
	}
	return append(args[:1:1], append([]string{"-o", out}, args[1:]...)...)
}

// goBuild extracts the go build command, expanding variables from the
// stage's ARG defaults and ENV, with buildArgs overriding ARG defaults (as
// docker build --build-arg does). A variable the stage does not declare is
// an error: Docker would silently expand it to "".
func (df *dockerfile) goBuild(buildArgs map[string]string) (buildSpec, error) {
	idx, run, err := df.goBuildStage()
	if err != nil {
		return buildSpec{}, err
	}
	vars := map[string]string{}
	var spec buildSpec
	for _, in := range df.stages[idx].instrs {
		if in.line >= run.line {
			break
		}
		switch in.cmd {
		case "ARG":
			for _, f := range strings.Fields(in.args) {
				name, def, _ := strings.Cut(f, "=")
				if v, ok := buildArgs[name]; ok {
					vars[name] = v
				} else {
					vars[name] = strings.Trim(def, `"`)
				}
			}
		case "ENV":
			words, err := shellCommands(in.args, lookupIn(vars))
			if err != nil {
				return buildSpec{}, fmt.Errorf("line %d: %w", in.line, err)
			}
			for _, cmd := range words {
				for _, w := range cmd {
					n, v, ok := strings.Cut(w, "=")
					if !ok {
						return buildSpec{}, fmt.Errorf("line %d: only ENV name=value is supported", in.line)
					}
					vars[n] = v
					spec.env = append(spec.env, n+"="+v)
				}
			}
		}
	}
	cmds, err := shellCommands(run.args, lookupIn(vars))
	if err != nil {
		return buildSpec{}, fmt.Errorf("line %d: %w", run.line, err)
	}
	for _, words := range cmds {
		i := 0
		for i < len(words) && assignRE.MatchString(words[i]) {
			i++
		}
		if len(words) >= i+2 && words[i] == "go" && words[i+1] == "build" {
			spec.env = append(spec.env, words[:i]...)
			spec.args = append([]string(nil), words[i+1:]...)
			return spec, nil
		}
	}
	return buildSpec{}, fmt.Errorf("line %d: no `go build` command in %q", run.line, run.args)
}

func lookupIn(vars map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("${%s} is not declared (ARG/ENV) in the stage", name)
		}
		return v, nil
	}
}

// shellCommands splits a shell-form RUN into commands (at &&, ||, ; and |)
// of words, handling quotes, backslashes and $NAME / ${NAME} expansion.
func shellCommands(s string, lookup func(string) (string, error)) ([][]string, error) {
	var (
		cmds   [][]string
		words  []string
		cur    strings.Builder
		inWord bool
	)
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	expand := func(i int) (int, error) { // s[i] == '$'
		j := i + 1
		var name string
		if j < len(s) && s[j] == '{' {
			k := strings.IndexByte(s[j:], '}')
			if k < 0 {
				return 0, errors.New("unterminated ${")
			}
			name = s[j+1 : j+k]
			j += k + 1
		} else {
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= 'a' && s[k] <= 'z' || k > j && s[k] >= '0' && s[k] <= '9') {
				k++
			}
			name, j = s[j:k], k
		}
		if !nameRE.MatchString(name) {
			return 0, fmt.Errorf("unsupported expansion $%s", name)
		}
		v, err := lookup(name)
		if err != nil {
			return 0, err
		}
		cur.WriteString(v)
		inWord = true
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			endWord()
			i++
		case c == '&' && i+1 < len(s) && s[i+1] == '&', c == '|' && i+1 < len(s) && s[i+1] == '|':
			endCmd()
			i += 2
		case c == ';' || c == '|':
			endCmd()
			i++
		case c == '\'':
			k := strings.IndexByte(s[i+1:], '\'')
			if k < 0 {
				return nil, errors.New("unterminated '")
			}
			cur.WriteString(s[i+1 : i+1+k])
			inWord = true
			i += k + 2
		case c == '"':
			inWord = true
			i++
			for {
				if i >= len(s) {
					return nil, errors.New(`unterminated "`)
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					cur.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '$' {
					j, err := expand(i)
					if err != nil {
						return nil, err
					}
					i = j
					continue
				}
				cur.WriteByte(s[i])
				i++
			}
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			inWord = true
			i += 2
		case c == '$':
			j, err := expand(i)
			if err != nil {
				return nil, err
			}
			i = j
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	endCmd()
	return cmds, nil
}

func TestShellCommands(t *testing.T) {
	vars := map[string]string{"V": "1.2 x", "OS": "linux", "EMPTY": ""}
	tests := []struct {
		in      string
		want    [][]string
		wantErr bool
	}{
		{`go build ./x`, [][]string{{"go", "build", "./x"}}, false},
		{`A=1 B=${OS} go build -ldflags "-s -X main.v=${V}" -o /o ./c`, [][]string{{"A=1", "B=linux", "go", "build", "-ldflags", "-s -X main.v=1.2 x", "-o", "/o", "./c"}}, false},
		{`go mod download && go build '$V' x\ y`, [][]string{{"go", "mod", "download"}, {"go", "build", "$V", "x y"}}, false},
		{`GOOS=$EMPTY go build "a\"b" ; true || false`, [][]string{{"GOOS=", "go", "build", `a"b`}, {"true"}, {"false"}}, false},
		{`go build ${NOPE}`, nil, true},
		{`go build "open`, nil, true},
		{`go build ${V:-x}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := shellCommands(tt.in, lookupIn(vars))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	df, err := parseDockerfile(`# syntax=docker/dockerfile:1
ARG GLOBAL=1
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG VERSION=dev
# a comment
ENV CGO_ENABLED=0
RUN go mod download && \
    # comment inside a continuation
    GOOS=linux go build \
      -trimpath -ldflags "-X main.version=${VERSION}" -o /out/botd ./cmd/botd
FROM scratch
COPY --from=build /out/botd /botd
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) != 2 || df.stages[0].name != "build" || df.stages[0].image != "golang:1.26" || df.stages[0].platform != "$BUILDPLATFORM" || df.stages[1].image != "scratch" {
		t.Fatalf("stages = %+v", df.stages)
	}
	spec, err := df.goBuild(map[string]string{"VERSION": "v9"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(spec.env); got != "[CGO_ENABLED=0 GOOS=linux]" {
		t.Errorf("env = %s", got)
	}
	if got := fmt.Sprint(spec.args); got != "[build -trimpath -ldflags -X main.version=v9 -o /out/botd ./cmd/botd]" {
		t.Errorf("args = %s", got)
	}
	if got := fmt.Sprint(spec.argsWithOutput("/tmp/b")); got != "[build -trimpath -ldflags -X main.version=v9 -o /tmp/b ./cmd/botd]" {
		t.Errorf("argsWithOutput = %s", got)
	}
	if got := fmt.Sprint(spec.packages()); got != "[./cmd/botd]" {
		t.Errorf("packages = %s", got)
	}
	if _, err := parseDockerfile("RUN true\n"); err == nil {
		t.Error("RUN before FROM parsed")
	}
	if _, err := parseDockerfile("FROM a\nRUN go build \\\n"); err == nil {
		t.Error("dangling continuation parsed")
	}
}

package deploy

import (
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/config"
)

// settingDefault is botd's default for an environment variable.
func settingDefault(t *testing.T, env string) string {
	t.Helper()
	for _, s := range config.Settings() {
		if s.Env == env {
			return s.Default
		}
	}
	t.Fatalf("%s is not one of botd's settings (config.Settings())", env)
	return ""
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: port is not a number", addr)
	}
	return n
}

// goModVersion returns go.mod's go line as major, minor, patch (-1 when
// absent).
func goModVersion(t *testing.T) (int, int, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\d+)\.(\d+)(?:\.(\d+))?\s*$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return atoi(m[1]), atoi(m[2]), atoiOr(m[3], -1)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func atoiOr(s string, def int) int {
	if s == "" {
		return def
	}
	return atoi(s)
}

// TestDockerfile checks the Dockerfile's shape: a golang builder matching
// go.mod, dependency download in its own layer, a static, trimmed,
// version-stamped build of ./cmd/botd, and a distroless non-root final
// stage that exposes botd's default ports and runs the built binary.
func TestDockerfile(t *testing.T) {
	df, err := parseDockerfileAt(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("%d stage(s), want a builder and a final stage", len(df.stages))
	}
	bi, _, err := df.goBuildStage()
	if err != nil {
		t.Fatal(err)
	}
	builder, final := &df.stages[bi], &df.stages[len(df.stages)-1]
	if bi == len(df.stages)-1 {
		t.Fatal("go build runs in the final stage: the toolchain would ship in the image")
	}

	t.Run("builder Go version is go.mod's", func(t *testing.T) {
		ref, _, _ := strings.Cut(builder.image, "@") // a digest pin is fine
		repo, tag, ok := strings.Cut(ref, ":")
		if repo != "golang" && !strings.HasSuffix(repo, "/golang") || !ok {
			t.Fatalf("builder image %q, want golang:<go.mod version>", builder.image)
		}
		m := regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?(-.*)?$`).FindStringSubmatch(tag)
		if m == nil {
			t.Fatalf("builder tag %q does not start with a Go version", tag)
		}
		gmaj, gmin, gpatch := goModVersion(t)
		if atoi(m[1]) != gmaj || atoi(m[2]) != gmin {
			t.Errorf("builder is Go %s.%s, go.mod says go %d.%d", m[1], m[2], gmaj, gmin)
		}
		if p := atoiOr(m[3], -1); p >= 0 && p < gpatch {
			t.Errorf("builder Go %s.%s.%d is older than go.mod's go %d.%d.%d", m[1], m[2], p, gmaj, gmin, gpatch)
		}
	})

	t.Run("dependencies in their own layer", func(t *testing.T) {
		copyMods, download, copyAll, build := -1, -1, -1, -1
		for i, in := range builder.instrs {
			switch {
			case in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum") && copyMods < 0:
				copyMods = i
			case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
				download = i
			case in.cmd == "COPY" && regexp.MustCompile(`^\.\s`).MatchString(in.args):
				copyAll = i
			case in.cmd == "RUN" && goBuildRE.MatchString(in.args):
				build = i
			}
		}
		if copyMods < 0 || download < 0 || copyAll < 0 || build < 0 {
			t.Fatalf("want COPY go.mod go.sum, RUN go mod download, COPY . ., RUN go build; got indexes %d %d %d %d", copyMods, download, copyAll, build)
		}
		if copyMods >= download || download >= copyAll || copyAll >= build {
			t.Errorf("order is COPY go.mod/go.sum (%d), go mod download (%d), COPY . (%d), go build (%d); want increasing", copyMods, download, copyAll, build)
		}
	})

	var output string
	t.Run("go build flags", func(t *testing.T) {
		spec, err := df.goBuild(map[string]string{"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := spec.envValue("CGO_ENABLED"); v != "0" {
			t.Errorf("CGO_ENABLED=%q, want 0 (static binary for distroless/static)", v)
		}
		if !spec.hasFlag("trimpath") {
			t.Error("no -trimpath")
		}
		ld, _ := spec.flagValue("ldflags")
		for _, want := range []string{"-s", "-w"} {
			if !slices.Contains(strings.Fields(ld), want) {
				t.Errorf("-ldflags %q lacks %s", ld, want)
			}
		}
		if !strings.Contains(ld, "-X main.version=v1.2.3") {
			t.Errorf("-ldflags %q does not stamp main.version from ARG VERSION", ld)
		}
		if got := spec.packages(); len(got) != 1 || got[0] != "./cmd/botd" {
			t.Errorf("builds %q, want ./cmd/botd", got)
		}
		output, _ = spec.flagValue("o")
		if output == "" {
			t.Error("no -o: the final stage cannot know what to copy")
		}
	})

	t.Run("final stage", func(t *testing.T) {
		if !strings.HasPrefix(final.image, "gcr.io/distroless/static") || !strings.Contains(final.image, ":nonroot") {
			t.Errorf("final image %q, want gcr.io/distroless/static-debian12:nonroot", final.image)
		}
		users := final.all("USER")
		if len(users) == 0 {
			t.Fatal("no USER in the final stage")
		}
		user := users[len(users)-1].args
		uid, _, _ := strings.Cut(user, ":")
		// Numeric, so the kubelet can enforce runAsNonRoot without
		// resolving a user name.
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("USER %q, want a numeric non-root uid (65532)", user)
		}

		want := []int{
			portOf(t, settingDefault(t, "BOTD_LISTEN")),
			portOf(t, settingDefault(t, "BOTD_ADMIN_LISTEN")),
		}
		var exposed []int
		for _, in := range final.all("EXPOSE") {
			for _, f := range strings.Fields(in.args) {
				p, _, _ := strings.Cut(f, "/")
				exposed = append(exposed, atoi(p))
			}
		}
		slices.Sort(exposed)
		slices.Sort(want)
		if !slices.Equal(exposed, want) {
			t.Errorf("EXPOSE %v, botd's default listeners use %v", exposed, want)
		}

		eps := final.all("ENTRYPOINT")
		if len(eps) != 1 {
			t.Fatalf("%d ENTRYPOINTs, want 1", len(eps))
		}
		var argv []string
		if err := json.Unmarshal([]byte(eps[0].args), &argv); err != nil || len(argv) == 0 {
			t.Fatalf("ENTRYPOINT %s is not exec form (distroless has no shell)", eps[0].args)
		}
		copied := false
		for _, in := range final.all("COPY") {
			f := strings.Fields(in.args)
			if len(f) == 3 && f[0] == "--from="+builder.name && f[1] == output && f[2] == argv[0] {
				copied = true
			}
		}
		if !copied {
			t.Errorf("no COPY --from=%s %s %s: ENTRYPOINT %q would not be the built binary", builder.name, output, argv[0], argv)
		}
	})

	t.Run("OCI labels", func(t *testing.T) {
		labels := map[string]string{}
		for _, in := range final.all("LABEL") {
			for _, m := range regexp.MustCompile(`([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S+)`).FindAllStringSubmatch(in.args, -1) {
				labels[m[1]] = strings.Trim(m[2], `"`)
			}
		}
		for _, k := range []string{"title", "description", "source", "version", "licenses"} {
			if labels["org.opencontainers.image."+k] == "" {
				t.Errorf("no org.opencontainers.image.%s label", k)
			}
		}
		if v := labels["org.opencontainers.image.version"]; strings.Contains(v, "VERSION") && !final.argDeclared("VERSION") {
			t.Error("the version label uses ${VERSION} but the final stage does not declare ARG VERSION (ARGs are per stage): it would be empty")
		}
	})
}

// dockerignore reads .dockerignore into patterns (Go regexps) with their
// exclusion flag, in order; the last match wins, as in Docker.
type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

func readDockerignore(t *testing.T) []ignoreRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	return parseDockerignore(string(b))
}

func parseDockerignore(text string) []ignoreRule {
	var rules []ignoreRule
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, rest
		}
		line = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case c == '*' && i+1 < len(line) && line[i+1] == '*':
				re.WriteString(".*")
				i++
				if i+1 < len(line) && line[i+1] == '/' {
					re.WriteString("/?")
					i++
				}
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		r.re = regexp.MustCompile(re.String())
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether Docker leaves path (slash-separated, relative to
// the context) out of the build context: a rule matching the path or one
// of its parent directories excludes it.
func ignored(rules []ignoreRule, path string) bool {
	out := false
	parts := strings.Split(path, "/")
	for _, r := range rules {
		for i := 1; i <= len(parts); i++ {
			if r.re.MatchString(strings.Join(parts[:i], "/")) {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// TestDockerignore checks that the build context keeps out VCS state and
// keeps in everything go build needs: go.mod, go.sum and every non-test
// file under cmd/ and internal/ (embedded files included).
func TestDockerignore(t *testing.T) {
	rules := readDockerignore(t)
	for _, p := range []string{".git", ".git/HEAD"} {
		if !ignored(rules, p) {
			t.Errorf("%s is in the build context", p)
		}
	}
	need := []string{"go.mod", "go.sum"}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !d.IsDir() && !strings.HasSuffix(d.Name(), "_test.go") {
				rel, _ := filepath.Rel(repoRoot, p)
				need = append(need, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(need) < 4 {
		t.Fatalf("found only %v to build from", need)
	}
	for _, p := range need {
		if ignored(rules, p) {
			t.Errorf(".dockerignore leaves %s out of the build context; go build needs it", p)
		}
	}
}

func TestIgnoredMatcher(t *testing.T) {
	rules := parseDockerignore("# comment\n**/*_test.go\ndocs\n/bin\n*.md\n!README.md\n**/testdata\n")
	for path, want := range map[string]bool{
		"internal/a/b_test.go": true, "b_test.go": true, "internal/a/b.go": false,
		"docs/x.md": true, "README.md": false, "CHANGES.md": true, "internal/x.md": false,
		"bin/botd": true, "cmd/bin/x": false, "testdata/seeds/a.json": true, "internal/x/testdata/y": true,
	} {
		if got := ignored(rules, path); got != want {
			t.Errorf("ignored(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestImageBinary builds botd with exactly the Dockerfile's go build line
// and runs it as the container would (configured only by BOTD_*), on
// loopback port 0 in emulator mode: the version is stamped, the health
// endpoints answer, and SIGTERM ends it cleanly with exit status 0.
func TestImageBinary(t *testing.T) {
	p := startBotd(t, testEnv()...)
	if p.version != testVersion {
		t.Errorf(`"botd ready" logs version %q, want %q (stamped by -X main.version): %v`, p.version, testVersion, binBuild)
	}
	for _, c := range []struct{ name, url string }{
		{"admin /livez", "http://" + p.adminAddr + "/livez"},
		{"admin /readyz", "http://" + p.adminAddr + "/readyz"},
		{"public /livez", "http://" + p.publicAddr + "/livez"},
	} {
		if code, body := get(t, c.url); code != 200 {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
	}
	// The admin-only endpoints are not on the public listener.
	if code, _ := get(t, "http://"+p.publicAddr+"/metrics"); code == 200 {
		t.Error("public listener serves /metrics")
	}
	if err := p.stop(t, 30*time.Second); err != nil {
		t.Errorf("botd exited with %v after SIGTERM, want status 0\nstdout:\n%s\nstderr:\n%s", err, p.logs(), p.stderr.String())
	}
	if !strings.Contains(p.logs(), `"botd stopped"`) {
		t.Errorf("no \"botd stopped\" line after SIGTERM:\n%s", p.logs())
	}
}

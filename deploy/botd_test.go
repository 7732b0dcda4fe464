package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botd/botd/internal/testkit"
)

// repoRoot is the module root, relative to this package's directory (go
// test runs a package's tests in its directory).
const repoRoot = ".."

// testVersion is what the Dockerfile's -X main.version flag is given when
// the tests build botd; the "botd ready" log line must echo it.
var testVersion = fmt.Sprintf("deploy-test-%d", os.Getpid())

// The botd binary is built once per test run, with the Dockerfile's go build
// line, and shared by the image, manifest and metrics tests: building it is
// most of this package's run time. It lives in a directory TestMain removes.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binErr   error
	binBuild []string // the go command line used, for failure messages
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "botd-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// botdBinary returns the path of botd built exactly as the Dockerfile
// builds it, building it on first use.
func botdBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		df, err := parseDockerfileAt(filepath.Join(repoRoot, "Dockerfile"))
		if err != nil {
			binErr = err
			return
		}
		spec, err := df.goBuild(map[string]string{
			"VERSION": testVersion, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
		})
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "botd")
		args := spec.argsWithOutput(binPath)
		binBuild = append([]string{"go"}, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool(), args...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), spec.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%s (env %q): %v\n%s", strings.Join(binBuild, " "), spec.env, err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build botd with the Dockerfile's flags: %v", binErr)
	}
	return binPath
}

// goTool is the go command; go test puts its own GOROOT/bin first in PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// botdProc is a running botd: its listeners, its JSON log lines, and how to
// stop it.
type botdProc struct {
	cmd        *exec.Cmd
	publicAddr string
	adminAddr  string
	version    string

	mu       sync.Mutex
	logLines []string
	ready    chan struct{} // closed when "botd ready" is logged
	readErr  chan struct{} // closed when stdout reaches EOF
	exited   bool
	exitErr  error
	stderr   *testkit.Buffer
	waitOnce sync.Once
}

// testInstance is the instance name the tests give botd (its default, the
// host name, is not a DNS label on every CI machine).
const testInstance = "deploy-test-0"

// testEnv is the environment of a botd in emulator mode (no Graph
// credentials) on loopback port 0.
func testEnv(extra ...string) []string {
	return append([]string{"BOTD_LISTEN=127.0.0.1:0", "BOTD_ADMIN_LISTEN=127.0.0.1:0", "BOTD_EMULATOR_LISTEN=127.0.0.1:0", "BOTD_INSTANCE=" + testInstance}, extra...)
}

// startBotd runs the built binary with exactly env (no inherited BOTD_*
// variables) and waits for its "botd ready" line.
func startBotd(t *testing.T, env ...string) *botdProc {
	t.Helper()
	bin := botdBinary(t)
	p := &botdProc{ready: make(chan struct{}), readErr: make(chan struct{}), stderr: &testkit.Buffer{}}
	p.cmd = exec.Command(bin)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "BOTD_DATA_DIR=") }) {
		env = append(env, "BOTD_DATA_DIR="+t.TempDir())
	}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start botd: %v", err)
	}
	go p.readLogs(stdout)
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = p.cmd.Process.Kill()
			_ = p.wait()
		}
	})
	select {
	case <-p.ready:
	case <-p.readErr:
		err := p.wait()
		t.Fatalf("botd exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", err, p.logs(), p.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("botd not ready after 20s\nstdout:\n%s\nstderr:\n%s", p.logs(), p.stderr.String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.publicAddr == "" || p.adminAddr == "" {
		t.Fatalf("botd ready without logging both listeners (public %q, admin %q):\n%s", p.publicAddr, p.adminAddr, strings.Join(p.logLines, "\n"))
	}
	return p
}

// logMessage is the message of a zerolog JSON line, whichever key the
// logger is configured with.
func logMessage(m map[string]any) string {
	for _, k := range []string{"message", "msg"} {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	return ""
}

func (p *botdProc) readLogs(r io.Reader) {
	defer close(p.readErr)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	readyClosed := false
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		p.mu.Lock()
		p.logLines = append(p.logLines, line)
		switch logMessage(m) {
		case "listening":
			addr, _ := m["addr"].(string)
			switch m["listener"] {
			case "public":
				p.publicAddr = addr
			case "admin":
				p.adminAddr = addr
			}
		case "botd ready":
			p.version, _ = m["version"].(string)
			if !readyClosed {
				close(p.ready)
				readyClosed = true
			}
		}
		p.mu.Unlock()
	}
}

func (p *botdProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logLines, "\n")
}

func (p *botdProc) hasExited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// wait reaps the process once stdout is drained (exec requires reads from
// StdoutPipe to finish before Wait).
func (p *botdProc) wait() error {
	p.waitOnce.Do(func() {
		<-p.readErr
		err := p.cmd.Wait()
		p.mu.Lock()
		p.exited, p.exitErr = true, err
		p.mu.Unlock()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// stop sends SIGTERM, as the kubelet does, and returns how botd exited.
func (p *botdProc) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		t.Fatalf("botd still running %s after SIGTERM\nstdout:\n%s", timeout, p.logs())
		return nil
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// get fetches url and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return res.StatusCode, string(b)
}

// post sends body as JSON and returns status and body.
func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	res, err := httpClient.Post(url, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	return res.StatusCode, string(b)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// logSink collects botd's JSON log lines and tells when one appears.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	pw    *io.PipeWriter
	added chan struct{}
}

func newLogSink() *logSink {
	pr, pw := io.Pipe()
	s := &logSink{pw: pw, added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			s.mu.Lock()
			s.lines = append(s.lines, m)
			s.raw.Write(sc.Bytes())
			s.raw.WriteByte('\n')
			s.mu.Unlock()
			select {
			case s.added <- struct{}{}:
			default:
			}
		}
	}()
	return s
}

func (s *logSink) Write(p []byte) (int, error) { return s.pw.Write(p) }

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// wait returns the first line for which match is true, waiting for it.
func (s *logSink) wait(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if match(l) {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no log line: %s\n%s", what, s.String())
		}
	}
}

func (s *logSink) first() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return nil
	}
	return s.lines[0]
}

type botd struct {
	public, admin string
	logs          *logSink
	stop          func() error
}

// start runs botd through run, as main does, on loopback ports chosen by
// the kernel, and returns its addresses from its own log.
func start(t *testing.T, env map[string]string) *botd {
	t.Helper()
	base := map[string]string{
		"BOTD_LISTEN":          "127.0.0.1:0",
		"BOTD_ADMIN_LISTEN":    "127.0.0.1:0",
		"BOTD_EMULATOR_LISTEN": "127.0.0.1:0",
		"BOTD_DATA_DIR":        t.TempDir(),
	}
	for k, v := range env {
		base[k] = v
	}
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return base[k] }, environOf(base), logs, io.Discard)
	}()
	addr := func(listener string) string {
		l := logs.wait(t, listener+" listening", func(m map[string]any) bool {
			return m["message"] == "listening" && m["listener"] == listener
		})
		return "http://" + l["addr"].(string)
	}
	b := &botd{logs: logs}
	b.public, b.admin = addr("public"), addr("admin")
	logs.wait(t, "ready", func(m map[string]any) bool { return m["message"] == "botd ready" })
	var once sync.Once
	var err error
	b.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("botd did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = b.stop() })
	return b
}

func post(t *testing.T, url string, body []byte) (int, []byte) {
	t.Helper()
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestEmulatorModeByDefault: with no credentials botd says in its first
// line that it runs against its embedded emulator, serves, and a call can
// be created through the admin API.
func TestEmulatorModeByDefault(t *testing.T) {
	b := start(t, map[string]string{"BOTD_INSTANCE": "botd-test-0"})
	first := b.logs.first()
	if first["mode"] != "emulator" || !strings.Contains(first["message"].(string), "emulator mode") {
		t.Fatalf("first log line = %v", first)
	}
	cfg := b.logs.wait(t, "effective config", func(m map[string]any) bool { return m["message"] == "effective config" })
	c := cfg["config"].(map[string]any)
	if c["BOTD_CLIENT_SECRET"] != "***" {
		t.Errorf("secret not masked in config log: %v", c["BOTD_CLIENT_SECRET"])
	}
	if code, body := get(t, b.admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz = %d: %s", code, body)
	}
	if code, _ := get(t, b.public+"/livez"); code != http.StatusOK {
		t.Fatalf("public livez = %d", code)
	}
	var m map[string]any
	_ = json.Unmarshal(testkit.Seed(t, "003_26_request.json"), &m)
	delete(m, "callbackUri")
	body, _ := json.Marshal(m)
	code, out := post(t, b.admin+"/v1/calls", body)
	if code != http.StatusCreated {
		t.Fatalf("create call = %d: %s", code, out)
	}
	var view struct {
		ID, State, CallbackURI string
	}
	_ = json.Unmarshal(out, &view)
	if view.ID == "" || view.CallbackURI != b.public+"/api/calls/botd-test-0" {
		t.Fatalf("view = %+v (public %s)", view, b.public)
	}
	if code, _ := get(t, b.admin+"/v1/calls/"+view.ID); code != http.StatusOK {
		t.Fatalf("get call = %d", code)
	}
	if err := b.stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	b.logs.wait(t, "stopped", func(m map[string]any) bool { return m["message"] == "botd stopped" })
}

func TestBadConfigStopsBotd(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"BOTD_RETENTION": "later"}, "BOTD_RETENTION"},
		{map[string]string{"BOTD_CLIENT_ID": "x"}, "BOTD_CLIENT_SECRET"},
		{map[string]string{"BOTD_PUBLIC_URL": "https://bot.contoso.com"}, "emulator mode"},
		{map[string]string{"BOTD_INSTANCE": "Botd_0"}, "BOTD_INSTANCE"},
		{map[string]string{"BOTD_DRAIN_TIMEOUT": "-1s"}, "BOTD_DRAIN_TIMEOUT"},
		{map[string]string{"BOTD_ADMIN_LISTEN": "0.0.0.0:9090"}, "BOTD_ADMIN_TOKEN"},
		{map[string]string{"BOTD_CLIENT_ID": "a", "BOTD_CLIENT_SECRET": "b", "BOTD_TENANT_ID": "c", "BOTD_PUBLIC_URL": "https://bot.contoso.com", "BOTD_INBOUND_AUTH": "off"}, "BOTD_INBOUND_AUTH"},
	} {
		err := run(context.Background(), nil, func(k string) string { return tc.env[k] }, environOf(tc.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want it to name %s", tc.env, err, tc.want)
		}
	}
	err := run(context.Background(), []string{"-no-such-flag"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	if err == nil {
		t.Error("an unknown flag must stop botd")
	}
}

// TestShutdownDrains: on shutdown botd finishes the callback it is reading
// and the outbound work already queued, then exits cleanly.
func TestShutdownDrains(t *testing.T) {
	emu := emulator.New(emulator.Options{TenantID: "t-1", ClientID: "app-1", ClientSecret: "s3cr3t-value"})
	emu.Start()
	defer emu.Close()
	b := start(t, map[string]string{
		"BOTD_CLIENT_ID": "app-1", "BOTD_CLIENT_SECRET": "s3cr3t-value", "BOTD_TENANT_ID": "t-1",
		"BOTD_GRAPH_BASE_URL": emu.GraphURL(), "BOTD_TOKEN_URL": emu.TokenURL(),
		"BOTD_PUBLIC_URL": "http://127.0.0.1:9", "BOTD_SHUTDOWN_TIMEOUT": "20s",
		// The test posts unsigned callbacks; botd allows that only because
		// its public listener is on loopback.
		"BOTD_INBOUND_AUTH": "off",
	})
	id := emu.PutCall(model.Call{State: model.StateIncoming, Direction: "incoming"})
	// Graph is slow to take the answer: it is still in flight at shutdown.
	emu.Script(emulator.RouteAnswer, emulator.Fault{Delay: 200 * time.Millisecond})

	// A callback whose body is still arriving when shutdown starts. With
	// "Expect: 100-continue" the server says "100 Continue" once the
	// handler reads the body, so the test knows the request is in flight.
	body := []byte(fmt.Sprintf(`{"value":[{"changeType":"created","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"incoming","direction":"incoming"}}]}`, id, id))
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.public, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/calls HTTP/1.1\r\nHost: botd\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v %v", cont, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	b.logs.wait(t, "shutdown requested", func(m map[string]any) bool { return m["message"] == "shutdown requested" })
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight callback failed: %v\n%s", err, b.logs.String())
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight callback answered %d", res.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v", err)
	}
	if n := len(emu.Requests(emulator.RouteAnswer)); n != 1 {
		t.Fatalf("the queued answer was not sent before exit: %d answers", n)
	}
	b.logs.wait(t, "answer done", func(m map[string]any) bool {
		return m["message"] == "flow action" && m["action"] == "answer"
	})
	if strings.Contains(b.logs.String(), "s3cr3t-value") {
		t.Fatal("the client secret reached the log")
	}
}

// TestDrainWaitsForLiveCalls: told to stop, a draining replica turns
// unready at once but keeps serving its live call until it ends.
func TestDrainWaitsForLiveCalls(t *testing.T) {
	b := start(t, map[string]string{"BOTD_INSTANCE": "botd-0", "BOTD_DRAIN_TIMEOUT": "5m", "BOTD_INBOUND_AUTH": "off"})
	note := func(state string) []byte {
		return []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/call-1","resourceData":{"@odata.type":"#microsoft.graph.call","id":"call-1","state":"` + state + `"}}]}`)
	}
	if code, out := post(t, b.public+"/api/calls/botd-0", note("established")); code != http.StatusAccepted {
		t.Fatalf("callback = %d: %s", code, out)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	b.logs.wait(t, "draining", func(m map[string]any) bool { return m["message"] == "draining: waiting for live calls to end" })
	if code, _ := get(t, b.admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining = %d", code)
	}
	select {
	case err := <-stopped:
		t.Fatalf("botd exited with a live call: %v", err)
	default:
	}
	// The call still gets its notifications, and ends.
	if code, out := post(t, b.public+"/api/calls/botd-0", note("terminated")); code != http.StatusAccepted {
		t.Fatalf("callback while draining = %d: %s", code, out)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v", err)
	}
	b.logs.wait(t, "drained", func(m map[string]any) bool { return m["message"] == "drained: no live calls" })
}

// TestLogLinesAreHeldAndStopWritesThem: with BOTD_LOG_FLUSH holding info
// lines, a callback's access-log line is not written when its response
// arrives, and stopping botd writes it, with every other line, in order.
func TestLogLinesAreHeldAndStopWritesThem(t *testing.T) {
	const hold = 10 * time.Second
	addrs := make([]string, 2)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	env := map[string]string{
		"BOTD_LISTEN": addrs[0], "BOTD_ADMIN_LISTEN": addrs[1], "BOTD_EMULATOR_LISTEN": "127.0.0.1:0",
		"BOTD_DATA_DIR": t.TempDir(), "BOTD_INBOUND_AUTH": "off", "BOTD_LOG_FLUSH": hold.String(),
	}
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, environOf(env), logs, io.Discard)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get("http://" + addrs[1] + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("botd not ready in 20 s:\n%s", logs.String())
		}
	}
	body := testkit.Seed(t, "001_04_notification.json")
	var n struct {
		Value []struct{ ResourceURL string }
	}
	_ = json.Unmarshal(body, &n)
	callID := strings.TrimPrefix(n.Value[0].ResourceURL, "/communications/calls/")
	callID, _, _ = strings.Cut(callID, "/")
	if code, out := post(t, "http://"+addrs[0]+"/api/calls", body); code != http.StatusAccepted {
		t.Fatalf("callback = %d: %s", code, out)
	}
	isAccess := func(m map[string]any) bool { return m["message"] == "request" && m["call_id"] == callID }
	held := time.Since(began) < hold*8/10 // else the interval may have passed: nothing to tell
	if held {
		logs.mu.Lock()
		for _, l := range logs.lines {
			if isAccess(l) {
				logs.mu.Unlock()
				t.Fatalf("the access-log line was written before the %v interval passed or a stop:\n%s", hold, logs.String())
			}
		}
		logs.mu.Unlock()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	logs.wait(t, "botd stopped", func(m map[string]any) bool { return m["message"] == "botd stopped" })
	var order []string
	logs.mu.Lock()
	for _, l := range logs.lines {
		switch {
		case isAccess(l):
			order = append(order, "request")
		case l["message"] == "botd ready", l["message"] == "shutdown requested", l["message"] == "botd stopped":
			order = append(order, l["message"].(string))
		}
	}
	logs.mu.Unlock()
	if got := strings.Join(order, ", "); got != "botd ready, request, shutdown requested, botd stopped" {
		t.Fatalf("lines after the stop: %s; want botd ready, request, shutdown requested, botd stopped (held: %v)\n%s", got, held, logs.String())
	}
}

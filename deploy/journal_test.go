package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botd/botd/internal/testkit"
)

// startEmulatorProc runs "botd emulator" from the built binary as its own
// process, so that Graph outlives the botd under test, and returns the
// environment line it prints for a botd.
func startEmulatorProc(t *testing.T, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(botdBinary(t), append([]string{"emulator", "-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = []string{}
	stderr := &testkit.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start botd emulator: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	const prefix = "point a botd at this emulator: "
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				if s, _ := m["message"].(string); strings.HasPrefix(s, prefix) {
					found <- strings.TrimPrefix(s, prefix)
				}
			}
		}
	}()
	var line string
	select {
	case line = <-found:
	case <-time.After(20 * time.Second):
		t.Fatalf("botd emulator printed no env line; stderr:\n%s", stderr)
	}
	env := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// freePort is a loopback port free a moment ago: the callback address
// botd must keep across its restart.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// metricValue reads one series without labels from a /metrics page.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	_, body := get(t, url)
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s on %s", name, url)
	return 0
}

type emuCall struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Participants []struct {
		ID    string `json:"id"`
		IsBot bool   `json:"isBot"`
	} `json:"participants"`
}

type emuRequest struct {
	Route  string `json:"route"`
	CallID string `json:"callId"`
}

func emulatorState(t *testing.T, graph string) ([]emuCall, []emuRequest) {
	t.Helper()
	var calls struct {
		Calls []emuCall `json:"calls"`
	}
	_, body := get(t, graph+"/emulator/calls")
	if err := json.Unmarshal([]byte(body), &calls); err != nil {
		t.Fatalf("emulator calls: %v: %s", err, body)
	}
	var reqs struct {
		Requests []emuRequest `json:"requests"`
		Dropped  int          `json:"dropped"`
	}
	_, body = get(t, graph+"/emulator/requests")
	if err := json.Unmarshal([]byte(body), &reqs); err != nil || reqs.Dropped != 0 {
		t.Fatalf("emulator requests (%d dropped): %v", reqs.Dropped, err)
	}
	return calls.Calls, reqs.Requests
}

type botCall struct {
	ID           string            `json:"id"`
	State        string            `json:"state"`
	Participants []json.RawMessage `json:"participants"`
	Operations   []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"operations"`
}

// startOp posts an operation through the admin API and returns its id.
func startOp(t *testing.T, url string, body []byte) string {
	t.Helper()
	code, out := post(t, url, body)
	var op struct {
		ID string `json:"id"`
	}
	if code != http.StatusAccepted || json.Unmarshal([]byte(out), &op) != nil || op.ID == "" {
		t.Fatalf("POST %s: %d %s", url, code, out)
	}
	return op.ID
}

func botdCall(t *testing.T, admin, id string) botCall {
	t.Helper()
	code, body := get(t, admin+"/v1/calls/"+id)
	var c botCall
	if code != http.StatusOK || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("GET call %s: %d %s", id, code, body)
	}
	return c
}

// noAnswerCall and noAnswerInvite ring a number that never answers (the
// emulator's 9999 suffix).
const (
	noAnswerCall = `{"targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
		"identity": {"@odata.type": "#microsoft.graph.identitySet", "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+15550009999"}}}],
		"requestedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}`
	noAnswerInvite = `{"participants": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
		"identity": {"@odata.type": "#microsoft.graph.identitySet", "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+15550019999"}}}]}`
)

// holdFlow starts on every established call and waits for a key.
const holdFlow = `name: hold
trigger: {on: [established]}
steps:
  wait:
    timeout: 1h
    on:
      - event: tone
        end: completed
`

type flowRun struct {
	ID     string            `json:"id"`
	Status string            `json:"status"`
	Step   string            `json:"step"`
	Calls  map[string]string `json:"calls"`
}

// runsByCall lists the running runs of the hold flow by their call.
func runsByCall(t *testing.T, admin string) map[string]flowRun {
	t.Helper()
	_, body := get(t, admin+"/v1/runs?flow=hold&status=running")
	var page struct {
		Value []flowRun `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("runs: %v: %s", err, body)
	}
	out := map[string]flowRun{}
	for _, r := range page.Value {
		out[r.Calls["call"]] = r
	}
	return out
}

// TestCallsSurviveKill9: botd, through its real binary, with the emulator
// as a separate process, holds established calls; it is killed with
// SIGKILL; while it is down the other party leaves some of the calls;
// restarted on the same data directory, botd has every call back, with
// the state and roster Graph holds, sends keepAlive for each live call
// again, and has created no call twice.
func TestCallsSurviveKill9(t *testing.T) {
	const n = 100
	port := freePort(t)
	emu := startEmulatorProc(t, "-time-scale", "0.02", "-seed", "7", "-bot-callback", fmt.Sprintf("http://127.0.0.1:%d/api/calls", port))
	graph := strings.TrimPrefix(emu["BOTD_GRAPH"], "emulator:")
	// A flow run holds each established call, waiting for a key.
	flowFile := filepath.Join(t.TempDir(), "hold.yaml")
	if err := os.WriteFile(flowFile, []byte(holdFlow), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"BOTD_LISTEN=127.0.0.1:" + strconv.Itoa(port), "BOTD_ADMIN_LISTEN=127.0.0.1:0", "BOTD_INSTANCE=" + testInstance,
		"BOTD_GRAPH=" + emu["BOTD_GRAPH"], "BOTD_PUBLIC_URL=" + emu["BOTD_PUBLIC_URL"],
		"BOTD_DATA_DIR=" + t.TempDir(), "BOTD_KEEPALIVE_INTERVAL=5s", "BOTD_FLOWS=" + flowFile,
	}
	bot := startBotd(t, env...)
	admin := "http://" + bot.adminAddr
	body, err := os.ReadFile(filepath.Join(repoRoot, "examples", "create-p2p-service-media.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		code, out := post(t, admin+"/v1/calls", body)
		var c botCall
		if code != http.StatusCreated || json.Unmarshal([]byte(out), &c) != nil || c.ID == "" {
			t.Fatalf("create call %d: %d %s", i, code, out)
		}
		ids[i] = c.ID
	}
	testkit.Eventually(t, "every call established", func() bool {
		for _, id := range ids {
			if botdCall(t, admin, id).State != "established" {
				return false
			}
		}
		return true
	})
	var runsBefore map[string]flowRun
	testkit.Eventually(t, "a flow run waiting on every call", func() bool {
		runsBefore = runsByCall(t, admin)
		return len(runsBefore) == n
	})
	// Every fourth call but two has a long prompt playing when botd dies.
	prompt, err := os.ReadFile(filepath.Join(repoRoot, "examples", "play-prompt.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pp struct {
		Prompts []json.RawMessage `json:"prompts"`
	}
	if err := json.Unmarshal(prompt, &pp); err != nil {
		t.Fatal(err)
	}
	for len(pp.Prompts) < 20 {
		pp.Prompts = append(pp.Prompts, pp.Prompts[0])
	}
	prompt, _ = json.Marshal(pp)
	playing := map[string]string{} // call id -> operation id
	for i, id := range ids {
		if i%4 == 2 {
			playing[id] = startOp(t, admin+"/v1/calls/"+id+"/playPrompt", prompt)
		}
	}
	// The others of every fourth but three have an invitation ringing, to
	// a number that does not answer; and ten more calls are still ringing
	// such a number when botd dies.
	inviting := map[string]string{}
	for i, id := range ids {
		if i%4 == 3 {
			inviting[id] = startOp(t, admin+"/v1/calls/"+id+"/participants/invite", []byte(noAnswerInvite))
		}
	}
	ringing := map[string]bool{}
	for range 10 {
		code, out := post(t, admin+"/v1/calls", []byte(noAnswerCall))
		var c botCall
		if code != http.StatusCreated || json.Unmarshal([]byte(out), &c) != nil || c.State != "establishing" {
			t.Fatalf("create a call to a number that does not answer: %d %s", code, out)
		}
		ringing[c.ID] = true
	}
	testkit.Eventually(t, "every change written to the journal", func() bool {
		return metricValue(t, admin+"/metrics", "botd_journal_pending_records") == 0 &&
			metricValue(t, admin+"/metrics", "botd_journal_records_written_total") >= n
	})

	if err := bot.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = bot.wait()

	// While botd is down, the far side hangs up every fourth call, and
	// in every fourth but one the other party leaves, leaving the bot
	// alone in it.
	calls, _ := emulatorState(t, graph)
	ended, alone := map[string]bool{}, map[string]bool{}
	del := func(path string) {
		req, _ := http.NewRequest(http.MethodDelete, graph+path, nil)
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("DELETE %s: %v", path, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d", path, res.StatusCode)
		}
	}
	for i, id := range ids {
		switch i % 4 {
		case 0:
			del("/emulator/calls/" + id)
			ended[id] = true
		case 1:
			for _, c := range calls {
				for _, p := range c.Participants {
					if c.ID == id && !p.IsBot {
						del("/emulator/calls/" + id + "/participants/" + p.ID)
						alone[id] = true
					}
				}
			}
		}
	}
	if len(ended) != n/4 || len(alone) != n/4 {
		t.Fatalf("%d calls ended and %d left alone, want %d of each", len(ended), len(alone), n/4)
	}
	_, reqs := emulatorState(t, graph)
	before := len(reqs) // the emulator's requests up to the restart
	restarted := time.Now()
	bot = startBotd(t, env...)
	admin = "http://" + bot.adminAddr
	if !strings.Contains(bot.logs(), `"message":"recovery done"`) {
		t.Fatalf("ready before recovery was done:\n%s", bot.logs())
	}
	calls, _ = emulatorState(t, graph)
	held := map[string]emuCall{}
	for _, c := range calls {
		held[c.ID] = c
	}
	for _, id := range ids {
		c := botdCall(t, admin, id)
		if ended[id] {
			if c.State != "terminated" {
				t.Errorf("call %s, ended while botd was down: %s, want terminated (the emulator: %s)", id, c.State, held[id].State)
			}
			continue
		}
		want := 2
		if alone[id] {
			want = 1
		}
		if c.State != "established" || len(c.Participants) != want || len(held[id].Participants) != want {
			t.Errorf("call %s: %s with %d participants; Graph holds %s with %d", id, c.State, len(c.Participants), held[id].State, len(held[id].Participants))
		}
	}
	// Each live call's flow run is back, the same run at the same step.
	runsAfter := runsByCall(t, admin)
	for _, id := range ids {
		if ended[id] {
			continue
		}
		if b, a := runsBefore[id], runsAfter[id]; a.ID != b.ID || a.Step != "wait" || a.Status != "running" {
			t.Errorf("call %s: flow run %+v before the kill, %+v after", id, b, a)
		}
	}
	// The invitations and the calls that were ringing end, as Graph
	// ends them: the number does not answer.
	testkit.Eventually(t, "every invitation ringing at the kill ended", func() bool {
		for id, opID := range inviting {
			final := false
			for _, op := range botdCall(t, admin, id).Operations {
				if op.ID == opID && (op.Status == "failed" || op.Status == "completed") {
					final = true
				}
			}
			if !final {
				return false
			}
		}
		return true
	})
	testkit.Eventually(t, "every call ringing at the kill ended", func() bool {
		for id := range ringing {
			if botdCall(t, admin, id).State != "terminated" {
				return false
			}
		}
		return true
	})
	// The prompts that were playing end once each: read from Graph by
	// the recovery, or by their notification.
	testkit.Eventually(t, "every prompt in flight at the kill completed", func() bool {
		for id, opID := range playing {
			done := false
			for _, op := range botdCall(t, admin, id).Operations {
				if op.ID == opID && op.Status == "completed" {
					done = true
				}
			}
			if !done {
				return false
			}
		}
		return true
	})
	if got := metricValue(t, admin+"/metrics", `botd_call_operations_total{status="completed",type="playPrompt"}`); got != float64(len(playing)) {
		t.Errorf("the restarted botd completed %v playPrompts, want %d, once each", got, len(playing))
	}
	// keepAlive resumes: each live call gets one from the new botd.
	testkit.Eventually(t, "a keepAlive for every live call after the restart", func() bool {
		_, reqs := emulatorState(t, graph)
		kept := map[string]bool{}
		for _, r := range reqs[before:] {
			if r.Route == "keep_alive" {
				kept[r.CallID] = true
			}
		}
		for _, id := range ids {
			if !ended[id] && !kept[id] {
				return false
			}
		}
		return true
	})
	// Nothing was sent twice: one create per call, and no live call
	// reached the emulator's keepAlive expiry.
	calls, reqs = emulatorState(t, graph)
	sent := map[string]int{}
	for _, r := range reqs {
		sent[r.Route]++
	}
	if sent["create_call"] != n+len(ringing) || sent["play_prompt"] != len(playing) || sent["invite"] != len(inviting) {
		t.Errorf("the emulator got %d create calls for %d calls, %d playPrompts for %d and %d invites for %d",
			sent["create_call"], n+len(ringing), sent["play_prompt"], len(playing), sent["invite"], len(inviting))
	}
	for _, c := range calls {
		if !ended[c.ID] && !ringing[c.ID] && c.State != "established" {
			t.Errorf("call %s is %s on the emulator", c.ID, c.State)
		}
	}
	t.Logf("restart to ready: %s; Graph read %d operations at recovery", time.Since(restarted).Round(time.Millisecond), sent["get_operation"])
}

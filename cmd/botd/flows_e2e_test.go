package main

// End-to-end tests of the shipped example flows (examples/flows): botd
// started through run() with BOTD_FLOWS, Graph played by the embedded
// emulator with scripted people, runs started and read through the admin
// API, and the Graph requests botd sent counted in the emulator's record.
// Each runs again under the emulator's duplicate, reorder and throttle
// faults: a duplicate or stale notification must never send an action
// twice.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/model"
)

// e2eFlowFaults are the fault mixes each example runs under.
var e2eFlowFaults = []struct{ name, faults string }{
	{"no faults", ""},
	{"duplicate and reorder", "duplicate=0.5,reorder=0.5"},
	{"throttle", "throttle=0.3"},
}

// e2eFlowsDir is examples/flows copied, with the IVR's key timeout (a
// triggered flow runs on its defaults) cut from 10 s to 2 s.
func e2eFlowsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../../examples/flows/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("example flows %v: %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if filepath.Base(f) == "ivr.yaml" {
			const from = "keyTimeout: {type: duration, default: 10s"
			if !strings.Contains(s, from) {
				t.Fatalf("ivr.yaml has no %q", from)
			}
			s = strings.Replace(s, from, "keyTimeout: {type: duration, default: 2s", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// e2eStartFlows runs botd in emulator mode with the example flows and the
// emulator's faults.
func e2eStartFlows(t *testing.T, faults string, env map[string]string) *e2eBot {
	t.Helper()
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["BOTD_FLOWS"] = e2eFlowsDir(t)
	if faults != "" {
		env["BOTD_EMULATOR_FAULTS"] = faults
	}
	return e2eStartEmbedded(t, env)
}

func (b *e2eBot) emuURL() string { return strings.TrimSuffix(b.incoming, "/emulator/incoming") }

// e2ePerson scripts how the person with that number answers and presses.
func e2ePerson(t *testing.T, b *e2eBot, number string, script map[string]any) {
	t.Helper()
	code, out, err := e2eDo(http.MethodPut, b.emuURL()+"/emulator/people/"+number, script)
	if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
		t.Fatalf("PUT /emulator/people/%s: %d %s %v", number, code, out, err)
	}
}

func e2eStartRun(t *testing.T, b *e2eBot, flow string, params map[string]any) flows.RunView {
	t.Helper()
	code, out, err := e2eDo(http.MethodPost, b.admin+"/v1/flows/"+flow+"/runs", map[string]any{"parameters": params})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST /v1/flows/%s/runs = %d %s %v", flow, code, out, err)
	}
	var v flows.RunView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func e2eGetRun(t *testing.T, b *e2eBot, id string) flows.RunView {
	t.Helper()
	code, out, err := e2eDo(http.MethodGet, b.admin+"/v1/runs/"+id, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/runs/%s = %d %s %v", id, code, out, err)
	}
	var v flows.RunView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// e2eRunEnded waits for the run to end and returns it.
func e2eRunEnded(t *testing.T, b *e2eBot, id string) flows.RunView {
	t.Helper()
	var v flows.RunView
	e2eEventually(t, "run "+id+" ends", func() error {
		v = e2eGetRun(t, b, id)
		if v.Status == flows.StatusRunning {
			return fmt.Errorf("still running in step %s (history %+v)", v.Step, v.History)
		}
		return nil
	})
	return v
}

// e2eRunAt waits for the run to be in the step.
func e2eRunAt(t *testing.T, b *e2eBot, id, step string) flows.RunView {
	t.Helper()
	var v flows.RunView
	e2eEventually(t, "run "+id+" in step "+step, func() error {
		v = e2eGetRun(t, b, id)
		if v.Status != flows.StatusRunning {
			return fmt.Errorf("%w: run %s (%s) in %s: %+v", errE2EStop, v.Status, v.Error, v.Step, v.History)
		}
		if v.Step != step {
			return fmt.Errorf("in step %s", v.Step)
		}
		return nil
	})
	return v
}

// e2eEventually polls cond until it returns nil, failing after e2eBound
// or at once when it returns errE2EStop.
func e2eEventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(e2eBound)
	for {
		err := cond()
		switch {
		case err == nil:
			return
		case errors.Is(err, errE2EStop), time.Now().After(deadline):
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// emuRequest is one entry of GET /emulator/requests.
type emuRequest struct {
	Route           string          `json:"route"`
	CallID          string          `json:"callId"`
	ClientRequestID string          `json:"clientRequestId"`
	Body            json.RawMessage `json:"body"`
}

func e2eEmuRequests(t *testing.T, b *e2eBot, route string) []emuRequest {
	t.Helper()
	code, out, err := e2eDo(http.MethodGet, b.emuURL()+"/emulator/requests?route="+route, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /emulator/requests = %d %v", code, err)
	}
	var r struct {
		Requests []emuRequest `json:"requests"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.Requests
}

// e2eSent counts the actions botd sent on a route: its requests by
// client-request-id, so that a retry after a 429 (the same request sent
// again) counts once.
func e2eSent(t *testing.T, b *e2eBot, route string) int {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range e2eEmuRequests(t, b, route) {
		if r.ClientRequestID == "" {
			t.Errorf("a %s request without client-request-id", route)
		}
		seen[r.ClientRequestID] = true
	}
	return len(seen)
}

// e2eJoinBridge joins a meeting through the admin API: the bridge the
// escalation moves people into.
func e2eJoinBridge(t *testing.T, b *e2eBot) callstate.CallView {
	t.Helper()
	raw, err := os.ReadFile("../../examples/join-meeting-id.json")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	v := e2eCreateCall(t, b, body)
	return e2eWaitCall(t, b, v.ID, "bridge established", func(v *callstate.CallView) error {
		if v.State != model.StateEstablished || len(v.Participants) < 2 {
			return fmt.Errorf("state %s, %d participants", v.State, len(v.Participants))
		}
		return nil
	})
}

// TestE2EFlowEscalation: three targets, the first never answers, the
// second presses 2, the third presses 1. The run ends completed with the
// third acknowledged and every attempt's outcome, the bridge roster holds
// the third, the other calls are terminated, and botd sent exactly one
// invite: with replacesCallId, the third's peer-to-peer call.
func TestE2EFlowEscalation(t *testing.T) {
	t.Parallel()
	for i, fc := range e2eFlowFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			b := e2eStartFlows(t, fc.faults, nil)
			bridge := e2eJoinBridge(t, b)
			targets := []string{fmt.Sprintf("+1425555%d201", i), fmt.Sprintf("+1425555%d202", i), fmt.Sprintf("+1425555%d203", i)}
			e2ePerson(t, b, targets[0], map[string]any{"answer": "noAnswer"})
			e2ePerson(t, b, targets[1], map[string]any{"answer": "accept", "tones": "2", "tonesAfter": "200ms"})
			e2ePerson(t, b, targets[2], map[string]any{"answer": "accept", "tones": "1", "tonesAfter": "200ms"})
			run := e2eStartRun(t, b, "escalation", map[string]any{
				"targets": targets, "bridge": bridge.ID, "prompt": "https://cdn.contoso.com/incident.wav",
				"ringTimeout": "2s", "ackTimeout": "5s",
			})
			v := e2eRunEnded(t, b, run.ID)
			if v.Status != flows.StatusCompleted {
				t.Fatalf("run %s (%s), history %+v", v.Status, v.Error, v.History)
			}
			if v.Outputs["acknowledgedBy"] != targets[2] {
				t.Errorf("acknowledgedBy %v, want %s", v.Outputs["acknowledgedBy"], targets[2])
			}
			attempts, _ := json.Marshal(v.Outputs["attempts"])
			want, _ := json.Marshal([]map[string]string{
				{"target": targets[0], "outcome": "unanswered"},
				{"target": targets[1], "outcome": "pressed 2"},
				{"target": targets[2], "outcome": "acknowledged"},
			})
			if string(attempts) != string(want) {
				t.Errorf("attempts %s, want %s", attempts, want)
			}
			e2eWaitCall(t, b, bridge.ID, "the bridge roster holds the third target", func(v *callstate.CallView) error {
				if e2ePhone(v, targets[2]) == nil {
					return fmt.Errorf("roster %v", e2eKeys(v.Participants))
				}
				return nil
			})
			// Every call the run placed ends: the third's is replaced by
			// the move into the bridge.
			if len(v.Touched) != 4 || !slices.Contains(v.Touched, bridge.ID) {
				t.Errorf("run touched %v, want the bridge and three calls", v.Touched)
			}
			for _, id := range v.Touched {
				if id == bridge.ID {
					continue
				}
				e2eWaitCall(t, b, id, "the target's call terminated", func(v *callstate.CallView) error {
					if v.State != model.StateTerminated {
						return fmt.Errorf("state %s", v.State)
					}
					return nil
				})
			}
			if bv, _, _ := e2eGetCall(b, bridge.ID); bv.State != model.StateEstablished {
				t.Errorf("bridge %s, want it established", bv.State)
			}
			invites := e2eEmuRequests(t, b, "invite")
			if n := e2eSent(t, b, "invite"); n != 1 {
				t.Fatalf("%d invites sent, want 1", n)
			}
			var inv struct {
				Participants []struct {
					ReplacesCallID string `json:"replacesCallId"`
				} `json:"participants"`
			}
			if err := json.Unmarshal(invites[0].Body, &inv); err != nil || len(inv.Participants) != 1 || invites[0].CallID != bridge.ID ||
				inv.Participants[0].ReplacesCallID != v.Calls["peer"] {
				t.Errorf("invite to %s: %s, want one participant replacing %s", invites[0].CallID, invites[0].Body, v.Calls["peer"])
			}
			if n := e2eSent(t, b, "create_call"); n != 4 {
				t.Errorf("%d calls created, want the bridge and three", n)
			}
			if n := e2eSent(t, b, "play_prompt"); n != 2 {
				t.Errorf("%d prompts played, want 2 (one per answered target)", n)
			}
			if n := e2eMetric(t, b, "botd_flow_runs_ended_total", `flow="escalation"`, `status="completed"`); n != 1 {
				t.Errorf("runs ended completed = %v", n)
			}
		})
	}
}

// e2eIncomingRun makes the caller call the bot and returns the IVR run
// the call started.
func e2eIncomingRun(t *testing.T, b *e2eBot, caller string) flows.RunView {
	t.Helper()
	code, out, err := e2eDo(http.MethodPost, b.incoming, map[string]any{"from": map[string]any{"phone": caller}})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST /emulator/incoming = %d %s %v", code, out, err)
	}
	var call model.Call
	if err := json.Unmarshal(out, &call); err != nil {
		t.Fatal(err)
	}
	var run flows.RunView
	e2eEventually(t, "the call names its run", func() error {
		code, out, err := e2eDo(http.MethodGet, b.admin+"/v1/calls/"+call.ID, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET call = %d %v", code, err)
		}
		var v struct {
			Runs []string `json:"runs"`
		}
		if err := json.Unmarshal(out, &v); err != nil || len(v.Runs) == 0 {
			return fmt.Errorf("no run: %s", out)
		}
		run = e2eGetRun(t, b, v.Runs[0])
		return nil
	})
	if run.Flow != "ivr" || run.Calls["call"] != call.ID {
		t.Fatalf("run %s of %s holds %v, want ivr holding %s", run.ID, run.Flow, run.Calls, call.ID)
	}
	return run
}

// TestE2EFlowIVR: the hotline answers with a menu; 2 invites the
// operator into the call, 1 transfers the caller to sales, and no key
// twice plays the goodbye and hangs up.
func TestE2EFlowIVR(t *testing.T) {
	t.Parallel()
	for i, fc := range e2eFlowFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			// Graph's 15 s to answer an incoming call becomes 4.5 s: room
			// for an answer throttled twice (Retry-After 1 s, not scaled).
			b := e2eStartFlows(t, fc.faults, map[string]string{"BOTD_EMULATOR_TIME_SCALE": "0.3"})
			// The ivr flow's defaults: the operator and sales numbers.
			e2ePerson(t, b, "+14255550101", map[string]any{"answer": "accept"})
			e2ePerson(t, b, "+14255550100", map[string]any{"answer": "accept"})

			t.Run("2 invites the operator", func(t *testing.T) {
				caller := fmt.Sprintf("+1425556%d302", i)
				e2ePerson(t, b, caller, map[string]any{"tones": "2", "tonesAfter": "200ms"})
				run := e2eIncomingRun(t, b, caller)
				e2eRunAt(t, b, run.ID, "connected")
				id := run.Calls["call"]
				e2eWaitCall(t, b, id, "the operator is in the call", func(v *callstate.CallView) error {
					if e2ePhone(v, "+14255550101") == nil || e2ePhone(v, caller) == nil {
						return fmt.Errorf("roster %v", e2eKeys(v.Participants))
					}
					return nil
				})
				if code, out, err := e2eDo(http.MethodDelete, b.admin+"/v1/calls/"+id, nil); err != nil || code != http.StatusAccepted {
					t.Fatalf("hang up = %d %s %v", code, out, err)
				}
				v := e2eRunEnded(t, b, run.ID)
				if v.Status != flows.StatusCompleted || v.Outputs["choice"] != "operator" || v.Outputs["caller"] != id {
					t.Errorf("run %s (%s) outputs %v", v.Status, v.Error, v.Outputs)
				}
			})
			t.Run("1 transfers to sales", func(t *testing.T) {
				caller := fmt.Sprintf("+1425556%d301", i)
				e2ePerson(t, b, caller, map[string]any{"tones": "1", "tonesAfter": "200ms"})
				run := e2eIncomingRun(t, b, caller)
				v := e2eRunEnded(t, b, run.ID)
				if v.Status != flows.StatusCompleted || v.Outputs["choice"] != "sales" {
					t.Errorf("run %s (%s) outputs %v history %+v", v.Status, v.Error, v.Outputs, v.History)
				}
			})
			t.Run("no key twice hangs up", func(t *testing.T) {
				caller := fmt.Sprintf("+1425556%d300", i)
				e2ePerson(t, b, caller, map[string]any{"answer": "accept"})
				run := e2eIncomingRun(t, b, caller)
				v := e2eRunEnded(t, b, run.ID)
				if v.Status != flows.StatusCompleted || v.Outputs["choice"] != "" {
					t.Errorf("run %s (%s) outputs %v history %+v", v.Status, v.Error, v.Outputs, v.History)
				}
				var steps []string
				for _, h := range v.History {
					steps = append(steps, h.To)
				}
				if want := []string{"answer", "listen", "menu", "menu", "goodbye", "hangup", "end"}; !slices.Equal(steps, want) {
					t.Errorf("steps %v, want %v", steps, want)
				}
			})
			// Each of the three calls was answered once, the operator
			// invited once, the caller transferred once, and one call hung
			// up by the flow (the operator's by the test).
			for route, want := range map[string]int{"answer": 3, "invite": 1, "transfer": 1, "delete_call": 2, "subscribe_to_tone": 3} {
				if n := e2eSent(t, b, route); n != want {
					t.Errorf("%s sent %d times, want %d", route, n, want)
				}
			}
		})
	}
}

// TestE2EFlowMeetingGuard: the bot joins the meeting, sets the recording
// status and plays the notice; when everyone else has left and the bot has
// been alone for aloneTimeout, it hangs up.
func TestE2EFlowMeetingGuard(t *testing.T) {
	t.Parallel()
	for _, fc := range e2eFlowFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			b := e2eStartFlows(t, fc.faults, nil)
			run := e2eStartRun(t, b, "meeting-guard", map[string]any{"joinMeetingId": "1234567", "passcode": "psw123", "aloneTimeout": "1s"})
			v := e2eRunAt(t, b, run.ID, "watch")
			id := v.Calls["call"]
			call := e2eWaitCall(t, b, id, "attendees in the roster", func(v *callstate.CallView) error {
				if len(v.Participants) < 3 {
					return fmt.Errorf("%d participants", len(v.Participants))
				}
				return nil
			})
			for _, p := range call.Participants {
				if p.ID == call.MyParticipantID {
					continue
				}
				if code, out, err := e2eDo(http.MethodDelete, b.emuURL()+"/emulator/calls/"+id+"/participants/"+p.ID, nil); err != nil || code != http.StatusNoContent {
					t.Fatalf("leave %s = %d %s %v", p.ID, code, out, err)
				}
			}
			v = e2eRunEnded(t, b, run.ID)
			if v.Status != flows.StatusCompleted || v.Outputs["meeting"] != id {
				t.Errorf("run %s (%s) outputs %v history %+v", v.Status, v.Error, v.Outputs, v.History)
			}
			var steps []string
			for _, h := range v.History {
				steps = append(steps, h.To)
			}
			if n := len(steps); n < 3 || steps[n-3] != "alone" || steps[n-2] != "leave" || steps[n-1] != "end" {
				t.Errorf("steps %v, want alone, leave, end last", steps)
			}
			e2eWaitCall(t, b, id, "the bot left", func(v *callstate.CallView) error {
				if v.State != model.StateTerminated {
					return fmt.Errorf("state %s", v.State)
				}
				return nil
			})
			for route, want := range map[string]int{"create_call": 1, "update_recording_status": 1, "play_prompt": 1, "delete_call": 1} {
				if n := e2eSent(t, b, route); n != want {
					t.Errorf("%s sent %d times, want %d", route, n, want)
				}
			}
			var rec struct {
				Status string `json:"status"`
			}
			if rs := e2eEmuRequests(t, b, "update_recording_status"); len(rs) == 0 || json.Unmarshal(rs[0].Body, &rec) != nil || rec.Status != "recording" {
				t.Errorf("updateRecordingStatus %+v", rs)
			}
		})
	}
}

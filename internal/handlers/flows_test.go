package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// waitSteps wait an hour for nothing: a run that stays running.
const waitSteps = `start: wait
steps:
  wait:
    timeout: 1h
    on:
      - event: timeout
        end: completed
`

// holdFlow has parameters, one required; otherFlow none; claimFlow claims
// incoming calls from +1999 (and only those).
const (
	holdFlow = `name: hold
description: waits
parameters:
  n: {type: int, required: true}
  note: {type: string, default: hi}
` + waitSteps
	otherFlow = "name: other\n" + waitSteps
	claimFlow = `name: claim
trigger:
  caller: "+1999*"
` + waitSteps
)

// flowRig is a rig with BOTD_FLOWS a directory holding holdFlow,
// otherFlow and claimFlow.
func flowRig(t *testing.T, o rigOptions) (*rig, string) {
	t.Helper()
	dir := t.TempDir()
	writeFlow(t, dir, "hold.yaml", holdFlow)
	writeFlow(t, dir, "other.yaml", otherFlow)
	writeFlow(t, dir, "claim.yaml", claimFlow)
	o.flows = dir
	if o.automation.KeepAlive == 0 {
		o.automation = automation0()
	}
	if o.incoming == "" {
		o.incoming = "ignore"
	}
	return newRig(t, o), dir
}

func writeFlow(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) startRun(flow, body string) (reply, flows.RunView) {
	r.t.Helper()
	rp := r.adminDo(http.MethodPost, "/v1/flows/"+flow+"/runs", []byte(body))
	var v flows.RunView
	if rp.status == http.StatusCreated {
		rp.decode(r.t, &v)
	}
	return rp, v
}

func (r *rig) run(id string) flows.RunView {
	r.t.Helper()
	rp := r.adminDo(http.MethodGet, "/v1/runs/"+id, nil)
	if rp.status != http.StatusOK {
		r.t.Fatalf("GET /v1/runs/%s = %d: %s", id, rp.status, rp.body)
	}
	var v flows.RunView
	rp.decode(r.t, &v)
	return v
}

// problemOf decodes a problem body and checks its status and content type.
func problemOf(t *testing.T, rp reply, status int) Problem {
	t.Helper()
	if rp.status != status {
		t.Fatalf("status %d, want %d: %s", rp.status, status, rp.body)
	}
	if ct := rp.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q", ct)
	}
	var p Problem
	rp.decode(t, &p)
	return p
}

func TestFlowsList(t *testing.T) {
	r, dir := flowRig(t, rigOptions{})
	rp := r.adminDo(http.MethodGet, "/v1/flows", nil)
	if rp.status != http.StatusOK {
		t.Fatalf("GET /v1/flows = %d: %s", rp.status, rp.body)
	}
	var list struct {
		Value []struct {
			Name       string `json:"name"`
			File       string `json:"file"`
			Start      string `json:"start"`
			Parameters []struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				Required bool   `json:"required"`
				Default  any    `json:"default"`
			} `json:"parameters"`
		} `json:"value"`
	}
	rp.decode(t, &list)
	var names []string
	for _, f := range list.Value {
		names = append(names, f.Name)
	}
	// The built-in flow is listed with the loaded ones.
	if !slices.Equal(names, []string{flows.BuiltinName, "claim", "hold", "other"}) {
		t.Fatalf("flows %v", names)
	}
	hold := list.Value[2]
	if hold.File != filepath.Join(dir, "hold.yaml") || hold.Start != "wait" {
		t.Errorf("hold file %q start %q", hold.File, hold.Start)
	}
	if len(hold.Parameters) != 2 || hold.Parameters[0].Name != "n" || hold.Parameters[0].Type != "int" || !hold.Parameters[0].Required ||
		hold.Parameters[1].Default != "hi" {
		t.Errorf("hold parameters %+v", hold.Parameters)
	}

	rp = r.adminDo(http.MethodGet, "/v1/flows/hold", nil)
	if rp.status != http.StatusOK || !strings.Contains(string(rp.body), `"name":"hold"`) {
		t.Errorf("GET /v1/flows/hold = %d: %s", rp.status, rp.body)
	}
	p := problemOf(t, r.adminDo(http.MethodGet, "/v1/flows/nosuch", nil), http.StatusNotFound)
	if !strings.Contains(p.Detail, `"nosuch"`) {
		t.Errorf("detail %q", p.Detail)
	}
}

// TestFlowsReload: a reload picks up a new file; a broken file is a 422
// listing every error with its position, and the flows stay as they were.
func TestFlowsReload(t *testing.T) {
	r, dir := flowRig(t, rigOptions{})
	writeFlow(t, dir, "third.yaml", "name: third\n"+waitSteps)
	rp := r.adminDo(http.MethodPost, "/v1/flows/reload", nil)
	if rp.status != http.StatusOK || !strings.Contains(string(rp.body), `"name":"third"`) {
		t.Fatalf("reload = %d: %s", rp.status, rp.body)
	}
	writeFlow(t, dir, "third.yaml", "name: third\nstart: nowhere\nsteps:\n  wait:\n    timeout: 1h\n    on:\n      - event: timout\n        end: completed\n")
	p := problemOf(t, r.adminDo(http.MethodPost, "/v1/flows/reload", nil), http.StatusUnprocessableEntity)
	if len(p.Errors) != 2 {
		t.Fatalf("errors %q, want 2", p.Errors)
	}
	file := filepath.Join(dir, "third.yaml")
	for i, want := range []string{file + ":2:8: ", file + ":7:16: "} {
		if !strings.HasPrefix(p.Errors[i], want) {
			t.Errorf("error %d %q, want it to start %q", i, p.Errors[i], want)
		}
	}
	if !strings.Contains(p.Errors[1], `did you mean "timeout"`) {
		t.Errorf("no suggestion in %q", p.Errors[1])
	}
	// The flows loaded before are still served.
	if rp := r.adminDo(http.MethodGet, "/v1/flows/third", nil); rp.status != http.StatusOK {
		t.Errorf("third after a failed reload = %d", rp.status)
	}
	if got := testkit.Metric(t, r.reg, "botd_flow_reloads_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("reloads error = %v", got)
	}
}

// TestFlowsReloadWithoutPath: botd started without BOTD_FLOWS has nothing
// to reload.
func TestFlowsReloadWithoutPath(t *testing.T) {
	r := newRig(t, rigOptions{automation: automation0(), incoming: "ignore"})
	p := problemOf(t, r.adminDo(http.MethodPost, "/v1/flows/reload", nil), http.StatusConflict)
	if !strings.Contains(p.Detail, "BOTD_FLOWS") {
		t.Errorf("detail %q", p.Detail)
	}
}

func TestRunStartAndCancel(t *testing.T) {
	r, _ := flowRig(t, rigOptions{})
	rp, v := r.startRun("hold", `{"parameters": {"n": 3}}`)
	if rp.status != http.StatusCreated {
		t.Fatalf("start = %d: %s", rp.status, rp.body)
	}
	if loc := rp.header.Get("Location"); loc != "/v1/runs/"+v.ID || v.ID == "" {
		t.Errorf("Location %q for run %q", loc, v.ID)
	}
	if v.Flow != "hold" || v.Status != flows.StatusRunning {
		t.Errorf("run %+v", v)
	}
	eventually(t, "the run waits in step wait", func() bool { return r.run(v.ID).Step == "wait" })
	got := r.run(v.ID)
	if got.Parameters["n"] != float64(3) || got.Parameters["note"] != "hi" {
		t.Errorf("parameters %v", got.Parameters)
	}
	if got.Deadline.IsZero() {
		t.Error("a waiting run has no deadline")
	}

	rp = r.adminDo(http.MethodDelete, "/v1/runs/"+v.ID, nil)
	if rp.status != http.StatusAccepted {
		t.Fatalf("cancel = %d: %s", rp.status, rp.body)
	}
	eventually(t, "the run is canceled", func() bool { return r.run(v.ID).Status == flows.StatusCanceled })
	p := problemOf(t, r.adminDo(http.MethodDelete, "/v1/runs/"+v.ID, nil), http.StatusConflict)
	if !strings.Contains(p.Detail, "already ended") {
		t.Errorf("detail %q", p.Detail)
	}
	problemOf(t, r.adminDo(http.MethodDelete, "/v1/runs/nosuch", nil), http.StatusNotFound)
	problemOf(t, r.adminDo(http.MethodGet, "/v1/runs/nosuch", nil), http.StatusNotFound)
	if got := testkit.Metric(t, r.reg, "botd_flow_runs_ended_total", map[string]string{"flow": "hold", "status": "canceled"}); got != 1 {
		t.Errorf("runs ended canceled = %v", got)
	}
	if got := testkit.Metric(t, r.reg, "botd_flow_runs_started_total", map[string]string{"flow": "hold", "how": "api"}); got != 1 {
		t.Errorf("runs started api = %v", got)
	}
	if !strings.Contains(r.logs.String(), `"run_id":"`+v.ID+`"`) {
		t.Error("no log line carries the run id")
	}
}

// TestRunStartRefused: each bad start is a problem naming what is wrong,
// and starts nothing.
func TestRunStartRefused(t *testing.T) {
	r, _ := flowRig(t, rigOptions{})
	for _, c := range []struct {
		name, flow, body string
		status           int
		field, rule      string
		detail           string
	}{
		{"missing", "hold", `{"parameters": {}}`, 422, "parameters.n", "parameters.required", "parameter n (int) is required"},
		{"no body", "hold", ``, 422, "parameters.n", "parameters.required", "parameter n (int) is required"},
		{"mistyped", "hold", `{"parameters": {"n": "three"}}`, 422, "parameters.n", "parameters.type", "parameter n"},
		{"fraction", "hold", `{"parameters": {"n": 1.5}}`, 422, "parameters.n", "parameters.type", "parameter n"},
		{"unknown", "hold", `{"parameters": {"n": 1, "nn": 2}}`, 422, "parameters.nn", "parameters.unknown", `flow hold has no parameter "nn"`},
		{"unknown flow", "nosuch", `{"parameters": {}}`, 404, "", "", `flow "nosuch" is not loaded`},
		{"bad JSON", "hold", `{"parameters": `, 400, "", "", "invalid JSON body"},
		{"unknown member", "hold", `{"params": {}}`, 400, "", "", "params"},
		{"not an object", "hold", `{"parameters": [1]}`, 400, "", "", `"parameters" must be an object`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rp, _ := r.startRun(c.flow, c.body)
			p := problemOf(t, rp, c.status)
			if p.Field != c.field || p.Rule != c.rule || !strings.Contains(p.Detail, c.detail) {
				t.Errorf("problem field %q rule %q detail %q, want %q %q %q", p.Field, p.Rule, p.Detail, c.field, c.rule, c.detail)
			}
		})
	}
	if rp := r.adminDo(http.MethodGet, "/v1/runs", nil); !strings.Contains(string(rp.body), `"value":[]`) {
		t.Errorf("a refused start left a run: %s", rp.body)
	}
}

// TestRunLimit: over BOTD_FLOW_MAX_RUNS a start is a 503, counted.
func TestRunLimit(t *testing.T) {
	r, _ := flowRig(t, rigOptions{maxRuns: 2})
	for range 2 {
		if rp, _ := r.startRun("hold", `{"parameters": {"n": 1}}`); rp.status != http.StatusCreated {
			t.Fatalf("start = %d: %s", rp.status, rp.body)
		}
	}
	rp, _ := r.startRun("hold", `{"parameters": {"n": 1}}`)
	problemOf(t, rp, http.StatusServiceUnavailable)
	if got := testkit.Metric(t, r.reg, "botd_flow_runs_refused_total", map[string]string{"flow": "hold", "reason": "limit"}); got != 1 {
		t.Errorf("refused = %v", got)
	}
}

// TestRunsList: filtered by flow and status, paged with $top and
// @odata.nextLink, which keeps the filters.
func TestRunsList(t *testing.T) {
	r, _ := flowRig(t, rigOptions{})
	var hold []string
	for i := range 5 {
		_, v := r.startRun("hold", fmt.Sprintf(`{"parameters": {"n": %d}}`, i))
		hold = append(hold, v.ID)
		r.startRun("other", `{}`)
	}
	if rp := r.adminDo(http.MethodDelete, "/v1/runs/"+hold[4], nil); rp.status != http.StatusAccepted {
		t.Fatalf("cancel = %d", rp.status)
	}
	eventually(t, "canceled", func() bool { return r.run(hold[4]).Status == flows.StatusCanceled })

	var seen []string
	next := "/v1/runs?flow=hold&status=running&$top=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		rp := r.adminDo(http.MethodGet, next, nil)
		if rp.status != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", next, rp.status, rp.body)
		}
		var page listReply[flows.RunView]
		rp.decode(t, &page)
		for _, v := range page.Value {
			if v.Flow != "hold" || v.Status != flows.StatusRunning {
				t.Errorf("run %s %s %s in a filtered page", v.ID, v.Flow, v.Status)
			}
			seen = append(seen, v.ID)
		}
		next = page.NextLink
	}
	if !slices.Equal(seen, hold[:4]) {
		t.Errorf("pages %v, want %v", seen, hold[:4])
	}
	p := problemOf(t, r.adminDo(http.MethodGet, "/v1/runs?status=done", nil), http.StatusBadRequest)
	if p.Field != "status" || !strings.Contains(p.Detail, "running, completed, failed, canceled") {
		t.Errorf("problem %+v", p)
	}
	problemOf(t, r.adminDo(http.MethodGet, "/v1/runs?$top=0", nil), http.StatusBadRequest)
}

// TestCallNamesItsRun: an incoming call a flow's trigger claims names the
// run in GET /v1/calls/{id}; the run names the call.
func TestCallNamesItsRun(t *testing.T) {
	r, _ := flowRig(t, rigOptions{})
	id := r.emu.PutCall(model.Call{State: model.StateIncoming, Direction: "incoming"})
	r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"created","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"incoming","direction":"incoming",
		"source":{"identity":{"phone":{"id":"+19995550100"}}},"targets":[{"identity":{"application":{"id":"app-1"}}}]}}]}`, id, id)))
	var runs []string
	eventually(t, "the call names a run", func() bool {
		rp := r.adminDo(http.MethodGet, "/v1/calls/"+id, nil)
		var v struct {
			Runs []string `json:"runs"`
		}
		_ = json.Unmarshal(rp.body, &v)
		runs = v.Runs
		return len(runs) == 1
	})
	v := r.run(runs[0])
	if v.Flow != "claim" || v.Calls["call"] != id {
		t.Errorf("run %s of flow %s holds %v", v.ID, v.Flow, v.Calls)
	}
	if got := testkit.Metric(t, r.reg, "botd_flow_runs_started_total", map[string]string{"flow": "claim", "how": "trigger"}); got != 1 {
		t.Errorf("runs started by trigger = %v", got)
	}
	// The claim flow does not answer, and nothing else did.
	if n := len(r.emu.Requests(emulator.RouteAnswer)); n != 0 {
		t.Errorf("%d answers", n)
	}
}

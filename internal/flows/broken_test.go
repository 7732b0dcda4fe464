package flows

import (
	"errors"
	"strings"
	"testing"
)

// brokenFlows are flow files that must not load, each with the one error
// (file:line:column: message) the loader gives for it.
var brokenFlows = []struct {
	name, src, want string
}{
	{"yaml syntax", "name: a\nsteps: [\n",
		"broken.yaml:2:1: YAML: did not find expected node content"},
	{"tab indent", "name: a\nsteps:\n\tfirst:\n",
		"broken.yaml:3:1: YAML: found character that cannot start any token"},
	{"empty file", "",
		"broken.yaml:1:1: the file is empty: a flow needs name and steps"},
	{"not a mapping", "- a\n- b\n",
		"broken.yaml:1:1: flow must be a mapping, got a list"},
	{"missing name", "steps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:1:1: flow: name is required"},
	{"bad name", "name: 1abc\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:1:7: flow name \"1abc\" is not a name (a letter, then up to 63 letters, digits, _ or -)"},
	{"missing steps", "name: a\n",
		"broken.yaml:1:1: flow: steps is required"},
	{"unknown top field", "name: a\nstep:\n  s: {}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:2:1: flow: unknown field \"step\"; did you mean \"steps\"? (known: name, description, trigger, parameters, variables, outputs, start, steps, onCancel, defaultTimeout)"},
	{"unknown start step", "name: a\nstart: nowhere\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:2:8: start: unknown step \"nowhere\""},
	{"unknown goto", "name: a\nsteps:\n  s:\n    on: [{event: done, goto: nxet}]\n  next:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:30: step s transition: unknown step \"nxet\"; did you mean \"next\"?"},
	{"goto and end", "name: a\nsteps:\n  s:\n    on: [{event: done, goto: s, end: completed}]\n",
		"broken.yaml:4:38: step s transition: goto and end exclude each other"},
	{"no way out", "name: a\nsteps:\n  s:\n    actions: [{hangup: {}}]\n",
		"broken.yaml:3:3: step s has no way out: give it on: transitions (or end the flow with end:)"},
	{"all done conditional", "name: a\nvariables:\n  x: {type: int}\nsteps:\n  s:\n    on: [{event: done, if: vars.x > 1, end: completed}]\n",
		"broken.yaml:6:9: step s has no way out when no done condition holds: add a done transition without if"},
	{"done mixed with waits", "name: a\nsteps:\n  s:\n    on:\n      - event: done\n        end: completed\n      - event: tone\n        end: completed\n",
		"broken.yaml:5:7: step s mixes done with waiting events: a step either leaves once its actions ran (done) or waits"},
	{"loop of done steps", "name: a\nsteps:\n  s:\n    on: [{event: done, goto: t}]\n  t:\n    on: [{event: done, goto: s}]\n",
		"broken.yaml:3:3: steps s -> t -> s loop without waiting: one of them must wait for an event"},
	{"unknown event", "name: a\nsteps:\n  s:\n    on: [{event: tones, end: completed}]\n",
		"broken.yaml:4:18: step s transition: unknown event \"tones\"; did you mean \"tone\"? (known: established, terminated, participantJoined, participantLeft, tone, promptCompleted, recordingCompleted, operationCompleted, operationFailed, flowEnded, timeout, done)"},
	{"unknown call", "name: a\nsteps:\n  s:\n    on: [{event: established, call: peer, end: completed}]\n",
		"broken.yaml:4:37: step s transition: unknown call \"peer\" (the flow's calls: call)"},
	{"unknown action", "name: a\nsteps:\n  s:\n    actions: [{hangUp: {}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:16: step s: unknown action \"hangUp\"; did you mean \"hangup\"? (known: answer, cancelMediaProcessing, createCall, end, hangup, invite, mute, notify, playPrompt, recordResponse, redirect, reject, removeParticipant, sendDtmfTones, set, startFlow, startHoldMusic, stopHoldMusic, subscribeToTone, transfer, unmute, updateRecordingStatus)"},
	{"unknown action field", "name: a\nsteps:\n  s:\n    actions: [{playPrompt: {promt: x}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:16: step s playPrompt: give prompt or body"},
	{"missing action field", "name: a\nsteps:\n  s:\n    actions: [{sendDtmfTones: {}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:16: step s sendDtmfTones: tones is required"},
	{"cel syntax", "name: a\nsteps:\n  s:\n    on: [{event: done, if: 'call.state ==', end: completed}]\n",
		"broken.yaml:4:42: step s transition if: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"},
	{"cel type", "name: a\nsteps:\n  s:\n    on:\n      - {event: done, if: 'call.state + 1 == 2', end: completed}\n      - {event: done, end: failed}\n",
		"broken.yaml:5:39: step s transition if: found no matching overload for '_+_' applied to '(string, int)'"},
	{"cel not bool", "name: a\nsteps:\n  s:\n    on:\n      - {event: done, if: call.state, end: completed}\n      - {event: done, end: failed}\n",
		"broken.yaml:5:27: step s transition if: `call.state` is string, want bool"},
	{"undeclared param", "name: a\nsteps:\n  s:\n    actions: [{playPrompt: {prompt: '${params.prompt}'}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:40: step s playPrompt prompt: undeclared reference to 'params'"},
	{"undeclared var", "name: a\nsteps:\n  s:\n    on: [{event: done, set: {count: 1}, end: completed}]\n",
		"broken.yaml:4:30: step s transition set: unknown variable \"count\" (declare it under variables)"},
	{"call.nosuch", "name: a\noutputs:\n  x: ${call.nosuch}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:3:12: outputs.x: undefined field 'nosuch'"},
	{"unknown param type", "name: a\nparameters:\n  n: {type: integer}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:3:13: parameter n: unknown type \"integer\" (known: string, int, bool, duration, list, strings, map)"},
	{"bad param default", "name: a\nparameters:\n  n: {type: int, default: many}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:3:27: parameter n: default: wrong type: want an int, got the string \"many\""},
	{"required with default", "name: a\nparameters:\n  n: {type: int, required: true, default: 1}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:3:43: parameter n: a required parameter has no default"},
	{"bad timeout", "name: a\nsteps:\n  s:\n    timeout: soon\n    on: [{event: tone, end: completed}]\n",
		"broken.yaml:4:14: step s timeout: \"soon\" is not a positive duration (for example 30s, 2m)"},
	{"startFlow unknown flow", "name: a\nsteps:\n  s:\n    actions: [{startFlow: {flow: nosuch, as: kid}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:34: startFlow: unknown flow \"nosuch\""},
	{"bad notify url", "name: a\nsteps:\n  s:\n    actions: [{notify: {url: 'ftp://example.com/x', body: {}}}]\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:30: step s notify url: \"ftp://example.com/x\" is not an absolute http or https URL"},
	{"triggered with required param", "name: a\ntrigger: {caller: '+1*'}\nparameters:\n  who: {type: string, required: true}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:4:3: parameter who is required, but a triggered flow starts with none given: give it a default"},
	{"reserved step name", "name: a\nsteps:\n  end:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:3:3: step name \"end\" is reserved (use end: in a transition)"},
	{"field given twice", "name: a\nname: b\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:2:1: flow: \"name\" is given twice"},
	{"variable shadows parameter", "name: a\nparameters:\n  x: {type: int, default: 1}\nvariables:\n  x: {type: int}\nsteps:\n  s:\n    on: [{event: done, end: completed}]\n",
		"broken.yaml:5:3: variable \"x\" has the name of a parameter"},
}

func loadBroken(t *testing.T, src string) LoadErrors {
	t.Helper()
	fs, err := Load([]Source{{File: "broken.yaml", Data: []byte(src)}}, Options{DefaultTimeout: DefaultWaitTimeout})
	if err == nil {
		t.Fatalf("loaded %v, want an error", fs)
	}
	var les LoadErrors
	if !errors.As(err, &les) || len(les) == 0 {
		t.Fatalf("error %T %v, want LoadErrors", err, err)
	}
	return les
}

// TestBrokenFlows loads each broken file and checks the first error, its
// position and wording: the message an operator reads when reload fails.
func TestBrokenFlows(t *testing.T) {
	for _, c := range brokenFlows {
		t.Run(c.name, func(t *testing.T) {
			les := loadBroken(t, c.src)
			if got := les[0].Error(); got != c.want {
				t.Errorf("first error\n got %q\nwant %q\n(all: %v)", got, c.want, les)
			}
			if !strings.HasPrefix(les[0].Error(), "broken.yaml:") {
				t.Errorf("error %q does not name the file", les[0].Error())
			}
		})
	}
}

// TestBrokenFlowsAllErrors: a file with several mistakes reports each of
// them, in the order they appear in the file, so one reload shows them all.
func TestBrokenFlowsAllErrors(t *testing.T) {
	src := "name: a\n" +
		"steps:\n" +
		"  s:\n" +
		"    actions: [{hangUp: {}}]\n" +
		"    on: [{event: tones, goto: t}]\n" +
		"  t:\n" +
		"    on: [{event: timeout, goto: nowhere}]\n"
	les := loadBroken(t, src)
	var got []string
	for _, e := range les {
		got = append(got, e.Error())
	}
	want := []string{
		`broken.yaml:4:16: step s: unknown action "hangUp"; did you mean "hangup"?`,
		`broken.yaml:5:18: step s transition: unknown event "tones"; did you mean "tone"?`,
		`broken.yaml:7:33: step t transition: unknown step "nowhere"`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d\n got %q\nwant prefix %q", i, got[i], want[i])
		}
	}
}

package callstate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// rosterLogs returns the participant joined/left lines logged to buf.
func rosterLogs(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if msg, _ := m["message"].(string); strings.HasPrefix(msg, "participant ") {
			out = append(out, m)
		}
	}
	return out
}

// TestParticipantsJoiningAndLeavingLoggedAtInfo: at the default log level
// an operator sees who joined and left a call, with the call id and the
// participant id, from full rosters, deltas and deletions alike.
func TestParticipantsJoiningAndLeavingLoggedAtInfo(t *testing.T) {
	var buf bytes.Buffer
	s, err := New(testConfig(Config{Now: newClock().Now}), zerolog.New(&buf).Level(zerolog.InfoLevel), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
	mustApply(t, s, rosterEvent("c1", participant("p1", "u1"), participant("p2", "u2")))
	mustApply(t, s, rosterEvent("c1", participant("p1", "u1")))
	gone := participant("p1", "u1")
	gone.RemovedState = &model.RemovedState{Reason: "left"}
	joined := participant("p3", "u3")
	mustApply(t, s, deltaEvent("c1", 1, joined, gone))

	want := []struct{ msg, id string }{
		{"participant joined", "p1"}, {"participant joined", "p2"},
		{"participant left", "p2"},
		{"participant joined", "p3"}, {"participant left", "p1"},
	}
	got := rosterLogs(t, &buf)
	if len(got) != len(want) {
		t.Fatalf("%d roster log lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i, w := range want {
		l := got[i]
		if l["message"] != w.msg || l["participant_id"] != w.id || l["call_id"] != "c1" || l["level"] != "info" {
			t.Errorf("line %d = %v, want %s of %s on c1 at info", i, l, w.msg, w.id)
		}
	}
}

// TestMetricsExportedFromStart: the series with fixed labels are on the
// registry, at 0, before any event.
func TestMetricsExportedFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig(Config{}), zerolog.Nop(), reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, n := range []string{
		"botd_calls", "botd_calls_started_total", "botd_call_duration_seconds", "botd_call_participants",
		"botd_call_operations_total", "botd_call_operation_duration_seconds", "botd_call_events_total",
		"botd_call_events_ignored_total", "botd_call_changes_total", "botd_call_roster_resyncs_total",
		"botd_calls_refused_total", "botd_calls_swept_total", "botd_call_subscribers", "botd_call_subscribers_dropped_total",
	} {
		if !got[n] {
			t.Errorf("%s not exported before any event", n)
		}
	}
}

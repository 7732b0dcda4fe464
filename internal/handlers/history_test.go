package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/journal"
	"github.com/botd/botd/internal/model"
)

// TestListCallsFilters: GET /v1/calls keeps the calls in memory that
// match state and direction; bad filters are 400 and name the parameter.
func TestListCallsFilters(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	r.track("f-1", model.StateEstablished)
	r.track("f-2", model.StateIncoming)
	r.track("f-3", model.StateEstablished)
	list := func(q string) string {
		rp := r.adminDo(http.MethodGet, "/v1/calls"+q, nil)
		var page listReply[callstate.CallSummary]
		rp.decode(t, &page)
		var ids []string
		for _, c := range page.Value {
			ids = append(ids, c.ID)
		}
		return strings.Join(ids, ",")
	}
	if g := list("?state=established"); g != "f-1,f-3" {
		t.Errorf("state=established: %s", g)
	}
	if g := list("?direction=incoming"); g != "f-2" {
		t.Errorf("direction=incoming: %s", g)
	}
	if g := list("?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z"); g != "" {
		t.Errorf("created in 2000: %s", g)
	}
	if g := list("?state=terminated"); g != "" {
		t.Errorf("terminated in memory: %s", g)
	}
	for q, detail := range map[string]string{
		"?state=ringing":   `"state" must be a call state`,
		"?direction=up":    `"direction" must be incoming or outgoing, got "up"`,
		"?since=yesterday": `"since" must be an RFC 3339 time`,
		"?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z": `"until" must be after "since"`,
	} {
		rp := r.adminDo(http.MethodGet, "/v1/calls"+q, nil)
		if p := rp.problem(t); rp.status != http.StatusBadRequest || !strings.Contains(p.Detail, detail) {
			t.Errorf("%s = %d %q, want 400 %q", q, rp.status, p.Detail, detail)
		}
	}
}

// TestCallHistory: with a journal, state=terminated pages through every
// ended call the journal holds, swept ones included, by end time; the
// export streams them as JSON lines. Without a journal the export is 409.
func TestCallHistory(t *testing.T) {
	j, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	var recs []callstate.Record
	for i := range 5 {
		recs = append(recs, callstate.Record{Version: callstate.RecordVersion,
			Call:      model.Call{ID: fmt.Sprintf("h-%d", i), State: model.StateTerminated, Direction: "outgoing", ResultInfo: &model.ResultInfo{Code: 200, Subcode: 5001}},
			CreatedAt: t0, EstablishedAt: t0.Add(time.Minute), TerminatedAt: t0.Add(time.Duration(2+i) * time.Minute),
			Participants: []model.Participant{{ID: "p1"}, {ID: "p2"}},
			Transitions: []callstate.Transition{
				{To: model.StateEstablished, At: t0.Add(time.Minute), Cause: "notification value[0] changeType updated"},
				{From: model.StateEstablished, To: model.StateTerminated, At: t0.Add(time.Duration(2+i) * time.Minute), Cause: "botd: hang up"}}})
	}
	if err := j.Put(recs, nil); err != nil {
		t.Fatal(err)
	}
	r := newFakeRig(t, &fakeCalls{}, rigOptions{history: j})
	var ids []string
	link := "/v1/calls?state=terminated&$top=2&since=2026-11-30T09:03:00Z"
	for pages := 0; link != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		rp := r.adminDo(http.MethodGet, link, nil)
		var page listReply[callstate.CallDetail]
		rp.decode(t, &page)
		for _, c := range page.Value {
			ids = append(ids, c.ID)
			if c.DurationSeconds <= 0 || c.Participants != 2 || c.ResultInfo == nil || c.ResultInfo.Subcode != 5001 {
				t.Errorf("detail %+v", c)
			}
		}
		link = page.NextLink
	}
	if g := strings.Join(ids, ","); g != "h-1,h-2,h-3,h-4" {
		t.Errorf("history %s", g)
	}
	if rp := r.adminDo(http.MethodGet, "/v1/calls?state=terminated&$skiptoken=x", nil); rp.status != http.StatusBadRequest {
		t.Errorf("bad cursor = %d", rp.status)
	}

	rp := r.adminDo(http.MethodGet, "/v1/calls/export?until=2026-11-30T09:04:00Z", nil)
	if rp.status != http.StatusOK || rp.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export = %d %s", rp.status, rp.header.Get("Content-Type"))
	}
	var lines []exportLine
	sc := bufio.NewScanner(bytes.NewReader(rp.body))
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Detail.ID != "h-0" || lines[1].Record.Call.ID != "h-1" || lines[0].Detail.DurationSeconds != 60 {
		t.Errorf("export %+v", lines)
	}
	// The journal keeps transitions apart from the record; the export
	// gives each record whole.
	for _, l := range lines {
		if ts := l.Record.Transitions; len(ts) != 2 || ts[1].Cause != "botd: hang up" || !ts[1].At.Equal(l.Record.TerminatedAt) {
			t.Errorf("%s: exported transitions %+v", l.Record.Call.ID, ts)
		}
	}
	if rp := r.adminDo(http.MethodGet, "/v1/calls/export?state=established", nil); rp.status != http.StatusBadRequest {
		t.Errorf("export of live calls = %d", rp.status)
	}

	mem := newFakeRig(t, &fakeCalls{}, rigOptions{})
	if rp := mem.adminDo(http.MethodGet, "/v1/calls/export", nil); rp.status != http.StatusConflict {
		t.Errorf("export without a journal = %d", rp.status)
	}
}

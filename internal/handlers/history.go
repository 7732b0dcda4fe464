package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/journal"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// History is the journal's record of ended calls (*journal.Journal); nil
// when botd keeps its calls in memory only.
type History interface {
	History(q journal.HistoryQuery) ([]callstate.Record, string, error)
	Export(q journal.HistoryQuery, fn func(callstate.Record) error) error
}

// callsFilter is GET /v1/calls's query: state, direction, and a time
// range [since, until) on when the call was created, or, in the journal's
// history (state=terminated), on when it ended.
type callsFilter struct {
	state        model.CallState
	direction    string
	since, until time.Time
}

func parseCallsFilter(q url.Values) (callsFilter, error) {
	f := callsFilter{state: model.CallState(q.Get("state")), direction: q.Get("direction")}
	if f.state != "" && !f.state.Valid() {
		return f, errorf(problem.Invalid, `"state" must be a call state (%s), got %q`, joinStates(), problem.Shorten(string(f.state)))
	}
	if f.direction != "" && !slices.Contains(model.CallDirections, f.direction) {
		return f, errorf(problem.Invalid, `"direction" must be incoming or outgoing, got %q`, problem.Shorten(f.direction))
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.since}, {"until", &f.until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, errorf(problem.Invalid, "%q must be an RFC 3339 time such as 2026-12-01T10:00:00Z, got %q", p.name, problem.Shorten(v))
			}
			*p.t = t
		}
	}
	if !f.since.IsZero() && !f.until.IsZero() && !f.until.After(f.since) {
		return f, errorf(problem.Invalid, `"until" must be after "since"`)
	}
	return f, nil
}

func joinStates() string {
	s := ""
	for i, st := range model.CallStates {
		if i > 0 {
			s += ", "
		}
		s += string(st)
	}
	return s
}

// keep reports whether a call in memory passes the filter.
func (f callsFilter) keep(c callstate.CallSummary) bool {
	return (f.state == "" || c.State == f.state) && (f.direction == "" || c.Direction == f.direction) &&
		(f.since.IsZero() || !c.CreatedAt.Before(f.since)) && (f.until.IsZero() || c.CreatedAt.Before(f.until))
}

func (f callsFilter) query() journal.HistoryQuery {
	return journal.HistoryQuery{Since: f.since, Until: f.until, Direction: f.direction}
}

// handleListCalls lists calls a page at a time. With state=terminated and
// a journal, it pages through the journal's history of ended calls, those
// swept from memory included, by the time they ended; otherwise through
// the calls in memory, by the time they were created.
func handleListCalls(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := parseCallsFilter(r.URL.Query())
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		if f.state == model.StateTerminated && d.History != nil {
			page, err := historyPage(r, d.History, f)
			answer(w, r, http.StatusOK, page, err)
			return
		}
		all := d.Store.Calls()
		kept := all[:0:0]
		for _, c := range all {
			if f.keep(c) {
				kept = append(kept, c)
			}
		}
		page, err := callsPage(r, kept)
		answer(w, r, http.StatusOK, page, err)
	})
}

// historyPage is one page of the journal's ended calls.
func historyPage(r *http.Request, h History, f callsFilter) (listReply[callstate.CallDetail], error) {
	top, err := pageSize(r)
	if err != nil {
		return listReply[callstate.CallDetail]{}, err
	}
	q := f.query()
	q.After, q.Limit = r.URL.Query().Get("$skiptoken"), top
	recs, next, err := h.History(q)
	switch {
	case errors.Is(err, journal.ErrBadCursor):
		return listReply[callstate.CallDetail]{}, errorf(problem.Invalid, `"$skiptoken" is not one this list gave`)
	case err != nil:
		return listReply[callstate.CallDetail]{}, errorf(problem.Internal, "read the call history: %v", err)
	}
	out := listReply[callstate.CallDetail]{Value: make([]callstate.CallDetail, 0, len(recs))}
	for _, rec := range recs {
		out.Value = append(out.Value, rec.Detail())
	}
	if next != "" {
		out.NextLink = nextLink(r, top, next)
	}
	return out, nil
}

// exportLine is one line of GET /v1/calls/export: the call's detail
// record and the whole record the journal keeps.
type exportLine struct {
	Detail callstate.CallDetail `json:"detail"`
	Record callstate.Record     `json:"record"`
}

// handleExportCalls streams the journal's ended calls as JSON lines,
// oldest end first, filtered as the history list is (direction, since,
// until on the end time). It needs the journal: with BOTD_STATE=memory it
// answers 409.
func handleExportCalls(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.History == nil {
			writeProblem(w, r, errorf(problem.Conflict, "the call history is kept only with BOTD_STATE=journal"))
			return
		}
		f, err := parseCallsFilter(r.URL.Query())
		if err == nil && f.state != "" && f.state != model.StateTerminated {
			err = errorf(problem.Invalid, `the export holds ended calls only: "state" may only be terminated`)
		}
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		n := 0
		err = d.History.Export(f.query(), func(rec callstate.Record) error {
			n++
			return enc.Encode(exportLine{Detail: rec.Detail(), Record: rec})
		})
		fieldsFrom(r.Context()).items = n
		if err != nil {
			// The status is sent: the export ends short, and says so in
			// the log.
			d.Log.Error().Err(err).Int("exported", n).Msg("call history export cut short")
		}
	})
}

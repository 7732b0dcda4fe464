package handlers

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/problem"
)

// Flows is the flow engine: the loaded flows and their runs.
type Flows interface {
	Flows() *flows.Set
	Reload() (*flows.Set, error)
	Start(name string, params map[string]any) (flows.RunView, error)
	RunView(id string) (flows.RunView, bool)
	Runs(flow, status string) []flows.RunView
	RunsForCall(callID string) []string
	Cancel(id string) (flows.RunView, error)
}

// flowRoutes mounts /v1/flows and /v1/runs.
func flowRoutes(r chi.Router, d Deps) {
	r.Route("/v1/flows", func(r chi.Router) {
		r.Get("/", handleListFlows(d).ServeHTTP)
		r.Post("/reload", handleReloadFlows(d).ServeHTTP)
		r.Get("/{flow}", handleGetFlow(d).ServeHTTP)
		r.Post("/{flow}/runs", handleStartRun(d).ServeHTTP)
	})
	r.Route("/v1/runs", func(r chi.Router) {
		r.Get("/", handleListRuns(d).ServeHTTP)
		r.Get("/{runID}", handleGetRun(d).ServeHTTP)
		r.Delete("/{runID}", handleCancelRun(d).ServeHTTP)
	})
}

// flowList answers the loaded flows, by name.
func flowList(set *flows.Set) listReply[*flows.Flow] {
	return listReply[*flows.Flow]{Value: append([]*flows.Flow{}, set.Flows()...)}
}

func handleListFlows(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, flowList(d.Flows.Flows()))
	})
}

func handleGetFlow(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "flow")
		f, ok := d.Flows.Flows().Flow(name)
		if !ok {
			writeProblem(w, r, errorf(problem.NotFound, "flow %q is not loaded", problem.Shorten(name)))
			return
		}
		writeJSON(w, http.StatusOK, f)
	})
}

// handleReloadFlows loads BOTD_FLOWS again; on error the flows stay as
// they were and the problem lists every error with its position.
func handleReloadFlows(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set, err := d.Flows.Reload()
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, flowList(set))
	})
}

// startRunBody is the body of POST /v1/flows/{name}/runs.
type startRunBody struct {
	Parameters map[string]any `json:"parameters"`
}

func handleStartRun(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body startRunBody
		if err := decodeBody(r, &body, bodyOptional); err != nil {
			writeProblem(w, r, err)
			return
		}
		v, err := d.Flows.Start(chi.URLParam(r, "flow"), body.Parameters)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		fieldsFrom(r.Context()).runID = v.ID
		w.Header().Set("Location", "/v1/runs/"+v.ID)
		writeJSON(w, http.StatusCreated, v)
	})
}

// runStatuses are the statuses GET /v1/runs filters by.
var runStatuses = []string{flows.StatusRunning, flows.StatusCompleted, flows.StatusFailed, flows.StatusCanceled}

// handleListRuns lists runs oldest first (run ids are time-ordered),
// filtered by ?flow= and ?status=, paged like the calls list: $skiptoken
// is the id of the last run of the page before.
func handleListRuns(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		status := q.Get("status")
		if status != "" && !slices.Contains(runStatuses, status) {
			writeProblem(w, r, &Error{Code: problem.Invalid, Field: "status",
				Message: "\"status\" must be one of running, completed, failed, canceled, got " + strconv.Quote(problem.Shorten(status))})
			return
		}
		top, err := pageSize(r)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		all := d.Flows.Runs(q.Get("flow"), status)
		start := 0
		if tok := q.Get("$skiptoken"); tok != "" {
			// The first run after the token's: ids sort as they were made.
			start, _ = slices.BinarySearchFunc(all, tok, func(v flows.RunView, id string) int {
				if v.ID <= id {
					return -1
				}
				return 1
			})
		}
		end := min(start+top, len(all))
		out := listReply[flows.RunView]{Value: append([]flows.RunView{}, all[start:end]...)}
		if end < len(all) {
			out.NextLink = nextLink(r, top, all[end-1].ID)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func handleGetRun(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "runID")
		fieldsFrom(r.Context()).runID = id
		v, ok := d.Flows.RunView(id)
		if !ok {
			writeProblem(w, r, errorf(problem.NotFound, "run %q is not known", problem.Shorten(id)))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// handleCancelRun cancels a running run: 202 with its view (the cancel is
// applied in the run's order, after the events queued before it), 409 for
// a run already ended.
func handleCancelRun(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "runID")
		fieldsFrom(r.Context()).runID = id
		v, err := d.Flows.Cancel(id)
		answer(w, r, http.StatusAccepted, v, err)
	})
}

// callReply is a call's view with the runs that hold it, the first the
// one that drives it.
type callReply struct {
	callstate.CallView
	Runs []string `json:"runs,omitempty"`
}

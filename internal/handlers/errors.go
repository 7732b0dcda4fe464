package handlers

import (
	"encoding/json"
	"net/http"

	"github.com/botd/botd/internal/problem"
)

// Code, Error and Problem are internal/problem's: the one coded error and
// its one mapping to HTTP. The names below are the handlers' short forms.
type (
	Code        = problem.Code
	Error       = problem.Error
	Problem     = problem.Problem
	ItemProblem = problem.ItemProblem
)

var (
	errorf       = problem.Errorf
	writeProblem = problem.Write
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// answer writes v as JSON with status, or err's problem when err is set.
func answer(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

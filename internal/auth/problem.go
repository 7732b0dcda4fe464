package auth

import (
	"net/http"

	"github.com/botd/botd/internal/problem"
)

// writeProblem answers with botd's one problem body (internal/problem), so
// a client sees one error format whichever layer answered.
func writeProblem(w http.ResponseWriter, r *http.Request, code problem.Code, detail string) {
	problem.Write(w, r, &problem.Error{Code: code, Message: detail})
}

package handlers

import (
	"errors"
	"io"
	"net/http"
)

// readBody reads a request body that the router's RequestSize middleware
// has bounded, turning an oversized one into a 413.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(CodeTooLarge, "body exceeds %d bytes", mbe.Limit)
		}
		return nil, errorf(CodeInvalid, "read body: %v", err)
	}
	return body, nil
}

// requirePost is postOnly as middleware.
func requirePost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if postOnly(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// postOnly answers 405 with Allow: POST to any other method, and reports
// whether the request may go on. Graph only ever posts notifications.
func postOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	writeProblem(w, r, errorf(CodeMethod, "method %s not allowed: Graph posts notifications", r.Method))
	return false
}

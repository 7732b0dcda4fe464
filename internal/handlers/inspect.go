package handlers

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// handleGraphCall answers Graph's own view of a tracked call, to compare
// with botd's (GET /v1/calls/{id}).
func handleGraphCall(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		c, err := d.Calls.GraphCall(r.Context(), callID)
		answer(w, r, http.StatusOK, c, err)
	})
}

// handleGraphOperation answers Graph's own view of one of a call's
// operations.
func handleGraphOperation(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		op, err := d.Calls.GraphOperation(r.Context(), callID, chi.URLParam(r, "opID"))
		answer(w, r, http.StatusOK, op, err)
	})
}

// maxRecording bounds a recording passed through to the admin client.
const maxRecording = 64 << 20

// handleRecording streams the audio of a completed recordResponse: botd
// fetches it with the recording's access token, which the client never
// sees.
func handleRecording(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := chi.URLParam(r, "callID")
		fieldsFrom(r.Context()).callID = callID
		body, contentType, err := d.Calls.Recording(r.Context(), callID, chi.URLParam(r, "opID"))
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		defer body.Close()
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.Copy(w, io.LimitReader(body, maxRecording))
	})
}

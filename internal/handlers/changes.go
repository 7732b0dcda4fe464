package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/problem"
)

// changesBuffer is how many changes a slow reader of GET /v1/changes may
// lag behind before the store drops it (and closes its stream).
const changesBuffer = 1024

// handleChanges streams the call store's changes as server-sent events:
// one "event: <kind>" with the change as JSON per change, in the order the
// store made them for each call, optionally only those of one call
// (?callId=). It lasts until the client goes, or the admin request
// timeout ends it; a reader that falls behind is dropped with a final
// "event: dropped". Nothing is replayed: a client reconnects and reads the
// call's view for what it missed.
func handleChanges(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callID := r.URL.Query().Get("callId")
		if callID != "" {
			if p, err := notify.ParseResourcePath("/communications/calls/" + callID); err != nil || p.Kind != model.ResourceCall {
				writeProblem(w, r, errorf(problem.Invalid, "callId %q is not a call id", problem.Shorten(callID)))
				return
			}
		}
		changes, stop := d.Store.Subscribe(changesBuffer)
		defer stop()
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprint(w, ": botd call changes\n\n")
		_ = rc.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case c, ok := <-changes:
				if !ok {
					_, _ = fmt.Fprint(w, "event: dropped\ndata: {}\n\n")
					_ = rc.Flush()
					return
				}
				if callID != "" && c.CallID != callID {
					continue
				}
				if err := writeChange(w, c); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
	})
}

func writeChange(w http.ResponseWriter, c callstate.Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", c.Kind, b)
	return err
}

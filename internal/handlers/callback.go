package handlers

import (
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
	"github.com/botd/botd/internal/problem"
)

// Decoder turns a callback body into events.
type Decoder interface {
	Decode(body []byte) (*notify.Batch, error)
}

// Notification results, the "result" label of botd_notifications_total.
const (
	resultApplied  = "applied"   // changed the call's state
	resultNoChange = "no_change" // a duplicate, stale or late item: recorded, nothing changed
	resultRejected = "rejected"  // malformed item
	resultRefused  = "refused"   // the store refused it (call limit)
	resultUnknown  = "unknown"   // not understood; kept as an unknown event
)

// recoveryRetryAfter is the Retry-After of a callback deferred while botd
// recovers, in seconds.
const recoveryRetryAfter = "5"

// callbackReply is the 202 body: what was accepted and what was not.
type callbackReply struct {
	Accepted int           `json:"accepted"`
	Rejected []ItemProblem `json:"rejected,omitempty"`
}

// handleCallback receives Graph's commsNotifications: it decodes the body,
// applies every valid item to the call store in order, hands the resulting
// changes to automation (which queues any Graph request), counts every item's
// outcome and answers 202. It never calls Graph itself.
func handleCallback(d Deps) http.Handler {
	log := d.Log.With().Str("component", "callback").Logger()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !postOnly(w, r) {
			return
		}
		if d.Recovering != nil && d.Recovering.Load() {
			d.Metrics.documentCounter(documentDeferred).Inc()
			w.Header().Set("Retry-After", recoveryRetryAfter)
			writeProblem(w, r, errorf(problem.Unavailable, "botd is recovering its calls after a restart; retry later"))
			return
		}
		if !isJSON(r.Header.Get("Content-Type")) {
			writeProblem(w, r, errorf(problem.MediaType, "content type must be application/json, got %q", r.Header.Get("Content-Type")))
			return
		}
		buf, err := readPooledBody(r, d.MaxBody)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		batch, err := d.Decoder.Decode(buf.Bytes())
		releaseBody(buf) // the batch shares no memory with the body
		if err != nil {
			d.Metrics.documentCounter(documentRejected).Inc()
			log.Info().Err(err).Str("request_id", middleware.GetReqID(r.Context())).Msg("callback body rejected")
			writeProblem(w, r, err)
			return
		}
		d.Metrics.documentCounter(documentAccepted).Inc()

		reply := callbackReply{}
		fields := fieldsFrom(r.Context())
		for _, ie := range batch.Rejected {
			d.Metrics.itemCounter(invalidLabel, invalidLabel, resultRejected).Inc()
			log.Warn().Int("index", ie.Index).Str("reason", ie.Reason).Msg("notification item rejected")
			reply.Rejected = append(reply.Rejected, ItemProblem{Index: ie.Index, Reason: ie.Reason})
		}
		for i := range batch.Events {
			ev := &batch.Events[i]
			ev.TenantID = fields.tenant
			d.countQuirks(ev)
			result := d.apply(ev)
			d.Metrics.itemCounter(changeLabel(ev.ChangeType), ev.Path.Kind.String(), result).Inc()
			if result != resultRefused {
				reply.Accepted++
			}
			if fields.callID == "" {
				fields.callID = ev.CallID()
			}
		}
		fields.items, fields.rejected = len(batch.Events), len(batch.Rejected)
		writeReply(w, reply)
	})
}

// apply applies one event and hands its changes to automation.
func (d Deps) apply(ev *model.Event) string {
	// The store hands the changes to automation itself (it observes the store), which
	// queues any Graph request; nothing here waits on Graph.
	changes, err := d.Store.Apply(ev)
	if err != nil {
		// The only refusal is a bounded-memory one; Graph will retry.
		itemLog(d.Log.Warn(), ev).Err(err).Str("kind", ev.Kind.String()).Msg("notification refused by the call store")
		return resultRefused
	}
	switch {
	case ev.Kind == model.EventUnknown:
		itemLog(d.Log.Info(), ev).Str("odata_type", ev.ODataType).Msg("unknown notification kept")
		return resultUnknown
	case len(changes) == 0:
		itemLog(d.Log.Debug(), ev).Str("kind", ev.Kind.String()).Msg("notification changed nothing")
		return resultNoChange
	}
	return resultApplied
}

// itemLog adds an item's identity to a log event. It builds no child
// logger, so a callback whose items log nothing costs nothing here.
// writeReply answers 202 with reply. The common case, nothing rejected,
// is written by hand: it is every callback's answer.
func writeReply(w http.ResponseWriter, reply callbackReply) {
	if len(reply.Rejected) > 0 {
		writeJSON(w, http.StatusAccepted, reply)
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(http.StatusAccepted)
	if reply.Accepted < len(acceptedReplies) {
		_, _ = w.Write(acceptedReplies[reply.Accepted])
		return
	}
	_, _ = w.Write(strconv.AppendInt([]byte(`{"accepted":`), int64(reply.Accepted), 10))
	_, _ = w.Write([]byte("}\n"))
}

// acceptedReplies are the bodies of the usual answers, written as is.
var acceptedReplies = func() [][]byte {
	out := make([][]byte, 16)
	for i := range out {
		out[i] = []byte(`{"accepted":` + strconv.Itoa(i) + "}\n")
	}
	return out
}()

// Header values shared by every reply, so that setting them allocates
// nothing; net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	nosniff         = []string{"nosniff"}
)

// countQuirks counts, and logs at debug, each way an item departed from
// Graph's schema that the decoder tolerated.
func (d Deps) countQuirks(ev *model.Event) {
	if ev.Quirks == 0 {
		return
	}
	for _, q := range model.AllQuirks {
		if ev.Quirks.Has(q) {
			d.Metrics.quirks.WithLabelValues(q.String()).Inc()
			itemLog(d.Log.Debug(), ev).Str("quirk", q.String()).Msg("notification item tolerated")
		}
	}
}

func itemLog(e *zerolog.Event, ev *model.Event) *zerolog.Event {
	return e.Str("component", "callback").Str("call_id", ev.CallID()).Int("index", ev.Index)
}

func changeLabel(c model.ChangeType) string {
	switch c {
	case model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted:
		return string(c)
	}
	return changeOther
}

func isJSON(ct string) bool {
	// What Graph sends, without parsing: every callback asks.
	if ct == "application/json" || ct == "application/json; charset=utf-8" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == "text/json")
}

// callbackMetrics counts every callback request by status and times it,
// those refused by authentication or the in-flight limit included.
func callbackMetrics(m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			m.callbackCounter(serveStatus(w, r, next)).Inc()
			m.callbackLatency.Observe(time.Since(start).Seconds())
		})
	}
}

package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

// testKey is one signing key for the whole test binary: generating a
// 2048-bit key per test would dominate the run time.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// note is one callback the bot received: one commsNotification, decoded
// by botd's own decoder.
type note struct {
	model.Event
	Header http.Header
	Body   []byte
}

// bot stands in for botd: it accepts callbacks, decodes each with
// notify's strict decoder (failing the test on any rejected item), and
// lets tests wait for what they expect.
type bot struct {
	t   *testing.T
	dec *notify.Decoder
	URL string

	mu      sync.Mutex
	notes   []note
	changed chan struct{}
	// answer, if set, picks the HTTP status for the nth callback (from 0).
	answer func(n int) int
	calls  int
}

func newBot(t *testing.T) *bot {
	b := &bot{t: t, dec: notify.NewDecoder(notify.DefaultLimits()), changed: make(chan struct{})}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	b.URL = srv.URL + "/api/calls"
	return b
}

func (b *bot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		b.t.Errorf("bot: read: %v", err)
		return
	}
	b.mu.Lock()
	n := b.calls
	b.calls++
	answer := b.answer
	b.mu.Unlock()
	status := http.StatusAccepted
	if answer != nil {
		status = answer(n)
	}
	if status >= 300 {
		w.WriteHeader(status)
		return
	}
	b.record(r.Header, body)
	w.WriteHeader(status)
}

// record decodes one accepted callback and wakes waiters.
func (b *bot) record(h http.Header, body []byte) {
	b.t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		b.t.Errorf("callback Content-Type %q", ct)
	}
	if !strings.HasPrefix(h.Get("Authorization"), "Bearer ey") {
		b.t.Errorf("callback without a bearer JWT: %q", h.Get("Authorization"))
	}
	batch, err := b.dec.Decode(body)
	if err != nil {
		b.t.Errorf("botd's decoder refused a notification: %v\n%s", err, body)
		return
	}
	if len(batch.Rejected) != 0 || len(batch.Events) != 1 {
		b.t.Errorf("decoder: %d events, rejected %v\n%s", len(batch.Events), batch.Rejected, body)
		return
	}
	if batch.Events[0].Kind == model.EventUnknown {
		b.t.Errorf("decoder did not recognise the notification:\n%s", body)
	}
	b.mu.Lock()
	b.notes = append(b.notes, note{Event: batch.Events[0], Header: h.Clone(), Body: body})
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *bot) snapshot() ([]note, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]note(nil), b.notes...), b.changed
}

// waitFor waits until cond holds over everything received and returns
// that. The 30 s bound only keeps a broken test from hanging; nothing
// asserts how long it took.
func (b *bot) waitFor(what string, cond func([]note) bool) []note {
	b.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		ns, ch := b.snapshot()
		if cond(ns) {
			return ns
		}
		select {
		case <-ch:
		case <-deadline.C:
			b.t.Fatalf("never received %s; got:\n%s", what, strings.Join(describeAll(ns), "\n"))
		}
	}
}

// forCall returns the notes about one call, in arrival order.
func forCall(ns []note, id string) []note {
	var out []note
	for _, n := range ns {
		if n.CallID() == id {
			out = append(out, n)
		}
	}
	return out
}

// describe is a short, stable description of a notification, for
// comparing sequences.
func describe(n note) string {
	switch n.Kind {
	case model.EventCall:
		s := fmt.Sprintf("call %s %s", n.ChangeType, n.Call.State)
		if r := n.Call.ResultInfo; r != nil {
			s += fmt.Sprintf(" %d/%d", r.Code, r.Subcode)
		}
		return s
	case model.EventRoster:
		return fmt.Sprintf("roster %d", len(n.Participants))
	case model.EventRosterDelta:
		s := fmt.Sprintf("delta #%d +%d", n.Delta.SequenceNumber, len(n.Delta.Participants))
		for _, p := range n.Delta.Participants {
			if p.RemovedState != nil {
				s += " removed"
			}
		}
		return s
	case model.EventOperation:
		s := fmt.Sprintf("operation %s %s", n.ChangeType, n.Operation.Status)
		if r := n.Operation.ResultInfo; r != nil {
			s += fmt.Sprintf(" %d/%d", r.Code, r.Subcode)
		}
		return s
	case model.EventContentSharing:
		return fmt.Sprintf("sharing %s %d", n.ChangeType, len(n.Sessions))
	}
	return "unknown"
}

func describeAll(ns []note) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.CallID() + ": " + describe(n)
	}
	return out
}

func describeCall(ns []note, id string) []string {
	var out []string
	for _, n := range forCall(ns, id) {
		out = append(out, describe(n))
	}
	return out
}

// countFor counts the call's notifications.
func countFor(n int, id string) func([]note) bool {
	return func(ns []note) bool { return len(forCall(ns, id)) >= n }
}

// last returns the call's latest notification matching pred.
func lastWhere(ns []note, id string, pred func(note) bool) (note, bool) {
	var out note
	found := false
	for _, n := range forCall(ns, id) {
		if pred(n) {
			out, found = n, true
		}
	}
	return out, found
}

func isTerminated(n note) bool {
	return n.Kind == model.EventCall && n.Call.State == model.StateTerminated && n.ChangeType == model.ChangeDeleted
}

func terminatedCall(id string) func([]note) bool {
	return func(ns []note) bool {
		_, ok := lastWhere(ns, id, isTerminated)
		return ok
	}
}

// emu is an emulator with a bot, a token and helpers to drive it.
type emu struct {
	t   *testing.T
	s   *Server
	bot *bot
	tok string
}

// newEmu starts a bot and an emulator posting to it. Unless opts says
// otherwise: time runs a thousand times fast, calls never hit the
// keepAlive or incoming-call timeouts, and the test key signs.
func newEmu(t *testing.T, opts Options) *emu {
	t.Helper()
	b := newBot(t)
	if opts.TimeScale == 0 {
		opts.TimeScale = 0.001
	}
	if opts.Timing.KeepAlive == 0 {
		opts.Timing.KeepAlive = 1000 * time.Hour
	}
	if opts.Timing.Incoming == 0 {
		opts.Timing.Incoming = 1000 * time.Hour
	}
	if opts.BotCallbackURL == "" {
		opts.BotCallbackURL = b.URL
	}
	if opts.SigningKey == nil {
		opts.SigningKey = testKey()
	}
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	s := New(opts)
	s.Start()
	t.Cleanup(s.Close)
	return &emu{t: t, s: s, bot: b, tok: fetchToken(t, s)}
}

// graph sends a Graph request (path under /v1.0) with the token.
func (e *emu) graph(method, path, body string) answer {
	e.t.Helper()
	return send(e.t, method, e.s.BaseURL()+path, e.tok, "", body)
}

// create creates a call from a JSON body (its callbackUri is set to the
// bot's) and returns it.
func (e *emu) create(body string) model.Call {
	e.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatalf("bad test body: %v", err)
	}
	m["callbackUri"] = e.bot.URL
	b, _ := json.Marshal(m)
	a := e.graph(http.MethodPost, "/communications/calls", string(b))
	if a.status != http.StatusCreated {
		e.t.Fatalf("create call: %d %s", a.status, a.body)
	}
	var c model.Call
	a.json(e.t, &c)
	return c
}

// invite invites and returns the running operation.
func (e *emu) invite(callID, body string) model.Operation {
	e.t.Helper()
	a := e.graph(http.MethodPost, "/communications/calls/"+callID+"/participants/invite", body)
	if a.status != http.StatusOK {
		e.t.Fatalf("invite: %d %s", a.status, a.body)
	}
	var op model.Operation
	a.json(e.t, &op)
	return op
}

// incoming rings the bot and returns the call.
func (e *emu) incoming(body string) model.Call {
	e.t.Helper()
	a := send(e.t, http.MethodPost, e.s.URL()+"/emulator/incoming", "", "", body)
	if a.status != http.StatusCreated {
		e.t.Fatalf("incoming: %d %s", a.status, a.body)
	}
	var c model.Call
	a.json(e.t, &c)
	return c
}

// Request bodies. Targets are identity JSON fragments.
const media = `"requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}`

func user(id, name string) string {
	return fmt.Sprintf(`{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":%q,"displayName":%q}}}`, id, name)
}

func phone(number string) string {
	return fmt.Sprintf(`{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","phone":{"@odata.type":"#microsoft.graph.identity","id":%q}}}`, number)
}

func callTo(targets ...string) string {
	return `{"@odata.type":"#microsoft.graph.call","targets":[` + strings.Join(targets, ",") + `],` + media + `}`
}

func inviteOf(ctx string, invitees ...string) string {
	return `{"participants":[` + strings.Join(invitees, ",") + `],"clientContext":"` + ctx + `"}`
}

const (
	johnID  = "112f7296-5fa4-42ca-bae8-6a692b15d4b8"
	maryID  = "7e1b4346-85a6-4bdd-abe3-d11c5d420efe"
	paulID  = "1e126418-44a0-4a94-a6f8-0efe1ad71acb"
	threadX = "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
)

const meetingBody = `{"@odata.type":"#microsoft.graph.call",` + media + `,
  "chatInfo":{"@odata.type":"#microsoft.graph.chatInfo","threadId":"` + threadX + `","messageId":"0"},
  "meetingInfo":{"@odata.type":"#microsoft.graph.organizerMeetingInfo","organizer":{"@odata.type":"#microsoft.graph.identitySet",
    "user":{"@odata.type":"#microsoft.graph.identity","id":"5810cede-f3cc-42eb-b2c1-e9bd5d53ec96","displayName":"Bob"}},
    "allowConversationWithoutHost":true}}`

const joinMeetingIDBody = `{"@odata.type":"#microsoft.graph.call",` + media + `,
  "meetingInfo":{"@odata.type":"#microsoft.graph.joinMeetingIdMeetingInfo","joinMeetingId":"1234567","passcode":"psw123"}}`

// established waits until a call is established with a roster, and
// returns its roster.
func (e *emu) established(id string) []model.Participant {
	e.t.Helper()
	ns := e.bot.waitFor("established and roster of "+id, func(ns []note) bool {
		_, est := lastWhere(ns, id, func(n note) bool { return n.Kind == model.EventCall && n.Call.State == model.StateEstablished })
		_, ros := lastWhere(ns, id, func(n note) bool { return n.Kind == model.EventRoster || n.Kind == model.EventRosterDelta })
		return est && ros
	})
	r, _ := lastWhere(ns, id, func(n note) bool { return n.Kind == model.EventRoster })
	return r.Participants
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// handlerTransport posts requests straight into a handler, in process:
// deliveries inside a synctest bubble then involve no real network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

package flows

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/calls"
	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// The built-in flow's tests: botd's Automation settings, as a flow,
// through the real calls service and call store, on a fake Graph.

// bgGraph records what the calls service asked of Graph.
type bgGraph struct {
	// Graph's other methods are not the built-in flow's: calling one
	// panics.
	calls.Graph
	mu        sync.Mutex
	calls     []string // "answer:<id>", "invite:<id>", ...
	answers   []graph.AnswerRequest
	rejects   []graph.RejectRequest
	redirects []graph.RedirectRequest
	invites   []graph.InviteRequest
	inviteErr []error // popped per invite; nil = success
}

func (f *bgGraph) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *bgGraph) Answer(_ context.Context, id string, r *graph.AnswerRequest) (graph.Meta, error) {
	f.record("answer:" + id)
	f.mu.Lock()
	f.answers = append(f.answers, *r)
	f.mu.Unlock()
	return graph.Meta{ClientRequestID: "crid"}, nil
}

func (f *bgGraph) Reject(_ context.Context, id string, r *graph.RejectRequest) (graph.Meta, error) {
	f.record("reject:" + id)
	f.mu.Lock()
	f.rejects = append(f.rejects, *r)
	f.mu.Unlock()
	return graph.Meta{}, nil
}

func (f *bgGraph) Redirect(_ context.Context, id string, r *graph.RedirectRequest) (graph.Meta, error) {
	f.record("redirect:" + id)
	f.mu.Lock()
	f.redirects = append(f.redirects, *r)
	f.mu.Unlock()
	return graph.Meta{}, nil
}

func (f *bgGraph) Invite(_ context.Context, id string, r *graph.InviteRequest) (*model.Operation, graph.Meta, error) {
	f.record("invite:" + id)
	f.mu.Lock()
	f.invites = append(f.invites, *r)
	var err error
	if len(f.inviteErr) > 0 {
		err, f.inviteErr = f.inviteErr[0], f.inviteErr[1:]
	}
	n := len(f.invites)
	f.mu.Unlock()
	if err != nil {
		return nil, graph.Meta{}, err
	}
	return &model.Operation{ID: "op-" + string(rune('0'+n)), Status: model.OpRunning, ClientContext: r.ClientContext}, graph.Meta{}, nil
}

func (f *bgGraph) CountRefusal(string, error) {}

func (f *bgGraph) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return testkit.CountPrefix(f.calls, prefix)
}

type bgRig struct {
	g     *bgGraph
	store *callstate.Store
	eng   *Engine
	reg   *prometheus.Registry
	stop  func()
}

// newBuiltinRig runs the built-in flow with settings, as cmd/botd does.
func newBuiltinRig(t *testing.T, settings map[string]any, scfg callstate.Config) *bgRig {
	t.Helper()
	r := &bgRig{g: &bgGraph{}, reg: prometheus.NewRegistry()}
	sc := callstate.DefaultConfig()
	if scfg.OperationTimeout != 0 {
		sc.OperationTimeout = scfg.OperationTimeout
	}
	st, err := callstate.New(sc, zerolog.Nop(), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	svc := calls.New(calls.Config{CallbackURL: "https://bot.contoso.com/api/calls"}, r.g, st, zerolog.Nop())
	cfg := DefaultConfig()
	bf, err := Builtin(cfg.Options(), settings)
	if err != nil {
		t.Fatal(err)
	}
	r.eng, err = New(cfg, nil, svc, st, zerolog.Nop(), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.eng.SetBuiltin(bf)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.eng.Run(ctx) }()
	go func() { defer wg.Done(); _ = st.Run(ctx) }()
	r.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(r.stop)
	return r
}

// ended waits until no run is in flight.
func (r *bgRig) idle(t *testing.T) {
	t.Helper()
	synctest.Wait()
}

func TestBuiltinIncomingCallActions(t *testing.T) {
	cases := []struct {
		action string
		want   string
	}{
		{"answer", "answer:c1"},
		{"reject", "reject:c1"},
		{"redirect", "redirect:c1"},
		{"ignore", ""},
	}
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newBuiltinRig(t, map[string]any{"incomingAction": tc.action, "rejectReason": "busy", "redirectTarget": "+12345678901"}, callstate.Config{})
				testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateIncoming))
				r.idle(t)
				r.g.mu.Lock()
				defer r.g.mu.Unlock()
				if tc.want == "" {
					if len(r.g.calls) != 0 {
						t.Fatalf("ignore sent %v", r.g.calls)
					}
					return
				}
				if len(r.g.calls) != 1 || r.g.calls[0] != tc.want {
					t.Fatalf("calls = %v, want [%s]", r.g.calls, tc.want)
				}
				switch tc.action {
				case "answer":
					a := r.g.answers[0]
					if a.CallbackURI != "https://bot.contoso.com/api/calls" || a.MediaConfig == nil || a.MediaConfig.ODataType != model.ODataServiceHostedMediaConfig || len(a.AcceptedModalities) != 1 {
						t.Errorf("answer body = %+v", a)
					}
				case "reject":
					if r.g.rejects[0].Reason != "busy" {
						t.Errorf("reject = %+v", r.g.rejects[0])
					}
				case "redirect":
					red := r.g.redirects[0]
					if len(red.Targets) != 1 || red.Targets[0].Identity.Phone == nil || red.Targets[0].Identity.Phone.ID != "+12345678901" {
						t.Errorf("redirect = %+v", red)
					}
				}
				if got := testutil.ToFloat64(r.eng.metrics.actions.WithLabelValues(BuiltinName, tc.action, "ok")); got != 1 {
					t.Errorf("actions{builtin,%s,ok} = %v", tc.action, got)
				}
			})
		})
	}
}

func TestBuiltinDuplicateIncomingAnsweredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, nil, callstate.Config{})
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateIncoming))
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateIncoming))
		r.idle(t)
		if n := r.g.count("answer:"); n != 1 {
			t.Fatalf("answered %d times", n)
		}
		if got := testutil.ToFloat64(r.eng.metrics.started.WithLabelValues(BuiltinName, startTrigger)); got != 1 {
			t.Errorf("runs started %v", got)
		}
	})
}

// An incoming call answered, then established: the invitees are invited
// once; a duplicate established does not invite again; the operation's
// notification completes the run.
func TestBuiltinInviteOnEstablish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, map[string]any{"invite": []any{"+12345678901"}}, callstate.Config{})
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateIncoming))
		r.idle(t)
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		if n := r.g.count("invite:c1"); n != 1 {
			t.Fatalf("invites = %d", n)
		}
		cc := r.g.invites[0].ClientContext
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		if n := r.g.count("invite:c1"); n != 1 {
			t.Fatalf("invites after duplicate = %d", n)
		}
		testkit.Apply(t, r.store.Apply, &model.Event{
			ChangeType: model.ChangeDeleted,
			Path:       model.ResourcePath{CallID: "c1", Kind: model.ResourceOperation, SubID: "op-1"},
			Kind:       model.EventOperation,
			Operation:  &model.Operation{ID: "op-1", Status: model.OpCompleted, ClientContext: cc},
		})
		r.idle(t)
		runs := r.eng.Runs(BuiltinName, "")
		if len(runs) != 1 || runs[0].Status != StatusCompleted {
			t.Fatalf("runs %+v", runs)
		}
	})
}

// A call botd placed (no run holds it) that becomes established starts the
// built-in flow for its invitees; with none, no run starts.
func TestBuiltinEstablishedTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, map[string]any{"invite": []any{"+12345678901"}}, callstate.Config{})
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		if n := r.g.count("invite:c1"); n != 1 {
			t.Fatalf("invites = %d", n)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, nil, callstate.Config{})
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		if runs := r.eng.Runs("", ""); len(runs) != 0 {
			t.Fatalf("a run started with no invitees: %+v", runs)
		}
	})
}

func TestBuiltinFailedInviteIsRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, map[string]any{"invite": []any{"+12345678901"}, "inviteRetries": 2, "inviteBackoff": "1s"}, callstate.Config{})
		busy := &graph.APIError{StatusCode: http.StatusForbidden, Code: "Forbidden"}
		r.g.inviteErr = []error{busy, busy, busy}
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		if n := r.g.count("invite:"); n != 1 {
			t.Fatalf("first attempt: %d invites", n)
		}
		time.Sleep(time.Second) // first backoff
		r.idle(t)
		if n := r.g.count("invite:"); n != 2 {
			t.Fatalf("after 1s: %d invites", n)
		}
		time.Sleep(2 * time.Second) // doubled
		r.idle(t)
		if n := r.g.count("invite:"); n != 3 {
			t.Fatalf("after 3s: %d invites", n)
		}
		time.Sleep(time.Hour)
		r.idle(t)
		if n := r.g.count("invite:"); n != 3 {
			t.Fatalf("retries not bounded: %d invites", n)
		}
		seen := map[string]bool{}
		for _, inv := range r.g.invites {
			if seen[inv.ClientContext] {
				t.Errorf("clientContext %s reused", inv.ClientContext)
			}
			seen[inv.ClientContext] = true
		}
		runs := r.eng.Runs(BuiltinName, StatusFailed)
		if len(runs) != 1 || runs[0].Error == "" {
			t.Fatalf("runs %+v", r.eng.Runs("", ""))
		}
	})
}

func TestBuiltinOutcomeUnknownInviteIsNotResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBuiltinRig(t, map[string]any{"invite": []any{"+12345678901"}, "inviteRetries": 3, "inviteBackoff": "1s"}, callstate.Config{OperationTimeout: time.Minute})
		r.g.inviteErr = []error{&graph.OutcomeUnknownError{Op: "invite", Err: context.DeadlineExceeded}}
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		r.idle(t)
		v, _ := r.store.Call("c1")
		if len(v.Operations) != 1 || v.Operations[0].Status.Final() {
			t.Fatalf("op should stay pending: %+v", v.Operations)
		}
		// Nothing arrives; the store times the op out and it is not resent.
		time.Sleep(5 * time.Minute)
		r.idle(t)
		if n := r.g.count("invite:"); n != 1 {
			t.Fatalf("invite resent: %d", n)
		}
		v, _ = r.store.Call("c1")
		if v.Operations[0].Status != model.OpFailed || v.Operations[0].FailureReason != "timeout" {
			t.Fatalf("op = %+v", v.Operations[0])
		}
		runs := r.eng.Runs(BuiltinName, StatusFailed)
		if len(runs) != 1 {
			t.Fatalf("runs %+v", r.eng.Runs("", ""))
		}
	})
}

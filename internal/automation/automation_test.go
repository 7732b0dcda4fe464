package automation

import (
	"context"
	"net/http"
	"strings"
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
)

// fakeGraph records what automation asked of Graph and answers from its
// fields. It is safe for the engine's concurrent workers.
type fakeGraph struct {
	// Graph's other methods are not automation's: calling one panics.
	calls.Graph
	mu        sync.Mutex
	calls     []string // "answer:<id>", "invite:<id>", ...
	answers   []graph.AnswerRequest
	rejects   []graph.RejectRequest
	redirects []graph.RedirectRequest
	invites   []graph.InviteRequest
	inviteErr []error // popped per invite; nil = success
	keepErr   error
	roster    []model.Participant
	block     chan struct{} // when set, actions wait on it
}

func (f *fakeGraph) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	blk := f.block
	f.mu.Unlock()
	if blk != nil {
		<-blk
	}
}

func (f *fakeGraph) Answer(_ context.Context, id string, r *graph.AnswerRequest) (graph.Meta, error) {
	f.record("answer:" + id)
	f.mu.Lock()
	f.answers = append(f.answers, *r)
	f.mu.Unlock()
	return graph.Meta{ClientRequestID: "crid"}, nil
}

func (f *fakeGraph) Reject(_ context.Context, id string, r *graph.RejectRequest) (graph.Meta, error) {
	f.record("reject:" + id)
	f.mu.Lock()
	f.rejects = append(f.rejects, *r)
	f.mu.Unlock()
	return graph.Meta{}, nil
}

func (f *fakeGraph) Redirect(_ context.Context, id string, r *graph.RedirectRequest) (graph.Meta, error) {
	f.record("redirect:" + id)
	f.mu.Lock()
	f.redirects = append(f.redirects, *r)
	f.mu.Unlock()
	return graph.Meta{}, nil
}

func (f *fakeGraph) Invite(_ context.Context, id string, r *graph.InviteRequest) (*model.Operation, graph.Meta, error) {
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

func (f *fakeGraph) KeepAlive(_ context.Context, id string) (graph.Meta, error) {
	f.record("keepalive:" + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	return graph.Meta{}, f.keepErr
}

func (f *fakeGraph) ListParticipants(_ context.Context, id string) ([]model.Participant, graph.Meta, error) {
	f.record("list:" + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.roster, graph.Meta{}, nil
}

func (f *fakeGraph) CountRefusal(string, error) {}

func (f *fakeGraph) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if len(c) >= len(prefix) && c[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

type rig struct {
	g     *fakeGraph
	store *callstate.Store
	eng   *Engine
	reg   *prometheus.Registry
	stop  func()
}

// newRig wires an engine to a real calls service and call store, as
// cmd/botd does: the engine observes the store.
func newRig(t *testing.T, cfg Config, scfg callstate.Config) *rig {
	t.Helper()
	r := &rig{g: &fakeGraph{}, reg: prometheus.NewRegistry()}
	// Both configs name only what the test is about: the rest is the
	// packages' defaults, passed explicitly.
	sc := callstate.DefaultConfig()
	if scfg.OperationTimeout != 0 {
		sc.OperationTimeout = scfg.OperationTimeout
	}
	if scfg.DeltaGapTimeout != 0 {
		sc.DeltaGapTimeout = scfg.DeltaGapTimeout
	}
	st, err := callstate.New(sc, zerolog.Nop(), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.ActionTimeout == 0 {
		cfg.ActionTimeout = DefaultActionTimeout
	}
	svc := calls.New(calls.Config{CallbackURL: "https://bot.contoso.com/api/calls"}, r.g, st, zerolog.Nop())
	r.eng, err = New(cfg, svc, st, zerolog.Nop(), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	storeDone := make(chan struct{})
	go func() { r.eng.Run(ctx); close(done) }()
	go func() { _ = st.Run(ctx); close(storeDone) }()
	r.stop = func() {
		r.eng.Close()
		cancel()
		<-done
		<-storeDone
	}
	return r
}

func callEvent(id string, ct model.ChangeType, state model.CallState) *model.Event {
	return &model.Event{
		ChangeType: ct,
		Path:       model.ResourcePath{CallID: id, Kind: model.ResourceCall},
		Kind:       model.EventCall,
		Call:       &model.Call{ID: id, State: state},
	}
}

func apply(t *testing.T, s *callstate.Store, ev *model.Event) {
	t.Helper()
	if _, err := s.Apply(ev); err != nil {
		t.Fatal(err)
	}
}

// drain waits until every queued action has run.
func (r *rig) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.eng.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestIncomingCallActions(t *testing.T) {
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
			r := newRig(t, Config{IncomingAction: tc.action, RejectReason: "busy", RedirectTarget: "+12345678901"}, callstate.Config{})
			defer r.stop()
			apply(t, r.store, callEvent("c1", model.ChangeCreated, model.StateIncoming))
			r.drain(t)
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
			if got := testutil.ToFloat64(r.eng.metrics.actions.WithLabelValues(tc.action, "ok")); got != 1 {
				t.Errorf("actions{%s,ok} = %v", tc.action, got)
			}
		})
	}
}

func TestDuplicateIncomingAnsweredOnce(t *testing.T) {
	r := newRig(t, Config{IncomingAction: "answer"}, callstate.Config{})
	defer r.stop()
	apply(t, r.store, callEvent("c1", model.ChangeCreated, model.StateIncoming))
	apply(t, r.store, callEvent("c1", model.ChangeCreated, model.StateIncoming))
	r.drain(t)
	if n := r.g.count("answer:"); n != 1 {
		t.Fatalf("answered %d times", n)
	}
}

func TestInviteOnEstablishAndCompletion(t *testing.T) {
	r := newRig(t, Config{InviteOnEstablish: []model.InvitationParticipantInfo{model.Invitee("+12345678901")}, KeepAlive: time.Hour}, callstate.Config{})
	defer r.stop()
	apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
	r.drain(t)
	if n := r.g.count("invite:c1"); n != 1 {
		t.Fatalf("invites = %d", n)
	}
	cc := r.g.invites[0].ClientContext
	v, _ := r.store.Call("c1")
	if len(v.Operations) != 1 || v.Operations[0].ClientContext != cc || v.Operations[0].ID != "op-1" || v.Operations[0].Status != model.OpRunning {
		t.Fatalf("operations = %+v", v.Operations)
	}
	// Graph's notification completes it.
	apply(t, r.store, &model.Event{
		ChangeType: model.ChangeDeleted,
		Path:       model.ResourcePath{CallID: "c1", Kind: model.ResourceOperation, SubID: "op-1"},
		Kind:       model.EventOperation,
		Operation:  &model.Operation{ID: "op-1", Status: model.OpCompleted, ClientContext: cc},
	})
	v, _ = r.store.Call("c1")
	if v.Operations[0].Status != model.OpCompleted {
		t.Fatalf("status = %s", v.Operations[0].Status)
	}
	// A duplicate "established" does not invite again.
	apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
	r.drain(t)
	if n := r.g.count("invite:c1"); n != 1 {
		t.Fatalf("invites after duplicate = %d", n)
	}
}

func TestFailedInviteIsRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{
			InviteOnEstablish: []model.InvitationParticipantInfo{model.Invitee("+12345678901")},
			InviteRetries:     2, InviteBackoff: time.Second, KeepAlive: time.Hour,
		}, callstate.Config{})
		defer r.stop()
		busy := &graph.APIError{StatusCode: http.StatusForbidden, Code: "Forbidden"}
		r.g.inviteErr = []error{busy, busy, busy}
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
		synctest.Wait()
		if n := r.g.count("invite:"); n != 1 {
			t.Fatalf("first attempt: %d invites", n)
		}
		time.Sleep(time.Second) // first backoff
		synctest.Wait()
		if n := r.g.count("invite:"); n != 2 {
			t.Fatalf("after 1s: %d invites", n)
		}
		time.Sleep(2 * time.Second) // doubled
		synctest.Wait()
		if n := r.g.count("invite:"); n != 3 {
			t.Fatalf("after 3s: %d invites", n)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := r.g.count("invite:"); n != 3 {
			t.Fatalf("retries not bounded: %d invites", n)
		}
		v, _ := r.store.Call("c1")
		for _, op := range v.Operations {
			if op.Status != model.OpFailed {
				t.Errorf("op %s status %s", op.ClientContext, op.Status)
			}
		}
		// Each retry is a new operation with its own clientContext.
		seen := map[string]bool{}
		for _, inv := range r.g.invites {
			if seen[inv.ClientContext] {
				t.Errorf("clientContext %s reused", inv.ClientContext)
			}
			seen[inv.ClientContext] = true
		}
	})
}

func TestOutcomeUnknownInviteIsNotResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{
			InviteOnEstablish: []model.InvitationParticipantInfo{model.Invitee("+12345678901")},
			InviteRetries:     3, InviteBackoff: time.Second, KeepAlive: time.Hour,
		}, callstate.Config{OperationTimeout: time.Minute})
		defer r.stop()
		r.g.inviteErr = []error{&graph.OutcomeUnknownError{Op: "invite", Err: context.DeadlineExceeded}}
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
		synctest.Wait()
		v, _ := r.store.Call("c1")
		if len(v.Operations) != 1 || v.Operations[0].Status.Final() {
			t.Fatalf("op should stay pending: %+v", v.Operations)
		}
		// Nothing arrives; the store times the op out and it is not resent.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := r.g.count("invite:"); n != 1 {
			t.Fatalf("invite resent: %d", n)
		}
		v, _ = r.store.Call("c1")
		if v.Operations[0].Status != model.OpFailed || v.Operations[0].FailureReason != "timeout" {
			t.Fatalf("op = %+v", v.Operations[0])
		}
	})
}

func TestKeepAliveWhileEstablished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: 15 * time.Minute}, callstate.Config{})
		defer r.stop()
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
		time.Sleep(15*time.Minute + time.Second)
		synctest.Wait()
		if n := r.g.count("keepalive:c1"); n != 1 {
			t.Fatalf("after 15m: %d keepalives", n)
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if n := r.g.count("keepalive:c1"); n != 3 {
			t.Fatalf("after 45m: %d keepalives", n)
		}
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateTerminated))
		synctest.Wait()
		if r.eng.KeepAlives() != 0 {
			t.Fatal("keepalive timer survives termination")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := r.g.count("keepalive:c1"); n != 3 {
			t.Fatalf("keepalive after termination: %d", n)
		}
	})
}

func TestKeepAlive404TerminatesCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: time.Minute}, callstate.Config{})
		defer r.stop()
		r.g.keepErr = &graph.APIError{StatusCode: http.StatusNotFound, Code: "NotFound"}
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		v, _ := r.store.Call("c1")
		if v.State != model.StateTerminated {
			t.Fatalf("state = %s", v.State)
		}
		if got := testutil.ToFloat64(r.eng.metrics.actions.WithLabelValues("keepalive", "not_found")); got != 1 {
			t.Errorf("keepalive not_found = %v", got)
		}
		if r.eng.KeepAlives() != 0 {
			t.Error("keepalive timer kept")
		}
	})
}

func TestRosterGapTriggersResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: time.Hour}, callstate.Config{DeltaGapTimeout: 10 * time.Second})
		defer r.stop()
		john := model.Participant{ID: "p-john", Info: model.ParticipantInfo{Identity: &model.IdentitySet{User: &model.Identity{ID: "john"}}}}
		r.g.roster = []model.Participant{john}
		apply(t, r.store, callEvent("c1", model.ChangeUpdated, model.StateEstablished))
		// Delta 2 arrives, 1 never does.
		apply(t, r.store, &model.Event{
			ChangeType: model.ChangeUpdated,
			Path:       model.ResourcePath{CallID: "c1", Kind: model.ResourceParticipants},
			Kind:       model.EventRosterDelta,
			Delta:      &model.DeltaRoster{SequenceNumber: 2, Participants: []model.Participant{{ID: "p-x", RosterSequenceNumber: 2}}},
		})
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := r.g.count("list:c1"); n != 1 {
			t.Fatalf("list participants calls = %d", n)
		}
		v, _ := r.store.Call("c1")
		if v.RosterNeedsResync || len(v.Participants) != 1 || v.Participants[0].ID != "p-john" {
			t.Fatalf("after resync: needsResync=%v participants=%+v", v.RosterNeedsResync, v.Participants)
		}
	})
}

func TestQueueFullIsCountedNotDropped(t *testing.T) {
	r := newRig(t, Config{IncomingAction: "answer", Workers: 1, QueueSize: 1}, callstate.Config{})
	r.g.block = make(chan struct{})
	// The first occupies the worker, the second the queue, the third is refused.
	apply(t, r.store, callEvent("c1", model.ChangeCreated, model.StateIncoming))
	for r.g.count("answer:") == 0 {
		time.Sleep(time.Millisecond)
	}
	apply(t, r.store, callEvent("c2", model.ChangeCreated, model.StateIncoming))
	apply(t, r.store, callEvent("c3", model.ChangeCreated, model.StateIncoming))
	if got := testutil.ToFloat64(r.eng.metrics.refused.WithLabelValues("answer", "queue_full")); got != 1 {
		t.Errorf("refused = %v", got)
	}
	close(r.g.block)
	r.drain(t)
	r.stop()
	if n := r.g.count("answer:"); n != 2 {
		t.Errorf("answered %d", n)
	}
}

func TestCloseDrainsQueuedWork(t *testing.T) {
	r := newRig(t, Config{IncomingAction: "answer", Workers: 1, QueueSize: 16}, callstate.Config{})
	r.g.block = make(chan struct{})
	for _, id := range []string{"a", "b", "c", "d"} {
		apply(t, r.store, callEvent(id, model.ChangeCreated, model.StateIncoming))
	}
	r.eng.Close()
	// After Close nothing new is accepted...
	apply(t, r.store, callEvent("late", model.ChangeCreated, model.StateIncoming))
	if got := testutil.ToFloat64(r.eng.metrics.refused.WithLabelValues("answer", "shutting_down")); got != 1 {
		t.Errorf("refused after close = %v", got)
	}
	// ...but everything accepted runs.
	close(r.g.block)
	r.drain(t)
	r.stop()
	if n := r.g.count("answer:"); n != 4 {
		t.Errorf("answered %d of 4 accepted", n)
	}
}

// TestConfigRefusesZero: no required setting is silently defaulted; a
// zero one is refused with its name.
func TestConfigRefusesZero(t *testing.T) {
	full := Config{Workers: DefaultWorkers, QueueSize: DefaultQueueSize, ActionTimeout: DefaultActionTimeout}
	for field, zero := range map[string]func(*Config){
		"Workers":       func(c *Config) { c.Workers = 0 },
		"QueueSize":     func(c *Config) { c.QueueSize = 0 },
		"ActionTimeout": func(c *Config) { c.ActionTimeout = 0 },
	} {
		cfg := full
		zero(&cfg)
		st, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(cfg, nil, st, zerolog.Nop(), prometheus.NewRegistry())
		if err == nil || e != nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s 0: engine %v, err %v; want an error naming %s", field, e, err, field)
		}
	}
}

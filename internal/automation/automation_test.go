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
	"github.com/botd/botd/internal/testkit"
)

// fakeGraph records what automation asked of Graph and answers from its
// fields. It is safe for the engine's concurrent workers.
type fakeGraph struct {
	// Graph's other methods are not automation's: calling one panics.
	calls.Graph
	mu      sync.Mutex
	calls   []string // "keepalive:<id>", "list:<id>"
	keepErr error
	roster  []model.Participant
	block   chan struct{} // when set, actions wait on it
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
	return testkit.CountPrefix(f.calls, prefix)
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

// drain waits until every queued action has run.
func (r *rig) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.eng.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAliveWhileEstablished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: 15 * time.Minute}, callstate.Config{})
		defer r.stop()
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
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
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateTerminated))
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

// TestKeepAliveResumesForRestoredCall: a call put back from the journal
// gets its first keepAlive within the first minute, not a full period
// later, then one every period; a restored call not established gets none.
func TestKeepAliveResumesForRestoredCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: 15 * time.Minute}, callstate.Config{})
		defer r.stop()
		for id, state := range map[string]model.CallState{"c1": model.StateEstablished, "c2": model.StateEstablishing} {
			if _, err := r.store.Restore(callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: id, State: state}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := r.g.count("keepalive:c1"); n != 1 {
			t.Fatalf("a minute after the restore: %d keepalives, want 1", n)
		}
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		if n := r.g.count("keepalive:c1"); n != 2 {
			t.Fatalf("16m after the restore: %d keepalives, want 2", n)
		}
		if n := r.g.count("keepalive:c2"); n != 0 {
			t.Fatalf("establishing call restored: %d keepalives", n)
		}
	})
}

func TestKeepAlive404TerminatesCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Config{KeepAlive: time.Minute}, callstate.Config{})
		defer r.stop()
		r.g.keepErr = &graph.APIError{StatusCode: http.StatusNotFound, Code: "NotFound"}
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
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
		testkit.Apply(t, r.store.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		// Delta 2 arrives, 1 never does.
		testkit.Apply(t, r.store.Apply, &model.Event{
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
	r := newRig(t, Config{KeepAlive: time.Hour, Workers: 1, QueueSize: 1}, callstate.Config{})
	r.g.block = make(chan struct{})
	// The first occupies the worker, the second the queue, the third is refused.
	r.eng.resync("c1")
	for r.g.count("list:") == 0 {
		time.Sleep(time.Millisecond)
	}
	r.eng.resync("c2")
	r.eng.resync("c3")
	if got := testutil.ToFloat64(r.eng.metrics.refused.WithLabelValues(actionRosterResync, "queue_full")); got != 1 {
		t.Errorf("refused = %v", got)
	}
	close(r.g.block)
	r.drain(t)
	r.stop()
	if n := r.g.count("list:"); n != 2 {
		t.Errorf("resynced %d", n)
	}
}

func TestCloseDrainsQueuedWork(t *testing.T) {
	r := newRig(t, Config{KeepAlive: time.Hour, Workers: 1, QueueSize: 16}, callstate.Config{})
	r.g.block = make(chan struct{})
	for _, id := range []string{"a", "b", "c", "d"} {
		r.eng.resync(id)
	}
	r.eng.Close()
	// After Close nothing new is accepted...
	r.eng.resync("late")
	if got := testutil.ToFloat64(r.eng.metrics.refused.WithLabelValues(actionRosterResync, "shutting_down")); got != 1 {
		t.Errorf("refused after close = %v", got)
	}
	// ...but everything accepted runs.
	close(r.g.block)
	r.drain(t)
	r.stop()
	if n := r.g.count("list:"); n != 4 {
		t.Errorf("resynced %d of 4 accepted", n)
	}
}

// TestConfigRefusesZero: no required setting is silently defaulted; a
// zero one is refused with its name.
func TestConfigRefusesZero(t *testing.T) {
	full := Config{KeepAlive: time.Hour, Workers: DefaultWorkers, QueueSize: DefaultQueueSize, ActionTimeout: DefaultActionTimeout}
	for field, zero := range map[string]func(*Config){
		"KeepAlive":     func(c *Config) { c.KeepAlive = 0 },
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

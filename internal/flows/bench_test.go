package flows

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// waitFlow starts on every established call and waits an hour for a key
// that never comes: the run receives each change of its call and handles
// none of them.
const waitFlow = `name: wait
trigger: {on: [established]}
steps:
  wait:
    timeout: 1h
    on:
      - event: tone
        end: completed
`

// parkFlow is started through Start and waits an hour.
const parkFlow = `name: park
steps:
  wait:
    timeout: 1h
    on:
      - event: timeout
        end: completed
`

// engineRig is an engine for one flow file (src; "" for none) on a real
// call store, with its workers running until stop; no calls service, so
// its flows act only on the engine's own state.
type engineRig struct {
	store *callstate.Store
	eng   *Engine
	stop  func()
}

func newEngineRig(tb testing.TB, src string, cfg Config) *engineRig {
	tb.Helper()
	var set *Set
	if src != "" {
		var err error
		// Flows apart by a "---" line are files of their own.
		var srcs []Source
		for i, doc := range strings.Split(src, "\n---\n") {
			srcs = append(srcs, Source{File: rigFile(i), Data: []byte(doc)})
		}
		if set, err = Load(srcs, Options{DefaultTimeout: DefaultWaitTimeout}); err != nil {
			tb.Fatal(err)
		}
	}
	st, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(cfg, set, nil, st, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.Run(ctx) }()
	return &engineRig{store: st, eng: e, stop: func() { cancel(); wg.Wait() }}
}

func newBenchRig(b *testing.B, src string, maxRuns int) *engineRig {
	cfg := DefaultConfig()
	cfg.MaxRuns = maxRuns
	r := newEngineRig(b, src, cfg)
	b.Cleanup(r.stop)
	return r
}

// idle waits until the engine's workers have handled every event posted.
func (r *engineRig) idle() {
	for r.eng.busy.Load() != 0 {
		runtime.Gosched() // a sleep would cost more than the work measured
	}
}

func benchApply(b *testing.B, s *callstate.Store, ev *model.Event) {
	if _, err := s.Apply(ev); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkObserveChange is the cost of one roster change (a participant
// joins or leaves) on an established call, from the store's Apply to the
// engine having handled it: with no flow, and with a run waiting on the
// call that receives the change and matches none of its transitions. The
// difference is what a waiting run adds to each change of its call.
func BenchmarkObserveChange(b *testing.B) {
	for _, c := range []struct{ name, flow string }{{"no_run", ""}, {"waiting_run", waitFlow}} {
		b.Run(c.name, func(b *testing.B) {
			r := newBenchRig(b, c.flow, DefaultMaxRuns)
			benchApply(b, r.store, &model.Event{
				ChangeType: model.ChangeUpdated, Kind: model.EventCall,
				Path: model.ResourcePath{CallID: "c1", Kind: model.ResourceCall},
				Call: &model.Call{ID: "c1", State: model.StateEstablished},
			})
			benchApply(b, r.store, testkit.RosterEvent("c1", "bot", "a"))
			r.idle()
			if got, want := len(r.eng.RunsForCall("c1")), len(c.flow)/len(waitFlow); got != want {
				b.Fatalf("%d runs hold the call, want %d", got, want)
			}
			rosters := [2]*model.Event{testkit.RosterEvent("c1", "bot"), testkit.RosterEvent("c1", "bot", "a")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchApply(b, r.store, rosters[i%2])
				r.idle()
			}
			b.StopTimer()
			if c.flow != "" {
				if v := r.eng.Runs("wait", ""); len(v) != 1 || v[0].Status != StatusRunning {
					b.Fatalf("runs %+v, want one still waiting", v)
				}
			}
		})
	}
}

// BenchmarkWaitingRuns is the memory one waiting run holds: b.N runs are
// started and left waiting, and the heap they add is reported per run
// (B/run). Run it with -benchtime 10000x for 10,000 runs.
func BenchmarkWaitingRuns(b *testing.B) {
	r := newBenchRig(b, parkFlow, max(b.N, 1)+1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.eng.Start("park", nil); err != nil {
			b.Fatalf("run %d: %v", i, err)
		}
	}
	r.idle()
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := len(r.eng.Runs("park", StatusRunning)); n != b.N {
		b.Fatalf("%d runs waiting, want %d", n, b.N)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "B/run")
	b.ReportMetric(0, "ns/op")
}

// rigFile names the rig's i-th flow file: rig.yaml, then rig1.yaml...
func rigFile(i int) string {
	if i == 0 {
		return "rig.yaml"
	}
	return fmt.Sprintf("rig%d.yaml", i)
}

// Package gctune keeps Go's garbage collector from running more often than
// a heap of a given size needs: a floor under the heap goal.
//
// With GOGC=100 the runtime collects whenever the heap doubles what the
// last collection found live. A botd holding a thousand calls has a few
// megabytes live, so under load it collects many times a second, each time
// marking the same small heap and slowing every request with write barriers
// and mark assists. After each collection the Tuner sets the GC percent so
// that the next goal is at least the floor: above it, once the live heap
// is more than half the floor, the percent is GOGC's own and nothing
// changes. A memory limit (GOMEMLIMIT) still wins over the goal.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// What the runtime's heap goal is made of (runtime/metrics): the heap the
// last collection marked live, and the stacks and globals it scanned. The
// goal is live + (live + stacks + globals) * percent / 100.
var goalMetrics = [...]string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Percent is the GC percent whose goal for a live heap of live bytes, and
// roots bytes of stacks and globals, is at least floor, and never below
// base (GOGC's own). A live heap of 0 is one no collection has measured
// yet: base, since the runtime's first goal is its own minimum heap.
func Percent(base int, floor, live, roots uint64) int {
	if live == 0 || live >= floor {
		return base
	}
	// goal = live + (live+roots) * p/100 >= floor  <=>  p >= (floor-live)*100/(live+roots)
	gap, scanned := floor-live, live+roots
	if scanned < live { // overflow: roots beyond any heap
		return base
	}
	if gap > math.MaxUint64/100 {
		return math.MaxInt32
	}
	need := gap * 100 / scanned
	if gap*100%scanned != 0 {
		need++ // rounded up
	}
	if need > math.MaxInt32 {
		need = math.MaxInt32
	}
	return max(base, int(need))
}

// Tuner sets the GC percent after each collection. Its zero value is not
// usable; Start makes one.
type Tuner struct {
	floor uint64
	base  int

	percent atomic.Int64  // what it last set
	cycles  atomic.Uint64 // collections it has seen

	mu      sync.Mutex // held while tuning, and by Stop
	stopped bool
	sample  []metrics.Sample
}

// active holds that one Tuner runs in the process: the GC percent is the
// process's, and two Tuners would each take the other's for GOGC's.
var active atomic.Bool

// Start begins tuning toward floor bytes, from GOGC's percent as it is now.
// It returns nil, and changes nothing, when floor is 0, the collector is off
// (GOGC=off) or another Tuner runs. Stop ends it and puts GOGC's percent
// back.
func Start(floor uint64) *Tuner {
	if floor == 0 || !active.CompareAndSwap(false, true) {
		return nil
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		active.Store(false)
		return nil
	}
	t := &Tuner{floor: floor, base: base, sample: make([]metrics.Sample, len(goalMetrics))}
	for i, name := range goalMetrics {
		t.sample[i].Name = name
	}
	t.percent.Store(int64(base))
	t.mu.Lock()
	t.tuneLocked()
	t.mu.Unlock()
	t.arm()
	return t
}

// sentinel is what a collection frees to tell the Tuner it ran: big enough
// not to share a tiny allocation with other objects, which could keep it
// alive.
type sentinel struct{ _ [64]byte }

// arm allocates a sentinel for the next collection to free; its cleanup
// tunes and arms again.
func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) { t.collected() }, t)
}

func (t *Tuner) collected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.cycles.Add(1)
	t.tuneLocked()
	t.arm()
}

func (t *Tuner) tuneLocked() {
	metrics.Read(t.sample)
	var v [len(goalMetrics)]uint64
	for i, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return // a runtime without these metrics: left as it is
		}
		v[i] = s.Value.Uint64()
	}
	p := Percent(t.base, t.floor, v[0], v[1]+v[2])
	if int64(p) != t.percent.Load() {
		debug.SetGCPercent(p)
		t.percent.Store(int64(p))
	}
}

// GCPercent is the percent the Tuner last set.
func (t *Tuner) GCPercent() int { return int(t.percent.Load()) }

// Cycles is how many collections the Tuner has seen since Start.
func (t *Tuner) Cycles() uint64 { return t.cycles.Load() }

// Stop ends the tuning and puts GOGC's percent back. It is safe on a nil
// Tuner.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.base)
		t.percent.Store(int64(t.base))
		active.Store(false)
	}
}

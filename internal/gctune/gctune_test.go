package gctune

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base               int
		floor, live, roots uint64
		want               int
	}{
		{100, 32 * mib, 4 * mib, 0, 700},         // 4 MiB * 8 = 32 MiB
		{100, 32 * mib, 3 * mib, 0, 967},         // rounded up: 3 * 10.67
		{100, 32 * mib, 2 * mib, 2 * mib, 750},   // the roots count: 2 + 4 * 7.5
		{100, 32 * mib, 16 * mib, 0, 100},        // the floor is GOGC's own goal
		{100, 32 * mib, 20 * mib, 0, 100},        // above half the floor: GOGC's
		{100, 32 * mib, 64 * mib, 0, 100},        // above the floor
		{300, 32 * mib, 16 * mib, 0, 300},        // never below GOGC's percent
		{100, 32 * mib, 0, mib, 100},             // no collection yet: GOGC's
		{100, 32 * mib, 1, 0, 2147483647},        // one byte live: clamped
		{100, 1 << 63, 1, 0, 2147483647},         // no overflow
		{100, 1<<64 - 1, 1 << 62, 0, 2147483647}, // nor here
		{100, 1 << 40, 1 << 20, 1<<64 - 1, 100},  // nor in the roots
		{100, 10, 9, 0, 100},                     // 12% needed, GOGC's is more
	} {
		if got := Percent(c.base, c.floor, c.live, c.roots); got != c.want {
			t.Errorf("Percent(%d, %d, %d, %d) = %d, want %d", c.base, c.floor, c.live, c.roots, got, c.want)
		}
	}
}

func FuzzPercent(f *testing.F) {
	f.Add(100, uint64(32<<20), uint64(4<<20), uint64(1<<20))
	f.Add(0, uint64(1<<63), uint64(3), uint64(0))
	f.Fuzz(func(t *testing.T, base int, floor, live, roots uint64) {
		if base < 0 || base > 1<<20 {
			return
		}
		p := Percent(base, floor, live, roots)
		if p < base {
			t.Fatalf("Percent(%d, %d, %d, %d) = %d, below the base", base, floor, live, roots, p)
		}
		if live > 0 && live < floor && live+roots >= live && p < 1<<31-1 && p > base {
			// The goal meets the floor, and one percent less would not.
			scanned := float64(live) + float64(roots)
			goal := float64(live) + scanned*float64(p)/100
			less := float64(live) + scanned*float64(p-1)/100
			if goal < float64(floor)*(1-1e-9) || less >= float64(floor)*(1+1e-9) {
				t.Fatalf("Percent(%d, %d, %d, %d) = %d: goal %.0f, one less %.0f", base, floor, live, roots, p, goal, less)
			}
		}
	})
}

// gogc is the runtime's GC percent as it is now.
func gogc(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// collectUntil runs collections until ok holds, for at most 10 s: the
// Tuner's cleanup runs on its own goroutine some time after a collection.
func collectUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s of collections: %s", what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

func TestTunerRaisesThePercentAndStopPutsItBack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	// This test's live heap is a few MiB: a floor of 1 GiB needs a percent
	// far above 100.
	runtime.GC() // so that the live heap is measured
	tu := Start(1 << 30)
	if tu == nil {
		t.Fatal("Start returned nil with GOGC at 100")
	}
	t.Cleanup(tu.Stop)
	if tu.GCPercent() <= 100 || gogc(t) != tu.GCPercent() {
		t.Fatalf("right after Start: Tuner's percent %d, runtime's %d; want them equal and above 100", tu.GCPercent(), gogc(t))
	}
	start := tu.Cycles()
	collectUntil(t, "the Tuner saw no collection", func() bool { return tu.Cycles() >= start+2 })
	if gogc(t) != tu.GCPercent() || tu.GCPercent() <= 100 {
		t.Fatalf("after collections: Tuner's percent %d, runtime's %d", tu.GCPercent(), gogc(t))
	}

	// A live heap above the floor gets GOGC's own percent back.
	big := make([]byte, 8<<20)
	tu.mu.Lock()
	tu.floor = 1 << 20
	tu.mu.Unlock()
	collectUntil(t, "the percent did not come back to 100 with the live heap above the floor", func() bool { return gogc(t) == 100 })
	runtime.KeepAlive(big)

	tu.mu.Lock()
	tu.floor = 1 << 30
	tu.mu.Unlock()
	collectUntil(t, "the percent did not rise again", func() bool { return gogc(t) > 100 })
	tu.Stop()
	if gogc(t) != 100 || tu.GCPercent() != 100 {
		t.Fatalf("after Stop: runtime's percent %d, Tuner's %d; want 100", gogc(t), tu.GCPercent())
	}
	seen := tu.Cycles()
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond) // room for a cleanup that should not run
	if gogc(t) != 100 || tu.Cycles() != seen {
		t.Fatalf("a stopped Tuner went on: percent %d, cycles %d then %d", gogc(t), seen, tu.Cycles())
	}
}

func TestStartLeavesAloneWhatIsOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if tu := Start(0); tu != nil {
		t.Fatal("Start(0) tunes")
	}
	debug.SetGCPercent(-1)
	if tu := Start(1 << 30); tu != nil {
		t.Fatal("Start tunes with the collector off")
	}
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("the collector was turned on: percent %d", p)
	}
	var nilTuner *Tuner
	nilTuner.Stop()
	debug.SetGCPercent(100)

	first := Start(1 << 30)
	if first == nil {
		t.Fatal("Start returned nil")
	}
	if second := Start(1 << 30); second != nil {
		second.Stop()
		t.Fatal("a second Tuner started while one runs")
	}
	first.Stop()
	again := Start(1 << 30)
	if again == nil {
		t.Fatal("no Tuner started after the first stopped")
	}
	again.Stop()
}

func TestTheCollectorStillRuns(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	// An 8 MiB floor and this test's small live heap: 256 MiB of garbage
	// must bring about a collection every 8 MiB or so, not none (a percent
	// too high would let the heap grow without one).
	tu := Start(8 << 20)
	if tu == nil {
		t.Fatal("Start returned nil")
	}
	t.Cleanup(tu.Stop)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 256 {
		sink = make([]byte, 1<<20)
	}
	runtime.ReadMemStats(&after)
	if n := after.NumGC - before.NumGC; n < 8 {
		t.Fatalf("%d collections for 256 MiB of garbage with an 8 MiB floor; want at least 8", n)
	}
	if after.HeapSys > 128<<20 {
		t.Fatalf("the heap grew to %d bytes with an 8 MiB floor", after.HeapSys)
	}
}

var sink []byte

// BenchmarkGarbage is the load the floor is for: a small live heap full
// of pointers (1,000 "calls" of 64 small objects, about 3 MiB) and about
// 2 KB of garbage per op in 15 objects (a callback's). gcs/Mop is the
// collections per million ops.
func BenchmarkGarbage(b *testing.B) {
	for _, floor := range []uint64{0, 32 << 20} {
		b.Run(fmt.Sprintf("floor=%dMiB", floor>>20), func(b *testing.B) {
			defer debug.SetGCPercent(debug.SetGCPercent(100))
			calls := make([][]*[32]byte, 1000)
			for i := range calls {
				calls[i] = make([]*[32]byte, 64)
				for j := range calls[i] {
					calls[i][j] = new([32]byte)
				}
			}
			tu := Start(floor)
			defer tu.Stop()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				for range 15 {
					garbage = make([]*byte, 17) // 136 B with pointers, 15 of them about 2 KB
				}
			}
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(calls)
			b.ReportMetric(float64(after.NumGC-before.NumGC)/float64(b.N)*1e6, "gcs/Mop")
		})
	}
}

var garbage []*byte

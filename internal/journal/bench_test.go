package journal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// BenchmarkApplyRoster is the store's part of the callback path, a full
// roster applied to an established call, with and without a journal
// writer observing the store: what the writer adds to a callback is the
// mark of a changed call, not a disk write.
func BenchmarkApplyRoster(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", on), func(b *testing.B) {
			s := newStore(b)
			if on {
				w := NewWriter(open(b, b.TempDir()), s, writerCfg(), zerolog.Nop(), nil)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); w.Run(ctx) }()
				b.Cleanup(func() { cancel(); <-done })
			}
			testkit.Apply(b, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
			evs := []*model.Event{testkit.RosterEvent("c1", "p1", "p2"), testkit.RosterEvent("c1", "p1", "p3")}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				testkit.Apply(b, s.Apply, evs[i%2])
				i++
			}
		})
	}
}

// BenchmarkRecover10k loads a journal of 10,000 established calls with
// two participants each into a new store and refreshes each through a
// refresher that answers at once: the time recovery itself takes, Graph's
// answer time and the rate limit aside.
func BenchmarkRecover10k(b *testing.B) {
	dir := b.TempDir()
	s := newStore(b)
	j := open(b, dir)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	for i := range 10000 {
		id := fmt.Sprintf("call-%05d", i)
		testkit.Apply(b, s.Apply, testkit.CallEvent(id, model.ChangeUpdated, model.StateEstablished))
		testkit.Apply(b, s.Apply, testkit.RosterEvent(id, "p1", "p2"))
	}
	if !w.Flush() {
		b.Fatal("flush failed")
	}
	for b.Loop() {
		s2 := newStore(b)
		w2 := NewWriter(j, s2, writerCfg(), zerolog.Nop(), nil)
		got, err := w2.Recover(context.Background(), s2, &fakeGraph{store: s2}, RecoverConfig{Retention: time.Hour, Rate: 1e9, Workers: 4})
		if err != nil || got.Restored != 10000 {
			b.Fatalf("Recover = %+v, %v", got, err)
		}
	}
}

package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
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

// BenchmarkFlushChanged is the writer's cost for a call that changed
// since the last write, in a batch of 1,000 such calls, each with its
// full bounded history (64 transitions): one state change each, then
// one Flush, and a checkpoint whenever the log reaches its default
// length, as Run's checkpointer would. ns/op is per changed call.
func BenchmarkFlushChanged(b *testing.B) {
	const calls = 1000
	s := newStore(b)
	j := open(b, b.TempDir())
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	states := []model.CallState{model.StateEstablished, model.StateHold}
	ids := make([]string, calls)
	for i := range ids {
		ids[i] = fmt.Sprintf("call-%04d", i)
		for k := range 70 {
			testkit.Apply(b, s.Apply, testkit.CallEvent(ids[i], model.ChangeUpdated, states[k%2]))
		}
		testkit.Apply(b, s.Apply, testkit.RosterEvent(ids[i], "p1", "p2"))
	}
	if !w.Flush() {
		b.Fatal("flush failed")
	}
	b.ReportAllocs()
	before := writtenBytes()
	n := 0
	for b.Loop() {
		testkit.Apply(b, s.Apply, testkit.CallEvent(ids[n%calls], model.ChangeUpdated, states[n/calls%2]))
		n++
		if n%calls == 0 && !w.Flush() {
			b.Fatal("flush failed")
		}
		if n%calls == 0 && j.LogSize() >= DefaultCheckpointBytes && !w.Checkpoint() {
			b.Fatal("checkpoint failed")
		}
	}
	// The bytes written (the log's frames, and the pages a checkpoint's
	// transaction changes): per changed call, the disk's share of the
	// cost.
	if before >= 0 {
		b.ReportMetric(float64(writtenBytes()-before)/float64(n), "wbytes/op")
	}
}

// writtenBytes is what this process has written with write calls
// (wchar in /proc/self/io), or -1 where there is no such file.
func writtenBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// BenchmarkPutNew is one write of 1,000 calls new to the journal, each
// with 64 transitions: the first write after many calls started, or a
// migration. Put in random order, bbolt's nodes took time in the square
// of the batch.
func BenchmarkPutNew(b *testing.B) {
	recs := make([]callstate.Record, 1000)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range recs {
		r := &recs[i]
		*r = callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: fmt.Sprintf("call-%04d", (i*7919)%1000), State: model.StateEstablished}, CreatedAt: t0}
		for k := range 64 {
			r.Transitions = append(r.Transitions, callstate.Transition{From: model.StateEstablished, To: model.StateHold, At: t0.Add(time.Duration(k) * time.Second), Cause: "notification value[0] changeType updated"})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		j := open(b, b.TempDir())
		b.StartTimer()
		if err := j.Put(recs, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAfterCrash is a start after a crash: Open folds a log of
// 20,000 frames (1,000 calls, 20 state changes each, a write after each
// round) into the file. ns/op is per frame.
func BenchmarkOpenAfterCrash(b *testing.B) {
	const calls, rounds = 1000, 20
	src := b.TempDir()
	s := newStore(b)
	j, err := Open(src)
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	states := []model.CallState{model.StateEstablished, model.StateHold}
	for r := range rounds {
		for i := range calls {
			testkit.Apply(b, s.Apply, testkit.CallEvent(fmt.Sprintf("call-%04d", i), model.ChangeUpdated, states[r%2]))
		}
		if !w.Flush() {
			b.Fatal("flush failed")
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	files, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(src, f.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f.Name()), data, 0o600)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		j, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if frames, _ := j.Replayed(); frames != calls*rounds {
			b.Fatalf("folded %d frames, want %d", frames, calls*rounds)
		}
		b.StopTimer()
		_ = j.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls*rounds), "ns/frame")
}

package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// loadAll is every record Load gives, by call id.
func loadAll(t testing.TB, j *Journal) map[string]callstate.Record {
	t.Helper()
	out := map[string]callstate.Record{}
	if err := j.Load(func(r callstate.Record) error { out[r.Call.ID] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameAs fails t unless the journal holds exactly want: each call's
// state, roster size and transitions.
func sameAs(t testing.TB, j *Journal, want map[string]callstate.Record, when string) {
	t.Helper()
	got := loadAll(t, j)
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Fatalf("%s: %s not in the journal", when, id)
		}
		if g.Call.State != w.Call.State || len(g.Participants) != len(w.Participants) || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Fatalf("%s: %s is %s with %d participants, created %v; want %s, %d, %v", when, id, g.Call.State, len(g.Participants), g.CreatedAt, w.Call.State, len(w.Participants), w.CreatedAt)
		}
		sameTransitions(t, g, w)
		if keys, _ := storedTransitions(t, j, id); keys != len(w.Transitions) {
			t.Fatalf("%s: %s has %d transition keys for %d transitions", when, id, keys, len(w.Transitions))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Fatalf("%s: the journal holds %s, never written", when, id)
		}
	}
}

// oneCallWritten is a journal in a new directory, its writer (logging to
// log) over a new store, and call c1, established, written to the log.
func oneCallWritten(t *testing.T, log zerolog.Logger) (string, *callstate.Store, *Journal, *Writer) {
	t.Helper()
	dir := t.TempDir()
	s := newStore(t)
	j := open(t, dir)
	w := NewWriter(j, s, writerCfg(), log, nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateEstablished))
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	return dir, s, j, w
}

// FuzzWriterThroughCrashes drives a store and its writer through any
// sequence of changes to a few calls (state changes past the ring of
// transitions, rosters, ends, sweeps from memory, ids used again), writes,
// checkpoints and crashes. After a crash the journal holds, for each call,
// its record as of the last write that had it, or of the checkpoint
// after; the log and the file together are never more nor less.
func FuzzWriterThroughCrashes(f *testing.F) {
	f.Add([]byte{0, 0, 3, 0, 3, 5, 1, 3, 4, 0, 3, 5})
	f.Add([]byte{0, 7, 3, 7, 3, 7, 3, 2, 3, 6, 3, 0, 3, 5, 4, 5})
	f.Add([]byte{0x0, 0x1, 0x7, 0x3, 0x2, 0x3, 0x6, 0x3, 0x4, 0x0, 0x7, 0x3, 0x5})
	f.Add([]byte{1, 0, 8, 7, 9, 3, 10, 2, 11, 3, 14, 4, 5, 6, 3, 0, 8, 3, 5})
	f.Add([]byte{0, 1, 12, 0, 0x31, 1, 0x30, 0x1c, 0, 0x32, 0x14, 2, 0x31, 0x18, 0x10})
	f.Add([]byte{0, 1, 12, 0, 1, 0x34, 1, 0x0d, 4, 0, 0x35, 3, 12, 0x1d, 0x35})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		synctest.Test(t, func(t *testing.T) {
			cfg := callstate.DefaultConfig()
			cfg.MaxTransitions = 4
			cfg.Retention = time.Minute
			cfg.SweepInterval = 10 * time.Second
			s, err := callstate.New(cfg, zerolog.Nop(), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go s.Run(ctx)
			dir := t.TempDir()
			j := open(t, dir)
			wcfg := writerCfg()
			w := NewWriter(j, s, wcfg, zerolog.Nop(), nil)
			want := map[string]callstate.Record{}
			dirty := map[string]bool{}
			states := []model.CallState{model.StateEstablished, model.StateHold}
			for n, op := range ops {
				id := fmt.Sprintf("c%d", op&3)
				// A call is written when a change to it reaches the writer:
				// an event the store ignores makes none.
				apply := func(ev *model.Event) {
					if len(testkit.Apply(t, s.Apply, ev)) > 0 {
						dirty[id] = true
					}
				}
				switch op >> 2 & 7 {
				case 0:
					apply(testkit.CallEvent(id, model.ChangeUpdated, states[n%2]))
				case 1:
					apply(testkit.RosterEvent(id, slices.Repeat([]string{"p"}, n%3+1)...))
				case 2:
					if len(s.MarkTerminated(id, "test")) > 0 {
						dirty[id] = true
					}
				case 3:
					if !w.Flush() {
						t.Fatal("flush failed")
					}
					for id := range dirty {
						if r, ok := s.Record(id); ok {
							want[id] = r
						}
					}
					clear(dirty)
				case 4:
					// A checkpoint writes the current records of what the
					// logs hold.
					for id := range w.logged {
						if r, ok := s.Record(id); ok {
							want[id] = r
						}
					}
					if op&0x20 == 0 {
						if !w.Checkpoint() {
							t.Fatal("checkpoint failed")
						}
						sameAs(t, j, want, fmt.Sprintf("op %d, after a checkpoint", n))
						break
					}
					// And a write meanwhile, to the next log.
					for id := range dirty {
						if r, ok := s.Record(id); ok {
							want[id] = r
						}
					}
					clear(dirty)
					done := make(chan bool)
					go func() { done <- w.Checkpoint() }()
					if !w.Flush() || !<-done {
						t.Fatal("a write during a checkpoint failed")
					}
				case 5:
					if op&0x20 != 0 && len(w.logged) > 0 {
						// A crash in the middle of a checkpoint: one call's
						// current record is in the file, the logs are not
						// folded in.
						ids := slices.Sorted(maps.Keys(w.logged))
						if _, err := j.Rotate(); err != nil {
							t.Fatal(err)
						}
						heads, err := j.heads(ids[:1])
						if err != nil {
							t.Fatal(err)
						}
						if _, err := w.putCurrent(ids[:1], heads); err != nil {
							t.Fatal(err)
						}
						if r, ok := s.Record(ids[0]); ok {
							want[ids[0]] = r
						}
					}
					j = reopened(t, j)
					sameAs(t, j, want, fmt.Sprintf("op %d, after a crash", n))
					w = NewWriter(j, s, wcfg, zerolog.Nop(), nil)
					clear(dirty)
				case 6:
					// Past the retention: the ended calls are swept.
					time.Sleep(cfg.Retention + cfg.SweepInterval)
					synctest.Wait()
				case 7:
					for k := range 3 {
						apply(testkit.CallEvent(id, model.ChangeUpdated, states[(n+k)%2]))
					}
				}
			}
			sameAs(t, reopened(t, j), want, "at the end, after a crash")
		})
	})
}

// TestCheckpointAtLogSize: the writer checkpoints when the log reaches
// CheckpointBytes, the file then holds the calls and the log starts
// again; and a clean stop (Run's end) checkpoints, so that the next Open
// folds nothing in.
func TestCheckpointAtLogSize(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t)
	j := open(t, dir)
	cfg := writerCfg()
	cfg.CheckpointBytes = 32 << 10 // more than the first write of all ten calls
	w := NewWriter(j, s, cfg, zerolog.Nop(), nil)
	for i := 0; len(w.checkpoint) == 0; i++ {
		if i == 1000 {
			t.Fatal("no checkpoint asked for after 1,000 writes")
		}
		testkit.Apply(t, s.Apply, testkit.CallEvent(fmt.Sprintf("c%d", i%10), model.ChangeUpdated, []model.CallState{model.StateEstablished, model.StateHold}[i/10%2]))
		if !w.Flush() {
			t.Fatal("flush failed")
		}
		if i < 9 && len(w.checkpoint) > 0 {
			t.Fatal("a checkpoint asked for before the log's limit")
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.checkpointer(ctx) }()
	testkit.Eventually(t, "the checkpoint asked for", func() bool {
		return len(w.checkpoint) == 0 && testutil.ToFloat64(w.m.checkpoints.WithLabelValues(resultOK)) > 0
	})
	stop()
	<-done
	if size := j.LogSize(); size != logHeaderLen {
		t.Errorf("log after a checkpoint is %d bytes, want it started again", size)
	}
	if n := len(loadAll(t, j)); n != 10 {
		t.Errorf("file holds %d calls after the checkpoint, want 10", n)
	}
	testkit.Apply(t, s.Apply, testkit.CallEvent("late", model.ChangeCreated, model.StateEstablished))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Run(ctx)
	if _, ok := loadAll(t, j)["late"]; !ok {
		t.Error("a clean stop left a change in the log only")
	}
	j = reopened(t, j)
	if frames, _ := j.Replayed(); frames != 0 {
		t.Errorf("Open after a clean stop folded in %d frames", frames)
	}
}

// TestLogTornTail: a write cut short at any byte of its last frame loses
// that write only; Open folds in the frames before it and says how much
// it cut off, and the next write goes after them.
func TestLogTornTail(t *testing.T) {
	dir, s, j, w := oneCallWritten(t, zerolog.Nop())
	before := j.LogSize()
	testkit.Apply(t, s.Apply, testkit.CallEvent("c2", model.ChangeCreated, model.StateEstablished))
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	after := j.LogSize()
	_ = j.Close()
	file, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	refs, err := logFiles(dir)
	if err != nil || len(refs) != 1 {
		t.Fatalf("logs %v, %v; want one", refs, err)
	}
	logName := filepath.Base(refs[0].path)
	whole, err := os.ReadFile(refs[0].path)
	if err != nil || int64(len(whole)) != after {
		t.Fatalf("log is %d bytes (%v), want %d", len(whole), err, after)
	}
	for _, cut := range []int64{before + 1, before + frameHeaderLen, (before + after) / 2, after - 1} {
		for _, damage := range []string{"short", "flipped"} {
			t.Run(fmt.Sprintf("%s at %d", damage, cut), func(t *testing.T) {
				b := bytes.Clone(whole)
				if damage == "short" {
					b = b[:cut]
				} else {
					b[cut] ^= 0x40
				}
				dir := t.TempDir()
				if err := errors.Join(os.WriteFile(filepath.Join(dir, FileName), file, 0o600), os.WriteFile(filepath.Join(dir, logName), b, 0o600)); err != nil {
					t.Fatal(err)
				}
				j := open(t, dir)
				got := loadAll(t, j)
				if _, ok := got["c1"]; !ok || len(got) != 1 {
					t.Errorf("journal holds %d calls (c1: %v), want c1 only", len(got), ok)
				}
				if frames, cutOff := j.Replayed(); frames != 1 || cutOff != int64(len(b))-before {
					t.Errorf("Replayed = %d frames, %d bytes cut; want 1, %d", frames, cutOff, int64(len(b))-before)
				}
				// The next write goes after the frames that read.
				w := NewWriter(j, newStore(t), writerCfg(), zerolog.Nop(), nil)
				testkit.Apply(t, w.src.(*callstate.Store).Apply, testkit.CallEvent("c3", model.ChangeCreated, model.StateEstablished))
				if !w.Flush() {
					t.Fatal("flush failed")
				}
				if got := loadAll(t, reopened(t, j)); len(got) != 2 {
					t.Errorf("after a write past the cut the journal holds %d calls, want 2", len(got))
				}
			})
		}
	}
}

// TestLogOfAFoldedGeneration: a log the file has folded in already (a
// crash after a checkpoint's last transaction, before the log was
// deleted) is not folded in twice: its older records do not replace the
// newer ones the checkpoint wrote.
func TestLogOfAFoldedGeneration(t *testing.T) {
	dir, s, j, _ := oneCallWritten(t, zerolog.Nop())
	_ = j.Close()
	path := logPath(dir, 1)
	stale, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Open folds that log in; the call then moves on, and a checkpoint
	// writes it into the file.
	j = open(t, dir)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateHold))
	if !w.Flush() || !w.Checkpoint() {
		t.Fatal("write failed")
	}
	_ = j.Close()
	if err := os.WriteFile(path, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	j = open(t, dir)
	if got := loadAll(t, j)["c1"]; got.Call.State != model.StateHold {
		t.Errorf("c1 is %s after an old log, want hold", got.Call.State)
	}
	if frames, _ := j.Replayed(); frames != 0 {
		t.Errorf("Open folded in %d frames of a folded log", frames)
	}
}

// TestLogRefused: a log file that is not a log, or whose frame reads but
// does not decode, stops Open with an error naming the file and how to
// move it aside; the journal's file is left as it was.
func TestLogRefused(t *testing.T) {
	badFrame := append(logHeader(9), appendFrame(nil, frame{kind: kindCall, id: []byte("c1"), data: []byte(`{"v":1,"call":{"id":"c2"}}`)})...)
	for name, b := range map[string][]byte{
		"not a log":         []byte("this is not the journal's log at all"),
		"kind unknown":      append(logHeader(9), appendFrame(nil, frame{kind: 'x', id: []byte("c1"), data: []byte(`{}`)})...),
		"record not JSON":   append(logHeader(9), appendFrame(nil, frame{kind: kindCall, id: []byte("c1"), data: []byte(`{`)})...),
		"another call's id": badFrame,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_ = open(t, dir).Close()
			path := logPath(dir, 9)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), ".broken") {
				t.Fatalf("Open = %v, want an error naming %s and how to move it aside", err, path)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
				t.Error("Open changed a log it refused")
			}
		})
	}
}

// FuzzReadLog: any bytes read as a log give frames or an error, never a
// panic; what reads is a prefix of the input, and the frames written
// again make that prefix byte for byte.
func FuzzReadLog(f *testing.F) {
	whole := append(logHeader(3), appendFrame(nil, frame{kind: kindCall, id: []byte("c1"), first: 1, skipped: 2, transitions: [][]byte{[]byte(`{"to":"established"}`), {}}, data: []byte(`{"v":1}`)})...)
	whole = appendFrame(whole, frame{kind: kindRun, id: []byte("r1"), data: []byte(`{}`)})
	f.Add(whole)
	f.Add(whole[:len(whole)-3])
	f.Add(logHeader(0))
	f.Add([]byte("botdlog1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		gen, good, err := readLog(bytes.NewReader(b), func(fr frame) error {
			again = appendFrame(again, fr)
			return nil
		})
		if errors.Is(err, errNotALog) {
			if good != 0 {
				t.Fatalf("not a log, yet %d bytes read", good)
			}
			return
		}
		if good > int64(len(b)) || (good > 0 && good < logHeaderLen) {
			t.Fatalf("good = %d of %d bytes", good, len(b))
		}
		if good == 0 {
			return
		}
		if want := append(logHeader(gen), again...); err == nil && !bytes.Equal(want, b[:good]) {
			t.Fatalf("frames written again differ from what read:\n%x\n%x", want, b[:good])
		}
	})
}

// TestHistoryListsCallsInTheLog: an ended call the log holds, not yet the
// file, is in the writer's history page and export (a checkpoint comes
// first); a history read with no ended call in the log does not
// checkpoint.
func TestHistoryListsCallsInTheLog(t *testing.T) {
	s := newStore(t)
	j := open(t, t.TempDir())
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("live", model.ChangeCreated, model.StateEstablished))
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	if recs, _, err := w.History(HistoryQuery{Limit: 10}); err != nil || len(recs) != 0 {
		t.Fatalf("History = %d records, %v; want none", len(recs), err)
	}
	if n := testutil.ToFloat64(w.m.checkpoints.WithLabelValues(resultOK)); n != 0 {
		t.Errorf("a history read with no ended call in the log checkpointed (%v)", n)
	}
	testkit.Apply(t, s.Apply, testkit.CallEvent("ended", model.ChangeCreated, model.StateEstablished))
	s.MarkTerminated("ended", "test")
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	if recs, _, _ := j.History(HistoryQuery{Limit: 10}); len(recs) != 0 {
		t.Fatalf("the file lists %d ended calls before a checkpoint; the test shows nothing", len(recs))
	}
	recs, _, err := w.History(HistoryQuery{Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Call.ID != "ended" || len(recs[0].Transitions) != 2 {
		t.Fatalf("History = %+v, %v; want the ended call with its 2 transitions", recs, err)
	}
	var exported []string
	if err := w.Export(HistoryQuery{}, func(r callstate.Record) error { exported = append(exported, r.Call.ID); return nil }); err != nil || strings.Join(exported, " ") != "ended" {
		t.Errorf("Export = %v, %v", exported, err)
	}
}

// TestLogWriteFailure: an append that fails (here the file refuses
// writes, and part of a frame is left at its end) keeps its calls marked;
// the next append cuts the part off and writes them, so the log reads
// whole after a crash.
func TestLogWriteFailure(t *testing.T) {
	_, s, j, w := oneCallWritten(t, zerolog.Nop())
	good := j.cur.f
	ro, err := os.Open(good.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	j.cur.f = ro
	testkit.Apply(t, s.Apply, testkit.CallEvent("c2", model.ChangeCreated, model.StateEstablished))
	if w.Flush() {
		t.Fatal("an append to a file that refuses writes succeeded")
	}
	if g := testutil.ToFloat64(w.m.healthy); g != 0 {
		t.Errorf("healthy = %v while failing", g)
	}
	// What the failed write left: as many bytes as the retry writes, then
	// a whole frame of a call never written, which must not be read.
	j.cur.f = good
	r, _ := s.Record("c2")
	retry, err := appendCallFrame(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	stray := callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: "stray", State: model.StateEstablished}}
	left, _ := appendCallFrame(make([]byte, len(retry)), &stray)
	if _, err := good.WriteAt(left, j.cur.size); err != nil {
		t.Fatal(err)
	}
	if !w.Flush() {
		t.Fatal("flush after the disk came back failed")
	}
	if got := loadAll(t, reopened(t, j)); len(got) != 2 {
		t.Errorf("journal holds %d calls after the retry, want 2", len(got))
	}
}

// TestCheckpointNewerThanTheNextLog: a checkpoint writes a call's current
// record, which may be newer than the record the next log, written while
// it ran, holds of the call. After a crash the file's newer state stays:
// Open does not put the older record over it, whether the newer has more
// transitions or only a later update (a roster).
func TestCheckpointNewerThanTheNextLog(t *testing.T) {
	for name, later := range map[string]*model.Event{
		"a state change": testkit.CallEvent("x", model.ChangeUpdated, model.StateEstablished),
		"a roster":       testkit.RosterEvent("x", "p1", "p2", "p3"),
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newStore(t)
				j := open(t, t.TempDir())
				w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
				testkit.Apply(t, s.Apply, testkit.CallEvent("x", model.ChangeCreated, model.StateEstablished))
				if !w.Flush() {
					t.Fatal("flush failed")
				}
				// The checkpoint starts the next log; a change is written
				// to it; a later one is not, but the checkpoint reads it.
				w.cpMu.Lock()
				upTo, err := j.Rotate()
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				testkit.Apply(t, s.Apply, testkit.CallEvent("x", model.ChangeUpdated, model.StateHold))
				if !w.Flush() {
					t.Fatal("flush failed")
				}
				time.Sleep(time.Second)
				testkit.Apply(t, s.Apply, later)
				want, _ := s.Record("x")
				if err := w.checkpointCalls([]string{"x"}, upTo, false); err != nil {
					t.Fatalf("checkpoint: %v", err)
				}
				w.cpMu.Unlock()
				j = reopened(t, j)
				got := loadAll(t, j)["x"]
				if got.Call.State != want.Call.State || len(got.Participants) != len(want.Participants) {
					t.Errorf("after a crash x is %s with %d participants; want the checkpoint's %s with %d", got.Call.State, len(got.Participants), want.Call.State, len(want.Participants))
				}
				sameTransitions(t, got, want)
			})
		})
	}
}

// TestMigrateSchema2: a schema 2 file, as a botd before the log left it
// (no log generation, no log positions, no log), opens as schema 3 with
// its calls, and the next writes go through the log.
func TestMigrateSchema2(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateEstablished))
	r, _ := s.Record("c1")
	j := open(t, dir)
	if err := j.Put([]callstate.Record{r}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLogPos); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = j.Close()
	refs, _ := logFiles(dir)
	for _, ref := range refs {
		if err := os.Remove(ref.path); err != nil {
			t.Fatal(err)
		}
	}

	j = open(t, dir)
	if j.MigratedFrom() != 2 {
		t.Errorf("MigratedFrom = %d, want 2", j.MigratedFrom())
	}
	if got := loadAll(t, j)["c1"]; got.Call.State != model.StateEstablished {
		t.Fatalf("c1 is %q after the migration", got.Call.State)
	}
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateHold))
	if !w.Flush() || !w.Checkpoint() {
		t.Fatal("write after the migration failed")
	}
	want, _ := s.Record("c1")
	got := loadAll(t, reopened(t, j))["c1"]
	if got.Call.State != model.StateHold {
		t.Errorf("c1 is %q after a write, want hold", got.Call.State)
	}
	sameTransitions(t, got, want)
}

// TestCheckpointFailure: a checkpoint that cannot write the file (here
// the file is closed under it) turns the journal unhealthy and keeps the
// logs; the appends go on; trying again starts no new log while the
// current one holds nothing; and nothing is lost: after a crash the
// journal holds every write.
func TestCheckpointFailure(t *testing.T) {
	logs := &testkit.Buffer{}
	dir, s, j, w := oneCallWritten(t, zerolog.New(logs))
	if err := j.db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if w.Checkpoint() {
			t.Fatal("a checkpoint into a closed file succeeded")
		}
	}
	if g := testutil.ToFloat64(w.m.healthy); g != 0 {
		t.Errorf("healthy = %v while checkpoints fail", g)
	}
	if !strings.Contains(logs.String(), "journal checkpoint failed") {
		t.Errorf("no error logged: %s", logs)
	}
	if refs, _ := logFiles(dir); len(refs) != 2 {
		t.Errorf("%d logs after 3 failed checkpoints, want 2 (the one retired and the one appended to)", len(refs))
	}
	testkit.Apply(t, s.Apply, testkit.CallEvent("c2", model.ChangeCreated, model.StateEstablished))
	if !w.Flush() {
		t.Fatal("an append while checkpoints fail failed")
	}
	if g := testutil.ToFloat64(w.m.healthy); g != 0 {
		t.Errorf("healthy = %v after an append, while checkpoints fail", g)
	}
	if w.Checkpoint() {
		t.Fatal("a checkpoint into a closed file succeeded")
	}
	if refs, _ := logFiles(dir); len(refs) != 2 {
		t.Errorf("%d logs after another failed checkpoint, with an append before it, want 2", len(refs))
	}
	if got := loadAll(t, reopened(t, j)); len(got) != 2 {
		t.Errorf("journal holds %d calls after the crash, want 2", len(got))
	}
}

package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

func newStore(t testing.TB) *callstate.Store {
	t.Helper()
	s, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// reopened closes j as a crash leaves it, its log not checkpointed, and
// opens its directory again: the journal then holds what Open folded in
// from the log.
func reopened(t testing.TB, j *Journal) *Journal {
	t.Helper()
	dir := filepath.Dir(j.Path())
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return open(t, dir)
}

func writerCfg() WriterConfig {
	return WriterConfig{Lag: 50 * time.Millisecond, HistoryRetention: 30 * 24 * time.Hour, CompactEvery: time.Hour}
}

// fakeGraph answers Refresh from what it holds, as Graph would after
// botd's downtime.
type fakeGraph struct {
	mu     sync.Mutex
	store  *callstate.Store
	gone   map[string]bool
	roster map[string][]string
	fail   map[string]bool
	asked  []string
}

func (g *fakeGraph) Refresh(_ context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, id)
	switch {
	case g.fail[id]:
		return errors.New("graph unreachable")
	case g.gone[id]:
		g.store.MarkTerminated(id, "gone")
		return nil
	}
	if ids, ok := g.roster[id]; ok {
		ps := testkit.RosterEvent(id, ids...).Participants
		g.store.ReplaceRoster(id, ps)
	}
	return nil
}

// TestRestartKeepsCalls: calls written behind by a writer come back in a
// new store from the same directory, with their state and roster; Graph
// is asked about each live one, a call it no longer has is ended, and a
// call it cannot be asked about is kept as stored.
func TestRestartKeepsCalls(t *testing.T) {
	dir := t.TempDir()
	s1 := newStore(t)
	j1 := open(t, dir)
	w1 := NewWriter(j1, s1, writerCfg(), zerolog.Nop(), nil)
	for i := range 5 {
		id := fmt.Sprintf("c%d", i)
		testkit.Apply(t, s1.Apply, testkit.CallEvent(id, model.ChangeCreated, model.StateEstablishing))
		testkit.Apply(t, s1.Apply, testkit.CallEvent(id, model.ChangeUpdated, model.StateEstablished))
		testkit.Apply(t, s1.Apply, testkit.RosterEvent(id, "p1", "p2"))
	}
	testkit.Apply(t, s1.Apply, testkit.CallEvent("c4", model.ChangeUpdated, model.StateTerminated))
	if !w1.Flush() {
		t.Fatal("flush failed")
	}
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := newStore(t)
	reg := prometheus.NewRegistry()
	w2 := NewWriter(open(t, dir), s2, writerCfg(), zerolog.Nop(), reg)
	g := &fakeGraph{store: s2, gone: map[string]bool{"c1": true}, roster: map[string][]string{"c2": {"p1", "p2", "p3"}}, fail: map[string]bool{"c3": true}}
	got, err := w2.Recover(context.Background(), s2, g, RecoverConfig{Retention: 10 * time.Minute, Rate: 1000, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Recovered{Restored: 5, Refreshed: 3, Failed: 1}); got != want {
		t.Errorf("Recover = %+v, want %+v", got, want)
	}
	if len(g.asked) != 4 {
		t.Errorf("Graph asked about %v, want the 4 live calls", g.asked)
	}
	want := map[string]struct {
		state model.CallState
		n     int
	}{
		"c0": {model.StateEstablished, 2}, "c1": {model.StateTerminated, 2}, "c2": {model.StateEstablished, 3},
		"c3": {model.StateEstablished, 2}, "c4": {model.StateTerminated, 2},
	}
	for id, w := range want {
		v, ok := s2.Call(id)
		if !ok || v.State != w.state || len(v.Participants) != w.n {
			t.Errorf("%s: found %v, state %s, %d participants; want %s, %d", id, ok, v.State, len(v.Participants), w.state, w.n)
		}
	}
	if n := testutil.ToFloat64(w2.m.recovered.WithLabelValues(recoveredFailed)); n != 1 {
		t.Errorf("recovery failed = %v", n)
	}
	// What recovery changed is written too.
	if !w2.Flush() {
		t.Fatal("flush after recovery failed")
	}
	var states []string
	if err := reopened(t, w2.j).Load(func(r callstate.Record) error {
		states = append(states, r.Call.ID+"="+string(r.Call.State))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(states, " "); g != "c0=established c1=terminated c2=established c3=established c4=terminated" {
		t.Errorf("journal holds %s", g)
	}
}

// TestRecoverKeepsOldEndedCallsAsHistory: a call that ended longer ago
// than the retention is not put back in memory, but stays in the journal.
func TestRecoverKeepsOldEndedCallsAsHistory(t *testing.T) {
	j := open(t, t.TempDir())
	long := time.Now().Add(-time.Hour)
	if err := j.Put([]callstate.Record{
		{Version: callstate.RecordVersion, Call: model.Call{ID: "old", State: model.StateTerminated}, TerminatedAt: long},
		{Version: callstate.RecordVersion, Call: model.Call{ID: "live", State: model.StateEstablished}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	got, err := w.Recover(context.Background(), s, &fakeGraph{store: s}, RecoverConfig{Retention: 10 * time.Minute, Rate: 1000, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got != (Recovered{Restored: 1, History: 1, Refreshed: 1}) {
		t.Errorf("Recover = %+v", got)
	}
	if _, ok := s.Call("old"); ok {
		t.Error("a call ended an hour ago is back in memory")
	}
}

// TestWriteFailureRetries: a write that fails keeps its calls, turns the
// healthy gauge to 0, and the next write that works writes them.
func TestWriteFailureRetries(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t)
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	w := NewWriter(j, s, writerCfg(), zerolog.New(logs), nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateEstablished))
	_ = j.Close() // the disk goes away
	if w.Flush() {
		t.Fatal("flush to a closed journal succeeded")
	}
	if g := testutil.ToFloat64(w.m.healthy); g != 0 {
		t.Errorf("healthy = %v while failing", g)
	}
	if !strings.Contains(logs.String(), "journal write failed") {
		t.Errorf("no error logged: %s", logs)
	}
	w.j = open(t, dir) // and comes back
	if !w.Flush() {
		t.Fatal("flush after the disk came back failed")
	}
	if g := testutil.ToFloat64(w.m.healthy); g != 1 {
		t.Errorf("healthy = %v after recovering", g)
	}
	n := 0
	_ = reopened(t, w.j).Load(func(callstate.Record) error { n++; return nil })
	if n != 1 {
		t.Errorf("journal holds %d calls after the retry, want 1", n)
	}
}

func TestCompact(t *testing.T) {
	j := open(t, t.TempDir())
	now := time.Now()
	var recs []callstate.Record
	for i, age := range []time.Duration{40 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
		recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: fmt.Sprintf("e%d", i), State: model.StateTerminated}, TerminatedAt: now.Add(-age)})
	}
	recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: "live", State: model.StateEstablished}})
	if err := j.Put(recs, nil); err != nil {
		t.Fatal(err)
	}
	n, err := j.Compact(now.Add(-30 * 24 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Compact = %d, %v; want 2", n, err)
	}
	var ids []string
	_ = j.Load(func(r callstate.Record) error { ids = append(ids, r.Call.ID); return nil })
	if g := strings.Join(ids, " "); g != "e2 e3 live" {
		t.Errorf("after compaction: %s", g)
	}
}

// TestOpenRefuses: a file that is not a journal, and a journal of a newer
// schema, stop Open with an error that says what to do.
func TestOpenRefuses(t *testing.T) {
	t.Run("not a journal", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(strings.Repeat("not bbolt ", 1000)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "move it aside") {
			t.Fatalf("Open = %v, want the move-aside advice", err)
		}
	})
	t.Run("newer schema", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir)
		if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) }); err != nil {
			t.Fatal(err)
		}
		_ = j.Close()
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "newer botd") {
			t.Fatalf("Open = %v, want a newer-schema error", err)
		}
	})
	t.Run("bad record", func(t *testing.T) {
		j := open(t, t.TempDir())
		if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCalls).Put([]byte("c1"), []byte(`{"v":1`)) }); err != nil {
			t.Fatal(err)
		}
		err := j.Load(func(callstate.Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), `call "c1"`) || !strings.Contains(err.Error(), "move it aside") {
			t.Fatalf("Load = %v", err)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"v":1,"call":{"id":"c1","state":"established"},"participants":[{"id":"p1"}]}`))
	f.Add([]byte(`{"v":2,"call":{"id":"c1"}}`))
	f.Add([]byte(`{"v":1,"call":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if r.Version != callstate.RecordVersion || r.Call.ID == "" {
			t.Fatalf("accepted %+v", r)
		}
		// What decodes restores or is refused with an error, never a panic.
		_, _ = newStore(t).Restore(r)
	})
}

// TestWriteNow: a call written at once is on disk before any tick.
func TestWriteNow(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t)
	j := open(t, dir)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeCreated, model.StateEstablished))
	if w.WriteNow("c2") != true {
		t.Fatal("WriteNow of a call the store does not hold failed")
	}
	if !w.WriteNow("c1") {
		t.Fatal("WriteNow failed")
	}
	var ids []string
	_ = reopened(t, j).Load(func(r callstate.Record) error { ids = append(ids, r.Call.ID); return nil })
	if strings.Join(ids, " ") != "c1" {
		t.Errorf("journal holds %v, want c1", ids)
	}
}

// TestHistoryPages: ended calls page by the time they ended, filtered by
// direction and a time range, with a cursor that survives new calls.
func TestHistoryPages(t *testing.T) {
	j := open(t, t.TempDir())
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var recs []callstate.Record
	for i := range 7 {
		dir := "incoming"
		if i%2 == 1 {
			dir = "outgoing"
		}
		recs = append(recs, callstate.Record{Version: callstate.RecordVersion,
			Call:         model.Call{ID: fmt.Sprintf("e%d", i), State: model.StateTerminated, Direction: dir},
			TerminatedAt: t0.Add(time.Duration(i) * time.Minute)})
	}
	recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: "live", State: model.StateEstablished}})
	if err := j.Put(recs, nil); err != nil {
		t.Fatal(err)
	}
	ids := func(rs []callstate.Record) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Call.ID)
		}
		return strings.Join(s, " ")
	}
	q := HistoryQuery{Since: t0.Add(time.Minute), Until: t0.Add(6 * time.Minute), Limit: 2}
	var pages []string
	for {
		rs, next, err := j.History(q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, ids(rs))
		if next == "" {
			break
		}
		q.After = next
	}
	if g := strings.Join(pages, " | "); g != "e1 e2 | e3 e4 | e5" {
		t.Errorf("pages %q", g)
	}
	rs, next, err := j.History(HistoryQuery{Direction: "outgoing", Limit: 10})
	if err != nil || next != "" || ids(rs) != "e1 e3 e5" {
		t.Errorf("outgoing: %q, next %q, %v", ids(rs), next, err)
	}
	if _, _, err := j.History(HistoryQuery{After: "!!", Limit: 1}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
	var all []callstate.Record
	if err := j.Export(HistoryQuery{Since: t0.Add(5 * time.Minute)}, func(r callstate.Record) error { all = append(all, r); return nil }); err != nil || ids(all) != "e5 e6" {
		t.Errorf("export %q, %v", ids(all), err)
	}
}

// TestTornLastWrite: a crash that tears the last transaction's meta page
// (its checksum no longer matches) loses that transaction only: the
// journal opens at the one before, with its calls.
func TestTornLastWrite(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	for _, id := range []string{"c1", "c2"} {
		if err := j.Put([]callstate.Record{{Version: callstate.RecordVersion, Call: model.Call{ID: id, State: model.StateEstablished}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = j.Close()
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt's two meta pages are pages 0 and 1; in each, after the 16-byte
	// page header, the txid is at byte 48 of the meta and its checksum at
	// 56. The page size is at byte 8 of the meta.
	head := make([]byte, 64+16)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	pageSize := int64(binary.LittleEndian.Uint32(head[16+8:]))
	txid := func(page int64) uint64 {
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, page*pageSize+16+48); err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(b)
	}
	newer := int64(0)
	if txid(1) > txid(0) {
		newer = 1
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, newer*pageSize+16+56); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	j = open(t, dir)
	var ids []string
	if err := j.Load(func(r callstate.Record) error { ids = append(ids, r.Call.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, " ") != "c1" {
		t.Errorf("after a torn last write the journal holds %v, want c1 (the write before)", ids)
	}
}

// FuzzHistoryCursor: any cursor is a page or ErrBadCursor, never a panic,
// and a page is never longer than asked.
func FuzzHistoryCursor(f *testing.F) {
	f.Add("", 1)
	f.Add("AAAAAAAAAAFl", 2)
	f.Add("!!", 3)
	j, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = j.Close() })
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []callstate.Record
	for i := range 5 {
		recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: fmt.Sprintf("e%d", i), State: model.StateTerminated}, TerminatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := j.Put(recs, nil); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		limit = 1 + (limit&0xff)%10
		rs, _, err := j.History(HistoryQuery{After: cursor, Limit: limit})
		if err != nil && !errors.Is(err, ErrBadCursor) {
			t.Fatalf("History(%q) = %v", cursor, err)
		}
		if len(rs) > limit {
			t.Fatalf("%d records for a limit of %d", len(rs), limit)
		}
	})
}

// blockingGraph never answers: Graph is down at start.
type blockingGraph struct{}

func (blockingGraph) Refresh(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRecoverTimeout: with Graph unreachable, recovery gives up on the
// refresh at its timeout: every call is back as stored, counted skipped,
// and Recover returns no error, so that botd turns ready.
func TestRecoverTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := open(t, t.TempDir())
		var recs []callstate.Record
		for i := range 20 {
			recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: fmt.Sprintf("c%02d", i), State: model.StateEstablished}})
		}
		if err := j.Put(recs, nil); err != nil {
			t.Fatal(err)
		}
		s := newStore(t)
		w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
		got, err := w.Recover(context.Background(), s, blockingGraph{}, RecoverConfig{Retention: time.Minute, Rate: 1000, Workers: 4, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if got != (Recovered{Restored: 20, Skipped: 20}) {
			t.Errorf("Recover = %+v", got)
		}
		if n := testutil.ToFloat64(w.m.recovered.WithLabelValues(recoveredSkipped)); n != 20 {
			t.Errorf("skipped = %v", n)
		}
	})
}

// TestRecoverOverCallLimit: records beyond the store's call limit are not
// put back, and botd starts with the others instead of not at all.
func TestRecoverOverCallLimit(t *testing.T) {
	j := open(t, t.TempDir())
	var recs []callstate.Record
	for i := range 5 {
		recs = append(recs, callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: fmt.Sprintf("c%d", i), State: model.StateEstablished}})
	}
	if err := j.Put(recs, nil); err != nil {
		t.Fatal(err)
	}
	cfg := callstate.DefaultConfig()
	cfg.MaxCalls = 3
	s, err := callstate.New(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	got, err := w.Recover(context.Background(), s, &fakeGraph{store: s}, RecoverConfig{Retention: time.Minute, Rate: 1000, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got != (Recovered{Restored: 3, Refused: 2, Refreshed: 3}) {
		t.Errorf("Recover = %+v", got)
	}
}

// fakeRuns is the flow engine as recovery sees it: it refuses runs of
// the flow "gone".
type fakeRuns struct{ got []string }

func (f *fakeRuns) RestoreAll(recs []flows.RunRecord) map[string]error {
	errs := map[string]error{}
	for _, rec := range recs {
		if rec.View.Flow == "gone" {
			errs[rec.View.ID] = flows.ErrNotRestored
			continue
		}
		f.got = append(f.got, rec.View.ID)
	}
	return errs
}

// TestRunsKept: a running run's latest record is written with the calls,
// an ended run's is deleted, and recovery hands the running ones back,
// dropping (and deleting) one the engine cannot restore.
func TestRunsKept(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t)
	j := open(t, dir)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	run := func(id, flow, status, step string) flows.RunRecord {
		return flows.RunRecord{Version: flows.RunRecordVersion, View: flows.RunView{ID: id, Flow: flow, Status: status, Step: step}}
	}
	w.MarkRun(run("r1", "f", flows.StatusRunning, "a"))
	w.MarkRun(run("r1", "f", flows.StatusRunning, "b")) // the latest wins
	w.MarkRun(run("r2", "f", flows.StatusRunning, "a"))
	w.MarkRun(run("r3", "gone", flows.StatusRunning, "a"))
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	w.MarkRun(run("r2", "f", flows.StatusCompleted, "a"))
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	j = reopened(t, j)
	var steps []string
	_ = j.LoadRuns(func(r flows.RunRecord) error { steps = append(steps, r.View.ID+"@"+r.View.Step); return nil })
	if g := strings.Join(steps, " "); g != "r1@b r3@a" {
		t.Errorf("journal runs %s", g)
	}
	s2 := newStore(t)
	w2 := NewWriter(j, s2, writerCfg(), zerolog.Nop(), nil)
	fr := &fakeRuns{}
	got, err := w2.Recover(context.Background(), s2, &fakeGraph{store: s2}, RecoverConfig{Retention: time.Minute, Rate: 1000, Workers: 1, Runs: fr})
	if err != nil {
		t.Fatal(err)
	}
	if got.Runs != 1 || got.RunsLost != 1 || strings.Join(fr.got, " ") != "r1" {
		t.Errorf("Recover = %+v, restored %v", got, fr.got)
	}
	steps = nil
	_ = j.LoadRuns(func(r flows.RunRecord) error { steps = append(steps, r.View.ID); return nil })
	if g := strings.Join(steps, " "); g != "r1" {
		t.Errorf("after recovery the journal holds runs %s, want r1", g)
	}
}

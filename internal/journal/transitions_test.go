package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// storedTransitions is what the journal holds of a call's transitions:
// the keys under its prefix, and whether it has a head.
func storedTransitions(t testing.TB, j *Journal, id string) (keys int, hasHead bool) {
	t.Helper()
	if err := j.db.View(func(tx *bolt.Tx) error {
		prefix := transitionPrefix(nil, id)
		c := tx.Bucket(bucketTransitions).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys++
		}
		hasHead = tx.Bucket(bucketTransitionHeads).Get([]byte(id)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys, hasHead
}

// loaded is the record Load gives for id.
func loaded(t testing.TB, j *Journal, id string) (callstate.Record, bool) {
	t.Helper()
	var out callstate.Record
	found := false
	if err := j.Load(func(r callstate.Record) error {
		if r.Call.ID == id {
			out, found = r, true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out, found
}

// sameTransitions fails t unless got holds want's transitions, numbered
// alike, as they read back from JSON.
func sameTransitions(t testing.TB, got, want callstate.Record) {
	t.Helper()
	var w []callstate.Transition
	b, _ := json.Marshal(want.Transitions)
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if got.FirstTransition != want.FirstTransition || (len(w) > 0 || len(got.Transitions) > 0) && !reflect.DeepEqual(got.Transitions, w) {
		t.Fatalf("loaded first %d, %d transitions %+v\nwant first %d, %+v", got.FirstTransition, len(got.Transitions), got.Transitions, want.FirstTransition, w)
	}
}

// TestTransitionsWrittenOnce: each write of a changing call leaves the
// journal holding exactly its bounded history, numbered as the store
// numbers it, with one key per transition: those the ring dropped are
// deleted, and a restart reads them all back.
func TestTransitionsWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := callstate.DefaultConfig()
	cfg.MaxTransitions = 4
	s, err := callstate.New(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	j := open(t, dir)
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	states := []model.CallState{model.StateEstablished, model.StateHold}
	for i := range 11 {
		// One change, then two, then three... between writes.
		for range i%3 + 1 {
			testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, states[i%2]))
			i++
		}
		if !w.Flush() {
			t.Fatal("flush failed")
		}
		// The log goes into the file by turns at a checkpoint and at an
		// Open after a crash.
		if i%2 == 0 {
			if !w.Checkpoint() {
				t.Fatal("checkpoint failed")
			}
		} else {
			j = reopened(t, j)
			w.j = j
		}
		want, _ := s.Record("c1")
		got, ok := loaded(t, j, "c1")
		if !ok {
			t.Fatal("c1 not in the journal")
		}
		sameTransitions(t, got, want)
		if keys, _ := storedTransitions(t, j, "c1"); keys != len(want.Transitions) {
			t.Fatalf("after write %d: %d transition keys for %d transitions", i, keys, len(want.Transitions))
		}
	}
	if r, _ := s.Record("c1"); r.FirstTransition == 0 {
		t.Fatal("the test dropped no transition")
	}
}

// TestRecordsLeaveOutWhatIsWritten: a changed call's record leaves out
// the transitions the journal has; a record that left out some the
// journal does not have is refused (errPartial), and the writer then
// writes whole records, so what the journal holds stays exact.
func TestRecordsLeaveOutWhatIsWritten(t *testing.T) {
	s := newStore(t)
	j := open(t, t.TempDir())
	w := NewWriter(j, s, writerCfg(), zerolog.Nop(), nil)
	states := []model.CallState{model.StateEstablished, model.StateHold}
	for i := range 5 {
		testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, states[i%2]))
	}
	if !w.Flush() {
		t.Fatal("flush failed")
	}
	if !w.Checkpoint() {
		t.Fatal("checkpoint failed")
	}
	testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, model.StateHold))
	heads, err := j.heads([]string{"c1"})
	if err != nil || heads[0].next != 5 {
		t.Fatalf("heads = %+v, %v; want next 5", heads, err)
	}
	r, _ := s.RecordAfter("c1", heads[0].life, heads[0].next)
	if r.Skipped != 5 || len(r.Transitions) != 1 {
		t.Fatalf("record after the head: skipped %d, %d transitions; want 5, 1", r.Skipped, len(r.Transitions))
	}
	if other, _ := s.RecordAfter("c1", heads[0].life+1, heads[0].next); other.Skipped != 0 || len(other.Transitions) != 6 {
		t.Errorf("record of another life: skipped %d, %d transitions", other.Skipped, len(other.Transitions))
	}

	// A head that claims more than the journal has: the record skips
	// what must be written.
	stale := []head{{life: heads[0].life, first: 0, next: 6}}
	if err := j.Put([]callstate.Record{func() callstate.Record { r, _ := s.RecordAfter("c1", stale[0].life, stale[0].next); return r }()}, nil); !errors.Is(err, errPartial) {
		t.Fatalf("Put of a record missing a transition = %v, want errPartial", err)
	}
	if _, err := w.putCurrent([]string{"c1"}, stale); err != nil {
		t.Fatalf("checkpoint after stale heads: %v", err)
	}
	want, _ := s.Record("c1")
	got, _ := loaded(t, j, "c1")
	sameTransitions(t, got, want)
}

// TestTransitionsOfANewLife: a call id Graph reused (a new CreatedAt)
// replaces the old life's transitions, even when the new life has fewer
// or more; the same holds for a head that does not read.
func TestTransitionsOfANewLife(t *testing.T) {
	j := open(t, t.TempDir())
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rec := func(created time.Time, first uint64, n int) callstate.Record {
		r := callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: "c1", State: model.StateEstablished}, CreatedAt: created, FirstTransition: first}
		for i := range n {
			r.Transitions = append(r.Transitions, callstate.Transition{To: model.StateEstablished, At: created.Add(time.Duration(first+uint64(i)) * time.Second), Cause: fmt.Sprintf("life %s #%d", created.Format(time.Kitchen), first+uint64(i))})
		}
		return r
	}
	for _, step := range []struct {
		name    string
		r       callstate.Record
		badHead bool
	}{
		{"first life", rec(t0, 3, 6), false},
		{"new life, fewer", rec(t0.Add(time.Hour), 0, 2), false},
		{"new life, more", rec(t0.Add(2*time.Hour), 0, 8), false},
		{"same life, more", rec(t0.Add(2*time.Hour), 4, 8), false},
		{"same life, all dropped since", rec(t0.Add(2*time.Hour), 20, 8), false},
		{"head that does not read", rec(t0.Add(2*time.Hour), 21, 8), true},
		{"no transitions", rec(t0.Add(3*time.Hour), 0, 0), false},
	} {
		if step.badHead {
			if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTransitionHeads).Put([]byte("c1"), []byte("short")) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Put([]callstate.Record{step.r}, nil); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, _ := loaded(t, j, "c1")
		sameTransitions(t, got, step.r)
		if keys, _ := storedTransitions(t, j, "c1"); keys != len(step.r.Transitions) {
			t.Fatalf("%s: %d keys for %d transitions", step.name, keys, len(step.r.Transitions))
		}
	}
}

// TestMigrateSchema1: a schema 1 file, whose records held their
// transitions, opens as schema 2 with the same calls and transitions, in
// batches of records, and its records no longer hold them.
func TestMigrateSchema1(t *testing.T) {
	// Two records, one transaction each.
	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 1
	dir := t.TempDir()
	s := newStore(t)
	for _, st := range []model.CallState{model.StateEstablishing, model.StateEstablished, model.StateHold} {
		testkit.Apply(t, s.Apply, testkit.CallEvent("c1", model.ChangeUpdated, st))
	}
	testkit.Apply(t, s.Apply, testkit.CallEvent("c2", model.ChangeUpdated, model.StateEstablished))
	testkit.Apply(t, s.Apply, testkit.RosterEvent("c2", "p1", "p2"))
	want := map[string]callstate.Record{}
	for _, id := range []string{"c1", "c2"} {
		want[id], _ = s.Record(id)
	}
	// Schema 1 as botd wrote it: the record JSON, transitions and all.
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketCalls, bucketEnded, bucketRuns} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for id, r := range want {
			b, _ := json.Marshal(r)
			if err := tx.Bucket(bucketCalls).Put([]byte(id), b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	j := open(t, dir)
	if j.MigratedFrom() != 1 {
		t.Errorf("MigratedFrom = %d, want 1", j.MigratedFrom())
	}
	for id, w := range want {
		got, ok := loaded(t, j, id)
		if !ok {
			t.Fatalf("%s lost", id)
		}
		sameTransitions(t, got, w)
		if len(got.Participants) != len(w.Participants) {
			t.Errorf("%s: %d participants, want %d", id, len(got.Participants), len(w.Participants))
		}
	}
	if err := j.db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != fmt.Sprint(SchemaVersion) {
			t.Errorf("schema %s after migration", v)
		}
		return tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(`"transitions"`)) {
				t.Errorf("%s still holds its transitions: %s", k, v)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCompactDeletesTransitions: a compacted call leaves no transition
// and no head behind.
func TestCompactDeletesTransitions(t *testing.T) {
	j := open(t, t.TempDir())
	if j.MigratedFrom() != 0 {
		t.Errorf("a new file: MigratedFrom = %d", j.MigratedFrom())
	}
	now := time.Now()
	ended := callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: "old", State: model.StateTerminated}, CreatedAt: now.Add(-50 * 24 * time.Hour), TerminatedAt: now.Add(-40 * 24 * time.Hour),
		Transitions: []callstate.Transition{{To: model.StateEstablished, Cause: "a"}, {From: model.StateEstablished, To: model.StateTerminated, Cause: "b"}}}
	kept := ended
	kept.Call.ID, kept.TerminatedAt = "old-but-kept", now.Add(-time.Hour)
	if err := j.Put([]callstate.Record{ended, kept}, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := j.Compact(now.Add(-30 * 24 * time.Hour)); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v; want 1", n, err)
	}
	if keys, head := storedTransitions(t, j, "old"); keys != 0 || head {
		t.Errorf("compacted call left %d transitions, head %v", keys, head)
	}
	if keys, head := storedTransitions(t, j, "old-but-kept"); keys != 2 || !head {
		t.Errorf("kept call has %d transitions, head %v", keys, head)
	}
}

// FuzzTransitionsOnDisk: whatever sequence of records of a few calls,
// lives, numbers and lengths is written, and whatever a head holds,
// loading gives each call exactly its last record's transitions, with
// one key each.
func FuzzTransitionsOnDisk(f *testing.F) {
	f.Add([]byte{0, 3, 2, 0, 4, 2, 0, 5, 2, 1, 0, 1, 9, 0, 0, 0})
	f.Add([]byte{0x10, 0xff, 0xff, 0x21, 1, 1, 0x30, 2, 3, 0x80, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		j := open(t, t.TempDir())
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		last := map[string]callstate.Record{}
		for i := 0; i+2 < len(data); i += 3 {
			op, first, n := data[i], uint64(data[i+1]), int(data[i+2]%12)
			id := fmt.Sprintf("c%d", op&3)
			if op&3 == 3 {
				id = "c" // a prefix of the others' ids
			}
			if op&0x80 != 0 {
				// A head of any bytes, as a damaged file might hold.
				head := bytes.Repeat([]byte{data[i+1]}, n*3)
				if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTransitionHeads).Put([]byte(id), head) }); err != nil {
					t.Fatal(err)
				}
				continue
			}
			r := callstate.Record{Version: callstate.RecordVersion, Call: model.Call{ID: id}, CreatedAt: t0.Add(time.Duration(op>>2&7) * time.Hour), FirstTransition: first}
			for k := range n {
				r.Transitions = append(r.Transitions, callstate.Transition{To: model.StateEstablished, At: t0, Cause: fmt.Sprint(first + uint64(k))})
			}
			if err := j.Put([]callstate.Record{r}, nil); err != nil {
				t.Fatal(err)
			}
			last[id] = r
		}
		for id, want := range last {
			got, _ := loaded(t, j, id)
			if len(want.Transitions) == 0 {
				want.FirstTransition = 0
			}
			sameTransitions(t, got, want)
			if keys, _ := storedTransitions(t, j, id); keys != len(want.Transitions) {
				t.Fatalf("%s: %d keys for %d transitions", id, keys, len(want.Transitions))
			}
		}
	})
}

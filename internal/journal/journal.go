// Package journal owns botd's durable copy of its calls: a bbolt file
// under BOTD_DATA_DIR, and its append-only log (log.go), that a restarted
// botd loads its calls from. It owns the file's and the log's layout and
// schema version, the write-behind of the call store's changes as
// batched appends to the log and their checkpoints into the file
// (Writer), the recovery at start that puts the calls back and asks Graph
// what changed while botd was down (Recover), and the compaction of ended
// calls past the history retention.
package journal

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
)

// FileName is the journal's file in its directory.
const FileName = "botd.journal"

// SchemaVersion is the layout this botd writes. Open migrates an older
// file forward and refuses a newer one.
const SchemaVersion = 3

// Buckets: meta holds the schema version; calls maps a call id to its
// record (JSON), without its transitions, which are in the buckets
// transitions.go names; ended maps the time a call ended (8 bytes, big-endian
// Unix nanoseconds) and its id to nothing, in time order, for compaction;
// runs maps a running flow run's id to its record (JSON), deleted when
// the run ends.
var (
	bucketMeta  = []byte("meta")
	bucketCalls = []byte("calls")
	bucketEnded = []byte("ended")
	bucketRuns  = []byte("runs")
	keySchema   = []byte("schema")
)

// lockTimeout bounds the wait for the file lock: a second botd on the same
// directory fails at start instead of waiting for ever.
const lockTimeout = 2 * time.Second

// initialMmapSize is the address space bbolt maps the file in at first
// (it grows past it as the file does). Each growth copies every key and
// value the write transaction holds to the heap, and waits for the read
// transactions (history pages) to end: a 1,000-call first write with
// their transitions took 0.35 s in a 32 KB map, most of it in those
// copies. It is address space, not memory: only the pages read or
// written are resident.
const initialMmapSize = 256 << 20

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	db   *bolt.DB
	path string
	// migratedFrom is the schema Open migrated the file from; 0 when it
	// was already current or new.
	migratedFrom int

	dir   string
	logMu sync.Mutex
	cur   *logFile // the log appended to; nil once closed
	// retired are the logs before cur a checkpoint has not folded in.
	retired []logRef
	// replayed and cutTail are what Open folded in from the log (Replayed).
	replayed int
	cutTail  int64
}

// MigratedFrom is the schema version Open migrated the file from, for
// the log; 0 when the file was new or already at SchemaVersion.
func (j *Journal) MigratedFrom() int { return j.migratedFrom }

// ErrLocked is returned by Open when another process holds the journal.
var ErrLocked = errors.New("journal: the file is locked by another process (is another botd running on the same BOTD_DATA_DIR?)")

// Open opens, or creates, the journal in dir (created 0700 if missing),
// checks its schema and migrates it forward. A file that cannot be read
// as a journal is an error that names the file and how to move it aside.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, InitialMmapSize: initialMmapSize})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	case err != nil:
		return nil, corrupt(path, err)
	}
	j := &Journal{db: db, path: path, dir: dir}
	if err := j.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	if err := j.openLog(); err != nil {
		db.Close()
		return nil, err
	}
	return j, nil
}

// corrupt is the error for a journal file that does not read as one.
func corrupt(path string, err error) error {
	return fmt.Errorf("journal %s cannot be read (%v): move it aside (mv %s %s.broken) to start with no calls, or set BOTD_STATE=memory", path, err, path, path)
}

// migrate creates the buckets of a new file, and brings an older schema
// to SchemaVersion, one step per version: 1 to 2 moves each record's
// transitions out of it (migrateInlineTransitions); 2 to 3 adds the log
// (LogFilePrefix), which a botd of schema 2 would not read: it refuses
// the file instead of starting without the log's changes. The version is
// written last, so a migration cut short is run again from the start.
func (j *Journal) migrate() error {
	var version int
	if err := j.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return corrupt(j.path, err)
		}
		version = SchemaVersion
		if v := meta.Get(keySchema); v != nil {
			version, err = strconv.Atoi(string(v))
			if err != nil {
				return corrupt(j.path, fmt.Errorf("schema version %q", v))
			}
		} else if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if version > SchemaVersion {
			return fmt.Errorf("journal %s has schema version %d, written by a newer botd; this botd reads up to %d", j.path, version, SchemaVersion)
		}
		for _, b := range [][]byte{bucketCalls, bucketEnded, bucketRuns, bucketTransitions, bucketTransitionHeads, bucketLogPos} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return corrupt(j.path, err)
			}
		}
		return nil
	}); err != nil || version == SchemaVersion {
		return err
	}
	if version < 2 {
		if err := j.migrateInlineTransitions(); err != nil {
			return err
		}
	}
	if err := j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	}); err != nil {
		return err
	}
	j.migratedFrom = version
	return nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Close closes the file and the log, as they are: what the log holds is
// folded into the file at the next Open (a checkpoint is the writer's).
func (j *Journal) Close() error {
	j.logMu.Lock()
	var err error
	if j.cur != nil {
		err = j.cur.f.Close()
		j.cur = nil
	}
	j.logMu.Unlock()
	return errors.Join(err, j.db.Close())
}

// Put writes call records and flow run records in one transaction: each
// call record replaces the call's previous one, and an ended call is
// indexed by the time it ended; a run record of a run that is no longer
// running deletes the run's.
func (j *Journal) Put(recs []callstate.Record, runs []flows.RunRecord) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		if err := putRuns(tx.Bucket(bucketRuns), runs); err != nil {
			return err
		}
		return putRecords(tx, recs)
	})
}

// putRecords writes recs in tx, in key order: each record without its
// transitions, those the journal does not have yet, and an ended call's
// place in the ended index.
func putRecords(tx *bolt.Tx, recs []callstate.Record) error {
	calls, ended := tx.Bucket(bucketCalls), tx.Bucket(bucketEnded)
	ts := transitionStore{ts: tx.Bucket(bucketTransitions), heads: tx.Bucket(bucketTransitionHeads)}
	for _, r := range inKeyOrder(recs) {
		if err := ts.put(r); err != nil {
			return err
		}
		if err := putRecord(calls, r); err != nil {
			return err
		}
		if !r.TerminatedAt.IsZero() {
			if err := ended.Put(endedKey(r.TerminatedAt, r.Call.ID), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// inKeyOrder is recs in the order of their keys. bbolt splits the nodes a
// transaction grows only when it commits, so keys put out of order shift
// the others each time: a batch of many new transitions (the first write
// of many calls, a migration) took time in the square of its size.
// Ordered, each goes in at the end. Ids are ordered by length first, as
// their transitions' keys are (for ids under 128 bytes).
func inKeyOrder(recs []callstate.Record) []*callstate.Record {
	out := make([]*callstate.Record, len(recs))
	for i := range recs {
		out[i] = &recs[i]
	}
	slices.SortFunc(out, func(a, b *callstate.Record) int { return compareIDs(a.Call.ID, b.Call.ID) })
	return out
}

// compareIDs orders call ids as their keys are: by length, then bytes.
func compareIDs(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
}

// putRecord writes r, without its transitions (transitionStore keeps
// them), as the call's record.
func putRecord(calls *bolt.Bucket, r *callstate.Record) error {
	b, err := encodeRecord(nil, r)
	if err != nil {
		return err
	}
	return calls.Put([]byte(r.Call.ID), b)
}

// encodeRecord is r as the file holds a record: JSON
// (callstate.Record.AppendJSON), without its transitions and their
// numbering (the transitions bucket holds them), appended to dst.
func encodeRecord(dst []byte, r *callstate.Record) ([]byte, error) {
	rest := *r
	rest.Transitions, rest.FirstTransition = nil, 0
	b, err := rest.AppendJSON(dst)
	if err != nil {
		return dst, fmt.Errorf("journal: encode call %s: %w", r.Call.ID, err)
	}
	return b, nil
}

func putRuns(b *bolt.Bucket, runs []flows.RunRecord) error {
	for i := range runs {
		r := &runs[i]
		if r.View.Status != flows.StatusRunning {
			if err := b.Delete([]byte(r.View.ID)); err != nil {
				return err
			}
			continue
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("journal: encode run %s: %w", r.View.ID, err)
		}
		if err := b.Put([]byte(r.View.ID), v); err != nil {
			return err
		}
	}
	return nil
}

// LoadRuns calls fn with every running flow run's record. A record that
// does not decode stops it with an error naming the run and the file.
func (j *Journal) LoadRuns(fn func(flows.RunRecord) error) error {
	return j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			var r flows.RunRecord
			if err := json.Unmarshal(v, &r); err != nil || r.View.ID == "" {
				return corrupt(j.path, fmt.Errorf("flow run %q: record does not decode: %v", k, err))
			}
			return fn(r)
		})
	})
}

// deleteRun deletes a run's record.
func (j *Journal) deleteRun(id string) error {
	return j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRuns).Delete([]byte(id)) })
}

func endedKey(at time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	return append(k, id...)
}

// Load calls fn with every record, in call id order. A record that does
// not decode stops Load with an error naming the call and the file.
func (j *Journal) Load(fn func(callstate.Record) error) error {
	return j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err == nil {
				err = loadTransitions(tx, &r)
			}
			if err != nil {
				return corrupt(j.path, fmt.Errorf("call %q: %w", k, err))
			}
			return fn(r)
		})
	})
}

// decodeRecord decodes one stored record, refusing one that is not a
// record of a version this botd reads, or has no call id.
func decodeRecord(b []byte) (callstate.Record, error) {
	var r callstate.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("record: %w", err)
	}
	switch {
	case r.Version != callstate.RecordVersion:
		return r, fmt.Errorf("record version %d, want %d", r.Version, callstate.RecordVersion)
	case r.Call.ID == "":
		return r, errors.New("record has no call id")
	}
	return r, nil
}

// Compact deletes the records of calls that ended before cutoff, and
// returns how many it deleted.
func (j *Journal) Compact(cutoff time.Time) (int, error) {
	n := 0
	err := j.db.Update(func(tx *bolt.Tx) error {
		calls, ended := tx.Bucket(bucketCalls), tx.Bucket(bucketEnded)
		c := ended.Cursor()
		limit := endedKey(cutoff, "")
		for k, _ := c.First(); k != nil && string(k[:8]) < string(limit); k, _ = c.First() {
			id := k[8:]
			// The call's record goes only if this is its last end: a call
			// id Graph reused would have a newer one.
			if v := calls.Get(id); v != nil {
				if r, err := decodeRecord(v); err != nil || !r.TerminatedAt.After(cutoff) {
					if err := calls.Delete(id); err != nil {
						return err
					}
					if err := deleteTransitions(tx, string(id)); err != nil {
						return err
					}
					if err := tx.Bucket(bucketLogPos).Delete(id); err != nil {
						return err
					}
					n++
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

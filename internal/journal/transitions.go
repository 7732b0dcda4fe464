package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
)

// A call's transitions are kept apart from its record, one key each, so
// that a change to a call writes only the transitions it added and
// deletes only those its ring dropped: the record, written again on every
// change, holds none. Buckets: transitions maps a call's id and a
// transition's sequence number (transitionKey) to the transition (JSON);
// transitionHeads maps a call id to what the transitions bucket holds of
// it (head).
var (
	bucketTransitions     = []byte("transitions")
	bucketTransitionHeads = []byte("transitionHeads")
)

// transitionPrefix is the start of every transitions key of a call: the
// id's length, as a uvarint, then the id, so that no id's keys run into
// another's.
func transitionPrefix(dst []byte, id string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	return append(dst, id...)
}

// transitionKey is the transitions key of a call's transition seq: the
// call's prefix and seq, 8 bytes big-endian, so that a call's keys sort
// in sequence order.
func transitionKey(dst []byte, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(transitionPrefix(dst, id), seq)
}

// head is what the transitions bucket holds of one call: the transitions
// numbered [first, next) of the call's life life (Record.Life). A call id
// Graph reuses is a new life, whose numbers start again at 0.
type head struct{ life, first, next uint64 }

const headLen = 24

func (h head) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, h.life)
	dst = binary.BigEndian.AppendUint64(dst, h.first)
	return binary.BigEndian.AppendUint64(dst, h.next)
}

// parseHead reads a stored head; false for one that is not 24 bytes or
// does not number a range, which Put treats as no head at all.
func parseHead(b []byte) (head, bool) {
	if len(b) != headLen {
		return head{}, false
	}
	h := head{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])}
	return h, h.first <= h.next
}

// transitionStore is the two buckets in one write transaction. bbolt
// keeps each key and value put until the transaction ends: each is its
// own slice.
type transitionStore struct {
	ts, heads *bolt.Bucket
}

// errPartial is put's error for a record that left out (Skipped)
// transitions the journal does not have.
var errPartial = errors.New("journal: a record left out transitions the journal does not have")

// put makes the transitions bucket hold exactly r's call's transitions:
// of the same life as the head says, it deletes those r's call dropped
// and writes those added since; of another life, or with no head that
// reads, it deletes all the id's and writes r's. A record that skipped
// transitions it would have to write is errPartial.
func (s *transitionStore) put(r *callstate.Record) error {
	id := r.Call.ID
	held := r.FirstTransition + r.Skipped // the number of r.Transitions[0]
	want := head{life: r.Life(), first: r.FirstTransition, next: held + uint64(len(r.Transitions))}
	if held < want.first || want.next < held {
		return fmt.Errorf("journal: call %s: transition numbers overflow", id)
	}
	raw := s.heads.Get([]byte(id))
	if raw == nil && want.next == want.first {
		return nil // no transitions, none written
	}
	have, ok := parseHead(raw)
	if ok && have == want {
		return nil // a change that added no transition and dropped none
	}
	from := want.first
	if ok && have.life == want.life && have.first <= want.first && have.next <= want.next {
		if err := s.deleteBelow(id, want.first); err != nil {
			return err
		}
		from = max(have.next, want.first)
	} else if err := s.deleteBelow(id, ^uint64(0)); err != nil {
		return err
	}
	if from < held {
		return fmt.Errorf("%w: call %s, transitions %d to %d", errPartial, id, from, held)
	}
	for seq := from; seq < want.next; seq++ {
		v, err := r.Transitions[seq-held].AppendJSON(nil)
		if err != nil {
			return fmt.Errorf("journal: encode call %s: %w", id, err)
		}
		if err := s.ts.Put(transitionKey(nil, id, seq), v); err != nil {
			return err
		}
	}
	return s.heads.Put([]byte(id), want.append(make([]byte, 0, headLen)))
}

// heads reads the head of each id, in one read transaction; an id with
// no head that reads has the zero head (a whole record then).
func (j *Journal) heads(ids []string) ([]head, error) {
	out := make([]head, len(ids))
	err := j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTransitionHeads)
		for i, id := range ids {
			if h, ok := parseHead(b.Get([]byte(id))); ok {
				out[i] = h
			}
		}
		return nil
	})
	return out, err
}

// deleteBelow deletes the id's transitions numbered below limit (all of
// them for the largest limit): only keys that are there are visited,
// whatever the numbers.
func (s *transitionStore) deleteBelow(id string, limit uint64) error {
	prefix := transitionPrefix(nil, id)
	c := s.ts.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if len(k) == len(prefix)+8 && binary.BigEndian.Uint64(k[len(prefix):]) >= limit {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// deleteTransitions deletes all of a call's transitions and its head.
func deleteTransitions(tx *bolt.Tx, id string) error {
	s := transitionStore{ts: tx.Bucket(bucketTransitions), heads: tx.Bucket(bucketTransitionHeads)}
	if err := s.deleteBelow(id, ^uint64(0)); err != nil {
		return err
	}
	return s.heads.Delete([]byte(id))
}

// loadTransitions sets r's transitions, and the number of the first, from
// the transitions bucket. A transition that does not decode is an error
// naming it.
func loadTransitions(tx *bolt.Tx, r *callstate.Record) error {
	r.Transitions, r.FirstTransition = nil, 0
	prefix := transitionPrefix(nil, r.Call.ID)
	c := tx.Bucket(bucketTransitions).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("call %q: transition key %x is not the call's id and a number", r.Call.ID, k)
		}
		var t callstate.Transition
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("call %q: transition %d: %w", r.Call.ID, binary.BigEndian.Uint64(k[len(prefix):]), err)
		}
		if r.Transitions == nil {
			r.FirstTransition = binary.BigEndian.Uint64(k[len(prefix):])
		}
		r.Transitions = append(r.Transitions, t)
	}
	return nil
}

// migrateBatch is how many records one transaction of
// migrateInlineTransitions reads: bbolt holds what a write transaction
// changes in memory until it commits.
var migrateBatch = 1000

// migrateInlineTransitions brings a schema 1 file to 2: each record's
// transitions, which it held itself, move to the transitions bucket, a
// batch of records per transaction. A record already moved holds none,
// so a migration cut short goes on where it was.
func (j *Journal) migrateInlineTransitions() error {
	var after []byte
	for done := false; !done; {
		if err := j.db.Update(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketCalls).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			var recs []callstate.Record
			for n := 0; k != nil && n < migrateBatch; k, v = c.Next() {
				n++
				after = append(after[:0], k...)
				r, err := decodeRecord(v)
				if err != nil {
					return corrupt(j.path, fmt.Errorf("call %q: %w", k, err))
				}
				if len(r.Transitions) > 0 {
					recs = append(recs, r)
				}
			}
			done = k == nil
			return putRecords(tx, recs)
		}); err != nil {
			return err
		}
	}
	return nil
}

package journal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
)

// HistoryQuery selects ended calls by the time they ended.
type HistoryQuery struct {
	// Since and Until bound the end time, [Since, Until); a zero Until
	// has no bound.
	Since, Until time.Time
	// Direction, when set, keeps the calls of that direction (incoming,
	// outgoing).
	Direction string
	// After is the cursor History returned with the previous page; ""
	// starts at Since.
	After string
	// Limit is the most records a page holds (History only).
	Limit int
}

// ErrBadCursor is returned for a cursor History did not give.
var ErrBadCursor = errors.New("not a cursor this history gave")

// History returns one page of ended calls' records, oldest end first, and
// the cursor of the next page ("" after the last). An ended call whose
// record was replaced by a newer life of the same id is listed once, at
// its last end.
func (j *Journal) History(q HistoryQuery) ([]callstate.Record, string, error) {
	var out []callstate.Record
	next := ""
	err := j.scanEnded(q, func(k []byte, r callstate.Record) bool {
		if len(out) == q.Limit {
			next = base64.RawURLEncoding.EncodeToString(recordKey(out[len(out)-1]))
			return false
		}
		out = append(out, r)
		return true
	})
	return out, next, err
}

// Export calls fn with every ended call's record the query selects (Limit
// and After aside), oldest end first, in one read transaction.
func (j *Journal) Export(q HistoryQuery, fn func(callstate.Record) error) error {
	var ferr error
	err := j.scanEnded(HistoryQuery{Since: q.Since, Until: q.Until, Direction: q.Direction}, func(_ []byte, r callstate.Record) bool {
		ferr = fn(r)
		return ferr == nil
	})
	return errors.Join(err, ferr)
}

// scanEnded walks the ended index from the query's start, calling fn with
// each selected record until it returns false.
func (j *Journal) scanEnded(q HistoryQuery, fn func(k []byte, r callstate.Record) bool) error {
	var start, skip []byte
	if !q.Since.IsZero() {
		start = endedKey(q.Since, "")
	}
	if q.After != "" {
		k, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil || len(k) < 9 {
			return ErrBadCursor
		}
		start, skip = k, k
	}
	var until []byte
	if !q.Until.IsZero() {
		until = endedKey(q.Until, "")
	}
	return j.db.View(func(tx *bolt.Tx) error {
		calls := tx.Bucket(bucketCalls)
		c := tx.Bucket(bucketEnded).Cursor()
		k, _ := c.First()
		if start != nil {
			k, _ = c.Seek(start)
		}
		for ; k != nil; k, _ = c.Next() {
			if until != nil && bytes.Compare(k[:8], until) >= 0 {
				return nil
			}
			if skip != nil && bytes.Equal(k, skip) {
				continue
			}
			v := calls.Get(k[8:])
			if v == nil {
				continue
			}
			r, err := decodeRecord(v)
			if err != nil {
				return corrupt(j.path, err)
			}
			// The index may hold an older end of an id Graph reused.
			if !bytes.Equal(recordKey(r), k) || (q.Direction != "" && r.Call.Direction != q.Direction) {
				continue
			}
			if err := loadTransitions(tx, &r); err != nil {
				return corrupt(j.path, err)
			}
			if !fn(k, r) {
				return nil
			}
		}
		return nil
	})
}

// recordKey is an ended record's key in the ended index.
func recordKey(r callstate.Record) []byte { return endedKey(r.TerminatedAt, r.Call.ID) }

package callstate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/botd/botd/internal/model"
)

// RecordVersion is the version of Record's layout. A journal stores it
// with each record; Restore refuses a version it does not know, and a
// newer layout adds a migration from the older ones to internal/journal.
const RecordVersion = 1

// Record is what a journal keeps of one call: enough to rebuild it in a
// new process. It holds the call resource as merged from Graph, the
// roster, the operations, the content-sharing sessions, the key presses
// and the bounded history. Held roster deltas are not kept: a restored
// call's roster is listed from Graph again. A recording's access token is
// not kept either (it is a credential, and expires): an operation
// restored from a record has none.
type Record struct {
	Version       int          `json:"v"`
	Call          model.Call   `json:"call"`
	CreatedByBot  bool         `json:"createdByBot,omitempty"`
	CreatedAt     time.Time    `json:"createdAt"`
	UpdatedAt     time.Time    `json:"updatedAt"`
	EstablishedAt time.Time    `json:"establishedAt,omitzero"`
	TerminatedAt  time.Time    `json:"terminatedAt,omitzero"`
	Transitions   []Transition `json:"transitions,omitempty"`
	// FirstTransition is the sequence number, in the call's whole
	// history, of the oldest transition the call holds (Transitions[0] in
	// a whole record): the call has dropped that many older ones
	// (MaxTransitions). A journal writes only the transitions it has not
	// written yet, and deletes those dropped.
	FirstTransition uint64 `json:"firstTransition,omitempty"`
	// Skipped is how many of the call's transitions, from FirstTransition
	// on, RecordAfter left out because the journal has them: Transitions
	// then starts at FirstTransition+Skipped. 0 in a whole record; never
	// stored.
	Skipped              uint64                        `json:"-"`
	Participants         []model.Participant           `json:"participants,omitempty"`
	Operations           []OperationView               `json:"operations,omitempty"`
	Sessions             []model.ContentSharingSession `json:"sessions,omitempty"`
	Tones                []ToneView                    `json:"tones,omitempty"`
	RosterNeedsResync    bool                          `json:"rosterNeedsResync,omitempty"`
	RosterSequenceNumber int64                         `json:"rosterSequenceNumber,omitempty"`
}

// Life tells one life of a call id from another (Graph may reuse an id
// after a call ended): the call's CreatedAt, in Unix nanoseconds.
func (r *Record) Life() uint64 { return lifeOf(r.CreatedAt) }

func lifeOf(createdAt time.Time) uint64 { return uint64(createdAt.UnixNano()) }

// Record returns the call's record, for a journal; false for a call the
// Store does not hold. Its transitions' causes are not made text: a
// Transition's Cause is "" where its encoding (AppendJSON, MarshalJSON)
// writes it from what the Store keeps, so that writing a changed call
// formats only the transitions written.
func (s *Store) Record(id string) (Record, bool) { return s.RecordAfter(id, 0, 0) }

// RecordAfter is Record, less the transitions numbered below next of the
// call's life life (Record.Life), as a journal holds them already (Skipped says how many). For another life,
// or next 0, the record is whole. A changed call's record then copies
// only the transitions added since its last write.
func (s *Store) RecordAfter(id string, life, next uint64) (Record, bool) {
	c, _, err := s.lockCall(id, lockExisting, time.Time{})
	if err != nil {
		return Record{}, false
	}
	defer c.mu.Unlock()
	var skip uint64
	if next > c.tFirst && life == lifeOf(c.createdAt) {
		skip = min(next-c.tFirst, uint64(len(c.transitions)))
	}
	r := Record{
		Version:              RecordVersion,
		Call:                 c.res,
		CreatedByBot:         c.createdByBot,
		CreatedAt:            c.createdAt,
		UpdatedAt:            c.updatedAt,
		EstablishedAt:        c.establishedAt,
		TerminatedAt:         c.terminatedAt,
		Transitions:          c.transitionsLocked(false, int(skip)),
		FirstTransition:      c.tFirst,
		Skipped:              skip,
		Participants:         append([]model.Participant(nil), c.roster.ps...),
		Sessions:             append([]model.ContentSharingSession(nil), c.rare.sessionList()...),
		Tones:                append([]ToneView(nil), c.rare.toneList()...),
		RosterNeedsResync:    c.needsResync,
		RosterSequenceNumber: c.delta.seq,
	}
	r.Operations = make([]OperationView, 0, len(c.ops))
	for _, op := range c.ops {
		o := *op
		o.RecordingAccessToken = ""
		r.Operations = append(r.Operations, o)
	}
	return r, true
}

// Restore puts a call back from its record, as a journal kept it, before
// botd serves. It reports one CallRestored change, so that automation
// resumes keepAlive for an established call; it counts no call as
// started, established or ended again. A call the Store already holds is
// left as it is (nil, nil): what it holds is newer than the record.
func (s *Store) Restore(r Record) ([]Change, error) {
	if r.Version != RecordVersion {
		return nil, fmt.Errorf("restore call %s: record version %d, want %d", r.Call.ID, r.Version, RecordVersion)
	}
	if r.Call.ID == "" {
		return nil, fmt.Errorf("restore call: %w", ErrNoCallID)
	}
	if r.Call.State != "" && !r.Call.State.Valid() {
		return nil, fmt.Errorf("restore call %s: state %q is not a call state", r.Call.ID, r.Call.State)
	}
	now := s.now()
	c, created, err := s.lockCall(r.Call.ID, lockCreateFresh, now)
	if err != nil {
		return nil, fmt.Errorf("restore call %s: %w", r.Call.ID, err)
	}
	if !created {
		c.mu.Unlock()
		return nil, nil
	}
	s.fillLocked(c, r)
	a := &applyCtx{callID: c.id, now: now, idx: -1, botd: "restored from the journal"}
	a.add(Change{Kind: CallRestored, To: c.res.State, Call: c.snapshotLocked()})
	c.log().Info().Str("state", string(c.res.State)).Int("participants", c.roster.len()).Msg("call restored")
	return s.finishLocked(c, a), nil
}

// fillLocked sets a new call's fields from r, and moves the gauges the
// way the call's history did.
func (s *Store) fillLocked(c *call, r Record) {
	c.res = r.Call
	c.createdByBot = r.CreatedByBot
	c.started = r.Call.State != ""
	c.createdAt, c.updatedAt = r.CreatedAt, r.UpdatedAt
	c.establishedAt, c.terminatedAt = r.EstablishedAt, r.TerminatedAt
	c.tFirst = r.FirstTransition
	for _, t := range r.Transitions {
		c.addTransitionLocked(t, s.cfg.MaxTransitions)
	}
	for _, p := range r.Participants {
		if key := participantKey(&p); key != "" && c.roster.lookup(key) < 0 {
			c.roster.add(p, key)
		}
	}
	for i := range r.Operations {
		op := r.Operations[i]
		c.ops = append(c.ops, &op)
	}
	if len(r.Sessions) > 0 || len(r.Tones) > 0 {
		rare := c.rareLocked()
		rare.sessions, rare.tones.list = r.Sessions, r.Tones
	}
	c.needsResync = r.RosterNeedsResync
	c.delta.seq, c.delta.known, c.delta.maxSeen = r.RosterSequenceNumber, r.RosterSequenceNumber > 0, r.RosterSequenceNumber
	s.m.callsByState[0].Dec()
	s.m.callsByState[stateIndex(c.res.State)].Inc()
	if c.res.State != model.StateTerminated {
		s.m.participants.Add(float64(c.roster.len()))
	}
}

// CallDetail is a call's detail record, as the call history lists it:
// who, when, how long and how it ended.
type CallDetail struct {
	ID              string            `json:"id"`
	State           model.CallState   `json:"state"`
	Direction       string            `json:"direction,omitempty"`
	TenantID        string            `json:"tenantId,omitempty"`
	CallChainID     string            `json:"callChainId,omitempty"`
	CreatedByBot    bool              `json:"createdByBot"`
	CreatedAt       time.Time         `json:"createdAt"`
	EstablishedAt   time.Time         `json:"establishedAt,omitzero"`
	TerminatedAt    time.Time         `json:"terminatedAt,omitzero"`
	DurationSeconds float64           `json:"durationSeconds"`
	ResultInfo      *model.ResultInfo `json:"resultInfo,omitempty"`
	// Participants is the size of the roster when the call ended;
	// Operations counts the operations the record kept.
	Participants int `json:"participants"`
	Operations   int `json:"operations"`
}

// Detail is r's detail record. The duration runs from established (or,
// for a call never established, created) to terminated.
func (r Record) Detail() CallDetail {
	d := CallDetail{
		ID: r.Call.ID, State: r.Call.State, Direction: r.Call.Direction, TenantID: r.Call.TenantID,
		CallChainID: r.Call.CallChainID, CreatedByBot: r.CreatedByBot,
		CreatedAt: r.CreatedAt, EstablishedAt: r.EstablishedAt, TerminatedAt: r.TerminatedAt,
		ResultInfo: r.Call.ResultInfo, Participants: len(r.Participants), Operations: len(r.Operations),
	}
	start := r.EstablishedAt
	if start.IsZero() {
		start = r.CreatedAt
	}
	if !r.TerminatedAt.IsZero() && !start.IsZero() {
		d.DurationSeconds = r.TerminatedAt.Sub(start).Seconds()
	}
	return d
}

// AppendJSON appends r's JSON to dst: what encoding/json gives r from its
// tags, read back with json.Unmarshal, with the small members written
// without reflection (a journal writes the record of every changed call,
// and encoding/json spent about half of a record's time on its times and
// flags; TestRecordAppendJSON holds the two alike), the call and roster
// by model's encoders. The operations, sessions and key presses go
// through encoding/json. A time encoding/json refuses (a year outside
// 0-9999) is refused here too.
func (r *Record) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(r.Version), 10)
	dst = r.Call.AppendJSON(append(dst, `,"call":`...))
	var err error
	if r.CreatedByBot {
		dst = append(dst, `,"createdByBot":true`...)
	}
	if dst, err = appendTime(dst, `,"createdAt":"`, r.CreatedAt); err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, `,"updatedAt":"`, r.UpdatedAt); err != nil {
		return dst, err
	}
	if !r.EstablishedAt.IsZero() {
		if dst, err = appendTime(dst, `,"establishedAt":"`, r.EstablishedAt); err != nil {
			return dst, err
		}
	}
	if !r.TerminatedAt.IsZero() {
		if dst, err = appendTime(dst, `,"terminatedAt":"`, r.TerminatedAt); err != nil {
			return dst, err
		}
	}
	if len(r.Transitions) > 0 {
		dst = append(dst, `,"transitions":[`...)
		for i := range r.Transitions {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = r.Transitions[i].AppendJSON(dst); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	if r.FirstTransition != 0 {
		dst = append(dst, `,"firstTransition":`...)
		dst = strconv.AppendUint(dst, r.FirstTransition, 10)
	}
	if len(r.Participants) > 0 {
		dst = append(dst, `,"participants":[`...)
		for i := range r.Participants {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = r.Participants[i].AppendJSON(dst)
		}
		dst = append(dst, ']')
	}
	if len(r.Operations) > 0 {
		if dst, err = appendMarshal(append(dst, `,"operations":`...), r.Operations); err != nil {
			return dst, err
		}
	}
	if len(r.Sessions) > 0 {
		if dst, err = appendMarshal(append(dst, `,"sessions":`...), r.Sessions); err != nil {
			return dst, err
		}
	}
	if len(r.Tones) > 0 {
		if dst, err = appendMarshal(append(dst, `,"tones":`...), r.Tones); err != nil {
			return dst, err
		}
	}
	if r.RosterNeedsResync {
		dst = append(dst, `,"rosterNeedsResync":true`...)
	}
	if r.RosterSequenceNumber != 0 {
		dst = append(dst, `,"rosterSequenceNumber":`...)
		dst = strconv.AppendInt(dst, r.RosterSequenceNumber, 10)
	}
	return append(dst, '}'), nil
}

// appendTime appends a member's name (with its opening quote) and t, as
// encoding/json writes a time.
func appendTime(dst []byte, name string, t time.Time) ([]byte, error) {
	dst, err := t.AppendText(append(dst, name...))
	if err != nil {
		return dst, fmt.Errorf("record %s: %w", name[2:len(name)-3], err)
	}
	return append(dst, '"'), nil
}

// appendMarshal appends encoding/json's encoding of v to dst.
func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("record: %w", err)
	}
	return append(dst, b...), nil
}

package callstate

import (
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
)

// call is one call's state. Every field after mu is guarded by mu.
type call struct {
	mu sync.Mutex
	// gone is set when the call is swept; a goroutine that locks a gone
	// call looks its id up again.
	gone         bool
	createdByBot bool
	started      bool // counted in botd_calls_started_total
	needsResync  bool
	// delivering is set while a goroutine hands the outbox over.
	delivering bool
	// tHead is where the transitions ring's oldest entry is, once full
	// (MaxTransitions is at most MaxTransitionsLimit). The small fields
	// are together, so that a call fits a smaller allocation
	// (TestCallFitsItsAllocation).
	tHead uint16

	id string
	// logBase is the store's logger; log() adds call_id.
	logBase *zerolog.Logger
	// res is the call resource as merged from TrackCall and notifications;
	// res.State is the call's state ("" until the first one).
	res           model.Call
	createdAt     time.Time
	updatedAt     time.Time
	establishedAt time.Time
	terminatedAt  time.Time
	transitions   []Transition // a ring, see addTransitionLocked
	// tFirst is the sequence number of the ring's oldest transition: how
	// many this call's ring has dropped. Record.FirstTransition.
	tFirst uint64

	roster roster
	delta  deltaState
	ops    []*OperationView
	// rare is what many calls never have, allocated on first use.
	rare *callRare

	// outbox holds changes not yet handed to observers and subscribers.
	outbox []Change
}

// callRare is the part of a call many calls never use: participants who
// left, content sharing, key presses. Kept apart, it costs a call that
// has none of them 8 bytes instead of 104 (TestCallFitsItsAllocation; the
// deltas a call holds are apart too, deltaHold).
type callRare struct {
	// leftIDs are the ids of participants who recently left, bounded:
	// Graph gives a participant who rejoins a new id, so a full roster
	// that brings one back is a stale notification or a real return that
	// only a resync can tell apart.
	leftIDs       []string
	sessions      []model.ContentSharingSession
	endedSessions []string // ids of recently ended sessions, bounded
	tones         tones
}

// rareLocked returns c's rare part, allocating it.
func (c *call) rareLocked() *callRare {
	if c.rare == nil {
		c.rare = &callRare{}
	}
	return c.rare
}

// The readers of a call's rare part, nil when it has none.

func (r *callRare) left() []string {
	if r == nil {
		return nil
	}
	return r.leftIDs
}

func (r *callRare) sessionList() []model.ContentSharingSession {
	if r == nil {
		return nil
	}
	return r.sessions
}

func (r *callRare) toneList() []ToneView {
	if r == nil {
		return nil
	}
	return r.tones.list
}

// rememberID appends id to ids, dropping the oldest beyond max.
func rememberID(ids []string, id string, max int) []string {
	if len(ids) >= max {
		ids = slices.Delete(ids, 0, 1)
	}
	return append(ids, id)
}

// callLog is a call's logger: the store's, each line with call_id. A
// call holds a pointer to the store's, not a zerolog.Logger of its own,
// whose context buffer would cost every tracked call about 500 bytes.
type callLog struct {
	base *zerolog.Logger
	id   string
}

func (c *call) log() callLog { return callLog{base: c.logBase, id: c.id} }

func (l callLog) Debug() *zerolog.Event { return l.base.Debug().Str("call_id", l.id) }
func (l callLog) Info() *zerolog.Event  { return l.base.Info().Str("call_id", l.id) }
func (l callLog) Warn() *zerolog.Event  { return l.base.Warn().Str("call_id", l.id) }

func (s *Store) newCall(id string, now time.Time) *call {
	return &call{
		id:        id,
		logBase:   &s.log,
		res:       model.Call{ID: id},
		createdAt: now,
		updatedAt: now,
	}
}

// applyCtx gathers what one locked section on a call reports.
type applyCtx struct {
	callID     string
	now        time.Time
	idx        int              // notification item index, -1 if none
	changeType model.ChangeType // the notification's changeType
	botd       string           // set when botd, not a notification, is the cause
	changes    []Change
}

func (a *applyCtx) add(ch Change) {
	ch.CallID = a.callID
	ch.At = a.now
	ch.Event = a.idx
	a.changes = append(a.changes, ch)
}

// logCause adds the cause to a log line; zerolog calls it only for a line
// that is written, so a disabled level formats nothing.
func (a *applyCtx) logCause(e *zerolog.Event) { e.Str("cause", a.cause()) }

// origin is what a Transition keeps of its cause; the text is made only
// when a view is read.
func (a *applyCtx) origin() origin { return origin{idx: a.idx, changeType: a.changeType, botd: a.botd} }

// cause describes, for a Transition, what caused it.
func (a *applyCtx) cause() string { return a.origin().String() }

// trackedLocked reports a call seen for the first time.
func (s *Store) trackedLocked(c *call, a *applyCtx) {
	a.add(Change{Kind: CallTracked, Call: c.snapshotLocked()})
	c.log().Debug().Func(a.logCause).Msg("call tracked")
}

// ignoreLocked counts something ignored on c.
func (s *Store) ignoreLocked(c *call, a *applyCtx, r reason) {
	s.m.ignored[r].Inc()
	c.log().Debug().Func(a.logCause).Str("reason", r.String()).Msg("ignored")
}

func (s *Store) applyLocked(c *call, a *applyCtx, ev *model.Event) {
	// Every notification carries the call's current callbackUri, which an
	// answer (or redirect, or transfer) may change: an answered incoming
	// call moves from the bot's registered webhook to the answering
	// replica's own. So newer news replaces it; a stale call state only
	// fills it in.
	if ev.CallbackURI != "" && (c.res.CallbackURI == "" || !staleLocked(c, ev)) {
		c.res.CallbackURI = ev.CallbackURI
	}
	if c.res.TenantID == "" && ev.TenantID != "" {
		c.res.TenantID = ev.TenantID
	}
	switch ev.Kind {
	case model.EventCall:
		s.applyCallLocked(c, a, ev)
	case model.EventRoster:
		s.applyRosterLocked(c, a, ev)
	case model.EventRosterDelta:
		s.applyDeltaLocked(c, a, ev.Delta)
	case model.EventOperation:
		s.applyOperationLocked(c, a, ev)
	case model.EventContentSharing:
		s.applySessionsLocked(c, a, ev)
	}
}

// staleLocked reports whether ev is older news than c: a call state
// below c's, or anything after c has terminated.
func staleLocked(c *call, ev *model.Event) bool {
	if c.res.State == model.StateTerminated {
		return true
	}
	return ev.Kind == model.EventCall && ev.ChangeType != model.ChangeDeleted && ev.Call != nil &&
		ev.Call.State.Valid() && stateRank(ev.Call.State) < stateRank(c.res.State)
}

func (s *Store) applyCallLocked(c *call, a *applyCtx, ev *model.Event) {
	res := ev.Call
	if ev.ChangeType == model.ChangeDeleted {
		// A deleted call is over, whatever state the payload names.
		s.setStateLocked(c, a, model.StateTerminated, res, "")
		return
	}
	if res.ToneInfo != nil {
		// A key press rides on a call update; it is news of its own, not
		// part of the call resource.
		s.toneLocked(c, a, res.ToneInfo)
		trimmed := *res
		trimmed.ToneInfo = nil
		res = &trimmed
	}
	switch {
	case res.State == "":
		mergeCall(&c.res, res, false)
	case !res.State.Valid():
		mergeCall(&c.res, res, true)
		s.ignoreLocked(c, a, reasonInvalidState)
	default:
		s.setStateLocked(c, a, res.State, res, "")
	}
}

// verdict is what to do with a requested state.
type verdict uint8

const (
	apply verdict = iota
	duplicate
	refuse
)

// stateRank orders the lifecycle. The established-ish states share a rank:
// moves among them (hold and back, transferring, redirecting) are lateral
// and allowed; a move to a lower rank is a regression.
func stateRank(s model.CallState) int {
	switch s {
	case model.StateIncoming:
		return 1
	case model.StateEstablishing:
		return 2
	case model.StateEstablished, model.StateHold, model.StateTransferring,
		model.StateTransferAccepted, model.StateRedirecting:
		return 3
	case model.StateTerminating:
		return 4
	case model.StateTerminated:
		return 5
	}
	return 0
}

// judge decides a move from from to to.
func judge(from, to model.CallState) (verdict, reason) {
	switch {
	case !to.Valid():
		return refuse, reasonInvalidState
	case from == to:
		return duplicate, reasonDuplicateState
	case from == model.StateTerminated:
		return refuse, reasonAfterTerminated
	case stateRank(to) >= stateRank(from):
		return apply, 0
	}
	return refuse, reasonStateRegression
}

// setStateLocked moves c to state to, if the rules allow, merging res's
// fields into c (fully when the move applies or repeats the state; only
// into empty fields when it is refused, as res is then older news). why is
// botd's reason, if botd asked.
func (s *Store) setStateLocked(c *call, a *applyCtx, to model.CallState, res *model.Call, why string) {
	from := c.res.State
	v, r := judge(from, to)
	switch v {
	case duplicate:
		if res != nil {
			mergeCall(&c.res, res, false)
		}
		s.ignoreLocked(c, a, r)
		return
	case refuse:
		if res != nil {
			mergeCall(&c.res, res, true)
		}
		c.addTransitionLocked(Transition{From: from, To: to, At: a.now, origin: a.origin(), Ignored: true, Reason: r.String()}, s.cfg.MaxTransitions)
		s.m.ignored[r].Inc()
		c.log().Debug().Str("from", string(from)).Str("to", string(to)).Func(a.logCause).
			Str("reason", r.String()).Msg("call state change ignored")
		return
	}
	if res != nil {
		mergeCall(&c.res, res, false)
	}
	c.res.State = to
	if to == model.StateIncoming && c.res.Direction == "" {
		c.res.Direction = model.DirectionIncoming
	}
	c.addTransitionLocked(Transition{From: from, To: to, At: a.now, origin: a.origin()}, s.cfg.MaxTransitions)
	s.m.callsByState[stateIndex(from)].Dec()
	s.m.callsByState[stateIndex(to)].Inc()
	if !c.started {
		c.started = true
		s.m.callsStarted.WithLabelValues(directionLabel(c.res.Direction)).Inc()
	}
	snap := c.snapshotLocked()
	a.add(Change{Kind: CallStateChanged, From: from, To: to, Call: snap, Reason: why})
	switch to {
	case model.StateIncoming:
		a.add(Change{Kind: CallIncoming, To: to, Call: snap})
	case model.StateEstablished:
		if c.establishedAt.IsZero() {
			c.establishedAt = a.now
			a.add(Change{Kind: CallEstablished, To: to, Call: snap})
		}
	case model.StateTerminated:
		c.terminatedAt = a.now
		start := c.establishedAt
		if start.IsZero() {
			start = c.createdAt
		}
		s.m.callDuration.Observe(a.now.Sub(start).Seconds())
		s.m.participants.Sub(float64(c.roster.len()))
		// The roster is frozen: held deltas will never apply.
		c.delta.hold = nil
		a.add(Change{Kind: CallTerminated, To: to, Call: snap, Reason: why})
	}
	c.log().Info().Str("from", string(from)).Str("to", string(to)).Func(a.logCause).Msg("call state changed")
}

// mergeCall copies src's set fields into dst; with fillOnly, only into
// dst's empty ones. The id and the state are not merged. Pointers and
// slices are shared, never modified in place.
func mergeCall(dst, src *model.Call, fillOnly bool) {
	str := func(d *string, v string) {
		if v != "" && (!fillOnly || *d == "") {
			*d = v
		}
	}
	str(&dst.ODataType, src.ODataType)
	str(&dst.Direction, src.Direction)
	str(&dst.Subject, src.Subject)
	str(&dst.CallbackURI, src.CallbackURI)
	str(&dst.CallChainID, src.CallChainID)
	str(&dst.MyParticipantID, src.MyParticipantID)
	str(&dst.TenantID, src.TenantID)
	if src.Source != nil && (!fillOnly || dst.Source == nil) {
		dst.Source = src.Source
	}
	if len(src.Targets) > 0 && (!fillOnly || len(dst.Targets) == 0) {
		dst.Targets = src.Targets
	}
	if len(src.RequestedModalities) > 0 && (!fillOnly || len(dst.RequestedModalities) == 0) {
		dst.RequestedModalities = src.RequestedModalities
	}
	if src.MediaConfig != nil && (!fillOnly || dst.MediaConfig == nil) {
		dst.MediaConfig = src.MediaConfig
	}
	if src.ChatInfo != nil && (!fillOnly || dst.ChatInfo == nil) {
		dst.ChatInfo = src.ChatInfo
	}
	if src.MeetingInfo != nil && (!fillOnly || dst.MeetingInfo == nil) {
		dst.MeetingInfo = src.MeetingInfo
	}
	if src.CallOptions != nil && (!fillOnly || dst.CallOptions == nil) {
		dst.CallOptions = src.CallOptions
	}
	if src.ResultInfo != nil && (!fillOnly || dst.ResultInfo == nil) {
		dst.ResultInfo = src.ResultInfo
	}
}

// addTransitionLocked appends t, overwriting the oldest once max are kept:
// transitions is a ring whose oldest entry is at tHead when full.
func (c *call) addTransitionLocked(t Transition, max int) {
	if len(c.transitions) < max {
		c.transitions = append(c.transitions, t)
		return
	}
	c.transitions[c.tHead] = t
	c.tHead = uint16((int(c.tHead) + 1) % len(c.transitions))
	c.tFirst++
}

// transitionsLocked returns the history, oldest first, less its oldest
// skip, with each transition's cause as text when withCause says so;
// otherwise encoding writes it from the origin (AppendJSON).
func (c *call) transitionsLocked(withCause bool, skip int) []Transition {
	out := make([]Transition, 0, len(c.transitions)-skip)
	if h := int(c.tHead); skip < len(c.transitions)-h {
		out = append(out, c.transitions[h+skip:]...)
		out = append(out, c.transitions[:h]...)
	} else {
		out = append(out, c.transitions[skip-(len(c.transitions)-h):h]...)
	}
	for i := range out {
		if withCause && out[i].Cause == "" {
			out[i].Cause = out[i].origin.String()
		}
	}
	return out
}

func (c *call) snapshotLocked() *model.Call {
	snap := c.res
	return &snap
}

func (c *call) viewLocked() CallView {
	v := CallView{
		ID:                     c.id,
		State:                  c.res.State,
		Direction:              c.res.Direction,
		CallChainID:            c.res.CallChainID,
		MyParticipantID:        c.res.MyParticipantID,
		TenantID:               c.res.TenantID,
		Subject:                c.res.Subject,
		Source:                 c.res.Source,
		Targets:                c.res.Targets,
		ChatInfo:               c.res.ChatInfo,
		MeetingInfo:            c.res.MeetingInfo,
		ResultInfo:             c.res.ResultInfo,
		CallbackURI:            c.res.CallbackURI,
		Participants:           append([]model.Participant{}, c.roster.ps...),
		Operations:             make([]OperationView, 0, len(c.ops)),
		ContentSharingSessions: append([]model.ContentSharingSession{}, c.rare.sessionList()...),
		Tones:                  append([]ToneView{}, c.rare.toneList()...),
		Transitions:            c.transitionsLocked(true, 0),
		RosterNeedsResync:      c.needsResync,
		RosterSequenceNumber:   c.delta.seq,
		CreatedByBot:           c.createdByBot,
		CreatedAt:              c.createdAt,
		UpdatedAt:              c.updatedAt,
		EstablishedAt:          c.establishedAt,
		TerminatedAt:           c.terminatedAt,
	}
	for _, op := range c.ops {
		v.Operations = append(v.Operations, *op)
	}
	return v
}

func (c *call) summaryLocked() CallSummary {
	return CallSummary{
		ID:               c.id,
		State:            c.res.State,
		Direction:        c.res.Direction,
		ParticipantCount: c.roster.len(),
		CreatedAt:        c.createdAt,
		UpdatedAt:        c.updatedAt,
	}
}

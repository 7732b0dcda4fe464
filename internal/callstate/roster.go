package callstate

import (
	"slices"
	"time"

	"github.com/botd/botd/internal/model"
)

// rosterIndexMin is the roster size above which a map index is kept; below
// it a linear scan is faster and saves the map's memory.
const rosterIndexMin = 16

// roster is a call's participants in arrival order. Each is keyed by its id,
// or, when Graph sent "id": null, by its identity (kind and id).
type roster struct {
	ps   []model.Participant
	keys []string       // keys[i] is ps[i]'s key
	idx  map[string]int // key -> position; nil while len(ps) <= rosterIndexMin
}

func (r *roster) len() int { return len(r.ps) }

// participantKey returns p's id, or its identity key, or "" when it has
// neither (such a participant cannot be tracked).
func participantKey(p *model.Participant) string {
	if p.ID != "" {
		return p.ID
	}
	return identityKey(p)
}

// identityKey is "\x00kind:id" for p's primary identity; the NUL keeps it
// apart from any participant id.
func identityKey(p *model.Participant) string {
	kind, id := p.Info.Identity.Primary()
	if id == nil || id.ID == "" {
		return ""
	}
	return "\x00" + kind + ":" + id.ID
}

// hasKey reports whether participantKey(p) is not "", without building it.
func hasKey(p *model.Participant) bool {
	if p.ID != "" {
		return true
	}
	_, id := p.Info.Identity.Primary()
	return id != nil && id.ID != ""
}

// isIdentityKey reports whether k is identityKey(p), without building it.
func isIdentityKey(k string, p *model.Participant) bool {
	kind, id := p.Info.Identity.Primary()
	if id == nil || id.ID == "" || len(k) != 2+len(kind)+len(id.ID) {
		return false
	}
	return k[0] == 0 && k[1:1+len(kind)] == kind && k[1+len(kind)] == ':' && k[2+len(kind):] == id.ID
}

// keyOf is participantKey(p) for p found at j in old (-1: not found): the
// key old holds when it is the same, so that the key of a participant
// known by identity is built once, not on every roster.
func keyOf(p *model.Participant, old *roster, j int) string {
	if p.ID == "" && j >= 0 && isIdentityKey(old.keys[j], p) {
		return old.keys[j]
	}
	return participantKey(p)
}

func sameIdentity(a, b *model.Participant) bool {
	ka, ia := a.Info.Identity.Primary()
	kb, ib := b.Info.Identity.Primary()
	return ia != nil && ib != nil && ia.ID != "" && ka == kb && ia.ID == ib.ID
}

func (r *roster) lookup(key string) int {
	if r.idx != nil {
		if i, ok := r.idx[key]; ok {
			return i
		}
		return -1
	}
	for i, k := range r.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// lookupIdentity is lookup(identityKey(p)), building the key only for the
// map of a large roster; -1 when p has no identity.
func (r *roster) lookupIdentity(p *model.Participant) int {
	if r.idx != nil {
		if ik := identityKey(p); ik != "" {
			return r.lookup(ik)
		}
		return -1
	}
	for i, k := range r.keys {
		if isIdentityKey(k, p) {
			return i
		}
	}
	return -1
}

// find returns the position of the participant p refers to, or -1. A
// participant stored without an id is found by identity when p brings its
// id, and one stored with an id is found by identity when p has none.
func (r *roster) find(p *model.Participant) int {
	if p.ID != "" {
		if i := r.lookup(p.ID); i >= 0 {
			return i
		}
	}
	if i := r.lookupIdentity(p); i >= 0 {
		return i
	}
	if p.ID == "" {
		for i := range r.ps {
			if r.ps[i].ID != "" && sameIdentity(&r.ps[i], p) {
				return i
			}
		}
	}
	return -1
}

func (r *roster) add(p model.Participant, key string) {
	r.ps = append(r.ps, p)
	r.keys = append(r.keys, key)
	if r.idx != nil {
		r.idx[key] = len(r.ps) - 1
	} else if len(r.ps) > rosterIndexMin {
		r.idx = make(map[string]int, len(r.ps)*2)
		for i, k := range r.keys {
			r.idx[k] = i
		}
	}
}

// set replaces the participant at i, re-keying it if its key changed (an id
// learnt for a participant known by identity).
func (r *roster) set(i int, p model.Participant, key string) {
	r.ps[i] = p
	if r.keys[i] != key {
		if r.idx != nil {
			delete(r.idx, r.keys[i])
			r.idx[key] = i
		}
		r.keys[i] = key
	}
}

func (r *roster) remove(i int) {
	if r.idx != nil {
		delete(r.idx, r.keys[i])
	}
	r.ps = slices.Delete(r.ps, i, i+1)
	r.keys = slices.Delete(r.keys, i, i+1)
	if r.idx != nil {
		for j := i; j < len(r.keys); j++ {
			r.idx[r.keys[j]] = j
		}
	}
}

// participantEqual compares what a roster update can change; the sequence
// number and removedState are bookkeeping, not a change.
func participantEqual(a, b *model.Participant) bool {
	return a.ID == b.ID && a.IsMuted == b.IsMuted && a.IsInLobby == b.IsInLobby &&
		slices.Equal(a.MediaStreams, b.MediaStreams) && infoEqual(&a.Info, &b.Info)
}

func infoEqual(a, b *model.ParticipantInfo) bool {
	return a.EndpointType == b.EndpointType && a.LanguageID == b.LanguageID &&
		a.Region == b.Region && a.CountryCode == b.CountryCode &&
		a.ParticipantID == b.ParticipantID && identitySetEqual(a.Identity, b.Identity)
}

func identitySetEqual(a, b *model.IdentitySet) bool {
	if a == nil || b == nil {
		return a == b
	}
	return identityEqual(a.User, b.User) && identityEqual(a.Application, b.Application) &&
		identityEqual(a.ApplicationInstance, b.ApplicationInstance) && identityEqual(a.Phone, b.Phone) &&
		identityEqual(a.Guest, b.Guest) && identityEqual(a.Device, b.Device) &&
		identityEqual(a.Encrypted, b.Encrypted) && identityEqual(a.OnPremises, b.OnPremises)
}

func identityEqual(a, b *model.Identity) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func participantChange(k ChangeKind, p *model.Participant) Change {
	cp := *p
	return Change{Kind: k, Participant: &cp}
}

// rosterChangeLocked reports a participant who joined or left c, and logs
// it at info: who is on a call is what an operator follows it by. Every
// leave passes here, so it is where c remembers the ids that left.
func (s *Store) rosterChangeLocked(c *call, a *applyCtx, k ChangeKind, p *model.Participant) {
	a.add(participantChange(k, p))
	msg := "participant joined"
	if k == ParticipantLeft {
		msg = "participant left"
		if p.ID != "" {
			rare := c.rareLocked()
			rare.leftIDs = rememberID(rare.leftIDs, p.ID, maxLeftIDs)
		}
	}
	c.log().Info().Str("participant_id", p.ID).Func(a.logCause).Msg(msg)
}

func (s *Store) applyRosterLocked(c *call, a *applyCtx, ev *model.Event) {
	if c.res.State == model.StateTerminated {
		s.ignoreLocked(c, a, reasonAfterTerminated)
		return
	}
	if ev.ChangeType == model.ChangeDeleted {
		// The listed participants left.
		for i := range ev.Participants {
			p := &ev.Participants[i]
			if j := c.roster.find(p); j >= 0 {
				s.removeParticipantLocked(c, a, j, p.RemovedState)
			}
		}
		return
	}
	if returned := s.replaceRosterLocked(c, a, ev.Participants); returned != "" {
		// A full roster has no sequence number: one that brings back a
		// participant who left is a late notification, or a return only
		// Graph can confirm. Keep it, and list the participants to know.
		c.log().Info().Str("participant_id", returned).Msg("a participant who left is back in a full roster")
		s.markResyncLocked(c, a, resyncParticipantReturned)
	}
}

// maxLeftIDs bounds the ids of participants who left that a call remembers.
const maxLeftIDs = 32

// replaceRosterLocked makes ps the roster, reporting the difference. It
// returns the id of a participant it added who had left before, if any.
func (s *Store) replaceRosterLocked(c *call, a *applyCtx, ps []model.Participant) (returned string) {
	old := &c.roster
	next := roster{ps: make([]model.Participant, 0, len(ps)), keys: make([]string, 0, len(ps))}
	// matched[j]: old.ps[j] is in ps. A small roster's flags stay on the
	// stack.
	var small [rosterIndexMin]bool
	matched := small[:min(len(old.ps), len(small))]
	if len(old.ps) > len(small) {
		matched = make([]bool, len(old.ps))
	}
	for i := range ps {
		p := &ps[i]
		if !hasKey(p) {
			s.ignoreLocked(c, a, reasonParticipantWithoutKey)
			continue
		}
		if next.find(p) >= 0 {
			s.ignoreLocked(c, a, reasonDuplicateParticipant)
			continue
		}
		j := old.find(p)
		if j >= 0 && matched[j] {
			j = -1
		}
		key := keyOf(p, old, j)
		np := *p
		if j >= 0 {
			np.ID, key = keepID(&old.ps[j], &np, key)
		}
		next.add(np, key)
		switch {
		case j < 0:
			if np.ID != "" && slices.Contains(c.rare.left(), np.ID) {
				returned = np.ID
			}
			s.rosterChangeLocked(c, a, ParticipantJoined, &np)
		default:
			matched[j] = true
			if !participantEqual(&old.ps[j], &np) {
				a.add(participantChange(ParticipantUpdated, &np))
			}
		}
	}
	for j := range old.ps {
		if !matched[j] {
			s.rosterChangeLocked(c, a, ParticipantLeft, &old.ps[j])
		}
	}
	s.m.participants.Add(float64(next.len() - old.len()))
	c.roster = next
	return returned
}

func (s *Store) removeParticipantLocked(c *call, a *applyCtx, j int, rs *model.RemovedState) {
	gone := c.roster.ps[j]
	if rs != nil {
		gone.RemovedState = rs
	}
	c.roster.remove(j)
	s.m.participants.Dec()
	s.rosterChangeLocked(c, a, ParticipantLeft, &gone)
}

// applyDeltaParticipantLocked applies one participant of a delta roster.
func (s *Store) applyDeltaParticipantLocked(c *call, a *applyCtx, p *model.Participant) {
	key := participantKey(p)
	if key == "" {
		s.ignoreLocked(c, a, reasonParticipantWithoutKey)
		return
	}
	j := c.roster.find(p)
	if j >= 0 && p.RosterSequenceNumber != 0 && c.roster.ps[j].RosterSequenceNumber > p.RosterSequenceNumber {
		s.ignoreLocked(c, a, reasonStaleParticipant)
		return
	}
	switch {
	case p.RemovedState != nil:
		if j >= 0 {
			s.removeParticipantLocked(c, a, j, p.RemovedState)
		}
	case j < 0:
		c.roster.add(*p, key)
		s.m.participants.Inc()
		s.rosterChangeLocked(c, a, ParticipantJoined, p)
	default:
		np := *p
		np.ID, key = keepID(&c.roster.ps[j], &np, key)
		changed := !participantEqual(&c.roster.ps[j], &np)
		c.roster.set(j, np, key)
		if changed {
			a.add(participantChange(ParticipantUpdated, &np))
		}
	}
}

// keepID returns the id and key for p, an update of old: an update found by
// identity with "id": null keeps the id botd already knows.
func keepID(old, p *model.Participant, key string) (string, string) {
	if p.ID == "" && old.ID != "" {
		return old.ID, old.ID
	}
	return p.ID, key
}

// deltaState orders a call's delta rosters by sequenceNumber.
type deltaState struct {
	// seq is the last sequence number applied; after a resync, the floor
	// the next delta must exceed.
	seq int64
	// known says seq was set by an applied delta. Before the first, a call
	// expects sequence number 1 (Graph counts from 1) and holds later ones,
	// as the first may just be late.
	known bool
	// afterResync says the next delta above seq sets the baseline, as the
	// roster was just listed from Graph.
	afterResync bool
	maxSeen     int64
	// hold is nil while no delta is held: most calls never hold one.
	hold *deltaHold
}

// deltaHold is the deltas a call holds, ahead of a missing one.
type deltaHold struct {
	list  []*model.DeltaRoster // ascending sequence numbers, all > seq+1, never empty
	since time.Time            // when the first of them was held
}

// held is the deltas held, nil for none.
func (d *deltaState) held() []*model.DeltaRoster {
	if d.hold == nil {
		return nil
	}
	return d.hold.list
}

// resetForResync forgets held deltas and the expected number: after a
// resync, the next delta above the highest seen sets the baseline.
func (d *deltaState) resetForResync() {
	d.seq = d.maxSeen
	d.known = false
	d.afterResync = true
	d.hold = nil
}

func (s *Store) applyDeltaLocked(c *call, a *applyCtx, dr *model.DeltaRoster) {
	if c.res.State == model.StateTerminated {
		s.ignoreLocked(c, a, reasonAfterTerminated)
		return
	}
	s.expireGapLocked(c, a)
	d := &c.delta
	n := dr.SequenceNumber
	d.maxSeen = max(d.maxSeen, n)
	switch {
	case !d.known && d.afterResync:
		if n <= d.seq {
			s.ignoreLocked(c, a, reasonStaleSequence)
			return
		}
	case !d.known && n <= 1:
		// The first delta of the call: the baseline.
	case d.known && n == d.seq:
		s.ignoreLocked(c, a, reasonDuplicateSequence)
		return
	case d.known && n < d.seq:
		s.ignoreLocked(c, a, reasonStaleSequence)
		return
	case d.known && n == d.seq+1:
	default:
		s.holdLocked(c, a, dr)
		return
	}
	s.applyDeltaParticipantsLocked(c, a, dr)
	s.drainLocked(c, a)
}

func (s *Store) applyDeltaParticipantsLocked(c *call, a *applyCtx, dr *model.DeltaRoster) {
	for i := range dr.Participants {
		s.applyDeltaParticipantLocked(c, a, &dr.Participants[i])
	}
	c.delta.seq = dr.SequenceNumber
	c.delta.known = true
	c.delta.afterResync = false
}

// drainLocked applies the held deltas that now follow on.
func (s *Store) drainLocked(c *call, a *applyCtx) {
	d := &c.delta
	for d.hold != nil && d.hold.list[0].SequenceNumber <= d.seq+1 {
		next := d.hold.list[0]
		d.hold.list[0] = nil
		if d.hold.list = d.hold.list[1:]; len(d.hold.list) == 0 {
			d.hold = nil
		}
		if next.SequenceNumber > d.seq {
			s.applyDeltaParticipantsLocked(c, a, next)
		}
	}
}

// holdLocked keeps a delta that came ahead of a missing one. When the hold
// is full, everything held is applied and the roster marked for resync.
func (s *Store) holdLocked(c *call, a *applyCtx, dr *model.DeltaRoster) {
	d := &c.delta
	i, found := slices.BinarySearchFunc(d.held(), dr.SequenceNumber, func(h *model.DeltaRoster, n int64) int {
		switch {
		case h.SequenceNumber < n:
			return -1
		case h.SequenceNumber > n:
			return 1
		}
		return 0
	})
	if found {
		s.ignoreLocked(c, a, reasonDuplicateSequence)
		return
	}
	if d.hold == nil {
		d.hold = &deltaHold{since: a.now}
	}
	d.hold.list = slices.Insert(d.hold.list, i, dr)
	if len(d.hold.list) > s.cfg.DeltaHoldMax {
		s.flushLocked(c, a, resyncHoldOverflow)
	}
}

// expireGapLocked gives up on a gap older than DeltaGapTimeout.
func (s *Store) expireGapLocked(c *call, a *applyCtx) {
	d := &c.delta
	if d.hold != nil && a.now.Sub(d.hold.since) >= s.cfg.DeltaGapTimeout {
		s.flushLocked(c, a, resyncGapTimeout)
	}
}

// flushLocked applies every held delta in order, skipping the gaps, and
// marks the roster as needing a resync: what the gaps carried is lost.
func (s *Store) flushLocked(c *call, a *applyCtx, why string) {
	d := &c.delta
	held := d.held()
	d.hold = nil
	for _, dr := range held {
		s.applyDeltaParticipantsLocked(c, a, dr)
	}
	c.log().Warn().Str("reason", why).Int("held", len(held)).Int64("sequence_number", d.seq).
		Msg("roster gap given up")
	s.markResyncLocked(c, a, why)
}

// markResyncLocked marks c's roster as needing a resync, for why.
func (s *Store) markResyncLocked(c *call, a *applyCtx, why string) {
	s.m.resyncs.WithLabelValues(why).Inc()
	if !c.needsResync {
		c.needsResync = true
		a.add(Change{Kind: RosterNeedsResync, Reason: why})
	}
	c.log().Warn().Str("reason", why).Msg("roster needs resync")
}

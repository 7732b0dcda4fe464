package emulator

import (
	"encoding/hex"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/botd/botd/internal/model"
)

// callKind is what kind of conversation a call is, for Graph's rules
// (several invitees only in group calls) and for the flow it follows.
type callKind uint8

const (
	kindUnknown  callKind = iota // stored by PutCall
	kindP2P                      // one target
	kindGroup                    // several targets, or escalated by an invite
	kindMeeting                  // joined by chatInfo/meetingInfo or joinMeetingId
	kindIncoming                 // rung by /emulator/incoming: peer to peer
)

func (k callKind) peerToPeer() bool { return k == kindP2P || k == kindIncoming }

// callState is one emulated call. Every field is guarded by Server.mu.
type callState struct {
	call         model.Call
	participants []model.Participant
	operations   map[string]model.Operation

	kind callKind
	// ended is set once the call is terminated: its flows stop, and only
	// the notifications of its end are still posted.
	ended bool
	// peopleRNG draws people's answers and delays; faultRNG draws the
	// faults injected into this call's notifications. Both derive from the
	// seed and the call's serial number, so that one call's decisions do
	// not depend on how other calls interleave with it.
	peopleRNG, faultRNG *mrand.Rand
	// rosterSeq is the last delta roster sequenceNumber sent; rosterSent
	// says whether any roster was sent (a first delta carries everyone).
	rosterSeq  int64
	rosterSent bool
	// nextSource numbers media stream sourceIds.
	nextSource int
	// keepAlive and incoming are the pending timers of the 45 min and
	// 15 s rules.
	keepAlive, incoming uint64
	// pending counts targets of a group call that have not answered yet;
	// accepted counts those who did; lastFailure is the latest refusal.
	pending, accepted int
	lastFailure       model.ResultInfo

	// opOrder lists operation ids oldest first, to bound operations.
	opOrder []string
	// media are the running playPrompt, recordResponse and sendDtmfTones
	// operations, in the order they started.
	media []*mediaRun
	// toneSubscribed is set by subscribeToTone; toneSeq is the last
	// toneInfo sequenceId sent.
	toneSubscribed bool
	toneSeq        int64
	// held is the participant on hold music, if any.
	held              string
	recordingStatus   model.RecordingStatus
	screenSharingRole model.ScreenSharingRole
}

// newCallLocked stores a new call. Callers hold s.mu.
func (s *Server) newCallLocked(call model.Call, kind callKind) *callState {
	s.serial++
	seed := uint64(s.seed)
	cs := &callState{
		call:       call,
		operations: map[string]model.Operation{},
		kind:       kind,
		peopleRNG:  mrand.New(mrand.NewPCG(seed, s.serial<<1)),
		faultRNG:   mrand.New(mrand.NewPCG(seed, s.serial<<1|1)),
	}
	s.calls[call.ID] = cs
	s.order = append(s.order, call.ID)
	return cs
}

// botIdentity is the bot's application identity.
func (s *Server) botIdentity() *model.IdentitySet {
	return &model.IdentitySet{ODataType: model.ODataIdentitySet,
		Application: &model.Identity{ODataType: model.ODataIdentity, ID: s.opts.ClientID, DisplayName: s.opts.BotName}}
}

// identity copies an identity set as Graph echoes it in notifications:
// typed, with the tenant on user identities.
func (s *Server) identity(in *model.IdentitySet) *model.IdentitySet {
	if in == nil {
		return nil
	}
	cp := func(x *model.Identity, tenant bool) *model.Identity {
		if x == nil {
			return nil
		}
		c := *x
		c.ODataType = model.ODataIdentity
		if tenant && c.TenantID == "" {
			c.TenantID = s.opts.TenantID
		}
		return &c
	}
	return &model.IdentitySet{ODataType: model.ODataIdentitySet,
		User: cp(in.User, true), Application: cp(in.Application, false), ApplicationInstance: cp(in.ApplicationInstance, false),
		Phone: cp(in.Phone, false), Guest: cp(in.Guest, false), Device: cp(in.Device, false),
		Encrypted: cp(in.Encrypted, false), OnPremises: cp(in.OnPremises, false)}
}

// participantLocked makes a roster entry for a person. Callers hold s.mu.
func (s *Server) participantLocked(cs *callState, id *model.IdentitySet, modalities []string) model.Participant {
	if len(modalities) == 0 {
		modalities = []string{"audio"}
	}
	var streams []model.MediaStream
	for _, m := range modalities {
		cs.nextSource++
		streams = append(streams, model.MediaStream{ODataType: model.ODataMediaStream, MediaType: m,
			SourceID: strconv.Itoa(cs.nextSource), Direction: "sendReceive"})
	}
	return model.Participant{
		ODataType: model.ODataParticipant,
		ID:        s.newIDLocked(),
		Info: model.ParticipantInfo{ODataType: model.ODataParticipantInfo, Identity: s.identity(id),
			EndpointType: "default", LanguageID: "en-US"},
		MediaStreams: streams,
	}
}

// botParticipantLocked is the bot's own roster entry (myParticipantId):
// the source of a call the bot placed, the target of one it answered.
func (s *Server) botParticipantLocked(cs *callState, modalities []string) model.Participant {
	id := s.botIdentity()
	switch {
	case cs.kind == kindIncoming:
		// The source is the caller; the bot is what was dialled.
		if len(cs.call.Targets) > 0 && cs.call.Targets[0].Identity != nil {
			id = cs.call.Targets[0].Identity
		}
	case cs.call.Source != nil && cs.call.Source.Identity != nil:
		id = cs.call.Source.Identity
	}
	p := s.participantLocked(cs, id, modalities)
	p.ID = cs.call.MyParticipantID
	return p
}

// step of a flow: after a (scaled) delay from the previous one, do runs
// with s.mu held; it returns false to stop the flow.
type flowStep struct {
	after time.Duration
	do    func() bool
}

// runLocked schedules a flow of steps for a call; it stops when a step
// says so or the call has ended. Callers hold s.mu.
func (s *Server) runLocked(cs *callState, steps ...flowStep) {
	if len(steps) == 0 {
		return
	}
	s.afterLocked(steps[0].after, func() {
		if cs.ended || !steps[0].do() {
			return
		}
		s.runLocked(cs, steps[1:]...)
	})
}

func (s *Server) at(d time.Duration, do func() bool) flowStep { return flowStep{d, do} }

// startOutgoingLocked runs a created call: establishing, then, depending
// on its kind, the meeting's or the people's answers. Callers hold s.mu.
func (s *Server) startOutgoingLocked(cs *callState) {
	step := s.step()
	s.armKeepAliveLocked(cs)
	establishing := s.at(step, func() bool {
		s.notifyCallLocked(cs, model.ChangeUpdated)
		return true
	})
	switch cs.kind {
	case kindMeeting:
		s.runLocked(cs, establishing,
			s.at(s.scaled(s.opts.Timing.Connect), func() bool {
				cs.call.State = model.StateEstablished
				s.notifyCallLocked(cs, model.ChangeUpdated)
				return true
			}),
			s.at(step, func() bool {
				added := s.meetingAttendeesLocked(cs)
				cs.participants = append(cs.participants, added...)
				s.notifyRosterLocked(cs, added, nil)
				return true
			}),
			s.at(step, func() bool { s.notifyContentSharingLocked(cs); return true }))
	case kindP2P:
		t := cs.call.Targets[0]
		d := s.decideLocked(cs, t.Identity)
		s.runLocked(cs, establishing, s.at(d.after, func() bool {
			if d.answer != AnswerAccept {
				s.endLocked(cs, resultFor(d.answer), 0, false)
				return false
			}
			s.establishLocked(cs, []model.Participant{s.participantLocked(cs, t.Identity, cs.call.RequestedModalities)})
			return true
		}), s.at(step, func() bool { s.notifyContentSharingLocked(cs); return true }))
	default: // group call: everyone rings at once, the call lives with the first who accepts
		s.runLocked(cs, establishing)
		cs.pending = len(cs.call.Targets)
		for _, t := range cs.call.Targets {
			d := s.decideLocked(cs, t.Identity)
			s.afterLocked(step+d.after, func() {
				if cs.ended {
					return
				}
				cs.pending--
				if d.answer == AnswerAccept {
					cs.accepted++
					p := s.participantLocked(cs, t.Identity, cs.call.RequestedModalities)
					if cs.call.State != model.StateEstablished {
						s.establishLocked(cs, []model.Participant{p})
						s.notifyContentSharingLocked(cs)
					} else {
						cs.participants = append(cs.participants, p)
						s.notifyRosterLocked(cs, []model.Participant{p}, nil)
					}
				} else {
					cs.lastFailure = resultFor(d.answer)
				}
				if cs.pending == 0 && cs.accepted == 0 {
					s.endLocked(cs, cs.lastFailure, 0, false)
				}
			})
		}
	}
}

// establishLocked moves a call to established and sends the roster with
// the people who joined. Callers hold s.mu.
func (s *Server) establishLocked(cs *callState, joined []model.Participant) {
	cs.call.State = model.StateEstablished
	cs.call.ResultInfo = nil
	s.notifyCallLocked(cs, model.ChangeUpdated)
	cs.participants = append(cs.participants, joined...)
	s.notifyRosterLocked(cs, joined, nil)
}

// meetingAttendeesLocked invents the people already in a joined meeting:
// its organizer, when named, and two attendees. Callers hold s.mu.
func (s *Server) meetingAttendeesLocked(cs *callState) []model.Participant {
	var out []model.Participant
	if mi := cs.call.MeetingInfo; mi != nil && mi.Organizer != nil && mi.Organizer.User != nil {
		out = append(out, s.participantLocked(cs, mi.Organizer, nil))
	}
	for _, name := range []string{"Adele Vance", "Alex Wilber"} {
		id := &model.IdentitySet{User: &model.Identity{ID: s.newIDLocked(), DisplayName: name}}
		out = append(out, s.participantLocked(cs, id, nil))
	}
	return out
}

// startAnsweredLocked runs an answered incoming call: establishing,
// established, the roster (bot and caller), content sharing. Callers hold
// s.mu.
func (s *Server) startAnsweredLocked(cs *callState, modalities []string) {
	s.stopTimerLocked(cs.incoming)
	s.armKeepAliveLocked(cs)
	step := s.step()
	s.runLocked(cs,
		s.at(step, func() bool { s.notifyCallLocked(cs, model.ChangeUpdated); return true }),
		s.at(s.scaled(s.opts.Timing.Connect), func() bool {
			var joined []model.Participant
			if len(cs.participants) == 0 {
				joined = append(joined, s.botParticipantLocked(cs, modalities))
			}
			if src := cs.call.Source; src != nil && src.Identity != nil {
				joined = append(joined, s.participantLocked(cs, src.Identity, modalities))
			}
			s.establishLocked(cs, joined)
			return true
		}),
		s.at(step, func() bool { s.notifyContentSharingLocked(cs); return true }))
}

// startTransferLocked runs a transfer: the target answers as a person; on
// accept the bot's call ends, otherwise it is established again with the
// failure in resultInfo. Callers hold s.mu.
func (s *Server) startTransferLocked(cs *callState, target *model.IdentitySet) {
	step := s.step()
	d := s.decideLocked(cs, target)
	s.runLocked(cs,
		s.at(step, func() bool { s.notifyCallLocked(cs, model.ChangeUpdated); return true }),
		s.at(d.after, func() bool {
			if d.answer != AnswerAccept {
				r := resultFor(d.answer)
				cs.call.State = model.StateEstablished
				cs.call.ResultInfo = &r
				s.notifyCallLocked(cs, model.ChangeUpdated)
				return false
			}
			cs.call.State = model.StateTransferAccepted
			s.notifyCallLocked(cs, model.ChangeUpdated)
			return true
		}),
		s.at(step, func() bool { s.endLocked(cs, resultTransferred, 0, false); return false }))
}

// endLocked terminates a call: it stops the call's flows and timers and
// stores state terminated at once (so that a second DELETE or a keepAlive
// gets Graph's 404), then posts, after delay, the "deleted" notification
// with state terminated and resultInfo, preceded a step earlier by
// "terminating" if asked (a hangup). Callers hold s.mu.
func (s *Server) endLocked(cs *callState, ri model.ResultInfo, delay time.Duration, terminating bool) {
	if cs.ended {
		return
	}
	ri = resultInfo(ri)
	cs.ended = true
	cs.call.State = model.StateTerminated
	cs.call.ResultInfo = &ri
	s.stopTimerLocked(cs.keepAlive)
	s.stopTimerLocked(cs.incoming)
	id := cs.call.ID
	s.afterLocked(s.opts.Retention, func() { s.forgetLocked(id) })
	final := func() {
		cs.call.State = model.StateTerminated // a redirect showed redirecting until now
		s.notifyCallLocked(cs, model.ChangeDeleted)
	}
	switch {
	case terminating:
		s.afterLocked(delay, func() {
			c := cs.call
			c.State = model.StateTerminating
			c.ResultInfo = nil
			s.sendCallLocked(cs, c, model.ChangeUpdated)
			s.afterLocked(s.step(), final)
		})
	case delay > 0:
		s.afterLocked(delay, final)
	default:
		final()
	}
}

// forgetLocked drops a terminated call after Options.Retention. Callers
// hold s.mu.
func (s *Server) forgetLocked(id string) {
	if cs, ok := s.calls[id]; ok && cs.ended {
		delete(s.calls, id)
		if i := slices.Index(s.order, id); i >= 0 {
			s.order = slices.Delete(s.order, i, i+1)
		}
	}
}

// armKeepAliveLocked (re)starts a call's 45 min keepAlive rule. Callers
// hold s.mu.
func (s *Server) armKeepAliveLocked(cs *callState) {
	if cs.ended {
		return
	}
	s.stopTimerLocked(cs.keepAlive)
	cs.keepAlive = s.afterLocked(s.scaled(s.opts.Timing.KeepAlive), func() {
		cs.keepAlive = 0
		s.endLocked(cs, resultKeepAlive, 0, false)
	})
}

// contentSharingEnabled reports whether the call asked for content
// sharing notifications.
func contentSharingEnabled(c *model.Call) bool {
	o := c.CallOptions
	return o != nil && o.IsContentSharingNotificationEnabled != nil && *o.IsContentSharingNotificationEnabled
}

func deltaRosterEnabled(c *model.Call) bool {
	o := c.CallOptions
	return o != nil && o.IsDeltaRosterEnabled != nil && *o.IsDeltaRosterEnabled
}

// sessionIDLocked is a content-sharing session id: 64 hex digits, as Graph
// sends them. Callers hold s.mu.
func (s *Server) sessionIDLocked() string {
	b := make([]byte, 32)
	_, _ = rngReader{s.idRNG}.Read(b)
	return toUpperHex(b)
}

func toUpperHex(b []byte) string {
	h := []byte(hex.EncodeToString(b))
	for i, c := range h {
		if 'a' <= c && c <= 'f' {
			h[i] = c - 'a' + 'A'
		}
	}
	return string(h)
}

// inviteOutcome is how one invitee's invitation ends.
type inviteOutcome struct {
	p        model.InvitationParticipantInfo
	accepted bool
	result   model.ResultInfo
	// source is the call a moved participant leaves, and sourcePID its id
	// there.
	source    *callState
	sourcePID string
}

// maxInvitees is the most participants one invite may carry.
const maxInvitees = 5

// inviteProblemLocked is what Graph would refuse an invite with (400), or
// "". Callers hold s.mu.
func inviteProblemLocked(cs *callState, ps []model.InvitationParticipantInfo) string {
	switch {
	case len(ps) > maxInvitees:
		return "A maximum of " + strconv.Itoa(maxInvitees) + " participants can be invited in one request."
	case len(ps) > 1 && cs.kind.peerToPeer():
		return "Inviting multiple participants in one request is only supported for group calls."
	}
	botInCall := slices.ContainsFunc(cs.participants, func(p model.Participant) bool { return isBot(p.Info.Identity) })
	for i, p := range ps {
		switch {
		case p.Identity == nil:
			return "participants[" + strconv.Itoa(i) + "].identity is required."
		case isBot(p.Identity) && botInCall:
			return "Inviting more than one bot to a meeting or group call isn't allowed."
		}
	}
	return ""
}

// startInviteLocked rings the invitees of a running operation and, once
// all have answered, posts the operation's end and the roster update;
// a replaced peer-to-peer call then ends, and a moved participant leaves
// its source call. Callers hold s.mu.
func (s *Server) startInviteLocked(cs *callState, op model.Operation, several bool) {
	step := s.step()
	outs := make([]inviteOutcome, len(op.Participants))
	var last time.Duration
	for i, p := range op.Participants {
		o := inviteOutcome{p: p}
		after := step
		switch {
		case p.ParticipantID != "":
			// Moving someone who is already in a call: no ringing. Graph
			// documents no error for a source call or participant it does
			// not hold; like any invitation that cannot complete, the
			// operation fails (resultInfo 404) rather than the POST.
			if p.ReplacesCallID != "" {
				if src := s.liveCallLocked(p.ReplacesCallID); src != nil && src != cs &&
					slices.ContainsFunc(src.participants, func(x model.Participant) bool { return x.ID == p.ParticipantID }) {
					o.source, o.sourcePID = src, p.ParticipantID
				}
			} else {
				o.source, o.sourcePID = s.findParticipantLocked(p.ParticipantID, cs)
			}
			o.accepted = o.source != nil
			if !o.accepted {
				o.result = resultInfo(model.ResultInfo{Code: 404, Subcode: 0,
					Message: "Participant " + p.ParticipantID + " not found in the source call."})
			}
		case p.ReplacesCallID != "" && s.liveCallLocked(p.ReplacesCallID) == nil:
			// Undocumented in Graph: the invitation cannot complete, so the
			// operation fails with 404 (the call is not found), as other
			// invitations that cannot complete fail their operation.
			o.result = resultInfo(model.ResultInfo{Code: 404, Subcode: 0,
				Message: "Call " + p.ReplacesCallID + " to replace not found."})
		case i == 0 && p.ReplacesCallID != "" && s.liveCallLocked(p.ReplacesCallID) != nil:
			// The invitee is on the peer-to-peer call being replaced.
			o.accepted = true
		default:
			d := s.decideLocked(cs, p.Identity)
			o.accepted, after = d.answer == AnswerAccept, d.after
			if !o.accepted {
				o.result = resultFor(d.answer)
			}
		}
		outs[i] = o
		last = max(last, after)
	}
	s.afterLocked(step+last, func() { s.finishInviteLocked(cs, op, outs, several) })
}

// finishInviteLocked ends an invite operation. Callers hold s.mu.
func (s *Server) finishInviteLocked(cs *callState, op model.Operation, outs []inviteOutcome, several bool) {
	var joined []inviteOutcome
	var failure *model.ResultInfo
	for _, o := range outs {
		if o.accepted {
			joined = append(joined, o)
		} else {
			r := o.result
			failure = &r
		}
	}
	switch {
	case cs.ended:
		r := resultInfo(model.ResultInfo{Code: 404, Message: "The call ended before the invitation completed."})
		failure, joined = &r, nil
	case s.injectLocked(FaultOperation, cs.faultRNG):
		r := resultInfo(resultOperationFault)
		failure, joined = &r, nil
	}
	if len(joined) > 0 {
		op.Status, op.ResultInfo = model.OpCompleted, nil
	} else {
		op.Status = model.OpFailed
		if failure == nil {
			r := resultInfo(resultNoAnswer)
			failure = &r
		}
		op.ResultInfo = failure
	}
	s.updateOpLocked(cs, op)
	if cs.ended {
		return
	}
	s.notifyOperationLocked(cs, op, several)
	if len(joined) == 0 {
		return
	}
	var added []model.Participant
	for _, o := range joined {
		// The roster keeps one entry per identity: someone already in it
		// is not listed (or announced) twice.
		in := func(p model.Participant) bool { return sameIdentity(p.Info.Identity, o.p.Identity) }
		if slices.ContainsFunc(cs.participants, in) || slices.ContainsFunc(added, in) {
			continue
		}
		added = append(added, s.participantLocked(cs, o.p.Identity, nil))
	}
	cs.participants = append(cs.participants, added...)
	if cs.kind.peerToPeer() && len(added) > 0 {
		cs.kind = kindGroup
	}
	if len(added) > 0 {
		s.notifyRosterLocked(cs, added, nil)
	}
	for _, o := range joined {
		if src := o.source; src != nil && !src.ended {
			if i := slices.IndexFunc(src.participants, func(p model.Participant) bool { return p.ID == o.sourcePID }); i >= 0 {
				gone := src.participants[i]
				src.participants = slices.Delete(src.participants, i, i+1)
				s.notifyRosterLocked(src, nil, []model.Participant{gone})
			}
		}
	}
	if first := outs[0]; first.accepted && first.p.ReplacesCallID != "" {
		if old := s.liveCallLocked(first.p.ReplacesCallID); old != nil && old != cs {
			// Graph: "you can expect to receive notifications about how your
			// original peer-to-peer call has been terminated and deleted".
			r := resultInfo(resultByBot)
			old.call.State = model.StateTerminated
			old.call.ResultInfo = &r
			s.notifyCallLocked(old, model.ChangeUpdated)
			s.endLocked(old, r, 0, false)
		}
	}
}

// liveCallLocked returns a call that exists and has not ended, or nil.
// Callers hold s.mu.
func (s *Server) liveCallLocked(id string) *callState {
	if cs, ok := s.calls[id]; ok && !cs.ended {
		return cs
	}
	return nil
}

// findParticipantLocked finds the live call, other than not, whose roster
// holds participant pid. Callers hold s.mu.
func (s *Server) findParticipantLocked(pid string, not *callState) (*callState, string) {
	for _, id := range s.order {
		cs := s.calls[id]
		if cs == not || cs.ended {
			continue
		}
		if slices.ContainsFunc(cs.participants, func(p model.Participant) bool { return p.ID == pid }) {
			return cs, pid
		}
	}
	return nil, ""
}

// EndCall ends a live call from the far side, as when the person in a
// peer-to-peer call hangs up: the bot gets the "deleted" notification
// with state terminated and resultInfo ri (nil: 200/18503, the other
// participant left). It reports false if there is no such live call.
func (s *Server) EndCall(id string, ri *model.ResultInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.liveCallLocked(id)
	if cs == nil || s.stopping {
		return false
	}
	r := resultPeerLeft
	if ri != nil {
		r = *ri
	}
	s.endLocked(cs, r, 0, false)
	return true
}

// sameIdentity reports whether two sets name the same user, phone,
// application or application instance (by id).
func sameIdentity(a, b *model.IdentitySet) bool {
	if a == nil || b == nil {
		return false
	}
	same := func(x, y *model.Identity) bool { return x != nil && y != nil && x.ID != "" && x.ID == y.ID }
	return same(a.User, b.User) || same(a.Phone, b.Phone) ||
		same(a.Application, b.Application) || same(a.ApplicationInstance, b.ApplicationInstance)
}

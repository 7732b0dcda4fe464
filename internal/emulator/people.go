package emulator

import (
	"strings"
	"time"

	"github.com/botd/botd/internal/model"
)

// Answer is what a simulated person does when their phone rings.
type Answer string

// Answers. The zero value means "not decided here": the next rule applies.
const (
	AnswerDefault  Answer = ""
	AnswerAccept   Answer = "accept"
	AnswerDecline  Answer = "decline"
	AnswerBusy     Answer = "busy"
	AnswerNoAnswer Answer = "noAnswer"
)

// Behaviour is how one simulated person answers a call or an invitation.
type Behaviour struct {
	Answer Answer
	// After is how long they take to accept, decline or report busy,
	// before TimeScale; 0 draws from Timing.Answer with the seeded jitter.
	// A person who does not answer rings for Timing.Ring.
	After time.Duration
}

// Phone-number conventions for simulated people: a number ending in one of
// these answers so, unless People or PeopleByID say otherwise.
const (
	PhoneSuffixDecline  = "0000"
	PhoneSuffixNoAnswer = "9999"
	PhoneSuffixBusy     = "8888"
)

// Results Graph reports when a call or an invitation ends. The codes come
// from Graph's call-end reason table (call: delete); 603 and 486 are the
// SIP codes for a declined and a busy callee, for which the table has no
// entry.
var (
	resultHangup          = model.ResultInfo{Code: 200, Subcode: 5001, Message: "The conversation has ended."}
	resultByBot           = model.ResultInfo{Code: 200, Subcode: 7000, Message: "The conversation has ended by bot."}
	resultTransferred     = model.ResultInfo{Code: 200, Subcode: 7015, Message: "Call ended as the transfer completed successfully."}
	resultPeerLeft        = model.ResultInfo{Code: 200, Subcode: 18503, Message: "The other participant in the peer-to-peer call left the conversation."}
	resultKeepAlive       = model.ResultInfo{Code: 408, Subcode: 8537, Message: "Keep Alive timeout, cleaned up inactive call."}
	resultNoAnswer        = model.ResultInfo{Code: 408, Subcode: 10057, Message: "Call timed out due to no signaling from callee endpoints."}
	resultIncomingTimeout = model.ResultInfo{Code: 408, Subcode: 1106, Message: "An acknowledgement was not received for the call acceptance in the allotted time."}
	resultDeclined        = model.ResultInfo{Code: 603, Subcode: 0, Message: "Call declined by the callee."}
	resultBusy            = model.ResultInfo{Code: 486, Subcode: 0, Message: "Callee is busy."}
	resultRejectForbidden = model.ResultInfo{Code: 403, Subcode: 0, Message: "Call rejected by the bot: forbidden."}
	resultRedirected      = model.ResultInfo{Code: 302, Subcode: 0, Message: "Call redirected by the bot."}
	resultOperationFault  = model.ResultInfo{Code: 500, Subcode: 9999, Message: "emulator: injected operation failure."}
)

// Results, exported for tests and for botd's own emulator tests, as Graph
// reports them in resultInfo.
var (
	ResultHangup          = resultInfo(resultHangup)
	ResultKeepAliveExpiry = resultInfo(resultKeepAlive)
	ResultNoAnswer        = resultInfo(resultNoAnswer)
	ResultIncomingTimeout = resultInfo(resultIncomingTimeout)
	ResultDeclined        = resultInfo(resultDeclined)
	ResultBusy            = resultInfo(resultBusy)
	ResultPeerLeft        = resultInfo(resultPeerLeft)
	ResultOperationFault  = resultInfo(resultOperationFault)
)

func resultInfo(r model.ResultInfo) model.ResultInfo {
	r.ODataType = model.ODataResultInfo
	return r
}

// resultFor is the resultInfo of a person's answer that is not an accept.
func resultFor(a Answer) model.ResultInfo {
	switch a {
	case AnswerDecline:
		return resultInfo(resultDeclined)
	case AnswerBusy:
		return resultInfo(resultBusy)
	}
	return resultInfo(resultNoAnswer)
}

// decision is a person's answer and when it happens (scaled).
type decision struct {
	answer Answer
	after  time.Duration
}

// decideLocked decides how the person with identity id answers a ring from
// call cs: a script of PUT /emulator/people, then People, then PeopleByID, then the phone conventions, then bots
// (which answer at once), then the seeded default. Callers hold s.mu.
func (s *Server) decideLocked(cs *callState, id *model.IdentitySet) decision {
	var b Behaviour
	if sc, ok := s.scriptForLocked(id); ok {
		b = Behaviour{Answer: sc.answer, After: sc.answerAfter}
	}
	if b.Answer == AnswerDefault && s.opts.People != nil && id != nil {
		b = s.opts.People(*id)
	}
	if b.Answer == AnswerDefault && id != nil {
		for _, x := range identities(id) {
			if pb, ok := s.opts.PeopleByID[x.ID]; ok && x.ID != "" {
				b = pb
				break
			}
		}
	}
	if b.Answer == AnswerDefault && id != nil && id.Phone != nil {
		switch n := id.Phone.ID; {
		case strings.HasSuffix(n, PhoneSuffixDecline):
			b.Answer = AnswerDecline
		case strings.HasSuffix(n, PhoneSuffixNoAnswer):
			b.Answer = AnswerNoAnswer
		case strings.HasSuffix(n, PhoneSuffixBusy):
			b.Answer = AnswerBusy
		}
	}
	if b.Answer == AnswerDefault && id != nil && (id.Application != nil || id.ApplicationInstance != nil) {
		return decision{AnswerAccept, s.step()}
	}
	if b.Answer == AnswerDefault {
		b.Answer = AnswerAccept
		if p := s.opts.DeclineProbability + s.opts.NoAnswerProbability; p > 0 {
			switch x := cs.peopleRNG.Float64(); {
			case x < s.opts.DeclineProbability:
				b.Answer = AnswerDecline
			case x < p:
				b.Answer = AnswerNoAnswer
			}
		}
	}
	if b.Answer == AnswerNoAnswer {
		return decision{b.Answer, s.scaled(s.opts.Timing.Ring)}
	}
	if b.After > 0 {
		return decision{b.Answer, s.scaled(b.After)}
	}
	a := s.opts.Timing.Answer
	after := a/2 + time.Duration(cs.peopleRNG.Int64N(int64(a)))
	return decision{b.Answer, s.scaled(after)}
}

// identities lists the non-nil identities of a set, in a fixed order.
func identities(id *model.IdentitySet) []*model.Identity {
	var out []*model.Identity
	for _, x := range []*model.Identity{id.User, id.Phone, id.Application, id.ApplicationInstance, id.Guest, id.Device, id.Encrypted, id.OnPremises} {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// isBot reports whether the set names an application (a bot).
func isBot(id *model.IdentitySet) bool {
	return id != nil && (id.Application != nil || id.ApplicationInstance != nil)
}

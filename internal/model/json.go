package model

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// The encoders here write what encoding/json writes for a call and a
// roster participant from their tags, without reflection: botd's journal
// encodes the call of every call that changed, each time it changed, and
// json.Marshal of a Call was most of a record's cost. TestAppendJSON
// (every member of every type set, found by reflection) and
// FuzzAppendJSON hold the two alike, as decoded; the bytes differ only in
// how a string is escaped (AppendQuote).

// AppendQuote appends s as a JSON string. Text that needs no escape is
// copied as it is; any other goes through jsontext, which, like
// encoding/json, writes invalid UTF-8 as U+FFFD (the error that says so is
// not one for botd). Unlike encoding/json it leaves <, > and & unescaped:
// botd's JSON is never put in HTML.
func AppendQuote[T ~string | ~[]byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			dst, _ = jsontext.AppendQuote(dst, s)
			return dst
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// member appends the name of a member of the object that opened at
// dst[open] ('{'), after a comma unless it is the first.
func member(dst []byte, open int, name string) []byte {
	if len(dst) > open+1 {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

// str appends the member name: s unless s is "" (omitempty).
func str[T ~string](dst []byte, open int, name string, s T) []byte {
	if s == "" {
		return dst
	}
	return AppendQuote(member(dst, open, name), s)
}

// boolean appends the member name: b, or only when b with omitempty.
func boolean(dst []byte, open int, name string, b, omitEmpty bool) []byte {
	if !b {
		if omitEmpty {
			return dst
		}
		return append(member(dst, open, name), "false"...)
	}
	return append(member(dst, open, name), "true"...)
}

// boolPtr appends the member name unless b is nil (omitempty).
func boolPtr(dst []byte, open int, name string, b *bool) []byte {
	if b == nil {
		return dst
	}
	return boolean(dst, open, name, *b, false)
}

// integer appends the member name: n, or only when n is not 0 with
// omitempty.
func integer(dst []byte, open int, name string, n int64, omitEmpty bool) []byte {
	if n == 0 && omitEmpty {
		return dst
	}
	return strconv.AppendInt(member(dst, open, name), n, 10)
}

// AppendJSON appends c's JSON to dst.
func (c *Call) AppendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", c.ODataType)
	dst = str(dst, o, "id", c.ID)
	dst = str(dst, o, "state", c.State)
	dst = str(dst, o, "direction", c.Direction)
	dst = str(dst, o, "subject", c.Subject)
	dst = str(dst, o, "callbackUri", c.CallbackURI)
	dst = str(dst, o, "callChainId", c.CallChainID)
	dst = str(dst, o, "myParticipantId", c.MyParticipantID)
	dst = str(dst, o, "tenantId", c.TenantID)
	if c.Source != nil {
		dst = c.Source.appendJSON(member(dst, o, "source"))
	}
	if len(c.Targets) > 0 {
		dst = append(member(dst, o, "targets"), '[')
		for i := range c.Targets {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = c.Targets[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	if len(c.RequestedModalities) > 0 {
		dst = append(member(dst, o, "requestedModalities"), '[')
		for i, m := range c.RequestedModalities {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendQuote(dst, m)
		}
		dst = append(dst, ']')
	}
	if c.MediaConfig != nil {
		dst = c.MediaConfig.appendJSON(member(dst, o, "mediaConfig"))
	}
	if c.ChatInfo != nil {
		dst = c.ChatInfo.appendJSON(member(dst, o, "chatInfo"))
	}
	if c.MeetingInfo != nil {
		dst = c.MeetingInfo.appendJSON(member(dst, o, "meetingInfo"))
	}
	if c.CallOptions != nil {
		dst = c.CallOptions.appendJSON(member(dst, o, "callOptions"))
	}
	if c.ResultInfo != nil {
		dst = c.ResultInfo.appendJSON(member(dst, o, "resultInfo"))
	}
	if c.ToneInfo != nil {
		dst = c.ToneInfo.appendJSON(member(dst, o, "toneInfo"))
	}
	return append(dst, '}')
}

// AppendJSON appends p's JSON to dst.
func (p *Participant) AppendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", p.ODataType)
	dst = str(dst, o, "id", p.ID)
	dst = p.Info.appendJSON(member(dst, o, "info"))
	if len(p.MediaStreams) > 0 {
		dst = append(member(dst, o, "mediaStreams"), '[')
		for i := range p.MediaStreams {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = p.MediaStreams[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	dst = boolean(dst, o, "isMuted", p.IsMuted, false)
	dst = boolean(dst, o, "isInLobby", p.IsInLobby, false)
	dst = integer(dst, o, "rosterSequenceNumber", p.RosterSequenceNumber, true)
	if p.RemovedState != nil {
		dst = member(dst, o, "removedState")
		r := len(dst)
		dst = append(dst, '{')
		dst = str(dst, r, "reason", p.RemovedState.Reason)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func (s *MediaStream) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", s.ODataType)
	dst = str(dst, o, "mediaType", s.MediaType)
	dst = str(dst, o, "sourceId", s.SourceID)
	dst = str(dst, o, "direction", s.Direction)
	dst = str(dst, o, "label", s.Label)
	dst = boolean(dst, o, "serverMuted", s.ServerMuted, false)
	return append(dst, '}')
}

func (id *Identity) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", id.ODataType)
	dst = str(dst, o, "id", id.ID)
	dst = str(dst, o, "displayName", id.DisplayName)
	dst = str(dst, o, "tenantId", id.TenantID)
	dst = str(dst, o, "identityProvider", id.IdentityProvider)
	return append(dst, '}')
}

func (s *IdentitySet) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", s.ODataType)
	for _, m := range [...]struct {
		name string
		id   *Identity
	}{
		{"user", s.User}, {"application", s.Application}, {"applicationInstance", s.ApplicationInstance},
		{"phone", s.Phone}, {"guest", s.Guest}, {"device", s.Device}, {"encrypted", s.Encrypted},
		{"onPremises", s.OnPremises},
	} {
		if m.id != nil {
			dst = m.id.appendJSON(member(dst, o, m.name))
		}
	}
	return append(dst, '}')
}

func (p *ParticipantInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", p.ODataType)
	if p.Identity != nil {
		dst = p.Identity.appendJSON(member(dst, o, "identity"))
	}
	dst = str(dst, o, "endpointType", p.EndpointType)
	dst = str(dst, o, "languageId", p.LanguageID)
	dst = str(dst, o, "region", p.Region)
	dst = str(dst, o, "countryCode", p.CountryCode)
	dst = str(dst, o, "participantId", p.ParticipantID)
	return append(dst, '}')
}

func (p *InvitationParticipantInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", p.ODataType)
	if p.Identity != nil {
		dst = p.Identity.appendJSON(member(dst, o, "identity"))
	}
	dst = str(dst, o, "endpointType", p.EndpointType)
	dst = str(dst, o, "replacesCallId", p.ReplacesCallID)
	dst = str(dst, o, "participantId", p.ParticipantID)
	dst = boolean(dst, o, "hidden", p.Hidden, true)
	dst = str(dst, o, "languageId", p.LanguageID)
	dst = str(dst, o, "region", p.Region)
	return append(dst, '}')
}

func (r *ResultInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", r.ODataType)
	dst = integer(dst, o, "code", int64(r.Code), false)
	dst = integer(dst, o, "subcode", int64(r.Subcode), false)
	dst = str(dst, o, "message", r.Message)
	return append(dst, '}')
}

func (c *ChatInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", c.ODataType)
	dst = str(dst, o, "threadId", c.ThreadID)
	dst = str(dst, o, "messageId", c.MessageID)
	dst = str(dst, o, "replyChainMessageId", c.ReplyChainMessageID)
	return append(dst, '}')
}

func (m *MeetingInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", m.ODataType)
	if m.Organizer != nil {
		dst = m.Organizer.appendJSON(member(dst, o, "organizer"))
	}
	dst = boolPtr(dst, o, "allowConversationWithoutHost", m.AllowConversationWithoutHost)
	dst = str(dst, o, "joinMeetingId", m.JoinMeetingID)
	if m.Passcode != nil {
		dst = AppendQuote(member(dst, o, "passcode"), *m.Passcode)
	}
	return append(dst, '}')
}

func (m *MediaInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", m.ODataType)
	dst = str(dst, o, "uri", m.URI)
	dst = str(dst, o, "resourceId", m.ResourceID)
	return append(dst, '}')
}

func (m *MediaConfig) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", m.ODataType)
	dst = str(dst, o, "blob", m.Blob)
	if len(m.PreFetchMedia) > 0 {
		dst = append(member(dst, o, "preFetchMedia"), '[')
		for i := range m.PreFetchMedia {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = m.PreFetchMedia[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	dst = boolPtr(dst, o, "removeFromDefaultAudioGroup", m.RemoveFromDefaultAudioGroup)
	return append(dst, '}')
}

func (c *CallOptions) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", c.ODataType)
	dst = boolPtr(dst, o, "isContentSharingNotificationEnabled", c.IsContentSharingNotificationEnabled)
	dst = boolPtr(dst, o, "isDeltaRosterEnabled", c.IsDeltaRosterEnabled)
	dst = boolPtr(dst, o, "hideBotAfterEscalation", c.HideBotAfterEscalation)
	return append(dst, '}')
}

func (t *ToneInfo) appendJSON(dst []byte) []byte {
	o := len(dst)
	dst = append(dst, '{')
	dst = str(dst, o, "@odata.type", t.ODataType)
	dst = integer(dst, o, "sequenceId", t.SequenceID, false)
	dst = AppendQuote(member(dst, o, "tone"), t.Tone)
	return append(dst, '}')
}

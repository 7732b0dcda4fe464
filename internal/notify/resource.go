package notify

import (
	"math"

	"github.com/botd/botd/internal/model"
)

// The readers below decode Graph resources from a resourceData value that
// the first pass has validated. Each member Graph documents for the
// resource is read with its JSON type checked; null means absent; members
// botd does not know are skipped, since Graph adds members over time. A
// reader stops at the first problem and the item is rejected, located by
// the JSON Pointer of where it stopped.

func (r *rd) call() (*model.Call, error) {
	if _, err := r.open('{'); err != nil {
		return nil, err
	}
	c := new(model.Call)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			c.ODataType, err = r.sym()
		case "id":
			c.ID, err = r.str()
		case "state":
			c.State, err = enumMember(r, model.CallStates, "call state")
		case "direction":
			c.Direction, err = r.sym()
		case "subject":
			c.Subject, err = r.str()
		case "callbackUri":
			c.CallbackURI, err = r.str()
		case "callChainId":
			c.CallChainID, err = r.str()
		case "myParticipantId":
			c.MyParticipantID, err = r.str()
		case "tenantId":
			c.TenantID, err = r.str()
		case "source":
			c.Source, err = r.participantInfoPtr()
		case "targets":
			c.Targets, err = r.invitees()
		case "requestedModalities":
			c.RequestedModalities, err = r.symList()
		case "mediaConfig":
			c.MediaConfig, err = r.mediaConfig()
		case "chatInfo":
			c.ChatInfo, err = r.chatInfo()
		case "meetingInfo":
			c.MeetingInfo, err = r.meetingInfo()
		case "callOptions":
			c.CallOptions, err = r.callOptions()
		case "resultInfo":
			c.ResultInfo, err = r.resultInfo()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return c, r.end()
}

func (r *rd) operation() (*model.Operation, error) {
	if _, err := r.open('{'); err != nil {
		return nil, err
	}
	op := new(model.Operation)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			op.ODataType, err = r.sym()
		case "id":
			op.ID, err = r.str()
		case "status":
			op.Status, err = enumMember(r, opStatuses, "operation status")
		case "clientContext":
			op.ClientContext, err = r.str()
		case "resultInfo":
			op.ResultInfo, err = r.resultInfo()
		case "participants":
			op.Participants, err = r.invitees()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return op, r.end()
}

// enumMember reads a string that must be one of set, matched ignoring case
// and stored as Graph documents it; null is "".
func enumMember[T ~string](r *rd, set []T, what string) (T, error) {
	b, null, err := r.bytesOrNull()
	if err != nil || null {
		return "", err
	}
	if v, ok := enumFold(string(b), set); ok {
		return v, nil
	}
	return "", semErrorf("unknown %s %s", what, quoteTrunc(b))
}

// roster reads a participant list, each element of type elemType or
// untyped. An empty list is a roster with no one in it, not an absent one.
func (r *rd) roster(elemType string) ([]model.Participant, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	ps := []model.Participant{}
	for r.more() {
		if err := checkLen(len(ps), r.lim.MaxParticipants, "participants"); err != nil {
			return nil, err
		}
		if k := r.dec.PeekKind(); k != '{' {
			return nil, typeError(k, "object")
		}
		ps = append(ps, model.Participant{})
		p := &ps[len(ps)-1]
		if err := r.participant(p); err != nil {
			return nil, err
		}
		if p.ODataType != "" && p.ODataType != elemType {
			return nil, semErrorf("element of type %s in a list of %s", quoteTrunc([]byte(p.ODataType)), elemType)
		}
	}
	return ps, r.end()
}

func (r *rd) participant(p *model.Participant) error {
	if _, err := r.open('{'); err != nil {
		return err
	}
	for r.more() {
		name, err := r.name()
		if err != nil {
			return err
		}
		switch string(name) {
		case "@odata.type":
			p.ODataType, err = r.sym()
		case "id":
			p.ID, err = r.str()
		case "info":
			err = r.participantInfo(&p.Info)
		case "mediaStreams":
			p.MediaStreams, err = r.mediaStreams()
		case "isMuted":
			p.IsMuted, err = r.boolean()
		case "isInLobby":
			p.IsInLobby, err = r.boolean()
		case "rosterSequenceNumber":
			p.RosterSequenceNumber, err = r.integer(0, math.MaxInt64)
		case "removedState":
			p.RemovedState, err = r.removedState()
		default:
			err = r.skip()
		}
		if err != nil {
			return err
		}
	}
	return r.end()
}

// deltaRoster reads the one-element array holding a deltaParticipants.
func (r *rd) deltaRoster() (*model.DeltaRoster, error) {
	if _, err := r.open('['); err != nil {
		return nil, err
	}
	var d *model.DeltaRoster
	for r.more() {
		if d != nil {
			return nil, semErrorf("more than one deltaParticipants element")
		}
		d = new(model.DeltaRoster)
		if present, err := r.open('{'); !present {
			if err == nil {
				err = typeError('n', "object")
			}
			return nil, err
		}
		for r.more() {
			name, err := r.name()
			if err != nil {
				return nil, err
			}
			switch string(name) {
			case "@odata.type":
				var t string
				if t, err = r.sym(); err == nil && t != "" && t != model.ODataDeltaParticipants {
					err = semErrorf("element of type %s in a delta roster", quoteTrunc([]byte(t)))
				}
			case "sequenceNumber":
				d.SequenceNumber, err = r.integer(0, math.MaxInt64)
			case "participants":
				d.Participants, err = r.roster(model.ODataParticipant)
			default:
				err = r.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		if err := r.end(); err != nil {
			return nil, err
		}
	}
	return d, r.end()
}

func (r *rd) sessions() ([]model.ContentSharingSession, error) {
	if _, err := r.open('['); err != nil {
		return nil, err
	}
	ss := []model.ContentSharingSession{}
	for r.more() {
		if err := checkLen(len(ss), r.lim.MaxItems, "sessions"); err != nil {
			return nil, err
		}
		if present, err := r.open('{'); !present {
			if err == nil {
				err = typeError('n', "object")
			}
			return nil, err
		}
		var s model.ContentSharingSession
		for r.more() {
			name, err := r.name()
			if err != nil {
				return nil, err
			}
			switch string(name) {
			case "@odata.type":
				if s.ODataType, err = r.sym(); err == nil && s.ODataType != "" && s.ODataType != model.ODataContentSharingSession {
					err = semErrorf("element of type %s in a list of %s", quoteTrunc([]byte(s.ODataType)), model.ODataContentSharingSession)
				}
			case "id":
				s.ID, err = r.str()
			default:
				err = r.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		if err := r.end(); err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, r.end()
}

func (r *rd) participantInfoPtr() (*model.ParticipantInfo, error) {
	if r.dec.PeekKind() == 'n' {
		return nil, r.skip()
	}
	pi := new(model.ParticipantInfo)
	if err := r.participantInfo(pi); err != nil {
		return nil, err
	}
	return pi, nil
}

func (r *rd) participantInfo(pi *model.ParticipantInfo) error {
	if present, err := r.open('{'); !present {
		return err
	}
	for r.more() {
		name, err := r.name()
		if err != nil {
			return err
		}
		switch string(name) {
		case "@odata.type":
			pi.ODataType, err = r.sym()
		case "identity":
			pi.Identity, err = r.identitySet()
		case "endpointType":
			pi.EndpointType, err = r.sym()
		case "languageId":
			pi.LanguageID, err = r.sym()
		case "region":
			pi.Region, err = r.sym()
		case "countryCode":
			pi.CountryCode, err = r.sym()
		case "participantId":
			pi.ParticipantID, err = r.str()
		default:
			err = r.skip()
		}
		if err != nil {
			return err
		}
	}
	return r.end()
}

func (r *rd) identitySet() (*model.IdentitySet, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	s := new(model.IdentitySet)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			s.ODataType, err = r.sym()
		case "user":
			s.User, err = r.identity()
		case "application":
			s.Application, err = r.identity()
		case "applicationInstance":
			s.ApplicationInstance, err = r.identity()
		case "phone":
			s.Phone, err = r.identity()
		case "guest":
			s.Guest, err = r.identity()
		case "device":
			s.Device, err = r.identity()
		case "encrypted":
			s.Encrypted, err = r.identity()
		case "onPremises":
			s.OnPremises, err = r.identity()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return s, r.end()
}

func (r *rd) identity() (*model.Identity, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	id := new(model.Identity)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			id.ODataType, err = r.sym()
		case "id":
			id.ID, err = r.str()
		case "displayName":
			id.DisplayName, err = r.str()
		case "tenantId":
			id.TenantID, err = r.str()
		case "identityProvider":
			id.IdentityProvider, err = r.sym()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return id, r.end()
}

func (r *rd) mediaStreams() ([]model.MediaStream, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	ms := []model.MediaStream{}
	for r.more() {
		if err := checkLen(len(ms), r.lim.MaxItems, "media streams"); err != nil {
			return nil, err
		}
		if present, err := r.open('{'); !present {
			if err == nil {
				err = typeError('n', "object")
			}
			return nil, err
		}
		ms = append(ms, model.MediaStream{})
		m := &ms[len(ms)-1]
		for r.more() {
			name, err := r.name()
			if err != nil {
				return nil, err
			}
			switch string(name) {
			case "@odata.type":
				m.ODataType, err = r.sym()
			case "mediaType":
				m.MediaType, err = r.sym()
			case "sourceId":
				m.SourceID, err = r.sym()
			case "direction":
				m.Direction, err = r.sym()
			case "label":
				m.Label, err = r.sym()
			case "serverMuted":
				m.ServerMuted, err = r.boolean()
			default:
				err = r.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		if err := r.end(); err != nil {
			return nil, err
		}
	}
	return ms, r.end()
}

func (r *rd) removedState() (*model.RemovedState, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	rs := new(model.RemovedState)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "reason":
			rs.Reason, err = r.str()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return rs, r.end()
}

// invitees reads an invitationParticipantInfo list: a call's targets or an
// operation's participants.
func (r *rd) invitees() ([]model.InvitationParticipantInfo, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	ps := []model.InvitationParticipantInfo{}
	for r.more() {
		if err := checkLen(len(ps), r.lim.MaxParticipants, "participants"); err != nil {
			return nil, err
		}
		if present, err := r.open('{'); !present {
			if err == nil {
				err = typeError('n', "object")
			}
			return nil, err
		}
		ps = append(ps, model.InvitationParticipantInfo{})
		p := &ps[len(ps)-1]
		for r.more() {
			name, err := r.name()
			if err != nil {
				return nil, err
			}
			switch string(name) {
			case "@odata.type":
				p.ODataType, err = r.sym()
			case "identity":
				p.Identity, err = r.identitySet()
			case "endpointType":
				p.EndpointType, err = r.sym()
			case "replacesCallId":
				p.ReplacesCallID, err = r.str()
			case "participantId":
				p.ParticipantID, err = r.str()
			case "hidden":
				p.Hidden, err = r.boolean()
			case "languageId":
				p.LanguageID, err = r.sym()
			case "region":
				p.Region, err = r.sym()
			default:
				err = r.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		if err := r.end(); err != nil {
			return nil, err
		}
	}
	return ps, r.end()
}

func (r *rd) resultInfo() (*model.ResultInfo, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	ri := new(model.ResultInfo)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		var n int64
		switch string(name) {
		case "@odata.type":
			ri.ODataType, err = r.sym()
		case "code":
			n, err = r.integer(math.MinInt32, math.MaxInt32)
			ri.Code = int32(n)
		case "subcode":
			n, err = r.integer(math.MinInt32, math.MaxInt32)
			ri.Subcode = int32(n)
		case "message":
			ri.Message, err = r.str()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return ri, r.end()
}

func (r *rd) chatInfo() (*model.ChatInfo, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	ci := new(model.ChatInfo)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			ci.ODataType, err = r.sym()
		case "threadId":
			ci.ThreadID, err = r.str()
		case "messageId":
			ci.MessageID, err = r.sym()
		case "replyChainMessageId":
			ci.ReplyChainMessageID, err = r.sym()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return ci, r.end()
}

func (r *rd) meetingInfo() (*model.MeetingInfo, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	mi := new(model.MeetingInfo)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			mi.ODataType, err = r.sym()
		case "organizer":
			mi.Organizer, err = r.identitySet()
		case "allowConversationWithoutHost":
			mi.AllowConversationWithoutHost, err = r.optBool()
		case "joinMeetingId":
			mi.JoinMeetingID, err = r.str()
		case "passcode":
			mi.Passcode, err = r.optStr()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return mi, r.end()
}

func (r *rd) mediaConfig() (*model.MediaConfig, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	mc := new(model.MediaConfig)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			mc.ODataType, err = r.sym()
		case "blob":
			mc.Blob, err = r.str()
		case "preFetchMedia":
			mc.PreFetchMedia, err = r.mediaInfos()
		case "removeFromDefaultAudioGroup":
			mc.RemoveFromDefaultAudioGroup, err = r.optBool()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return mc, r.end()
}

func (r *rd) mediaInfos() ([]model.MediaInfo, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	ms := []model.MediaInfo{}
	for r.more() {
		if err := checkLen(len(ms), r.lim.MaxItems, "media infos"); err != nil {
			return nil, err
		}
		if present, err := r.open('{'); !present {
			if err == nil {
				err = typeError('n', "object")
			}
			return nil, err
		}
		var m model.MediaInfo
		for r.more() {
			name, err := r.name()
			if err != nil {
				return nil, err
			}
			switch string(name) {
			case "uri":
				m.URI, err = r.str()
			case "resourceId":
				m.ResourceID, err = r.str()
			default:
				err = r.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		if err := r.end(); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, r.end()
}

func (r *rd) callOptions() (*model.CallOptions, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	co := new(model.CallOptions)
	for r.more() {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "@odata.type":
			co.ODataType, err = r.sym()
		case "isContentSharingNotificationEnabled":
			co.IsContentSharingNotificationEnabled, err = r.optBool()
		case "isDeltaRosterEnabled":
			co.IsDeltaRosterEnabled, err = r.optBool()
		case "hideBotAfterEscalation":
			co.HideBotAfterEscalation, err = r.optBool()
		default:
			err = r.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return co, r.end()
}

// symList reads an array of strings, such as requestedModalities.
func (r *rd) symList() ([]string, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	ss := []string{}
	for r.more() {
		if err := checkLen(len(ss), r.lim.MaxItems, "elements"); err != nil {
			return nil, err
		}
		if k := r.dec.PeekKind(); k != '"' {
			return nil, typeError(k, "string")
		}
		s, err := r.sym()
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, r.end()
}

// optStr reads a string as a pointer, null as nil.
func (r *rd) optStr() (*string, error) {
	b, null, err := r.bytesOrNull()
	if err != nil || null {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

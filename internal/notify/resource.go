package notify

import (
	"math"

	"github.com/botd/botd/internal/model"
)

// The readers below decode Graph resources from a resourceData value:
// in place, from the body's own reader, which validates as it goes
// (decodeInPlace), or in a second pass over a value the first pass has
// validated. Each member Graph documents for the
// resource is read with its JSON type checked; null means absent; members
// botd does not know are skipped, since Graph adds members over time. A
// reader stops at the first problem and the item is rejected, located by
// the JSON Pointer of where it stopped.
//
// A reader states only its member switch; the helpers below walk the
// objects and arrays. The member and element functions take the value they
// fill as an argument rather than capturing it, so that they are static
// functions: a closure passed down the hot path must not allocate.

// fields reads the members of an object whose '{' has been read, through
// its '}'. field reads (or skips) the value of the member called name into
// v.
func fields[T any](r *rd, v *T, field func(r *rd, v *T, name []byte) error) error {
	for r.more() {
		name, err := r.name()
		if err != nil {
			return err
		}
		if err := field(r, v, name); err != nil {
			return err
		}
	}
	return r.end()
}

// object reads an object into a new T, or null as nil.
func object[T any](r *rd, field func(r *rd, v *T, name []byte) error) (*T, error) {
	if present, err := r.open('{'); !present {
		return nil, err
	}
	v := new(T)
	if err := fields(r, v, field); err != nil {
		return nil, err
	}
	return v, nil
}

// element reads an array element that must be an object, not null, into v.
func element[T any](r *rd, v *T, field func(r *rd, v *T, name []byte) error) error {
	if present, err := r.open('{'); !present {
		if err == nil {
			err = typeError('n', "object")
		}
		return err
	}
	return fields(r, v, field)
}

// arrayOf reads an array of at most max elements (what names them in the
// error), each read in place by elem, or null as nil. An empty array is an
// empty list, not an absent one.
func arrayOf[T any](r *rd, max int, what string, elem func(r *rd, v *T) error) ([]T, error) {
	if present, err := r.open('['); !present {
		return nil, err
	}
	vs := []T{}
	for r.more() {
		if err := checkLen(len(vs), max, what); err != nil {
			return nil, err
		}
		var zero T
		vs = append(vs, zero)
		if err := elem(r, &vs[len(vs)-1]); err != nil {
			return nil, err
		}
	}
	return vs, r.end()
}

// objects is arrayOf for elements that are objects.
func objects[T any](r *rd, max int, what string, field func(r *rd, v *T, name []byte) error) ([]T, error) {
	return arrayOf(r, max, what, func(r *rd, v *T) error { return element(r, v, field) })
}

func (r *rd) call() (*model.Call, error) {
	return object(r, func(r *rd, c *model.Call, name []byte) (err error) {
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
			c.TenantID, err = r.tenant()
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
		case "toneInfo":
			c.ToneInfo, err = r.toneInfo()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *rd) operation() (*model.Operation, error) {
	return object(r, func(r *rd, op *model.Operation, name []byte) (err error) {
		switch string(name) {
		case "@odata.type":
			op.ODataType, err = r.sym()
		case "id":
			op.ID, err = r.str()
		case "status":
			op.Status, err = enumMember(r, model.OperationStatuses, "operation status")
		case "clientContext":
			op.ClientContext, err = r.str()
		case "resultInfo":
			op.ResultInfo, err = r.resultInfo()
		case "participants":
			op.Participants, err = r.invitees()
		case "completionReason":
			op.CompletionReason, err = r.sym()
		case "recordingLocation":
			op.RecordingLocation, err = r.str()
		case "recordingAccessToken":
			op.RecordingAccessToken, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
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
	return arrayOf(r, r.lim.MaxParticipants, "participants", func(r *rd, p *model.Participant) error {
		// Unlike element, a null element is left unread, so that the
		// error's pointer names it.
		if k := r.dec.PeekKind(); k != '{' {
			return typeError(k, "object")
		}
		if err := r.participant(p); err != nil {
			return err
		}
		if p.ODataType != "" && p.ODataType != elemType {
			return semErrorf("element of type %s in a list of %s", quoteTrunc([]byte(p.ODataType)), elemType)
		}
		return nil
	})
}

func (r *rd) participant(p *model.Participant) error {
	if _, err := r.open('{'); err != nil {
		return err
	}
	return fields(r, p, func(r *rd, p *model.Participant, name []byte) (err error) {
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
		return err
	})
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
		err := element(r, d, func(r *rd, d *model.DeltaRoster, name []byte) (err error) {
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
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return d, r.end()
}

func (r *rd) sessions() ([]model.ContentSharingSession, error) {
	return objects(r, r.lim.MaxItems, "sessions", func(r *rd, s *model.ContentSharingSession, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) participantInfoPtr() (*model.ParticipantInfo, error) {
	return object(r, participantInfoField)
}

func (r *rd) participantInfo(pi *model.ParticipantInfo) error {
	if present, err := r.open('{'); !present {
		return err
	}
	return fields(r, pi, participantInfoField)
}

func participantInfoField(r *rd, pi *model.ParticipantInfo, name []byte) (err error) {
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
	return err
}

func (r *rd) identitySet() (*model.IdentitySet, error) {
	return object(r, func(r *rd, s *model.IdentitySet, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) identity() (*model.Identity, error) {
	return object(r, func(r *rd, id *model.Identity, name []byte) (err error) {
		switch string(name) {
		case "@odata.type":
			id.ODataType, err = r.sym()
		case "id":
			id.ID, err = r.str()
		case "displayName":
			id.DisplayName, err = r.str()
		case "tenantId":
			id.TenantID, err = r.tenant()
		case "identityProvider":
			id.IdentityProvider, err = r.sym()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *rd) mediaStreams() ([]model.MediaStream, error) {
	return objects(r, r.lim.MaxItems, "media streams", func(r *rd, m *model.MediaStream, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) removedState() (*model.RemovedState, error) {
	return object(r, func(r *rd, rs *model.RemovedState, name []byte) (err error) {
		switch string(name) {
		case "reason":
			rs.Reason, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
}

// invitees reads an invitationParticipantInfo list: a call's targets or an
// operation's participants.
func (r *rd) invitees() ([]model.InvitationParticipantInfo, error) {
	return objects(r, r.lim.MaxParticipants, "participants", func(r *rd, p *model.InvitationParticipantInfo, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) resultInfo() (*model.ResultInfo, error) {
	return object(r, func(r *rd, ri *model.ResultInfo, name []byte) (err error) {
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
		return err
	})
}

// toneInfo reads the key press a call update carries after
// subscribeToTone.
func (r *rd) toneInfo() (*model.ToneInfo, error) {
	return object(r, func(r *rd, ti *model.ToneInfo, name []byte) (err error) {
		switch string(name) {
		case "@odata.type":
			ti.ODataType, err = r.sym()
		case "sequenceId":
			ti.SequenceID, err = r.integer(0, math.MaxInt64)
		case "tone":
			ti.Tone, err = enumMember(r, model.Tones, "tone")
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *rd) chatInfo() (*model.ChatInfo, error) {
	return object(r, func(r *rd, ci *model.ChatInfo, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) meetingInfo() (*model.MeetingInfo, error) {
	return object(r, func(r *rd, mi *model.MeetingInfo, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) mediaConfig() (*model.MediaConfig, error) {
	return object(r, func(r *rd, mc *model.MediaConfig, name []byte) (err error) {
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
		return err
	})
}

func (r *rd) mediaInfos() ([]model.MediaInfo, error) {
	return objects(r, r.lim.MaxItems, "media infos", func(r *rd, m *model.MediaInfo, name []byte) (err error) {
		switch string(name) {
		case "@odata.type":
			m.ODataType, err = r.sym()
		case "uri":
			m.URI, err = r.str()
		case "resourceId":
			m.ResourceID, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *rd) callOptions() (*model.CallOptions, error) {
	return object(r, func(r *rd, co *model.CallOptions, name []byte) (err error) {
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
		return err
	})
}

// symList reads an array of strings, such as requestedModalities.
func (r *rd) symList() ([]string, error) {
	return arrayOf(r, r.lim.MaxItems, "elements", func(r *rd, s *string) (err error) {
		if k := r.dec.PeekKind(); k != '"' {
			return typeError(k, "string")
		}
		*s, err = r.sym()
		return err
	})
}

// optStr reads a string (or a number, see text) as a pointer, null as nil.
func (r *rd) optStr() (*string, error) {
	b, null, err := r.text()
	if err != nil || null {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

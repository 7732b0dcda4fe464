// Package model holds the Microsoft Graph cloud-communications resources that
// botd reads and writes (call, participant, identitySet, operations and their
// parts) and the typed notification events that internal/notify produces and
// internal/callstate consumes.
//
// It owns shapes only: no I/O, no decoding logic beyond what encoding/json
// does with the struct tags, and no state. The JSON tags follow Graph's own
// property names, so these types marshal to the bodies Graph expects and the
// admin API can show users the shapes they know from Graph's documentation.
package model

import "strings"

// OData type names botd dispatches on or writes into request bodies.
const (
	ODataCommsNotifications       = "#microsoft.graph.commsNotifications"
	ODataCommsNotification        = "#microsoft.graph.commsNotification"
	ODataCall                     = "#microsoft.graph.call"
	ODataParticipant              = "#microsoft.graph.participant"
	ODataParticipantInfo          = "#microsoft.graph.participantInfo"
	ODataDeltaParticipants        = "#microsoft.graph.deltaParticipants"
	ODataInvitationParticipant    = "#microsoft.graph.invitationParticipantInfo"
	ODataIdentitySet              = "#microsoft.graph.identitySet"
	ODataIdentity                 = "#microsoft.graph.identity"
	ODataMediaStream              = "#microsoft.graph.mediaStream"
	ODataContentSharingSession    = "#microsoft.graph.contentSharingSession"
	ODataChatInfo                 = "#microsoft.graph.chatInfo"
	ODataOrganizerMeetingInfo     = "#microsoft.graph.organizerMeetingInfo"
	ODataJoinMeetingIDMeetingInfo = "#microsoft.graph.joinMeetingIdMeetingInfo"
	ODataServiceHostedMediaConfig = "#microsoft.graph.serviceHostedMediaConfig"
	ODataAppHostedMediaConfig     = "#microsoft.graph.appHostedMediaConfig"
	ODataOutgoingCallOptions      = "#microsoft.graph.outgoingCallOptions"
	ODataIncomingCallOptions      = "#microsoft.graph.incomingCallOptions"
	ODataResultInfo               = "#microsoft.graph.resultInfo"
	ODataInviteParticipantsOp     = "#microsoft.graph.inviteParticipantsOperation"
	ODataCommsOperation           = "#microsoft.graph.commsOperation"
	ODataMediaPrompt              = "#microsoft.graph.mediaPrompt"
	ODataMediaInfo                = "#microsoft.graph.mediaInfo"
	ODataToneInfo                 = "#microsoft.graph.toneInfo"
	ODataPlayPromptOp             = "#microsoft.graph.playPromptOperation"
	ODataRecordOp                 = "#microsoft.graph.recordOperation"
	ODataSubscribeToToneOp        = "#microsoft.graph.subscribeToToneOperation"
	ODataSendDtmfTonesOp          = "#microsoft.graph.sendDtmfTonesOperation"
	ODataCancelMediaProcessingOp  = "#microsoft.graph.cancelMediaProcessingOperation"
	ODataMuteParticipantOp        = "#microsoft.graph.muteParticipantOperation"
	ODataUnmuteParticipantOp      = "#microsoft.graph.unmuteParticipantOperation"
	ODataStartHoldMusicOp         = "#microsoft.graph.startHoldMusicOperation"
	ODataStopHoldMusicOp          = "#microsoft.graph.stopHoldMusicOperation"
	ODataUpdateRecordingStatusOp  = "#microsoft.graph.updateRecordingStatusOperation"
)

// Tone is Graph's tone enumeration: a DTMF key (tone0-tone9, star, pound,
// a-d) or flash.
type Tone string

// Graph's tone values.
const (
	Tone0     Tone = "tone0"
	Tone1     Tone = "tone1"
	Tone2     Tone = "tone2"
	Tone3     Tone = "tone3"
	Tone4     Tone = "tone4"
	Tone5     Tone = "tone5"
	Tone6     Tone = "tone6"
	Tone7     Tone = "tone7"
	Tone8     Tone = "tone8"
	Tone9     Tone = "tone9"
	ToneStar  Tone = "star"
	TonePound Tone = "pound"
	ToneA     Tone = "a"
	ToneB     Tone = "b"
	ToneC     Tone = "c"
	ToneD     Tone = "d"
	ToneFlash Tone = "flash"
)

// Tones lists every tone value, in keypad order.
var Tones = []Tone{
	Tone0, Tone1, Tone2, Tone3, Tone4, Tone5, Tone6, Tone7, Tone8, Tone9,
	ToneStar, TonePound, ToneA, ToneB, ToneC, ToneD, ToneFlash,
}

// Key returns the keypad character of a tone ("1", "*", "#", "A", or "F"
// for flash), or "" for a value that is not a tone.
func (t Tone) Key() string {
	switch {
	case len(t) == 5 && t[:4] == "tone" && t[4] >= '0' && t[4] <= '9':
		return string(t[4])
	case t == ToneStar:
		return "*"
	case t == TonePound:
		return "#"
	case t == ToneA, t == ToneB, t == ToneC, t == ToneD:
		return string(t[0] - 'a' + 'A')
	case t == ToneFlash:
		return "F"
	}
	return ""
}

// ToneForKey returns the tone of a keypad character ("0"-"9", "*", "#",
// "A"-"D" in either case, "F" for flash).
func ToneForKey(k byte) (Tone, bool) {
	for _, t := range Tones {
		if key := t.Key(); key[0] == k || (k >= 'a' && k <= 'f' && key[0] == k-'a'+'A') {
			return t, true
		}
	}
	return "", false
}

// ParseTone reads a tone as Graph's pages write it: a keypad character
// ("#", "1", as recordResponse's stopTones) or a tone name ("pound",
// "tone1"). Anything else is returned as is, for validation to refuse.
func ParseTone(s string) Tone {
	if len(s) == 1 {
		if t, ok := ToneForKey(s[0]); ok {
			return t
		}
	}
	return Tone(s)
}

// ToneInfo is Graph's toneInfo: one key press, as a call update carries it
// after subscribeToTone. SequenceID numbers the presses of a call.
type ToneInfo struct {
	ODataType  string `json:"@odata.type,omitempty"`
	SequenceID int64  `json:"sequenceId"`
	Tone       Tone   `json:"tone"`
}

// RejectReason is Graph's rejectReason, as reject sends it.
type RejectReason = string

// Graph's rejectReason values.
const (
	RejectNone      RejectReason = "none"
	RejectBusy      RejectReason = "busy"
	RejectForbidden RejectReason = "forbidden"
)

// RejectReasons lists every rejectReason value.
var RejectReasons = []RejectReason{RejectNone, RejectBusy, RejectForbidden}

// RecordingStatus is Graph's recordingStatus, as updateRecordingStatus
// sets it.
type RecordingStatus string

// Graph's recordingStatus values a bot may set.
const (
	RecordingNotRecording RecordingStatus = "notRecording"
	RecordingRecording    RecordingStatus = "recording"
	RecordingFailed       RecordingStatus = "failed"
)

// RecordingStatuses lists the values updateRecordingStatus accepts.
var RecordingStatuses = []RecordingStatus{RecordingNotRecording, RecordingRecording, RecordingFailed}

// ScreenSharingRole is Graph's screenSharingRole.
type ScreenSharingRole string

// Graph's screenSharingRole values.
const (
	ScreenSharingViewer ScreenSharingRole = "viewer"
	ScreenSharingSharer ScreenSharingRole = "sharer"
)

// ScreenSharingRoles lists every screenSharingRole value.
var ScreenSharingRoles = []ScreenSharingRole{ScreenSharingViewer, ScreenSharingSharer}

// Completion reasons of media operations that botd acts on. Graph has
// more (recordCompletionReason lists ten); they are kept as sent.
const (
	CompletedSuccessfully    = "completedSuccessfully"  // playPrompt, sendDtmfTones
	MediaOperationCanceled   = "mediaOperationCanceled" // playPrompt, sendDtmfTones
	RecordOperationCanceled  = "operationCanceled"      // recordResponse
	RecordStopToneDetected   = "stopToneDetected"
	RecordMaxDurationReached = "maxRecordDurationReached"
	RecordInitialSilence     = "initialSilenceTimeout"
	RecordMaxSilence         = "maxSilenceTimeout"
)

// CallState is Graph's callState enumeration.
type CallState string

// Graph's callState values.
const (
	StateIncoming         CallState = "incoming"
	StateEstablishing     CallState = "establishing"
	StateEstablished      CallState = "established"
	StateHold             CallState = "hold"
	StateTransferring     CallState = "transferring"
	StateTransferAccepted CallState = "transferAccepted"
	StateRedirecting      CallState = "redirecting"
	StateTerminating      CallState = "terminating"
	StateTerminated       CallState = "terminated"
)

// Graph's callDirection values (a call's direction).
const (
	DirectionIncoming = "incoming"
	DirectionOutgoing = "outgoing"
)

// CallDirections lists every callDirection value.
var CallDirections = []string{DirectionIncoming, DirectionOutgoing}

// CallStates lists every callState value, in lifecycle order.
var CallStates = []CallState{
	StateIncoming, StateEstablishing, StateEstablished, StateHold,
	StateTransferring, StateTransferAccepted, StateRedirecting,
	StateTerminating, StateTerminated,
}

// Valid reports whether s is one of Graph's callState values.
func (s CallState) Valid() bool {
	for _, v := range CallStates {
		if s == v {
			return true
		}
	}
	return false
}

// OperationStatus is Graph's operationStatus enumeration.
type OperationStatus string

// Graph's operationStatus values. Graph's responses capitalise them at times
// ("Running" in the invite response); decoders normalise to these.
const (
	OpNotStarted OperationStatus = "notStarted"
	OpRunning    OperationStatus = "running"
	OpCompleted  OperationStatus = "completed"
	OpFailed     OperationStatus = "failed"
)

// OperationStatuses lists every operationStatus value.
var OperationStatuses = []OperationStatus{OpNotStarted, OpRunning, OpCompleted, OpFailed}

// Normalize returns the status as Graph's enumeration spells it, matching
// case-insensitively ("Running" becomes "running"); an unknown value is
// returned as is.
func (s OperationStatus) Normalize() OperationStatus {
	for _, v := range OperationStatuses {
		if strings.EqualFold(string(s), string(v)) {
			return v
		}
	}
	return s
}

// Final reports whether the status is completed or failed.
func (s OperationStatus) Final() bool { return s == OpCompleted || s == OpFailed }

// Invitee is the invitation of a target given by id: an E.164 number
// (starting with +) is a phone identity, anything else a user's object id.
func Invitee(id string) InvitationParticipantInfo {
	x := &Identity{ODataType: ODataIdentity, ID: id}
	set := &IdentitySet{ODataType: ODataIdentitySet}
	if len(id) > 0 && id[0] == '+' {
		set.Phone = x
	} else {
		set.User = x
	}
	return InvitationParticipantInfo{ODataType: ODataInvitationParticipant, Identity: set}
}

// IsE164 reports whether s is a phone number in E.164 form, as Graph's
// phone identities need it: '+', a country code not starting with 0, and
// at most 15 digits in all.
func IsE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Identity is Graph's identity: one user, application, phone and so on.
type Identity struct {
	ODataType        string `json:"@odata.type,omitempty"`
	ID               string `json:"id,omitempty"`
	DisplayName      string `json:"displayName,omitempty"`
	TenantID         string `json:"tenantId,omitempty"`
	IdentityProvider string `json:"identityProvider,omitempty"`
}

// IdentitySet is Graph's identitySet with every identity kind a
// communications identity set can carry.
type IdentitySet struct {
	ODataType           string    `json:"@odata.type,omitempty"`
	User                *Identity `json:"user,omitempty"`
	Application         *Identity `json:"application,omitempty"`
	ApplicationInstance *Identity `json:"applicationInstance,omitempty"`
	Phone               *Identity `json:"phone,omitempty"`
	Guest               *Identity `json:"guest,omitempty"`
	Device              *Identity `json:"device,omitempty"`
	Encrypted           *Identity `json:"encrypted,omitempty"`
	OnPremises          *Identity `json:"onPremises,omitempty"`
}

// Primary returns the kind and identity of the first non-nil identity in the
// set, in a fixed order, or "" and nil for an empty set.
func (s *IdentitySet) Primary() (kind string, id *Identity) {
	if s == nil {
		return "", nil
	}
	switch {
	case s.User != nil:
		return "user", s.User
	case s.Application != nil:
		return "application", s.Application
	case s.ApplicationInstance != nil:
		return "applicationInstance", s.ApplicationInstance
	case s.Phone != nil:
		return "phone", s.Phone
	case s.Guest != nil:
		return "guest", s.Guest
	case s.Device != nil:
		return "device", s.Device
	case s.Encrypted != nil:
		return "encrypted", s.Encrypted
	case s.OnPremises != nil:
		return "onPremises", s.OnPremises
	}
	return "", nil
}

// ParticipantInfo is Graph's participantInfo.
type ParticipantInfo struct {
	ODataType     string       `json:"@odata.type,omitempty"`
	Identity      *IdentitySet `json:"identity,omitempty"`
	EndpointType  string       `json:"endpointType,omitempty"`
	LanguageID    string       `json:"languageId,omitempty"`
	Region        string       `json:"region,omitempty"`
	CountryCode   string       `json:"countryCode,omitempty"`
	ParticipantID string       `json:"participantId,omitempty"`
}

// MediaStream is Graph's mediaStream.
type MediaStream struct {
	ODataType   string `json:"@odata.type,omitempty"`
	MediaType   string `json:"mediaType,omitempty"`
	SourceID    string `json:"sourceId,omitempty"`
	Direction   string `json:"direction,omitempty"`
	Label       string `json:"label,omitempty"`
	ServerMuted bool   `json:"serverMuted"`
}

// RemovedState is Graph's removedState: present on a delta-roster
// participant that has left.
type RemovedState struct {
	Reason string `json:"reason,omitempty"`
}

// Participant is Graph's participant, as rosters carry it.
type Participant struct {
	ODataType    string          `json:"@odata.type,omitempty"`
	ID           string          `json:"id,omitempty"`
	Info         ParticipantInfo `json:"info"`
	MediaStreams []MediaStream   `json:"mediaStreams,omitempty"`
	IsMuted      bool            `json:"isMuted"`
	IsInLobby    bool            `json:"isInLobby"`
	// RosterSequenceNumber is set on delta-roster participants only.
	RosterSequenceNumber int64         `json:"rosterSequenceNumber,omitempty"`
	RemovedState         *RemovedState `json:"removedState,omitempty"`
}

// InvitationParticipantInfo is Graph's invitationParticipantInfo: a call
// target or an invitee.
type InvitationParticipantInfo struct {
	ODataType      string       `json:"@odata.type,omitempty"`
	Identity       *IdentitySet `json:"identity,omitempty"`
	EndpointType   string       `json:"endpointType,omitempty"`
	ReplacesCallID string       `json:"replacesCallId,omitempty"`
	ParticipantID  string       `json:"participantId,omitempty"`
	Hidden         bool         `json:"hidden,omitempty"`
	LanguageID     string       `json:"languageId,omitempty"`
	Region         string       `json:"region,omitempty"`
}

// ResultInfo is Graph's resultInfo.
type ResultInfo struct {
	ODataType string `json:"@odata.type,omitempty"`
	Code      int32  `json:"code"`
	Subcode   int32  `json:"subcode"`
	Message   string `json:"message,omitempty"`
}

// ChatInfo is Graph's chatInfo.
type ChatInfo struct {
	ODataType           string `json:"@odata.type,omitempty"`
	ThreadID            string `json:"threadId,omitempty"`
	MessageID           string `json:"messageId,omitempty"`
	ReplyChainMessageID string `json:"replyChainMessageId,omitempty"`
}

// MeetingInfo is Graph's meetingInfo in either of its forms:
// organizerMeetingInfo (Organizer, AllowConversationWithoutHost) or
// joinMeetingIdMeetingInfo (JoinMeetingID, Passcode). ODataType says which.
type MeetingInfo struct {
	ODataType                    string       `json:"@odata.type,omitempty"`
	Organizer                    *IdentitySet `json:"organizer,omitempty"`
	AllowConversationWithoutHost *bool        `json:"allowConversationWithoutHost,omitempty"`
	JoinMeetingID                string       `json:"joinMeetingId,omitempty"`
	Passcode                     *string      `json:"passcode,omitempty"`
}

// MediaInfo is Graph's mediaInfo: an audio file (a prefetched or played
// prompt). ResourceID is the bot's own unique id for the file, by which
// Graph caches it.
type MediaInfo struct {
	ODataType  string `json:"@odata.type,omitempty"`
	URI        string `json:"uri,omitempty"`
	ResourceID string `json:"resourceId,omitempty"`
}

// MediaPrompt is Graph's mediaPrompt: one audio file played by
// playPrompt, recordResponse or startHoldMusic.
type MediaPrompt struct {
	ODataType string     `json:"@odata.type,omitempty"`
	MediaInfo *MediaInfo `json:"mediaInfo,omitempty"`
}

// MediaConfig is Graph's mediaConfig in either form: serviceHostedMediaConfig
// (PreFetchMedia) or appHostedMediaConfig (Blob). ODataType says which.
type MediaConfig struct {
	ODataType                   string      `json:"@odata.type,omitempty"`
	Blob                        string      `json:"blob,omitempty"`
	PreFetchMedia               []MediaInfo `json:"preFetchMedia,omitempty"`
	RemoveFromDefaultAudioGroup *bool       `json:"removeFromDefaultAudioGroup,omitempty"`
}

// CallOptions is Graph's outgoingCallOptions / incomingCallOptions.
type CallOptions struct {
	ODataType                           string `json:"@odata.type,omitempty"`
	IsContentSharingNotificationEnabled *bool  `json:"isContentSharingNotificationEnabled,omitempty"`
	IsDeltaRosterEnabled                *bool  `json:"isDeltaRosterEnabled,omitempty"`
	HideBotAfterEscalation              *bool  `json:"hideBotAfterEscalation,omitempty"`
}

// Call is Graph's call resource, as create-call sends and returns it and as
// call notifications carry it.
type Call struct {
	ODataType           string                      `json:"@odata.type,omitempty"`
	ID                  string                      `json:"id,omitempty"`
	State               CallState                   `json:"state,omitempty"`
	Direction           string                      `json:"direction,omitempty"`
	Subject             string                      `json:"subject,omitempty"`
	CallbackURI         string                      `json:"callbackUri,omitempty"`
	CallChainID         string                      `json:"callChainId,omitempty"`
	MyParticipantID     string                      `json:"myParticipantId,omitempty"`
	TenantID            string                      `json:"tenantId,omitempty"`
	Source              *ParticipantInfo            `json:"source,omitempty"`
	Targets             []InvitationParticipantInfo `json:"targets,omitempty"`
	RequestedModalities []string                    `json:"requestedModalities,omitempty"`
	MediaConfig         *MediaConfig                `json:"mediaConfig,omitempty"`
	ChatInfo            *ChatInfo                   `json:"chatInfo,omitempty"`
	MeetingInfo         *MeetingInfo                `json:"meetingInfo,omitempty"`
	CallOptions         *CallOptions                `json:"callOptions,omitempty"`
	ResultInfo          *ResultInfo                 `json:"resultInfo,omitempty"`
	// ToneInfo is set on the call update Graph sends for a key press after
	// subscribeToTone.
	ToneInfo *ToneInfo `json:"toneInfo,omitempty"`
}

// Operation is Graph's commsOperation and its subtypes
// (inviteParticipantsOperation and others); ODataType says which.
type Operation struct {
	ODataType     string                      `json:"@odata.type,omitempty"`
	ID            string                      `json:"id,omitempty"`
	Status        OperationStatus             `json:"status,omitempty"`
	ClientContext string                      `json:"clientContext,omitempty"`
	ResultInfo    *ResultInfo                 `json:"resultInfo,omitempty"`
	Participants  []InvitationParticipantInfo `json:"participants,omitempty"`
	// CompletionReason is set by playPromptOperation, recordOperation and
	// sendDtmfTonesOperation once they finish.
	CompletionReason string `json:"completionReason,omitempty"`
	// RecordingLocation and RecordingAccessToken are set by a completed
	// recordOperation. The token is a secret: never log it, and show it
	// only masked.
	RecordingLocation    string `json:"recordingLocation,omitempty"`
	RecordingAccessToken string `json:"recordingAccessToken,omitempty"`
}

// ContentSharingSession is Graph's contentSharingSession.
type ContentSharingSession struct {
	ODataType string `json:"@odata.type,omitempty"`
	ID        string `json:"id"`
}

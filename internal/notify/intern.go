package notify

import (
	"strings"
	"sync"

	"github.com/botd/botd/internal/model"
)

// symbols holds the strings that recur in every notification: OData types
// and enumeration values. Interning them saves an allocation per field and
// per participant, and the constants are shared, never a slice of a body.
// The map is built once and only read afterwards, so it needs no lock.
var symbols = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		model.ODataCommsNotifications, model.ODataCommsNotification,
		model.ODataCall, model.ODataParticipant, model.ODataParticipantInfo,
		model.ODataDeltaParticipants, model.ODataInvitationParticipant,
		model.ODataIdentitySet, model.ODataIdentity, model.ODataMediaStream,
		model.ODataContentSharingSession, model.ODataChatInfo,
		model.ODataOrganizerMeetingInfo, model.ODataJoinMeetingIDMeetingInfo,
		model.ODataServiceHostedMediaConfig, model.ODataAppHostedMediaConfig,
		model.ODataOutgoingCallOptions, model.ODataIncomingCallOptions,
		model.ODataResultInfo, model.ODataInviteParticipantsOp,
		model.ODataCommsOperation, model.ODataMediaPrompt, model.ODataMediaInfo, model.ODataToneInfo,
		// Other commsOperation subtypes Graph reports through notifications.
		model.ODataPlayPromptOp, model.ODataRecordOp, model.ODataSubscribeToToneOp,
		model.ODataSendDtmfTonesOp, model.ODataCancelMediaProcessingOp,
		model.ODataMuteParticipantOp, model.ODataUnmuteParticipantOp,
		model.ODataStartHoldMusicOp, model.ODataStopHoldMusicOp,
		model.ODataUpdateRecordingStatusOp,
		"#microsoft.graph.addLargeGalleryViewOperation",
		"#microsoft.graph.communicationsIdentitySet",
		"#microsoft.graph.communicationsUserIdentity",
		"#microsoft.graph.communicationsApplicationIdentity",
		"#microsoft.graph.communicationsApplicationInstanceIdentity",
		"#microsoft.graph.communicationsGuestIdentity",
		"#microsoft.graph.communicationsPhoneIdentity",
		"#microsoft.graph.communicationsEncryptedIdentity",
		"#microsoft.graph.removedState",
		// changeType, callState, operationStatus.
		string(model.ChangeCreated), string(model.ChangeUpdated), string(model.ChangeDeleted),
		string(model.OpNotStarted), string(model.OpRunning), string(model.OpCompleted), string(model.OpFailed),
		// completionReason of playPrompt, sendDtmfTones and recordResponse.
		model.CompletedSuccessfully, model.MediaOperationCanceled, model.RecordOperationCanceled,
		model.RecordStopToneDetected, model.RecordMaxDurationReached, model.RecordInitialSilence,
		model.RecordMaxSilence, "playPromptFailed", "playBeepFailed", "mediaReceiveTimeout",
		"unspecifiedError", "none",
		// mediaType, mediaDirection, callDirection, modality.
		"audio", "video", "videoBasedScreenSharing", "data", "unknown", "unknownFutureValue",
		"inactive", "sendOnly", "receiveOnly", "sendReceive",
		"incoming", "outgoing",
		// endpointType.
		"default", "voicemail", "skypeForBusiness", "skypeForBusinessVoipPhone",
		// identityProvider, and the commonest languageId values.
		"AAD", "MSA", "None", "en-US", "en-GB",
	} {
		m[s] = s
	}
	for _, s := range model.CallStates {
		m[string(s)] = string(s)
	}
	return m
}()

// enumFold returns the member of set equal to s ignoring case, or false.
// Graph documents enumeration values in camelCase but capitalises some in
// responses ("Running"); botd stores the documented spelling.
func enumFold[T ~string](s string, set []T) (T, bool) {
	for _, v := range set {
		if string(v) == s {
			return v, true
		}
	}
	for _, v := range set {
		if strings.EqualFold(string(v), s) {
			return v, true
		}
	}
	return "", false
}

var (
	changeTypes = []model.ChangeType{model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted}
)

// isOperationType reports whether an @odata.type names commsOperation or one
// of its subtypes, all of which end in "Operation".
func isOperationType(t string) bool {
	const ns = "#microsoft.graph."
	return strings.HasPrefix(t, ns) && len(t) > len(ns)+len("Operation") && strings.HasSuffix(t, "Operation")
}

// tenantIDs interns tenant ids. A bot's calls come from a handful of
// tenants and every identity of every participant names one, so a tracked
// call would otherwise hold a copy per participant. The table is bounded
// (maxTenantIDs ids of at most maxTenantIDLen bytes): once it is full,
// further ids are copied as any string, so hostile input can cost no more
// than the bound.
var tenantIDs = newInterner(maxTenantIDs, maxTenantIDLen)

const (
	maxTenantIDs   = 1024
	maxTenantIDLen = 64 // a GUID is 36
)

// interner is a bounded table of strings: at most max of them, each of at
// most maxLen bytes.
type interner struct {
	mu          sync.RWMutex
	m           map[string]string
	max, maxLen int
}

func newInterner(max, maxLen int) *interner {
	return &interner{m: map[string]string{}, max: max, maxLen: maxLen}
}

// intern returns the table's copy of b, adding one while there is room.
func (in *interner) intern(b []byte) string {
	if len(b) > in.maxLen {
		return string(b)
	}
	in.mu.RLock()
	s, ok := in.m[string(b)]
	in.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	in.mu.Lock()
	if len(in.m) < in.max {
		in.m[s] = s
	}
	in.mu.Unlock()
	return s
}

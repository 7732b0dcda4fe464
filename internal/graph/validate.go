package graph

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/netx"
)

// Validation rule names (ValidationError.Rule). They are stable: the admin
// API and alerts may key on them.
const (
	RuleRequired              = "required"
	RuleIDFormat              = "id.format"
	RuleClientContextMax      = "clientContext.maxLength"
	RulePhoneE164             = "phone.e164"
	RuleInviteMaxParticipants = "invite.maxParticipants"
	RuleInviteParticipantID   = "invite.participantIdSingle"
	RuleGroupCallMaxTargets   = "groupCall.maxTargets"
	RuleCallbackHTTPS         = "callbackUri.https"
	RuleModality              = "modality.value"
	RuleMediaConfigType       = "mediaConfig.type"
	RuleMeetingInfoType       = "meetingInfo.type"
	RuleRejectReason          = "reject.reason"
	RuleRedirectMaxTargets    = "redirect.maxTargets"
	RuleRedirectTimeout       = "redirect.timeout"
	RuleParticipantCapacity   = "answer.participantCapacity"
	// RuleCallbackOwn is the admin API's: a create-call callbackUri that
	// is not botd's own, so botd would not hear of the call.
	RuleCallbackOwn = "callbackUri.own"

	// Media and participant actions (media.go).
	RulePromptsMax           = "prompts.maxCount"
	RulePromptURI            = "prompt.uri"
	RuleRecordInitialSilence = "record.initialSilenceTimeout"
	RuleRecordMaxSilence     = "record.maxSilenceTimeout"
	RuleRecordMaxDuration    = "record.maxRecordDuration"
	RuleToneValue            = "tone.value"
	RuleDtmfMaxTones         = "dtmf.maxTones"
	RuleDtmfDelay            = "dtmf.delayBetweenTones"
	RuleRecordingStatus      = "recordingStatus.value"
	RuleScreenSharingRole    = "screenSharingRole.value"
	RuleTenantID             = "tenantId.format"

	// WarnReplacesCallIDFirstOnly is not an error: Graph reads only the
	// first participant of an invite that replaces a call. The request is
	// sent as written and a warning is logged.
	WarnReplacesCallIDFirstOnly = "invite.replacesCallIdFirstOnly"
)

// allRules lists every rule above, so that each operation's validation
// failure series is exported, at 0, from start.
var allRules = []string{
	RuleRequired, RuleIDFormat, RuleClientContextMax, RulePhoneE164, RuleInviteMaxParticipants,
	RuleInviteParticipantID, RuleGroupCallMaxTargets, RuleCallbackHTTPS, RuleModality, RuleMediaConfigType,
	RuleMeetingInfoType, RuleRejectReason, RuleRedirectMaxTargets, RuleRedirectTimeout, RuleParticipantCapacity,
	RuleCallbackOwn,
	RulePromptsMax, RulePromptURI, RuleRecordInitialSilence, RuleRecordMaxSilence, RuleRecordMaxDuration,
	RuleTenantID, RuleToneValue, RuleDtmfMaxTones, RuleDtmfDelay, RuleRecordingStatus, RuleScreenSharingRole,
}

// Limits from Graph's documentation.
const (
	MaxClientContext      = 256 // characters, counted as UTF-16 code units like Graph's .NET strings
	MaxInviteParticipants = 5
	MaxGroupCallVoIP      = 5  // VoIP (non-phone) targets of a group call
	MaxRedirectTargets    = 25 // simultaneous ring
	MinRedirectTimeout    = 15 // seconds
	MaxRedirectTimeout    = 90
)

// Reject reasons Graph accepts (model owns the enumeration).
const (
	RejectNone      = model.RejectNone
	RejectBusy      = model.RejectBusy
	RejectForbidden = model.RejectForbidden
)

// InviteRequest is the body of POST /communications/calls/{id}/participants/invite.
type InviteRequest struct {
	Participants  []model.InvitationParticipantInfo `json:"participants"`
	ClientContext string                            `json:"clientContext,omitempty"`
}

// AnswerRequest is the body of POST /communications/calls/{id}/answer.
type AnswerRequest struct {
	CallbackURI         string             `json:"callbackUri,omitempty"`
	AcceptedModalities  []string           `json:"acceptedModalities"`
	MediaConfig         *model.MediaConfig `json:"mediaConfig"`
	CallOptions         *model.CallOptions `json:"callOptions,omitempty"`
	ParticipantCapacity int32              `json:"participantCapacity,omitempty"`
}

// RejectRequest is the body of POST /communications/calls/{id}/reject.
type RejectRequest struct {
	Reason      string `json:"reason,omitempty"` // RejectNone, RejectBusy or RejectForbidden
	CallbackURI string `json:"callbackUri,omitempty"`
}

// RedirectRequest is the body of POST /communications/calls/{id}/redirect.
type RedirectRequest struct {
	Targets     []model.InvitationParticipantInfo `json:"targets"`
	Timeout     int32                             `json:"timeout,omitempty"` // seconds, 15..90; 0 = Graph's default
	CallbackURI string                            `json:"callbackUri,omitempty"`
}

// TransferRequest is the body of POST /communications/calls/{id}/transfer.
type TransferRequest struct {
	TransferTarget *model.InvitationParticipantInfo `json:"transferTarget"`
	// Transferee is needed only when transferring from a group call.
	Transferee    *model.ParticipantInfo `json:"transferee,omitempty"`
	ClientContext string                 `json:"clientContext,omitempty"`
}

func verr(rule, field, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Field: field, Message: fmt.Sprintf(format, args...)}
}

func required(field string) *ValidationError {
	return verr(RuleRequired, field, "is required")
}

// checkE164 refuses a phone number that is not E.164 (+, country code,
// at most 15 digits in all).
func checkE164(field, number string) *ValidationError {
	if !model.IsE164(number) {
		return verr(RulePhoneE164, field, "phone number %q is not E.164 (e.g. +12345678901)", truncate(number, 40))
	}
	return nil
}

// checkCallbackURI requires an absolute https URL; http is allowed only
// for loopback hosts (localhost, 127.0.0.0/8, ::1) so a bot can be run
// locally behind a tunnel or against the fake Graph.
func checkCallbackURI(field, raw string) *ValidationError {
	return checkHTTPSURL(RuleCallbackHTTPS, field, raw)
}

// checkHTTPSURL is checkCallbackURI's test under the given rule.
func checkHTTPSURL(rule, field, raw string) *ValidationError {
	if raw == "" {
		return required(field)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return verr(rule, field, "must be an absolute https URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if netx.IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return verr(rule, field, "must be https (http only for loopback hosts)")
	}
	return verr(rule, field, "must be an absolute https URL")
}

// checkClientContext enforces Graph's 256-character limit.
func checkClientContext(field, s string) *ValidationError {
	if n := utf16Len(s); n > MaxClientContext {
		return verr(RuleClientContextMax, field, "is %d characters, at most %d allowed", n, MaxClientContext)
	}
	return nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if l := utf16.RuneLen(r); l > 0 {
			n += l
		} else {
			n++
		}
	}
	return n
}

// checkID refuses a path id that is empty or that could change the path.
func checkID(field, id string) *ValidationError {
	switch {
	case id == "":
		return required(field)
	case strings.ContainsRune(id, '/'), id == ".", id == "..":
		return verr(RuleIDFormat, field, "must not contain '/' or be a dot segment")
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return verr(RuleIDFormat, field, "must not contain control characters")
	}
	return nil
}

// ValidateID checks a call, participant or operation id before it is put in
// a request path.
func ValidateID(field, id string) error {
	if e := checkID(field, id); e != nil {
		return e
	}
	return nil
}

// checkIdentity requires at least one identity and an E.164 phone id.
func checkIdentity(field string, set *model.IdentitySet) *ValidationError {
	kind, id := set.Primary()
	if kind == "" {
		return required(field)
	}
	if set.Phone != nil {
		return checkE164(field+".phone.id", set.Phone.ID)
	}
	if id.ID == "" {
		return required(field + "." + kind + ".id")
	}
	return nil
}

func checkInvitation(field string, p *model.InvitationParticipantInfo) *ValidationError {
	if p == nil {
		return required(field)
	}
	return checkIdentity(field+".identity", p.Identity)
}

var modalities = map[string]bool{"audio": true, "video": true, "videoBasedScreenSharing": true, "data": true}

func checkModalities(field string, ms []string) *ValidationError {
	if len(ms) == 0 {
		return required(field)
	}
	for i, m := range ms {
		if !modalities[m] {
			return verr(RuleModality, fmt.Sprintf("%s[%d]", field, i), "unknown modality %q (want audio, video, videoBasedScreenSharing or data)", truncate(m, 40))
		}
	}
	return nil
}

func checkMediaConfig(field string, mc *model.MediaConfig) *ValidationError {
	if mc == nil {
		return required(field)
	}
	switch mc.ODataType {
	case model.ODataServiceHostedMediaConfig, model.ODataAppHostedMediaConfig:
		return nil
	case "":
		return required(field + ".@odata.type")
	}
	return verr(RuleMediaConfigType, field+".@odata.type", "must be %s or %s", model.ODataServiceHostedMediaConfig, model.ODataAppHostedMediaConfig)
}

func isPhone(p model.InvitationParticipantInfo) bool {
	return p.Identity != nil && p.Identity.Phone != nil
}

// ValidateCall checks a create-call body: callbackUri (https),
// requestedModalities, mediaConfig, and either targets or meeting info
// (organizerMeetingInfo with chatInfo, or joinMeetingIdMeetingInfo); phone
// targets in E.164; a group call (more than one target) has at most five
// VoIP targets.
func ValidateCall(call *model.Call) error {
	if e := validateCall(call); e != nil {
		return e
	}
	return nil
}

func validateCall(call *model.Call) *ValidationError {
	if call == nil {
		return required("call")
	}
	if e := checkCallbackURI("callbackUri", call.CallbackURI); e != nil {
		return e
	}
	if e := checkModalities("requestedModalities", call.RequestedModalities); e != nil {
		return e
	}
	if call.TenantID != "" {
		if err := ValidTenantID(call.TenantID); err != nil {
			return verr(RuleTenantID, "tenantId", "%v", err)
		}
	}
	if e := checkMediaConfig("mediaConfig", call.MediaConfig); e != nil {
		return e
	}
	if call.Source != nil && call.Source.Identity != nil {
		if e := checkIdentity("source.identity", call.Source.Identity); e != nil {
			return e
		}
	}
	if mi := call.MeetingInfo; mi != nil {
		switch mi.ODataType {
		case model.ODataOrganizerMeetingInfo:
			if mi.Organizer == nil {
				return required("meetingInfo.organizer")
			}
			if e := checkIdentity("meetingInfo.organizer", mi.Organizer); e != nil {
				return e
			}
			if call.ChatInfo == nil || call.ChatInfo.ThreadID == "" {
				return required("chatInfo.threadId")
			}
		case model.ODataJoinMeetingIDMeetingInfo:
			if mi.JoinMeetingID == "" {
				return required("meetingInfo.joinMeetingId")
			}
		case "":
			return required("meetingInfo.@odata.type")
		default:
			return verr(RuleMeetingInfoType, "meetingInfo.@odata.type", "must be %s or %s", model.ODataOrganizerMeetingInfo, model.ODataJoinMeetingIDMeetingInfo)
		}
	} else if len(call.Targets) == 0 {
		return verr(RuleRequired, "targets", "is required (or meetingInfo to join a meeting)")
	}
	voip := 0
	for i := range call.Targets {
		if e := checkInvitation(fmt.Sprintf("targets[%d]", i), &call.Targets[i]); e != nil {
			return e
		}
		if !isPhone(call.Targets[i]) {
			voip++
		}
	}
	if len(call.Targets) > 1 && voip > MaxGroupCallVoIP {
		return verr(RuleGroupCallMaxTargets, "targets", "a group call may have at most %d VoIP targets, got %d", MaxGroupCallVoIP, voip)
	}
	return nil
}

// ValidateInvite checks an invite body: one to five participants, each with
// an identity (phones in E.164); a participantId (moving a participant) only
// with a single participant; clientContext at most 256 characters.
func ValidateInvite(req *InviteRequest) error {
	if e := validateInvite(req); e != nil {
		return e
	}
	return nil
}

func validateInvite(req *InviteRequest) *ValidationError {
	if req == nil || len(req.Participants) == 0 {
		return required("participants")
	}
	if n := len(req.Participants); n > MaxInviteParticipants {
		return verr(RuleInviteMaxParticipants, "participants", "at most %d participants per invite, got %d", MaxInviteParticipants, n)
	}
	for i := range req.Participants {
		p := &req.Participants[i]
		field := fmt.Sprintf("participants[%d]", i)
		if p.ParticipantID != "" && len(req.Participants) > 1 {
			return verr(RuleInviteParticipantID, field+".participantId", "moving a participant (participantId) takes exactly one participant; Graph would move only the first of %d", len(req.Participants))
		}
		if e := checkInvitation(field, p); e != nil {
			return e
		}
	}
	return checkClientContext("clientContext", req.ClientContext)
}

// InviteWarnings lists the warning rules a valid invite triggers: today only
// WarnReplacesCallIDFirstOnly (replacesCallId with several participants,
// of which Graph reads the first).
func InviteWarnings(req *InviteRequest) []string {
	if req == nil || len(req.Participants) < 2 {
		return nil
	}
	for _, p := range req.Participants {
		if p.ReplacesCallID != "" {
			return []string{WarnReplacesCallIDFirstOnly}
		}
	}
	return nil
}

// ValidateAnswer checks an answer body: acceptedModalities and mediaConfig
// are required; callbackUri, when set, must be https.
func ValidateAnswer(req *AnswerRequest) error {
	if e := validateAnswer(req); e != nil {
		return e
	}
	return nil
}

func validateAnswer(req *AnswerRequest) *ValidationError {
	if req == nil {
		return required("answer")
	}
	if req.CallbackURI != "" {
		if e := checkCallbackURI("callbackUri", req.CallbackURI); e != nil {
			return e
		}
	}
	if e := checkModalities("acceptedModalities", req.AcceptedModalities); e != nil {
		return e
	}
	if e := checkMediaConfig("mediaConfig", req.MediaConfig); e != nil {
		return e
	}
	if req.ParticipantCapacity < 0 {
		return verr(RuleParticipantCapacity, "participantCapacity", "must not be negative")
	}
	return nil
}

// ValidateReject checks a reject body: reason is none, busy or forbidden
// (or empty); callbackUri, when set, must be https.
func ValidateReject(req *RejectRequest) error {
	if req == nil {
		return required("reject")
	}
	switch req.Reason {
	case "", RejectNone, RejectBusy, RejectForbidden:
	default:
		return verr(RuleRejectReason, "reason", "must be none, busy or forbidden, got %q", truncate(req.Reason, 40))
	}
	if req.CallbackURI != "" {
		if e := checkCallbackURI("callbackUri", req.CallbackURI); e != nil {
			return e
		}
	}
	return nil
}

// ValidateRedirect checks a redirect body: 1 to 25 targets (phones in
// E.164), a timeout of 15 to 90 seconds when set, an https callbackUri when
// set.
func ValidateRedirect(req *RedirectRequest) error {
	if req == nil || len(req.Targets) == 0 {
		return required("targets")
	}
	if n := len(req.Targets); n > MaxRedirectTargets {
		return verr(RuleRedirectMaxTargets, "targets", "at most %d targets, got %d", MaxRedirectTargets, n)
	}
	for i := range req.Targets {
		if e := checkInvitation(fmt.Sprintf("targets[%d]", i), &req.Targets[i]); e != nil {
			return e
		}
	}
	if t := req.Timeout; t != 0 && (t < MinRedirectTimeout || t > MaxRedirectTimeout) {
		return verr(RuleRedirectTimeout, "timeout", "must be %d to %d seconds, got %d", MinRedirectTimeout, MaxRedirectTimeout, t)
	}
	if req.CallbackURI != "" {
		if e := checkCallbackURI("callbackUri", req.CallbackURI); e != nil {
			return e
		}
	}
	return nil
}

// ValidateTransfer checks a transfer body: transferTarget with an identity
// (phone in E.164), transferee's identity when given, clientContext length.
func ValidateTransfer(req *TransferRequest) error {
	if req == nil {
		return required("transferTarget")
	}
	if e := checkInvitation("transferTarget", req.TransferTarget); e != nil {
		return e
	}
	if req.Transferee != nil {
		if e := checkIdentity("transferee.identity", req.Transferee.Identity); e != nil {
			return e
		}
	}
	if e := checkClientContext("clientContext", req.ClientContext); e != nil {
		return e
	}
	return nil
}

// Limits of the media and participant actions, from Graph's v1.0 pages
// (learn.microsoft.com/graph/api/call-playprompt, call-record,
// call-senddtmftones) unless marked defensive.
const (
	MaxPlayPrompts   = 20  // playPrompt: "The maximum supported MediaPrompt collection size is 20."
	MaxRecordPrompts = 1   // recordResponse: "The maximum supported mediaPrompt collection size is 1."
	MinRecordSeconds = 1   // recordResponse initialSilenceTimeoutInSeconds, maxSilenceTimeoutInSeconds and
	MaxRecordSeconds = 120 // maxRecordDurationInSeconds: Min = 1, Max = 120 (default 5 each)
	// MaxDtmfTones and MaxDtmfDelayMs are defensive: Graph documents no
	// bound on sendDtmfTones' tones or delayBetweenTonesMs. A longer string
	// than 100 keys or a pause over 10 s between them is a bug, not a dial
	// plan.
	MaxDtmfTones   = 100
	MaxDtmfDelayMs = 10000
)

// PlayPromptRequest is the body of POST /communications/calls/{id}/playPrompt.
type PlayPromptRequest struct {
	Prompts       []model.MediaPrompt `json:"prompts"`
	ClientContext string              `json:"clientContext,omitempty"`
}

// RecordResponseRequest is the body of POST
// /communications/calls/{id}/recordResponse. Nil pointers are left out, so
// Graph applies its defaults (bargeInAllowed false, each timeout 5 s,
// playBeep true).
//
// StopTones are model tones; on the wire they are the keypad characters
// Graph's page shows ("stopTones": ["#", "1", "*"]), and decoding accepts
// either form.
type RecordResponseRequest struct {
	Prompts                        []model.MediaPrompt `json:"prompts,omitempty"`
	BargeInAllowed                 *bool               `json:"bargeInAllowed,omitempty"`
	InitialSilenceTimeoutInSeconds *int32              `json:"initialSilenceTimeoutInSeconds,omitempty"`
	MaxSilenceTimeoutInSeconds     *int32              `json:"maxSilenceTimeoutInSeconds,omitempty"`
	MaxRecordDurationInSeconds     *int32              `json:"maxRecordDurationInSeconds,omitempty"`
	PlayBeep                       *bool               `json:"playBeep,omitempty"`
	StopTones                      []model.Tone        `json:"stopTones,omitempty"`
	ClientContext                  string              `json:"clientContext,omitempty"`
}

// recordResponsePlain has RecordResponseRequest's fields without its
// methods.
type recordResponsePlain RecordResponseRequest

// MarshalJSON writes stopTones as keypad characters (Tone.Key); a value
// that is not a tone is written as it is.
func (r RecordResponseRequest) MarshalJSON() ([]byte, error) {
	w := struct {
		recordResponsePlain
		StopTones []string `json:"stopTones,omitempty"`
	}{recordResponsePlain: recordResponsePlain(r)}
	for _, t := range r.StopTones {
		k := t.Key()
		if k == "" {
			k = string(t)
		}
		w.StopTones = append(w.StopTones, k)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads stopTones as keypad characters ("#", "1") or tone
// names ("pound", "tone1"); anything else is kept for validation to refuse.
func (r *RecordResponseRequest) UnmarshalJSON(b []byte) error {
	var w struct {
		recordResponsePlain
		StopTones []string `json:"stopTones"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = RecordResponseRequest(w.recordResponsePlain)
	r.StopTones = nil
	if w.StopTones != nil {
		r.StopTones = make([]model.Tone, len(w.StopTones))
		for i, s := range w.StopTones {
			r.StopTones[i] = model.ParseTone(s)
		}
	}
	return nil
}

// SubscribeToToneRequest is the body of POST
// /communications/calls/{id}/subscribeToTone.
type SubscribeToToneRequest struct {
	ClientContext string `json:"clientContext,omitempty"`
}

// SendDtmfTonesRequest is the body of POST
// /communications/calls/{id}/sendDtmfTones. Tones go by name ("tone1",
// "pound"), as Graph's page shows.
type SendDtmfTonesRequest struct {
	Tones               []model.Tone `json:"tones"`
	DelayBetweenTonesMs *int32       `json:"delayBetweenTonesMs,omitempty"`
	ClientContext       string       `json:"clientContext,omitempty"`
}

// CancelMediaProcessingRequest is the body of POST
// /communications/calls/{id}/cancelMediaProcessing.
type CancelMediaProcessingRequest struct {
	ClientContext string `json:"clientContext,omitempty"`
}

// MuteRequest is the body of POST /communications/calls/{id}/mute and
// /unmute (the bot itself) and of .../participants/{id}/mute.
type MuteRequest struct {
	ClientContext string `json:"clientContext,omitempty"`
}

// StartHoldMusicRequest is the body of POST
// /communications/calls/{id}/participants/{id}/startHoldMusic. Without
// CustomPrompt Graph plays its own music.
type StartHoldMusicRequest struct {
	CustomPrompt  *model.MediaPrompt `json:"customPrompt,omitempty"`
	ClientContext string             `json:"clientContext,omitempty"`
}

// StopHoldMusicRequest is the body of POST
// /communications/calls/{id}/participants/{id}/stopHoldMusic.
type StopHoldMusicRequest struct {
	ClientContext string `json:"clientContext,omitempty"`
}

// UpdateRecordingStatusRequest is the body of POST
// /communications/calls/{id}/updateRecordingStatus.
type UpdateRecordingStatusRequest struct {
	Status        model.RecordingStatus `json:"status"`
	ClientContext string                `json:"clientContext,omitempty"`
}

// ChangeScreenSharingRoleRequest is the body of POST
// /communications/calls/{id}/changeScreenSharingRole.
type ChangeScreenSharingRoleRequest struct {
	Role model.ScreenSharingRole `json:"role"`
}

// checkPrompt requires mediaInfo with an absolute https uri (http for
// loopback hosts). resourceId is optional: Graph's mediaInfo page calls it
// "Optional", a cache key, and its startHoldMusic example has none.
func checkPrompt(field string, p *model.MediaPrompt) *ValidationError {
	if p == nil {
		return required(field)
	}
	if p.MediaInfo == nil {
		return required(field + ".mediaInfo")
	}
	return checkHTTPSURL(RulePromptURI, field+".mediaInfo.uri", p.MediaInfo.URI)
}

func checkPrompts(field string, ps []model.MediaPrompt, max int) *ValidationError {
	if n := len(ps); n > max {
		return verr(RulePromptsMax, field, "at most %d prompts, got %d", max, n)
	}
	for i := range ps {
		if e := checkPrompt(fmt.Sprintf("%s[%d]", field, i), &ps[i]); e != nil {
			return e
		}
	}
	return nil
}

func checkTones(field string, ts []model.Tone) *ValidationError {
	for i, t := range ts {
		if !slices.Contains(model.Tones, t) {
			return verr(RuleToneValue, fmt.Sprintf("%s[%d]", field, i), "unknown tone %q (want one of %s)", truncate(string(t), 40), oneOf(model.Tones))
		}
	}
	return nil
}

func checkSeconds(rule, field string, v *int32) *ValidationError {
	if v != nil && (*v < MinRecordSeconds || *v > MaxRecordSeconds) {
		return verr(rule, field, "must be %d to %d seconds, got %d", MinRecordSeconds, MaxRecordSeconds, *v)
	}
	return nil
}

// oneOf lists an enumeration model owns, for error messages.
func oneOf[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// validated returns e as an error, nil when e is nil (not a typed nil).
func validated(e *ValidationError) error {
	if e != nil {
		return e
	}
	return nil
}

// ValidatePlayPrompt checks a playPrompt body: 1 to 20 prompts, each with
// mediaInfo and an https uri; clientContext at most 256 characters.
func ValidatePlayPrompt(req *PlayPromptRequest) error {
	if req == nil || len(req.Prompts) == 0 {
		return required("prompts")
	}
	if e := checkPrompts("prompts", req.Prompts, MaxPlayPrompts); e != nil {
		return e
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateRecordResponse checks a recordResponse body: at most one prompt
// (mediaInfo with an https uri), each timeout 1 to 120 seconds when set,
// stopTones that are tones, clientContext at most 256 characters.
func ValidateRecordResponse(req *RecordResponseRequest) error {
	return validated(validateRecordResponse(req))
}

func validateRecordResponse(req *RecordResponseRequest) *ValidationError {
	if req == nil {
		return required("recordResponse")
	}
	if e := checkPrompts("prompts", req.Prompts, MaxRecordPrompts); e != nil {
		return e
	}
	if e := checkSeconds(RuleRecordInitialSilence, "initialSilenceTimeoutInSeconds", req.InitialSilenceTimeoutInSeconds); e != nil {
		return e
	}
	if e := checkSeconds(RuleRecordMaxSilence, "maxSilenceTimeoutInSeconds", req.MaxSilenceTimeoutInSeconds); e != nil {
		return e
	}
	if e := checkSeconds(RuleRecordMaxDuration, "maxRecordDurationInSeconds", req.MaxRecordDurationInSeconds); e != nil {
		return e
	}
	if e := checkTones("stopTones", req.StopTones); e != nil {
		return e
	}
	return checkClientContext("clientContext", req.ClientContext)
}

// ValidateSubscribeToTone checks a subscribeToTone body (clientContext
// length); a nil body is an empty one.
func ValidateSubscribeToTone(req *SubscribeToToneRequest) error {
	if req == nil {
		return nil
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateSendDtmfTones checks a sendDtmfTones body: 1 to 100 tones, each a
// tone; delayBetweenTonesMs 0 to 10000 when set; clientContext length.
func ValidateSendDtmfTones(req *SendDtmfTonesRequest) error {
	if req == nil || len(req.Tones) == 0 {
		return required("tones")
	}
	if n := len(req.Tones); n > MaxDtmfTones {
		return verr(RuleDtmfMaxTones, "tones", "at most %d tones, got %d", MaxDtmfTones, n)
	}
	if e := checkTones("tones", req.Tones); e != nil {
		return e
	}
	if d := req.DelayBetweenTonesMs; d != nil && (*d < 0 || *d > MaxDtmfDelayMs) {
		return verr(RuleDtmfDelay, "delayBetweenTonesMs", "must be 0 to %d ms, got %d", MaxDtmfDelayMs, *d)
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateCancelMediaProcessing checks a cancelMediaProcessing body
// (clientContext length); a nil body is an empty one.
func ValidateCancelMediaProcessing(req *CancelMediaProcessingRequest) error {
	if req == nil {
		return nil
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateMute checks a mute or unmute body (clientContext length); a nil
// body is an empty one.
func ValidateMute(req *MuteRequest) error {
	if req == nil {
		return nil
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateStartHoldMusic checks a startHoldMusic body: customPrompt, when
// set, has mediaInfo with an https uri; clientContext length. A nil body is
// an empty one.
func ValidateStartHoldMusic(req *StartHoldMusicRequest) error {
	if req == nil {
		return nil
	}
	if req.CustomPrompt != nil {
		if e := checkPrompt("customPrompt", req.CustomPrompt); e != nil {
			return e
		}
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateStopHoldMusic checks a stopHoldMusic body (clientContext length);
// a nil body is an empty one.
func ValidateStopHoldMusic(req *StopHoldMusicRequest) error {
	if req == nil {
		return nil
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateUpdateRecordingStatus checks an updateRecordingStatus body: status
// is notRecording, recording or failed; clientContext length.
func ValidateUpdateRecordingStatus(req *UpdateRecordingStatusRequest) error {
	if req == nil || req.Status == "" {
		return required("status")
	}
	if !slices.Contains(model.RecordingStatuses, req.Status) {
		return verr(RuleRecordingStatus, "status", "must be one of %s, got %q", oneOf(model.RecordingStatuses), truncate(string(req.Status), 40))
	}
	return validated(checkClientContext("clientContext", req.ClientContext))
}

// ValidateChangeScreenSharingRole checks a changeScreenSharingRole body:
// role is viewer or sharer.
func ValidateChangeScreenSharingRole(req *ChangeScreenSharingRoleRequest) error {
	if req == nil || req.Role == "" {
		return required("role")
	}
	if !slices.Contains(model.ScreenSharingRoles, req.Role) {
		return verr(RuleScreenSharingRole, "role", "must be one of %s, got %q", oneOf(model.ScreenSharingRoles), truncate(string(req.Role), 40))
	}
	return nil
}

// ContextBody is a request body with a clientContext: ContextRef points
// at it, so that the calls service can fill it.
type ContextBody interface{ ContextRef() *string }

func (r *InviteRequest) ContextRef() *string                { return &r.ClientContext }
func (r *PlayPromptRequest) ContextRef() *string            { return &r.ClientContext }
func (r *RecordResponseRequest) ContextRef() *string        { return &r.ClientContext }
func (r *SubscribeToToneRequest) ContextRef() *string       { return &r.ClientContext }
func (r *SendDtmfTonesRequest) ContextRef() *string         { return &r.ClientContext }
func (r *CancelMediaProcessingRequest) ContextRef() *string { return &r.ClientContext }
func (r *MuteRequest) ContextRef() *string                  { return &r.ClientContext }
func (r *StartHoldMusicRequest) ContextRef() *string        { return &r.ClientContext }
func (r *StopHoldMusicRequest) ContextRef() *string         { return &r.ClientContext }
func (r *UpdateRecordingStatusRequest) ContextRef() *string { return &r.ClientContext }

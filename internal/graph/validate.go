package graph

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/botd/botd/internal/model"
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

// Reject reasons Graph accepts.
const (
	RejectNone      = "none"
	RejectBusy      = "busy"
	RejectForbidden = "forbidden"
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

var e164 = regexp.MustCompile(`^\+[1-9]\d{1,14}$`)

// checkE164 refuses a phone number that is not E.164 (+, country code,
// at most 15 digits in all).
func checkE164(field, number string) *ValidationError {
	if !e164.MatchString(number) {
		return verr(RulePhoneE164, field, "phone number %q is not E.164 (e.g. +12345678901)", truncate(number, 40))
	}
	return nil
}

// checkCallbackURI requires an absolute https URL; http is allowed only
// for loopback hosts (localhost, 127.0.0.0/8, ::1) so a bot can be run
// locally behind a tunnel or against the fake Graph.
func checkCallbackURI(field, raw string) *ValidationError {
	if raw == "" {
		return required(field)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return verr(RuleCallbackHTTPS, field, "must be an absolute https URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return verr(RuleCallbackHTTPS, field, "must be https (http only for loopback hosts)")
	}
	return verr(RuleCallbackHTTPS, field, "must be an absolute https URL")
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

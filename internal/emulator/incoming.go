package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"unicode/utf8"

	"github.com/botd/botd/internal/model"
)

// IncomingCall is a request to ring the bot, the body of
// POST /emulator/incoming:
//
//	{"from": {"phone": "+15555550100"}}
//	{"from": {"user": "8a34a46b-...", "displayName": "Megan Bowen"},
//	 "to": {"phone": "+15555550199"}, "callbackUri": "http://127.0.0.1:8080/api/calls"}
type IncomingCall struct {
	// From is the caller: a Teams user or a PSTN number. Required.
	From Party `json:"from"`
	// To is what was dialled: omitted, the bot's application identity; a
	// phone number, the bot's resource account number (the target then
	// carries both the application and the phone identity).
	To *Party `json:"to,omitempty"`
	// CallbackURI overrides Options.BotCallbackURL.
	CallbackURI string `json:"callbackUri,omitempty"`
	// Modalities are the call's requestedModalities (default ["audio"]).
	Modalities []string `json:"modalities,omitempty"`
}

// Party is one end of an incoming call: exactly one of Phone and User.
type Party struct {
	// Phone is an E.164 number, "+" and 3 to 20 digits.
	Phone string `json:"phone,omitempty"`
	// User is a Teams user's object id.
	User        string `json:"user,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	// TenantID of the user (default Options.TenantID).
	TenantID string `json:"tenantId,omitempty"`
}

// Bounds of an incoming-call request.
const (
	maxIncomingBody = 64 << 10
	maxField        = 256
)

var modalities = []string{"audio", "video", "videoBasedScreenSharing", "data"}

// parseIncoming decodes and checks a POST /emulator/incoming body:
// one JSON object, no unknown members, a valid caller.
func parseIncoming(b []byte) (IncomingCall, error) {
	var ic IncomingCall
	if len(b) > maxIncomingBody {
		return ic, fmt.Errorf("body exceeds %d bytes", maxIncomingBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ic); err != nil {
		return IncomingCall{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return IncomingCall{}, errors.New("invalid JSON: more than one value")
	}
	if err := ic.validate(); err != nil {
		return IncomingCall{}, err
	}
	return ic, nil
}

func (ic *IncomingCall) validate() error {
	if err := ic.From.validate("from", true); err != nil {
		return err
	}
	if ic.To != nil {
		if err := ic.To.validate("to", false); err != nil {
			return err
		}
	}
	if ic.CallbackURI != "" {
		if err := checkCallbackURI(ic.CallbackURI); err != nil {
			return err
		}
	}
	if len(ic.Modalities) > len(modalities) {
		return errors.New("modalities: too many")
	}
	for _, m := range ic.Modalities {
		if !slices.Contains(modalities, m) {
			return fmt.Errorf("modalities: unknown %q", trunc(m))
		}
	}
	return nil
}

func (p *Party) validate(field string, caller bool) error {
	switch {
	case p.Phone != "" && p.User != "":
		return fmt.Errorf("%s: give phone or user, not both", field)
	case caller && p.Phone == "" && p.User == "":
		return fmt.Errorf("%s: phone or user is required", field)
	case !caller && (p.User != "" || p.Phone == ""):
		return fmt.Errorf("%s: only phone can be dialled; omit to to call the bot itself", field)
	case p.Phone != "" && !validPhone(p.Phone):
		return fmt.Errorf("%s.phone: %q is not an E.164 number (+ and 3 to 20 digits)", field, trunc(p.Phone))
	}
	for _, f := range [...]struct{ name, v string }{{"user", p.User}, {"displayName", p.DisplayName}, {"tenantId", p.TenantID}} {
		if len(f.v) > maxField || !utf8.ValidString(f.v) {
			return fmt.Errorf("%s.%s: longer than %d bytes or not UTF-8", field, f.name, maxField)
		}
	}
	return nil
}

func validPhone(s string) bool {
	if len(s) < 4 || len(s) > 21 || s[0] != '+' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func checkCallbackURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 {
		return fmt.Errorf("callbackUri: %q is not an absolute http(s) URL", trunc(s))
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// identity is the party's identity set.
func (p *Party) identity() *model.IdentitySet {
	id := &model.Identity{ODataType: model.ODataIdentity, DisplayName: p.DisplayName, TenantID: p.TenantID}
	set := &model.IdentitySet{ODataType: model.ODataIdentitySet}
	if p.Phone != "" {
		id.ID = p.Phone
		set.Phone = id
	} else {
		id.ID = p.User
		set.User = id
	}
	return set
}

// Incoming makes the caller ring the bot: it stores a call in state
// incoming (direction incoming, source the caller, target the bot) and
// posts the "created" notification to the bot's callback. If the bot
// neither answers, rejects nor redirects within Timing.Incoming (15 s,
// scaled), the call is terminated with resultInfo 408/1106. It returns the
// call.
func (s *Server) Incoming(ic IncomingCall) (model.Call, error) {
	if err := ic.validate(); err != nil {
		return model.Call{}, err
	}
	cb := ic.CallbackURI
	if cb == "" {
		cb = s.opts.BotCallbackURL
	}
	if cb == "" {
		return model.Call{}, errors.New("callbackUri: none given and Options.BotCallbackURL is not set")
	}
	mods := ic.Modalities
	if len(mods) == 0 {
		mods = []string{"audio"}
	}
	target := model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant, Identity: s.botIdentity()}
	if ic.To != nil && ic.To.Phone != "" {
		target.Identity.Phone = &model.Identity{ODataType: model.ODataIdentity, ID: ic.To.Phone}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return model.Call{}, errClosed
	}
	src := s.identity(ic.From.identity())
	call := model.Call{
		ODataType:           model.ODataCall,
		ID:                  s.newIDLocked(),
		State:               model.StateIncoming,
		Direction:           model.DirectionIncoming,
		CallbackURI:         cb,
		CallChainID:         s.newIDLocked(),
		MyParticipantID:     s.newIDLocked(),
		TenantID:            s.opts.TenantID,
		Source:              &model.ParticipantInfo{ODataType: model.ODataParticipantInfo, Identity: src, Region: "amer", LanguageID: "en-US"},
		Targets:             []model.InvitationParticipantInfo{target},
		RequestedModalities: mods,
	}
	cs := s.newCallLocked(call, kindIncoming)
	s.notifyIncomingLocked(cs)
	cs.incoming = s.afterLocked(s.scaled(s.opts.Timing.Incoming), func() {
		cs.incoming = 0
		if cs.call.State == model.StateIncoming {
			s.endLocked(cs, resultIncomingTimeout, 0, false)
		}
	})
	return cs.call, nil
}

func (s *Server) handleIncoming(w http.ResponseWriter, r *http.Request) {
	raw := rawBody(r)
	ic, err := parseIncoming(raw)
	if err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	call, err := s.Incoming(ic)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errClosed) {
			status = http.StatusServiceUnavailable
		}
		s.graphError(w, r, status, "BadRequest", err.Error())
		return
	}
	s.emit(Event{Kind: EventIncoming, CallID: call.ID, Call: call, Body: raw})
	loc := baseURL(r) + "/v1.0/communications/calls/" + url.PathEscape(call.ID)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, call)
}

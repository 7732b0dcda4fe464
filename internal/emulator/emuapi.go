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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/botd/botd/internal/model"
)

// Emulator-only HTTP endpoints: scripted people (/emulator/people), the
// request record (/emulator/requests) and the calls held
// (/emulator/calls).

// maxPeopleBody bounds a PUT /emulator/people body.
const maxPeopleBody = 16 << 10

// maxScriptTones bounds a script's tones.
const maxScriptTones = 64

// maxPeople bounds how many scripts the emulator keeps.
const maxPeople = 10000

// PersonScript is the body of PUT /emulator/people/{key}: how the person
// with that phone number or user id answers, and which keys they press.
type PersonScript struct {
	// Answer is accept, decline, busy or noAnswer; "" leaves the answer to
	// the other rules.
	Answer Answer `json:"answer,omitempty"`
	// AnswerAfter is how long they take to answer (Go duration, before
	// TimeScale); "" or "0s" draws from Timing.Answer.
	AnswerAfter string `json:"answerAfter,omitempty"`
	// Tones are the keys (0-9, *, #, A-D, F) they press after each prompt
	// finishes, once the bot subscribed to tones.
	Tones string `json:"tones,omitempty"`
	// TonesAfter is the wait after a prompt before the first key (Go
	// duration, before TimeScale; default Timing.TonesAfter).
	TonesAfter string `json:"tonesAfter,omitempty"`
}

// personScript is a checked PersonScript.
type personScript struct {
	raw         PersonScript
	answer      Answer
	answerAfter time.Duration
	tones       string
	tonesAfter  time.Duration
}

// parsePersonScript decodes and checks a PUT /emulator/people body.
func parsePersonScript(b []byte) (personScript, error) {
	var ps PersonScript
	if len(b) > maxPeopleBody {
		return personScript{}, fmt.Errorf("body exceeds %d bytes", maxPeopleBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ps); err != nil {
		return personScript{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return personScript{}, errors.New("invalid JSON: more than one value")
	}
	sc := personScript{raw: ps, answer: ps.Answer, tones: ps.Tones}
	switch ps.Answer {
	case AnswerDefault, AnswerAccept, AnswerDecline, AnswerBusy, AnswerNoAnswer:
	default:
		return personScript{}, fmt.Errorf("answer: unknown %q, want accept, decline, busy or noAnswer", trunc(string(ps.Answer)))
	}
	var err error
	if sc.answerAfter, err = parseScriptDuration("answerAfter", ps.AnswerAfter); err != nil {
		return personScript{}, err
	}
	if sc.tonesAfter, err = parseScriptDuration("tonesAfter", ps.TonesAfter); err != nil {
		return personScript{}, err
	}
	if len(ps.Tones) > maxScriptTones {
		return personScript{}, fmt.Errorf("tones: more than %d keys", maxScriptTones)
	}
	for i := 0; i < len(ps.Tones); i++ {
		if _, ok := model.ToneForKey(ps.Tones[i]); !ok {
			return personScript{}, fmt.Errorf("tones: %q at %d is not a key (0-9, *, #, A-D, F)", trunc(ps.Tones[i:]), i)
		}
	}
	return sc, nil
}

func parseScriptDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: %q is not a duration (e.g. \"1s\", \"500ms\")", field, trunc(v))
	case d < 0:
		return 0, fmt.Errorf("%s: %q is negative", field, trunc(v))
	case d > 24*time.Hour:
		return 0, fmt.Errorf("%s: %q exceeds 24h", field, trunc(v))
	}
	return d, nil
}

// validPersonKey reports whether key is an E.164 number or a user id.
func validPersonKey(key string) bool {
	if strings.HasPrefix(key, "+") {
		return validPhone(key)
	}
	return key != "" && len(key) <= maxField && utf8.ValidString(key) && !strings.ContainsAny(key, " \t\r\n/")
}

// scriptForLocked returns the script of the first identity of id that has
// one. Callers hold s.mu.
func (s *Server) scriptForLocked(id *model.IdentitySet) (personScript, bool) {
	if id == nil || len(s.people) == 0 {
		return personScript{}, false
	}
	for _, x := range identities(id) {
		if sc, ok := s.people[x.ID]; ok && x.ID != "" {
			if sc.tonesAfter == 0 {
				sc.tonesAfter = s.opts.Timing.TonesAfter
			}
			return sc, true
		}
	}
	return personScript{}, false
}

// SetPerson scripts a person, as PUT /emulator/people/{key} does.
func (s *Server) SetPerson(key string, ps PersonScript) error {
	if !validPersonKey(key) {
		return errBadKey
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	sc, err := parsePersonScript(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.putPersonLocked(key, sc)
	return err
}

var errBadKey = errors.New("key: want an E.164 number (+ and 3 to 20 digits) or a user id")

func (s *Server) putPersonLocked(key string, sc personScript) (created bool, err error) {
	if s.people == nil {
		s.people = map[string]personScript{}
	}
	_, had := s.people[key]
	if !had && len(s.people) >= maxPeople {
		return false, fmt.Errorf("too many scripted people (%d)", maxPeople)
	}
	s.people[key] = sc
	return !had, nil
}

func (s *Server) handlePutPerson(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validPersonKey(key) {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", errBadKey.Error())
		return
	}
	b, _ := io.ReadAll(r.Body)
	sc, err := parsePersonScript(b)
	if err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	s.mu.Lock()
	created, err := s.putPersonLocked(key, sc)
	s.mu.Unlock()
	if err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"key": key, "script": sc.raw})
}

func (s *Server) handleDeletePerson(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	s.mu.Lock()
	_, had := s.people[key]
	delete(s.people, key)
	s.mu.Unlock()
	if !had {
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "No script for "+trunc(key)+".")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListPeople(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		Key    string       `json:"key"`
		Script PersonScript `json:"script"`
	}
	s.mu.Lock()
	out := make([]entry, 0, len(s.people))
	for k, sc := range s.people {
		out = append(out, entry{k, sc.raw})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
	writeJSON(w, http.StatusOK, map[string]any{"people": out})
}

// redactedKeys are the JSON members and form fields whose values the
// request record never keeps.
var redactedKeys = []string{"client_secret", "client_assertion", "recordingAccessToken"}

const redacted = "[REDACTED]"

// redactBody hides secrets in a recorded body: form fields of a token
// request, JSON members anywhere in a JSON body.
func redactBody(route Route, body []byte) []byte {
	if route == RouteToken {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return body
		}
		changed := false
		for _, k := range redactedKeys {
			if form.Has(k) {
				form.Set(k, redacted)
				changed = true
			}
		}
		if !changed {
			return body
		}
		return []byte(form.Encode())
	}
	if !bytes.Contains(body, []byte("recordingAccessToken")) && !bytes.Contains(body, []byte("client_")) {
		return body
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		// Not JSON: hide the whole body rather than risk a secret.
		return []byte(redacted)
	}
	redactValue(v)
	out, err := json.Marshal(v)
	if err != nil {
		return []byte(redacted)
	}
	return out
}

func redactValue(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if slices.Contains(redactedKeys, k) {
				x[k] = redacted
				continue
			}
			redactValue(e)
		}
	case []any:
		for _, e := range x {
			redactValue(e)
		}
	}
}

// requestView is one recorded request as GET /emulator/requests lists it.
type requestView struct {
	Method          string          `json:"method"`
	Path            string          `json:"path"`
	Route           Route           `json:"route"`
	Pattern         string          `json:"pattern,omitempty"`
	ClientRequestID string          `json:"clientRequestId,omitempty"`
	CallID          string          `json:"callId,omitempty"`
	Body            json.RawMessage `json:"body,omitempty"`
}

func (s *Server) handleRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var routes []Route
	for _, v := range q["route"] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				routes = append(routes, Route(x))
			}
		}
	}
	callID := q.Get("callId")
	s.mu.Lock()
	out := []requestView{}
	for _, rec := range s.requests {
		if (len(routes) > 0 && !slices.Contains(routes, rec.Route)) || (callID != "" && rec.CallID != callID) {
			continue
		}
		v := requestView{Method: rec.Method, Path: rec.Path, Route: rec.Route, Pattern: rec.Pattern,
			ClientRequestID: rec.ClientRequestID, CallID: rec.CallID}
		if len(rec.Body) > 0 {
			if json.Valid(rec.Body) {
				v.Body = append(json.RawMessage(nil), rec.Body...)
			} else {
				v.Body, _ = json.Marshal(string(rec.Body))
			}
		}
		out = append(out, v)
	}
	dropped := s.requestsDropped
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"requests": out, "dropped": dropped})
}

type participantView struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	Identity    string `json:"identity,omitempty"`
	IsBot       bool   `json:"isBot"`
	Muted       bool   `json:"muted"`
	OnHold      bool   `json:"onHold"`
}

type callView struct {
	ID                string                  `json:"id"`
	State             model.CallState         `json:"state"`
	Direction         string                  `json:"direction,omitempty"`
	MyParticipantID   string                  `json:"myParticipantId,omitempty"`
	Participants      []participantView       `json:"participants"`
	ToneSubscribed    bool                    `json:"toneSubscribed"`
	RecordingStatus   model.RecordingStatus   `json:"recordingStatus,omitempty"`
	ScreenSharingRole model.ScreenSharingRole `json:"screenSharingRole,omitempty"`
	Operations        int                     `json:"operations"`
	RunningMedia      int                     `json:"runningMedia"`
}

func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]callView, 0, len(s.order))
	for _, id := range s.order {
		cs := s.calls[id]
		v := callView{ID: id, State: cs.call.State, Direction: cs.call.Direction, MyParticipantID: cs.call.MyParticipantID,
			Participants: []participantView{}, ToneSubscribed: cs.toneSubscribed, RecordingStatus: cs.recordingStatus,
			ScreenSharingRole: cs.screenSharingRole, Operations: len(cs.operations), RunningMedia: len(cs.media)}
		for _, p := range cs.participants {
			pv := participantView{ID: p.ID, IsBot: isBot(p.Info.Identity), Muted: p.IsMuted, OnHold: cs.held == p.ID}
			if id := p.Info.Identity; id != nil {
				if xs := identities(id); len(xs) > 0 {
					pv.Identity, pv.DisplayName = xs[0].ID, xs[0].DisplayName
				}
			}
			v.Participants = append(v.Participants, pv)
		}
		out = append(out, v)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"calls": out})
}

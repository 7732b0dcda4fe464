package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/netx"
)

// maxRequestBody bounds what the fake reads of a request.
const maxRequestBody = 1 << 20

// register wires every route. Graph paths take a {version} segment so that
// both /v1.0 and /beta work.
func (s *Server) register() {
	const calls = "/{version}/communications/calls"
	s.handle("POST /{tenant}/oauth2/v2.0/token", RouteToken, s.handleToken)
	s.handle("POST "+calls, RouteCreateCall, s.handleCreateCall)
	s.handle("GET "+calls+"/{id}", RouteGetCall, s.handleGetCall)
	s.handle("DELETE "+calls+"/{id}", RouteDeleteCall, s.handleDeleteCall)
	s.handle("POST "+calls+"/{id}/answer", RouteAnswer, s.handleAnswer)
	s.handle("POST "+calls+"/{id}/reject", RouteReject, s.handleReject)
	s.handle("POST "+calls+"/{id}/redirect", RouteRedirect, s.handleRedirect)
	s.handle("POST "+calls+"/{id}/transfer", RouteTransfer, s.handleTransfer)
	s.handle("POST "+calls+"/{id}/keepAlive", RouteKeepAlive, s.handleKeepAlive)
	s.handle("POST "+calls+"/{id}/participants/invite", RouteInvite, s.handleInvite)
	s.handle("GET "+calls+"/{id}/participants", RouteListParticipants, s.handleListParticipants)
	s.handle("GET "+calls+"/{id}/operations/{opId}", RouteGetOperation, s.handleGetOperation)
	s.handle("POST "+calls+"/{id}/playPrompt", RoutePlayPrompt, s.handlePlayPrompt)
	s.handle("POST "+calls+"/{id}/recordResponse", RouteRecordResponse, s.handleRecordResponse)
	s.handle("POST "+calls+"/{id}/subscribeToTone", RouteSubscribeToTone, s.handleSubscribeToTone)
	s.handle("POST "+calls+"/{id}/sendDtmfTones", RouteSendDtmfTones, s.handleSendDtmfTones)
	s.handle("POST "+calls+"/{id}/cancelMediaProcessing", RouteCancelMediaProcessing, s.handleCancelMediaProcessing)
	s.handle("POST "+calls+"/{id}/mute", RouteMute, s.handleMute)
	s.handle("POST "+calls+"/{id}/unmute", RouteUnmute, s.handleUnmute)
	s.handle("POST "+calls+"/{id}/updateRecordingStatus", RouteUpdateRecordingStatus, s.handleUpdateRecordingStatus)
	s.handle("POST "+calls+"/{id}/changeScreenSharingRole", RouteChangeScreenSharingRole, s.handleChangeScreenSharingRole)
	s.handle("POST "+calls+"/{id}/participants/{pid}/mute", RouteMuteParticipant, s.handleMuteParticipant)
	s.handle("DELETE "+calls+"/{id}/participants/{pid}", RouteRemoveParticipant, s.handleRemoveParticipant)
	s.handle("POST "+calls+"/{id}/participants/{pid}/startHoldMusic", RouteStartHoldMusic, s.handleStartHoldMusic)
	s.handle("POST "+calls+"/{id}/participants/{pid}/stopHoldMusic", RouteStopHoldMusic, s.handleStopHoldMusic)
	s.handle("GET /emulator/recordings/{id}", RouteRecording, s.handleRecording)
	s.handle("GET /emulator/people", RoutePeople, s.handleListPeople)
	s.handle("PUT /emulator/people/{key}", RoutePeople, s.handlePutPerson)
	s.handle("DELETE /emulator/people/{key}", RoutePeople, s.handleDeletePerson)
	s.handle("GET /emulator/requests", RouteRequests, s.handleRequests)
	s.handle("GET /emulator/calls", RouteCalls, s.handleCalls)
	s.handle("DELETE /emulator/calls/{id}/participants/{pid}", RouteCalls, s.handleLeave)
	s.handle("DELETE /emulator/calls/{id}", RouteCalls, s.handleEndCall)
	s.handle("GET "+openIDPath, RouteOpenID, s.handleOpenID)
	s.handle("GET "+jwksPath, RouteJWKS, s.handleJWKS)
	s.handle("GET /v1/.well-known/keys", RouteJWKS, s.handleJWKS)
	s.handle("POST /emulator/incoming", RouteIncoming, s.handleIncoming)
	s.handle("GET /emulator/callback-token", RouteCallbackToken, s.handleCallbackToken)
	s.handle("/", RouteUnknown, func(w http.ResponseWriter, r *http.Request) {
		s.graphError(w, r, http.StatusNotFound, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", r.URL.Path))
	})
}

func (s *Server) handle(pattern string, route Route, h http.HandlerFunc) {
	s.routes[pattern] = route
	s.mux.Handle(pattern, s.wrap(route, h))
}

// ServeHTTP serves the fake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// wrap records the request, sets Graph's response headers, checks the
// bearer token (Graph routes), then applies a scripted or injected fault,
// or the route.
func (s *Server) wrap(route Route, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &netx.StatusWriter{ResponseWriter: rw}
		defer func() {
			s.opts.Log.Debug().Str("component", "emulator").Str("route", string(route)).Str("method", r.Method).
				Str("path", r.URL.Path).Int("status", w.Status).Str("client_request_id", r.Header.Get("client-request-id")).
				Msg("emulator request")
		}()
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.record(route, r, body)

		w.Header().Set("request-id", uuid.NewString())
		if crid := r.Header.Get("client-request-id"); crid != "" {
			w.Header().Set("client-request-id", crid)
		}
		if route.graph() {
			if v := r.PathValue("version"); v != "v1.0" && v != "beta" {
				s.graphError(w, r, http.StatusNotFound, "BadRequest", "Invalid version: "+v)
				return
			}
			if !s.authorized(w, r) {
				return
			}
		}

		f, ok := s.nextFault(route)
		if ok && f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				// The client gave up; Graph would still process the
				// request, so go on.
			case <-s.closed:
				t.Stop()
				return
			}
			t.Stop()
		}
		if ok && f.Status != 0 {
			if f.Apply {
				h(httptest.NewRecorder(), r)
			}
			s.writeFault(w, r, route, f)
			return
		}
		h(w, r)
	})
}

func (s *Server) record(route Route, r *http.Request, body []byte) {
	body = redactBody(route, body)
	rec := Request{
		Route:           route,
		Pattern:         r.Pattern,
		Method:          r.Method,
		Path:            r.URL.RequestURI(),
		Header:          r.Header.Clone(),
		Body:            body,
		ClientRequestID: r.Header.Get("client-request-id"),
		CallID:          r.PathValue("id"),
	}
	// The token route sees the client secret in the form or in Basic auth.
	if _, _, ok := r.BasicAuth(); ok {
		rec.Header.Set("Authorization", "Basic [REDACTED]")
	}
	// A recording's bearer token is its recordingAccessToken.
	if route == RouteRecording && rec.Header.Get("Authorization") != "" {
		rec.Header.Set("Authorization", "Bearer [REDACTED]")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, rec)
	if n := len(s.requests) - s.recordCap(); n > 0 {
		// Capped as maxRecorded says: the oldest go, and are counted.
		s.requests = slices.Delete(s.requests, 0, n)
		s.requestsDropped += n
	}
	if route == RouteToken {
		s.fetches++
	}
}

// authorized checks the bearer token against the issued ones.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return false
	}
	s.mu.Lock()
	it, known := s.tokens[tok]
	s.mu.Unlock()
	if !known || !s.opts.Now().Before(it.expiry) {
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
		return false
	}
	return true
}

func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, route Route, f Fault) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch {
	case len(f.Body) > 0:
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(f.Status)
		_, _ = w.Write(f.Body)
	case f.Status >= 400 && route == RouteToken:
		code := f.Code
		if code == "" {
			code = "temporarily_unavailable"
		}
		oauthError(w, f.Status, code, "scripted failure")
	case f.Status >= 400:
		code := f.Code
		if code == "" {
			code = defaultCode(f.Status)
		}
		s.graphError(w, r, f.Status, code, "scripted fault: "+http.StatusText(f.Status))
	default:
		w.WriteHeader(f.Status)
	}
}

// defaultCode is the Graph error code the fake uses for a status.
func defaultCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "itemNotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusGatewayTimeout:
		return "GatewayTimeout"
	}
	return "generalException"
}

// ErrorBody is Graph's error envelope, as the fake writes it.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError InnerError `json:"innerError"`
}

// InnerError carries the ids that tie a failure to Microsoft's logs.
type InnerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

func (s *Server) graphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	body := ErrorBody{Error: ErrorDetail{
		Code:    code,
		Message: msg,
		InnerError: InnerError{
			Date:            s.opts.Now().UTC().Format("2006-01-02T15:04:05"),
			RequestID:       w.Header().Get("request-id"),
			ClientRequestID: r.Header.Get("client-request-id"),
		},
	}}
	writeJSON(w, status, body)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": desc,
		"error_codes":       []int{},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeEntity writes v with Graph's @odata.context.
func writeEntity(w http.ResponseWriter, r *http.Request, status int, v any, context string) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	m["@odata.context"] = serviceRoot(r) + "/$metadata#" + context
	writeJSON(w, status, m)
}

// serviceRoot is scheme://host/{version} of the request.
func serviceRoot(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + r.PathValue("version")
}

func callURL(r *http.Request, id string) string {
	return serviceRoot(r) + "/communications/calls/" + url.PathEscape(id)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !s.acceptsTenant(tenant) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if id != s.opts.ClientID {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
		return
	}
	// The secret, or a certificate or federated client assertion.
	if bad := s.checkCredential(r, id, secret); bad != nil {
		oauthError(w, bad.status, bad.code, bad.desc)
		return
	}
	if !strings.HasSuffix(r.PostForm.Get("scope"), "/.default") {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid; client credentials need {resource}/.default.")
		return
	}
	tok := newAccessToken(tenant) // TokenTenant reads the tenant back
	ttl := s.opts.TokenTTL
	s.mu.Lock()
	s.tokens[tok] = issuedToken{expiry: s.opts.Now().Add(ttl)}
	s.issued++
	s.mu.Unlock()
	secs := max(1, int(ttl/time.Second)) // expires_in 0 would mean "never" to clients
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("empty body")
	}
	return json.Unmarshal(b, v)
}

func rawBody(r *http.Request) json.RawMessage {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

func (s *Server) emit(ev Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(ev)
	}
}

// createCallProblem is the fake's check of a create-call body: what Graph
// would refuse with 400.
func createCallProblem(c *model.Call) string {
	switch {
	case c.CallbackURI == "":
		return "callbackUri is required"
	case len(c.RequestedModalities) == 0:
		return "requestedModalities is required"
	case c.MediaConfig == nil:
		return "mediaConfig is required"
	case len(c.Targets) == 0 && c.MeetingInfo == nil:
		return "targets or meetingInfo is required"
	}
	return ""
}

func (s *Server) handleCreateCall(w http.ResponseWriter, r *http.Request) {
	raw := rawBody(r)
	var call model.Call
	if err := decodeBody(r, &call); err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "invalid request body: "+err.Error())
		return
	}
	if p := createCallProblem(&call); p != "" {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", p)
		return
	}
	call.ODataType = model.ODataCall
	call.State = model.StateEstablishing
	if call.Direction == "" {
		call.Direction = model.DirectionOutgoing
	}
	if call.Source == nil {
		call.Source = &model.ParticipantInfo{ODataType: model.ODataParticipantInfo, Identity: s.botIdentity()}
	}
	kind := kindGroup
	switch {
	case call.MeetingInfo != nil || call.ChatInfo != nil:
		kind = kindMeeting
	case len(call.Targets) == 1:
		kind = kindP2P
	}
	s.mu.Lock()
	call.ID = s.newIDLocked()
	call.MyParticipantID = s.newIDLocked()
	call.CallChainID = s.newIDLocked()
	cs := s.newCallLocked(call, kind)
	cs.participants = []model.Participant{s.botParticipantLocked(cs, call.RequestedModalities)}
	s.startOutgoingLocked(cs)
	s.mu.Unlock()
	s.emit(Event{Kind: EventCallCreated, CallID: call.ID, Call: call, Body: raw})

	w.Header().Set("Location", callURL(r, call.ID))
	writeEntity(w, r, http.StatusCreated, call, "communications/calls/$entity")
}

// withCall runs fn on the call under the lock; it answers 404 when the call
// does not exist (or has terminated, unless allowTerminated).
func (s *Server) withCall(w http.ResponseWriter, r *http.Request, allowTerminated bool, fn func(cs *callState) (ok bool)) (model.Call, bool) {
	id := r.PathValue("id")
	s.mu.Lock()
	cs, found := s.calls[id]
	if !found || (!allowTerminated && cs.call.State == model.StateTerminated) {
		s.mu.Unlock()
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "Call "+id+" not found.")
		return model.Call{}, false
	}
	ok := fn(cs)
	snap := cs.call
	s.mu.Unlock()
	return snap, ok
}

// changeCall runs fn with s.mu held on the call the path names (not a
// terminated one). fn returns a problem, "" when it changed the call. A
// problem is answered 400 BadRequest, errNoParticipant 404 itemNotFound,
// and ok is false; so it is when the call is unknown (404, by withCall).
func (s *Server) changeCall(w http.ResponseWriter, r *http.Request, fn func(cs *callState) (problem string)) (model.Call, bool) {
	var problem string
	call, ok := s.withCall(w, r, false, func(cs *callState) bool {
		problem = fn(cs)
		return problem == ""
	})
	switch {
	case problem == errNoParticipant:
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "Participant "+r.PathValue("pid")+" not found.")
	case problem != "":
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", problem)
	}
	return call, ok
}

func (s *Server) handleGetCall(w http.ResponseWriter, r *http.Request) {
	call, ok := s.withCall(w, r, true, func(*callState) bool { return true })
	if !ok {
		return
	}
	writeEntity(w, r, http.StatusOK, call, "communications/calls/$entity")
}

func (s *Server) handleDeleteCall(w http.ResponseWriter, r *http.Request) {
	call, ok := s.withCall(w, r, false, func(cs *callState) bool {
		s.endLocked(cs, resultHangup, s.step(), true)
		return true
	})
	if !ok {
		return
	}
	s.emit(Event{Kind: EventHangup, CallID: call.ID, Call: call})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleKeepAlive(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.withCall(w, r, false, func(cs *callState) bool {
		s.armKeepAliveLocked(cs)
		return true
	}); !ok {
		return
	}
	w.WriteHeader(http.StatusOK)
}

// decodeChecked decodes r's body into body and runs check (if any), and
// answers Graph's 400 for either failure; it reports whether to go on.
func (s *Server) decodeChecked(w http.ResponseWriter, r *http.Request, body any, check func() string) bool {
	if err := decodeBody(r, body); err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "invalid request body: "+err.Error())
		return false
	}
	if check != nil {
		if p := check(); p != "" {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", p)
			return false
		}
	}
	return true
}

// stateAction handles answer, reject, redirect and transfer: decode the
// body, check it and the call's state, change the state and start what
// follows (apply runs with s.mu held), answer 202.
func (s *Server) stateAction(w http.ResponseWriter, r *http.Request, kind EventKind, body any, check func() string, allowed func(model.CallState) bool, apply func(*callState)) {
	raw := rawBody(r)
	if !s.decodeChecked(w, r, body, check) {
		return
	}
	call, ok := s.changeCall(w, r, func(cs *callState) string {
		if !allowed(cs.call.State) {
			return fmt.Sprintf("Call is in state %q; %s is not allowed.", cs.call.State, kind)
		}
		apply(cs)
		return ""
	})
	if !ok {
		return
	}
	s.emit(Event{Kind: kind, CallID: call.ID, Call: call, Body: raw})
	w.WriteHeader(http.StatusAccepted)
}

func isIncoming(st model.CallState) bool { return st == model.StateIncoming }

func (s *Server) handleAnswer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CallbackURI        string             `json:"callbackUri"`
		AcceptedModalities []string           `json:"acceptedModalities"`
		MediaConfig        *model.MediaConfig `json:"mediaConfig"`
		CallOptions        *model.CallOptions `json:"callOptions"`
	}
	s.stateAction(w, r, EventAnswer, &body, func() string {
		switch {
		case len(body.AcceptedModalities) == 0:
			return "acceptedModalities is required"
		case body.MediaConfig == nil:
			return "mediaConfig is required"
		}
		return ""
	}, isIncoming, func(cs *callState) {
		c := &cs.call
		c.State = model.StateEstablishing
		c.MediaConfig = body.MediaConfig
		if body.CallbackURI != "" {
			c.CallbackURI = body.CallbackURI
		}
		if body.CallOptions != nil {
			c.CallOptions = body.CallOptions
		}
		s.startAnsweredLocked(cs, body.AcceptedModalities)
	})
}

func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason      string `json:"reason"`
		CallbackURI string `json:"callbackUri"`
	}
	s.stateAction(w, r, EventReject, &body, func() string {
		if body.Reason == "" || slices.ContainsFunc(model.RejectReasons, func(v string) bool { return strings.EqualFold(v, body.Reason) }) {
			return ""
		}
		return "reason must be " + strings.Join(model.RejectReasons, ", ")
	}, isIncoming, func(cs *callState) {
		if body.CallbackURI != "" {
			cs.call.CallbackURI = body.CallbackURI
		}
		r := resultDeclined
		switch strings.ToLower(body.Reason) {
		case model.RejectBusy:
			r = resultBusy
		case model.RejectForbidden:
			r = resultRejectForbidden
		}
		s.endLocked(cs, r, s.step(), false)
	})
}

func (s *Server) handleRedirect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Targets     []model.InvitationParticipantInfo `json:"targets"`
		Timeout     int                               `json:"timeout"`
		CallbackURI string                            `json:"callbackUri"`
	}
	s.stateAction(w, r, EventRedirect, &body, func() string {
		switch {
		case len(body.Targets) == 0:
			return "targets is required"
		case body.Timeout != 0 && (body.Timeout < 15 || body.Timeout > 90):
			return "timeout must be between 15 and 90 seconds"
		}
		return ""
	}, isIncoming, func(cs *callState) {
		if body.CallbackURI != "" {
			cs.call.CallbackURI = body.CallbackURI
		}
		cs.call.State = model.StateRedirecting
		s.endLocked(cs, resultRedirected, s.step(), false)
		cs.call.State = model.StateRedirecting
	})
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TransferTarget *model.InvitationParticipantInfo `json:"transferTarget"`
		Transferee     *model.ParticipantInfo           `json:"transferee"`
	}
	s.stateAction(w, r, EventTransfer, &body, func() string {
		if body.TransferTarget == nil || body.TransferTarget.Identity == nil {
			return "transferTarget is required"
		}
		return ""
	}, func(st model.CallState) bool {
		return st == model.StateEstablished || st == model.StateEstablishing || st == model.StateHold
	}, func(cs *callState) {
		cs.call.State = model.StateTransferring
		s.startTransferLocked(cs, body.TransferTarget.Identity)
	})
}

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request) {
	raw := rawBody(r)
	var body struct {
		Participants  []model.InvitationParticipantInfo `json:"participants"`
		ClientContext string                            `json:"clientContext"`
	}
	if !s.decodeChecked(w, r, &body, nil) {
		return
	}
	switch {
	case len(body.Participants) == 0:
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "participants is required")
		return
	case utf8.RuneCountInString(body.ClientContext) > 256:
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "clientContext exceeds 256 characters")
		return
	}
	if slices.ContainsFunc(body.Participants, func(p model.InvitationParticipantInfo) bool { return p.ParticipantID != "" }) {
		// Graph (participant: invite, example "Move one participant"): "If
		// you provide more than one participant in the request body, the
		// invite API will move only the first one."
		body.Participants = body.Participants[:1]
	}
	op := model.Operation{
		ODataType:     model.ODataInviteParticipantsOp,
		Status:        model.OpRunning,
		ClientContext: body.ClientContext,
		Participants:  body.Participants,
	}
	call, ok := s.changeCall(w, r, func(cs *callState) string {
		if problem := inviteProblemLocked(cs, body.Participants); problem != "" {
			return problem
		}
		op.ID = s.newIDLocked()
		s.storeOpLocked(cs, op)
		s.startInviteLocked(cs, op, len(body.Participants) > 1)
		return ""
	})
	if !ok {
		return
	}
	s.emit(Event{Kind: EventInvite, CallID: call.ID, Call: call, Operation: &op, Body: raw})
	w.Header().Set("Location", callURL(r, call.ID)+"/operations/"+url.PathEscape(op.ID))
	writeEntity(w, r, http.StatusOK, op, "communications/calls('"+call.ID+"')/operations/$entity")
}

func (s *Server) handleListParticipants(w http.ResponseWriter, r *http.Request) {
	skip := 0
	if v := r.URL.Query().Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", "invalid $skiptoken")
			return
		}
		skip = n
	}
	var roster []model.Participant
	call, ok := s.withCall(w, r, true, func(cs *callState) bool {
		roster = append(roster, cs.participants...)
		return true
	})
	if !ok {
		return
	}
	skip = min(skip, len(roster))
	page := roster[skip:]
	next := ""
	if n := s.opts.PageSize; n > 0 && len(page) > n {
		page = page[:n]
		next = callURL(r, call.ID) + "/participants?$skiptoken=" + strconv.Itoa(skip+n)
	}
	if page == nil {
		page = []model.Participant{}
	}
	out := map[string]any{
		"@odata.context": serviceRoot(r) + "/$metadata#communications/calls('" + call.ID + "')/participants",
		"value":          page,
	}
	if next != "" {
		out["@odata.nextLink"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetOperation(w http.ResponseWriter, r *http.Request) {
	opID := r.PathValue("opId")
	var op model.Operation
	var found bool
	call, ok := s.withCall(w, r, true, func(cs *callState) bool {
		op, found = cs.operations[opID]
		return true
	})
	if !ok {
		return
	}
	if !found {
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "Operation "+opID+" not found.")
		return
	}
	writeEntity(w, r, http.StatusOK, op, "communications/calls('"+call.ID+"')/operations/$entity")
}

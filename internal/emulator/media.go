package emulator

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/botd/botd/internal/model"
)

// Media and participant actions: playPrompt, recordResponse,
// subscribeToTone, sendDtmfTones, cancelMediaProcessing, mute, unmute,
// updateRecordingStatus, changeScreenSharingRole, and per participant
// mute, remove, startHoldMusic and stopHoldMusic. Each action that
// returns a commsOperation answers with it (status running) and later
// posts its end as a "deleted" notification at .../operations/{id}, like
// an invite.

// Limits of media requests and of what a call keeps.
const (
	// maxPrompts is Graph's limit of prompts in one playPrompt.
	maxPrompts = 20
	// maxOperations bounds the operations one call keeps; the oldest are
	// forgotten (GET answers 404 for them).
	maxOperations = 1000
	// maxRecordings bounds the recordings the emulator serves; the oldest
	// are forgotten.
	maxRecordings = 1000
	// maxDtmfTones bounds the tones of one sendDtmfTones.
	maxDtmfTones = 100
	// defaultRecordSeconds is Graph's default of initialSilenceTimeout,
	// maxSilenceTimeout and maxRecordDuration.
	defaultRecordSeconds = 5
)

// mediaKind is what a running media operation does.
type mediaKind uint8

const (
	mediaPlay mediaKind = iota
	mediaRecord
	mediaDtmf
)

// mediaRun is a running playPrompt, recordResponse or sendDtmfTones.
type mediaRun struct {
	op    model.Operation
	kind  mediaKind
	timer uint64
	// recording is set once a recordResponse's prompts have played and it
	// records; stopTones are the tones that end it.
	recording bool
	stopTones []model.Tone
}

// recording is a recorded response the emulator serves at
// /emulator/recordings/{id} to whoever holds its token.
type recording struct {
	id, token string
	data      []byte
}

var (
	resultActionCompleted = model.ResultInfo{Code: 200, Subcode: 0, Message: "Action completed."}
	resultActionCanceled  = model.ResultInfo{Code: 400, Subcode: 8508, Message: "Action failed, the operation was canceled."}
)

// storeOpLocked stores an operation of a call, forgetting the oldest
// beyond maxOperations. Callers hold s.mu.
func (s *Server) storeOpLocked(cs *callState, op model.Operation) {
	if _, ok := cs.operations[op.ID]; !ok {
		cs.opOrder = append(cs.opOrder, op.ID)
	}
	cs.operations[op.ID] = op
	if n := len(cs.opOrder) - maxOperations; n > 0 {
		for _, id := range cs.opOrder[:n] {
			delete(cs.operations, id)
		}
		cs.opOrder = slices.Delete(cs.opOrder, 0, n)
	}
}

// updateOpLocked stores a changed operation if the call still keeps it.
// Callers hold s.mu.
func (s *Server) updateOpLocked(cs *callState, op model.Operation) {
	if _, ok := cs.operations[op.ID]; ok {
		cs.operations[op.ID] = op
	}
}

// mediaOpData is a media or participant operation as its notification
// carries it.
type mediaOpData struct {
	ODataType            string                `json:"@odata.type"`
	Status               model.OperationStatus `json:"status"`
	ClientContext        string                `json:"clientContext,omitempty"`
	ResultInfo           *model.ResultInfo     `json:"resultInfo,omitempty"`
	CompletionReason     string                `json:"completionReason,omitempty"`
	RecordingLocation    string                `json:"recordingLocation,omitempty"`
	RecordingAccessToken string                `json:"recordingAccessToken,omitempty"`
	ID                   string                `json:"id"`
}

// notifyMediaOpLocked posts an operation's end: "deleted" at
// /operations/{id}. Callers hold s.mu.
func (s *Server) notifyMediaOpLocked(cs *callState, op model.Operation) {
	d := mediaOpData{ODataType: op.ODataType, Status: op.Status, ClientContext: op.ClientContext, ResultInfo: op.ResultInfo,
		CompletionReason: op.CompletionReason, RecordingLocation: op.RecordingLocation,
		RecordingAccessToken: op.RecordingAccessToken, ID: op.ID}
	s.sendLocked(cs, itemLocked(cs, model.ChangeDeleted, "/operations/"+op.ID, d))
}

// completeOpLocked marks op completed, stores it and posts its end. An
// injected FaultOperation makes it fail instead (status failed, resultInfo
// 500/9999, no completion reason or recording); it then reports false,
// and the action has no effect. Callers hold s.mu.
func (s *Server) completeOpLocked(cs *callState, op model.Operation) bool {
	op.Status = model.OpCompleted
	if op.ResultInfo == nil {
		r := resultInfo(resultActionCompleted)
		op.ResultInfo = &r
	}
	ok := true
	if !cs.ended && s.injectLocked(FaultOperation, cs.faultRNG) {
		r := resultInfo(resultOperationFault)
		op.Status, op.ResultInfo, ok = model.OpFailed, &r, false
		op.CompletionReason, op.RecordingLocation, op.RecordingAccessToken = "", "", ""
	}
	s.updateOpLocked(cs, op)
	if !cs.ended {
		s.notifyMediaOpLocked(cs, op)
	}
	return ok && !cs.ended
}

// opBody is the part every media request body shares.
type opBody struct {
	ClientContext string `json:"clientContext"`
}

func (b opBody) problem() string {
	if utf8.RuneCountInString(b.ClientContext) > 256 {
		return "clientContext exceeds 256 characters"
	}
	return ""
}

func promptsProblem(ps []model.MediaPrompt, required bool) string {
	switch {
	case required && len(ps) == 0:
		return "prompts is required"
	case len(ps) > maxPrompts:
		return "A maximum of " + strconv.Itoa(maxPrompts) + " prompts can be played in one request."
	}
	for i, p := range ps {
		if p.MediaInfo == nil || p.MediaInfo.URI == "" {
			return "prompts[" + strconv.Itoa(i) + "].mediaInfo.uri is required"
		}
	}
	return ""
}

func stopTones(keys []string) []model.Tone {
	out := make([]model.Tone, len(keys))
	for i, k := range keys {
		out[i] = model.ParseTone(k)
	}
	return out
}

func tonesProblem(field string, ts []model.Tone) string {
	for i, t := range ts {
		if !slices.Contains(model.Tones, t) {
			return fmt.Sprintf("%s[%d]: %q is not a tone", field, i, trunc(string(t)))
		}
	}
	return ""
}

// opAction handles an action that returns an operation: decode body,
// check it, then, under the lock, start (which may refuse with a problem)
// and answer status with the running operation.
func (s *Server) opAction(w http.ResponseWriter, r *http.Request, status int, odataType string, body any, ctx func() string,
	check func() string, start func(cs *callState, op model.Operation) string) {
	if !s.decodeChecked(w, r, body, check) {
		return
	}
	op := model.Operation{ODataType: odataType, Status: model.OpRunning, ClientContext: ctx()}
	call, ok := s.changeCall(w, r, func(cs *callState) string {
		op.ID = s.newIDLocked()
		return start(cs, op)
	})
	if !ok {
		return
	}
	w.Header().Set("Location", callURL(r, call.ID)+"/operations/"+url.PathEscape(op.ID))
	writeEntity(w, r, status, op, "communications/calls('"+call.ID+"')/operations/$entity")
}

// errNoParticipant is the problem a start function (or any changeCall
// function) reports for a participant the call does not hold: 404.
const errNoParticipant = "\x00no participant"

func (s *Server) handlePlayPrompt(w http.ResponseWriter, r *http.Request) {
	var body struct {
		opBody
		Prompts []model.MediaPrompt `json:"prompts"`
	}
	s.opAction(w, r, http.StatusOK, model.ODataPlayPromptOp, &body, func() string { return body.ClientContext }, func() string {
		if p := body.problem(); p != "" {
			return p
		}
		return promptsProblem(body.Prompts, true)
	}, func(cs *callState, op model.Operation) string {
		s.storeOpLocked(cs, op)
		run := &mediaRun{op: op, kind: mediaPlay}
		cs.media = append(cs.media, run)
		run.timer = s.afterLocked(s.promptsDuration(len(body.Prompts)), func() {
			run.timer = 0
			s.finishMediaLocked(cs, run, model.CompletedSuccessfully)
		})
		return ""
	})
}

func (s *Server) promptsDuration(n int) time.Duration {
	return s.scaled(time.Duration(n) * s.opts.Timing.Prompt)
}

func (s *Server) handleRecordResponse(w http.ResponseWriter, r *http.Request) {
	var body struct {
		opBody
		Prompts               []model.MediaPrompt `json:"prompts"`
		BargeInAllowed        bool                `json:"bargeInAllowed"`
		InitialSilenceTimeout *int                `json:"initialSilenceTimeoutInSeconds"`
		MaxSilenceTimeout     *int                `json:"maxSilenceTimeoutInSeconds"`
		MaxRecordDuration     *int                `json:"maxRecordDurationInSeconds"`
		PlayBeep              bool                `json:"playBeep"`
		StopTones             []string            `json:"stopTones"` // keypad characters, as Graph's page writes them, or tone names
	}
	s.opAction(w, r, http.StatusOK, model.ODataRecordOp, &body, func() string { return body.ClientContext }, func() string {
		if p := body.problem(); p != "" {
			return p
		}
		if p := promptsProblem(body.Prompts, false); p != "" {
			return p
		}
		for _, f := range []struct {
			name string
			v    *int
		}{{"initialSilenceTimeoutInSeconds", body.InitialSilenceTimeout}, {"maxSilenceTimeoutInSeconds", body.MaxSilenceTimeout},
			{"maxRecordDurationInSeconds", body.MaxRecordDuration}} {
			if f.v != nil && *f.v < 1 {
				return f.name + " must be at least 1"
			}
		}
		return tonesProblem("stopTones", stopTones(body.StopTones))
	}, func(cs *callState, op model.Operation) string {
		s.storeOpLocked(cs, op)
		run := &mediaRun{op: op, kind: mediaRecord, stopTones: stopTones(body.StopTones)}
		cs.media = append(cs.media, run)
		maxDur := defaultRecordSeconds
		if body.MaxRecordDuration != nil {
			maxDur = *body.MaxRecordDuration
		}
		run.timer = s.afterLocked(s.promptsDuration(len(body.Prompts)), func() {
			if cs.ended {
				return
			}
			run.recording = true
			run.timer = s.afterLocked(s.scaled(time.Duration(maxDur)*time.Second), func() {
				run.timer = 0
				s.finishMediaLocked(cs, run, model.RecordMaxDurationReached)
			})
			s.pressScriptedTonesLocked(cs)
		})
		return ""
	})
}

func (s *Server) handleSubscribeToTone(w http.ResponseWriter, r *http.Request) {
	s.plainOp(w, r, http.StatusOK, model.ODataSubscribeToToneOp,
		func(cs *callState, op model.Operation) string {
			s.storeOpLocked(cs, op)
			s.afterLocked(s.step(), func() {
				if s.completeOpLocked(cs, op) {
					cs.toneSubscribed = true
				}
			})
			return ""
		})
}

// plainOp is opAction for an action whose body is only an opBody.
func (s *Server) plainOp(w http.ResponseWriter, r *http.Request, status int, odataType string,
	start func(cs *callState, op model.Operation) string) {
	var body opBody
	s.opAction(w, r, status, odataType, &body, func() string { return body.ClientContext }, func() string { return body.problem() }, start)
}

func (s *Server) handleSendDtmfTones(w http.ResponseWriter, r *http.Request) {
	var body struct {
		opBody
		Tones               []model.Tone `json:"tones"`
		DelayBetweenTonesMs *int         `json:"delayBetweenTonesMs"`
	}
	s.opAction(w, r, http.StatusOK, model.ODataSendDtmfTonesOp, &body, func() string { return body.ClientContext }, func() string {
		switch {
		case body.problem() != "":
			return body.problem()
		case len(body.Tones) == 0:
			return "tones is required"
		case len(body.Tones) > maxDtmfTones:
			return "A maximum of " + strconv.Itoa(maxDtmfTones) + " tones can be sent in one request."
		case body.DelayBetweenTonesMs != nil && *body.DelayBetweenTonesMs < 0:
			return "delayBetweenTonesMs must not be negative"
		}
		return tonesProblem("tones", body.Tones)
	}, func(cs *callState, op model.Operation) string {
		s.storeOpLocked(cs, op)
		run := &mediaRun{op: op, kind: mediaDtmf}
		cs.media = append(cs.media, run)
		gap := time.Duration(0)
		if body.DelayBetweenTonesMs != nil {
			gap = time.Duration(*body.DelayBetweenTonesMs) * time.Millisecond
		}
		d := time.Duration(len(body.Tones))*s.opts.Timing.Tone + time.Duration(len(body.Tones)-1)*gap
		run.timer = s.afterLocked(s.scaled(d), func() {
			run.timer = 0
			s.finishMediaLocked(cs, run, model.CompletedSuccessfully)
		})
		return ""
	})
}

func (s *Server) handleCancelMediaProcessing(w http.ResponseWriter, r *http.Request) {
	s.plainOp(w, r, http.StatusOK, model.ODataCancelMediaProcessingOp,
		func(cs *callState, op model.Operation) string {
			s.storeOpLocked(cs, op)
			// What runs now is cancelled, in the order it was started; then
			// the cancel operation itself completes.
			runs := append([]*mediaRun(nil), cs.media...)
			s.afterLocked(s.step(), func() {
				for _, run := range runs {
					reason := model.MediaOperationCanceled
					if run.kind == mediaRecord {
						reason = model.RecordOperationCanceled
					}
					s.finishMediaLocked(cs, run, reason)
				}
				s.completeOpLocked(cs, op)
			})
			return ""
		})
}

// finishMediaLocked ends a running media operation with a completion
// reason, unless it has ended already: a completed recordResponse gets a
// recording; a completed prompt makes scripted people press their keys.
// Callers hold s.mu.
func (s *Server) finishMediaLocked(cs *callState, run *mediaRun, reason string) {
	i := slices.Index(cs.media, run)
	if i < 0 {
		return
	}
	cs.media = slices.Delete(cs.media, i, i+1)
	s.stopTimerLocked(run.timer)
	run.timer = 0
	op := run.op
	op.CompletionReason = reason
	canceled := reason == model.MediaOperationCanceled || reason == model.RecordOperationCanceled
	r := resultInfo(resultActionCompleted)
	if canceled {
		r = resultInfo(resultActionCanceled)
	}
	op.ResultInfo = &r
	var rec *recording
	if run.kind == mediaRecord && !canceled {
		rec = s.newRecordingLocked()
		op.RecordingLocation = s.url + "/emulator/recordings/" + rec.id
		op.RecordingAccessToken = rec.token
	}
	if !s.completeOpLocked(cs, op) {
		if rec != nil {
			delete(s.recordings, rec.id)
		}
		return
	}
	if run.kind == mediaPlay && reason == model.CompletedSuccessfully {
		s.pressScriptedTonesLocked(cs)
	}
}

// newRecordingLocked stores a recording: a short WAV of silence, with a
// random access token. Callers hold s.mu.
func (s *Server) newRecordingLocked() *recording {
	tok := make([]byte, 32)
	_, _ = rngReader{s.idRNG}.Read(tok)
	rec := &recording{id: s.newIDLocked(), token: hex.EncodeToString(tok), data: silentWAV(800)}
	if s.recordings == nil {
		s.recordings = map[string]*recording{}
	}
	s.recordings[rec.id] = rec
	s.recordingOrder = append(s.recordingOrder, rec.id)
	if n := len(s.recordingOrder) - maxRecordings; n > 0 {
		for _, id := range s.recordingOrder[:n] {
			delete(s.recordings, id)
		}
		s.recordingOrder = slices.Delete(s.recordingOrder, 0, n)
	}
	return rec
}

// silentWAV is a PCM WAV file of n samples of silence (8 kHz, 16-bit,
// mono).
func silentWAV(n int) []byte {
	data := n * 2
	b := make([]byte, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	return b
}

func (s *Server) handleRecording(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	tok, _ := cutBearer(r.Header.Get("Authorization"))
	s.mu.Lock()
	rec := s.recordings[id]
	s.mu.Unlock()
	switch {
	case rec == nil:
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "Recording "+id+" not found.")
	case tok == "" || tok != rec.token:
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "The recordingAccessToken is missing or wrong.")
	default:
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("Content-Length", strconv.Itoa(len(rec.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(rec.data)
	}
}

func cutBearer(h string) (string, bool) {
	if len(h) > 7 && (h[:7] == "Bearer " || h[:7] == "bearer ") {
		return h[7:], true
	}
	return "", false
}

// pressScriptedTonesLocked makes every scripted person in the call with
// tones press them: the first key tonesAfter from now, each next one a
// Timing.Step later. Callers hold s.mu.
func (s *Server) pressScriptedTonesLocked(cs *callState) {
	for _, p := range cs.participants {
		if p.ID == cs.call.MyParticipantID {
			continue
		}
		sc, ok := s.scriptForLocked(p.Info.Identity)
		if !ok || sc.tones == "" {
			continue
		}
		pid := p.ID
		at := s.scaled(sc.tonesAfter)
		for i := 0; i < len(sc.tones); i++ {
			tone, _ := model.ToneForKey(sc.tones[i])
			s.afterLocked(at, func() { s.pressLocked(cs, pid, tone) })
			at += s.step()
		}
	}
}

// pressLocked is one key press by participant pid: a call update with
// toneInfo if the bot subscribed to tones, and the end of a recording
// that stops on this tone. Callers hold s.mu.
func (s *Server) pressLocked(cs *callState, pid string, tone model.Tone) {
	if cs.ended || !slices.ContainsFunc(cs.participants, func(p model.Participant) bool { return p.ID == pid }) {
		return
	}
	if cs.toneSubscribed {
		cs.toneSeq++
		c := cs.call
		c.ToneInfo = &model.ToneInfo{ODataType: model.ODataToneInfo, SequenceID: cs.toneSeq, Tone: tone}
		s.sendCallLocked(cs, c, model.ChangeUpdated)
	}
	for _, run := range append([]*mediaRun(nil), cs.media...) {
		if run.kind == mediaRecord && run.recording && slices.Contains(run.stopTones, tone) {
			s.finishMediaLocked(cs, run, model.RecordStopToneDetected)
		}
	}
}

// participantIndexLocked finds participant pid of the call, or -1.
func participantIndexLocked(cs *callState, pid string) int {
	return slices.IndexFunc(cs.participants, func(p model.Participant) bool { return p.ID == pid })
}

// setMutedLocked flips a participant's isMuted and posts the roster.
// Callers hold s.mu.
func (s *Server) setMutedLocked(cs *callState, pid string, muted bool) {
	if i := participantIndexLocked(cs, pid); i >= 0 && !cs.ended {
		cs.participants[i].IsMuted = muted
		s.notifyRosterLocked(cs, []model.Participant{cs.participants[i]}, nil)
	}
}

func (s *Server) handleMute(w http.ResponseWriter, r *http.Request)   { s.muteSelf(w, r, true) }
func (s *Server) handleUnmute(w http.ResponseWriter, r *http.Request) { s.muteSelf(w, r, false) }

// muteSelf mutes or unmutes the bot: the operation completes, then the
// roster shows the bot's isMuted.
func (s *Server) muteSelf(w http.ResponseWriter, r *http.Request, muted bool) {
	typ := model.ODataMuteParticipantOp
	if !muted {
		typ = model.ODataUnmuteParticipantOp
	}
	s.plainOp(w, r, http.StatusOK, typ,
		func(cs *callState, op model.Operation) string {
			s.storeOpLocked(cs, op)
			s.afterLocked(s.step(), func() {
				if s.completeOpLocked(cs, op) {
					s.setMutedLocked(cs, cs.call.MyParticipantID, muted)
				}
			})
			return ""
		})
}

func (s *Server) handleMuteParticipant(w http.ResponseWriter, r *http.Request) {
	pid := r.PathValue("pid")
	s.plainOp(w, r, http.StatusOK, model.ODataMuteParticipantOp,
		func(cs *callState, op model.Operation) string {
			if participantIndexLocked(cs, pid) < 0 {
				return errNoParticipant
			}
			s.storeOpLocked(cs, op)
			s.afterLocked(s.step(), func() {
				if s.completeOpLocked(cs, op) {
					s.setMutedLocked(cs, pid, true)
				}
			})
			return ""
		})
}

// setHoldLocked puts a participant on hold (its media streams inactive)
// or back (sendReceive) and posts the roster. Callers hold s.mu.
func (s *Server) setHoldLocked(cs *callState, pid string, hold bool) {
	i := participantIndexLocked(cs, pid)
	if i < 0 || cs.ended {
		return
	}
	p := &cs.participants[i]
	streams := slices.Clone(p.MediaStreams)
	for j := range streams {
		streams[j].Direction = "sendReceive"
		if hold {
			streams[j].Direction = "inactive"
		}
	}
	p.MediaStreams = streams
	if hold {
		cs.held = pid
	} else if cs.held == pid {
		cs.held = ""
	}
	s.notifyRosterLocked(cs, []model.Participant{*p}, nil)
}

func (s *Server) handleStartHoldMusic(w http.ResponseWriter, r *http.Request) {
	var body struct {
		opBody
		CustomPrompt *model.MediaPrompt `json:"customPrompt"`
	}
	pid := r.PathValue("pid")
	s.opAction(w, r, http.StatusAccepted, model.ODataStartHoldMusicOp, &body, func() string { return body.ClientContext }, func() string {
		if p := body.problem(); p != "" {
			return p
		}
		if body.CustomPrompt != nil {
			return promptsProblem([]model.MediaPrompt{*body.CustomPrompt}, false)
		}
		return ""
	}, func(cs *callState, op model.Operation) string {
		switch {
		case participantIndexLocked(cs, pid) < 0:
			return errNoParticipant
		case cs.held != "" && cs.held != pid:
			return "Only one participant can be placed on hold at any given time."
		}
		cs.held = pid
		s.storeOpLocked(cs, op)
		s.afterLocked(s.step(), func() {
			if s.completeOpLocked(cs, op) {
				s.setHoldLocked(cs, pid, true)
			} else if cs.held == pid {
				cs.held = ""
			}
		})
		return ""
	})
}

func (s *Server) handleStopHoldMusic(w http.ResponseWriter, r *http.Request) {
	pid := r.PathValue("pid")
	s.plainOp(w, r, http.StatusAccepted, model.ODataStopHoldMusicOp,
		func(cs *callState, op model.Operation) string {
			switch {
			case participantIndexLocked(cs, pid) < 0:
				return errNoParticipant
			case cs.held != pid:
				return "Participant " + pid + " is not on hold."
			}
			cs.held = ""
			s.storeOpLocked(cs, op)
			s.afterLocked(s.step(), func() {
				if s.completeOpLocked(cs, op) {
					s.setHoldLocked(cs, pid, false)
				} else if cs.held == "" && participantIndexLocked(cs, pid) >= 0 {
					cs.held = pid // still on hold
				}
			})
			return ""
		})
}

func (s *Server) handleUpdateRecordingStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		opBody
		Status model.RecordingStatus `json:"status"`
	}
	s.opAction(w, r, http.StatusOK, model.ODataUpdateRecordingStatusOp, &body, func() string { return body.ClientContext }, func() string {
		switch {
		case body.problem() != "":
			return body.problem()
		case body.Status == "":
			return "status is required"
		case !slices.Contains(model.RecordingStatuses, body.Status):
			return fmt.Sprintf("status %q must be notRecording, recording or failed", trunc(string(body.Status)))
		}
		return ""
	}, func(cs *callState, op model.Operation) string {
		s.storeOpLocked(cs, op)
		st := body.Status
		s.afterLocked(s.step(), func() {
			if s.completeOpLocked(cs, op) {
				cs.recordingStatus = st
			}
		})
		return ""
	})
}

func (s *Server) handleChangeScreenSharingRole(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role model.ScreenSharingRole `json:"role"`
	}
	if !s.decodeChecked(w, r, &body, func() string {
		if !slices.Contains(model.ScreenSharingRoles, body.Role) {
			return fmt.Sprintf("role %q must be viewer or sharer", trunc(string(body.Role)))
		}
		return ""
	}) {
		return
	}
	if _, ok := s.withCall(w, r, false, func(cs *callState) bool {
		role := body.Role
		s.afterLocked(s.step(), func() {
			if cs.ended {
				return
			}
			cs.screenSharingRole = role
			if i := participantIndexLocked(cs, cs.call.MyParticipantID); i >= 0 {
				s.notifyRosterLocked(cs, []model.Participant{cs.participants[i]}, nil)
			} else {
				s.notifyRosterLocked(cs, nil, nil)
			}
		})
		return true
	}); !ok {
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// removeLocked takes the participant at i out of the roster and, after a
// step, posts the roster without them. Callers hold s.mu.
func (s *Server) removeLocked(cs *callState, i int) {
	gone := cs.participants[i]
	cs.participants = slices.Delete(cs.participants, i, i+1)
	if cs.held == gone.ID {
		cs.held = ""
	}
	s.afterLocked(s.step(), func() {
		if !cs.ended {
			s.notifyRosterLocked(cs, nil, []model.Participant{gone})
		}
	})
}

// Leave makes a participant other than the bot leave a live call on
// their own, as when someone leaves a meeting: after a step the bot gets
// the roster without them. The call goes on, even with the bot alone (to
// end a peer-to-peer call from the far side, use EndCall). It reports
// false if there is no such live call or participant, or pid is the
// bot's.
func (s *Server) Leave(callID, pid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.liveCallLocked(callID)
	if cs == nil || s.stopping || pid == cs.call.MyParticipantID {
		return false
	}
	i := participantIndexLocked(cs, pid)
	if i < 0 {
		return false
	}
	s.removeLocked(cs, i)
	return true
}

// handleLeave is DELETE /emulator/calls/{id}/participants/{pid}: the
// participant leaves on their own (Leave). 204, or 404 when there is no
// such live call or participant other than the bot.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	id, pid := r.PathValue("id"), r.PathValue("pid")
	if !s.Leave(id, pid) {
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "No participant "+trunc(pid)+" other than the bot in live call "+trunc(id)+".")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleEndCall is DELETE /emulator/calls/{id}: the far side ends the
// live call, as when the person in a peer-to-peer call hangs up
// (EndCall). 204, or 404 when there is no such live call.
func (s *Server) handleEndCall(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.EndCall(id, nil) {
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "No live call "+trunc(id)+".")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleRemoveParticipant(w http.ResponseWriter, r *http.Request) {
	pid := r.PathValue("pid")
	inCall := false
	_, ok := s.withCall(w, r, false, func(cs *callState) bool {
		inCall = true
		i := participantIndexLocked(cs, pid)
		if i < 0 {
			return false
		}
		s.removeLocked(cs, i)
		return true
	})
	switch {
	case !inCall: // withCall answered 404
	case !ok:
		s.graphError(w, r, http.StatusNotFound, "itemNotFound", "Participant "+pid+" not found.")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

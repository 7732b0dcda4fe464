package callstate

import (
	"fmt"
	"strings"

	"github.com/botd/botd/internal/model"
)

// opTypesByOData names the operation types Graph's notifications carry.
var opTypesByOData = map[string]string{
	"inviteParticipantsOperation":      "invite",
	"muteParticipantOperation":         "mute",
	"unmuteParticipantOperation":       "unmute",
	"playPromptOperation":              "playPrompt",
	"recordOperation":                  "recordResponse",
	"cancelMediaProcessingOperation":   "cancelMediaProcessing",
	"subscribeToToneOperation":         "subscribeToTone",
	"sendDtmfTonesOperation":           "sendDtmfTones",
	"updateRecordingStatusOperation":   "updateRecordingStatus",
	"addLargeGalleryViewOperation":     "addLargeGalleryView",
	"startHoldMusicOperation":          "startHoldMusic",
	"stopHoldMusicOperation":           "stopHoldMusic",
	"commsOperation":                   "operation",
	"changeScreenSharingRoleOperation": "changeScreenSharingRole",
}

// botdActions are the operation types of actions Graph answers with no
// commsOperation (a 202 or 204), tracked by botd all the same.
var botdActions = []string{"answer", "reject", "redirect", "transfer", "hangup", "keepAlive", "removeParticipant"}

// opTypeFromOData returns the type for an operation's @odata.type: a known
// name, else the type name itself (metrics count it as "other").
func opTypeFromOData(t string) string {
	name := strings.TrimPrefix(t, "#microsoft.graph.")
	if typ, ok := opTypesByOData[name]; ok {
		return typ
	}
	if name == "" {
		return "operation"
	}
	return name
}

// notAnOperationID lists path segments that stand where an operation id
// would, but are not one (invite example 2's ".../operations/participants").
var notAnOperationID = map[string]bool{"participants": true, "operations": true, "": true}

// opByIDLocked returns c's operation with the id.
func (c *call) opByIDLocked(id string) *OperationView {
	for i := len(c.ops) - 1; i >= 0; i-- {
		if c.ops[i].ID == id {
			return c.ops[i]
		}
	}
	return nil
}

// opByContextLocked returns the oldest pending operation with the client
// context; with idless, only one Graph has not yet given an id.
func (c *call) opByContextLocked(cc string, idless bool) *OperationView {
	if cc == "" {
		return nil
	}
	for _, op := range c.ops {
		if op.ClientContext == cc && !op.Status.Final() && (!idless || op.ID == "") {
			return op
		}
	}
	return nil
}

// lastOpByContextLocked returns the newest operation with the client
// context, whatever its status and id.
func (c *call) lastOpByContextLocked(cc string) *OperationView {
	if cc == "" {
		return nil
	}
	for i := len(c.ops) - 1; i >= 0; i-- {
		if c.ops[i].ClientContext == cc {
			return c.ops[i]
		}
	}
	return nil
}

// opAwaitingIDLocked returns the oldest operation with the client context
// that Graph has not yet given an id, whatever its status: an id-less
// notification (invite example 2) may have finished it already.
func (c *call) opAwaitingIDLocked(cc string) *OperationView {
	if cc == "" {
		return nil
	}
	for _, op := range c.ops {
		if op.ClientContext == cc && op.ID == "" {
			return op
		}
	}
	return nil
}

// addOpLocked appends op, evicting the oldest finished operation when the
// call has MaxOperationsPerCall; it reports false when all are pending.
func (s *Store) addOpLocked(c *call, op *OperationView) bool {
	if len(c.ops) >= s.cfg.MaxOperationsPerCall {
		evict := -1
		for i, o := range c.ops {
			if o.Status.Final() {
				evict = i
				break
			}
		}
		if evict < 0 {
			return false
		}
		copy(c.ops[evict:], c.ops[evict+1:])
		c.ops[len(c.ops)-1] = nil
		c.ops = c.ops[:len(c.ops)-1]
	}
	c.ops = append(c.ops, op)
	return true
}

func (c *call) removeOpLocked(op *OperationView) {
	for i, o := range c.ops {
		if o == op {
			copy(c.ops[i:], c.ops[i+1:])
			c.ops[len(c.ops)-1] = nil
			c.ops = c.ops[:len(c.ops)-1]
			return
		}
	}
}

// finishOpLocked gives op its final status and reports it.
func (s *Store) finishOpLocked(c *call, a *applyCtx, op *OperationView, status model.OperationStatus, result *model.ResultInfo, why string) {
	op.Status = status
	if result != nil {
		op.ResultInfo = result
	}
	op.CompletedAt = a.now
	op.FailureReason = why
	label := string(status)
	if why == opLabelTimeout {
		label = opLabelTimeout
	}
	typ := opTypeLabel(op.Type)
	s.m.operations.WithLabelValues(typ, label).Inc()
	if op.SentByBot {
		s.m.opLatency.WithLabelValues(typ).Observe(a.now.Sub(op.CreatedAt).Seconds())
	}
	kind := OperationCompleted
	if status == model.OpFailed {
		kind = OperationFailed
	}
	view := *op
	a.add(Change{Kind: kind, Operation: &view, Reason: why})
	ev := c.log().Info()
	if kind == OperationFailed {
		ev = c.log().Warn()
	}
	ev.Str("op_id", op.ID).Str("op_type", op.Type).Str("status", string(status)).
		Str("reason", why).Str("completion_reason", op.CompletionReason).Func(a.logCause).Msg("operation finished")
}

// mergeMediaResult copies what a media operation's payload says of its
// result into op; absent members keep what op has.
func mergeMediaResult(op *OperationView, o *model.Operation) {
	if o.CompletionReason != "" {
		op.CompletionReason = o.CompletionReason
	}
	if o.RecordingLocation != "" {
		op.RecordingLocation = o.RecordingLocation
	}
	if o.RecordingAccessToken != "" {
		op.RecordingAccessToken = Secret(o.RecordingAccessToken)
	}
}

// finalStatus is the final status an operation payload says, if any: a
// deleted operation is over, failed if it says so or its result is an
// error code.
func finalStatus(ct model.ChangeType, op *model.Operation) (model.OperationStatus, bool) {
	status := op.Status.Normalize()
	if ct != model.ChangeDeleted && !status.Final() {
		return status, false
	}
	if status == model.OpFailed || (op.ResultInfo != nil && op.ResultInfo.Code >= 400) {
		return model.OpFailed, true
	}
	return model.OpCompleted, true
}

func (s *Store) applyOperationLocked(c *call, a *applyCtx, ev *model.Event) {
	o := ev.Operation
	id := o.ID
	if id == "" && ev.Path.Kind == model.ResourceOperation && !notAnOperationID[ev.Path.SubID] {
		id = ev.Path.SubID
	}
	status, final := finalStatus(ev.ChangeType, o)

	var op *OperationView
	if id != "" {
		op = c.opByIDLocked(id)
		if op == nil {
			// Sent by botd, and Graph's answer not yet handled.
			if op = c.opByContextLocked(o.ClientContext, true); op != nil {
				op.ID = id
			}
		}
	} else {
		// Invite example 2: no id; only the client context says which.
		// With no pending match, the newest finished one with that
		// context makes this a repeat, not an operation of its own.
		if op = c.opByContextLocked(o.ClientContext, false); op == nil {
			op = c.lastOpByContextLocked(o.ClientContext)
		}
	}
	if op == nil {
		// An operation botd did not send (or forgot): record it.
		odata := o.ODataType
		if odata == "" {
			odata = ev.ODataType
		}
		op = &OperationView{
			ID: id, Type: opTypeFromOData(odata), Status: model.OpRunning,
			ClientContext: o.ClientContext, CreatedAt: a.now,
		}
		if !s.addOpLocked(c, op) {
			s.ignoreLocked(c, a, reasonTooManyOperations)
			return
		}
	}
	if len(op.Participants) == 0 {
		op.Participants = o.Participants
	}
	if !op.Status.Final() {
		mergeMediaResult(op, o)
	}
	switch {
	case op.Status.Final() && final:
		s.ignoreLocked(c, a, reasonDuplicateOperation)
	case op.Status.Final():
		s.ignoreLocked(c, a, reasonOperationFinal)
	case final:
		s.finishOpLocked(c, a, op, status, o.ResultInfo, "")
	default:
		if status != "" {
			op.Status = status
		}
		if o.ResultInfo != nil {
			op.ResultInfo = o.ResultInfo
		}
	}
}

// TrackOperation records an operation botd is sending on a call, so that
// its notification can be matched (by id, or by client context while the id
// is unknown) and it can time out. Tracking an id already known merges.
func (s *Store) TrackOperation(callID string, rec OperationRecord) error {
	now := s.now()
	c, _, err := s.lockCall(callID, lockExisting, now)
	if err != nil {
		return fmt.Errorf("track %s operation on call %s: %w", rec.Type, callID, err)
	}
	defer c.mu.Unlock()
	if rec.ID != "" {
		if op := c.opByIDLocked(rec.ID); op != nil {
			op.SentByBot = true
			if rec.Type != "" {
				op.Type = rec.Type
			}
			if op.ClientContext == "" {
				op.ClientContext = rec.ClientContext
			}
			if len(op.Participants) == 0 {
				op.Participants = rec.Participants
			}
			return nil
		}
	}
	op := &OperationView{
		ID: rec.ID, Type: rec.Type, Status: model.OpNotStarted, ClientContext: rec.ClientContext,
		Participants: rec.Participants, SentByBot: true, CreatedAt: now,
	}
	if !s.addOpLocked(c, op) {
		s.m.ignored[reasonTooManyOperations].Inc()
		return fmt.Errorf("track %s operation on call %s: %w", rec.Type, callID, ErrTooManyOperations)
	}
	s.m.operations.WithLabelValues(opTypeLabel(rec.Type), opLabelSent).Inc()
	c.log().Debug().Str("op_id", rec.ID).Str("op_type", rec.Type).Str("client_context", rec.ClientContext).
		Msg("operation tracked")
	return nil
}

// OperationSent attaches Graph's answer to an operation botd tracked with
// the client context: its id and status. When the notification already
// finished the operation, its final status stays. A nil op means the action
// returns no operation (202 Accepted with no body: answer, reject...): the
// tracked operation is then completed at once, as nothing more will come.
// An answer for an operation never tracked is recorded.
func (s *Store) OperationSent(callID, clientContext string, op *model.Operation) []Change {
	now := s.now()
	c, _, err := s.lockCall(callID, lockExisting, now)
	if err != nil {
		return nil
	}
	a := &applyCtx{callID: callID, now: now, idx: -1, botd: "operation response"}
	if op == nil {
		if rec := c.opAwaitingIDLocked(clientContext); rec != nil && !rec.Status.Final() {
			s.finishOpLocked(c, a, rec, model.OpCompleted, nil, "")
		}
		return s.finishLocked(c, a)
	}
	if clientContext == "" {
		clientContext = op.ClientContext
	}
	placeholder := c.opAwaitingIDLocked(clientContext)
	var rec *OperationView
	if op.ID != "" {
		rec = c.opByIDLocked(op.ID)
	}
	switch {
	case rec != nil && placeholder != nil && placeholder != rec:
		// The notification came first and was recorded on its own: fold
		// what botd tracked into it.
		rec.SentByBot = true
		rec.Type = placeholder.Type
		rec.CreatedAt = placeholder.CreatedAt
		if rec.ClientContext == "" {
			rec.ClientContext = placeholder.ClientContext
		}
		if len(rec.Participants) == 0 {
			rec.Participants = placeholder.Participants
		}
		if placeholder.Status.Final() && !rec.Status.Final() {
			rec.Status, rec.ResultInfo = placeholder.Status, placeholder.ResultInfo
			rec.CompletedAt, rec.FailureReason = placeholder.CompletedAt, placeholder.FailureReason
			rec.CompletionReason, rec.RecordingLocation = placeholder.CompletionReason, placeholder.RecordingLocation
			rec.RecordingAccessToken = placeholder.RecordingAccessToken
		}
		c.removeOpLocked(placeholder)
	case rec == nil && placeholder != nil:
		rec = placeholder
		rec.ID = op.ID
	case rec == nil:
		rec = &OperationView{
			ID: op.ID, Type: opTypeFromOData(op.ODataType), Status: model.OpNotStarted,
			ClientContext: clientContext, SentByBot: true, CreatedAt: now,
		}
		if !s.addOpLocked(c, rec) {
			s.ignoreLocked(c, a, reasonTooManyOperations)
			return s.finishLocked(c, a)
		}
	}
	if len(op.Participants) > 0 {
		rec.Participants = op.Participants
	}
	if !rec.Status.Final() {
		mergeMediaResult(rec, op)
	}
	status := op.Status.Normalize()
	switch {
	case rec.Status.Final():
		// The notification won the race; its status stays.
	case status.Final():
		st, _ := finalStatus(model.ChangeUpdated, op)
		s.finishOpLocked(c, a, rec, st, op.ResultInfo, "")
	case status != "":
		rec.Status = status
	}
	return s.finishLocked(c, a)
}

// FailOperation fails the pending operation with the client context because
// sending it failed (why says how; result, if any, is Graph's error).
func (s *Store) FailOperation(callID, clientContext string, result *model.ResultInfo, why string) []Change {
	now := s.now()
	c, _, err := s.lockCall(callID, lockExisting, now)
	if err != nil {
		return nil
	}
	a := &applyCtx{callID: callID, now: now, idx: -1, botd: "operation send failed"}
	op := c.opByContextLocked(clientContext, true)
	if op == nil {
		op = c.opByContextLocked(clientContext, false)
	}
	if op != nil {
		if why == "" {
			why = "send_failed"
		}
		s.finishOpLocked(c, a, op, model.OpFailed, result, why)
	}
	return s.finishLocked(c, a)
}

// expireOpsLocked fails the operations pending longer than
// OperationTimeout.
func (s *Store) expireOpsLocked(c *call, a *applyCtx) {
	for _, op := range c.ops {
		if !op.Status.Final() && a.now.Sub(op.CreatedAt) >= s.cfg.OperationTimeout {
			s.finishOpLocked(c, a, op, model.OpFailed, nil, opLabelTimeout)
		}
	}
}

// failPendingOpsLocked fails what is still pending on a call being swept.
func (s *Store) failPendingOpsLocked(c *call, a *applyCtx, why string) {
	for _, op := range c.ops {
		if !op.Status.Final() {
			s.finishOpLocked(c, a, op, model.OpFailed, nil, why)
		}
	}
}

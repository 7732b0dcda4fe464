package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"cel.dev/cel-go/common/types/ref"
	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// Action results: the result label of the actions metric.
const (
	resultOK             = "ok"
	resultError          = "error"
	resultOutcomeUnknown = "outcome_unknown"
)

// exec runs one action. An error means the action failed: the step's
// operationFailed transition, if any, takes the run on.
func (r *run) exec(ctx context.Context, a *action, fe *EventInfo) error {
	act := r.activation(fe)
	switch a.kind {
	case actSet:
		for _, nv := range a.set {
			if err := r.assign(nv, act); err != nil {
				return err
			}
		}
		return nil
	case actEnd:
		status := a.endStatus
		if status == "" {
			status = StatusCompleted
		}
		msg := ""
		if v := a.args["error"]; v != nil {
			x, err := v.eval(act)
			if err != nil {
				return err
			}
			msg = textOf(x)
		}
		r.record(r.step, "end", &EventInfo{Kind: EvDone})
		r.finish(status, msg)
		return nil
	case actStartFlow:
		return r.startChild(a, act)
	}
	ctx, cancel := context.WithTimeout(ctx, r.e.cfg.ActionTimeout)
	defer cancel()
	start, seq := time.Now(), r.seq
	err := r.send(ctx, a, act)
	result := resultOK
	switch {
	case err == nil:
	case errors.Is(err, graph.ErrOutcomeUnknown):
		// Sent; Graph's answer was lost. The operation, if any, stays
		// pending for its notification; it is not sent again.
		result, err = resultOutcomeUnknown, nil
		r.log.Warn().Str("action", a.kind).Str("step", r.step).Msg("flow action outcome unknown; not resent")
	default:
		result = resultError
		// The step handles the failure now: the store's later
		// OperationFailed for the same operation is not a second event.
		for i := seq + 1; i <= r.seq; i++ {
			delete(r.ops, r.id+"-"+strconv.Itoa(i))
		}
	}
	r.e.metrics.actions.WithLabelValues(r.flow.Name, a.kind, result).Inc()
	log := r.log.Info()
	if err != nil {
		log = r.log.Warn().Err(err)
	}
	log.Str("action", a.kind).Str("step", r.step).Dur("latency", time.Since(start)).Msg("flow action")
	return err
}

// callID resolves an action's call: a name the run holds, or an
// expression's id, which the run then holds too.
func (r *run) callID(name string, x *valueNode, act *activation) (string, error) {
	if x == nil {
		id := r.calls[name]
		if id == "" {
			return "", fmt.Errorf("call %s: the run holds no such call yet", name)
		}
		return id, nil
	}
	v, err := x.eval(act)
	if err != nil {
		return "", err
	}
	id := textOf(v)
	if id == "" {
		return "", errors.New("the call id is empty")
	}
	if !r.touched[id] {
		r.touched[id] = true
		if _, ok := r.names[id]; !ok {
			r.names[id] = ""
		}
		r.e.bind(r, id)
	}
	return id, nil
}

// arg evaluates an argument, nil when not given.
func (a *action) arg(name string, act *activation) (ref.Val, error) {
	v := a.args[name]
	if v == nil {
		return nil, nil
	}
	return v.eval(act)
}

// strs evaluates a string-or-list argument.
func (a *action) strs(name string, act *activation) ([]string, error) {
	v, err := a.arg(name, act)
	if err != nil || v == nil {
		return nil, err
	}
	switch x := ToJSON(v).(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: want a string, got %s", name, i, describe(e))
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: want a string or a list of strings, got %s", name, describe(x))
	}
}

func (a *action) str(name string, act *activation) (string, error) {
	v, err := a.arg(name, act)
	if err != nil || v == nil {
		return "", err
	}
	s, ok := ToJSON(v).(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", name, describe(ToJSON(v)))
	}
	return s, nil
}

func (a *action) int32p(name string, act *activation) (*int32, error) {
	v, err := a.arg(name, act)
	if err != nil || v == nil {
		return nil, err
	}
	n, ok := ToJSON(v).(int64)
	if !ok || n < 0 || n > 1<<31-1 {
		return nil, fmt.Errorf("%s: want a non-negative int, got %s", name, describe(ToJSON(v)))
	}
	i := int32(n)
	return &i, nil
}

func (a *action) boolp(name string, act *activation) (*bool, error) {
	v, err := a.arg(name, act)
	if err != nil || v == nil {
		return nil, err
	}
	b, ok := ToJSON(v).(bool)
	if !ok {
		return nil, fmt.Errorf("%s: want a bool", name)
	}
	return &b, nil
}

// body decodes the action's body argument, if any, into out, strictly, as
// the admin API decodes Graph bodies.
func (a *action) body(act *activation, out any) error {
	v, err := a.arg("body", act)
	if err != nil || v == nil {
		return err
	}
	b, err := json.Marshal(ToJSON(v))
	if err != nil {
		return fmt.Errorf("body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// clientContext is the next operation's: the run's id and a sequence, so
// that the operation's notifications reach the run, and the logs tie it
// to the run.
func (r *run) clientContext(callID string) string {
	r.seq++
	cc := r.id + "-" + strconv.Itoa(r.seq)
	if len(r.ops) >= maxOpsPerRun {
		for k := range r.ops {
			delete(r.ops, k)
			break
		}
	}
	r.ops[cc] = callID
	return cc
}

// maxOpsPerRun bounds the operations a run remembers.
const maxOpsPerRun = 64

func prompt(uri string) model.MediaPrompt {
	return model.MediaPrompt{ODataType: model.ODataMediaPrompt, MediaInfo: &model.MediaInfo{
		ODataType: model.ODataMediaInfo, URI: uri,
		// The same file always has the same id, by which Graph caches it.
		ResourceID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(uri)).String(),
	}}
}

// prompts are the prompt argument's URIs as Graph media prompts.
func (a *action) prompts(act *activation) ([]model.MediaPrompt, error) {
	uris, err := a.strs("prompt", act)
	out := make([]model.MediaPrompt, len(uris))
	for i, u := range uris {
		out[i] = prompt(u)
	}
	return out, err
}

// send runs an outbound action through the calls service.
func (r *run) send(ctx context.Context, a *action, act *activation) error {
	if a.kind == actNotify {
		return r.notify(ctx, a, act)
	}
	if a.kind == actCreateCall {
		return r.createCall(ctx, a, act)
	}
	callID, err := r.callID(a.callName, a.callExpr, act)
	if err != nil {
		return err
	}
	c := r.e.calls
	switch a.kind {
	case actAnswer:
		b := &graph.AnswerRequest{}
		if err := a.body(act, b); err != nil {
			return err
		}
		_, err = c.Answer(ctx, callID, b)
	case actReject:
		reason, err2 := a.str("reason", act)
		if err2 != nil {
			return err2
		}
		_, err = c.Reject(ctx, callID, &graph.RejectRequest{Reason: reason})
	case actRedirect:
		b := &graph.RedirectRequest{}
		if err := a.body(act, b); err != nil {
			return err
		}
		ts, err2 := a.strs("target", act)
		if err2 != nil {
			return err2
		}
		for _, t := range ts {
			b.Targets = append(b.Targets, model.Invitee(t))
		}
		_, err = c.Redirect(ctx, callID, b)
	case actTransfer:
		b := &graph.TransferRequest{}
		if err := a.body(act, b); err != nil {
			return err
		}
		t, err2 := a.str("target", act)
		if err2 != nil {
			return err2
		}
		if t != "" {
			inv := model.Invitee(t)
			b.TransferTarget = &inv
		}
		_, err = c.Transfer(ctx, callID, b)
	case actHangup:
		_, err = c.Hangup(ctx, callID)
	case actInvite:
		err = r.invite(ctx, a, act, callID)
	default:
		err = r.media(ctx, a, act, callID)
	}
	return err
}

func (r *run) createCall(ctx context.Context, a *action, act *activation) error {
	call := &model.Call{}
	if err := a.body(act, call); err != nil {
		return err
	}
	ts, err := a.strs("target", act)
	if err != nil {
		return err
	}
	for _, t := range ts {
		call.Targets = append(call.Targets, model.Invitee(t))
	}
	if id, err := a.str("joinMeetingId", act); err != nil {
		return err
	} else if id != "" {
		call.MeetingInfo = &model.MeetingInfo{ODataType: model.ODataJoinMeetingIDMeetingInfo, JoinMeetingID: id}
		if pc, err := a.str("passcode", act); err != nil {
			return err
		} else if pc != "" {
			call.MeetingInfo.Passcode = &pc
		}
	}
	for k, dst := range map[string]*string{"subject": &call.Subject, "tenantId": &call.TenantID} {
		if s, err := a.str(k, act); err != nil {
			return err
		} else if s != "" {
			*dst = s
		}
	}
	// The short form is a call with service-hosted audio.
	if len(call.RequestedModalities) == 0 {
		call.RequestedModalities = []string{"audio"}
	}
	if call.MediaConfig == nil {
		call.MediaConfig = &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}
	}
	r.e.beginCreate()
	v, err := r.e.calls.CreateCall(ctx, call)
	if err != nil || v.ID == "" {
		r.e.endCreate(nil, "")
		if err == nil {
			err = errors.New("create call: Graph gave no call id")
		}
		return err
	}
	if old := r.calls[a.as]; old != "" {
		r.names[old] = "" // still held, no longer by that name
	}
	r.calls[a.as], r.names[v.ID], r.touched[v.ID] = v.ID, a.as, true
	r.e.endCreate(r, v.ID)
	r.log.Info().Str("call_id", v.ID).Str("as", a.as).Msg("flow created a call")
	return nil
}

func (r *run) invite(ctx context.Context, a *action, act *activation, callID string) error {
	b := &graph.InviteRequest{}
	if err := a.body(act, b); err != nil {
		return err
	}
	ts, err := a.strs("target", act)
	if err != nil {
		return err
	}
	for _, t := range ts {
		b.Participants = append(b.Participants, model.Invitee(t))
	}
	pid, err := a.str("participantId", act)
	if err != nil {
		return err
	}
	if pid != "" && len(b.Participants) == 0 {
		b.Participants = append(b.Participants, model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant})
	}
	if a.replName != "" || a.replExpr != nil {
		repl, err := r.callID(a.replName, a.replExpr, act)
		if err != nil {
			return fmt.Errorf("replacesCall: %w", err)
		}
		if len(b.Participants) == 0 {
			return errors.New("replacesCall needs a target")
		}
		b.Participants[0].ReplacesCallID = repl
	}
	if pid != "" {
		b.Participants[0].ParticipantID = pid
	}
	if b.ClientContext == "" {
		b.ClientContext = r.clientContext(callID)
	} else {
		r.ops[b.ClientContext] = callID
	}
	_, err = r.e.calls.Invite(ctx, callID, b)
	return err
}

// media runs the media and participant actions.
func (r *run) media(ctx context.Context, a *action, act *activation, callID string) error {
	c := r.e.calls
	cc := r.clientContext(callID)
	pid, err := a.str("participant", act)
	if err != nil {
		return err
	}
	switch a.kind {
	case actPlayPrompt:
		b := &graph.PlayPromptRequest{}
		if err := a.body(act, b); err != nil {
			return err
		}
		ps, err := a.prompts(act)
		if err != nil {
			return err
		}
		b.Prompts = append(b.Prompts, ps...)
		b.ClientContext = cc
		_, err = c.PlayPrompt(ctx, callID, b)
		return err
	case actRecordResponse:
		b, err := a.recordBody(act)
		if err != nil {
			return err
		}
		b.ClientContext = cc
		_, err = c.RecordResponse(ctx, callID, b)
		return err
	case actSubscribeToTone:
		_, err = c.SubscribeToTone(ctx, callID, &graph.SubscribeToToneRequest{ClientContext: cc})
	case actSendDtmfTones:
		keys, err := a.str("tones", act)
		if err != nil {
			return err
		}
		b := &graph.SendDtmfTonesRequest{ClientContext: cc}
		for i := 0; i < len(keys); i++ {
			b.Tones = append(b.Tones, model.ParseTone(keys[i:i+1]))
		}
		if b.DelayBetweenTonesMs, err = a.int32p("delayBetweenTonesMs", act); err != nil {
			return err
		}
		_, err = c.SendDtmfTones(ctx, callID, b)
		return err
	case actCancelMediaProcessing:
		_, err = c.CancelMediaProcessing(ctx, callID, &graph.CancelMediaProcessingRequest{ClientContext: cc})
	case actMute:
		if pid != "" {
			_, err = c.MuteParticipant(ctx, callID, pid, &graph.MuteRequest{ClientContext: cc})
		} else {
			_, err = c.Mute(ctx, callID, &graph.MuteRequest{ClientContext: cc})
		}
	case actUnmute:
		_, err = c.Unmute(ctx, callID, &graph.MuteRequest{ClientContext: cc})
	case actRemoveParticipant:
		_, err = c.RemoveParticipant(ctx, callID, pid)
	case actStartHoldMusic:
		b := &graph.StartHoldMusicRequest{ClientContext: cc}
		if u, err := a.str("prompt", act); err != nil {
			return err
		} else if u != "" {
			p := prompt(u)
			b.CustomPrompt = &p
		}
		_, err = c.StartHoldMusic(ctx, callID, pid, b)
	case actStopHoldMusic:
		_, err = c.StopHoldMusic(ctx, callID, pid, &graph.StopHoldMusicRequest{ClientContext: cc})
	case actUpdateRecordingStatus:
		s, err := a.str("status", act)
		if err != nil {
			return err
		}
		_, err = c.UpdateRecordingStatus(ctx, callID, &graph.UpdateRecordingStatusRequest{Status: model.RecordingStatus(s), ClientContext: cc})
		return err
	default:
		return fmt.Errorf("action %s is not an outbound action", a.kind)
	}
	return err
}

// recordBody is a recordResponse action's request: its body, then the
// fields the action names, which win.
func (a *action) recordBody(act *activation) (*graph.RecordResponseRequest, error) {
	b := &graph.RecordResponseRequest{}
	if err := a.body(act, b); err != nil {
		return nil, err
	}
	ps, err := a.prompts(act)
	if err != nil {
		return nil, err
	}
	b.Prompts = append(b.Prompts, ps...)
	for k, dst := range map[string]**int32{"maxRecordDurationInSeconds": &b.MaxRecordDurationInSeconds,
		"maxSilenceTimeoutInSeconds": &b.MaxSilenceTimeoutInSeconds, "initialSilenceTimeoutInSeconds": &b.InitialSilenceTimeoutInSeconds} {
		if v, err := a.int32p(k, act); err != nil {
			return nil, err
		} else if v != nil {
			*dst = v
		}
	}
	for k, dst := range map[string]**bool{"playBeep": &b.PlayBeep, "bargeInAllowed": &b.BargeInAllowed} {
		if v, err := a.boolp(k, act); err != nil {
			return nil, err
		} else if v != nil {
			*dst = v
		}
	}
	stops, err := a.strs("stopTones", act)
	if err != nil {
		return nil, err
	}
	for _, s := range stops {
		b.StopTones = append(b.StopTones, model.ParseTone(s))
	}
	return b, nil
}

// startChild starts another flow, whose end the run gets as flowEnded.
func (r *run) startChild(a *action, act *activation) error {
	f, ok := r.e.flows.Load().Flow(a.flow)
	if !ok {
		return fmt.Errorf("startFlow: flow %q is no longer loaded", a.flow)
	}
	given := map[string]any{}
	for _, nv := range a.params {
		v, err := nv.v.eval(act)
		if err != nil {
			return fmt.Errorf("startFlow %s: parameter %s: %w", a.flow, nv.name, err)
		}
		given[nv.name] = ToJSON(v)
	}
	ps, err := f.bind(given)
	if err != nil {
		return fmt.Errorf("startFlow %s: %w", a.flow, err)
	}
	r.e.mu.Lock()
	child, err := r.e.startLocked(f, ps, startFlow, r, a.as, "")
	r.e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("startFlow %s: %w", a.flow, err)
	}
	r.children[a.as] = child.id
	r.log.Info().Str("child_run_id", child.id).Str("child_flow", f.Name).Msg("flow started a child run")
	return nil
}

// maxNotifyRetries bounds a notify action's retries.
const maxNotifyRetries = 10

// maxNotifyBody bounds a notify body.
const maxNotifyBody = 64 << 10

// notify posts a JSON body to an external endpoint, with a timeout per
// attempt and bounded retries (exponential backoff) on transport errors,
// 429 and 5xx.
func (r *run) notify(ctx context.Context, a *action, act *activation) error {
	u, err := a.str("url", act)
	if err != nil {
		return err
	}
	if err := checkNotifyURL(u); err != nil {
		return err
	}
	var body any
	if v, err := a.arg("body", act); err != nil {
		return err
	} else if v != nil {
		body = ToJSON(v)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("notify body: %w", err)
	}
	if len(b) > maxNotifyBody {
		return fmt.Errorf("notify body is %d bytes, more than %d", len(b), maxNotifyBody)
	}
	timeout := r.e.cfg.NotifyTimeout
	if v, err := a.arg("timeout", act); err != nil {
		return err
	} else if d, ok := ToJSON(v).(string); ok {
		if td, err := time.ParseDuration(d); err == nil && td > 0 {
			timeout = td
		}
	}
	retries := uint(2)
	if v, err := a.int32p("retries", act); err != nil {
		return err
	} else if v != nil {
		retries = uint(min(*v, maxNotifyRetries))
	}
	// The whole action, retries included, is bounded by the action
	// timeout too.
	attempt := 0
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(actx, http.MethodPost, u, bytes.NewReader(b))
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "botd-flows")
		req.Header.Set("X-Botd-Run-Id", r.id)
		res, err := r.e.cfg.Notify.Do(req)
		if err != nil {
			r.e.metrics.notify.WithLabelValues(r.flow.Name, "transport_error").Inc()
			return struct{}{}, err
		}
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		switch {
		case res.StatusCode < 300:
			r.e.metrics.notify.WithLabelValues(r.flow.Name, "ok").Inc()
			return struct{}{}, nil
		case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
			r.e.metrics.notify.WithLabelValues(r.flow.Name, "retryable_status").Inc()
			return struct{}{}, fmt.Errorf("notify: %s answered %d", u, res.StatusCode)
		default:
			r.e.metrics.notify.WithLabelValues(r.flow.Name, "refused").Inc()
			return struct{}{}, backoff.Permanent(fmt.Errorf("notify: %s answered %d", u, res.StatusCode))
		}
	}, backoff.WithMaxTries(retries+1), backoff.WithBackOff(notifyBackoff()))
	if err != nil {
		return fmt.Errorf("notify after %d attempts: %w", attempt, err)
	}
	return nil
}

func notifyBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	return b
}

// resultCode is Graph's status for an action Graph refused; 0 otherwise.
func resultCode(err error) int64 {
	var ae *graph.APIError
	if errors.As(err, &ae) {
		return int64(ae.StatusCode)
	}
	if p := problem.For(err); p.Code != problem.Internal {
		return int64(p.Status)
	}
	return 0
}

package graph

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/botd/botd/internal/model"
)

// maxPages bounds how many @odata.nextLink pages ListParticipants follows.
const maxPages = 100

func callPath(callID string) string {
	return "/communications/calls/" + url.PathEscape(callID)
}

// CreateCall places an outgoing call or joins a meeting
// (POST /communications/calls). Graph answers 201 with the call
// (id, state "establishing", myParticipantId, callChainId, ...) and a
// Location header. When the body lacks the id, it is taken from Location.
func (c *Client) CreateCall(ctx context.Context, call *model.Call) (*model.Call, Meta, error) {
	const action = "create call"
	if err := ValidateCall(call); err != nil {
		return nil, Meta{}, c.refuse(OpCreateCall, action, err)
	}
	meta := c.newMeta()
	var out model.Call
	err := c.send(ctx, request{op: OpCreateCall, action: action, method: http.MethodPost, url: c.url("/communications/calls")}, call, &out, &meta)
	if err != nil {
		return nil, meta, err
	}
	if out.ID == "" {
		out.ID = callIDFromLocation(meta.Location)
	}
	return &out, meta, nil
}

// callIDFromLocation extracts {id} from a Location ending in
// /communications/calls/{id}; "" if it does not.
func callIDFromLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	const marker = "/communications/calls/"
	p := u.EscapedPath()
	i := strings.LastIndex(p, marker)
	if i < 0 {
		return ""
	}
	seg := p[i+len(marker):]
	if seg == "" || strings.Contains(seg, "/") {
		return ""
	}
	id, err := url.PathUnescape(seg)
	if err != nil || checkID("id", id) != nil {
		return ""
	}
	return id
}

// Invite invites participants to an active call
// (POST /communications/calls/{id}/participants/invite). Graph answers 200
// with an inviteParticipantsOperation (status normalised to lower case) and
// a Location for it. An invite with replacesCallId and several participants
// is sent as written with a warning: Graph reads only the first.
func (c *Client) Invite(ctx context.Context, callID string, req *InviteRequest) (*model.Operation, Meta, error) {
	const action = "invite participants"
	if err := ValidateID("callId", callID); err != nil {
		return nil, Meta{}, c.refuse(OpInvite, action, err)
	}
	if err := ValidateInvite(req); err != nil {
		return nil, Meta{}, c.refuse(OpInvite, action, err)
	}
	meta := c.newMeta()
	for _, w := range InviteWarnings(req) {
		c.log.Warn().Str("op", OpInvite).Str("call_id", callID).Str("client_request_id", meta.ClientRequestID).
			Str("rule", w).Int("participants", len(req.Participants)).
			Msg("invite with replacesCallId and several participants: Graph reads only the first")
	}
	var op model.Operation
	err := c.send(ctx, request{op: OpInvite, action: action, method: http.MethodPost, url: c.url(callPath(callID) + "/participants/invite"), callID: callID}, req, &op, &meta)
	if err != nil {
		return nil, meta, err
	}
	op.Status = op.Status.Normalize()
	return &op, meta, nil
}

// action posts a body to /communications/calls/{id}/{verb} and expects a
// 2xx without a body of interest.
func (c *Client) action(ctx context.Context, op, action, callID, verb string, validate func() error, body any, idempotent bool) (Meta, error) {
	if err := ValidateID("callId", callID); err != nil {
		return Meta{}, c.refuse(op, action, err)
	}
	if validate != nil {
		if err := validate(); err != nil {
			return Meta{}, c.refuse(op, action, err)
		}
	}
	meta := c.newMeta()
	err := c.send(ctx, request{op: op, action: action, method: http.MethodPost, url: c.url(callPath(callID) + "/" + verb), callID: callID, idempotent: idempotent}, body, nil, &meta)
	return meta, err
}

// Answer answers an incoming call (POST .../calls/{id}/answer, 202).
func (c *Client) Answer(ctx context.Context, callID string, req *AnswerRequest) (Meta, error) {
	return c.action(ctx, OpAnswer, "answer call", callID, "answer", func() error { return ValidateAnswer(req) }, req, false)
}

// Reject rejects an incoming call (POST .../calls/{id}/reject, 202).
func (c *Client) Reject(ctx context.Context, callID string, req *RejectRequest) (Meta, error) {
	return c.action(ctx, OpReject, "reject call", callID, "reject", func() error { return ValidateReject(req) }, req, false)
}

// Redirect redirects an incoming call not yet answered
// (POST .../calls/{id}/redirect, 202).
func (c *Client) Redirect(ctx context.Context, callID string, req *RedirectRequest) (Meta, error) {
	return c.action(ctx, OpRedirect, "redirect call", callID, "redirect", func() error { return ValidateRedirect(req) }, req, false)
}

// Transfer transfers an active call (POST .../calls/{id}/transfer, 202).
func (c *Client) Transfer(ctx context.Context, callID string, req *TransferRequest) (Meta, error) {
	return c.action(ctx, OpTransfer, "transfer call", callID, "transfer", func() error { return ValidateTransfer(req) }, req, false)
}

// KeepAlive keeps a call alive (POST .../calls/{id}/keepAlive, 200, no
// body). Graph ends a call that gets none for 45 minutes; a 404 means the
// call is gone. It is idempotent, so timeouts are retried.
func (c *Client) KeepAlive(ctx context.Context, callID string) (Meta, error) {
	return c.action(ctx, OpKeepAlive, "keep call alive", callID, "keepAlive", nil, nil, true)
}

// Hangup ends botd's leg of a call (DELETE /communications/calls/{id},
// 204). A group call goes on without the bot.
func (c *Client) Hangup(ctx context.Context, callID string) (Meta, error) {
	const action = "hang up call"
	if err := ValidateID("callId", callID); err != nil {
		return Meta{}, c.refuse(OpHangup, action, err)
	}
	meta := c.newMeta()
	err := c.send(ctx, request{op: OpHangup, action: action, method: http.MethodDelete, url: c.url(callPath(callID)), callID: callID, idempotent: true}, nil, nil, &meta)
	return meta, err
}

// GetCall reads a call (GET /communications/calls/{id}).
func (c *Client) GetCall(ctx context.Context, callID string) (*model.Call, Meta, error) {
	const action = "get call"
	if err := ValidateID("callId", callID); err != nil {
		return nil, Meta{}, c.refuse(OpGetCall, action, err)
	}
	meta := c.newMeta()
	var out model.Call
	err := c.send(ctx, request{op: OpGetCall, action: action, method: http.MethodGet, url: c.url(callPath(callID)), callID: callID, idempotent: true}, nil, &out, &meta)
	if err != nil {
		return nil, meta, err
	}
	return &out, meta, nil
}

type participantPage struct {
	Value    []model.Participant `json:"value"`
	NextLink string              `json:"@odata.nextLink"`
}

// ListParticipants reads a call's roster
// (GET /communications/calls/{id}/participants), following @odata.nextLink
// (only within the base URL, at most 100 pages). All pages share one
// client-request-id; Meta.Attempts counts every HTTP attempt.
func (c *Client) ListParticipants(ctx context.Context, callID string) ([]model.Participant, Meta, error) {
	const action = "list participants"
	if err := ValidateID("callId", callID); err != nil {
		return nil, Meta{}, c.refuse(OpListParticipants, action, err)
	}
	meta := c.newMeta()
	next := c.url(callPath(callID) + "/participants")
	var all []model.Participant
	attempts := 0
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, meta, fmt.Errorf("%s: more than %d pages", action, maxPages)
		}
		var p participantPage
		err := c.send(ctx, request{op: OpListParticipants, action: action, method: http.MethodGet, url: next, callID: callID, idempotent: true}, nil, &p, &meta)
		attempts += meta.Attempts
		meta.Attempts = attempts
		if err != nil {
			return nil, meta, err
		}
		all = append(all, p.Value...)
		if p.NextLink != "" && !c.sameService(p.NextLink) {
			return nil, meta, fmt.Errorf("%s: refusing @odata.nextLink outside %s", action, c.cfg.base)
		}
		next = p.NextLink
	}
	return all, meta, nil
}

// GetOperation reads a call's operation
// (GET /communications/calls/{id}/operations/{opId}).
func (c *Client) GetOperation(ctx context.Context, callID, opID string) (*model.Operation, Meta, error) {
	const action = "get operation"
	if err := ValidateID("callId", callID); err != nil {
		return nil, Meta{}, c.refuse(OpGetOperation, action, err)
	}
	if err := ValidateID("operationId", opID); err != nil {
		return nil, Meta{}, c.refuse(OpGetOperation, action, err)
	}
	meta := c.newMeta()
	var op model.Operation
	err := c.send(ctx, request{op: OpGetOperation, action: action, method: http.MethodGet, url: c.url(callPath(callID) + "/operations/" + url.PathEscape(opID)), callID: callID, idempotent: true}, nil, &op, &meta)
	if err != nil {
		return nil, meta, err
	}
	op.Status = op.Status.Normalize()
	return &op, meta, nil
}

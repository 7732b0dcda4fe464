package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
)

func validCall() *model.Call { return createSeeds[0].call() }

func validInvite() *InviteRequest { return inviteSeeds[0].req() }

func users(n int) []model.InvitationParticipantInfo {
	out := make([]model.InvitationParticipantInfo, n)
	for i := range out {
		out[i] = userTarget(fmt.Sprintf("user-%d", i), "")
	}
	return out
}

func phoneTarget(number string) model.InvitationParticipantInfo {
	return model.InvitationParticipantInfo{ODataType: model.ODataInvitationParticipant, Identity: phone(number)}
}

// TestValidationSendsNothing runs each rule through the client: the call
// must fail with the rule's *ValidationError, the fake must record no
// request at all (not even a token fetch), and the refusal is counted.
func TestValidationSendsNothing(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, op, rule string
		run            func(c *Client) error
	}{
		{"create: no callbackUri", OpCreateCall, RuleRequired, func(c *Client) error {
			call := validCall()
			call.CallbackURI = ""
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: http callbackUri", OpCreateCall, RuleCallbackHTTPS, func(c *Client) error {
			call := validCall()
			call.CallbackURI = "http://bot.contoso.com/callback"
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: relative callbackUri", OpCreateCall, RuleCallbackHTTPS, func(c *Client) error {
			call := validCall()
			call.CallbackURI = "/callback"
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: no requestedModalities", OpCreateCall, RuleRequired, func(c *Client) error {
			call := validCall()
			call.RequestedModalities = nil
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: unknown modality", OpCreateCall, RuleModality, func(c *Client) error {
			call := validCall()
			call.RequestedModalities = []string{"Audio"}
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: no mediaConfig", OpCreateCall, RuleRequired, func(c *Client) error {
			call := validCall()
			call.MediaConfig = nil
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: unknown mediaConfig type", OpCreateCall, RuleMediaConfigType, func(c *Client) error {
			call := validCall()
			call.MediaConfig = &model.MediaConfig{ODataType: "#microsoft.graph.mediaConfig"}
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: no targets nor meeting", OpCreateCall, RuleRequired, func(c *Client) error {
			call := validCall()
			call.Targets = nil
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: target without identity", OpCreateCall, RuleRequired, func(c *Client) error {
			call := validCall()
			call.Targets = []model.InvitationParticipantInfo{{ODataType: model.ODataInvitationParticipant}}
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: phone target not E.164", OpCreateCall, RulePhoneE164, func(c *Client) error {
			call := validCall()
			call.Targets = []model.InvitationParticipantInfo{phoneTarget("12345678901")}
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: phone target too long", OpCreateCall, RulePhoneE164, func(c *Client) error {
			call := validCall()
			call.Targets = []model.InvitationParticipantInfo{phoneTarget("+1234567890123456")}
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: group call with 6 VoIP targets", OpCreateCall, RuleGroupCallMaxTargets, func(c *Client) error {
			call := validCall()
			call.Targets = users(6)
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: organizer meeting without chatInfo", OpCreateCall, RuleRequired, func(c *Client) error {
			call := createSeeds[4].call()
			call.ChatInfo = nil
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: joinMeetingId empty", OpCreateCall, RuleRequired, func(c *Client) error {
			call := createSeeds[6].call()
			call.MeetingInfo.JoinMeetingID = ""
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: unknown meetingInfo type", OpCreateCall, RuleMeetingInfoType, func(c *Client) error {
			call := createSeeds[6].call()
			call.MeetingInfo.ODataType = "#microsoft.graph.meetingInfo"
			_, _, err := c.CreateCall(ctx, call)
			return err
		}},
		{"create: nil call", OpCreateCall, RuleRequired, func(c *Client) error {
			_, _, err := c.CreateCall(ctx, nil)
			return err
		}},
		{"invite: 6 participants", OpInvite, RuleInviteMaxParticipants, func(c *Client) error {
			_, _, err := c.Invite(ctx, "call-1", &InviteRequest{Participants: users(6)})
			return err
		}},
		{"invite: participantId with 2 participants", OpInvite, RuleInviteParticipantID, func(c *Client) error {
			ps := users(2)
			ps[0].ParticipantID = "7d501bf1-5ee4-4605-ba92-0ae4513c611c"
			_, _, err := c.Invite(ctx, "call-1", &InviteRequest{Participants: ps})
			return err
		}},
		{"invite: clientContext 257 chars", OpInvite, RuleClientContextMax, func(c *Client) error {
			req := validInvite()
			req.ClientContext = strings.Repeat("x", 257)
			_, _, err := c.Invite(ctx, "call-1", req)
			return err
		}},
		{"invite: clientContext 129 astral chars (258 UTF-16 units)", OpInvite, RuleClientContextMax, func(c *Client) error {
			req := validInvite()
			req.ClientContext = strings.Repeat("😀", 129)
			_, _, err := c.Invite(ctx, "call-1", req)
			return err
		}},
		{"invite: PSTN not E.164", OpInvite, RulePhoneE164, func(c *Client) error {
			_, _, err := c.Invite(ctx, "call-1", &InviteRequest{Participants: []model.InvitationParticipantInfo{phoneTarget("+0123456")}})
			return err
		}},
		{"invite: no participants", OpInvite, RuleRequired, func(c *Client) error {
			_, _, err := c.Invite(ctx, "call-1", &InviteRequest{})
			return err
		}},
		{"invite: empty call id", OpInvite, RuleRequired, func(c *Client) error {
			_, _, err := c.Invite(ctx, "", validInvite())
			return err
		}},
		{"invite: call id with slash", OpInvite, RuleIDFormat, func(c *Client) error {
			_, _, err := c.Invite(ctx, "a/b", validInvite())
			return err
		}},
		{"answer: no acceptedModalities", OpAnswer, RuleRequired, func(c *Client) error {
			_, err := c.Answer(ctx, "call-1", &AnswerRequest{MediaConfig: &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}})
			return err
		}},
		{"answer: no mediaConfig", OpAnswer, RuleRequired, func(c *Client) error {
			_, err := c.Answer(ctx, "call-1", &AnswerRequest{AcceptedModalities: []string{"audio"}})
			return err
		}},
		{"answer: http callbackUri", OpAnswer, RuleCallbackHTTPS, func(c *Client) error {
			_, err := c.Answer(ctx, "call-1", &AnswerRequest{CallbackURI: "http://10.0.0.1/cb", AcceptedModalities: []string{"audio"},
				MediaConfig: &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}})
			return err
		}},
		{"reject: unknown reason", OpReject, RuleRejectReason, func(c *Client) error {
			_, err := c.Reject(ctx, "call-1", &RejectRequest{Reason: "Busy"})
			return err
		}},
		{"reject: http callbackUri", OpReject, RuleCallbackHTTPS, func(c *Client) error {
			_, err := c.Reject(ctx, "call-1", &RejectRequest{Reason: RejectBusy, CallbackURI: "http://example.com/cb"})
			return err
		}},
		{"redirect: 26 targets", OpRedirect, RuleRedirectMaxTargets, func(c *Client) error {
			_, err := c.Redirect(ctx, "call-1", &RedirectRequest{Targets: users(26)})
			return err
		}},
		{"redirect: timeout 10s", OpRedirect, RuleRedirectTimeout, func(c *Client) error {
			_, err := c.Redirect(ctx, "call-1", &RedirectRequest{Targets: users(1), Timeout: 10})
			return err
		}},
		{"redirect: PSTN not E.164", OpRedirect, RulePhoneE164, func(c *Client) error {
			_, err := c.Redirect(ctx, "call-1", &RedirectRequest{Targets: []model.InvitationParticipantInfo{phoneTarget("+1 234 567")}})
			return err
		}},
		{"redirect: no targets", OpRedirect, RuleRequired, func(c *Client) error {
			_, err := c.Redirect(ctx, "call-1", &RedirectRequest{})
			return err
		}},
		{"transfer: no target", OpTransfer, RuleRequired, func(c *Client) error {
			_, err := c.Transfer(ctx, "call-1", &TransferRequest{})
			return err
		}},
		{"transfer: PSTN not E.164", OpTransfer, RulePhoneE164, func(c *Client) error {
			t := phoneTarget("555-1234")
			_, err := c.Transfer(ctx, "call-1", &TransferRequest{TransferTarget: &t})
			return err
		}},
		{"transfer: clientContext too long", OpTransfer, RuleClientContextMax, func(c *Client) error {
			t := userTarget("550fae72-d251-43ec-868c-373732c2704f", "Heidi Steen")
			_, err := c.Transfer(ctx, "call-1", &TransferRequest{TransferTarget: &t, ClientContext: strings.Repeat("y", 300)})
			return err
		}},
		{"keepAlive: dot-dot id", OpKeepAlive, RuleIDFormat, func(c *Client) error {
			_, err := c.KeepAlive(ctx, "..")
			return err
		}},
		{"hangup: empty id", OpHangup, RuleRequired, func(c *Client) error {
			_, err := c.Hangup(ctx, "")
			return err
		}},
		{"get call: control character", OpGetCall, RuleIDFormat, func(c *Client) error {
			_, _, err := c.GetCall(ctx, "abc\n")
			return err
		}},
		{"list participants: slash", OpListParticipants, RuleIDFormat, func(c *Client) error {
			_, _, err := c.ListParticipants(ctx, "../x")
			return err
		}},
		{"get operation: slash in op id", OpGetOperation, RuleIDFormat, func(c *Client) error {
			_, _, err := c.GetOperation(ctx, "call-1", "a/b")
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			e.fg.PutCall(model.Call{ID: "call-1", State: model.StateIncoming})
			err := tc.run(e.c)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Rule != tc.rule {
				t.Errorf("rule = %q (%v), want %q", ve.Rule, ve, tc.rule)
			}
			if Retryable(err) {
				t.Error("a validation error must not be retryable")
			}
			if n := len(e.fg.Requests()); n != 0 {
				t.Errorf("fake recorded %d requests, want 0", n)
			}
			if v := testutil.ToFloat64(e.c.m.validation.WithLabelValues(tc.op, tc.rule)); v != 1 {
				t.Errorf("validation failures{%s,%s} = %v, want 1", tc.op, tc.rule, v)
			}
		})
	}
}

// TestValidationAccepts pins the edges that must pass.
func TestValidationAccepts(t *testing.T) {
	ok := map[string]error{
		"loopback http callback": func() error {
			c := validCall()
			c.CallbackURI = "http://127.0.0.1:8080/callback"
			return ValidateCall(c)
		}(),
		"localhost http callback": func() error {
			c := validCall()
			c.CallbackURI = "http://localhost/callback"
			return ValidateCall(c)
		}(),
		"ipv6 loopback http callback": func() error {
			c := validCall()
			c.CallbackURI = "http://[::1]:9/cb"
			return ValidateCall(c)
		}(),
		"group call of 5 VoIP + 1 PSTN": func() error {
			c := validCall()
			c.Targets = append(users(5), phoneTarget("+12345678901"))
			return ValidateCall(c)
		}(),
		"invite of 5":          ValidateInvite(&InviteRequest{Participants: users(5)}),
		"clientContext of 256": ValidateInvite(&InviteRequest{Participants: users(1), ClientContext: strings.Repeat("x", 256)}),
		"reject busy":          ValidateReject(&RejectRequest{Reason: RejectBusy}),
		"reject empty reason":  ValidateReject(&RejectRequest{}),
		"redirect 25 with timeout 90": ValidateRedirect(&RedirectRequest{Targets: users(25), Timeout: 90,
			CallbackURI: "https://bot.contoso.com/api/calls"}),
		"transfer with transferee": func() error {
			t := userTarget("550fae72-d251-43ec-868c-373732c2704f", "Heidi Steen")
			return ValidateTransfer(&TransferRequest{TransferTarget: &t, Transferee: &model.ParticipantInfo{Identity: aadUser("x")}})
		}(),
		"answer seed-like": ValidateAnswer(&AnswerRequest{CallbackURI: "https://bot.contoso.com/api/calls", AcceptedModalities: []string{"audio"},
			MediaConfig: &model.MediaConfig{ODataType: model.ODataAppHostedMediaConfig, Blob: "<blob>"}, ParticipantCapacity: 200}),
	}
	for name, err := range ok {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestInviteWarnings(t *testing.T) {
	if w := InviteWarnings(inviteSeeds[1].req()); len(w) != 1 || w[0] != WarnReplacesCallIDFirstOnly {
		t.Errorf("several with replacesCallId: %v", w)
	}
	if w := InviteWarnings(inviteSeeds[0].req()); len(w) != 0 {
		t.Errorf("one with replacesCallId: %v", w)
	}
	if w := InviteWarnings(&InviteRequest{Participants: users(3)}); len(w) != 0 {
		t.Errorf("several without replacesCallId: %v", w)
	}
}

func TestCheckE164(t *testing.T) {
	for number, valid := range map[string]bool{
		"+12345678901":      true,
		"+491701234567":     true,
		"+12":               true,
		"+123456789012345":  true,  // 15 digits
		"+1234567890123456": false, // 16 digits
		"+1":                false,
		"12345678901":       false,
		"+0123456789":       false,
		"+1 2345678901":     false,
		"+1-234-567-8901":   false,
		"+１２３４５":            false, // full-width digits
		"":                  false,
		"+12345678901\n":    false,
	} {
		if got := checkE164("f", number) == nil; got != valid {
			t.Errorf("checkE164(%q) valid=%v, want %v", number, got, valid)
		}
	}
}

func TestCheckCallbackURI(t *testing.T) {
	for uri, valid := range map[string]bool{
		"https://bot.contoso.com/callback": true,
		"HTTPS://bot.contoso.com/callback": true,
		"http://localhost:8080/cb":         true,
		"http://127.0.0.53/cb":             true,
		"http://[::1]/cb":                  true,
		"http://bot.contoso.com/callback":  false,
		"http://10.0.0.1/cb":               false,
		"http://localhost.evil.com/cb":     false,
		"http://127.0.0.1.nip.io/cb":       false,
		"ftp://bot.contoso.com/cb":         false,
		"https:///cb":                      false,
		"bot.contoso.com/cb":               false,
		"https:bot.contoso.com":            false,
		"":                                 false,
	} {
		if got := checkCallbackURI("f", uri) == nil; got != valid {
			t.Errorf("checkCallbackURI(%q) valid=%v, want %v", uri, got, valid)
		}
	}
}

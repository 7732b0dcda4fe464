package calls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/graph"
	"github.com/botd/botd/internal/model"
)

const ownCallback = "https://bot.contoso.com/api/calls"

// fakeGraph records what the service sent, with the tenant of each
// request, and answers from its fields.
type fakeGraph struct {
	// The methods these tests do not use panic.
	Graph
	mu        sync.Mutex
	sent      []string // "<action>:<call id>:<tenant>"
	answers   []graph.AnswerRequest
	created   []model.Call
	inviteErr error
	refusals  []string
}

func (f *fakeGraph) record(ctx context.Context, action, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, action+":"+id+":"+graph.TenantFromContext(ctx))
}

func (f *fakeGraph) Answer(ctx context.Context, id string, r *graph.AnswerRequest) (graph.Meta, error) {
	f.record(ctx, "answer", id)
	f.mu.Lock()
	f.answers = append(f.answers, *r)
	f.mu.Unlock()
	return graph.Meta{ClientRequestID: "crid"}, nil
}

func (f *fakeGraph) KeepAlive(ctx context.Context, id string) (graph.Meta, error) {
	f.record(ctx, "keepAlive", id)
	return graph.Meta{}, nil
}

func (f *fakeGraph) CreateCall(ctx context.Context, c *model.Call) (*model.Call, graph.Meta, error) {
	f.record(ctx, "create", "")
	f.mu.Lock()
	f.created = append(f.created, *c)
	f.mu.Unlock()
	return &model.Call{ID: "new-1", State: model.StateEstablishing, TenantID: c.TenantID}, graph.Meta{RequestID: "rid"}, nil
}

func (f *fakeGraph) Invite(ctx context.Context, id string, r *graph.InviteRequest) (*model.Operation, graph.Meta, error) {
	f.record(ctx, "invite", id)
	if f.inviteErr != nil {
		return nil, graph.Meta{}, f.inviteErr
	}
	return &model.Operation{ID: "op-1", Status: model.OpRunning, ClientContext: r.ClientContext}, graph.Meta{}, nil
}

func (f *fakeGraph) MuteParticipant(ctx context.Context, id, _ string, r *graph.MuteRequest) (*model.Operation, graph.Meta, error) {
	f.record(ctx, "muteParticipant", id)
	return &model.Operation{ID: "op-m", Status: model.OpRunning, ClientContext: r.ClientContext}, graph.Meta{}, nil
}

func (f *fakeGraph) CountRefusal(op string, _ error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refusals = append(f.refusals, op)
}

func newService(t *testing.T) (*Service, *fakeGraph, *callstate.Store) {
	t.Helper()
	st, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGraph{}
	cfg := Config{CallbackURL: ownCallback, TenantID: "tenant-default", BotAppID: "app-1", BotName: "botd"}
	return New(cfg, g, st, zerolog.Nop()), g, st
}

func track(t *testing.T, st *callstate.Store, id string, state model.CallState, tenant string) {
	t.Helper()
	if _, err := st.Apply(&model.Event{
		ChangeType: model.ChangeUpdated,
		Path:       model.ResourcePath{CallID: id, Kind: model.ResourceCall},
		Kind:       model.EventCall,
		Call:       &model.Call{ID: id, State: state, TenantID: tenant},
	}); err != nil {
		t.Fatal(err)
	}
}

func refusal(t *testing.T, err error, kind Kind, msg string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != kind || ce.Message != msg {
		t.Fatalf("err = %v, want kind %d %q", err, kind, msg)
	}
}

// TestAnswerDefaultsAndTenant: the answer body gets botd's callbackUri,
// service-hosted media and audio, and goes with the call's tenant.
func TestAnswerDefaultsAndTenant(t *testing.T) {
	s, g, st := newService(t)
	track(t, st, "c1", model.StateIncoming, "tenant-a")
	res, err := s.Answer(context.Background(), "c1", &graph.AnswerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.CallID != "c1" || res.Action != "answer" || res.Meta.ClientRequestID != "crid" {
		t.Errorf("result = %+v", res)
	}
	a := g.answers[0]
	if a.CallbackURI != ownCallback || a.MediaConfig == nil || a.MediaConfig.ODataType != model.ODataServiceHostedMediaConfig ||
		len(a.AcceptedModalities) != 1 || a.AcceptedModalities[0] != "audio" {
		t.Errorf("answer = %+v", a)
	}
	if g.sent[0] != "answer:c1:tenant-a" {
		t.Errorf("sent %v", g.sent)
	}
}

// TestForeignCallbackRefusedAndCounted: another callbackUri is a
// callbackUri.own validation failure, counted, and nothing is sent.
func TestForeignCallbackRefusedAndCounted(t *testing.T) {
	s, g, st := newService(t)
	track(t, st, "c1", model.StateIncoming, "")
	_, err := s.Answer(context.Background(), "c1", &graph.AnswerRequest{CallbackURI: "https://evil.example/cb"})
	var ve *graph.ValidationError
	if !errors.As(err, &ve) || ve.Rule != graph.RuleCallbackOwn || ve.Field != "callbackUri" {
		t.Fatalf("err = %v", err)
	}
	if len(g.sent) != 0 || len(g.refusals) != 1 || g.refusals[0] != graph.OpAnswer {
		t.Errorf("sent %v, refusals %v", g.sent, g.refusals)
	}
}

// TestLiveRules: an unknown call is NotFound, a terminated one Conflict, a
// participant not in the roster NotFound; nothing is sent or recorded.
func TestLiveRules(t *testing.T) {
	s, g, st := newService(t)
	ctx := context.Background()
	_, err := s.KeepAlive(ctx, "nope")
	refusal(t, err, NotFound, `call "nope" is not tracked`)
	track(t, st, "c1", model.StateEstablished, "")
	_, err = s.MuteParticipant(ctx, "c1", "p1", &graph.MuteRequest{})
	refusal(t, err, NotFound, `participant "p1" is not in call "c1"`)
	track(t, st, "c1", model.StateTerminated, "")
	_, err = s.Invite(ctx, "c1", &graph.InviteRequest{})
	refusal(t, err, Conflict, "call already terminated")
	if v, _ := st.Call("c1"); len(g.sent) != 0 || len(v.Operations) != 0 {
		t.Errorf("sent %v, %d operations", g.sent, len(v.Operations))
	}
}

func invitee() []model.InvitationParticipantInfo {
	return []model.InvitationParticipantInfo{{
		ODataType: model.ODataInvitationParticipant,
		Identity:  &model.IdentitySet{ODataType: model.ODataIdentitySet, Phone: &model.Identity{ODataType: model.ODataIdentity, ID: "+12345678901"}},
	}}
}

// TestInviteRecordedAndOutcomes: an invite is recorded under its
// clientContext and marked sent; Graph's refusal fails it with Graph's
// status; an unknown outcome leaves it pending.
func TestInviteRecordedAndOutcomes(t *testing.T) {
	s, g, st := newService(t)
	ctx := context.Background()
	track(t, st, "c1", model.StateEstablished, "tenant-a")
	op, err := s.Invite(ctx, "c1", &graph.InviteRequest{Participants: invitee()})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := st.Call("c1")
	if len(v.Operations) != 1 || v.Operations[0].Type != "invite" || v.Operations[0].ClientContext != op.ClientContext ||
		v.Operations[0].ID != "op-1" || len(v.Operations[0].Participants) != 1 || op.ClientContext == "" {
		t.Fatalf("op %+v, operations %+v", op, v.Operations)
	}
	g.inviteErr = &graph.APIError{StatusCode: http.StatusForbidden, Code: "Forbidden"}
	if _, err := s.Invite(ctx, "c1", &graph.InviteRequest{Participants: invitee(), ClientContext: "cc-2"}); err == nil {
		t.Fatal("refusal not returned")
	}
	g.inviteErr = &graph.OutcomeUnknownError{Op: "invite", Err: context.DeadlineExceeded}
	if _, err := s.Invite(ctx, "c1", &graph.InviteRequest{Participants: invitee(), ClientContext: "cc-3"}); !errors.Is(err, graph.ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	v, _ = st.Call("c1")
	byCC := map[string]callstate.OperationView{}
	for _, o := range v.Operations {
		byCC[o.ClientContext] = o
	}
	if o := byCC["cc-2"]; o.Status != model.OpFailed || o.ResultInfo == nil || o.ResultInfo.Code != http.StatusForbidden || o.ResultInfo.Message != "Forbidden" {
		t.Errorf("refused op = %+v", o)
	}
	if o := byCC["cc-3"]; o.Status.Final() {
		t.Errorf("outcome-unknown op = %+v, want pending", o)
	}
	for _, sent := range g.sent {
		if sent != "invite:c1:tenant-a" {
			t.Errorf("sent %s", sent)
		}
	}
}

// TestCreateCallDefaults: a create-call body gets botd's callbackUri, the
// bot's source and the default tenant, is sent in that tenant and tracked.
func TestCreateCallDefaults(t *testing.T) {
	s, g, _ := newService(t)
	call := &model.Call{
		Targets:             invitee(),
		RequestedModalities: []string{"audio"},
		MediaConfig:         &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig},
	}
	v, err := s.CreateCall(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	c := g.created[0]
	if c.CallbackURI != ownCallback || c.TenantID != "tenant-default" || c.ODataType != model.ODataCall ||
		c.Source == nil || c.Source.Identity.Application.ID != "app-1" || c.Source.Identity.Application.DisplayName != "botd" {
		t.Errorf("sent %+v", c)
	}
	if g.sent[0] != "create::tenant-default" {
		t.Errorf("sent %v", g.sent)
	}
	if v.ID != "new-1" || v.CallbackURI != ownCallback || len(v.Targets) != 1 {
		t.Errorf("view = %+v", v)
	}
}

// recordedOp puts a completed recordResponse with location loc on call id.
func recordedOp(t *testing.T, st *callstate.Store, id, loc string) {
	t.Helper()
	if _, err := st.Apply(&model.Event{
		ChangeType: model.ChangeDeleted, Path: model.ResourcePath{CallID: id, Kind: model.ResourceOperation, SubID: "rec-1"},
		Kind: model.EventOperation, Operation: &model.Operation{ODataType: model.ODataRecordOp, ID: "rec-1", Status: model.OpCompleted,
			RecordingLocation: loc, RecordingAccessToken: "secret-token-0123456789"},
	}); err != nil {
		t.Fatal(err)
	}
}

// Recording: botd fetches the audio with the token from a location that is
// https (or loopback), and refuses anything else without a request.
func TestRecording(t *testing.T) {
	var gotAuth string
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "audio/wav")
		_, _ = io.WriteString(w, "RIFF")
	}))
	defer media.Close()
	s, _, st := newService(t)
	s.cfg.Fetch = media.Client()
	track(t, st, "c1", model.StateEstablished, "")
	if _, _, err := s.Recording(context.Background(), "c1", "rec-1"); err == nil || err.Error() != `operation "rec-1" is not one of call "c1"'s` {
		t.Fatalf("no such operation: %v", err)
	}
	recordedOp(t, st, "c1", media.URL+"/rec/1")
	body, ct, err := s.Recording(context.Background(), "c1", "rec-1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "RIFF" || ct != "audio/wav" || gotAuth != "Bearer secret-token-0123456789" {
		t.Fatalf("%q %q %q", b, ct, gotAuth)
	}

	track(t, st, "c2", model.StateEstablished, "")
	recordedOp(t, st, "c2", "http://media.example/rec/1")
	gotAuth = ""
	if _, _, err := s.Recording(context.Background(), "c2", "rec-1"); err == nil || !strings.Contains(err.Error(), "not an https URL") || gotAuth != "" {
		t.Fatalf("plain http off loopback: %v (auth sent %q)", err, gotAuth)
	}
	s.cfg.Fetch = nil
	if _, _, err := s.Recording(context.Background(), "c1", "rec-1"); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("no client: %v", err)
	}
}

// TestDurableBeforeSend: with a journal, an operation is written with its
// record (pending, under its clientContext) before the request is sent,
// and a created call is written once it is tracked.
func TestDurableBeforeSend(t *testing.T) {
	s, g, st := newService(t)
	var order []string
	s.cfg.Durable = func(callID string) bool {
		g.mu.Lock()
		sent := len(g.sent)
		g.mu.Unlock()
		v, _ := st.Call(callID)
		pending := 0
		for _, op := range v.Operations {
			if !op.Status.Final() {
				pending++
			}
		}
		order = append(order, fmt.Sprintf("durable:%s:sent=%d:pending=%d", callID, sent, pending))
		return true
	}
	track(t, st, "c1", model.StateEstablished, "tenant-a")
	if _, err := s.Invite(context.Background(), "c1", &graph.InviteRequest{Participants: invitee()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCall(context.Background(), &model.Call{Targets: invitee(), RequestedModalities: []string{"audio"},
		MediaConfig: &model.MediaConfig{ODataType: model.ODataServiceHostedMediaConfig}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"durable:c1:sent=0:pending=1", "durable:new-1:sent=2:pending=0"}
	if !slices.Equal(order, want) {
		t.Errorf("journal writes %v, want %v", order, want)
	}
}

// refreshGraph answers Refresh's reads: a call, its roster and one
// operation, or 404 for the call.
type refreshGraph struct {
	fakeGraph
	call *model.Call
	ops  map[string]*model.Operation
}

func (f *refreshGraph) GetCall(ctx context.Context, id string) (*model.Call, graph.Meta, error) {
	f.record(ctx, "getCall", id)
	if f.call == nil {
		return nil, graph.Meta{}, &graph.APIError{StatusCode: http.StatusNotFound, Code: "itemNotFound"}
	}
	c := *f.call
	return &c, graph.Meta{}, nil
}

func (f *refreshGraph) ListParticipants(ctx context.Context, id string) ([]model.Participant, graph.Meta, error) {
	f.record(ctx, "list", id)
	return []model.Participant{{ID: "p1", Info: model.ParticipantInfo{Identity: &model.IdentitySet{User: &model.Identity{ID: "u1"}}}}}, graph.Meta{}, nil
}

func (f *refreshGraph) GetOperation(ctx context.Context, id, opID string) (*model.Operation, graph.Meta, error) {
	f.record(ctx, "getOperation", id)
	if op, ok := f.ops[opID]; ok {
		return op, graph.Meta{}, nil
	}
	return nil, graph.Meta{}, &graph.APIError{StatusCode: http.StatusNotFound, Code: "itemNotFound"}
}

// TestRefresh: a call read from Graph after a restart takes Graph's state,
// roster and the outcome of its pending operations; a call Graph answers
// 404 for is ended with GoneWhileDown.
func TestRefresh(t *testing.T) {
	st, err := callstate.New(callstate.DefaultConfig(), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &refreshGraph{call: &model.Call{ID: "c1", State: model.StateEstablished}, ops: map[string]*model.Operation{
		"op-1": {ID: "op-1", ODataType: "#microsoft.graph.inviteParticipantsOperation", Status: model.OpCompleted},
	}}
	s := New(Config{CallbackURL: ownCallback}, g, st, zerolog.Nop())
	ctx := context.Background()
	track(t, st, "c1", model.StateEstablishing, "tenant-a")
	track(t, st, "c2", model.StateEstablished, "tenant-a")
	if err := st.TrackOperation("c1", callstate.OperationRecord{Type: "invite", ClientContext: "cc-1"}); err != nil {
		t.Fatal(err)
	}
	st.OperationSent("c1", "cc-1", &model.Operation{ID: "op-1", Status: model.OpRunning})
	if err := s.Refresh(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	v, _ := st.Call("c1")
	if v.State != model.StateEstablished || len(v.Participants) != 1 || len(v.Operations) != 1 || v.Operations[0].Status != model.OpCompleted {
		t.Errorf("refreshed call: %s, %d participants, operations %+v", v.State, len(v.Participants), v.Operations)
	}
	g.call = nil
	if err := s.Refresh(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if v, _ := st.Call("c2"); v.State != model.StateTerminated || v.Transitions[len(v.Transitions)-1].Cause != "botd: "+GoneWhileDown {
		t.Errorf("call gone from Graph: %s, transitions %+v", v.State, v.Transitions)
	}
}

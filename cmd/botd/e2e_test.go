package main

// End-to-end tests of the emulator issue: botd started through run(), real
// HTTP on loopback, Graph played by the emulator (embedded, or started here
// when the test needs to steer its faults), every outcome read back through
// the admin API. No assertion is timed: each waits for its condition with a
// generous bound and fails only when the bound passes.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

// e2eBound is how long any awaited condition may take before the test
// fails; conditions normally hold within a second.
const e2eBound = 30 * time.Second

// e2eTimeScale makes a 3 s answer 150 ms and a 60 s ring 3 s.
const e2eTimeScale = "0.05"

// e2eBot is a running botd and the emulator it talks to.
type e2eBot struct {
	*botd
	// incoming is the emulator's POST /emulator/incoming.
	incoming string
	// emu is set when the test started the emulator itself.
	emu *emulator.Server
}

// e2eStartEmbedded runs botd in emulator mode (no credentials: the emulator
// is embedded, and inbound JWT authentication stays on).
func e2eStartEmbedded(t *testing.T, env map[string]string) *e2eBot {
	t.Helper()
	base := map[string]string{
		"BOTD_INSTANCE":            "botd-e2e",
		"BOTD_EMULATOR_SEED":       "20260801",
		"BOTD_EMULATOR_TIME_SCALE": e2eTimeScale,
		"BOTD_WORKERS":             "16",
	}
	for k, v := range env {
		base[k] = v
	}
	b := start(t, base)
	l := b.logs.wait(t, "emulator serving", func(m map[string]any) bool { return m["message"] == "emulator serving" })
	in, _ := l["incoming"].(string)
	if !strings.HasPrefix(in, "http://127.0.0.1:") {
		t.Fatalf("emulator serving line has no loopback incoming URL: %v", l)
	}
	return &e2eBot{botd: b, incoming: in}
}

// e2eStartExternal starts an emulator with opts and botd in credentials
// mode against it, inbound authentication on and checked against the
// emulator's keys. botd's public URL must be known before it starts, so a
// free loopback port is reserved first.
func e2eStartExternal(t *testing.T, opts emulator.Options, env map[string]string) *e2eBot {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	public := "http://" + listen
	opts.TenantID, opts.ClientID, opts.ClientSecret = "e2e-tenant", "00000000-0000-4000-8000-0000000000e2", "e2e-secret"
	if opts.Tenants == nil {
		opts.Tenants = []string{emulator.AnyTenant} // the seeds name their own tenantId
	}
	opts.BotCallbackURL = public + "/api/calls"
	emu, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close) // after botd stops: cleanups run last-in first-out
	base := map[string]string{
		"BOTD_INSTANCE":          "botd-e2e",
		"BOTD_LISTEN":            listen,
		"BOTD_PUBLIC_URL":        public,
		"BOTD_TENANT_ID":         opts.TenantID,
		"BOTD_CLIENT_ID":         opts.ClientID,
		"BOTD_CLIENT_SECRET":     opts.ClientSecret,
		"BOTD_GRAPH_BASE_URL":    emu.GraphURL(),
		"BOTD_TOKEN_URL":         emu.TokenURL(),
		"BOTD_AUTH_METADATA_URL": emu.OpenIDConfigURL(),
		"BOTD_WORKERS":           "16",
	}
	for k, v := range env {
		base[k] = v
	}
	b := start(t, base)
	return &e2eBot{botd: b, incoming: emu.URL() + "/emulator/incoming", emu: emu}
}

// e2eClient bounds every request of the tests; botd's admin API bounds
// its own by the Graph retry budget and timeout (45 s by default).
var e2eClient = &http.Client{Timeout: 2 * time.Minute}

// e2eDo sends a request with a JSON body (nil: none).
func e2eDo(method, url string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e2eClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// e2eSeedBody is a seed payload as a JSON object.
func e2eSeedBody(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(testkit.Seed(t, name), &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// e2eCreateBody is a create-call seed without its callbackUri: botd fills
// its own.
func e2eCreateBody(t *testing.T, form string) map[string]any {
	t.Helper()
	m := e2eSeedBody(t, form+"_request.json")
	delete(m, "callbackUri")
	return m
}

// e2eCreateCall creates a call through the admin API and returns its view.
func e2eCreateCall(t *testing.T, b *e2eBot, body map[string]any) callstate.CallView {
	t.Helper()
	v, err := e2eTryCreate(b, body)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func e2eTryCreate(b *e2eBot, body map[string]any) (callstate.CallView, error) {
	var v callstate.CallView
	code, out, err := e2eDo(http.MethodPost, b.admin+"/v1/calls", body)
	if err != nil {
		return v, err
	}
	if code != http.StatusCreated {
		return v, fmt.Errorf("create call = %d: %s", code, out)
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ID == "" {
		return v, fmt.Errorf("create call answer %s: %v", out, err)
	}
	return v, nil
}

// e2eGetCall reads a call through the admin API; ok is false on 404.
func e2eGetCall(b *e2eBot, id string) (v callstate.CallView, ok bool, err error) {
	code, out, err := e2eDo(http.MethodGet, b.admin+"/v1/calls/"+id, nil)
	switch {
	case err != nil:
		return v, false, err
	case code == http.StatusNotFound:
		return v, false, nil
	case code != http.StatusOK:
		return v, false, fmt.Errorf("get call %s = %d: %s", id, code, out)
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return v, false, fmt.Errorf("get call %s: %s: %w", id, out, err)
	}
	return v, true, nil
}

// errE2EStop, returned by a condition, ends the wait at once: the state
// can no longer become the one awaited.
var errE2EStop = errors.New("cannot happen any more")

// e2eEstablished is a wait condition: the call is established; a call that
// ended instead stops the wait.
func e2eEstablished(v *callstate.CallView) error {
	switch v.State {
	case model.StateEstablished:
		return nil
	case model.StateTerminated:
		return fmt.Errorf("%w: terminated %+v", errE2EStop, v.ResultInfo)
	}
	return fmt.Errorf("state %s", v.State)
}

// e2eWaitCall polls call id until cond holds and returns that view. It
// fails the test when cond returns an error, or when e2eBound passes,
// showing the last view.
func e2eWaitCall(t *testing.T, b *e2eBot, id, what string, cond func(v *callstate.CallView) error) callstate.CallView {
	t.Helper()
	v, err := e2eTryWaitCall(b, id, cond)
	if err != nil {
		last, _ := json.MarshalIndent(v, "", "  ")
		t.Fatalf("call %s: want %s: %v\nlast view: %s", id, what, err, last)
	}
	return v
}

func e2eTryWaitCall(b *e2eBot, id string, cond func(v *callstate.CallView) error) (callstate.CallView, error) {
	deadline := time.Now().Add(e2eBound)
	var v callstate.CallView
	for {
		got, ok, err := e2eGetCall(b, id)
		if err != nil {
			return v, err
		}
		if !ok {
			err = fmt.Errorf("%w: 404", errE2EStop)
		} else {
			v = got
			err = cond(&v)
		}
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, errE2EStop), time.Now().After(deadline):
			return v, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// e2eWaitTracked waits until botd tracks call id: a call botd did not
// create is tracked from its first notification.
func e2eWaitTracked(t *testing.T, b *e2eBot, id string) {
	t.Helper()
	deadline := time.Now().Add(e2eBound)
	for {
		_, ok, err := e2eGetCall(b, id)
		switch {
		case err != nil:
			t.Fatal(err)
		case ok:
			return
		case time.Now().After(deadline):
			t.Fatalf("call %s never tracked", id)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// e2eKey names one identity of a set, kind:id, as rosters are compared.
func e2eKey(s *model.IdentitySet) string {
	kind, id := s.Primary()
	if id == nil {
		return ""
	}
	return kind + ":" + id.ID
}

// e2eAnyUser in an expected roster stands for a person whose id the
// emulator chose (a meeting's attendees).
const e2eAnyUser = "user:*"

// e2eRosterIs checks the roster against want (identity keys, e2eAnyUser
// for any user), as a multiset, and that the bot is in it as
// myParticipantId with identity botKey.
func e2eRosterIs(v *callstate.CallView, botKey string, want []string) error {
	var got []string
	botSeen := false
	for _, p := range v.Participants {
		k := e2eKey(p.Info.Identity)
		got = append(got, k)
		if p.ID != "" && p.ID == v.MyParticipantID && k == botKey {
			botSeen = true
		}
	}
	rest := slices.Clone(got)
	wild := 0
	for _, w := range want {
		if w == e2eAnyUser {
			wild++
			continue
		}
		i := slices.Index(rest, w)
		if i < 0 {
			return fmt.Errorf("roster %v lacks %s (want %v)", got, w, want)
		}
		rest = slices.Delete(rest, i, i+1)
	}
	if len(rest) != wild || slices.ContainsFunc(rest, func(k string) bool { return !strings.HasPrefix(k, "user:") }) {
		return fmt.Errorf("roster %v, want %v", got, want)
	}
	if !botSeen {
		return fmt.Errorf("roster %v has no bot participant %s with id myParticipantId %q", got, botKey, v.MyParticipantID)
	}
	return nil
}

// e2eRosterHas checks that the roster holds every key of want.
func e2eRosterHas(v *callstate.CallView, want ...string) error {
	var got []string
	for _, p := range v.Participants {
		got = append(got, e2eKey(p.Info.Identity))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return fmt.Errorf("roster %v lacks %s", got, w)
		}
	}
	return nil
}

// e2eKeys lists the identity keys of a roster.
func e2eKeys(ps []model.Participant) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, e2eKey(p.Info.Identity))
	}
	return out
}

// e2eSameKeys compares two lists of keys as multisets.
func e2eSameKeys(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// e2eDeliveredRosters returns the identity keys of every full roster (not
// delta) the emulator delivered for call id, in the order botd got them.
func e2eDeliveredRosters(emu *emulator.Server, id string) [][]string {
	var out [][]string
	for _, d := range emu.Deliveries() {
		if d.CallID != id || d.Status/100 != 2 {
			continue
		}
		var doc struct {
			Value []struct {
				ResourceURL  string          `json:"resourceUrl"`
				ResourceData json.RawMessage `json:"resourceData"`
			} `json:"value"`
		}
		if json.Unmarshal(d.Body, &doc) != nil {
			continue
		}
		for _, it := range doc.Value {
			var ps []model.Participant
			if !strings.HasSuffix(it.ResourceURL, "/participants") || json.Unmarshal(it.ResourceData, &ps) != nil ||
				len(ps) == 0 || ps[0].ODataType != model.ODataParticipant {
				continue
			}
			out = append(out, e2eKeys(ps))
		}
	}
	return out
}

// e2eExpected is what a create-call body must end in: the identity keys of
// its roster besides the bot once every target answered (or the meeting
// roster), content sharing and delta roster as asked.
type e2eExpected struct {
	roster                []string
	contentSharing, delta bool
	// rosters is how many full rosters establishing it takes: a group
	// call gets one per target who accepts.
	rosters int
}

func e2eExpect(t *testing.T, body map[string]any) e2eExpected {
	t.Helper()
	raw, _ := json.Marshal(body)
	var c model.Call
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	x := e2eExpected{rosters: 1}
	for _, tg := range c.Targets {
		x.roster = append(x.roster, e2eKey(tg.Identity))
	}
	if c.MeetingInfo != nil || c.ChatInfo != nil {
		// The emulator's meeting: its organizer when named, and two
		// attendees.
		if mi := c.MeetingInfo; mi != nil && mi.Organizer != nil {
			x.roster = append(x.roster, e2eKey(mi.Organizer))
		}
		x.roster = append(x.roster, e2eAnyUser, e2eAnyUser)
	} else {
		x.rosters = len(c.Targets)
	}
	if o := c.CallOptions; o != nil {
		x.contentSharing = o.IsContentSharingNotificationEnabled != nil && *o.IsContentSharingNotificationEnabled
		x.delta = o.IsDeltaRosterEnabled != nil && *o.IsDeltaRosterEnabled
	}
	return x
}

// e2eRun is one botd the scenarios run against, and what its emulator
// does to notifications.
type e2eRun struct {
	b *e2eBot
	// reordered: the emulator may swap two notifications of a call. A full
	// roster (no sequence number) overtaken by the next one then arrives
	// last, and botd, which cannot tell, keeps it: a group call's roster
	// is checked against the last roster delivered (b.emu must be set).
	reordered bool
}

// e2eEstablished is the condition "established with the expected roster,
// content sharing session and delta roster".
func (r e2eRun) e2eEstablished(x e2eExpected) func(v *callstate.CallView) error {
	return func(v *callstate.CallView) error {
		if v.State == model.StateTerminated {
			return fmt.Errorf("%w: terminated", errE2EStop)
		}
		if v.State != model.StateEstablished {
			return fmt.Errorf("state %s", v.State)
		}
		if v.Source == nil || e2eKey(v.Source.Identity) == "" {
			return fmt.Errorf("no source identity")
		}
		bot := e2eKey(v.Source.Identity)
		want := append([]string{bot}, x.roster...)
		if r.reordered && !x.delta && x.rosters > 1 {
			rs := e2eDeliveredRosters(r.b.emu, v.ID)
			if !slices.ContainsFunc(rs, func(keys []string) bool { return e2eSameKeys(keys, want) }) {
				return fmt.Errorf("the emulator has not delivered the whole roster %v yet (delivered %v)", want, rs)
			}
			want = rs[len(rs)-1]
		}
		if err := e2eRosterIs(v, bot, want); err != nil {
			return err
		}
		if want := map[bool]int{true: 1}[x.contentSharing]; len(v.ContentSharingSessions) != want {
			return fmt.Errorf("%d content sharing sessions, want %d", len(v.ContentSharingSessions), want)
		}
		if x.delta {
			if v.RosterSequenceNumber < 1 {
				return fmt.Errorf("delta roster: rosterSequenceNumber %d", v.RosterSequenceNumber)
			}
			for _, p := range v.Participants {
				if p.RosterSequenceNumber < 1 {
					return fmt.Errorf("delta roster: participant %s has no rosterSequenceNumber", p.ID)
				}
			}
		} else if v.RosterSequenceNumber != 0 {
			return fmt.Errorf("full roster call has rosterSequenceNumber %d", v.RosterSequenceNumber)
		}
		if v.RosterNeedsResync {
			return fmt.Errorf("rosterNeedsResync")
		}
		return nil
	}
}

// e2eEstablish creates a call from body and waits until it is established
// with its roster.
func (r e2eRun) e2eEstablish(t *testing.T, body map[string]any) callstate.CallView {
	t.Helper()
	x := e2eExpect(t, body)
	v := e2eCreateCall(t, r.b, body)
	if v.Direction != "outgoing" || !v.CreatedByBot || !strings.HasSuffix(v.CallbackURI, "/api/calls/botd-e2e") {
		t.Errorf("created call: direction %q createdByBot %v callbackUri %q", v.Direction, v.CreatedByBot, v.CallbackURI)
	}
	v = e2eWaitCall(t, r.b, v.ID, "established with its roster", r.e2eEstablished(x))
	if r.reordered && !x.delta && len(v.Participants) != len(x.roster)+1 {
		t.Logf("call %s: a reordered full roster arrived last; botd keeps it, as it cannot order full rosters: %v",
			v.ID, e2eKeys(v.Participants))
	}
	return v
}

// e2eInviteBody is an invite seed with a fresh clientContext, its
// participants edited by edit.
func e2eInviteBody(t *testing.T, form string, edit func(p map[string]any)) (map[string]any, string) {
	t.Helper()
	m := e2eSeedBody(t, form+"_request.json")
	cc := uuid.NewString()
	m["clientContext"] = cc
	for _, p := range m["participants"].([]any) {
		edit(p.(map[string]any))
	}
	return m, cc
}

// e2eNoReplace drops the seed's replacesCallId, which names a call that
// does not exist here (the invite seed's examples 1, 2 and 5 carry it).
func e2eNoReplace(p map[string]any) { delete(p, "replacesCallId") }

// e2eInvite posts an invite through the admin API and checks the 202.
func e2eInvite(t *testing.T, b *e2eBot, callID string, body map[string]any, cc string) {
	t.Helper()
	if err := e2eTryInvite(b, callID, body, cc); err != nil {
		t.Fatal(err)
	}
}

func e2eTryInvite(b *e2eBot, callID string, body map[string]any, cc string) error {
	code, out, err := e2eDo(http.MethodPost, b.admin+"/v1/calls/"+callID+"/participants/invite", body)
	if err != nil {
		return err
	}
	var op model.Operation
	_ = json.Unmarshal(out, &op)
	if code != http.StatusAccepted || op.ClientContext != cc {
		return fmt.Errorf("invite into %s = %d: %s", callID, code, out)
	}
	return nil
}

// e2eOp finds the operation with clientContext cc.
func e2eOp(v *callstate.CallView, cc string) *callstate.OperationView {
	for i := range v.Operations {
		if v.Operations[i].ClientContext == cc {
			return &v.Operations[i]
		}
	}
	return nil
}

// e2eInvited is the condition "the invite cc completed, the call is still
// established, and its roster holds every key of want".
func e2eInvited(cc string, want ...string) func(v *callstate.CallView) error {
	return func(v *callstate.CallView) error {
		op := e2eOp(v, cc)
		switch {
		case op == nil:
			return fmt.Errorf("%w: no operation with clientContext %s", errE2EStop, cc)
		case op.Type != "invite":
			return fmt.Errorf("%w: operation type %q", errE2EStop, op.Type)
		case op.Status == model.OpFailed:
			return fmt.Errorf("%w: invite failed: %s %+v", errE2EStop, op.FailureReason, op.ResultInfo)
		case op.Status != model.OpCompleted:
			return fmt.Errorf("invite %s", op.Status)
		case v.State != model.StateEstablished:
			return fmt.Errorf("state %s", v.State)
		}
		if err := e2eRosterHas(v, want...); err != nil {
			return err
		}
		// Each invitee joined once: a request processed twice (a retry
		// Graph had already acted on) would show them twice.
		keys := e2eKeys(v.Participants)
		for _, w := range want {
			if n := len(slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k != w })); n != 1 {
				return fmt.Errorf("%w: %s is %d times in the roster %v", errE2EStop, w, n, keys)
			}
		}
		return nil
	}
}

// e2eCreateForms are the create-call forms of the create-call seed.
var e2eCreateForms = []string{"003_01", "003_08", "003_10", "003_12", "003_14", "003_20", "003_22", "003_24", "003_26", "003_28"}

// Invitees and the caller of the scenarios, as the seeds name them.
const (
	e2eInvitee1 = "user:278405a3-f568-4b3e-b684-009193463064" // 001_01
	e2eInvitee2 = "user:7e1b4346-85a6-4bdd-abe3-d11c5d420efe" // 001_05, 001_09
	e2eInvitee3 = "user:1e126418-44a0-4a94-a6f8-0efe1ad71acb" // 001_05
	e2eInviteeP = "phone:+12345678901"                        // 001_13
	e2eCaller   = "8a34a46b-3d17-4adc-8dce-dc4e7d572698"      // docs/emulator.md
)

// e2eScenarios runs every scenario against r.b, in parallel: each
// create-call form, each invite form, an incoming call, and a hang-up. Each
// must reach its final state, read through the admin API.
func (r e2eRun) e2eScenarios(t *testing.T) {
	b := r.b
	for _, form := range e2eCreateForms {
		t.Run("create_"+form, func(t *testing.T) {
			t.Parallel()
			r.e2eEstablish(t, e2eCreateBody(t, form))
		})
	}
	t.Run("invite_one_001_01", func(t *testing.T) {
		t.Parallel()
		call := r.e2eEstablish(t, e2eCreateBody(t, "003_01")) // a delta-roster call
		body, cc := e2eInviteBody(t, "001_01", e2eNoReplace)
		e2eInvite(t, b, call.ID, body, cc)
		e2eWaitCall(t, b, call.ID, "invite completed, invitee in the roster", e2eInvited(cc, e2eInvitee1))
	})
	t.Run("invite_several_001_05", func(t *testing.T) {
		t.Parallel()
		call := r.e2eEstablish(t, e2eCreateBody(t, "003_10")) // several invitees need a group call
		body, cc := e2eInviteBody(t, "001_05", e2eNoReplace)
		e2eInvite(t, b, call.ID, body, cc)
		// Graph reports it with "id": null: botd matches it by clientContext.
		e2eWaitCall(t, b, call.ID, "invite completed, both invitees in the roster", e2eInvited(cc, e2eInvitee2, e2eInvitee3))
	})
	t.Run("invite_replaces_001_09", func(t *testing.T) {
		t.Parallel()
		p2p := r.e2eEstablish(t, e2eCreateBody(t, "003_08"))
		group := r.e2eEstablish(t, e2eCreateBody(t, "003_12"))
		body, cc := e2eInviteBody(t, "001_09", func(p map[string]any) { p["replacesCallId"] = p2p.ID })
		e2eInvite(t, b, group.ID, body, cc)
		e2eWaitCall(t, b, group.ID, "invite completed, invitee in the roster", e2eInvited(cc, e2eInvitee2))
		// Terminated; or already swept, which botd does only to a call it
		// created once it has terminated.
		v, err := e2eTryWaitCall(b, p2p.ID, func(v *callstate.CallView) error {
			if v.State != model.StateTerminated {
				return fmt.Errorf("state %s", v.State)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errE2EStop) {
			t.Fatalf("replaced call %s: want terminated: %v (last state %s)", p2p.ID, err, v.State)
		}
	})
	t.Run("invite_pstn_001_13", func(t *testing.T) {
		t.Parallel()
		call := r.e2eEstablish(t, e2eCreateBody(t, "003_08")) // 003_26 and 003_28 call this number already
		body, cc := e2eInviteBody(t, "001_13", func(map[string]any) {})
		e2eInvite(t, b, call.ID, body, cc)
		e2eWaitCall(t, b, call.ID, "invite completed, PSTN invitee in the roster", e2eInvited(cc, e2eInviteeP))
	})
	t.Run("invite_move_001_17", func(t *testing.T) {
		t.Parallel()
		from := r.e2eEstablish(t, e2eCreateBody(t, "003_14"))
		to := r.e2eEstablish(t, e2eCreateBody(t, "003_22"))
		// Move an attendee of the first meeting: neither the bot nor the
		// organizer.
		var moved model.Participant
		for _, p := range from.Participants {
			if p.ID != from.MyParticipantID && e2eKey(p.Info.Identity) != e2eKey(from.MeetingInfo.Organizer) {
				moved = p
				break
			}
		}
		if moved.ID == "" || moved.Info.Identity.User == nil {
			t.Fatalf("no attendee to move in %+v", from.Participants)
		}
		body, cc := e2eInviteBody(t, "001_17", func(p map[string]any) {
			delete(p, "replacesCallId")
			p["participantId"] = moved.ID
			p["identity"].(map[string]any)["user"].(map[string]any)["id"] = moved.Info.Identity.User.ID
		})
		e2eInvite(t, b, to.ID, body, cc)
		e2eWaitCall(t, b, to.ID, "move completed, participant in the target meeting", e2eInvited(cc, e2eKey(moved.Info.Identity)))
		e2eWaitCall(t, b, from.ID, "participant gone from the source meeting", func(v *callstate.CallView) error {
			if v.State != model.StateEstablished {
				return fmt.Errorf("state %s", v.State)
			}
			if slices.ContainsFunc(v.Participants, func(p model.Participant) bool { return p.ID == moved.ID }) {
				return fmt.Errorf("participant %s still in the source meeting", moved.ID)
			}
			if len(v.Participants) != len(from.Participants)-1 {
				return fmt.Errorf("%d participants, want %d", len(v.Participants), len(from.Participants)-1)
			}
			return nil
		})
	})
	t.Run("incoming_answered_then_invite", func(t *testing.T) {
		t.Parallel()
		code, out, err := e2eDo(http.MethodPost, b.incoming, map[string]any{
			"from": map[string]any{"user": e2eCaller, "displayName": "Megan Bowen"}})
		if err != nil || code != http.StatusCreated {
			t.Fatalf("emulator incoming = %d %v: %s", code, err, out)
		}
		var rung model.Call
		if err := json.Unmarshal(out, &rung); err != nil || rung.ID == "" {
			t.Fatalf("incoming answer %s: %v", out, err)
		}
		e2eWaitTracked(t, b, rung.ID)
		e2eWaitCall(t, b, rung.ID, "answered, established, roster bot and caller", func(v *callstate.CallView) error {
			switch {
			case v.State == model.StateTerminated:
				return fmt.Errorf("%w: terminated %+v", errE2EStop, v.ResultInfo)
			case v.State != model.StateEstablished:
				return fmt.Errorf("state %s", v.State)
			case v.Direction != "incoming" || v.CreatedByBot:
				return fmt.Errorf("direction %q createdByBot %v", v.Direction, v.CreatedByBot)
			case len(v.Targets) != 1:
				return fmt.Errorf("targets %+v", v.Targets)
			}
			bot := e2eKey(v.Targets[0].Identity)
			return e2eRosterIs(v, bot, []string{bot, "user:" + e2eCaller})
		})
		if n := e2eMetric(t, b, "botd_flow_actions_total", `flow="builtin"`, `action="answer"`, `result="ok"`); n < 1 {
			t.Errorf("botd_flow_actions_total{flow=builtin,action=answer,result=ok} = %v: botd did not answer", n)
		}
		body, cc := e2eInviteBody(t, "001_01", e2eNoReplace)
		e2eInvite(t, b, rung.ID, body, cc)
		e2eWaitCall(t, b, rung.ID, "invite completed, invitee in the roster", e2eInvited(cc, e2eInvitee1, "user:"+e2eCaller))
	})
	t.Run("hangup_then_swept", func(t *testing.T) {
		t.Parallel()
		call := r.e2eEstablish(t, e2eCreateBody(t, "003_26"))
		code, out, err := e2eDo(http.MethodDelete, b.admin+"/v1/calls/"+call.ID, nil)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("hang up = %d %v: %s", code, err, out)
		}
		e2eWaitCall(t, b, call.ID, "terminated by the hang-up", func(v *callstate.CallView) error {
			if v.State != model.StateTerminated {
				return fmt.Errorf("state %s", v.State)
			}
			if ri := v.ResultInfo; ri == nil || ri.Code != emulator.ResultHangup.Code || ri.Subcode != emulator.ResultHangup.Subcode {
				return fmt.Errorf("%w: resultInfo %+v, want %d/%d", errE2EStop, ri, emulator.ResultHangup.Code, emulator.ResultHangup.Subcode)
			}
			return nil
		})
		// Swept once BOTD_RETENTION has passed: GET answers 404.
		deadline := time.Now().Add(e2eBound)
		for {
			_, ok, err := e2eGetCall(b, call.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("terminated call %s not swept after BOTD_RETENTION", call.ID)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// e2eMetric reads botd's /metrics and sums the samples of name whose
// labels include every one of labels (each k="v").
func e2eMetric(t *testing.T, b *e2eBot, name string, labels ...string) float64 {
	t.Helper()
	code, out := get(t, b.admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics = %d", code)
	}
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		for _, l := range labels {
			if !strings.Contains(line[:i], l) {
				continue next
			}
		}
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	return sum
}

// e2eCallbacksAccepted checks that botd took every callback with inbound
// authentication on: the emulator's signed callbacks must all pass it.
func e2eCallbacksAccepted(t *testing.T, b *e2eBot) {
	t.Helper()
	if n := e2eMetric(t, b, "botd_inbound_auth_enabled"); n != 1 {
		t.Errorf("botd_inbound_auth_enabled = %v, want 1", n)
	}
	if n := e2eMetric(t, b, "botd_callback_requests_total", `code="202"`); n == 0 {
		t.Error("no callback was accepted")
	}
	if all, ok := e2eMetric(t, b, "botd_callback_requests_total"), e2eMetric(t, b, "botd_callback_requests_total", `code="202"`); all != ok {
		t.Errorf("%v of %v callbacks were not answered 202", all-ok, all)
	}
	if b.emu != nil {
		if st := b.emu.DeliveryStats(); st.Failed != 0 || st.Dropped != 0 || st.Skipped != 0 || st.Delivered == 0 {
			t.Errorf("emulator delivery stats %+v: want every notification delivered", st)
		}
	}
}

// e2eFastSweep makes the hang-up scenario's call swept soon after it
// terminates. The store passes over its calls every half of the shorter
// of its timeouts (at most 30 s), so the delta-gap timeout is shortened
// too.
var e2eFastSweep = map[string]string{"BOTD_RETENTION": "1s", "BOTD_DELTA_GAP_TIMEOUT": "1s"}

// TestE2EScenarios runs every scenario against botd in emulator mode
// (inbound authentication on), as the emulator plays them.
func TestE2EScenarios(t *testing.T) {
	t.Parallel()
	env := maps.Clone(e2eFastSweep)
	// The 15 s incoming-call rule becomes 1.5 s: room for botd to answer
	// on a loaded 2-CPU runner under -race.
	env["BOTD_EMULATOR_TIME_SCALE"] = "0.1"
	b := e2eStartEmbedded(t, env)
	t.Run("scenarios", e2eRun{b: b}.e2eScenarios)
	e2eCallbacksAccepted(t, b)
}

// TestE2EReorderDuplicate runs the same scenarios while the emulator swaps
// and duplicates notifications: the final states are the same. (The
// emulator is started here so that the test can see what it delivered.)
func TestE2EReorderDuplicate(t *testing.T) {
	t.Parallel()
	b := e2eStartExternal(t, emulator.Options{
		Seed:      20260802,
		TimeScale: 0.05,
		// A reordered incoming-call notification waits for ReorderHold
		// (500 ms): leave botd time to answer it after that.
		Timing: emulator.Timing{Incoming: 10 * time.Minute},
		Faults: map[emulator.FaultKind]emulator.FaultRule{
			emulator.FaultReorder:   {Probability: 0.3},
			emulator.FaultDuplicate: {Probability: 0.3},
		},
	}, e2eFastSweep)
	t.Run("scenarios", e2eRun{b: b, reordered: true}.e2eScenarios)
	e2eCallbacksAccepted(t, b)
	for _, k := range []emulator.FaultKind{emulator.FaultReorder, emulator.FaultDuplicate} {
		if b.emu.FaultsInjected(k) == 0 {
			t.Errorf("no %s fault was injected", k)
		}
	}
	if n := e2eMetric(t, b, "botd_call_events_ignored_total"); n == 0 {
		t.Error("botd ignored no event: the duplicates and reordered states did not reach it")
	}
}

// TestE2ERetries runs the same scenarios while Graph answers some requests
// 429 (with Retry-After) or 503 without processing them: botd retries
// them, and every scenario ends as without faults. Each request the
// emulator did process, it processed once.
func TestE2ERetries(t *testing.T) {
	t.Parallel()
	faults := emulator.FaultRule{Next: 2, Probability: 0.05} // the first two for certain
	b := e2eStartExternal(t, emulator.Options{
		Seed:      20260803,
		TimeScale: 0.05,
		// A throttled answer waits Retry-After (1 s, not scaled): leave the
		// incoming call time to be answered.
		Timing: emulator.Timing{Incoming: 10 * time.Minute},
		Faults: map[emulator.FaultKind]emulator.FaultRule{
			emulator.FaultThrottle:    faults,
			emulator.FaultUnavailable: faults,
		},
	}, map[string]string{
		"BOTD_RETENTION": "1s", "BOTD_DELTA_GAP_TIMEOUT": "1s",
		"BOTD_GRAPH_MAX_RETRIES": "8",
	})
	t.Run("scenarios", e2eRun{b: b}.e2eScenarios)
	e2eCallbacksAccepted(t, b)

	for _, reason := range []string{"throttled", "unavailable"} {
		if n := e2eMetric(t, b, "botd_graph_retries_total", `reason="`+reason+`"`); n == 0 {
			t.Errorf("botd_graph_retries_total{reason=%q} = 0", reason)
		}
	}
	if b.emu.FaultsInjected(emulator.FaultThrottle) == 0 || b.emu.FaultsInjected(emulator.FaultUnavailable) == 0 {
		t.Errorf("faults injected: throttle %d, unavailable %d", b.emu.FaultsInjected(emulator.FaultThrottle), b.emu.FaultsInjected(emulator.FaultUnavailable))
	}
	// A retry carries its request's client-request-id: the emulator saw
	// some more than once. Each create call it saw, whatever the attempts,
	// made one call.
	attempts := map[string]int{}
	creates := map[string]bool{}
	for _, r := range b.emu.GraphRequests() {
		attempts[r.ClientRequestID]++
		if r.Route == emulator.RouteCreateCall {
			creates[r.ClientRequestID] = true
		}
	}
	most := 0
	for _, n := range attempts {
		most = max(most, n)
	}
	if most < 2 {
		t.Errorf("no request was attempted more than once (%d requests)", len(attempts))
	}
	outgoing := 0
	for _, c := range b.emu.Calls() {
		if c.Direction == "outgoing" {
			outgoing++
		}
	}
	if outgoing != len(creates) {
		t.Errorf("the emulator made %d outgoing calls from %d create-call requests", outgoing, len(creates))
	}
}

// TestE2ERosterGap: a delta roster whose sequenceNumber skips one is held,
// then, after BOTD_DELTA_GAP_TIMEOUT, botd lists the participants from
// Graph and replaces the roster; rosterNeedsResync is false again and the
// roster is Graph's. Once on a call's first roster, once on a later one.
func TestE2ERosterGap(t *testing.T) {
	t.Parallel()
	b := e2eStartExternal(t, emulator.Options{Seed: 20260804, TimeScale: 0.05},
		map[string]string{"BOTD_DELTA_GAP_TIMEOUT": "200ms"})
	lists := func(id string) int {
		n := 0
		for _, r := range b.emu.Requests(emulator.RouteListParticipants) {
			if r.CallID == id {
				n++
			}
		}
		return n
	}
	// resynced waits until botd listed the call's participants want
	// times and holds Graph's roster, with the keys of want.
	resynced := func(id string, lists0 int, want ...string) func(v *callstate.CallView) error {
		return func(v *callstate.CallView) error {
			switch {
			case v.State != model.StateEstablished:
				return fmt.Errorf("state %s", v.State)
			case lists(id) != lists0+1:
				return fmt.Errorf("botd listed the participants %d times, want %d", lists(id), lists0+1)
			case v.RosterNeedsResync:
				return fmt.Errorf("rosterNeedsResync")
			}
			graphKeys := e2eKeys(b.emu.Participants(id))
			if got := e2eKeys(v.Participants); !e2eSameKeys(got, graphKeys) {
				return fmt.Errorf("roster %v, Graph's %v", got, graphKeys)
			}
			return e2eRosterHas(v, want...)
		}
	}
	john := "user:112f7296-5fa4-42ca-bae8-6a692b15d4b8" // 003_01's target

	// The gap on the first roster: sequenceNumber 2 comes, 1 never does.
	b.emu.InjectNext(emulator.FaultRosterGap, 1)
	first := e2eCreateCall(t, b, e2eCreateBody(t, "003_01"))
	v := e2eWaitCall(t, b, first.ID, "resynced after the gap", resynced(first.ID, 0, e2eKey(first.Source.Identity), john))
	if v.RosterSequenceNumber < 2 {
		t.Errorf("rosterSequenceNumber %d after the gap, want the held delta's (2)", v.RosterSequenceNumber)
	}
	// Deltas go on after the resync.
	body, cc := e2eInviteBody(t, "001_13", func(map[string]any) {})
	e2eInvite(t, b, first.ID, body, cc)
	e2eWaitCall(t, b, first.ID, "invite applied after the resync", e2eInvited(cc, e2eInviteeP))

	// The gap on a later roster: 1 applied, then 3 comes, 2 never does.
	second := e2eCreateCall(t, b, e2eCreateBody(t, "003_01"))
	e2eWaitCall(t, b, second.ID, "established with its first delta", e2eRun{b: b}.e2eEstablished(e2eExpect(t, e2eCreateBody(t, "003_01"))))
	b.emu.InjectNext(emulator.FaultRosterGap, 1)
	body, cc = e2eInviteBody(t, "001_13", func(map[string]any) {})
	e2eInvite(t, b, second.ID, body, cc)
	e2eWaitCall(t, b, second.ID, "resynced after the gap", resynced(second.ID, 0, john, e2eInviteeP))
	e2eWaitCall(t, b, second.ID, "invite completed", e2eInvited(cc, e2eInviteeP))

	if n := b.emu.FaultsInjected(emulator.FaultRosterGap); n != 2 {
		t.Errorf("%d roster gaps injected, want 2", n)
	}
	if n := e2eMetric(t, b, "botd_call_roster_resyncs_total", `reason="gap_timeout"`); n != 2 {
		t.Errorf("botd_call_roster_resyncs_total{reason=gap_timeout} = %v, want 2", n)
	}
	e2eCallbacksAccepted(t, b)
}

// TestE2EManyCalls: 200 calls, each with an invite, while the emulator
// injects every kind of fault at random. No invite operation is lost: each
// ends completed or failed, none stays running. Graph ends every one by
// its notification, but for the calls hung up while their invitee was
// still ringing, of which Graph says nothing more: BOTD_OPERATION_TIMEOUT
// fails exactly those. None whose invitees all refused completes.
func TestE2EManyCalls(t *testing.T) {
	t.Parallel()
	const calls = 200
	b := e2eStartEmbedded(t, map[string]string{
		"BOTD_EMULATOR_SEED":     "20260805",
		"BOTD_EMULATOR_FAULTS":   "reorder=0.2,duplicate=0.2,delay=0.05,roster_gap=0.1,operation_failed=0.2,throttle=0.03,unavailable=0.03",
		"BOTD_OPERATION_TIMEOUT": "6s",
		"BOTD_DELTA_GAP_TIMEOUT": "500ms",
		"BOTD_GRAPH_MAX_RETRIES": "8",
	})
	forms := map[string][]byte{}
	for _, f := range []string{"003_01", "003_26", "003_10"} {
		forms[f], _ = json.Marshal(e2eCreateBody(t, f))
	}
	party := func(kind, id string) map[string]any {
		return map[string]any{"identity": map[string]any{kind: map[string]any{"id": id}}}
	}
	// What happens to call i's invite.
	type plan struct {
		form      string
		invitees  []any
		refused   bool // every invitee declines or is busy: it cannot complete
		straggler bool // hung up while the invitee rings: Graph never reports it
	}
	planFor := func(i int) plan {
		switch {
		case i%10 == 9:
			return plan{form: "003_26", invitees: []any{party("phone", "+1555555"+emulator.PhoneSuffixNoAnswer)}, straggler: true}
		case i%4 == 3: // a group call, and an invite of two, reported with "id": null
			return plan{form: "003_10", invitees: []any{party("user", uuid.NewString()), party("phone", "+1555555"+emulator.PhoneSuffixBusy)}}
		case i%3 == 0:
			return plan{form: "003_26", invitees: []any{party("phone", "+1555555"+emulator.PhoneSuffixDecline)}, refused: true}
		case i%3 == 1:
			return plan{form: "003_01", invitees: []any{party("user", uuid.NewString())}} // delta roster
		}
		return plan{form: "003_26", invitees: []any{party("phone", "+1555555"+emulator.PhoneSuffixBusy)}, refused: true}
	}
	type placed struct {
		plan
		id, cc string
	}
	var (
		mu     sync.Mutex
		done   []placed
		errs   []error
		jobs   = make(chan int)
		wg     sync.WaitGroup
		failed = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := placed{plan: planFor(i), cc: uuid.NewString()}
				var body map[string]any
				_ = json.Unmarshal(forms[p.form], &body)
				v, err := e2eTryCreate(b, body)
				if err != nil {
					failed(fmt.Errorf("call %d: %w", i, err))
					continue
				}
				p.id = v.ID
				if _, err := e2eTryWaitCall(b, v.ID, e2eEstablished); err != nil {
					failed(fmt.Errorf("call %d %s not established: %w", i, v.ID, err))
					continue
				}
				invite := map[string]any{"participants": p.invitees, "clientContext": p.cc}
				if err := e2eTryInvite(b, v.ID, invite, p.cc); err != nil {
					failed(fmt.Errorf("call %d: %w", i, err))
					continue
				}
				if p.straggler {
					if code, out, err := e2eDo(http.MethodDelete, b.admin+"/v1/calls/"+v.ID, nil); err != nil || code != http.StatusAccepted {
						failed(fmt.Errorf("call %d: hang up = %d %v: %s", i, code, err, out))
						continue
					}
				}
				mu.Lock()
				done = append(done, p)
				mu.Unlock()
			}
		}()
	}
	for i := range calls {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(done) != calls {
		t.Fatalf("%d of %d calls got their invite", len(done), calls)
	}

	// Every operation ends, as the admin API shows it.
	tally := map[string]int{}
	stragglers := 0
	pending := done
	deadline := time.Now().Add(e2eBound)
	for len(pending) > 0 {
		var still []placed
		for _, p := range pending {
			v, ok, err := e2eGetCall(b, p.id)
			if err != nil || !ok {
				t.Fatalf("call %s: %v (tracked %v)", p.id, err, ok)
			}
			op := e2eOp(&v, p.cc)
			switch {
			case op == nil:
				t.Fatalf("call %s: invite %s lost: operations %+v", p.id, p.cc, v.Operations)
			case !op.Status.Final():
				still = append(still, p)
				continue
			case p.straggler && (op.Status != model.OpFailed || op.FailureReason != "timeout"):
				t.Errorf("call %s, hung up while ringing: invite %s %s %q, want failed by timeout", p.id, p.cc, op.Status, op.FailureReason)
			case !p.straggler && op.FailureReason == "timeout":
				t.Errorf("call %s: invite %s failed by timeout: its notification never came", p.id, p.cc)
			case op.Status == model.OpCompleted && p.refused:
				t.Errorf("call %s: invite %s completed though its invitee refused", p.id, p.cc)
			}
			if p.straggler {
				stragglers++
			}
			key := string(op.Status)
			if op.FailureReason != "" {
				key += "/" + op.FailureReason
			} else if op.ResultInfo != nil {
				key += "/" + strconv.Itoa(int(op.ResultInfo.Code))
			}
			tally[key]++
		}
		pending = still
		if len(pending) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d invite operations still running (e.g. call %s): %v", len(pending), pending[0].id, tally)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("invite outcomes: %v", tally)
	if tally["completed"] == 0 || stragglers != calls/10 {
		t.Errorf("outcomes %v, %d stragglers: want some completed and %d stragglers", tally, stragglers, calls/10)
	}
	if n := e2eMetric(t, b, "botd_call_operations_total", `type="invite"`, `status="sent"`); n != calls {
		t.Errorf("botd counted %v invites sent, want %d", n, calls)
	}
}

package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

func TestFaultReorderSwapsAdjacentNotifications(t *testing.T) {
	e := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultReorder: {Next: 1}}, Timing: Timing{ReorderHold: 1000 * time.Hour}})
	c := e.create(callTo(user(johnID, "John")))
	ns := e.bot.waitFor("three notifications", countFor(3, c.ID))
	if got, want := describeCall(ns, c.ID), []string{"call updated established", "call updated establishing", "roster 2"}; !slices.Equal(got, want) {
		t.Errorf("sequence %q, want %q", got, want)
	}
	if n := e.s.FaultsInjected(FaultReorder); n != 1 {
		t.Errorf("FaultsInjected = %d", n)
	}

	// A held notification that nothing overtakes goes out after the hold.
	e2 := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultReorder: {Next: 1}},
		PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerNoAnswer}}, Timing: Timing{Ring: 1000 * time.Hour}})
	c2 := e2.create(callTo(user(johnID, "John")))
	e2.bot.waitFor("the held establishing", countFor(1, c2.ID))
}

func TestFaultDuplicate(t *testing.T) {
	e := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultDuplicate: {Next: 1}}})
	c := e.create(callTo(user(johnID, "John")))
	ns := e.bot.waitFor("four notifications", countFor(4, c.ID))
	if got, want := describeCall(ns, c.ID), []string{"call updated establishing", "call updated establishing", "call updated established", "roster 2"}; !slices.Equal(got, want) {
		t.Errorf("sequence %q, want %q", got, want)
	}
	ds := e.s.Deliveries()
	if len(ds) < 2 || ds[0].Duplicate || !ds[1].Duplicate || !bytes.Equal(ds[0].Body, ds[1].Body) {
		t.Errorf("deliveries %+v", ds[:min(2, len(ds))])
	}
}

func TestFaultRosterGap(t *testing.T) {
	e := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultRosterGap: {Next: 1}}})
	c := e.create(`{"@odata.type":"#microsoft.graph.call","targets":[` + user(johnID, "John") + `],` + media + `,
	  "callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions","isDeltaRosterEnabled":true}}`)
	e.bot.waitFor("first delta", countFor(3, c.ID))
	e.invite(c.ID, inviteOf("gap", user(maryID, "Mary")))
	ns := e.bot.waitFor("second delta", countFor(5, c.ID))
	if got, want := describeCall(ns, c.ID), []string{"call updated establishing", "call updated established", "delta #2 +2", "operation deleted completed", "delta #3 +1"}; !slices.Equal(got, want) {
		t.Errorf("sequence %q, want %q (#1 skipped)", got, want)
	}
}

func TestFaultOperation(t *testing.T) {
	e := newEmu(t, Options{})
	c := e.create(callTo(user(johnID, "John"), user(paulID, "Paul")))
	e.established(c.ID)
	e.s.InjectNext(FaultOperation, 1)
	op := e.invite(c.ID, inviteOf("fail", user(maryID, "Mary")))
	ns := e.bot.waitFor("failed operation", func(ns []note) bool {
		_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation })
		return ok
	})
	o, _ := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation })
	if o.Operation.Status != model.OpFailed || o.Operation.ResultInfo.Code != 500 || o.Path.SubID != op.ID {
		t.Errorf("operation %s", o.Body)
	}
	// The next invite is not affected.
	e.invite(c.ID, inviteOf("ok", user(maryID, "Mary")))
	e.bot.waitFor("completed operation", func(ns []note) bool {
		o, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation })
		return ok && o.Operation.Status == model.OpCompleted
	})
}

func TestInjectedHTTPFaults(t *testing.T) {
	e := newEmu(t, Options{})
	id := e.s.PutCall(model.Call{State: model.StateEstablished})

	e.s.InjectNext(FaultThrottle, 1)
	a := e.graph(http.MethodPost, "/communications/calls", callTo(user(johnID, "John")))
	var eb ErrorBody
	a.json(t, &eb)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "1" || eb.Error.Code != "TooManyRequests" {
		t.Errorf("throttled: %d %v %s", a.status, a.header, a.body)
	}
	if n := len(e.s.Calls()); n != 1 {
		t.Errorf("a throttled create made a call: %d calls", n)
	}
	e.s.InjectNext(FaultUnavailable, 2)
	for range 2 {
		if a := e.graph(http.MethodGet, "/communications/calls/"+id, ""); a.status != http.StatusServiceUnavailable {
			t.Errorf("unavailable: %d", a.status)
		}
	}
	if a := e.graph(http.MethodGet, "/communications/calls/"+id, ""); a.status != http.StatusOK {
		t.Errorf("after the injected faults: %d", a.status)
	}

	e.s.InjectNext(FaultToken, 1)
	res, err := http.PostForm(e.s.TokenURL(), tokenForm(e.s.Options()))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" {
		t.Errorf("token fault: %d %v", res.StatusCode, body)
	}
	fetchToken(t, e.s) // works again

	for _, k := range []FaultKind{FaultThrottle, FaultUnavailable, FaultToken} {
		if n, want := e.s.FaultsInjected(k), map[FaultKind]int{FaultThrottle: 1, FaultUnavailable: 2, FaultToken: 1}[k]; n != want {
			t.Errorf("FaultsInjected(%s) = %d, want %d", k, n, want)
		}
	}
	// Injected faults do not touch emulator-only routes.
	e.s.SetFaultRule(FaultThrottle, FaultRule{Probability: 1})
	if a := send(t, http.MethodGet, e.s.OpenIDConfigURL(), "", "", ""); a.status != http.StatusOK {
		t.Errorf("openid under throttling: %d", a.status)
	}
	e.s.ClearFaultRules()
	if a := e.graph(http.MethodGet, "/communications/calls/"+id, ""); a.status != http.StatusOK {
		t.Errorf("after ClearFaultRules: %d", a.status)
	}
}

func TestFaultProbability(t *testing.T) {
	e := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultDuplicate: {Probability: 1}}})
	c := e.create(callTo(user(johnID, "John")))
	ns := e.bot.waitFor("every notification twice", countFor(6, c.ID))
	got := describeCall(ns, c.ID)
	for i := 0; i < 6; i += 2 {
		if got[i] != got[i+1] {
			t.Errorf("sequence %q, want each notification twice", got)
			break
		}
	}
	e.s.SetFaultRule(FaultDuplicate, FaultRule{})
	before := e.s.FaultsInjected(FaultDuplicate)
	c2 := e.create(callTo(user(maryID, "Mary")))
	e.established(c2.ID)
	if n := e.s.FaultsInjected(FaultDuplicate); n != before {
		t.Errorf("duplicates after the rule was cleared: %d -> %d", before, n)
	}
}

func TestDeliveryRetriesAndFailures(t *testing.T) {
	t.Run("5xx then accepted", func(t *testing.T) {
		e := newEmu(t, Options{PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerNoAnswer}}, Timing: Timing{Ring: 1000 * time.Hour}})
		e.bot.answer = func(n int) int {
			if n < 2 {
				return http.StatusBadGateway
			}
			return http.StatusAccepted
		}
		c := e.create(callTo(user(johnID, "John")))
		e.bot.waitFor("establishing", countFor(1, c.ID))
		waitFor(t, func() bool { return len(e.s.Deliveries()) == 1 })
		d := e.s.Deliveries()[0]
		st := e.s.DeliveryStats()
		if d.Attempts != 3 || d.Status != http.StatusAccepted || d.Err != "" || st.Retries != 2 || st.Delivered != 1 || st.Failed != 0 {
			t.Errorf("delivery %+v stats %+v", d, st)
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		e := newEmu(t, Options{PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerNoAnswer}}, Timing: Timing{Ring: 1000 * time.Hour}})
		e.bot.answer = func(int) int { return http.StatusUnauthorized }
		e.create(callTo(user(johnID, "John")))
		waitFor(t, func() bool { return e.s.DeliveryStats().Failed == 1 })
		if st := e.s.DeliveryStats(); st.Attempts != 1 || st.Retries != 0 || st.Delivered != 0 {
			t.Errorf("stats %+v", st)
		}
		if d := e.s.Deliveries()[0]; d.Status != http.StatusUnauthorized || !strings.Contains(d.Err, "401") {
			t.Errorf("delivery %+v", d)
		}
	})
	t.Run("connection refused, retried then given up", func(t *testing.T) {
		e := newEmu(t, Options{DeliveryRetries: 2})
		e.s.PutCall(model.Call{ID: "11111111-1111-4111-8111-111111111111", State: model.StateIncoming, CallbackURI: "http://127.0.0.1:1/callback"})
		a := e.graph(http.MethodPost, "/communications/calls/11111111-1111-4111-8111-111111111111/reject", `{"reason":"busy"}`)
		if a.status != http.StatusAccepted {
			t.Fatalf("reject: %d", a.status)
		}
		waitFor(t, func() bool { return e.s.DeliveryStats().Failed == 1 })
		if st := e.s.DeliveryStats(); st.Attempts != 3 || st.Retries != 2 {
			t.Errorf("stats %+v", st)
		}
		if d := e.s.Deliveries()[0]; d.Status != 0 || d.Err == "" || d.Attempts != 3 {
			t.Errorf("delivery %+v", d)
		}
	})
}

func TestCallbackHostPolicy(t *testing.T) {
	e := newEmu(t, Options{})
	a := e.graph(http.MethodPost, "/communications/calls", `{"callbackUri":"https://bot.contoso.com/callback",`+callTo(user(johnID, "John"))[1:])
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d", a.status)
	}
	waitFor(t, func() bool { return e.s.DeliveryStats().Skipped >= 3 })
	if st := e.s.DeliveryStats(); st.Attempts != 0 || st.Delivered != 0 {
		t.Errorf("stats %+v: nothing may be posted to bot.contoso.com", st)
	}

	// Listed hosts are allowed; "*" allows any.
	for _, c := range []struct {
		hosts []string
		u     string
		ok    bool
	}{
		{nil, "http://127.0.0.1:9/x", true},
		{nil, "http://[::1]:9/x", true},
		{nil, "http://localhost/x", true},
		{nil, "https://bot.contoso.com/x", false},
		{[]string{"bot.contoso.com"}, "https://bot.contoso.com/x", true},
		{[]string{"*"}, "https://anything.example/x", true},
		{[]string{"*"}, "ftp://anything.example/x", false},
		{nil, "", false},
		{nil, "/relative", false},
	} {
		s := New(Options{CallbackHosts: c.hosts, Seed: 1})
		if got := s.allowedCallback(c.u); got != c.ok {
			t.Errorf("hosts %v: allowedCallback(%q) = %v, want %v", c.hosts, c.u, got, c.ok)
		}
		s.Close()
	}
}

func TestCloseStopsDeliveriesAndNeverBlocksRequests(t *testing.T) {
	b := newBot(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	b.answer = func(int) int {
		entered <- struct{}{}
		<-release
		return http.StatusAccepted
	}
	defer close(release)
	s := New(Options{TimeScale: 0.001, SigningKey: testKey(), Seed: 3, Timing: Timing{KeepAlive: 1000 * time.Hour}})
	s.Start()
	tok := fetchToken(t, s)
	body := strings.Replace(callTo(user(johnID, "John")), "{", `{"callbackUri":"`+b.URL+`",`, 1)
	a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", body)
	<-entered // the worker is stuck in the bot
	// Requests still answer at once while a delivery hangs.
	for range 5 {
		if a := send(t, http.MethodPost, s.BaseURL()+"/communications/calls", tok, "", body); a.status != http.StatusCreated {
			t.Fatalf("create while a delivery hangs: %d", a.status)
		}
	}
	var c model.Call
	a.json(t, &c)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	<-done // Close must not wait for the bot
	st := s.DeliveryStats()
	if st.Failed < 1 || st.Delivered != 0 {
		t.Errorf("stats after Close %+v", st)
	}
	if _, err := s.Incoming(IncomingCall{From: Party{Phone: "+15555550100"}, CallbackURI: b.URL}); err == nil {
		t.Error("Incoming after Close succeeded")
	}
	if s.EndCall(c.ID, nil) {
		t.Error("EndCall after Close succeeded")
	}
}

func TestSeedDeterminism(t *testing.T) {
	run := func(seed int64) []string {
		e := newEmu(t, Options{Seed: seed, DeclineProbability: 0.3, NoAnswerProbability: 0.2, Timing: Timing{Ring: 5 * time.Second},
			Faults: map[FaultKind]FaultRule{FaultDuplicate: {Probability: 0.3}, FaultRosterGap: {Probability: 0.4}, FaultOperation: {Probability: 0.2}}})
		c := e.create(`{"@odata.type":"#microsoft.graph.call",` + media + `,"meetingInfo":{"@odata.type":"#microsoft.graph.joinMeetingIdMeetingInfo","joinMeetingId":"42"},
		  "callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions","isDeltaRosterEnabled":true,"isContentSharingNotificationEnabled":true}}`)
		e.bot.waitFor("content sharing", func(ns []note) bool {
			_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventContentSharing })
			return ok
		})
		// Invites one after the other: all of one invite's notifications
		// are queued before its operation's end arrives, so the next one
		// starts from the same state in every run.
		for _, id := range []string{johnID, maryID, paulID, "u4", "u5", "u6"} {
			op := e.invite(c.ID, inviteOf("det", user(id, "User")))
			e.bot.waitFor("operation end", func(ns []note) bool {
				_, ok := lastWhere(ns, c.ID, func(n note) bool { return n.Kind == model.EventOperation && n.Path.SubID == op.ID })
				return ok
			})
		}
		if a := e.graph(http.MethodDelete, "/communications/calls/"+c.ID, ""); a.status != http.StatusNoContent {
			t.Fatalf("delete: %d", a.status)
		}
		ns := e.bot.waitFor("terminated", terminatedCall(c.ID))
		var out []string
		for _, n := range forCall(ns, c.ID) {
			out = append(out, strings.ReplaceAll(string(n.Body), e.bot.URL, "BOT")) // the bot's port differs per run
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		i := 0
		for i < min(len(a), len(b)) && a[i] == b[i] {
			i++
		}
		t.Errorf("same seed, different notifications (%d and %d); first difference at #%d:\n%s\n---\n%s",
			len(a), len(b), i, at(a, i), at(b, i))
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave identical notifications")
	}
}

func TestSeedIsLoggedAndPicked(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	s := New(Options{Log: zerolog.New(lockedWriter{&mu, &buf})})
	defer s.Close()
	if s.Seed() == 0 || s.Options().Seed != s.Seed() {
		t.Fatalf("Seed() = %d, Options().Seed = %d", s.Seed(), s.Options().Seed)
	}
	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	var line struct {
		Seed int64 `json:"seed"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(logged)), &line); err != nil || line.Seed != s.Seed() {
		t.Errorf("log %q, want the seed %d", logged, s.Seed())
	}
	if New(Options{Seed: 99}).Seed() != 99 {
		t.Error("explicit seed not kept")
	}
}

// TestEveryNotificationDecodes runs every flow the emulator has, with the
// notification faults on, and decodes every body it posted with botd's
// decoder: no item may be rejected or unrecognised.
func TestEveryNotificationDecodes(t *testing.T) {
	e := newEmu(t, Options{Faults: map[FaultKind]FaultRule{FaultDuplicate: {Probability: 0.2}, FaultRosterGap: {Probability: 0.2}},
		Timing: Timing{Ring: 5 * time.Second}})
	opts := `"callOptions":{"@odata.type":"#microsoft.graph.outgoingCallOptions","isDeltaRosterEnabled":true,"isContentSharingNotificationEnabled":true}`
	p2p := e.create(callTo(user(johnID, "John")))
	delta := e.create(`{"@odata.type":"#microsoft.graph.call","targets":[` + user(maryID, "Mary") + `],` + media + `,` + opts + `}`)
	group := e.create(callTo(user(paulID, "Paul"), phone("+15550000000"), phone("+15559999999")))
	meeting := e.create(meetingBody)
	joinID := e.create(joinMeetingIDBody)
	declined := e.create(callTo(phone("+12345670000")))
	for _, c := range []model.Call{p2p, delta, group, meeting, joinID} {
		e.established(c.ID)
	}
	e.invite(group.ID, inviteOf("one", user("u9", "Nine")))
	e.invite(meeting.ID, inviteOf("several", user("u7", "Seven"), phone("+12345670000")))
	e.invite(delta.ID, inviteOf("delta", phone("+12345679999")))
	e.invite(group.ID, `{"participants":[{"replacesCallId":"`+p2p.ID+`","identity":{"user":{"id":"`+johnID+`"}}}],"clientContext":"r"}`)
	in := e.incoming(`{"from":{"phone":"+15555550100"}}`)
	e.bot.waitFor("incoming", countFor(1, in.ID))
	e.graph(http.MethodPost, "/communications/calls/"+in.ID+"/answer", strings.Replace(answerBody, "%s", e.bot.URL, 1))
	in2 := e.incoming(`{"from":{"user":"u8"}}`)
	e.bot.waitFor("incoming", countFor(1, in2.ID))
	e.graph(http.MethodPost, "/communications/calls/"+in2.ID+"/reject", `{"reason":"none"}`)
	e.graph(http.MethodPost, "/communications/calls/"+joinID.ID+"/transfer", `{"transferTarget":`+user("u10", "Ten")+`}`)
	e.graph(http.MethodDelete, "/communications/calls/"+meeting.ID, "")
	e.s.EndCall(delta.ID, nil)
	for _, id := range []string{p2p.ID, in2.ID, meeting.ID, delta.ID, declined.ID, joinID.ID} {
		e.bot.waitFor("end of "+id, terminatedCall(id))
	}

	dec := notify.NewDecoder(notify.DefaultLimits())
	kinds := map[model.EventKind]int{}
	changes := map[model.ChangeType]int{}
	for _, d := range e.s.Deliveries() {
		batch, err := dec.Decode(d.Body)
		if err != nil || len(batch.Rejected) != 0 || len(batch.Events) != 1 {
			t.Fatalf("decode: %v %v\n%s", err, batch, d.Body)
		}
		ev := batch.Events[0]
		if ev.Kind == model.EventUnknown || ev.CallID() != d.CallID || ev.Resource == "" || ev.ResourceURL == "" || ev.CallbackURI == "" {
			t.Errorf("event %+v from\n%s", ev, d.Body)
		}
		kinds[ev.Kind]++
		changes[ev.ChangeType]++
	}
	for _, k := range []model.EventKind{model.EventCall, model.EventRoster, model.EventRosterDelta, model.EventOperation, model.EventContentSharing} {
		if kinds[k] == 0 {
			t.Errorf("no %s notification in the tour: %v", k, kinds)
		}
	}
	for _, c := range []model.ChangeType{model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted} {
		if changes[c] == 0 {
			t.Errorf("no %s notification in the tour: %v", c, changes)
		}
	}
}

func TestRun(t *testing.T) {
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// Run cannot listen on a taken address.
	if err := Run(context.Background(), Options{Seed: 1}, addr); err == nil {
		t.Error("Run on a taken address succeeded")
	}
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A client id of its own, so that another emulator that later gets the
	// same port (tests run in parallel processes) is not mistaken for it.
	opts := Options{Seed: 1, SigningKey: testKey(), TenantID: "run-" + strconv.Itoa(os.Getpid()), ClientID: "c-" + addr}
	go func() { done <- Run(ctx, opts, addr) }()
	waitFor(t, func() bool {
		res, err := http.Get("http://" + addr + openIDPath)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	form := tokenForm(Options{ClientID: opts.ClientID, ClientSecret: DefaultClientSecret})
	if res, err := http.PostForm("http://"+addr+"/"+opts.TenantID+"/oauth2/v2.0/token", form); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("still serving after ctx ended")
		}
	}
}

func TestIncomingEndpointErrors(t *testing.T) {
	e := newEmu(t, Options{})
	noCallback := New(Options{Seed: 1})
	noCallback.Start()
	defer noCallback.Close()
	for _, c := range []struct {
		s      *Server
		body   string
		status int
		msg    string
	}{
		{e.s, `{"from":{}}`, 400, "phone or user is required"},
		{e.s, `{"from":{"phone":"12345"}}`, 400, "E.164"},
		{e.s, `{"from":{"phone":"+1555","user":"u"}}`, 400, "not both"},
		{e.s, `{"from":{"user":"u"},"to":{"user":"x"}}`, 400, "only phone"},
		{e.s, `{"from":{"user":"u"},"colour":"red"}`, 400, "unknown field"},
		{e.s, `{"from":{"user":"u"}} {}`, 400, "more than one value"},
		{e.s, `{"from":{"user":"u"},"callbackUri":"ftp://x"}`, 400, "callbackUri"},
		{e.s, `{"from":{"user":"u"},"modalities":["smell"]}`, 400, "modalities"},
		{noCallback, `{"from":{"user":"u"}}`, 400, "BotCallbackURL"},
	} {
		a := send(t, http.MethodPost, c.s.URL()+"/emulator/incoming", "", "", c.body)
		var eb ErrorBody
		a.json(t, &eb)
		if a.status != c.status || !strings.Contains(eb.Error.Message, c.msg) {
			t.Errorf("%s: %d %s, want %d mentioning %q", c.body, a.status, a.body, c.status, c.msg)
		}
	}
	a := send(t, http.MethodPost, e.s.URL()+"/emulator/incoming", "", "", `{"from":{"user":"u"}}`)
	loc, _ := url.Parse(a.header.Get("Location"))
	var c model.Call
	a.json(t, &c)
	if a.status != http.StatusCreated || loc == nil || loc.Path != "/v1.0/communications/calls/"+c.ID {
		t.Errorf("created: %d Location %q", a.status, a.header.Get("Location"))
	}
	if got, _ := e.s.Call(c.ID); got.State != model.StateIncoming || got.CallbackURI != e.bot.URL {
		t.Errorf("stored %+v", got)
	}
}

func at(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return "(none)"
}

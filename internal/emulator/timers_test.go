package emulator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/notify"
)

// Tests here run at Graph's real time scale inside a synctest bubble:
// time is fake, so "nothing at 14.999 s, terminated at 15.001 s" is exact
// and instant. The emulator is driven through its Handler and posts to
// the bot through an in-process transport, so nothing touches the network.

// bubble is an emulator and a bot wired in process. Call it inside
// synctest.Test.
type bubble struct {
	t   *testing.T
	s   *Server
	bot *bot
	tok string
}

func newBubble(t *testing.T, opts Options) *bubble {
	b := &bot{t: t, dec: notify.NewDecoder(notify.DefaultLimits()), changed: make(chan struct{}), URL: "http://bot.test/api/calls"}
	opts.HTTPClient = &http.Client{Transport: handlerTransport{b}}
	opts.CallbackHosts = []string{"bot.test"}
	opts.BotCallbackURL = b.URL
	opts.SigningKey = testKey()
	opts.TokenTTL = 100 * time.Hour
	if opts.Seed == 0 {
		opts.Seed = 7
	}
	s := New(opts)
	t.Cleanup(s.Close)
	bb := &bubble{t: t, s: s, bot: b}
	rec := bb.serve(http.MethodPost, "/"+s.Options().TenantID+"/oauth2/v2.0/token", tokenForm(s.Options()).Encode(), "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	answer{rec.Code, rec.Header(), rec.Body.Bytes()}.json(t, &tok)
	bb.tok = tok.AccessToken
	return bb
}

func (b *bubble) notes() []note {
	ns, _ := b.bot.snapshot()
	return ns
}

func (b *bubble) serve(method, path, body, ctype string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if b.tok != "" {
		req.Header.Set("Authorization", "Bearer "+b.tok)
	}
	rec := httptest.NewRecorder()
	b.s.ServeHTTP(rec, req)
	return rec
}

func (b *bubble) graph(method, path, body string) answer {
	rec := b.serve(method, "/v1.0"+path, body, "application/json")
	return answer{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (b *bubble) create(body string) model.Call {
	b.t.Helper()
	body = strings.Replace(body, "{", `{"callbackUri":"`+b.bot.URL+`",`, 1)
	a := b.graph(http.MethodPost, "/communications/calls", body)
	if a.status != http.StatusCreated {
		b.t.Fatalf("create: %d %s", a.status, a.body)
	}
	var c model.Call
	a.json(b.t, &c)
	return c
}

// settle lets d of fake time pass and everything due run.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestIncomingCallDroppedAfter15Seconds(t *testing.T) {
	testKey()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		c, err := b.s.Incoming(IncomingCall{From: Party{Phone: "+15555550100"}})
		if err != nil {
			t.Fatal(err)
		}
		settle(15*time.Second - time.Millisecond)
		if got := describeCall(b.notes(), c.ID); len(got) != 1 || got[0] != "call created incoming" {
			t.Fatalf("before 15 s: %q", got)
		}
		if got, _ := b.s.Call(c.ID); got.State != model.StateIncoming {
			t.Fatalf("before 15 s the call is %q", got.State)
		}
		settle(2 * time.Millisecond)
		if got := describeCall(b.notes(), c.ID); len(got) != 2 || got[1] != "call deleted terminated 408/1106" {
			t.Fatalf("after 15 s: %q", got)
		}
		a := b.graph(http.MethodPost, "/communications/calls/"+c.ID+"/answer", strings.Replace(answerBody, "%s", b.bot.URL, 1))
		if a.status != http.StatusNotFound {
			t.Errorf("answering a dropped call: %d", a.status)
		}

		// Answered in time, it stays up.
		c2, _ := b.s.Incoming(IncomingCall{From: Party{User: johnID}})
		settle(14 * time.Second)
		if a := b.graph(http.MethodPost, "/communications/calls/"+c2.ID+"/answer", strings.Replace(answerBody, "%s", b.bot.URL, 1)); a.status != http.StatusAccepted {
			t.Fatalf("answer: %d %s", a.status, a.body)
		}
		settle(time.Minute)
		if got, _ := b.s.Call(c2.ID); got.State != model.StateEstablished {
			t.Errorf("answered call is %q a minute later", got.State)
		}
	})
}

func TestKeepAliveExpiryAt45Minutes(t *testing.T) {
	testKey()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		c := b.create(callTo(user(johnID, "John")))
		settle(30 * time.Minute)
		if got, _ := b.s.Call(c.ID); got.State != model.StateEstablished {
			t.Fatalf("after 30 min the call is %q", got.State)
		}
		if a := b.graph(http.MethodPost, "/communications/calls/"+c.ID+"/keepAlive", ""); a.status != http.StatusOK {
			t.Fatalf("keepAlive: %d", a.status)
		}
		settle(45*time.Minute - time.Millisecond)
		if got, _ := b.s.Call(c.ID); got.State != model.StateEstablished {
			t.Fatalf("45 min after the keepAlive, less a millisecond, the call is %q", got.State)
		}
		settle(2 * time.Millisecond)
		ns := b.notes()
		end, ok := lastWhere(ns, c.ID, isTerminated)
		if !ok || end.Call.ResultInfo.Code != 408 || end.Call.ResultInfo.Subcode != 8537 {
			t.Fatalf("no keepAlive expiry: %q", describeCall(ns, c.ID))
		}
		if a := b.graph(http.MethodPost, "/communications/calls/"+c.ID+"/keepAlive", ""); a.status != http.StatusNotFound {
			t.Errorf("keepAlive after expiry: %d", a.status)
		}
	})
}

func TestFaultDelayHoldsANotification(t *testing.T) {
	testKey()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{
			Faults:     map[FaultKind]FaultRule{FaultDelay: {Next: 1}},
			Timing:     Timing{FaultDelay: 10 * time.Second},
			PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerAccept, After: time.Hour}},
		})
		c := b.create(callTo(user(johnID, "John")))
		settle(b.s.opts.Timing.Step + 10*time.Second - time.Millisecond)
		if n := len(b.notes()); n != 0 {
			t.Fatalf("delayed notification arrived early: %q", describeCall(b.notes(), c.ID))
		}
		settle(2 * time.Millisecond)
		if got := describeCall(b.notes(), c.ID); len(got) != 1 || got[0] != "call updated establishing" {
			t.Fatalf("after the delay: %q", got)
		}
		if n := b.s.FaultsInjected(FaultDelay); n != 1 {
			t.Errorf("FaultsInjected = %d", n)
		}
	})
}

func TestDeliveryBackoffDoubles(t *testing.T) {
	testKey()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{PeopleByID: map[string]Behaviour{johnID: {Answer: AnswerAccept, After: time.Hour}}})
		var mu sync.Mutex
		var at []time.Duration
		start := time.Now()
		b.bot.answer = func(n int) int {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Since(start))
			if n < 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusAccepted
		}
		b.create(callTo(user(johnID, "John")))
		settle(time.Minute)
		mu.Lock()
		defer mu.Unlock()
		step, back := b.s.opts.Timing.Step, b.s.opts.Timing.RetryBackoff
		want := []time.Duration{step, step + back, step + 3*back, step + 7*back}
		if len(at) != len(want) {
			t.Fatalf("attempts at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("attempts at %v, want %v", at, want)
				break
			}
		}
		st := b.s.DeliveryStats()
		if st.Delivered != 1 || st.Retries != 3 || st.Attempts != 4 || st.Failed != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestBubbleHelpersUseNoNetwork guards the premise of this file: a
// callback URL outside the allowed hosts is skipped, not dialled.
func TestBubbleHelpersUseNoNetwork(t *testing.T) {
	testKey()
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		b.s.mu.Lock()
		b.s.opts.CallbackHosts = nil
		b.s.mu.Unlock()
		u, _ := url.Parse(b.bot.URL)
		if b.s.allowedCallback(u.String()) {
			t.Fatal("bot.test allowed without CallbackHosts")
		}
		b.create(callTo(user(johnID, "John")))
		settle(time.Minute)
		if st := b.s.DeliveryStats(); st.Attempts != 0 || st.Skipped == 0 {
			t.Errorf("stats %+v, want everything skipped", st)
		}
	})
}

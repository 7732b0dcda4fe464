package emulator

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/botd/botd/internal/netx"
)

// DeliveryStats counts what happened to the notifications the emulator
// built. Each notification ends up Delivered, Failed, Skipped or Dropped;
// a duplicated one counts twice.
type DeliveryStats struct {
	// Delivered: the bot answered 2xx.
	Delivered int
	// Failed: the bot answered 4xx other than 429, or every retry failed.
	Failed int
	// Skipped: the call had no callbackUri, or its host is not allowed
	// (Options.CallbackHosts); nothing was posted.
	Skipped int
	// Dropped: the call's queue was full, or the emulator closed first.
	Dropped int
	// Attempts counts HTTP POSTs; Retries those after a first one.
	Attempts, Retries int
}

// Delivery is one notification the emulator posted, as recorded.
type Delivery struct {
	CallID string
	URL    string
	// Body is the commsNotifications document posted.
	Body []byte
	// Status is the bot's last answer, 0 if it never answered.
	Status   int
	Attempts int
	// Err says why delivery failed; "" if it was delivered.
	Err string
	// Duplicate marks the second post of a duplicated notification.
	Duplicate bool
}

// message is one notification waiting in a call's outbox.
type message struct {
	callID, chainID, url string
	body                 []byte
	delay                time.Duration // FaultDelay
	dup                  bool          // FaultDuplicate
}

// outbox holds one call's notifications in order; one worker posts them.
type outbox struct {
	queue   []*message
	held    *message // FaultReorder: waits for the next one to overtake it
	holdT   uint64
	running bool
}

// sendLocked builds the document for it and queues it on the call's
// outbox, deciding the injected faults. It never blocks: a worker posts.
// Callers hold s.mu.
func (s *Server) sendLocked(cs *callState, it item) {
	if s.stopping {
		s.stats.Dropped++
		return
	}
	b, err := body(it)
	if err != nil {
		s.opts.Log.Error().Err(err).Str("component", "emulator").Msg("marshal notification")
		return
	}
	u := it.CallbackURI
	if !s.allowedCallback(u) {
		s.stats.Skipped++
		s.opts.Log.Debug().Str("component", "emulator").Str("call_id", cs.call.ID).Str("callback", u).
			Msg("notification not posted: no callbackUri or host not allowed (Options.CallbackHosts)")
		return
	}
	m := &message{callID: cs.call.ID, chainID: cs.call.CallChainID, url: u, body: b}
	if s.injectLocked(FaultDuplicate, cs.faultRNG) {
		m.dup = true
	}
	if s.injectLocked(FaultDelay, cs.faultRNG) {
		m.delay = s.scaled(s.opts.Timing.FaultDelay)
	}
	ob := s.outboxes[m.callID]
	if ob == nil {
		ob = &outbox{}
		s.outboxes[m.callID] = ob
	}
	if len(ob.queue) >= s.opts.QueueLimit {
		s.stats.Dropped++
		return
	}
	switch {
	case ob.held != nil:
		// The held notification goes right after this one: the pair is
		// swapped.
		ob.queue = append(ob.queue, m, ob.held)
		ob.held = nil
		s.stopTimerLocked(ob.holdT)
	case s.injectLocked(FaultReorder, cs.faultRNG):
		ob.held = m
		ob.holdT = s.afterLocked(s.scaled(s.opts.Timing.ReorderHold), func() {
			if ob.held == m { // nothing came to overtake it
				ob.queue = append(ob.queue, m)
				ob.held = nil
				s.kickLocked(m.callID, ob)
			}
		})
		return
	default:
		ob.queue = append(ob.queue, m)
	}
	s.kickLocked(m.callID, ob)
}

// kickLocked starts the outbox's worker if it has work and none runs.
// Callers hold s.mu.
func (s *Server) kickLocked(callID string, ob *outbox) {
	if ob.running || len(ob.queue) == 0 || s.stopping {
		return
	}
	ob.running = true
	s.bg.Add(1)
	go s.work(callID, ob)
}

// work posts a call's notifications one at a time, in order, and exits
// when the outbox is empty (or the emulator closes).
func (s *Server) work(callID string, ob *outbox) {
	defer s.bg.Done()
	for {
		s.mu.Lock()
		if len(ob.queue) == 0 || s.stopping {
			ob.running = false
			s.stats.Dropped += len(ob.queue)
			ob.queue = nil
			if ob.held == nil && s.outboxes[callID] == ob {
				delete(s.outboxes, callID)
			}
			s.mu.Unlock()
			return
		}
		m := ob.queue[0]
		ob.queue[0] = nil
		ob.queue = ob.queue[1:]
		s.mu.Unlock()
		if m.delay > 0 && !s.sleep(m.delay) {
			s.count(func(st *DeliveryStats) { st.Dropped++ })
			continue
		}
		s.post(m, false)
		if m.dup {
			s.post(m, true)
		}
	}
}

// post delivers one notification, retrying 5xx, 429 and connection
// errors with doubling backoff (or the bot's Retry-After), and records
// the outcome.
func (s *Server) post(m *message, dup bool) {
	d := Delivery{CallID: m.callID, URL: m.url, Body: m.body, Duplicate: dup}
	for {
		d.Attempts++
		status, retryAfter, err := s.postOnce(m)
		d.Status = status
		s.count(func(st *DeliveryStats) {
			st.Attempts++
			if d.Attempts > 1 {
				st.Retries++
			}
		})
		if err == nil && status >= 200 && status < 300 {
			d.Err = ""
			s.finish(d, true)
			return
		}
		if err != nil {
			d.Err = err.Error()
		} else {
			d.Err = "bot answered " + strconv.Itoa(status)
		}
		retryable := err != nil || status >= 500 || status == http.StatusTooManyRequests
		if !retryable || d.Attempts > s.opts.DeliveryRetries || s.ctx.Err() != nil {
			s.finish(d, false)
			return
		}
		wait := s.scaled(s.opts.Timing.RetryBackoff << (d.Attempts - 1))
		if retryAfter > 0 {
			wait = s.scaled(retryAfter)
		}
		if !s.sleep(wait) {
			s.finish(d, false)
			return
		}
	}
}

func (s *Server) postOnce(m *message) (status int, retryAfter time.Duration, err error) {
	tok, err := s.callbackToken()
	if err != nil {
		return 0, 0, fmt.Errorf("sign callback token: %w", err)
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, m.url, bytes.NewReader(m.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	// The headers Graph's calling platform sends with callbacks.
	req.Header.Set("User-Agent", "Microsoft-Skype/3.0,(Calling/1.0)")
	req.Header.Set("X-Microsoft-Skype-Message-ID", uuid.NewString())
	if m.chainID != "" {
		req.Header.Set("X-Microsoft-Skype-Chain-ID", m.chainID)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	if v, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && v > 0 {
		retryAfter = time.Duration(v) * time.Second
	}
	return res.StatusCode, retryAfter, nil
}

func (s *Server) finish(d Delivery, ok bool) {
	s.mu.Lock()
	if ok {
		s.stats.Delivered++
	} else {
		s.stats.Failed++
	}
	s.sent = append(s.sent, d)
	if len(s.sent) > maxRecorded {
		s.sent = slices.Delete(s.sent, 0, len(s.sent)-maxRecorded)
	}
	s.mu.Unlock()
	ev := s.opts.Log.Debug()
	if !ok {
		ev = s.opts.Log.Warn()
	}
	ev.Str("component", "emulator").Str("call_id", d.CallID).Int("status", d.Status).Int("attempts", d.Attempts).
		Bool("duplicate", d.Duplicate).Str("error", d.Err).Msg("notification delivery")
}

func (s *Server) count(f func(*DeliveryStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// sleep waits d, or returns false when the emulator closes first.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// allowedCallback reports whether notifications may be posted to u: an
// absolute http(s) URL whose host is loopback or listed in
// Options.CallbackHosts.
func (s *Server) allowedCallback(u string) bool {
	if u == "" {
		return false
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return false
	}
	host := pu.Hostname()
	if netx.IsLoopbackHost(host) {
		return true
	}
	for _, h := range s.opts.CallbackHosts {
		if h == "*" || strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// DeliveryStats returns the delivery counters.
func (s *Server) DeliveryStats() DeliveryStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Deliveries returns the notifications posted (the latest 10000), in the
// order their delivery finished.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.sent))
	for i, d := range s.sent {
		d.Body = append([]byte(nil), d.Body...)
		out[i] = d
	}
	return out
}

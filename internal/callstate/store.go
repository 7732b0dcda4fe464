package callstate

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// Errors the Store returns. They are wrapped with the action that failed;
// test with errors.Is.
var (
	// ErrTooManyCalls refuses a call that would take the Store over
	// Config.MaxCalls.
	ErrTooManyCalls error = &problem.Error{Code: problem.Unavailable, Message: "too many calls tracked"}
	// ErrUnknownCall is returned for a call id the Store does not track.
	ErrUnknownCall error = &problem.Error{Code: problem.NotFound, Message: "unknown call"}
	// ErrTooManyOperations refuses an operation on a call whose
	// Config.MaxOperationsPerCall operations are all pending.
	ErrTooManyOperations error = &problem.Error{Code: problem.Unavailable, Message: "too many pending operations on the call"}
	// ErrNoCallID refuses a call resource without an id.
	ErrNoCallID = errors.New("call has no id")
)

// errSwept says a call id was swept recently; its notifications are ignored.
var errSwept = errors.New("call swept")

const numShards = 64

// shard is one slice of the call map. Its lock is held only to look up,
// insert or delete; never while a call is locked by the same goroutine,
// except by removeLocked (lock order: call, then shard).
type shard struct {
	mu    sync.RWMutex
	calls map[string]*call
	// tombs holds the ids of calls swept recently, with the sweep time.
	tombs map[string]time.Time
}

// Store holds every call's state. It is safe for concurrent use.
type Store struct {
	cfg    Config
	log    zerolog.Logger
	m      *Metrics
	shards [numShards]shard
	ncalls atomic.Int64 // calls in the shards, for MaxCalls
	ntombs atomic.Int64 // tombstones in the shards, bounded by MaxCalls

	subMu sync.RWMutex
	subs  map[*subscriber]struct{}
	// observers get every batch in order (Observe); they are not dropped.
	observers []*observer
	nsubs     atomic.Int32 // len(subs)+len(observers), read without subMu on the hot path
}

// New returns an empty Store. Its metrics are registered on reg (nil: not
// registered); log gets component=callstate. Every setting of cfg must be
// positive (see DefaultConfig); New refuses one that is not, naming it.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Store, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:  cfg,
		log:  log.With().Str("component", "callstate").Logger(),
		m:    newMetrics(reg),
		subs: make(map[*subscriber]struct{}),
	}
	for i := range s.shards {
		s.shards[i].calls = make(map[string]*call)
		s.shards[i].tombs = make(map[string]time.Time)
	}
	return s, nil
}

func (s *Store) now() time.Time { return s.cfg.Now() }

func (s *Store) shardFor(id string) *shard {
	// FNV-1a, inline to avoid allocating a hash.Hash per lookup.
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return &s.shards[h%numShards]
}

// lockMode says what lockCall does when the id is not tracked.
type lockMode uint8

const (
	lockExisting    lockMode = iota // return ErrUnknownCall
	lockCreate                      // create, unless swept recently (errSwept)
	lockCreateFresh                 // create, even if swept recently (botd's own call)
)

// lockCall returns the call with the id, locked, creating it as mode says;
// created reports a new call. The shard lock is never held while waiting for
// a call's lock: a new call is locked before it is published in the map.
func (s *Store) lockCall(id string, mode lockMode, now time.Time) (c *call, created bool, err error) {
	sh := s.shardFor(id)
	for {
		sh.mu.RLock()
		c = sh.calls[id]
		_, swept := sh.tombs[id]
		sh.mu.RUnlock()
		if c == nil {
			if mode == lockExisting {
				return nil, false, ErrUnknownCall
			}
			if swept && mode == lockCreate {
				return nil, false, errSwept
			}
			fresh := s.newCall(id, now)
			fresh.mu.Lock()
			c, err = s.insert(sh, fresh, mode)
			if err != nil {
				return nil, false, err
			}
			if c == fresh {
				return c, true, nil
			}
			// Another goroutine inserted it first; use theirs.
		}
		c.mu.Lock()
		if !c.gone {
			return c, false, nil
		}
		// Swept between the lookup and the lock: look again.
		c.mu.Unlock()
	}
}

// insert publishes fresh (already locked by the caller) unless the id is
// present, in which case it returns the present call.
func (s *Store) insert(sh *shard, fresh *call, mode lockMode) (*call, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.calls[fresh.id]; c != nil {
		return c, nil
	}
	if _, swept := sh.tombs[fresh.id]; swept {
		if mode == lockCreate {
			return nil, errSwept
		}
		delete(sh.tombs, fresh.id)
		s.ntombs.Add(-1)
	}
	for {
		n := s.ncalls.Load()
		if n >= int64(s.cfg.MaxCalls) {
			s.m.refused.Inc()
			return nil, ErrTooManyCalls
		}
		if s.ncalls.CompareAndSwap(n, n+1) {
			break
		}
	}
	sh.calls[fresh.id] = fresh
	s.m.callsByState[0].Inc()
	return fresh, nil
}

// removeLocked deletes c, which the caller has locked, from the map and
// remembers its id as a tombstone.
func (s *Store) removeLocked(c *call, now time.Time) {
	c.gone = true
	sh := s.shardFor(c.id)
	sh.mu.Lock()
	if sh.calls[c.id] == c {
		delete(sh.calls, c.id)
		s.ncalls.Add(-1)
		if s.ntombs.Load() < int64(s.cfg.MaxCalls) {
			if _, ok := sh.tombs[c.id]; !ok {
				s.ntombs.Add(1)
			}
			sh.tombs[c.id] = now
		}
	}
	sh.mu.Unlock()
	s.m.callsByState[stateIndex(c.res.State)].Dec()
	if c.res.State != model.StateTerminated {
		s.m.participants.Sub(float64(c.roster.len()))
	}
	s.m.swept.Inc()
}

// Apply applies one decoded notification to its call (the path's call id,
// or the call resource's id) and returns the Changes it caused. A call seen
// for the first time is tracked. Ignored, duplicate and stale events are not
// errors: they are recorded (in transitions where they concern the state)
// and counted. The only error is a refusal: ErrTooManyCalls. The Store may
// keep parts of ev; the caller must not change it afterwards.
func (s *Store) Apply(ev *model.Event) ([]Change, error) {
	if ev == nil {
		return nil, nil
	}
	id := ev.CallID()
	if id == "" {
		s.ignoreEvent(ev, reasonNoCallID)
		return nil, nil
	}
	if !eventWellFormed(ev) {
		if ev.Kind == model.EventUnknown || ev.Kind > model.EventContentSharing {
			s.ignoreEvent(ev, reasonUnknownEvent)
		} else {
			s.ignoreEvent(ev, reasonMalformed)
		}
		return nil, nil
	}
	s.m.events[ev.Kind].Inc()
	now := s.now()
	c, created, err := s.lockCall(id, lockCreate, now)
	if errors.Is(err, errSwept) {
		s.ignoreEvent(ev, reasonSweptCall)
		return nil, nil
	}
	if err != nil {
		s.log.Warn().Str("call_id", id).Str("event_kind", ev.Kind.String()).Msg("call refused: too many calls")
		return nil, fmt.Errorf("apply %s notification for call %s: %w", ev.Kind, id, err)
	}
	a := &applyCtx{callID: id, now: now, idx: ev.Index, changeType: ev.ChangeType}
	if created {
		s.trackedLocked(c, a)
	}
	s.applyLocked(c, a, ev)
	return s.finishLocked(c, a), nil
}

// eventWellFormed reports whether ev has the payload its Kind says.
func eventWellFormed(ev *model.Event) bool {
	switch ev.Kind {
	case model.EventCall:
		return ev.Call != nil || ev.ChangeType == model.ChangeDeleted
	case model.EventRoster, model.EventContentSharing:
		return true
	case model.EventRosterDelta:
		return ev.Delta != nil
	case model.EventOperation:
		return ev.Operation != nil
	}
	return false
}

// ignoreEvent counts an event dropped before reaching a call.
func (s *Store) ignoreEvent(ev *model.Event, r reason) {
	s.m.ignored[r].Inc()
	s.log.Debug().Str("call_id", ev.CallID()).Str("event_kind", ev.Kind.String()).
		Str("change_type", string(ev.ChangeType)).Int("event", ev.Index).
		Str("reason", r.String()).Msg("notification ignored")
}

// finishLocked ends a locked section on c: it stamps the activity time, queues
// a's changes for delivery, unlocks c and delivers them, outside the lock.
func (s *Store) finishLocked(c *call, a *applyCtx) []Change {
	if len(a.changes) > 0 {
		c.updatedAt = a.now
	}
	deliver := s.queueLocked(c, a.changes)
	c.mu.Unlock()
	if deliver {
		s.deliver(c)
	}
	return a.changes
}

// TrackCall records a call botd created, from create-call's 201 response:
// its fields, its state and createdByBot. It is idempotent, and merges with
// what notifications for the id already said (a state they moved past is
// recorded as ignored, not applied).
func (s *Store) TrackCall(res *model.Call) ([]Change, error) {
	if res == nil || res.ID == "" {
		return nil, fmt.Errorf("track call: %w", ErrNoCallID)
	}
	now := s.now()
	c, created, err := s.lockCall(res.ID, lockCreateFresh, now)
	if err != nil {
		return nil, fmt.Errorf("track call %s: %w", res.ID, err)
	}
	a := &applyCtx{callID: res.ID, now: now, idx: -1, botd: "create call response"}
	c.createdByBot = true
	if res.Direction == "" && c.res.Direction == "" {
		c.res.Direction = model.DirectionOutgoing
	}
	if created {
		mergeCall(&c.res, res, false)
		s.trackedLocked(c, a)
	}
	if res.State != "" {
		s.setStateLocked(c, a, res.State, res, "")
	} else {
		mergeCall(&c.res, res, false)
	}
	return s.finishLocked(c, a), nil
}

// MarkTerminated ends a call for a reason of botd's own (its keepAlive got
// 404, ...). It returns nil for an unknown or already terminated call.
func (s *Store) MarkTerminated(callID, why string) []Change {
	now := s.now()
	c, _, err := s.lockCall(callID, lockExisting, now)
	if err != nil {
		return nil
	}
	a := &applyCtx{callID: callID, now: now, idx: -1, botd: why}
	s.setStateLocked(c, a, model.StateTerminated, nil, why)
	return s.finishLocked(c, a)
}

// ReplaceRoster installs a roster listed from Graph (a resync): it replaces
// the participants (reporting who joined, left or changed), clears
// rosterNeedsResync and any held deltas, and resets the delta sequence so
// that the next delta above the highest number seen sets the new baseline.
func (s *Store) ReplaceRoster(callID string, ps []model.Participant) []Change {
	now := s.now()
	c, _, err := s.lockCall(callID, lockExisting, now)
	if err != nil {
		return nil
	}
	a := &applyCtx{callID: callID, now: now, idx: -1, botd: "roster resync"}
	if c.res.State == model.StateTerminated {
		s.ignoreLocked(c, a, reasonAfterTerminated)
	} else {
		s.replaceRosterLocked(c, a, ps)
		c.delta.resetForResync()
		c.needsResync = false
	}
	return s.finishLocked(c, a)
}

// Call returns a copy of the call's state.
func (s *Store) Call(id string) (CallView, bool) {
	c, _, err := s.lockCall(id, lockExisting, time.Time{})
	if err != nil {
		return CallView{}, false
	}
	defer c.mu.Unlock()
	return c.viewLocked(), true
}

// Tenant returns the tenant of call id: its tenantId, or the tenant of
// the callback token of its notifications; "" when unknown.
func (s *Store) Tenant(id string) string {
	c, _, err := s.lockCall(id, lockExisting, time.Time{})
	if err != nil {
		return ""
	}
	defer c.mu.Unlock()
	return c.res.TenantID
}

// Calls lists every tracked call, oldest first (ties by id).
func (s *Store) Calls() []CallSummary {
	cs := s.allCalls(nil)
	out := make([]CallSummary, 0, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		if !c.gone {
			out = append(out, c.summaryLocked())
		}
		c.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b CallSummary) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Live counts the calls that have a state and are not terminated: the calls
// a draining replica waits for.
func (s *Store) Live() int {
	n := 0
	for _, c := range s.allCalls(nil) {
		c.mu.Lock()
		if !c.gone && c.res.State != "" && c.res.State != model.StateTerminated {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// allCalls appends every call in the map to buf, holding each shard's lock
// only while copying its pointers.
func (s *Store) allCalls(buf []*call) []*call {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, c := range sh.calls {
			buf = append(buf, c)
		}
		sh.mu.RUnlock()
	}
	return buf
}

// queueLocked appends changes to c's outbox and reports whether the caller
// must deliver it (no other goroutine is delivering c's changes).
func (s *Store) queueLocked(c *call, changes []Change) bool {
	if len(changes) == 0 {
		return false
	}
	for _, ch := range changes {
		s.m.changes[ch.Kind].Inc()
	}
	if s.nsubs.Load() == 0 {
		return false
	}
	c.outbox = append(c.outbox, changes...)
	if c.delivering {
		return false
	}
	c.delivering = true
	return true
}

// deliver hands c's outbox to observers and subscribers until it is empty. One
// goroutine at a time delivers a call's changes, so they arrive in order,
// and no lock is held while an observer runs.
func (s *Store) deliver(c *call) {
	for {
		c.mu.Lock()
		batch := c.outbox
		c.outbox = nil
		if len(batch) == 0 {
			c.delivering = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		s.publish(batch)
	}
}

func (s *Store) publish(batch []Change) {
	if s.nsubs.Load() == 0 {
		return
	}
	var dropped []*subscriber
	s.subMu.RLock()
	observers := s.observers
	for sub := range s.subs {
		if !sub.send(batch) {
			dropped = append(dropped, sub)
		}
	}
	s.subMu.RUnlock()
	// Observers run outside subMu, so one may observe or subscribe in turn.
	for _, o := range observers {
		if !o.stopped.Load() {
			o.fn(batch)
		}
	}
	for _, sub := range dropped {
		s.m.subsDropped.Inc()
		s.log.Warn().Int("buffer", cap(sub.ch)).Msg("slow subscriber dropped")
		s.unsubscribe(sub)
	}
}

// observer is one Observe function.
type observer struct {
	fn      func([]Change)
	stopped atomic.Bool
}

// Observe makes fn get every batch of Changes from now on, those made by
// Run included: in order per call, outside every lock, on the goroutine
// that made them. It is the store's lossless way out (automation's): fn is
// never dropped, so it must not block long, since it holds up the
// delivery of that call's later changes. fn may call back into the Store.
// The returned func ends the observation.
func (s *Store) Observe(fn func([]Change)) (stop func()) {
	o := &observer{fn: fn}
	s.subMu.Lock()
	s.observers = append(append([]*observer(nil), s.observers...), o)
	s.nsubs.Store(int32(len(s.subs) + len(s.observers)))
	s.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			o.stopped.Store(true)
			s.subMu.Lock()
			s.observers = slices.DeleteFunc(append([]*observer(nil), s.observers...), func(x *observer) bool { return x == o })
			s.nsubs.Store(int32(len(s.subs) + len(s.observers)))
			s.subMu.Unlock()
		})
	}
}

// subscriber is one Subscribe channel.
type subscriber struct {
	mu     sync.Mutex
	ch     chan Change
	closed bool
}

// send offers the batch without blocking; it closes the channel and reports
// false the first time one does not fit.
func (sub *subscriber) send(batch []Change) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return true
	}
	for _, ch := range batch {
		select {
		case sub.ch <- ch:
		default:
			sub.closed = true
			close(sub.ch)
			return false
		}
	}
	return true
}

func (sub *subscriber) close() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.ch)
	}
}

// Subscribe returns a channel that gets every Change from now on, and a
// func that ends the subscription and closes the channel (safe to call more
// than once). Sends never block: a subscriber whose buffer is full is
// dropped, its channel closed, and counted. A buffer below 1 is taken as 1.
func (s *Store) Subscribe(buffer int) (<-chan Change, func()) {
	sub := &subscriber{ch: make(chan Change, max(buffer, 1))}
	s.subMu.Lock()
	s.subs[sub] = struct{}{}
	s.nsubs.Store(int32(len(s.subs) + len(s.observers)))
	s.subMu.Unlock()
	s.m.subscribers.Inc()
	var once sync.Once
	return sub.ch, func() { once.Do(func() { s.unsubscribe(sub) }) }
}

func (s *Store) unsubscribe(sub *subscriber) {
	s.subMu.Lock()
	_, ok := s.subs[sub]
	delete(s.subs, sub)
	s.nsubs.Store(int32(len(s.subs) + len(s.observers)))
	s.subMu.Unlock()
	if ok {
		s.m.subscribers.Dec()
	}
	sub.close()
}

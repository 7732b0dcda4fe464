// Package testkit holds the helpers botd's tests share: a log sink safe for
// concurrent writers, a wait that polls a condition without asserting
// on time, and a metric's value as a registry gathers it. Only tests import it.
package testkit

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/botd/botd/internal/model"
)

// Buffer is an io.Writer safe for concurrent writers, for capturing logs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Bound is how long Eventually waits before failing: generous, so a slow
// machine never fails a test that is right; tests never assert on time.
const Bound = 20 * time.Second

// Eventually polls cond until it holds, and fails the test, naming what,
// only after Bound.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Metric is the value of the series of name whose labels include labels
// (a counter's or gauge's value; 0 when no series matches), as g gathers
// it.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// Clock is a settable clock, safe for concurrent use: Now reads it and
// Advance moves it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// CallEvent is a call resource notification: call id in state, as Graph
// posts it with change type ct.
func CallEvent(id string, ct model.ChangeType, state model.CallState) *model.Event {
	return &model.Event{
		ChangeType: ct, Kind: model.EventCall, ODataType: model.ODataCall,
		Path: model.ResourcePath{CallID: id, Kind: model.ResourceCall},
		Call: &model.Call{ID: id, State: state},
	}
}

// Apply applies ev with apply (a call store's Apply) and fails the test
// on an error.
func Apply[T any](t testing.TB, apply func(*model.Event) (T, error), ev *model.Event) T {
	t.Helper()
	out, err := apply(ev)
	if err != nil {
		t.Fatalf("apply %s %s: %v", ev.Kind, ev.CallID(), err)
	}
	return out
}

// SeedDir is the repository's testdata/seeds: the Graph examples botd's
// tests decode and send, found from this file's place in the tree, so that
// every package's tests read the same files whatever their directory.
var SeedDir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "seeds")
}()

// Seed returns the seed payload name, failing the test when it is missing.
func Seed(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SeedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CountPrefix counts the entries of list that start with prefix: a fake's
// record of what it was asked, such as "invite:<call id>".
func CountPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// RosterEvent is a full roster notification of callID: one participant
// per id, each a user "u-<id>".
func RosterEvent(callID string, ids ...string) *model.Event {
	ps := make([]model.Participant, len(ids))
	for i, id := range ids {
		ps[i] = model.Participant{ID: id, Info: model.ParticipantInfo{Identity: &model.IdentitySet{User: &model.Identity{ID: "u-" + id}}}}
	}
	return &model.Event{
		ChangeType: model.ChangeUpdated, Kind: model.EventRoster, ODataType: model.ODataParticipant,
		Path:         model.ResourcePath{CallID: callID, Kind: model.ResourceParticipants},
		Participants: ps,
	}
}

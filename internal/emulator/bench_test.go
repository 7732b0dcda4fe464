package emulator

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botd/botd/internal/model"
)

// BenchmarkIncomingDelivered measures the notification path end to end:
// Incoming builds, queues and signs a "created" notification, a worker
// posts it over loopback HTTP, the bot answers 202.
func BenchmarkIncomingDelivered(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s := New(Options{SigningKey: testKey(), Seed: 1, BotCallbackURL: srv.URL, Timing: Timing{Incoming: 1000 * time.Hour}})
	defer s.Close()
	n := int64(0)
	for b.Loop() {
		if _, err := s.Incoming(IncomingCall{From: Party{Phone: "+15555550100"}}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for got.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkNotificationBody measures building one roster notification.
func BenchmarkNotificationBody(b *testing.B) {
	s := New(Options{Seed: 1})
	defer s.Close()
	s.mu.Lock()
	cs := s.newCallLocked(model.Call{ID: s.newIDLocked(), CallbackURI: "http://127.0.0.1:9/cb"}, kindGroup)
	for range 10 {
		cs.participants = append(cs.participants, s.participantLocked(cs, &model.IdentitySet{User: &model.Identity{ID: s.newIDLocked()}}, nil))
	}
	it := itemLocked(cs, model.ChangeUpdated, "/participants", cs.participants)
	s.mu.Unlock()
	for b.Loop() {
		if _, err := body(it); err != nil {
			b.Fatal(err)
		}
	}
}

package callstate

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/testkit"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := New(testConfig(Config{MaxCalls: 1 << 20}), zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchParticipant is shaped like a decoded roster entry: its strings are
// allocations of their own, as encoding/json makes them.
func benchParticipant(call, i int) model.Participant {
	return model.Participant{
		ODataType: model.ODataParticipant,
		ID:        fmt.Sprintf("%08d-6432-43ed-8d27-%012d", call, i),
		Info: model.ParticipantInfo{
			ODataType: model.ODataParticipantInfo,
			Identity: &model.IdentitySet{
				ODataType: model.ODataIdentitySet,
				User: &model.Identity{
					ODataType: model.ODataIdentity, ID: fmt.Sprintf("%08d-5fa4-42ca-bae8-%012d", call, i),
					DisplayName: fmt.Sprintf("User %d", i),
				},
			},
			LanguageID: "en-US",
		},
		MediaStreams: []model.MediaStream{{
			ODataType: model.ODataMediaStream, MediaType: "audio", SourceID: fmt.Sprint(i + 1), Direction: "sendReceive",
		}},
	}
}

// BenchmarkApplyCallState is one state notification on a live call
// (established <-> hold), alone and with every goroutine on its own call.
func BenchmarkApplyCallState(b *testing.B) {
	b.Run("one call", func(b *testing.B) {
		s := benchStore(b)
		mustApply(b, s, testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished))
		evs := [2]*model.Event{
			testkit.CallEvent("c1", model.ChangeUpdated, model.StateHold),
			testkit.CallEvent("c1", model.ChangeUpdated, model.StateEstablished),
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Apply(evs[i&1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel calls", func(b *testing.B) {
		s := benchStore(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			id := fmt.Sprintf("call-%d", next.Add(1))
			if _, err := s.Apply(testkit.CallEvent(id, model.ChangeUpdated, model.StateEstablished)); err != nil {
				b.Error(err)
				return
			}
			evs := [2]*model.Event{
				testkit.CallEvent(id, model.ChangeUpdated, model.StateHold),
				testkit.CallEvent(id, model.ChangeUpdated, model.StateEstablished),
			}
			for i := 0; pb.Next(); i++ {
				if _, err := s.Apply(evs[i&1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkApplyRoster is one roster notification on a 50-participant
// call: a full roster in which one participant toggles mute (the diff), and
// a delta that toggles one participant.
func BenchmarkApplyRoster(b *testing.B) {
	const n = 50
	ps := make([]model.Participant, n)
	for i := range ps {
		ps[i] = benchParticipant(0, i)
	}
	b.Run("full 50", func(b *testing.B) {
		s := benchStore(b)
		other := append([]model.Participant(nil), ps...)
		other[n/2].IsMuted = true
		evs := [2]*model.Event{rosterEvent("c1", ps...), rosterEvent("c1", other...)}
		mustApply(b, s, evs[0])
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Apply(evs[(i+1)&1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("delta 50", func(b *testing.B) {
		s := benchStore(b)
		mustApply(b, s, deltaEvent("c1", 1, ps...))
		p := ps[n/2]
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.IsMuted = i&1 == 0
			if _, err := s.Apply(deltaEvent("c1", int64(i+2), p)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMemoryPerCall measures the heap one established call holds,
// with its roster of 2 or 50 participants shaped like decoded ones and a
// few transitions: live heap after creating 1000 calls, less before, over
// 1000.
func BenchmarkMemoryPerCall(b *testing.B) {
	const calls = 1000
	for _, n := range []int{2, 50} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) {
			var perCall float64
			for b.Loop() {
				s := benchStore(b)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for c := range calls {
					id := fmt.Sprintf("%08d-2db4-4022-9570-243709c565ab", c)
					if _, err := s.TrackCall(&model.Call{ID: id, State: model.StateEstablishing, Direction: "outgoing"}); err != nil {
						b.Fatal(err)
					}
					ps := make([]model.Participant, n)
					for i := range ps {
						ps[i] = benchParticipant(c, i)
					}
					mustApply(b, s, testkit.CallEvent(id, model.ChangeUpdated, model.StateEstablished), rosterEvent(id, ps...))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perCall = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / calls
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perCall, "bytes/call")
		})
	}
}

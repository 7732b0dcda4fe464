package notify

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/botd/botd/internal/testkit"
)

// Benchmark payloads: a one-participant roster update (invite example 1)
// and a call-state update with chatInfo and meetingInfo (join meeting).
const (
	rosterPayload    = "001_04_notification.json"
	callStatePayload = "003_17_notification.json"
)

// compactPayload returns a seed payload without insignificant whitespace,
// as Graph sends it.
func compactPayload(tb testing.TB, name string) []byte {
	tb.Helper()
	raw := testkit.Seed(tb, name)
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func benchDecode(b *testing.B, name string) {
	benchDecoder(b, NewDecoder(DefaultLimits()).Decode, compactPayload(b, name))
}

// benchDecoder times decode on body, which holds one event.
func benchDecoder(b *testing.B, decode func([]byte) (*Batch, error), body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		batch, err := decode(body)
		if err != nil || len(batch.Events) != 1 {
			b.Fatalf("Decode: %v, %+v", err, batch)
		}
	}
}

func benchStd(b *testing.B, name string) {
	body := compactPayload(b, name)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		events, err := stdDecode(body)
		if err != nil || len(events) != 1 {
			b.Fatalf("stdDecode: %v, %+v", err, events)
		}
	}
}

func BenchmarkDecodeRoster(b *testing.B)            { benchDecode(b, rosterPayload) }
func BenchmarkDecodeCallState(b *testing.B)         { benchDecode(b, callStatePayload) }
func BenchmarkBaselineStdlibRoster(b *testing.B)    { benchStd(b, rosterPayload) }
func BenchmarkBaselineStdlibCallState(b *testing.B) { benchStd(b, callStatePayload) }

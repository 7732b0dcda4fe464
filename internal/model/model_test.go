package model

import "testing"

func TestToneKeys(t *testing.T) {
	var keys string
	for _, tone := range Tones {
		keys += tone.Key()
		got, ok := ToneForKey(tone.Key()[0])
		if !ok || got != tone {
			t.Errorf("ToneForKey(%q) = %q, %v; want %q", tone.Key(), got, ok, tone)
		}
	}
	if keys != "0123456789*#ABCDF" {
		t.Fatalf("keys %q", keys)
	}
	if got, ok := ToneForKey('b'); !ok || got != ToneB {
		t.Fatalf("lower-case b: %q %v", got, ok)
	}
	for _, k := range []byte("xE$ ") {
		if _, ok := ToneForKey(k); ok {
			t.Errorf("ToneForKey(%q) accepted", k)
		}
	}
	if Tone("tone10").Key() != "" || Tone("").Key() != "" {
		t.Fatal("non-tones have keys")
	}
}

func TestQuirkNames(t *testing.T) {
	seen := map[string]bool{}
	var all Quirk
	for _, q := range AllQuirks {
		if q.String() == "invalid" || seen[q.String()] {
			t.Fatalf("quirk %d name %q", q, q.String())
		}
		seen[q.String()] = true
		all |= q
	}
	if !all.Has(QuirkIDMismatch|QuirkNumberAsString) || Quirk(0).Has(QuirkIDMismatch) {
		t.Fatal("Has")
	}
}

func TestParseTone(t *testing.T) {
	for in, want := range map[string]Tone{"#": TonePound, "1": Tone1, "*": ToneStar, "pound": TonePound, "tone1": Tone1, "x": "x", "##": "##"} {
		if got := ParseTone(in); got != want {
			t.Errorf("ParseTone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsE164(t *testing.T) {
	for s, want := range map[string]bool{
		"+12345678901": true, "+44": true, "+123456789012345": true,
		"+1234567890123456": false, "+0123": false, "12345": false, "+1": false, "+12a4": false, "": false, "+": false, "+ 123": false,
	} {
		if got := IsE164(s); got != want {
			t.Errorf("IsE164(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestOperationStatusNormalize(t *testing.T) {
	for in, want := range map[OperationStatus]OperationStatus{
		"Running": OpRunning, "NOTSTARTED": OpNotStarted, "completed": OpCompleted, "Failed": OpFailed, "Weird": "Weird", "": "",
	} {
		if got := in.Normalize(); got != want {
			t.Errorf("%q.Normalize() = %q, want %q", in, got, want)
		}
	}
}

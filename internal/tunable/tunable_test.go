package tunable

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []Field
		want   string
	}{
		{"all positive", []Field{Duration("A", time.Second), Int("B", 1)}, ""},
		{"none", nil, ""},
		{"zero duration", []Field{Int("B", 1), Duration("A", 0)}, "A must be positive, got 0s"},
		{"negative int", []Field{Int("B", -2), Duration("A", 0)}, "B must be positive, got -2"},
		{"negative duration", []Field{Duration("C", -time.Millisecond)}, "C must be positive, got -1ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Positive(tc.fields...)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Positive = %q, want %q", got, tc.want)
			}
		})
	}
}

package callstate

import (
	"fmt"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultRetention            = 10 * time.Minute
	DefaultSweepInterval        = 30 * time.Second
	DefaultOperationTimeout     = 2 * time.Minute
	DefaultDeltaHoldMax         = 64
	DefaultDeltaGapTimeout      = 10 * time.Second
	DefaultMaxTransitions       = 64
	DefaultMaxCalls             = 10000
	DefaultMaxOperationsPerCall = 256
	DefaultMaxTonesPerCall      = 64
)

// minCheckInterval keeps Run from spinning when timeouts are configured tiny.
const minCheckInterval = 10 * time.Millisecond

// Config tunes a Store. Zero fields take the Default* values; negative ones
// are refused by New.
type Config struct {
	// Retention is how long a terminated call is kept before Run sweeps it.
	Retention time.Duration
	// SweepInterval is the longest time between two of Run's passes. Run
	// passes more often when DeltaGapTimeout, OperationTimeout or Retention
	// are short (every half of the shortest), so that they fire close to on
	// time.
	SweepInterval time.Duration
	// OperationTimeout fails an operation that has no result by then, with
	// reason "timeout".
	OperationTimeout time.Duration
	// DeltaHoldMax is how many out-of-order roster deltas one call holds
	// while waiting for a missing one; one more marks the roster for resync.
	DeltaHoldMax int
	// DeltaGapTimeout is how long a missing delta is waited for before the
	// held ones are applied and the roster marked for resync.
	DeltaGapTimeout time.Duration
	// MaxTransitions bounds each call's transition history (oldest dropped).
	MaxTransitions int
	// MaxCalls bounds the calls tracked, terminated ones awaiting the sweep
	// included; a new call beyond it is refused with ErrTooManyCalls.
	MaxCalls int
	// MaxOperationsPerCall bounds each call's operations: the oldest
	// finished one is evicted to make room; when all are pending the new one
	// is refused.
	MaxOperationsPerCall int
	// MaxTonesPerCall bounds each call's list of key presses (oldest
	// dropped).
	MaxTonesPerCall int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// withDefaults returns c with zero fields defaulted, or an error naming the
// first negative one.
func (c Config) withDefaults() (Config, error) {
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Retention", &c.Retention, DefaultRetention},
		{"SweepInterval", &c.SweepInterval, DefaultSweepInterval},
		{"OperationTimeout", &c.OperationTimeout, DefaultOperationTimeout},
		{"DeltaGapTimeout", &c.DeltaGapTimeout, DefaultDeltaGapTimeout},
	}
	for _, d := range durs {
		if *d.v < 0 {
			return c, fmt.Errorf("callstate config: %s must not be negative, got %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"DeltaHoldMax", &c.DeltaHoldMax, DefaultDeltaHoldMax},
		{"MaxTransitions", &c.MaxTransitions, DefaultMaxTransitions},
		{"MaxCalls", &c.MaxCalls, DefaultMaxCalls},
		{"MaxOperationsPerCall", &c.MaxOperationsPerCall, DefaultMaxOperationsPerCall},
		{"MaxTonesPerCall", &c.MaxTonesPerCall, DefaultMaxTonesPerCall},
	}
	for _, i := range ints {
		if *i.v < 0 {
			return c, fmt.Errorf("callstate config: %s must not be negative, got %d", i.name, *i.v)
		}
		if *i.v == 0 {
			*i.v = i.def
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// checkInterval is how often Run passes over the calls.
func (c Config) checkInterval() time.Duration {
	d := c.SweepInterval
	for _, t := range []time.Duration{c.DeltaGapTimeout / 2, c.OperationTimeout / 2, c.Retention / 2} {
		if t < d {
			d = t
		}
	}
	return max(d, minCheckInterval)
}

package callstate

import (
	"fmt"
	"time"

	"github.com/botd/botd/internal/tunable"
)

// The documented defaults of Config, as DefaultConfig returns them. New
// applies none of them: a caller passes every setting, and a zero or
// negative one is refused.
const (
	DefaultRetention        = 10 * time.Minute
	DefaultSweepInterval    = 30 * time.Second
	DefaultOperationTimeout = 2 * time.Minute
	DefaultDeltaHoldMax     = 64
	DefaultDeltaGapTimeout  = 10 * time.Second
	DefaultMaxTransitions   = 64
	// MaxTransitionsLimit is the largest MaxTransitions: a call keeps its
	// ring's position in 16 bits.
	MaxTransitionsLimit = 1<<16 - 1
	// DefaultMaxCalls is what a 1 GiB pod holds with room to spare:
	// 200,000 calls of 2 participants each are about 410 MB of live heap
	// (docs/capacity.md, "What a 1 GiB pod holds"); a smaller pod sets
	// BOTD_MAX_CALLS lower (deploy/base: 512 MiB, 100,000).
	DefaultMaxCalls             = 200000
	DefaultMaxOperationsPerCall = 256
	DefaultMaxTonesPerCall      = 64
)

// DefaultConfig returns a Config with every setting at its Default* value
// and Now nil (time.Now).
func DefaultConfig() Config {
	return Config{
		Retention:            DefaultRetention,
		SweepInterval:        DefaultSweepInterval,
		OperationTimeout:     DefaultOperationTimeout,
		DeltaHoldMax:         DefaultDeltaHoldMax,
		DeltaGapTimeout:      DefaultDeltaGapTimeout,
		MaxTransitions:       DefaultMaxTransitions,
		MaxCalls:             DefaultMaxCalls,
		MaxOperationsPerCall: DefaultMaxOperationsPerCall,
		MaxTonesPerCall:      DefaultMaxTonesPerCall,
	}
}

// minCheckInterval keeps Run from spinning when timeouts are configured tiny.
const minCheckInterval = 10 * time.Millisecond

// Config tunes a Store. Every setting is required: New refuses a zero or
// negative one, naming it. Start from DefaultConfig for the documented
// defaults.
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
	// MaxTransitions bounds each call's transition history (oldest
	// dropped); at most MaxTransitionsLimit.
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
	// Now is the clock; time.Now when nil. It is a function, not a
	// setting, so nil is not a zero setting refused by New.
	Now func() time.Time
}

// check returns c with Now filled when nil, or an error naming the first
// setting that is zero or negative.
func (c Config) check() (Config, error) {
	if err := tunable.Positive(
		tunable.Duration("Retention", c.Retention),
		tunable.Duration("SweepInterval", c.SweepInterval),
		tunable.Duration("OperationTimeout", c.OperationTimeout),
		tunable.Duration("DeltaGapTimeout", c.DeltaGapTimeout),
		tunable.Int("DeltaHoldMax", c.DeltaHoldMax),
		tunable.Int("MaxTransitions", c.MaxTransitions),
		tunable.Int("MaxCalls", c.MaxCalls),
		tunable.Int("MaxOperationsPerCall", c.MaxOperationsPerCall),
		tunable.Int("MaxTonesPerCall", c.MaxTonesPerCall),
	); err != nil {
		return c, fmt.Errorf("callstate config: %w", err)
	}
	if c.MaxTransitions > MaxTransitionsLimit {
		return c, fmt.Errorf("callstate config: MaxTransitions must be at most %d, got %d", MaxTransitionsLimit, c.MaxTransitions)
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

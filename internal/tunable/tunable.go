// Package tunable owns one rule that every package's settings share: a
// duration, size or count a component needs must be positive, and an
// error names the first one that is not. Each package keeps its own
// defaults and its own other rules (ranges, orderings); only this check
// and its message live here.
package tunable

import (
	"fmt"
	"strconv"
	"time"
)

// Field is one setting to check: its name and whether its value passes.
type Field struct {
	name  string
	ok    bool
	value string
}

// Duration is a duration setting; it passes when positive.
func Duration(name string, v time.Duration) Field {
	return Field{name: name, ok: v > 0, value: v.String()}
}

// Int is a count or size setting; it passes when positive.
func Int(name string, v int) Field {
	return Field{name: name, ok: v > 0, value: strconv.Itoa(v)}
}

// Positive returns an error naming the first field that is zero or
// negative, as "Name must be positive, got 0s", or nil when all pass.
func Positive(fields ...Field) error {
	for _, f := range fields {
		if !f.ok {
			return fmt.Errorf("%s must be positive, got %s", f.name, f.value)
		}
	}
	return nil
}

package notify

import (
	"fmt"
	"sync"

	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
)

// Document-level errors: Decode returns one of these, wrapped with the
// detail (byte offset, which limit, which member), when the body as a whole
// is not a commsNotifications document. Nothing of such a body is applied.
var (
	// ErrNotJSON: the body is not one well-formed JSON value, or it has
	// invalid UTF-8 or a duplicate member name (RFC 8259 leaves the meaning
	// of duplicates open and parsers disagree on which one wins, so botd
	// refuses them rather than guess).
	ErrNotJSON error = &problem.Error{Code: problem.Invalid, Message: "notify: body is not JSON"}
	// ErrNotCommsNotifications: the top-level value is not an object, or its
	// @odata.type names something other than commsNotifications.
	ErrNotCommsNotifications error = &problem.Error{Code: problem.Invalid, Message: "notify: body is not a commsNotifications document"}
	// ErrMissingValue: the value member is missing, null, or not an array.
	ErrMissingValue error = &problem.Error{Code: problem.Invalid, Message: "notify: body has no value array"}
	// ErrLimitExceeded: the body nests deeper than Limits.MaxDepth or its
	// value array has more than Limits.MaxItems items.
	ErrLimitExceeded error = &problem.Error{Code: problem.Invalid, Message: "notify: body exceeds a limit"}
)

// Limits bound what one body may make the decoder do. A zero or negative
// field takes its DefaultLimits value.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays anywhere in the
	// body; the body's own object is depth 1. Exceeding it rejects the body.
	MaxDepth int
	// MaxItems is the most items the value array may hold (exceeding it
	// rejects the body) and the most elements of any other array in an item
	// (exceeding that rejects the item).
	MaxItems int
	// MaxParticipants is the most participants one roster, delta roster,
	// operation or call target list may hold; exceeding it rejects the item.
	MaxParticipants int
	// MaxStringLen is the longest string, in bytes after unescaping, that an
	// event keeps; a longer one rejects the item.
	MaxStringLen int
}

// DefaultLimits returns production limits. Graph's deepest notification
// (a delta roster) nests 10 levels; a Teams meeting roster can list
// thousands of participants in one notification.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:        32,
		MaxItems:        1000,
		MaxParticipants: 5000,
		MaxStringLen:    16 << 10,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxItems <= 0 {
		l.MaxItems = d.MaxItems
	}
	if l.MaxParticipants <= 0 {
		l.MaxParticipants = d.MaxParticipants
	}
	if l.MaxStringLen <= 0 {
		l.MaxStringLen = d.MaxStringLen
	}
	return l
}

// Batch is the outcome of one body: the items that decoded, in order, and
// the items that did not. Every item of the value array is in exactly one
// of the two, under its index.
type Batch struct {
	Events   []model.Event
	Rejected []ItemError
}

// ItemError says why one item of the value array was rejected. The other
// items of the body are unaffected.
type ItemError struct {
	Index  int
	Reason string
}

// Error returns "value[3]: <reason>".
func (e ItemError) Error() string { return fmt.Sprintf("value[%d]: %s", e.Index, e.Reason) }

// Decoder decodes callback bodies within fixed limits. It is safe for
// concurrent use; each Decode borrows scratch state from a pool. The zero
// Decoder uses DefaultLimits.
type Decoder struct {
	lim  Limits
	pool sync.Pool // of *state
}

// NewDecoder returns a Decoder enforcing l (zero fields take defaults).
func NewDecoder(l Limits) *Decoder {
	d := &Decoder{lim: l.withDefaults()}
	d.pool.New = func() any { return newState(d.lim) }
	return d
}

// Decode decodes one commsNotifications body. It returns an error, wrapping
// ErrNotJSON, ErrNotCommsNotifications, ErrMissingValue or
// ErrLimitExceeded, only when the body as a whole must be refused;
// otherwise every item of the value array becomes an Event or an
// ItemError in the returned Batch. The Batch shares no memory with body.
func (d *Decoder) Decode(body []byte) (*Batch, error) {
	st, _ := d.pool.Get().(*state)
	if st == nil { // a zero Decoder: default limits
		st = newState(d.lim.withDefaults())
	}
	b, err := st.decode(body)
	st.release()
	d.pool.Put(st)
	if err != nil {
		return nil, err
	}
	return b, nil
}

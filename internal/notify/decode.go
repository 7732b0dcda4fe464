package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/botd/botd/internal/model"
)

// Depths of the body's fixed structure: the document object, the value
// array, an item object. An item member's value starts one deeper.
const (
	depthDoc   = 1
	depthValue = 2
	depthItem  = 3
)

// maxKeptScratch bounds the unescaping scratch a pooled state keeps
// between calls; a rare longer string's buffer is dropped.
const maxKeptScratch = 4 << 10

// state is one Decode's scratch: a reader for the body and a reader for
// the resourceData of the item at hand. Pooled by Decoder.
type state struct {
	lim Limits
	// twoPass turns decodeInPlace off (tests compare the two ways).
	twoPass bool
	doc     rd // the body: validates everything; decodes resourceData in place when it can
	res     rd // one resourceData, already validated, for the second pass
}

func newState(l Limits) *state {
	st := &state{lim: l}
	for _, r := range []*rd{&st.doc, &st.res} {
		r.lim = &st.lim
		r.scrMax = maxKeptScratch
	}
	return st
}

func (st *state) release() {
	st.doc.release()
	st.res.release()
}

// item is what the first pass collects from one value item.
type item struct {
	index       int
	reason      string // first problem found, if any
	quirks      model.Quirk
	changeType  model.ChangeType
	resource    string
	resourceURL string
	callbackURI string
	data        []byte // resourceData, validated; nil when absent or null
	raw         []byte // the whole item
	// decoded: resourceData was decoded by the first pass (decodeInPlace)
	// into pre's Kind, ODataType and resource fields; data is nil.
	decoded bool
	pre     model.Event
	// dataReason is resourceData's problem when it was decoded in place.
	// interpret makes it the item's reason where the second pass would
	// have found it: after the item's own problems and its path's.
	dataReason string
}

func (it *item) fail(format string, args ...any) {
	if it.reason == "" {
		it.reason = fmt.Sprintf(format, args...)
	}
}

func (st *state) decode(body []byte) (*Batch, error) {
	a := &st.doc
	a.reset(body)
	switch k := a.dec.PeekKind(); k {
	case '{':
	case 0:
		_, err := a.dec.ReadToken()
		return nil, notJSON(err)
	default:
		if _, err := a.dec.ReadValue(); err != nil {
			return nil, notJSON(err)
		}
		if err := st.checkEOF(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: top-level value is %s, want an object", ErrNotCommsNotifications, describe(k))
	}
	if _, err := a.dec.ReadToken(); err != nil {
		return nil, notJSON(err)
	}
	b := &Batch{}
	seenValue := false
	for a.more() {
		name, err := a.name()
		if err != nil {
			return nil, notJSON(err)
		}
		switch string(name) {
		case "@odata.type":
			v, null, err := a.rawOrNull()
			if err != nil {
				var se *semErr
				if !errors.As(err, &se) {
					return nil, notJSON(err)
				}
				return nil, fmt.Errorf("%w: @odata.type: %v", ErrNotCommsNotifications, err)
			}
			if !null && string(v) != model.ODataCommsNotifications {
				return nil, fmt.Errorf("%w: @odata.type is %s", ErrNotCommsNotifications, quoteTrunc(v))
			}
		case "value":
			seenValue = true
			switch k := a.dec.PeekKind(); k {
			case '[':
				if err := st.items(body, b); err != nil {
					return nil, err
				}
			case 'n':
				return nil, fmt.Errorf("%w: value is null", ErrMissingValue)
			case 0:
				_, err := a.dec.ReadToken()
				return nil, notJSON(err)
			default:
				return nil, fmt.Errorf("%w: value is %s, want an array", ErrMissingValue, describe(k))
			}
		default:
			if err := st.skip(depthDoc); err != nil {
				return nil, err
			}
		}
	}
	if err := a.end(); err != nil {
		return nil, notJSON(err)
	}
	if err := st.checkEOF(); err != nil {
		return nil, err
	}
	if !seenValue {
		return nil, fmt.Errorf("%w: value is missing", ErrMissingValue)
	}
	return b, nil
}

// checkEOF requires that nothing but whitespace follows the top-level value.
func (st *state) checkEOF() error {
	_, err := st.doc.dec.ReadToken()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return notJSON(err)
	}
	return fmt.Errorf("%w: more than one top-level value (second at offset %d)", ErrNotJSON, st.doc.dec.InputOffset()-1)
}

// skip reads and discards a value whose container is at depth base,
// enforcing the depth limit on it.
func (st *state) skip(base int) error {
	v, err := st.doc.dec.ReadValue()
	if err != nil {
		return notJSON(err)
	}
	return st.checkDepth(v, base)
}

func (st *state) checkDepth(v []byte, base int) error { return st.doc.checkDepth(v, base) }

// checkDepth enforces MaxDepth on v, just read at depth base.
func (r *rd) checkDepth(v []byte, base int) error {
	if len(v) > 0 && (v[0] == '{' || v[0] == '[') && nestingExceeds(v, base, r.lim.MaxDepth) {
		return r.depthError(r.dec.InputOffset() - int64(len(v)))
	}
	return nil
}

// depthError refuses the body for the value at offset nesting deeper than
// MaxDepth.
func (r *rd) depthError(offset int64) error {
	return fmt.Errorf("%w: nesting deeper than %d levels in the value at offset %d", ErrLimitExceeded, r.lim.MaxDepth, offset)
}

// inPlaceMinDepth is the least MaxDepth decodeInPlace runs with: the
// readers descend into the objects Graph documents without checking depth
// (only what they skip is checked), and the deepest of those (a delta
// roster's participant's identity) is below it. With a smaller MaxDepth
// only the two passes enforce it exactly.
const inPlaceMinDepth = 16

// decodeInPlace decodes the resourceData value the doc reader is at
// straight from it, in the one pass that also validates it, when the
// item's path came before it (as Graph writes it) and its kind is one botd
// decodes. Otherwise it reads nothing and reports false, and the value is
// validated now and decoded by interpret, as a second pass. A problem in
// the value rejects the item as the second pass would, with the same
// reason, and the rest of the value is read (and checked) so that the
// body goes on; a syntax or depth error rejects the body.
func (st *state) decodeInPlace(it *item) (bool, error) {
	a := &st.doc
	if st.twoPass || st.lim.MaxDepth < inPlaceMinDepth || it.reason != "" || (it.resource == "" && it.resourceURL == "") {
		return false, nil
	}
	if k := a.dec.PeekKind(); k != '{' && k != '[' {
		return false, nil
	}
	probe := *it
	var ev model.Event
	if havePath, ok := itemPath(&probe, &ev); !ok || !havePath {
		return false, nil
	}
	// The kind from the value's @odata.type, read ahead in the bytes not
	// yet read; anything classify cannot tell leaves it to the two passes.
	unread := a.dec.UnreadBuffer()
	rest := bytes.TrimLeft(unread, " \t\r\n:")
	// Where the value starts, for a depth error worded as checkDepth words
	// it for the whole value.
	start := a.dec.InputOffset() + int64(len(unread)-len(rest))
	kind, odt, err := st.classify(rest, ev.Path, true)
	if err != nil || kind == model.EventUnknown {
		return false, nil
	}
	base := a.dec.StackDepth()
	it.pre.Kind, it.pre.ODataType = kind, odt
	a.checked = true
	err = decodeKind(a, &it.pre)
	a.checked = false
	it.decoded = true
	if err == nil {
		return true, nil
	}
	var se *semErr
	if !errors.As(err, &se) {
		return true, a.docError(err, start, base)
	}
	reason, err := a.inPlaceReason(se, base)
	if err != nil {
		return true, a.docError(err, start, base)
	}
	it.dataReason = reason
	// Read what is left of the value, with its depth checked.
	if err := a.finish(base, a.skipChecked); err != nil {
		return true, a.docError(err, start, base)
	}
	return true, nil
}

// docError is an error from decoding in place that is not the item's: a
// depth limit, worded as checkDepth words it for the value at start, or a
// syntax error. The two passes read the whole value before they check its
// depth, so a syntax error after the too deep part wins over the depth
// error: the rest of the value, down to depth base, is read first, for its
// syntax only.
func (r *rd) docError(err error, start int64, base int) error {
	if !errors.Is(err, ErrLimitExceeded) {
		return notJSON(err)
	}
	if serr := r.finish(base, r.dec.SkipValue); serr != nil {
		return notJSON(serr)
	}
	return r.depthError(start)
}

// finish reads what is left of the value being read, until the reader is
// back at depth base, each member or element with skip.
func (r *rd) finish(base int, skip func() error) error {
	for r.dec.StackDepth() > base {
		switch r.dec.PeekKind() {
		case '}', ']':
			if _, err := r.dec.ReadToken(); err != nil {
				return err
			}
		case 0:
			_, err := r.dec.ReadToken()
			return err
		default:
			if err := skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

// inPlaceReason words se as reason does for the second pass: located by
// the JSON Pointer below resourceData.
func (r *rd) inPlaceReason(se *semErr, base int) (string, error) {
	if se.unread {
		if err := r.skipChecked(); err != nil {
			return "", err
		}
	}
	p := string(r.dec.StackPointer())
	if i := strings.Index(p, "/resourceData"); i >= 0 && r.dec.StackDepth() > base {
		p = p[i+len("/resourceData"):]
	} else {
		p = ""
	}
	return dataReason(p, se.msg), nil
}

// items reads the value array. Only document-level problems are returned;
// each item ends up in b.Events or b.Rejected.
func (st *state) items(body []byte, b *Batch) error {
	a := &st.doc
	if _, err := a.dec.ReadToken(); err != nil {
		return notJSON(err)
	}
	for i := 0; a.more(); i++ {
		if i == st.lim.MaxItems {
			return fmt.Errorf("%w: value has more than %d items", ErrLimitExceeded, st.lim.MaxItems)
		}
		it := item{index: i}
		if err := st.readItem(body, &it); err != nil {
			return err
		}
		if it.reason == "" {
			st.interpret(&it, b)
		}
		if it.reason != "" {
			b.Rejected = append(b.Rejected, ItemError{Index: i, Reason: it.reason})
		}
	}
	if err := a.end(); err != nil {
		return notJSON(err)
	}
	return nil
}

// readItem is the first pass over one item: it validates the item's syntax
// and depth, reads the commsNotification's own members and notes where
// resourceData is, without decoding it yet (its path may come after it).
func (st *state) readItem(body []byte, it *item) error {
	a := &st.doc
	if k := a.dec.PeekKind(); k != '{' {
		if k == 0 {
			_, err := a.dec.ReadToken()
			return notJSON(err)
		}
		if err := st.skip(depthValue); err != nil {
			return err
		}
		it.fail("item is %s, want an object", describe(k))
		return nil
	}
	if _, err := a.dec.ReadToken(); err != nil {
		return notJSON(err)
	}
	start := a.dec.InputOffset() - 1
	a.quirks = 0
	for a.more() {
		name, err := a.name()
		if err != nil {
			return notJSON(err)
		}
		switch string(name) {
		case "changeType":
			v, null, err := a.bytesOrNull()
			if err = st.itemField(it, "changeType", err); err != nil {
				return err
			}
			if null || it.reason != "" {
				break
			}
			ct, ok := enumFold(string(v), changeTypes)
			if !ok {
				it.fail("changeType: unknown value %s", quoteTrunc(v))
			}
			it.changeType = ct
		case "resource":
			it.resource, err = a.str()
			err = st.itemField(it, "resource", err)
		case "resourceUrl":
			it.resourceURL, err = a.str()
			err = st.itemField(it, "resourceUrl", err)
		case "callbackUri":
			it.callbackURI, err = a.str()
			err = st.itemField(it, "callbackUri", err)
		case "resourceData":
			done, derr := st.decodeInPlace(it)
			if derr != nil {
				return derr
			}
			if done {
				break
			}
			v, rerr := a.dec.ReadValue()
			if rerr != nil {
				return notJSON(rerr)
			}
			if err := st.checkDepth(v, depthItem); err != nil {
				return err
			}
			if v[0] != 'n' {
				it.data = v
			}
		default:
			err = st.skip(depthItem)
		}
		if err != nil {
			return err
		}
	}
	if err := a.end(); err != nil {
		return notJSON(err)
	}
	it.raw = body[start:a.dec.InputOffset()]
	it.quirks = a.quirks
	if it.reason == "" && it.changeType == "" {
		it.fail("changeType: missing")
	}
	return nil
}

// itemField sorts an error from reading one of an item's own members: an
// item-level problem is noted on the item (and a value a type error left
// unread is skipped); anything else is returned and rejects the body.
func (st *state) itemField(it *item, field string, err error) error {
	if err == nil {
		return nil
	}
	var se *semErr
	if !errors.As(err, &se) {
		return notJSON(err)
	}
	it.fail("%s: %v", field, err)
	if se.unread {
		return st.skip(depthItem)
	}
	return nil
}

func notJSON(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		where := ""
		if se.JSONPointer != "" {
			where = fmt.Sprintf(" within %q", truncPointer(string(se.JSONPointer)))
		}
		return fmt.Errorf("%w: %v at offset %d%s", ErrNotJSON, se.Err, se.ByteOffset, where)
	case err == io.EOF:
		return fmt.Errorf("%w: empty body", ErrNotJSON)
	case err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: unexpected end of input", ErrNotJSON)
	}
	return fmt.Errorf("%w: %v", ErrNotJSON, err)
}

func truncPointer(p string) string {
	if len(p) > 100 {
		return p[:100] + "..."
	}
	return p
}

// describe names a JSON kind for a message: "a string", "an array".
func describe(k jsontext.Kind) string {
	switch k {
	case '{', '[':
		return "an " + kindName(k)
	case 'n', 0:
		return kindName(k)
	}
	return "a " + kindName(k)
}

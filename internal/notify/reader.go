package notify

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/botd/botd/internal/model"
)

// rd is a jsontext.Decoder over an in-memory buffer plus the scratch space
// to unescape strings without allocating. Reading from a *bytes.Buffer
// makes jsontext parse the caller's bytes in place, with no copy and no
// writes to them.
type rd struct {
	dec    jsontext.Decoder
	src    bytes.Buffer
	lim    *Limits
	vals   []byte // unescaped string values
	names  []byte // unescaped member names
	scrMax int
	// quirks are the schema departures tolerated since the last reset (the
	// doc reader's are reset per item by readItem).
	quirks model.Quirk
	// checked is set while the doc reader decodes a resourceData in place:
	// the values it skips are checked against MaxDepth, which the first
	// pass otherwise checks on the whole resourceData.
	checked bool
}

// trusted are the options for the second pass over a resourceData value the
// first pass has already validated in full (UTF-8, duplicate names).
var trusted = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

func (r *rd) reset(b []byte, opts ...jsontext.Options) {
	r.src = *bytes.NewBuffer(b)
	r.dec.Reset(&r.src, opts...)
	r.quirks = 0
}

// release drops every reference to the caller's bytes, so that a pooled
// rd does not keep a request body alive, and drops scratch space that a
// rare huge string grew.
func (r *rd) release() {
	r.reset(nil)
	if cap(r.vals) > r.scrMax {
		r.vals = nil
	}
	if cap(r.names) > r.scrMax {
		r.names = nil
	}
}

// semErr is an error in an item's content, not its syntax: the item is
// rejected, the body is not.
type semErr struct {
	msg    string
	unread bool // the offending value is still to be read
}

func (e *semErr) Error() string { return e.msg }

func semErrorf(format string, args ...any) error {
	return &semErr{msg: fmt.Sprintf(format, args...)}
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "nothing"
}

func typeError(got jsontext.Kind, want string) error {
	return &semErr{msg: "got " + describe(got) + ", want " + want, unread: true}
}

// quoteTrunc quotes s for an error message, cut to a readable length: the
// value may be attacker-sized.
func quoteTrunc(s []byte) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(string(s[:max])) + "..."
	}
	return strconv.Quote(string(s))
}

// more reports whether the current object or array has another member. At
// the end, and on a syntax error, it reports false; the end() that follows
// then returns the error.
func (r *rd) more() bool {
	k := r.dec.PeekKind()
	return k != '}' && k != ']' && k != 0
}

// end reads the closing delimiter of the current object or array.
func (r *rd) end() error {
	_, err := r.dec.ReadToken()
	return err
}

// open reads '{' or '[' (want) and reports null as absent; any other kind
// is a type error.
func (r *rd) open(want jsontext.Kind) (present bool, err error) {
	switch k := r.dec.PeekKind(); k {
	case want:
		_, err = r.dec.ReadToken()
		return err == nil, err
	case 'n':
		_, err = r.dec.ReadToken()
		return false, err
	case 0:
		_, err = r.dec.ReadToken()
		return false, err
	default:
		return false, typeError(k, kindName(want))
	}
}

// unquote returns the contents of the quoted JSON string v, unescaped into
// *scratch when it has escapes. The result is valid until the next call
// with the same scratch.
func unquote(v []byte, scratch *[]byte) ([]byte, error) {
	b := v[1 : len(v)-1]
	if bytes.IndexByte(b, '\\') < 0 {
		return b, nil
	}
	var err error
	*scratch, err = jsontext.AppendUnquote((*scratch)[:0], v)
	return *scratch, err
}

// name reads an object member name, unescaped. It is valid until the next
// name call.
func (r *rd) name() ([]byte, error) {
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	return unquote(v, &r.names)
}

// rawOrNull reads a string, unescaped, or a null. The bytes are valid
// until the next read.
func (r *rd) rawOrNull() (b []byte, null bool, err error) {
	switch k := r.dec.PeekKind(); k {
	case '"':
		v, err := r.dec.ReadValue()
		if err != nil {
			return nil, false, err
		}
		b, err = unquote(v, &r.vals)
		return b, false, err
	case 'n', 0:
		_, err := r.dec.ReadToken()
		return nil, true, err
	default:
		return nil, false, typeError(k, "string")
	}
}

// bytesOrNull is rawOrNull within MaxStringLen.
func (r *rd) bytesOrNull() (b []byte, null bool, err error) {
	b, null, err = r.rawOrNull()
	if err == nil {
		err = r.checkStringLen(b)
	}
	return b, null, err
}

func (r *rd) checkStringLen(b []byte) error {
	if len(b) > r.lim.MaxStringLen {
		return semErrorf("string of %d bytes exceeds the limit of %d", len(b), r.lim.MaxStringLen)
	}
	return nil
}

// text reads a string, unescaped, or a null, within MaxStringLen. Where
// the schema says string, Microsoft's own examples at times write a number
// ("id": 7): text accepts one, as its literal text, and notes
// QuirkStringAsNumber. The bytes are valid until the next read.
func (r *rd) text() (b []byte, null bool, err error) {
	if r.dec.PeekKind() != '0' {
		return r.bytesOrNull()
	}
	if b, err = r.number(); err != nil {
		return nil, false, err
	}
	r.quirks |= model.QuirkStringAsNumber
	return b, false, nil
}

// number reads a JSON number's literal text within MaxStringLen.
func (r *rd) number() ([]byte, error) {
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if err := r.checkStringLen(v); err != nil {
		return nil, err
	}
	return v, nil
}

// str reads a string (or a number, see text) into a fresh copy; null is "".
func (r *rd) str() (string, error) {
	b, _, err := r.text()
	if err != nil || len(b) == 0 {
		return "", err
	}
	return string(b), nil
}

// sym reads a string that usually is one of a small known set (an OData
// type, an enumeration value) and returns the interned constant for it,
// allocating only for a value botd has not seen before. An interned value
// costs no memory, so only other values count against MaxStringLen. A
// number is taken as its literal text, as text does.
func (r *rd) sym() (string, error) {
	if r.dec.PeekKind() == '0' {
		b, _, err := r.text()
		return string(b), err
	}
	b, _, err := r.rawOrNull()
	if err != nil || len(b) == 0 {
		return "", err
	}
	if s, ok := symbols[string(b)]; ok {
		return s, nil
	}
	if err := r.checkStringLen(b); err != nil {
		return "", err
	}
	return string(b), nil
}

// tenant reads a tenant id as str does, interned in tenantIDs.
func (r *rd) tenant() (string, error) {
	b, _, err := r.text()
	if err != nil || len(b) == 0 {
		return "", err
	}
	return tenantIDs.intern(b), nil
}

// boolean reads true, false or null (false).
func (r *rd) boolean() (bool, error) {
	switch k := r.dec.PeekKind(); k {
	case 't', 'f', 'n', 0:
		tok, err := r.dec.ReadToken()
		return k == 't' && err == nil && tok.Bool(), err
	default:
		return false, typeError(k, "boolean")
	}
}

// optBool reads true or false as a pointer, null as nil.
func (r *rd) optBool() (*bool, error) {
	switch k := r.dec.PeekKind(); k {
	case 't', 'f':
		if _, err := r.dec.ReadToken(); err != nil {
			return nil, err
		}
		v := k == 't'
		return &v, nil
	case 'n', 0:
		_, err := r.dec.ReadToken()
		return nil, err
	default:
		return nil, typeError(k, "boolean")
	}
}

var errNotInteger = errors.New("not an integer")

// integer reads an integer within [lo, hi]; null is 0. Microsoft's own
// examples at times quote a number ("code": "200"): a string holding a
// plain integer (optional '-', no leading zeros, no sign, space, fraction
// or exponent) within the same bounds and within MaxStringLen is accepted
// and notes QuirkNumberAsString; any other string is an error.
func (r *rd) integer(lo, hi int64) (int64, error) {
	switch k := r.dec.PeekKind(); k {
	case '0':
		v, err := r.dec.ReadValue()
		if err != nil {
			return 0, err
		}
		n, err := parseInt(v)
		if err != nil || n < lo || n > hi {
			return 0, semErrorf("number %s is not an integer in [%d, %d]", quoteTrunc(v), lo, hi)
		}
		return n, nil
	case '"':
		b, _, err := r.bytesOrNull()
		if err != nil {
			return 0, err
		}
		n, err := parseInt(b)
		if err != nil || !plainInt(b) || n < lo || n > hi {
			return 0, semErrorf("string %s is not an integer in [%d, %d]", quoteTrunc(b), lo, hi)
		}
		r.quirks |= model.QuirkNumberAsString
		return n, nil
	case 'n', 0:
		_, err := r.dec.ReadToken()
		return 0, err
	default:
		return 0, typeError(k, "integer")
	}
}

// plainInt reports whether b, which parseInt accepted, is written as JSON
// writes an integer: no leading zeros, no "-0"... except "0" itself.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
		if len(b) == 1 && b[0] == '0' {
			return false
		}
	}
	return len(b) == 1 || b[0] != '0'
}

// parseInt parses a JSON number that must be a plain integer (no fraction,
// no exponent) fitting an int64. jsontext has already checked the grammar.
func parseInt(v []byte) (int64, error) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 19 {
		return 0, errNotInteger
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errNotInteger
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, errNotInteger
		}
		return -int64(n), nil
	}
	if n > 1<<63-1 {
		return 0, errNotInteger
	}
	return int64(n), nil
}

// skip skips one value of any kind.
func (r *rd) skip() error {
	if r.checked {
		return r.skipChecked()
	}
	return r.dec.SkipValue()
}

// skipChecked skips one value, enforcing MaxDepth on it.
func (r *rd) skipChecked() error {
	v, err := r.dec.ReadValue()
	if err != nil {
		return err
	}
	return r.checkDepth(v, r.dec.StackDepth())
}

// checkLen rejects the element that would make a list longer than max.
func checkLen(n, max int, what string) error {
	if n >= max {
		return &semErr{msg: fmt.Sprintf("more than %d %s", max, what), unread: true}
	}
	return nil
}

// nestingExceeds reports whether the validated JSON value v, found at depth
// base (0 for a top-level value), nests objects and arrays deeper than max.
// Scanning skips strings with IndexByte, so it costs little next to the
// tokenizer that validated v.
func nestingExceeds(v []byte, base, max int) bool {
	depth := base
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			for i++; ; i++ {
				j := bytes.IndexByte(v[i:], '"')
				if j < 0 {
					return false // not reached for validated JSON
				}
				i += j
				n := 0
				for k := i - 1; v[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

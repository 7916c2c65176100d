package api

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"nbo/engine"
	"nbo/features"
)

// POST /v1/decide bodies are decoded by hand, in one pass over the body
// and without reflection: encoding/json's Decoder (a reader, a refill
// buffer, two maps, reflection) was ~1.3 KB and ~20 allocations per
// request, most of the offer API's garbage under load. A (pooled) decoder
// copies every string the request keeps into one buffer that becomes one
// string, so a request without context costs one allocation.
//
// It accepts exactly the documents encoding/json with
// DisallowUnknownFields accepted and answers every rejected one with the
// same code, field and message (FuzzDecodeDecideRequestMatchesReference
// holds it to that, byte for byte). That includes encoding/json's less
// obvious rules, kept because clients may rely on them:
//   - field names match case-insensitively when no name matches exactly
//     (with Unicode folding: "ſtore" is store);
//   - null resets ids, context, limit and now but leaves a string field
//     as it was;
//   - null as an identifier or context value is the empty string;
//   - invalid UTF-8 in a string becomes U+FFFD, a lone surrogate escape
//     becomes U+FFFD;
//   - errors, in order: the first syntax error (or the end of the body
//     inside the value) anywhere in the value; else the first duplicate
//     key; else the first wrong type or unknown field; else data after
//     the value; then the checks of decodeDecideRequest in their order. A body that is a bare number,
//     string or literal ends where that token ends ("12x" is a wrong
//     type, "null x" is data after the value);
//   - syntax errors name the offending byte counting from 1, as
//     encoding/json's Decoder does;
//   - at most 10000 levels of nesting.
//
// Two deliberate differences from plain encoding/json, made in both paths:
// a type error quotes at most an excerpt of a long number; and a key given
// twice — a field (two keys naming the same field, "store" and "Store",
// count), an identifier namespace, or a context key — is refused
// bad_request, as POST /v1/events refuses it (bad_json there), rather than
// the last value winning. Unknown fields and namespaces are not compared:
// they are refused anyway.

// idFields are the error fields of identifiers, "ids.member" …, made once
// rather than per request.
var idFields = func() (f [features.NumNamespaces]string) {
	for ns := range f {
		f[ns] = "ids." + features.Namespace(ns).String()
	}
	return f
}()

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// span is a piece of decideDecoder.arena, [off, end).
type span struct{ off, end int32 }

type ctxEntry struct{ k, v span }

// The fields of a decide body.
const (
	fieldUnknown = iota
	fieldIDs
	fieldChannel
	fieldPlacement
	fieldStore
	fieldLimit
	fieldLocale
	fieldContext
	fieldNow
)

var decideFieldNames = [...]string{fieldIDs: "ids", fieldChannel: "channel", fieldPlacement: "placement",
	fieldStore: "store", fieldLimit: "limit", fieldLocale: "locale", fieldContext: "context", fieldNow: "now"}

// decideDecoder is the state of decoding one body. Its zero value with
// data set is ready.
type decideDecoder struct {
	data []byte
	pos  int
	// err is the first wrong type or unknown field. Decoding goes on, as
	// encoding/json does: a syntax error later in the body wins over it.
	err *Error
	// dup is the first duplicate key; it wins over err, a syntax error
	// over it.
	dup *Error
	// seen are the fields (bit f) and namespaces (bit 16+ns) met so far.
	seen uint32
	// ctxMore holds the context keys past maxContextKeys, only to find a
	// duplicate among them (a body that has them is refused anyway).
	ctxMore map[string]struct{}
	// arena holds the unescaped bytes of every string the request may
	// keep; it becomes one string at the end.
	arena   []byte
	scratch []byte // a key with escapes, unescaped

	ids          [features.NumNamespaces]span
	idSet        [features.NumNamespaces]bool
	unknownID    span // the smallest identifier key of no namespace
	hasUnknownID bool

	channel, placement, store, locale, now span
	hasNow, hasLimit                       bool
	limit                                  int

	ctx         [maxContextKeys]ctxEntry
	nctx        int
	ctxOverflow bool // more than maxContextKeys distinct keys
}

// decoders are pooled for their buffers: a decoder on the stack would
// escape anyway, its buffers being appended to through a pointer.
var decoders = sync.Pool{New: func() any { return &decideDecoder{arena: make([]byte, 0, 256), scratch: make([]byte, 0, 64)} }}

// maxPooledArena bounds the buffer a pooled decoder keeps.
const maxPooledArena = 16 << 10

// decodeDecideRequest decodes and validates a POST /v1/decide body into
// req. allowNow says whether the caller may set "now" (admin scope). The
// request keeps no reference to body.
func decodeDecideRequest(body []byte, allowNow bool, req *engine.DecideRequest) *Error {
	d := decoders.Get().(*decideDecoder)
	*d = decideDecoder{data: body, arena: d.arena[:0], scratch: d.scratch[:0]}
	e := d.decode()
	if e == nil {
		e = d.request(allowNow, req)
	}
	d.data = nil
	if cap(d.arena) <= maxPooledArena && cap(d.scratch) <= maxPooledArena {
		decoders.Put(d)
	}
	return e
}

var (
	errBodyEmpty     = &Error{Status: 400, Code: CodeBadRequest, Message: "the body is empty; send a JSON object"}
	errBodyEndsEarly = &Error{Status: 400, Code: CodeBadRequest, Message: "the JSON ends early"}
	errBodyTrailing  = &Error{Status: 400, Code: CodeBadRequest, Message: "the body holds data after its JSON value; send exactly one JSON object"}
)

// decode reads the one JSON value of the body.
func (d *decideDecoder) decode() *Error {
	d.skipSpace()
	if d.pos == len(d.data) {
		return copyErr(errBodyEmpty)
	}
	c := d.data[d.pos]
	if c == '{' {
		if e := d.object(); e != nil {
			return e
		}
	} else {
		kind := valueKind(c)
		if e := d.skipValue(0); e != nil {
			return e
		}
		if c != 'n' {
			d.wrongType("", kind, "object")
		}
	}
	if d.dup != nil {
		return d.dup
	}
	if d.err != nil {
		return d.err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return copyErr(errBodyTrailing)
	}
	return nil
}

// duplicate records a key given twice (field: the JSON path at fault).
func (d *decideDecoder) duplicate(field, what string) {
	if d.dup == nil {
		d.dup = &Error{Status: 400, Code: CodeBadRequest, Field: field, Message: "duplicate key " + what + "; send each key once"}
	}
}

// copyErr returns a copy of a shared error, so callers may keep or change
// what they get.
func copyErr(e *Error) *Error { c := *e; return &c }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *decideDecoder) skipSpace() {
	for d.pos < len(d.data) && isSpace(d.data[d.pos]) {
		d.pos++
	}
}

// syntax is a syntax error at the current byte; offsets count from 1, as
// encoding/json's do.
func (d *decideDecoder) syntax() *Error {
	return &Error{Status: 400, Code: CodeBadRequest, Message: "malformed JSON at byte " + strconv.Itoa(d.pos+1)}
}

// atEnd is the error for a body that ends inside the value.
func (d *decideDecoder) atEnd() *Error { return copyErr(errBodyEndsEarly) }

// wrongType records a value of the wrong JSON type (got: "string",
// "number 1.5", …) for field (want: "object", "string", "integer").
func (d *decideDecoder) wrongType(field, got, want string) {
	if d.err == nil {
		d.err = &Error{Status: 400, Code: CodeBadRequest, Field: field, Message: "wrong JSON type: got " + excerpt(got) + ", want " + want}
	}
}

// valueKind names the JSON type of the value starting with c, as
// encoding/json's type errors do.
func valueKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// lookupField finds the field a key names: exactly, else as encoding/json
// does, case-insensitively with Unicode folding.
func lookupField(key []byte) int {
	switch string(key) {
	case "ids":
		return fieldIDs
	case "channel":
		return fieldChannel
	case "placement":
		return fieldPlacement
	case "store":
		return fieldStore
	case "limit":
		return fieldLimit
	case "locale":
		return fieldLocale
	case "context":
		return fieldContext
	case "now":
		return fieldNow
	}
	for f := fieldIDs; f <= fieldNow; f++ {
		if bytes.EqualFold(key, []byte(decideFieldNames[f])) {
			return f
		}
	}
	return fieldUnknown
}

// object decodes the top-level object.
func (d *decideDecoder) object() *Error {
	d.pos++ // {
	d.skipSpace()
	if d.pos == len(d.data) {
		return d.atEnd()
	}
	if d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		key, e := d.key()
		if e != nil {
			return e
		}
		f := lookupField(key)
		if f == fieldUnknown && d.err == nil {
			d.err = &Error{Status: 400, Code: CodeUnknownField, Field: excerpt(string(key)), Message: "unknown field; see /openapi.json for the fields this route takes"}
		}
		if f != fieldUnknown {
			if d.seen&(1<<f) != 0 {
				d.duplicate(decideFieldNames[f], "“"+decideFieldNames[f]+"”")
			}
			d.seen |= 1 << f
		}
		if e := d.field(f); e != nil {
			return e
		}
		if closed, e := d.next('}'); closed || e != nil {
			return e
		}
	}
}

// key reads an object key and the colon after it; the key's bytes are
// valid until the next key.
func (d *decideDecoder) key() ([]byte, *Error) {
	if d.pos == len(d.data) {
		return nil, d.atEnd()
	}
	if d.data[d.pos] != '"' {
		return nil, d.syntax()
	}
	start, end, plain, e := d.scanString()
	if e != nil {
		return nil, e
	}
	key := d.data[start:end]
	if !plain {
		d.scratch = unquote(d.scratch[:0], key)
		key = d.scratch
	}
	d.skipSpace()
	if d.pos == len(d.data) {
		return nil, d.atEnd()
	}
	if d.data[d.pos] != ':' {
		return nil, d.syntax()
	}
	d.pos++
	d.skipSpace()
	if d.pos == len(d.data) {
		return nil, d.atEnd()
	}
	return key, nil
}

// next reads what follows a member of an object or array: a comma (and
// the space after it), or the closing bracket (closed).
func (d *decideDecoder) next(closer byte) (closed bool, e *Error) {
	d.skipSpace()
	if d.pos == len(d.data) {
		return false, d.atEnd()
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		return false, nil
	case closer:
		d.pos++
		return true, nil
	}
	return false, d.syntax()
}

// field decodes the value of a top-level field.
func (d *decideDecoder) field(f int) *Error {
	c := d.data[d.pos]
	switch f {
	case fieldIDs, fieldContext:
		name := decideFieldNames[f]
		switch c {
		case '{':
			return d.stringMap(f == fieldIDs)
		case 'n':
			if e := d.literal("null"); e != nil {
				return e
			}
			if f == fieldIDs {
				d.idSet = [features.NumNamespaces]bool{}
				d.hasUnknownID = false
			} else {
				d.nctx, d.ctxOverflow = 0, false
			}
			return nil
		}
		if e := d.skipValue(1); e != nil {
			return e
		}
		d.wrongType(name, valueKind(c), "object")
		return nil
	case fieldChannel, fieldPlacement, fieldStore, fieldLocale, fieldNow:
		name := decideFieldNames[f]
		switch c {
		case '"':
			s, e := d.stringValue()
			if e != nil {
				return e
			}
			switch f {
			case fieldChannel:
				d.channel = s
			case fieldPlacement:
				d.placement = s
			case fieldStore:
				d.store = s
			case fieldLocale:
				d.locale = s
			case fieldNow:
				d.now, d.hasNow = s, true
			}
			return nil
		case 'n':
			// null leaves a string as it was and unsets a pointer.
			if f == fieldNow {
				d.hasNow = false
			}
			return d.literal("null")
		}
		if e := d.skipValue(1); e != nil {
			return e
		}
		d.wrongType(name, valueKind(c), "string")
		return nil
	case fieldLimit:
		switch {
		case c == 'n':
			d.hasLimit = false
			return d.literal("null")
		case c == '-' || c >= '0' && c <= '9':
			start := d.pos
			if e := d.number(); e != nil {
				return e
			}
			lit := d.data[start:d.pos]
			if n, ok := parseInt(lit); ok {
				d.limit, d.hasLimit = n, true
			} else {
				d.wrongType("limit", "number "+string(lit), "integer")
			}
			return nil
		}
		if e := d.skipValue(1); e != nil {
			return e
		}
		d.wrongType("limit", valueKind(c), "integer")
		return nil
	}
	return d.skipValue(1)
}

// parseInt parses a JSON number as encoding/json does for an int:
// integers in int64's range only.
func parseInt(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return int(-int64(n)), true // -(1<<63) wraps to itself: int64's minimum
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int(n), true
}

// stringMap decodes the object of ids (ids true) or context, merging into
// what an earlier occurrence of the field left.
func (d *decideDecoder) stringMap(ids bool) *Error {
	name := "context"
	if ids {
		name = "ids"
	}
	d.pos++ // {
	d.skipSpace()
	if d.pos == len(d.data) {
		return d.atEnd()
	}
	if d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		if d.pos == len(d.data) {
			return d.atEnd()
		}
		if d.data[d.pos] != '"' {
			return d.syntax()
		}
		// The key goes to the arena when the request may keep it.
		start, end, plain, e := d.scanString()
		if e != nil {
			return e
		}
		var k span
		var key []byte
		if ids {
			key = d.data[start:end]
			if !plain {
				d.scratch = unquote(d.scratch[:0], key)
				key = d.scratch
			}
		} else {
			k = d.appendString(d.data[start:end], plain)
			key = d.arena[k.off:k.end]
		}
		d.skipSpace()
		if d.pos == len(d.data) {
			return d.atEnd()
		}
		if d.data[d.pos] != ':' {
			return d.syntax()
		}
		d.pos++
		d.skipSpace()
		if d.pos == len(d.data) {
			return d.atEnd()
		}
		var v span // null is the empty string
		switch c := d.data[d.pos]; c {
		case '"':
			if v, e = d.stringValue(); e != nil {
				return e
			}
		case 'n':
			if e := d.literal("null"); e != nil {
				return e
			}
		default:
			if e := d.skipValue(2); e != nil {
				return e
			}
			d.wrongType(name, valueKind(c), "string")
		}
		if ids {
			d.putID(key, v)
		} else {
			d.putContext(k, v)
		}
		if closed, e := d.next('}'); closed || e != nil {
			return e
		}
	}
}

func (d *decideDecoder) putID(key []byte, v span) {
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if string(key) == ns.String() {
			if bit := uint32(1) << (16 + ns); d.seen&bit != 0 {
				d.duplicate(idFields[ns], "“"+ns.String()+"” in ids")
			} else {
				d.seen |= bit
			}
			d.ids[ns], d.idSet[ns] = v, true
			return
		}
	}
	if d.hasUnknownID && bytes.Compare(key, d.arena[d.unknownID.off:d.unknownID.end]) >= 0 {
		return
	}
	d.unknownID, d.hasUnknownID = d.appendString(key, true), true
}

func (d *decideDecoder) putContext(k, v span) {
	key := d.arena[k.off:k.end]
	for i := 0; i < d.nctx; i++ {
		e := &d.ctx[i]
		if bytes.Equal(d.arena[e.k.off:e.k.end], key) {
			d.duplicate("context", "in context")
			e.v = v
			return
		}
	}
	if d.nctx == len(d.ctx) {
		// Too many keys already: the request will be refused, so the
		// rest are kept only to find a duplicate among them.
		d.ctxOverflow = true
		if d.ctxMore == nil {
			d.ctxMore = make(map[string]struct{})
		}
		if _, ok := d.ctxMore[string(key)]; ok {
			d.duplicate("context", "in context")
		}
		d.ctxMore[string(key)] = struct{}{}
		return
	}
	d.ctx[d.nctx] = ctxEntry{k, v}
	d.nctx++
}

// stringValue reads a string into the arena.
func (d *decideDecoder) stringValue() (span, *Error) {
	start, end, plain, e := d.scanString()
	if e != nil {
		return span{}, e
	}
	return d.appendString(d.data[start:end], plain), nil
}

// appendString appends a string's contents (raw between the quotes,
// unescaped unless plain) to the arena.
func (d *decideDecoder) appendString(raw []byte, plain bool) span {
	off := len(d.arena)
	if plain {
		d.arena = append(d.arena, raw...)
	} else {
		d.arena = unquote(d.arena, raw)
	}
	return span{int32(off), int32(len(d.arena))}
}

// scanString checks the string at d.pos (its opening quote) and moves past
// it. It returns where its contents lie in data and whether they are
// plain: printable ASCII without escapes, the same once unquoted.
func (d *decideDecoder) scanString() (start, end int, plain bool, e *Error) {
	d.pos++ // "
	start = d.pos
	plain = true
	data := d.data
	for i := d.pos; i < len(data); i++ {
		c := data[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		switch {
		case c == '"':
			d.pos = i + 1
			return start, i, plain, nil
		case c < 0x20:
			d.pos = i
			return 0, 0, false, d.syntax()
		case c == '\\':
			plain = false
			i++
			if i == len(data) {
				d.pos = i
				return 0, 0, false, d.atEnd()
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for j := 0; j < 4; j++ {
					i++
					if i == len(data) {
						d.pos = i
						return 0, 0, false, d.atEnd()
					}
					if !isHex(data[i]) {
						d.pos = i
						return 0, 0, false, d.syntax()
					}
				}
			default:
				d.pos = i
				return 0, 0, false, d.syntax()
			}
		default: // not ASCII: maybe invalid UTF-8, which becomes U+FFFD
			plain = false
		}
	}
	d.pos = len(data)
	return 0, 0, false, d.atEnd()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquote appends the contents of a checked string (raw between its
// quotes) to dst, unescaped as encoding/json does: invalid UTF-8 and lone
// surrogates become U+FFFD.
func unquote(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch e := raw[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hexVal(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hexVal(raw[i+2:])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // " \ /
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// literal reads true, false or null.
func (d *decideDecoder) literal(lit string) *Error {
	for i := 0; i < len(lit); i++ {
		if d.pos == len(d.data) {
			return d.atEnd()
		}
		if d.data[d.pos] != lit[i] {
			return d.syntax()
		}
		d.pos++
	}
	return nil
}

// number reads a number; at the end of the body a complete one is fine.
func (d *decideDecoder) number() *Error {
	data := d.data
	if data[d.pos] == '-' {
		d.pos++
	}
	digits := func() *Error { // one or more
		if d.pos == len(data) {
			return d.atEnd()
		}
		if c := data[d.pos]; c < '0' || c > '9' {
			return d.syntax()
		}
		for d.pos < len(data) && data[d.pos] >= '0' && data[d.pos] <= '9' {
			d.pos++
		}
		return nil
	}
	if d.pos < len(data) && data[d.pos] == '0' {
		d.pos++
	} else if e := digits(); e != nil {
		return e
	}
	if d.pos < len(data) && data[d.pos] == '.' {
		d.pos++
		if e := digits(); e != nil {
			return e
		}
	}
	if d.pos < len(data) && (data[d.pos] == 'e' || data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(data) && (data[d.pos] == '+' || data[d.pos] == '-') {
			d.pos++
		}
		if e := digits(); e != nil {
			return e
		}
	}
	return nil
}

// skipValue checks the value at d.pos and moves past it. depth is the
// number of arrays and objects it is nested in.
func (d *decideDecoder) skipValue(depth int) *Error {
	// kinds[i] says whether the i-th open container is an object.
	var kinds [maxNestingDepth/64 + 1]uint64
	open := 0
	for {
		// A value.
		if d.pos == len(d.data) {
			return d.atEnd()
		}
		switch c := d.data[d.pos]; c {
		case '{', '[':
			if depth+open+1 > maxNestingDepth {
				return d.syntax()
			}
			isObj := c == '{'
			if isObj {
				kinds[open/64] |= 1 << (open % 64)
			} else {
				kinds[open/64] &^= 1 << (open % 64)
			}
			open++
			d.pos++
			d.skipSpace()
			if d.pos == len(d.data) {
				return d.atEnd()
			}
			if isObj && d.data[d.pos] == '}' || !isObj && d.data[d.pos] == ']' {
				d.pos++
				open--
				break
			}
			if isObj {
				if e := d.skipKey(); e != nil {
					return e
				}
			}
			continue
		case '"':
			if _, _, _, e := d.scanString(); e != nil {
				return e
			}
		case 't':
			if e := d.literal("true"); e != nil {
				return e
			}
		case 'f':
			if e := d.literal("false"); e != nil {
				return e
			}
		case 'n':
			if e := d.literal("null"); e != nil {
				return e
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return d.syntax()
			}
			if e := d.number(); e != nil {
				return e
			}
		}
		// After a value: close containers until one goes on.
		for {
			if open == 0 {
				return nil
			}
			isObj := kinds[(open-1)/64]&(1<<((open-1)%64)) != 0
			closer := byte(']')
			if isObj {
				closer = '}'
			}
			closed, e := d.next(closer)
			if e != nil {
				return e
			}
			if closed {
				open--
				continue
			}
			if isObj {
				if e := d.skipKey(); e != nil {
					return e
				}
			}
			break
		}
	}
}

// skipKey checks a key and its colon.
func (d *decideDecoder) skipKey() *Error {
	if d.pos == len(d.data) {
		return d.atEnd()
	}
	if d.data[d.pos] != '"' {
		return d.syntax()
	}
	if _, _, _, e := d.scanString(); e != nil {
		return e
	}
	d.skipSpace()
	if d.pos == len(d.data) {
		return d.atEnd()
	}
	if d.data[d.pos] != ':' {
		return d.syntax()
	}
	d.pos++
	d.skipSpace()
	return nil
}

// request validates what was decoded and fills req, in the order and with
// the answers of the encoding/json decoder's checks.
func (d *decideDecoder) request(allowNow bool, req *engine.DecideRequest) *Error {
	// The one allocation of a typical request: every kept string is a
	// piece of this one.
	all := string(d.arena)
	str := func(s span) string { return all[s.off:s.end] }

	n := 0
	for _, set := range d.idSet {
		if set {
			n++
		}
	}
	if n == 0 && !d.hasUnknownID {
		return &Error{Status: 400, Code: CodeMissingField, Field: "ids", Message: `ids needs at least one identifier, e.g. {"member": "M1"}`}
	}
	// The first bad identifier in namespace order.
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if !d.idSet[ns] {
			continue
		}
		v := str(d.ids[ns])
		if v == "" {
			continue
		}
		stored, e := normalizeID(ns, v, idFields[ns])
		if e != nil {
			return e
		}
		req.IDs.Set(ns, stored)
	}
	if d.hasUnknownID {
		return &Error{Status: 400, Code: CodeUnknownField, Field: "ids." + excerpt(str(d.unknownID)), Message: "unknown identifier namespace; use member, card, phone, email or device"}
	}
	if req.IDs.Empty() {
		return &Error{Status: 400, Code: CodeMissingField, Field: "ids", Message: "every identifier in ids is empty"}
	}
	ch, e := parseOfferChannel(str(d.channel), "channel")
	if e != nil {
		return e
	}
	req.Channel = ch
	placement, store := str(d.placement), str(d.store)
	if e := checkName(placement, "placement"); e != nil {
		return e
	}
	if e := checkName(store, "store"); e != nil {
		return e
	}
	req.Placement, req.Store = placement, store
	req.Limit = engine.DefaultLimit
	if d.hasLimit {
		if d.limit < 1 || d.limit > engine.MaxLimit {
			return &Error{Status: 400, Code: CodeBadRequest, Field: "limit", Message: "limit must be between 1 and " + strconv.Itoa(engine.MaxLimit)}
		}
		req.Limit = d.limit
	}
	loc, e := parseLocale(str(d.locale), "locale")
	if e != nil {
		return e
	}
	req.Locale = loc
	if d.ctxOverflow {
		return &Error{Status: 400, Code: CodeBadRequest, Field: "context", Message: "context holds more than " + strconv.Itoa(maxContextKeys) + " attributes"}
	}
	entries := d.ctx[:d.nctx]
	for _, en := range entries {
		if checkContext(str(en.k), str(en.v)) != nil {
			// Report the smallest bad key, as the map-based check did.
			sorted := make([]ctxEntry, len(entries))
			copy(sorted, entries)
			sort.Slice(sorted, func(i, j int) bool { return strings.Compare(str(sorted[i].k), str(sorted[j].k)) < 0 })
			for _, en := range sorted {
				if e := checkContext(str(en.k), str(en.v)); e != nil {
					return e
				}
			}
		}
	}
	if len(entries) > 0 {
		req.Context = make(map[string]string, len(entries))
		for _, en := range entries {
			req.Context[str(en.k)] = str(en.v)
		}
	}
	if d.hasNow {
		if !allowNow {
			return &Error{Status: 403, Code: CodeForbidden, Field: "now", Message: "only admin keys may set now (it is for replays and tests)"}
		}
		t, e := parseNow(str(d.now))
		if e != nil {
			return e
		}
		req.Now = &t
	}
	return nil
}

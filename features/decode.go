package features

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Decoding and validating events, schema v1.
//
// DecodeEvent is on the apply path of every event, so it is a hand-rolled
// single-pass scanner for this flat schema rather than encoding/json: it
// records where each field's raw bytes are, checks the JSON syntax as it
// goes, and only then validates values and copies the strings the event
// keeps — all of them into one allocation: the strings of an event are
// immutable and may be retained, and the cost is one small noscan
// allocation per event. (A caller-owned arena would save it but would let
// one retained string pin many events' bytes, or make strings mutable.)

// DecodeOptions are the limits DecodeEvent enforces. The zero value is
// valid: a zero field means its default.
type DecodeOptions struct {
	// MaxEventBytes is the largest accepted event, in bytes of JSON.
	// Default: 16 KiB.
	MaxEventBytes int
	// MaxFieldBytes is the longest identifier, sku, category, store,
	// offer_id, decision_id, coupon_code, attrs key or attrs value, in
	// bytes after unescaping; query may be twice as long. Default: 256.
	MaxFieldBytes int
	// MaxAttrs is the most entries attrs may hold, at most 32.
	// Default: 16.
	MaxAttrs int
	// MaxFutureSkew is how far ahead of the caller's clock an event's ts
	// may be. Default: 5m.
	MaxFutureSkew time.Duration
}

const (
	defaultMaxEventBytes = 16 << 10
	defaultMaxFieldBytes = 256
	defaultMaxAttrs      = 16
	defaultMaxFutureSkew = 5 * time.Minute

	maxAttrsLimit   = 32 // the scanner keeps attrs positions in a fixed array
	maxEventIDBytes = 128
	maxNesting      = 256
	maxAmount       = 1_000_000_000_000
	maxQuantity     = 10_000
	maxDwellS       = 86_400
	minTS           = 946_684_800_000 // 2000-01-01T00:00:00Z
)

// EnsureDefaults fills unset fields with their defaults.
func (o *DecodeOptions) EnsureDefaults() {
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = defaultMaxEventBytes
	}
	if o.MaxFieldBytes == 0 {
		o.MaxFieldBytes = defaultMaxFieldBytes
	}
	if o.MaxAttrs == 0 {
		o.MaxAttrs = defaultMaxAttrs
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = defaultMaxFutureSkew
	}
}

// Validate reports every problem with the options at once.
func (o *DecodeOptions) Validate() error {
	var errs []error
	if o.MaxEventBytes < 0 || o.MaxEventBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("features: max event bytes %d is out of range; use 0 for the default (16 KiB) or up to 64 MiB", o.MaxEventBytes))
	}
	if o.MaxFieldBytes < 0 || o.MaxFieldBytes > 4096 {
		errs = append(errs, fmt.Errorf("features: max field bytes %d is out of range; use 0 for the default (256) or up to 4096", o.MaxFieldBytes))
	}
	if o.MaxAttrs < 0 || o.MaxAttrs > maxAttrsLimit {
		errs = append(errs, fmt.Errorf("features: max attrs %d is out of range; use 0 for the default (16) or up to %d", o.MaxAttrs, maxAttrsLimit))
	}
	if o.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("features: max future skew %v is negative; use 0 for the default (5m) or a positive duration", o.MaxFutureSkew))
	}
	return errors.Join(errs...)
}

// limits are the effective options of one call: DecodeEvent never writes
// to the caller's options, which may be shared by many goroutines.
type limits struct {
	event, field, attrs int
	skewMS              int64
}

func (o *DecodeOptions) limits() limits {
	l := limits{defaultMaxEventBytes, defaultMaxFieldBytes, defaultMaxAttrs, defaultMaxFutureSkew.Milliseconds()}
	if o != nil {
		if o.MaxEventBytes > 0 {
			l.event = o.MaxEventBytes
		}
		if o.MaxFieldBytes > 0 {
			l.field = o.MaxFieldBytes
		}
		if o.MaxAttrs > 0 {
			l.attrs = min(o.MaxAttrs, maxAttrsLimit)
		}
		if o.MaxFutureSkew > 0 {
			l.skewMS = o.MaxFutureSkew.Milliseconds()
		}
	}
	return l
}

// Fields of schema v1, as indexes into the scanner's tables. The string
// fields come first, in validation order.
const (
	fEventID = iota
	fTS
	fType
	fChannel
	fSKU
	fCategory
	fStore
	fOfferID
	fDecisionID
	fCouponCode
	fQuery
	fMember // ids.*, in Namespace order
	fCard
	fPhone
	fEmail
	fDevice
	fAmount // the numbers
	fQuantity
	fDwellS
	fIDs // the objects
	fAttrs
	numFields

	numStrFields = fAmount
)

var fieldNames = [numFields]string{
	"event_id", "ts", "type", "channel", "sku", "category", "store", "offer_id", "decision_id",
	"coupon_code", "query", "ids.member", "ids.card", "ids.phone", "ids.email", "ids.device",
	"amount", "quantity", "dwell_s", "ids", "attrs",
}

func topField(k []byte) int {
	switch string(k) {
	case "event_id":
		return fEventID
	case "ts":
		return fTS
	case "type":
		return fType
	case "channel":
		return fChannel
	case "ids":
		return fIDs
	case "sku":
		return fSKU
	case "category":
		return fCategory
	case "store":
		return fStore
	case "amount":
		return fAmount
	case "quantity":
		return fQuantity
	case "dwell_s":
		return fDwellS
	case "offer_id":
		return fOfferID
	case "decision_id":
		return fDecisionID
	case "coupon_code":
		return fCouponCode
	case "query":
		return fQuery
	case "attrs":
		return fAttrs
	}
	return -1
}

func idsField(k []byte) int {
	switch string(k) {
	case "member":
		return fMember
	case "card":
		return fCard
	case "phone":
		return fPhone
	case "email":
		return fEmail
	case "device":
		return fDevice
	}
	return -1
}

// span is the raw content of a JSON string, between its quotes.
type span struct{ off, end int32 }

// scanner holds what one pass over an event found.
type scanner struct {
	b       []byte
	present uint32 // fields with a non-null, non-empty value
	keys    uint32 // fields whose key was seen (duplicate detection)
	esc     uint32 // string fields whose raw form holds escapes
	big     uint8  // number fields out of int64 range (bit per number field)
	str     [numStrFields]span
	num     [3]int64
	size    int // bytes of the strings the event keeps, raw (≥ unescaped)
	nattrs  int
	attrEsc uint64 // bit 2i: key i escaped, bit 2i+1: value i escaped
	attrs   [maxAttrsLimit][2]span
	lim     limits
	pending *Rejection // first schema error, reported if the syntax is fine
	// others are the keys seen of whose values the scanner keeps no
	// position — unknown fields and identifiers, attrs entries that are
	// null, not strings or past the limit — each prefixed with its
	// object's scope byte, for duplicate detection. Made on first use:
	// events that are accepted rarely have any.
	others map[string]struct{}
}

// Scopes of the keys in scanner.others.
const (
	scopeTop   = 't'
	scopeIDs   = 'i'
	scopeAttrs = 'a'
)

// sawOther notes key k of the object scope among the keys the scanner
// keeps no position of, and reports whether it was already there.
func (s *scanner) sawOther(scope byte, k []byte) bool {
	if s.others == nil {
		s.others = make(map[string]struct{}, 4)
	}
	var buf [64]byte
	key := append(append(buf[:0], scope), k...)
	if _, dup := s.others[string(key)]; dup {
		return true
	}
	s.others[string(key)] = struct{}{}
	return false
}

// isOther reports whether key k of the object scope was noted by
// sawOther.
func (s *scanner) isOther(scope byte, k []byte) bool {
	if s.others == nil {
		return false
	}
	var buf [64]byte
	_, dup := s.others[string(append(append(buf[:0], scope), k...))]
	return dup
}

// DecodeEvent decodes one JSON event into ev and validates it. now, in
// Unix milliseconds, is the instant the future_ts check judges ts against:
// HTTP ingest passes its clock; the ingest loop the earlier of the
// record's Kafka timestamp and its clock, so a replay judges a record as
// the live run did. opts may be nil for the defaults. It returns
// nil when the event is valid, else a Rejection with a stable code, the
// field at fault and a message that quotes at most 32 bytes of the input.
//
// Ownership: DecodeEvent overwrites every field of *ev and never writes to
// memory reachable from its previous value (it does not reuse the old
// Attrs map), so copies of earlier events stay intact. The strings it sets
// do not alias data — the caller may reuse data at once — they share one
// new backing array per event, immutable and safe to retain; retaining
// any one of them keeps that array (a few hundred bytes) alive. Attrs is
// nil when there are none, else a new map. On rejection *ev holds
// whatever was decoded so far and must not be used.
//
// # Validation rules
//
// docs/events.md copies this list.
//
//   - The input is at most MaxEventBytes (default 16 KiB), else too_large
//     before anything is parsed. It is exactly one JSON object, optionally
//     surrounded by white space; anything else — broken syntax, a bad
//     escape, invalid UTF-8, a duplicate key (in the event, ids or attrs,
//     whatever the key — an unknown field repeated is bad_json, not
//     unknown_field — and whatever the values: "k":null,"k":"v" repeats
//     k), nesting deeper than 256, trailing data after the object — is
//     bad_json. Syntax errors win over
//     every other code.
//   - Top-level keys are the schema v1 fields; any other key is
//     unknown_field (field: the key, cut to 32 bytes). Keys inside ids are
//     member, card, phone, email, device; any other is unknown_field with
//     field "ids.<key>". A JSON null for any field, identifier or attrs
//     value means absent; so does an empty string, except as an attrs
//     value, where it is kept.
//   - A value of the wrong JSON type is wrong_type: strings must be
//     strings, ids and attrs objects, attrs values strings, and amount,
//     quantity, dwell_s integers (no fraction, no exponent, not quoted).
//   - event_id is required, 1..128 bytes of printable ASCII without spaces
//     (0x21..0x7E): missing_field, too_large, bad_id.
//   - ts is required, RFC 3339 with a zone ("2026-11-20T10:00:00+08:00",
//     "2026-11-20T02:00:00.250Z"; 't' and 'z' may be lower case; any number
//     of fractional digits, truncated to milliseconds): bad_ts when
//     malformed, out of range (month 13, 31 April, 29 February outside leap
//     years, second 60) or before 2000-01-01T00:00:00Z; future_ts when later
//     than now + MaxFutureSkew (default 5m).
//   - type is required and one of the event type names (unknown_type);
//     channel is required and one of web app miniapp store pos tablet push
//     sms social (bad_channel).
//   - ids is required with at least one identifier (missing_field "ids");
//     identify needs at least two. Each identifier is at most MaxFieldBytes
//     (default 256) bytes (too_large "ids.<ns>") and else bad_id:
//     member, card, device: [A-Za-z0-9._:-]+ (':' is allowed for MAC
//     addresses and prefixed IDs; the customer key "ns:value" splits at
//     the first ':').
//     phone: either 64 hex digits (already hashed; stored lower case), or a
//     phone number — an optional leading '+' and 6..20 digits, spaces,
//     '-', '.', '(' and ')' ignored — normalised to the digits with the
//     '+' kept and stored as the lower-case hex SHA-256 of that. No country code is inferred:
//     "+8613800138000" and "13800138000" are different customers.
//     email: either 64 hex digits (stored lower case), or an address —
//     trimmed of spaces, exactly one '@' with a non-empty part on each
//     side, no spaces or control characters — lower-cased and stored as the
//     hex SHA-256 of that.
//   - sku, category, store, offer_id, decision_id, coupon_code are at most
//     MaxFieldBytes bytes and query at most 2×MaxFieldBytes (too_large);
//     none may contain control characters (bad_value). Any other UTF-8 is
//     fine (category "女装").
//   - amount is 0..10^12 minor units, quantity 0..10000, dwell_s 0..86400
//     (bad_value outside).
//   - attrs has at most MaxAttrs (default 16) entries (too_large "attrs");
//     keys are 1..MaxFieldBytes bytes, values at most MaxFieldBytes, no
//     control characters (bad_value / too_large "attrs.<key>").
//   - too_late and duplicate are decided by the Store, not here.
//
// Per type (missing_field unless said otherwise):
//
//   - product_view, add_to_cart, remove_from_cart, product_touch, try_on:
//     sku or category (field "sku").
//   - order, pos_purchase: amount, which must be > 0 (bad_value when 0).
//   - return: amount (the refunded value, ≥ 0).
//   - pos_purchase, store_enter, store_exit, dwell: store.
//   - dwell: dwell_s > 0 (bad_value when 0).
//   - offer_impression, offer_click, offer_dismiss: offer_id.
//   - coupon_redeem: offer_id, decision_id or coupon_code (field "offer_id").
//   - search: query or category (field "query").
//   - identify: at least two identifiers (field "ids").
//   - consent: attrs.purpose, one of marketing, personalization, location
//     (else bad_value); attrs.granted, "true" or "false" (else bad_value);
//     optionally attrs.channels, a comma-separated list of channel names
//     (spaces around names ignored; an unknown or empty name is
//     bad_channel; absent or empty means every channel).
//
// Checks run in a fixed order — syntax, then schema (unknown_field,
// wrong_type, too many attrs) in input order, then event_id, ts, type,
// channel, ids (with identify's two), the optional strings, numbers,
// attrs, per-type rules — and
// the first failure is reported, so a given input always gets the same
// code whatever its key order.
func DecodeEvent(data []byte, now int64, opts *DecodeOptions, ev *Event) *Rejection {
	*ev = Event{}
	lim := opts.limits()
	if len(data) > lim.event {
		return reject(ReasonTooLarge, "", fmt.Sprintf("the event is %d bytes, over the limit of %d; keep events small (drop large attrs)", len(data), lim.event))
	}
	var s scanner
	s.b = data
	s.lim = lim
	if rej := s.object(); rej != nil {
		return rej
	}
	if s.pending != nil {
		return s.pending
	}
	return s.validate(now, ev)
}

func reject(code Reason, field, msg string) *Rejection {
	return &Rejection{Code: code, Field: field, Message: msg}
}

// badJSON reports a syntax error at byte pos.
func (s *scanner) badJSON(pos int, field, what string) *Rejection {
	if field == "ids.phone" || field == "ids.email" {
		// Never echo what may be a clear phone number or address.
		return reject(ReasonBadJSON, field, fmt.Sprintf("not valid JSON at byte %d: %s; send one JSON object per event", pos, what))
	}
	return reject(ReasonBadJSON, field, fmt.Sprintf("not valid JSON at byte %d: %s near %s; send one JSON object per event", pos, what, inputExcerpt(string(s.b[min(pos, len(s.b)):]))))
}

func (s *scanner) schemaErr(code Reason, field, msg string) {
	if s.pending == nil {
		s.pending = reject(code, field, msg)
	}
}

var wsTable = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipWS(b []byte, i int) int {
	for i < len(b) && wsTable[b[i]] {
		i++
	}
	return i
}

// object scans the top-level object.
func (s *scanner) object() *Rejection {
	b := s.b
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		if i >= len(b) {
			return s.badJSON(i, "", "the input is empty")
		}
		return s.badJSON(i, "", "an event must be a JSON object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			var key [32]byte
			k, kEnd, rej := s.key(i, key[:0], "")
			if rej != nil {
				return rej
			}
			i = kEnd
			f := topField(k)
			var field string
			if f < 0 {
				field = fieldExcerpt(string(k))
				// A repeated key is bad JSON even when the field is
				// unknown: syntax errors win.
				if s.sawOther(scopeTop, k) {
					return s.badJSON(i, field, "duplicate key "+"“"+field+"”")
				}
				s.schemaErr(ReasonUnknownField, field, "field "+"“"+field+"”"+" is not in schema v1; remove it or put it in attrs")
				end, msg := skipValue(b, i)
				if msg != "" {
					return s.badJSON(end, field, msg)
				}
				i = end
			} else {
				field = fieldNames[f]
				if s.keys&(1<<f) != 0 {
					return s.badJSON(i, field, "duplicate key "+"“"+field+"”")
				}
				s.keys |= 1 << f
				if i, rej = s.value(i, f, field); rej != nil {
					return rej
				}
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return s.badJSON(i, field, "expected ',' or '}' after a value")
		}
	}
	if i = skipWS(b, i); i != len(b) {
		return s.badJSON(i, "", "trailing data after the event object")
	}
	return nil
}

// key scans an object key at b[i] and the ':' after it, returning the
// unescaped key (in buf when it has escapes) and the index of the value.
func (s *scanner) key(i int, buf []byte, parent string) ([]byte, int, *Rejection) {
	b := s.b
	if i >= len(b) || b[i] != '"' {
		return nil, i, s.badJSON(i, parent, "expected a quoted field name")
	}
	end, esc, msg := scanString(b, i)
	if msg != "" {
		return nil, end, s.badJSON(end, parent, msg)
	}
	k := b[i+1 : end-1]
	if esc {
		k = appendUnescaped(buf, k)
	}
	j := skipWS(b, end)
	if j >= len(b) || b[j] != ':' {
		return nil, j, s.badJSON(j, parent, "expected ':' after a field name")
	}
	return k, skipWS(b, j+1), nil
}

// value scans the value of known field f at b[i].
func (s *scanner) value(i, f int, field string) (int, *Rejection) {
	b := s.b
	if i >= len(b) {
		return i, s.badJSON(i, field, "the input ends before the value")
	}
	c := b[i]
	if c == 'n' {
		end, msg := scanLiteral(b, i, "null")
		if msg != "" {
			return end, s.badJSON(end, field, msg)
		}
		return end, nil
	}
	switch {
	case f < numStrFields:
		if c == '"' {
			end, esc, msg := scanString(b, i)
			if msg != "" {
				return end, s.badJSON(end, field, msg)
			}
			if n := end - i - 2; n > 0 {
				s.present |= 1 << f
				s.str[f] = span{int32(i + 1), int32(end - 1)}
				switch f {
				case fTS, fType, fChannel: // parsed, not kept
				case fPhone, fEmail:
					s.size += max(n, 64) // room for the hash
				default:
					s.size += n
				}
				if esc {
					s.esc |= 1 << f
				}
			}
			return end, nil
		}
		s.schemaErr(ReasonWrongType, field, field+" must be a JSON string")
	case f <= fDwellS:
		if c == '-' || (c >= '0' && c <= '9') {
			end, isInt, msg := scanNumber(b, i)
			if msg != "" {
				return end, s.badJSON(end, field, msg)
			}
			if !isInt {
				s.schemaErr(ReasonWrongType, field, field+" must be a JSON integer, without a fraction or exponent")
				return end, nil
			}
			n := f - fAmount
			v, ok := parseInt(b[i:end])
			if !ok {
				s.big |= 1 << n
			}
			s.num[n] = v
			s.present |= 1 << f
			return end, nil
		}
		if c == '"' {
			s.schemaErr(ReasonWrongType, field, field+" must be a JSON integer, not a string")
		} else {
			s.schemaErr(ReasonWrongType, field, field+" must be a JSON integer")
		}
	case f == fIDs:
		if c == '{' {
			return s.ids(i)
		}
		s.schemaErr(ReasonWrongType, field, "ids must be an object such as {\"member\": \"M1\"}")
	case f == fAttrs:
		if c == '{' {
			return s.attrsObject(i)
		}
		s.schemaErr(ReasonWrongType, field, "attrs must be an object of strings")
	}
	end, msg := skipValue(b, i)
	if msg != "" {
		return end, s.badJSON(end, field, msg)
	}
	return end, nil
}

// ids scans the ids object at b[i] == '{'.
func (s *scanner) ids(i int) (int, *Rejection) {
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		var key [32]byte
		k, kEnd, rej := s.key(i, key[:0], "ids")
		if rej != nil {
			return kEnd, rej
		}
		i = kEnd
		f := idsField(k)
		var field string
		if f < 0 {
			field = "ids." + fieldExcerpt(string(k))
			if s.sawOther(scopeIDs, k) {
				return i, s.badJSON(i, field, "duplicate key "+"“"+field+"”")
			}
			s.schemaErr(ReasonUnknownField, field, "identifier "+"“"+field+"”"+" is not in schema v1; use member, card, phone, email or device")
			end, msg := skipValue(b, i)
			if msg != "" {
				return end, s.badJSON(end, field, msg)
			}
			i = end
		} else {
			field = fieldNames[f]
			if s.keys&(1<<f) != 0 {
				return i, s.badJSON(i, field, "duplicate key "+"“"+field+"”")
			}
			s.keys |= 1 << f
			if i, rej = s.value(i, f, field); rej != nil {
				return i, rej
			}
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return i, s.badJSON(i, field, "expected ',' or '}' in ids")
	}
}

// attrsObject scans the attrs object at b[i] == '{'.
func (s *scanner) attrsObject(i int) (int, *Rejection) {
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, s.badJSON(i, "attrs", "expected a quoted key")
		}
		kEnd, kEsc, msg := scanString(b, i)
		if msg != "" {
			return kEnd, s.badJSON(kEnd, "attrs", msg)
		}
		k := span{int32(i + 1), int32(kEnd - 1)}
		kb := s.raw(k)
		var kbuf [64]byte
		if kEsc {
			kb = appendUnescaped(kbuf[:0], kb)
		}
		// A key repeats whatever its values: "k":null,"k":"v" is as
		// much a duplicate as two strings.
		if s.isDupAttr(kb) || s.isOther(scopeAttrs, kb) {
			return kEnd, s.badJSON(kEnd, "attrs", "duplicate key in attrs")
		}
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return i, s.badJSON(i, "attrs", "expected ':' after a key")
		}
		i = skipWS(b, i+1)
		switch {
		case i < len(b) && b[i] == '"':
			end, vEsc, msg := scanString(b, i)
			if msg != "" {
				return end, s.badJSON(end, "attrs", msg)
			}
			if s.nattrs < s.lim.attrs {
				n := s.nattrs
				s.attrs[n] = [2]span{k, {int32(i + 1), int32(end - 1)}}
				s.size += int(k.end-k.off) + end - i - 2
				if kEsc {
					s.attrEsc |= 1 << (2 * n)
				}
				if vEsc {
					s.attrEsc |= 1 << (2*n + 1)
				}
			} else {
				s.schemaErr(ReasonTooLarge, "attrs", fmt.Sprintf("attrs has more than %d entries; keep it small", s.lim.attrs))
				s.sawOther(scopeAttrs, kb)
			}
			s.nattrs++
			i = end
		case i < len(b) && b[i] == 'n':
			end, msg := scanLiteral(b, i, "null")
			if msg != "" {
				return end, s.badJSON(end, "attrs", msg)
			}
			s.sawOther(scopeAttrs, kb)
			i = end
		default:
			s.sawOther(scopeAttrs, kb)
			s.schemaErr(ReasonWrongType, "attrs."+fieldExcerpt(string(s.raw(k))), "attrs values must be JSON strings")
			end, msg := skipValue(b, i)
			if msg != "" {
				return end, s.badJSON(end, "attrs", msg)
			}
			i = end
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return i, s.badJSON(i, "attrs", "expected ',' or '}' in attrs")
	}
}

func (s *scanner) raw(sp span) []byte { return s.b[sp.off:sp.end] }

// isDupAttr reports whether key kb (unescaped) equals the key of an attrs
// entry already kept. The keys of entries not kept (null, not a string,
// past the limit) are in s.others.
func (s *scanner) isDupAttr(kb []byte) bool {
	n := min(s.nattrs, s.lim.attrs)
	if n == 0 {
		return false
	}
	for j := 0; j < n; j++ {
		ob := s.raw(s.attrs[j][0])
		if s.attrEsc&(1<<(2*j)) != 0 {
			var obuf [64]byte
			ob = appendUnescaped(obuf[:0], ob)
		}
		if string(ob) == string(kb) {
			return true
		}
	}
	return false
}

// --- Validation -----------------------------------------------------------

// validate checks the scanned fields and fills ev. Every kept string is
// unescaped into buf, one allocation sized from the raw lengths (an
// unescaped string is never longer than its escaped form; hashed phone
// and email need 64 bytes).
func (s *scanner) validate(now int64, ev *Event) *Rejection {
	var scratch [64]byte
	lim := &s.lim

	// One allocation for every string the event keeps, sized by the scan.
	buf := make([]byte, 0, s.size)

	// event_id
	if s.present&(1<<fEventID) == 0 {
		return reject(ReasonMissingField, "event_id", "event_id is required: a unique ID per event, 1..128 printable ASCII characters")
	}
	id, buf := s.keep(fEventID, buf)
	if len(id) > maxEventIDBytes {
		return reject(ReasonTooLarge, "event_id", fmt.Sprintf("event_id is %d bytes; use at most %d", len(id), maxEventIDBytes))
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return reject(ReasonBadID, "event_id", "event_id "+inputExcerpt(id)+" must be printable ASCII without spaces")
		}
	}
	ev.ID = id

	// ts
	if s.present&(1<<fTS) == 0 {
		return reject(ReasonMissingField, "ts", "ts is required: the event time in RFC 3339, e.g. 2026-11-20T10:00:00+08:00")
	}
	tsb := s.bytes(fTS, scratch[:0])
	ts, ok := parseTS(tsb)
	if !ok {
		return reject(ReasonBadTS, "ts", "ts "+inputExcerpt(string(tsb))+" is not RFC 3339 with a zone; use e.g. 2026-11-20T10:00:00+08:00")
	}
	if ts < minTS {
		return reject(ReasonBadTS, "ts", "ts "+inputExcerpt(string(tsb))+" is before the year 2000; send the real event time")
	}
	if ts > now+lim.skewMS {
		return reject(ReasonFutureTS, "ts", "ts "+inputExcerpt(string(tsb))+" is more than "+time.Duration(lim.skewMS*1e6).String()+" ahead of the server clock; check the producer's clock")
	}
	ev.TS = ts

	// type
	if s.present&(1<<fType) == 0 {
		return reject(ReasonMissingField, "type", "type is required, e.g. \"product_view\"; see docs/events.md")
	}
	tb := s.bytes(fType, scratch[:0])
	typ := lookupType(tb)
	if typ == TypeUnknown {
		return reject(ReasonUnknownType, "type", "type "+inputExcerpt(string(tb))+" is not a known event type; see docs/events.md for the list")
	}
	ev.Type = typ

	// channel
	if s.present&(1<<fChannel) == 0 {
		return reject(ReasonMissingField, "channel", "channel is required: one of web app miniapp store pos tablet push sms social")
	}
	cb := s.bytes(fChannel, scratch[:0])
	ch := lookupChannel(cb)
	if ch == ChannelUnknown {
		return reject(ReasonBadChannel, "channel", "channel "+inputExcerpt(string(cb))+" is not one of web app miniapp store pos tablet push sms social")
	}
	ev.Channel = ch

	// ids
	nids := 0
	for f := fMember; f <= fDevice; f++ {
		if s.present&(1<<f) == 0 {
			continue
		}
		nids++
		var v string
		var rej *Rejection
		switch f {
		case fPhone:
			v, buf, rej = s.phone(buf)
		case fEmail:
			v, buf, rej = s.email(buf)
		default:
			v, buf = s.keep(f, buf)
			if len(v) > lim.field {
				return tooLong(f, len(v), lim.field)
			}
			for i := 0; i < len(v); i++ {
				if !idChar[v[i]] {
					return reject(ReasonBadID, fieldNames[f], fieldNames[f]+" "+inputExcerpt(v)+" may only hold A-Z a-z 0-9 . _ : -")
				}
			}
		}
		if rej != nil {
			return rej
		}
		ev.IDs.Set(Namespace(f-fMember), v)
	}
	if nids == 0 {
		return reject(ReasonMissingField, "ids", "ids is required with at least one of member, card, phone, email, device")
	}
	if typ == Identify && nids < 2 {
		return reject(ReasonMissingField, "ids", "identify links identifiers: send at least two of member, card, phone, email, device")
	}

	// Optional strings.
	for f := fSKU; f <= fQuery; f++ {
		if s.present&(1<<f) == 0 {
			continue
		}
		var v string
		v, buf = s.keep(f, buf)
		limit := lim.field
		if f == fQuery {
			limit *= 2
		}
		if len(v) > limit {
			return tooLong(f, len(v), limit)
		}
		if hasControl(v) {
			return reject(ReasonBadValue, fieldNames[f], fieldNames[f]+" must not contain control characters")
		}
		switch f {
		case fSKU:
			ev.SKU = v
		case fCategory:
			ev.Category = v
		case fStore:
			ev.Store = v
		case fOfferID:
			ev.OfferID = v
		case fDecisionID:
			ev.DecisionID = v
		case fCouponCode:
			ev.CouponCode = v
		case fQuery:
			ev.Query = v
		}
	}

	// Numbers.
	if s.present&(1<<fAmount) != 0 {
		if v := s.num[0]; v < 0 || v > maxAmount || s.big&1 != 0 {
			return reject(ReasonBadValue, "amount", "amount "+inputExcerpt(string(s.numRaw(v, s.big&1 != 0)))+" is out of range; send minor currency units (fen), 0..10^12")
		}
		ev.Amount = s.num[0]
	}
	if s.present&(1<<fQuantity) != 0 {
		if v := s.num[1]; v < 0 || v > maxQuantity || s.big&2 != 0 {
			return reject(ReasonBadValue, "quantity", "quantity is out of range; use 0..10000")
		}
		ev.Quantity = int32(s.num[1])
	}
	if s.present&(1<<fDwellS) != 0 {
		if v := s.num[2]; v < 0 || v > maxDwellS || s.big&4 != 0 {
			return reject(ReasonBadValue, "dwell_s", "dwell_s is out of range; use seconds, 0..86400")
		}
		ev.DwellS = int32(s.num[2])
	}

	// attrs
	if s.nattrs > 0 {
		ev.Attrs = make(map[string]string, s.nattrs)
		for j := 0; j < s.nattrs; j++ {
			var k, v string
			k, buf = s.keepSpan(s.attrs[j][0], s.attrEsc&(1<<(2*j)) != 0, buf)
			v, buf = s.keepSpan(s.attrs[j][1], s.attrEsc&(1<<(2*j+1)) != 0, buf)
			switch {
			case k == "":
				return reject(ReasonBadValue, "attrs", "attrs keys must not be empty")
			case len(k) > lim.field:
				return reject(ReasonTooLarge, "attrs."+fieldExcerpt(k), fmt.Sprintf("attrs key is %d bytes; use at most %d", len(k), lim.field))
			case len(v) > lim.field:
				return reject(ReasonTooLarge, "attrs."+fieldExcerpt(k), fmt.Sprintf("attrs value is %d bytes; use at most %d", len(v), lim.field))
			case hasControl(k) || hasControl(v):
				return reject(ReasonBadValue, "attrs."+fieldExcerpt(k), "attrs keys and values must not contain control characters")
			}
			ev.Attrs[k] = v
		}
	}

	return checkType(ev, s.present)
}

func tooLong(f, n, limit int) *Rejection {
	return reject(ReasonTooLarge, fieldNames[f], fmt.Sprintf("%s is %d bytes; use at most %d", fieldNames[f], n, limit))
}

// checkType applies the per-type requirements; present has a bit per
// field that was sent.
func checkType(ev *Event, present uint32) *Rejection {
	name := ev.Type.String()
	switch ev.Type {
	case ProductView, AddToCart, RemoveFromCart, ProductTouch, TryOn:
		if ev.SKU == "" && ev.Category == "" {
			return reject(ReasonMissingField, "sku", name+" needs sku or category")
		}
	case Order, PosPurchase:
		if ev.Type == PosPurchase && ev.Store == "" {
			return reject(ReasonMissingField, "store", name+" needs store")
		}
		if present&(1<<fAmount) == 0 {
			return reject(ReasonMissingField, "amount", name+" needs amount > 0, in minor currency units (fen)")
		}
		if ev.Amount == 0 {
			return reject(ReasonBadValue, "amount", name+" needs amount > 0, in minor currency units (fen)")
		}
	case Return:
		if present&(1<<fAmount) == 0 {
			return reject(ReasonMissingField, "amount", "return needs amount, the refunded value in minor currency units (fen)")
		}
	case StoreEnter, StoreExit:
		if ev.Store == "" {
			return reject(ReasonMissingField, "store", name+" needs store")
		}
	case Dwell:
		if ev.Store == "" {
			return reject(ReasonMissingField, "store", name+" needs store")
		}
		if present&(1<<fDwellS) == 0 {
			return reject(ReasonMissingField, "dwell_s", "dwell needs dwell_s > 0, the seconds spent")
		}
		if ev.DwellS == 0 {
			return reject(ReasonBadValue, "dwell_s", "dwell needs dwell_s > 0, the seconds spent")
		}
	case OfferImpression, OfferClick, OfferDismiss:
		if ev.OfferID == "" {
			return reject(ReasonMissingField, "offer_id", name+" needs offer_id")
		}
	case CouponRedeem:
		if ev.OfferID == "" && ev.DecisionID == "" && ev.CouponCode == "" {
			return reject(ReasonMissingField, "offer_id", "coupon_redeem needs offer_id, decision_id or coupon_code")
		}
	case Search:
		if ev.Query == "" && ev.Category == "" {
			return reject(ReasonMissingField, "query", "search needs query or category")
		}
	case Consent:
		return checkConsent(ev.Attrs)
	}
	return nil
}

func checkConsent(attrs map[string]string) *Rejection {
	p, ok := attrs["purpose"]
	if !ok {
		return reject(ReasonMissingField, "attrs.purpose", "consent needs attrs.purpose: marketing, personalization or location")
	}
	if _, ok := ParsePurpose(p); !ok {
		return reject(ReasonBadValue, "attrs.purpose", "attrs.purpose "+inputExcerpt(p)+" is not marketing, personalization or location")
	}
	g, ok := attrs["granted"]
	if !ok {
		return reject(ReasonMissingField, "attrs.granted", "consent needs attrs.granted: \"true\" or \"false\"")
	}
	if g != "true" && g != "false" {
		return reject(ReasonBadValue, "attrs.granted", "attrs.granted "+inputExcerpt(g)+" must be \"true\" or \"false\"")
	}
	list := attrs["channels"]
	for len(list) > 0 {
		name := list
		rest := ""
		for i := 0; i < len(list); i++ {
			if list[i] == ',' {
				name, rest = list[:i], list[i+1:]
				if rest == "" {
					rest = " " // a trailing comma names an empty channel
				}
				break
			}
		}
		if _, ok := ParseChannel(trimSpaces(name)); !ok {
			return reject(ReasonBadChannel, "attrs.channels", "attrs.channels names "+inputExcerpt(name)+"; use a comma list of web app miniapp store pos tablet push sms social")
		}
		list = rest
	}
	return nil
}

func trimSpaces(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

// numRaw renders a number field for a message.
func (s *scanner) numRaw(v int64, big bool) []byte {
	if big {
		return []byte("(too many digits)")
	}
	return strconv.AppendInt(nil, v, 10)
}

// bytes returns the unescaped value of string field f, in scratch when it
// has escapes. It is for values the event does not keep.
func (s *scanner) bytes(f int, scratch []byte) []byte {
	raw := s.raw(s.str[f])
	if s.esc&(1<<f) == 0 {
		return raw
	}
	return appendUnescaped(scratch, raw)
}

// keep unescapes string field f onto buf and returns it as a string that
// shares buf's backing array. buf never grows past its capacity here, so
// earlier strings stay valid and immutable.
func (s *scanner) keep(f int, buf []byte) (string, []byte) {
	return s.keepSpan(s.str[f], s.esc&(1<<f) != 0, buf)
}

func (s *scanner) keepSpan(sp span, esc bool, buf []byte) (string, []byte) {
	start := len(buf)
	raw := s.raw(sp)
	if esc {
		buf = appendUnescaped(buf, raw)
	} else {
		buf = append(buf, raw...)
	}
	return bufString(buf[start:]), buf
}

// bufString returns b as a string without copying. b must never be written
// again: DecodeEvent only appends past it within the capacity.
func bufString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// phone validates ids.phone and appends its stored (hashed) form to buf.
func (s *scanner) phone(buf []byte) (string, []byte, *Rejection) {
	start := len(buf)
	var v string
	v, buf = s.keep(fPhone, buf)
	if len(v) > s.lim.field {
		return "", buf, tooLong(fPhone, len(v), s.lim.field)
	}
	if isHex64(v) {
		lowerASCII(buf[start:])
		return v, buf, nil
	}
	var digits [21]byte
	n := 0
	nd := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			if nd == 20 {
				return "", buf, reject(ReasonBadID, "ids.phone", "ids.phone has more than 20 digits; send a phone number or its SHA-256 as 64 hex digits")
			}
			digits[n] = c
			n++
			nd++
		case c == '+' && n == 0 && nd == 0:
			digits[n] = c
			n++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", buf, reject(ReasonBadID, "ids.phone", "ids.phone must be a phone number (an optional leading +, 6..20 digits; spaces, '-', '.', '(' and ')' are ignored) or its SHA-256 as 64 hex digits")
		}
	}
	if nd < 6 {
		return "", buf, reject(ReasonBadID, "ids.phone", "ids.phone has fewer than 6 digits; send a phone number or its SHA-256 as 64 hex digits")
	}
	sum := sha256.Sum256(digits[:n])
	buf = appendHex(buf[:start], sum[:])
	return bufString(buf[start:]), buf, nil
}

// email validates ids.email and appends its stored (hashed) form to buf.
func (s *scanner) email(buf []byte) (string, []byte, *Rejection) {
	start := len(buf)
	var v string
	v, buf = s.keep(fEmail, buf)
	if len(v) > s.lim.field {
		return "", buf, tooLong(fEmail, len(v), s.lim.field)
	}
	if isHex64(v) {
		lowerASCII(buf[start:])
		return v, buf, nil
	}
	b := buf[start:]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	at := -1
	for i, c := range b {
		switch {
		case c == '@':
			if at >= 0 {
				return "", buf, reject(ReasonBadID, "ids.email", "ids.email has more than one '@'; send an address or its SHA-256 as 64 hex digits")
			}
			at = i
		case c <= ' ' || c == 0x7f:
			return "", buf, reject(ReasonBadID, "ids.email", "ids.email must not contain spaces or control characters")
		}
	}
	if at <= 0 || at == len(b)-1 {
		return "", buf, reject(ReasonBadID, "ids.email", "ids.email must be an address like name@example.com or its SHA-256 as 64 hex digits")
	}
	lowerASCII(b)
	sum := sha256.Sum256(b)
	buf = appendHex(buf[:start], sum[:])
	return bufString(buf[start:]), buf, nil
}

// HashIdentifier returns the stored form of a clear phone number or email
// address (namespace NSPhone or NSEmail), exactly as DecodeEvent computes
// it, so producers and tests can hash at the edge; other namespaces and
// invalid values return "", false.
func HashIdentifier(ns Namespace, v string) (string, bool) {
	var f int
	switch ns {
	case NSPhone:
		f = fPhone
	case NSEmail:
		f = fEmail
	default:
		return "", false
	}
	s := scanner{b: []byte(v), lim: (*DecodeOptions)(nil).limits()}
	s.str[f] = span{0, int32(len(v))}
	buf := make([]byte, 0, max(len(v), 64))
	var out string
	var rej *Rejection
	if f == fPhone {
		out, _, rej = s.phone(buf)
	} else {
		out, _, rej = s.email(buf)
	}
	return out, rej == nil
}

var idChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['.'], t['_'], t[':'], t['-'] = true, true, true, true
	return t
}()

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < 64; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

func appendHex(dst, src []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range src {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// lookupType resolves an event type name without allocating (a string
// switch compiles to a search on length and content, cheaper than hashing).
func lookupType(b []byte) EventType {
	switch string(b) {
	case "page_view":
		return PageView
	case "product_view":
		return ProductView
	case "search":
		return Search
	case "add_to_cart":
		return AddToCart
	case "remove_from_cart":
		return RemoveFromCart
	case "checkout":
		return Checkout
	case "order":
		return Order
	case "store_enter":
		return StoreEnter
	case "store_exit":
		return StoreExit
	case "dwell":
		return Dwell
	case "product_touch":
		return ProductTouch
	case "try_on":
		return TryOn
	case "pos_purchase":
		return PosPurchase
	case "return":
		return Return
	case "offer_impression":
		return OfferImpression
	case "offer_click":
		return OfferClick
	case "offer_dismiss":
		return OfferDismiss
	case "coupon_redeem":
		return CouponRedeem
	case "push_open":
		return PushOpen
	case "share":
		return Share
	case "review":
		return Review
	case "identify":
		return Identify
	case "consent":
		return Consent
	case "erase":
		return Erase
	case "signup":
		return Signup
	}
	return TypeUnknown
}

func lookupChannel(b []byte) Channel {
	switch string(b) {
	case "web":
		return ChannelWeb
	case "app":
		return ChannelApp
	case "miniapp":
		return ChannelMiniapp
	case "store":
		return ChannelStore
	case "pos":
		return ChannelPOS
	case "tablet":
		return ChannelTablet
	case "push":
		return ChannelPush
	case "sms":
		return ChannelSMS
	case "social":
		return ChannelSocial
	}
	return ChannelUnknown
}

// parseInt parses a JSON integer that scanNumber accepted; ok is false
// when it does not fit in 18 digits.
func parseInt(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseTS parses RFC 3339 with a zone into Unix milliseconds.
func parseTS(b []byte) (int64, bool) {
	if len(b) < 20 {
		return 0, false
	}
	d2 := func(i int) int {
		c0, c1 := b[i]-'0', b[i+1]-'0'
		if c0 > 9 || c1 > 9 {
			return -1
		}
		return int(c0)*10 + int(c1)
	}
	y1, y2 := d2(0), d2(2)
	mo, dd, hh, mi, ss := d2(5), d2(8), d2(11), d2(14), d2(17)
	if y1 < 0 || y2 < 0 || mo < 0 || dd < 0 || hh < 0 || mi < 0 || ss < 0 ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year := y1*100 + y2
	if mo < 1 || mo > 12 || dd < 1 || dd > daysIn(year, mo) || hh > 23 || mi > 59 || ss > 59 {
		return 0, false
	}
	i := 19
	ms := 0
	if b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 3 {
				ms = ms*10 + int(b[i]-'0')
			}
			i++
		}
		if i == start {
			return 0, false
		}
		for k := i - start; k < 3; k++ {
			ms *= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	off := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, false
		}
		oh, om := d2(i+1), d2(i+4)
		if oh < 0 || om < 0 || oh > 23 || om > 59 {
			return 0, false
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	secs := daysFromCivil(year, mo, dd)*86400 + int64(hh*3600+mi*60+ss-off)
	return secs*1000 + int64(ms), true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the given date
// of the proleptic Gregorian calendar (H. Hinnant's algorithm); year ≥ 0.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

// --- JSON syntax ------------------------------------------------------------

// strStop marks the bytes the string scanner must look at: the quote, the
// backslash, control characters and the start of multi-byte UTF-8.
var strStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanString scans the JSON string starting at b[i] == '"'. It returns the
// index just past the closing quote and whether the string holds escapes,
// or the error position and a description.
func scanString(b []byte, i int) (end int, esc bool, msg string) {
	i++
	for {
		// Eight bytes at a time while none needs a look (SWAR: the
		// lowest flagged byte is exact; borrows only flag bytes above it).
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			m := (x | (x - lsb*0x20) | hasZero(x^(lsb*'"')) | hasZero(x^(lsb*'\\'))) & (lsb * 0x80)
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for i < len(b) && !strStop[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, esc, "unterminated string"
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, ""
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return i, esc, "unterminated escape"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hexVal(b[i+2:i+6]) < 0 {
					return i, esc, "bad \\u escape (needs 4 hex digits)"
				}
				i += 6
			default:
				return i, esc, "bad escape"
			}
		case c < 0x20:
			return i, esc, "control character in string (escape it)"
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, esc, "invalid UTF-8 in string"
			}
			i += size
		}
	}
}

const lsb = 0x0101010101010101

// hasZero sets the high bit of the lowest zero byte of x (and perhaps of
// bytes above it).
func hasZero(x uint64) uint64 { return (x - lsb) &^ x }

func hexVal(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendUnescaped appends the value of raw string content that
// scanString accepted. Like encoding/json, a \u escape of a surrogate
// that is not part of a valid pair becomes U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
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
			r := hexVal(raw[i+2 : i+6])
			i += 6
			if r >= 0xd800 && r < 0xdc00 {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := hexVal(raw[i+2 : i+6]); r2 >= 0xdc00 && r2 < 0xe000 {
						dst = utf8.AppendRune(dst, (r-0xd800)<<10+(r2-0xdc00)+0x10000)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			} else if r >= 0xdc00 && r < 0xe000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		i += 2
	}
	return dst
}

func scanLiteral(b []byte, i int, lit string) (int, string) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, "invalid literal (expected " + lit + ")"
	}
	return i + len(lit), ""
}

// scanNumber scans a JSON number at b[i]; isInt is false when it has a
// fraction or an exponent.
func scanNumber(b []byte, i int) (end int, isInt bool, msg string) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false, "invalid number"
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false, "invalid number (digits must follow '.')"
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false, "invalid number (digits must follow the exponent)"
		}
	}
	return i, isInt, ""
}

// skipValue checks the syntax of the JSON value at b[i] (after optional
// white space) and returns the index just past it, or the error position
// and a description. It does not recurse: a bit stack tracks nesting, at
// most maxNesting deep.
func skipValue(b []byte, i int) (int, string) {
	var stack [maxNesting / 64]uint64 // bit set: inside an object
	depth := 0
	push := func(obj bool) bool {
		if depth == maxNesting {
			return false
		}
		if obj {
			stack[depth/64] |= 1 << (depth % 64)
		} else {
			stack[depth/64] &^= 1 << (depth % 64)
		}
		depth++
		return true
	}
	inObj := func() bool { return stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0 }

	const (
		wantValue = iota
		wantKey
		afterValue
	)
	state := wantValue
	for {
		i = skipWS(b, i)
		switch state {
		case wantKey:
			if i >= len(b) || b[i] != '"' {
				return i, "expected a quoted key"
			}
			end, _, msg := scanString(b, i)
			if msg != "" {
				return end, msg
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return i, "expected ':' after a key"
			}
			i++
			state = wantValue
		case wantValue:
			if i >= len(b) {
				return i, "the input ends before a value"
			}
			var msg string
			switch c := b[i]; {
			case c == '{' || c == '[':
				if !push(c == '{') {
					return i, "nested too deeply"
				}
				i = skipWS(b, i+1)
				if i < len(b) && b[i] == "}]"[btoi(c == '[')] {
					i++
					depth--
					if depth == 0 {
						return i, ""
					}
					state = afterValue
				} else if c == '{' {
					state = wantKey
				}
				continue
			case c == '"':
				i, _, msg = scanString(b, i)
			case c == 't':
				i, msg = scanLiteral(b, i, "true")
			case c == 'f':
				i, msg = scanLiteral(b, i, "false")
			case c == 'n':
				i, msg = scanLiteral(b, i, "null")
			case c == '-' || (c >= '0' && c <= '9'):
				i, _, msg = scanNumber(b, i)
			default:
				return i, "expected a value"
			}
			if msg != "" {
				return i, msg
			}
			if depth == 0 {
				return i, ""
			}
			state = afterValue
		case afterValue:
			if i >= len(b) {
				return i, "the input ends inside an object or array"
			}
			obj := inObj()
			switch {
			case b[i] == ',':
				i++
				if obj {
					state = wantKey
				} else {
					state = wantValue
				}
			case obj && b[i] == '}', !obj && b[i] == ']':
				i++
				depth--
				if depth == 0 {
					return i, ""
				}
			default:
				return i, "expected ',' or a closing bracket"
			}
		}
	}
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// --- Messages ---------------------------------------------------------------

// inputExcerpt quotes at most 32 bytes of input for a message: cut at a
// character boundary, control characters, format characters (a
// right-to-left override would turn the rest of a log line or a console
// around; zero-width characters hide) and invalid UTF-8 shown as '?', an
// ellipsis when cut. The quotes are typographic so that, with the
// input's own ASCII quotes, no more than 32 input bytes appear in a row.
func inputExcerpt(b string) string {
	const maxBytes = 32
	out := make([]byte, 0, maxBytes+9)
	out = append(out, "“"...)
	n := 0
	for n < len(b) {
		r, size := utf8.DecodeRuneInString(b[n:])
		if n+size > maxBytes {
			break
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || unicode.Is(unicode.Cf, r) || (r == utf8.RuneError && size == 1) {
			out = append(out, '?')
		} else {
			out = append(out, b[n:n+size]...)
		}
		n += size
	}
	if n < len(b) {
		out = append(out, "…"...)
	}
	out = append(out, "”"...)
	return string(out)
}

// fieldExcerpt is a key named in a Rejection's field: at most 32 bytes,
// sanitised like inputExcerpt but unquoted.
func fieldExcerpt(k string) string {
	q := inputExcerpt(k)
	return q[len("“") : len(q)-len("”")]
}

// --- Encoding ---------------------------------------------------------------

// EncodeEvent appends the canonical schema v1 JSON of ev to dst and returns
// the extended slice: fields in a fixed order, empty ones left out (amount
// kept for order, pos_purchase and return, which require it), ts in UTC
// with milliseconds, enums as names, identifiers as stored (phone and
// email hashed), attrs keys sorted. For an event DecodeEvent accepted,
// DecodeEvent(EncodeEvent(nil, ev)) yields an equal event.
func EncodeEvent(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendJSONString(dst, ev.ID)
	dst = append(dst, `,"ts":"`...)
	dst = time.UnixMilli(ev.TS).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","type":`...)
	dst = appendJSONString(dst, ev.Type.String())
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, ev.Channel.String())
	dst = append(dst, `,"ids":{`...)
	sep := false
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if v := ev.IDs.Get(ns); v != "" {
			if sep {
				dst = append(dst, ',')
			}
			sep = true
			dst = append(dst, '"')
			dst = append(dst, ns.String()...)
			dst = append(dst, `":`...)
			dst = appendJSONString(dst, v)
		}
	}
	dst = append(dst, '}')
	str := func(name, v string) {
		if v != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = appendJSONString(dst, v)
		}
	}
	num := func(name string, v int64, always bool) {
		if v != 0 || always {
			dst = append(dst, `,"`...)
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = strconv.AppendInt(dst, v, 10)
		}
	}
	str("sku", ev.SKU)
	str("category", ev.Category)
	str("store", ev.Store)
	num("amount", ev.Amount, ev.Type == Order || ev.Type == PosPurchase || ev.Type == Return)
	num("quantity", int64(ev.Quantity), false)
	num("dwell_s", int64(ev.DwellS), false)
	str("offer_id", ev.OfferID)
	str("decision_id", ev.DecisionID)
	str("coupon_code", ev.CouponCode)
	str("query", ev.Query)
	if len(ev.Attrs) > 0 {
		var kbuf [maxAttrsLimit]string
		keys := kbuf[:0]
		for k := range ev.Attrs {
			keys = append(keys, k)
		}
		// Insertion sort: attrs are few.
		for i := 1; i < len(keys); i++ {
			for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
				keys[j], keys[j-1] = keys[j-1], keys[j]
			}
		}
		dst = append(dst, `,"attrs":{`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, ev.Attrs[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size > 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// --- Batches ----------------------------------------------------------------

// SplitBatch splits an HTTP ingest body into raw events, without decoding
// them, so each is decoded and rejected on its own and rejections keep the
// index of their event. The body is one JSON object, a JSON array of
// values, or NDJSON (one event per line; blank lines are skipped, a
// line's surrounding white space and '\r' are trimmed). The slices alias
// body. An array element that is not an object is returned as is and
// fails DecodeEvent with bad_json; a syntax error in the array itself is
// bad_json for the whole body, as is an empty body; "[]" is zero events.
// More than max events (max > 0) is too_large. In NDJSON a broken line is
// just one bad event.
func SplitBatch(body []byte, max int) ([][]byte, *Rejection) {
	i := skipWS(body, 0)
	if i == len(body) {
		return nil, reject(ReasonBadJSON, "", "the body is empty; send one event object, a JSON array of events, or NDJSON")
	}
	tooMany := func() *Rejection {
		return reject(ReasonTooLarge, "", fmt.Sprintf("the body holds more than %d events; split it into smaller batches", max))
	}
	if body[i] == '[' {
		out := [][]byte{}
		i = skipWS(body, i+1)
		if i < len(body) && body[i] == ']' {
			i++
		} else {
			for {
				start := i
				end, msg := skipValue(body, i)
				if msg != "" {
					return nil, reject(ReasonBadJSON, "", fmt.Sprintf("the array is not valid JSON at byte %d (event %d): %s near %s", end, len(out), msg, inputExcerpt(string(body[min(end, len(body)):]))))
				}
				if max > 0 && len(out) == max {
					return nil, tooMany()
				}
				out = append(out, body[start:end])
				i = skipWS(body, end)
				if i < len(body) && body[i] == ',' {
					i = skipWS(body, i+1)
					continue
				}
				if i < len(body) && body[i] == ']' {
					i++
					break
				}
				return nil, reject(ReasonBadJSON, "", fmt.Sprintf("the array is not valid JSON at byte %d: expected ',' or ']' after event %d", i, len(out)-1))
			}
		}
		if i = skipWS(body, i); i != len(body) {
			return nil, reject(ReasonBadJSON, "", fmt.Sprintf("trailing data at byte %d after the array", i))
		}
		return out, nil
	}
	// One object, possibly over several lines.
	if end, msg := skipValue(body, i); msg == "" && skipWS(body, end) == len(body) {
		return [][]byte{body[i:end]}, nil
	}
	// NDJSON.
	out := [][]byte{}
	for rest := body; len(rest) > 0; {
		line := rest
		if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
			line, rest = rest[:nl], rest[nl+1:]
		} else {
			rest = nil
		}
		s, e := 0, len(line)
		for s < e && wsTable[line[s]] {
			s++
		}
		for e > s && wsTable[line[e-1]] {
			e--
		}
		if s == e {
			continue
		}
		if max > 0 && len(out) == max {
			return nil, tooMany()
		}
		out = append(out, line[s:e])
	}
	return out, nil
}

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudwego/hertz/pkg/protocol"

	"nbo/engine"
	"nbo/features"
	"nbo/scenarios"
)

// Request bodies are decoded with encoding/json and DisallowUnknownFields
// (never hertz's binder, which ignores that setting and echoes the body
// in its errors), then validated field by field; POST /v1/decide, the hot
// one, has its own decoder with the same answers (decidejson.go). Errors
// carry a stable code, the field's JSON path and at most a short excerpt
// of the input.

// Limits on decide requests.
const (
	maxIDBytes       = 256 // as the event decoder's MaxFieldBytes default
	maxNameBytes     = 128 // placement, store
	maxContextKeys   = 32
	maxContextKey    = 64
	maxContextValue  = 256
	CodeBadID        = "bad_id"        // an identifier is malformed
	CodeMissingField = "missing_field" // a required field is absent
)

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data, and, when fields names v's JSON fields, a
// field given twice (POST /v1/events and POST /v1/decide refuse that too,
// where encoding/json lets the last value win).
func decodeStrict(body []byte, v any, fields ...string) *Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err != nil && !isSchemaError(err) {
		return jsonError(err)
	}
	// The value is well-formed: a duplicate wins over a wrong type, an
	// unknown field and trailing data, as in the decide decoder.
	if e := duplicateField(body, fields); e != nil {
		return e
	}
	if err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Status: 400, Code: CodeBadRequest, Message: "the body holds data after its JSON value; send exactly one JSON object"}
	}
	return nil
}

// isSchemaError says whether encoding/json refused a well-formed value:
// a wrong type or an unknown field (it checks the syntax of the whole
// value first).
func isSchemaError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te) || strings.HasPrefix(err.Error(), "json: unknown field ")
}

// duplicateField finds the first of fields given twice in the top-level
// object of a well-formed body, keys matched to fields as encoding/json
// matches them (exactly, else case-insensitively).
func duplicateField(body []byte, fields []string) *Error {
	if len(fields) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var seen uint64
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := t.(string)
		if f := matchField(key, fields); f >= 0 {
			if seen&(1<<f) != 0 {
				return &Error{Status: 400, Code: CodeBadRequest, Field: fields[f], Message: "duplicate key “" + fields[f] + "”; send each key once"}
			}
			seen |= 1 << f
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

// matchField is the index of the field key names, or -1.
func matchField(key string, fields []string) int {
	for i, f := range fields {
		if key == f {
			return i
		}
	}
	for i, f := range fields {
		if strings.EqualFold(key, f) {
			return i
		}
	}
	return -1
}

// jsonError translates encoding/json's errors into API errors without
// quoting the input.
func jsonError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &Error{Status: 400, Code: CodeBadRequest, Message: "the body is empty; send a JSON object"}
	case errors.As(err, &se):
		return &Error{Status: 400, Code: CodeBadRequest, Message: "malformed JSON at byte " + strconv.FormatInt(se.Offset, 10)}
	case errors.As(err, &te):
		field := te.Field
		// te.Value holds a number's literal, which may be long.
		return &Error{Status: 400, Code: CodeBadRequest, Field: excerpt(field), Message: "wrong JSON type: got " + excerpt(te.Value) + ", want " + jsonKind(te.Type.Kind().String())}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return &Error{Status: 400, Code: CodeUnknownField, Field: excerpt(name), Message: "unknown field; see /openapi.json for the fields this route takes"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Status: 400, Code: CodeBadRequest, Message: "the JSON ends early"}
	}
	return &Error{Status: 400, Code: CodeBadRequest, Message: "malformed JSON"}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint", "uint64", "uint32":
		return "integer"
	case "float64":
		return "number"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	case "ptr":
		return "value"
	}
	return k
}

func checkContext(k, v string) *Error {
	if k == "" || len(k) > maxContextKey || !printable(k) {
		return &Error{Status: 400, Code: CodeBadRequest, Field: "context", Message: "context keys must be 1 to 64 printable characters"}
	}
	if len(v) > maxContextValue || !printable(v) {
		return &Error{Status: 400, Code: CodeBadRequest, Field: "context." + excerpt(k), Message: "context values must be at most 256 printable characters"}
	}
	return nil
}

// offerChannels names the channels offers can be shown on
// (scenarios.ServedChannels, the set scenario loading checks offers
// against), for messages.
var offerChannels = func() string {
	var names []string
	for ch := range features.NumChannels {
		if scenarios.ServedChannels.Has(ch) {
			names = append(names, ch.String())
		}
	}
	return strings.Join(names, " ")
}()

func parseOfferChannel(s, field string) (features.Channel, *Error) {
	if s == "" {
		return 0, &Error{Status: 400, Code: CodeMissingField, Field: field, Message: "channel is required: one of " + offerChannels}
	}
	if ch, ok := features.ParseChannel(s); ok && scenarios.ServedChannels.Has(ch) {
		return ch, nil
	}
	return 0, &Error{Status: 400, Code: CodeBadRequest, Field: field, Message: "unknown channel; use one of " + offerChannels}
}

// parseLocale reads a locale tag as the language of the texts
// (features.ParseLanguage): a device's own locale ("en-US", "zh-Hans-CN")
// will do. The constants are returned, so s need not outlive the call.
func parseLocale(s, field string) (engine.Locale, *Error) {
	if s == "" {
		return engine.DefaultLocale, nil
	}
	english, ok := features.ParseLanguage(s)
	switch {
	case !ok:
		return "", &Error{Status: 400, Code: CodeBadRequest, Field: field, Message: "locale must be Chinese or English: zh-CN or en (a regional tag such as en-US or zh-Hans also works)"}
	case english:
		return engine.LocaleEn, nil
	}
	return engine.LocaleZhCN, nil
}

// A decide request's "now" lies in [nowFrom, nowUntil): events before 2000
// are refused too, and a decision's times (now plus an offer's validity)
// must stay encodable — one at 9999-12-31 was made, with its budget
// reserved and its contact recorded, and then failed to encode (500).
var (
	nowFrom  = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	nowUntil = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseNow parses a decide request's "now".
func parseNow(s string) (time.Time, *Error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &Error{Status: 400, Code: CodeBadRequest, Field: "now", Message: "now must be an RFC 3339 time such as 2026-11-20T10:00:00+08:00"}
	}
	if t.Before(nowFrom) || !t.Before(nowUntil) {
		return time.Time{}, &Error{Status: 400, Code: CodeBadRequest, Field: "now", Message: "now must be from 2000-01-01 to before 2100-01-01"}
	}
	return t, nil
}

func checkName(s, field string) *Error {
	if len(s) > maxNameBytes || !printable(s) {
		return &Error{Status: 400, Code: CodeBadRequest, Field: field, Message: field + " must be at most 128 printable characters"}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// normalizeID validates an identifier and returns its stored form: phone
// numbers and emails hashed exactly as the event decoder hashes them, so
// a decide request finds the customer its events built.
func normalizeID(ns features.Namespace, v, field string) (string, *Error) {
	switch ns {
	case features.NSPhone, features.NSEmail:
		h, ok := features.HashIdentifier(ns, v)
		if !ok {
			return "", &Error{Status: 400, Code: CodeBadID, Field: field, Message: "not a valid " + ns.String() + " (or its 64-hex SHA-256)"}
		}
		return h, nil
	}
	if len(v) > maxIDBytes {
		return "", &Error{Status: 400, Code: CodeBadID, Field: field, Message: "identifier longer than 256 bytes"}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return "", &Error{Status: 400, Code: CodeBadID, Field: field, Message: "identifiers may hold only ASCII letters and digits (A-Z a-z 0-9) and . _ : -"}
		}
	}
	return v, nil
}

const msgBadKey = "want namespace:id, e.g. member:M1 (namespaces: member, card, phone, email, device)"

// parseCustomerKey parses "ns:id" (a path segment or query value) into
// the stored key.
func parseCustomerKey(s, field string) (features.Key, *Error) {
	ns, v, ok := features.ParseKey(s)
	if !ok {
		return "", &Error{Status: 400, Code: CodeBadID, Field: field, Message: msgBadKey}
	}
	stored, e := normalizeID(ns, v, field)
	if e != nil {
		return "", e
	}
	return features.MakeKey(ns, stored), nil
}

// decodeOffersQuery turns GET /v1/offers's query parameters into a
// request. Values are parsed where hertz holds them; the strings the
// request keeps (the identifier, placement and store) share one
// allocation.
func decodeOffersQuery(args *protocol.Args, req *engine.DecideRequest) *Error {
	const (
		qCustomer = iota
		qChannel
		qPlacement
		qStore
		qLimit
		qLocale
		numQuery
	)
	var e *Error
	var vals [numQuery][]byte // valid while args is
	var seen [numQuery]bool
	args.VisitAll(func(k, v []byte) {
		if e != nil {
			return
		}
		i := -1
		switch string(k) {
		case "customer":
			i = qCustomer
		case "channel":
			i = qChannel
		case "placement":
			i = qPlacement
		case "store":
			i = qStore
		case "limit":
			i = qLimit
		case "locale":
			i = qLocale
		default:
			e = &Error{Status: 400, Code: CodeUnknownField, Field: excerpt(string(k)), Message: "unknown query parameter; use customer, channel, placement, store, limit, locale"}
			return
		}
		vals[i] = v
		if seen[i] {
			e = &Error{Status: 400, Code: CodeBadRequest, Field: string(k), Message: "parameter given twice"}
		}
		seen[i] = true
	})
	if e != nil {
		return e
	}
	customer, placement, store := vals[qCustomer], vals[qPlacement], vals[qStore]
	if len(customer) == 0 {
		return &Error{Status: 400, Code: CodeMissingField, Field: "customer", Message: "customer is required, e.g. customer=member:M1"}
	}
	var buf [256]byte
	all := string(append(append(append(buf[:0], customer...), placement...), store...))
	nc, np := len(customer), len(customer)+len(placement)
	ns, id, ok := features.ParseKey(all[:nc])
	if !ok {
		return &Error{Status: 400, Code: CodeBadID, Field: "customer", Message: msgBadKey}
	}
	if ns == features.NSPhone && strings.HasPrefix(id, " ") || ns == features.NSEmail && strings.Contains(id, " ") {
		// A query string reads a bare '+' as a space: phone:+86… arrives
		// as phone: 86…, another customer's number (no country code is
		// inferred), and user+tag@… as an address with a space. Spaces
		// inside a number are fine (138 0013 8000); an address has none.
		return &Error{Status: 400, Code: CodeBadID, Field: "customer", Message: "the identifier has a space where a '+' was probably meant: in a query string send '+' as %2B (customer=phone:%2B8613800138000)"}
	}
	stored, e := normalizeID(ns, id, "customer")
	if e != nil {
		return e
	}
	req.IDs.Set(ns, stored)
	if req.Channel, e = parseOfferChannel(string(vals[qChannel]), "channel"); e != nil {
		return e
	}
	req.Placement, req.Store = all[nc:np], all[np:]
	if e := checkName(req.Placement, "placement"); e != nil {
		return e
	}
	if e := checkName(req.Store, "store"); e != nil {
		return e
	}
	req.Limit = engine.DefaultLimit
	if limit := vals[qLimit]; len(limit) > 0 {
		n, err := strconv.Atoi(string(limit))
		if err != nil || n < 1 || n > engine.MaxLimit {
			return &Error{Status: 400, Code: CodeBadRequest, Field: "limit", Message: "limit must be between 1 and " + strconv.Itoa(engine.MaxLimit)}
		}
		req.Limit = n
	}
	if req.Locale, e = parseLocale(string(vals[qLocale]), "locale"); e != nil {
		return e
	}
	return nil
}

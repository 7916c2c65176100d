package api

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"nbo/engine"
	"nbo/features"
)

// The reference decoder of POST /v1/decide bodies: the encoding/json path
// the hand-written decoder replaced, kept verbatim so
// FuzzDecodeDecideRequestMatchesReference can hold the new one to it.

// decideWire is the JSON form of POST /v1/decide.
type decideWire struct {
	IDs       map[string]string `json:"ids"`
	Channel   string            `json:"channel"`
	Placement string            `json:"placement"`
	Store     string            `json:"store"`
	Limit     *int              `json:"limit"`
	Locale    string            `json:"locale"`
	Context   map[string]string `json:"context"`
	Now       *string           `json:"now"`
}

// referenceDecodeDecideRequest decodes and validates a POST /v1/decide body into
// req. allowNow says whether the caller may set "now" (admin scope).
func referenceDecodeDecideRequest(body []byte, allowNow bool, req *engine.DecideRequest) *Error {
	var w decideWire
	if e := decodeStrict(body, &w); e != nil {
		// A duplicate key wins over the errors of a well-formed value.
		if e.Code == CodeUnknownField || strings.HasPrefix(e.Message, "wrong JSON type") || strings.HasPrefix(e.Message, "the body holds data after") {
			if d := referenceDuplicate(body); d != nil {
				return d
			}
		}
		return e
	}
	if d := referenceDuplicate(body); d != nil {
		return d
	}
	if len(w.IDs) == 0 {
		return &Error{Status: 400, Code: CodeMissingField, Field: "ids", Message: `ids needs at least one identifier, e.g. {"member": "M1"}`}
	}
	// Report the first bad identifier in namespace order, so the answer
	// does not depend on map iteration.
	known := 0
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		v, ok := w.IDs[ns.String()]
		if !ok {
			continue
		}
		known++
		if v == "" {
			continue
		}
		stored, e := normalizeID(ns, v, "ids."+ns.String())
		if e != nil {
			return e
		}
		req.IDs.Set(ns, stored)
	}
	if known != len(w.IDs) {
		// Name the smallest unknown key, so the answer is the same
		// whatever the map's iteration order.
		first, found := "", false
		for k := range w.IDs {
			if _, ok := features.ParseNamespace(k); !ok && (!found || k < first) {
				first, found = k, true
			}
		}
		return &Error{Status: 400, Code: CodeUnknownField, Field: "ids." + excerpt(first), Message: "unknown identifier namespace; use member, card, phone, email or device"}
	}
	if req.IDs.Empty() {
		return &Error{Status: 400, Code: CodeMissingField, Field: "ids", Message: "every identifier in ids is empty"}
	}
	ch, e := parseOfferChannel(w.Channel, "channel")
	if e != nil {
		return e
	}
	req.Channel = ch
	if e := checkName(w.Placement, "placement"); e != nil {
		return e
	}
	if e := checkName(w.Store, "store"); e != nil {
		return e
	}
	req.Placement, req.Store = w.Placement, w.Store
	req.Limit = engine.DefaultLimit
	if w.Limit != nil {
		if *w.Limit < 1 || *w.Limit > engine.MaxLimit {
			return &Error{Status: 400, Code: CodeBadRequest, Field: "limit", Message: "limit must be between 1 and " + strconv.Itoa(engine.MaxLimit)}
		}
		req.Limit = *w.Limit
	}
	loc, e := parseLocale(w.Locale, "locale")
	if e != nil {
		return e
	}
	req.Locale = loc
	if len(w.Context) > maxContextKeys {
		return &Error{Status: 400, Code: CodeBadRequest, Field: "context", Message: "context holds more than " + strconv.Itoa(maxContextKeys) + " attributes"}
	}
	for k, v := range w.Context {
		if checkContext(k, v) != nil {
			// Report the smallest bad key, whatever the map's order.
			keys := make([]string, 0, len(w.Context))
			for k := range w.Context {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if e := checkContext(k, w.Context[k]); e != nil {
					return e
				}
			}
		}
	}
	if len(w.Context) > 0 {
		req.Context = w.Context
	}
	if w.Now != nil {
		if !allowNow {
			return &Error{Status: 403, Code: CodeForbidden, Field: "now", Message: "only admin keys may set now (it is for replays and tests)"}
		}
		t, e := parseNow(*w.Now)
		if e != nil {
			return e
		}
		req.Now = &t
	}
	return nil
}

// referenceDuplicate finds the first key given twice in a well-formed
// decide body, walking it with encoding/json's tokens: a field (matched as
// encoding/json matches fields), a namespace in ids, a key in context.
func referenceDuplicate(body []byte) *Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	names := []string{"ids", "channel", "placement", "store", "limit", "locale", "context", "now"}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		key := t.(string)
		name := ""
		for _, n := range names {
			if key == n {
				name = n
				break
			}
		}
		if name == "" {
			for _, n := range names {
				if strings.EqualFold(key, n) {
					name = n
					break
				}
			}
		}
		if name != "" {
			if seen[name] {
				return &Error{Status: 400, Code: CodeBadRequest, Field: name, Message: "duplicate key “" + name + "”; send each key once"}
			}
			seen[name] = true
		}
		if (name == "ids" || name == "context") && dec.More() {
			var raw json.RawMessage
			if dec.Decode(&raw) != nil {
				return nil
			}
			inner := json.NewDecoder(bytes.NewReader(raw))
			if t, err := inner.Token(); err != nil || t != json.Delim('{') {
				continue
			}
			keys := map[string]bool{}
			for inner.More() {
				t, err := inner.Token()
				if err != nil {
					return nil
				}
				k := t.(string)
				if name == "context" {
					if keys[k] {
						return &Error{Status: 400, Code: CodeBadRequest, Field: "context", Message: "duplicate key in context; send each key once"}
					}
				} else if _, ok := features.ParseNamespace(k); ok {
					if keys[k] {
						return &Error{Status: 400, Code: CodeBadRequest, Field: "ids." + k, Message: "duplicate key “" + k + "” in ids; send each key once"}
					}
				}
				keys[k] = true
				var skip json.RawMessage
				if inner.Decode(&skip) != nil {
					return nil
				}
			}
			continue
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

// referenceDecodeOffersQuery is the decoder of GET /v1/offers before its
// strings shared one allocation. It turns GET /v1/offers's query parameters into a request;
// visit calls fn for each parameter.
func referenceDecodeOffersQuery(visit func(fn func(k, v []byte)), req *engine.DecideRequest) *Error {
	var e *Error
	var customer, channel, limit, locale string
	var seen [6]bool
	visit(func(k, v []byte) {
		if e != nil {
			return
		}
		i := -1
		switch string(k) {
		case "customer":
			i, customer = 0, string(v)
		case "channel":
			i, channel = 1, string(v)
		case "placement":
			i, req.Placement = 2, string(v)
		case "store":
			i, req.Store = 3, string(v)
		case "limit":
			i, limit = 4, string(v)
		case "locale":
			i, locale = 5, string(v)
		default:
			e = &Error{Status: 400, Code: CodeUnknownField, Field: excerpt(string(k)), Message: "unknown query parameter; use customer, channel, placement, store, limit, locale"}
			return
		}
		if seen[i] {
			e = &Error{Status: 400, Code: CodeBadRequest, Field: string(k), Message: "parameter given twice"}
		}
		seen[i] = true
	})
	if e != nil {
		return e
	}
	if customer == "" {
		return &Error{Status: 400, Code: CodeMissingField, Field: "customer", Message: "customer is required, e.g. customer=member:M1"}
	}
	key, e := parseCustomerKey(customer, "customer")
	if e != nil {
		return e
	}
	ns, id, _ := features.ParseKey(string(key))
	req.IDs.Set(ns, id)
	if req.Channel, e = parseOfferChannel(channel, "channel"); e != nil {
		return e
	}
	if e := checkName(req.Placement, "placement"); e != nil {
		return e
	}
	if e := checkName(req.Store, "store"); e != nil {
		return e
	}
	req.Limit = engine.DefaultLimit
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > engine.MaxLimit {
			return &Error{Status: 400, Code: CodeBadRequest, Field: "limit", Message: "limit must be between 1 and " + strconv.Itoa(engine.MaxLimit)}
		}
		req.Limit = n
	}
	if req.Locale, e = parseLocale(locale, "locale"); e != nil {
		return e
	}
	return nil
}

package features

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// addDecodeSeeds seeds a fuzz target with the corpus and some tricky
// inputs.
func addDecodeSeeds(f *testing.F) {
	good, err := os.ReadFile(filepath.Join("testdata", "events", "good.ndjson"))
	require.NoError(f, err)
	for _, line := range bytes.Split(bytes.TrimSpace(good), []byte("\n")) {
		f.Add(line)
	}
	bad, err := filepath.Glob(filepath.Join("testdata", "events", "bad", "*.json"))
	require.NoError(f, err)
	for _, name := range bad {
		data, err := os.ReadFile(name)
		require.NoError(f, err)
		if len(data) < 4096 {
			f.Add(data)
		}
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"a":1}`, ` { } `, `{"ids":{}}`, `{"attrs":{"a":"\ud83d\ude00"}}`,
		with(`"attrs":{"x":"\ud800\u0041","y":"\udc00"}`), with(`"x":[{"y":[1,2,{"z":null}]}]`),
		with(`"quantity":-0`), with(`"amount":1.5e3`), strings.Replace(base, `{"member":"M1"}`, `{"phone":"+1 555-0100 99"}`, 1),
		`{"event_id":"a","event_id":"b"}`, `{"event_id":"a"} x`, "{\"sku\":\"\xff\"}",
		with(`"x":1,"x":2`), with(`"\u0078":1,"x":{}`), with(`"attrs":{"k":null,"k":"v"}`), with(`"attrs":{"k":1,"k":null}`),
		strings.Replace(base, `{"member":"M1"}`, `{"member":"M1","x":"1","x":"2"}`, 1),
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecodeEvent checks DecodeEvent against encoding/json: it never
// panics; whatever encoding/json finds malformed it rejects as bad_json;
// a key repeated in the event, its ids or its attrs (whatever the field
// and the values) is bad_json; it calls well-formed JSON bad_json only
// for what the schema forbids on top of JSON (not an object, duplicate
// keys, invalid UTF-8, deep nesting); an accepted event has the values encoding/json sees and
// round-trips through EncodeEvent.
func FuzzDecodeEvent(f *testing.F) {
	addDecodeSeeds(f)
	big := &DecodeOptions{MaxEventBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev Event
		rej := DecodeEvent(data, decodeNow, nil, &ev)
		if len(data) > defaultMaxEventBytes {
			require.NotNil(t, rej)
			require.Equal(t, ReasonTooLarge, rej.Code)
			return
		}
		if !json.Valid(data) {
			require.NotNil(t, rej, "accepted malformed JSON %q", data)
			require.Equal(t, ReasonBadJSON, rej.Code, "malformed JSON %q: %s", data, rej.Message)
			return
		}
		if eventKeyRepeats(data) {
			require.NotNil(t, rej, "accepted a repeated key %q", data)
			require.Equal(t, ReasonBadJSON, rej.Code, "a repeated key %q: %s", data, rej.Message)
		}
		if rej != nil {
			if rej.Code == ReasonBadJSON {
				require.True(t, jsonBeyondSchema(data), "well-formed JSON %q called bad_json: %s", data, rej.Message)
			}
			require.LessOrEqual(t, len(rej.Message), 240)
			return
		}

		// Accepted: compare with encoding/json.
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		require.NoError(t, d.Decode(&m))
		str := func(v any) string {
			s, _ := v.(string)
			return s
		}
		require.Equal(t, str(m["event_id"]), ev.ID)
		require.Equal(t, str(m["sku"]), ev.SKU)
		require.Equal(t, str(m["category"]), ev.Category)
		require.Equal(t, str(m["store"]), ev.Store)
		require.Equal(t, str(m["offer_id"]), ev.OfferID)
		require.Equal(t, str(m["decision_id"]), ev.DecisionID)
		require.Equal(t, str(m["coupon_code"]), ev.CouponCode)
		require.Equal(t, str(m["query"]), ev.Query)
		require.Equal(t, str(m["type"]), ev.Type.String())
		require.Equal(t, str(m["channel"]), ev.Channel.String())
		ts, err := time.Parse(time.RFC3339Nano, strings.ToUpper(str(m["ts"])))
		require.NoError(t, err)
		require.Equal(t, ts.UnixMilli(), ev.TS)
		ids, _ := m["ids"].(map[string]any)
		require.Equal(t, str(ids["member"]), ev.IDs.Member)
		require.Equal(t, str(ids["card"]), ev.IDs.Card)
		require.Equal(t, str(ids["device"]), ev.IDs.Device)
		if p := str(ids["phone"]); p != "" {
			require.Len(t, ev.IDs.Phone, 64)
		}
		if e := str(ids["email"]); e != "" {
			require.Len(t, ev.IDs.Email, 64)
		}
		num := func(name string, got int64) {
			if n, ok := m[name].(json.Number); ok {
				v, err := n.Int64()
				require.NoError(t, err)
				require.Equal(t, v, got, name)
			} else {
				require.Zero(t, got, name)
			}
		}
		num("amount", ev.Amount)
		num("quantity", int64(ev.Quantity))
		num("dwell_s", int64(ev.DwellS))
		attrs, _ := m["attrs"].(map[string]any)
		want := map[string]string{}
		for k, v := range attrs {
			if v != nil {
				want[k] = v.(string)
			}
		}
		if len(want) == 0 {
			require.Nil(t, ev.Attrs)
		} else {
			require.Equal(t, want, ev.Attrs)
		}

		// Round trip.
		out := EncodeEvent(nil, &ev)
		require.True(t, json.Valid(out), "%s", out)
		var again Event
		require.Nil(t, DecodeEvent(out, decodeNow, big, &again), "%s", out)
		require.Equal(t, ev, again)
	})
}

// jsonBeyondSchema reports whether well-formed JSON breaks a rule the
// decoder adds to JSON: the value is not an object, a key repeats in some
// object, a string is not UTF-8, or nesting is deeper than maxNesting.
func jsonBeyondSchema(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !utf8.Valid(data) || nesting(data) > maxNesting {
		return true
	}
	dup, err := hasDuplicateKeys(json.NewDecoder(bytes.NewReader(data)))
	return err != nil || dup
}

// eventKeyRepeats reports whether well-formed JSON is an object in which,
// or in whose ids or attrs object, a key repeats: what DecodeEvent must
// call bad_json, whatever the keys and values. (In values it only skips,
// such as an unknown field's, a repeat may go unnoticed.)
func eventKeyRepeats(data []byte) bool {
	d := json.NewDecoder(bytes.NewReader(data))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	return objectKeyRepeats(d, true)
}

// objectKeyRepeats reads the rest of an object whose '{' d has read; top
// says it is the event, whose ids and attrs are read too.
func objectKeyRepeats(d *json.Decoder, top bool) bool {
	seen := map[string]bool{}
	dup := false
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		k := tok.(string)
		dup = dup || seen[k]
		seen[k] = true
		if !top || (k != "ids" && k != "attrs") {
			if _, err := hasDuplicateKeys(d); err != nil {
				return false
			}
			continue
		}
		tok, err = d.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			dup = objectKeyRepeats(d, false) || dup
		case json.Delim('['):
			for d.More() {
				if _, err := hasDuplicateKeys(d); err != nil {
					return false
				}
			}
			if _, err := d.Token(); err != nil {
				return false
			}
		}
	}
	_, err := d.Token()
	return err == nil && dup
}

func nesting(data []byte) int {
	depth, deepest := 0, 0
	inStr := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			depth++
			deepest = max(deepest, depth)
		case !inStr && (c == '}' || c == ']'):
			depth--
		}
	}
	return deepest
}

// hasDuplicateKeys walks the tokens of one value.
func hasDuplicateKeys(d *json.Decoder) (bool, error) {
	tok, err := d.Token()
	if err != nil {
		return false, err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		dup := false
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return false, err
			}
			if seen[k.(string)] {
				dup = true
			}
			seen[k.(string)] = true
			inner, err := hasDuplicateKeys(d)
			if err != nil {
				return false, err
			}
			dup = dup || inner
		}
		_, err = d.Token()
		return dup, err
	case json.Delim('['):
		dup := false
		for d.More() {
			inner, err := hasDuplicateKeys(d)
			if err != nil {
				return false, err
			}
			dup = dup || inner
		}
		_, err = d.Token()
		return dup, err
	}
	return false, nil
}

// FuzzSplitBatch checks SplitBatch against encoding/json: it never panics,
// returns slices of the body within the limit, splits a well-formed array
// exactly as encoding/json does and returns a well-formed object whole.
func FuzzSplitBatch(f *testing.F) {
	addDecodeSeeds(f)
	f.Add([]byte("[" + base + "," + base + "]"))
	f.Add([]byte(base + "\n\n" + base + "\r\n"))
	f.Add([]byte(`[1,"two",{"3":[4]},null]`))
	const limit = 50
	f.Fuzz(func(t *testing.T, body []byte) {
		events, rej := SplitBatch(body, limit)
		if rej != nil {
			require.Contains(t, []Reason{ReasonBadJSON, ReasonTooLarge}, rej.Code)
			require.Nil(t, events)
		} else {
			require.LessOrEqual(t, len(events), limit)
			for _, e := range events {
				require.NotEmpty(t, e)
				require.True(t, within(body, e), "an event is not a slice of the body")
				require.False(t, wsTable[e[0]] || wsTable[e[len(e)-1]], "an event is not trimmed: %q", e)
			}
		}
		trimmed := bytes.TrimSpace(body)
		if !json.Valid(body) || !utf8.Valid(body) || nesting(body) > maxNesting {
			return
		}
		switch trimmed[0] {
		case '[':
			var raws []json.RawMessage
			require.NoError(t, json.Unmarshal(body, &raws))
			if len(raws) > limit {
				require.NotNil(t, rej)
				require.Equal(t, ReasonTooLarge, rej.Code)
				return
			}
			require.Nil(t, rej, "a well-formed array was refused: %v", rej)
			require.Len(t, events, len(raws))
			for i := range raws {
				require.Equal(t, string(bytes.TrimSpace(raws[i])), string(events[i]))
			}
		default:
			require.Nil(t, rej)
			require.Equal(t, [][]byte{trimmed}, events)
		}
	})
}

// within reports whether sub is a slice of b's backing array.
func within(b, sub []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return len(sub) == 0
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(b))
}

// FuzzDecodeEventStrings puts arbitrary raw bytes between the quotes of
// query and of an attrs value of a valid event: when encoding/json reads
// the result, DecodeEvent gets the same string or rejects it for a rule of
// the schema (control characters, length), and reads it as bad_json only
// when it is not UTF-8.
func FuzzDecodeEventStrings(f *testing.F) {
	for _, s := range []string{``, `plain`, `a\"b`, `\u00e9\ud83d\ude00`, `\ud800`, `\udfff\ud800x`, `女装`, `\\\/\b`, `\u0000`, "\xff", `x\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		in := `{"event_id":"e-1","ts":"2026-11-20T09:00:00Z","type":"search","channel":"app","ids":{"member":"M1"},"category":"c","query":"` +
			raw + `","attrs":{"k":"` + raw + `"}}`
		var want struct {
			Query string
			Attrs map[string]string
		}
		var ev Event
		rej := DecodeEvent([]byte(in), decodeNow, nil, &ev)
		if json.Unmarshal([]byte(in), &want) != nil {
			require.NotNil(t, rej)
			require.Equal(t, ReasonBadJSON, rej.Code)
			return
		}
		if rej != nil {
			switch rej.Code {
			case ReasonBadJSON:
				require.False(t, utf8.ValidString(raw), "well-formed %q called bad_json: %s", raw, rej.Message)
			case ReasonBadValue:
				require.True(t, hasControl(want.Query), "%q: %s", raw, rej.Message)
			case ReasonTooLarge:
				require.Greater(t, len(want.Query), defaultMaxFieldBytes, "%q: %s", raw, rej.Message)
			default:
				t.Fatalf("%q rejected with %s: %s", raw, rej.Code, rej.Message)
			}
			return
		}
		require.Equal(t, want.Query, ev.Query)
		require.Equal(t, map[string]string{"k": want.Query}, ev.Attrs, "an empty attrs value is kept")
	})
}

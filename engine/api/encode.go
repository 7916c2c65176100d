package api

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"nbo/engine"
)

// The offer API's answer is encoded by hand, straight into hertz's pooled
// response buffer: encoding/json's reflection was a third of the layer's
// CPU per decision. The output is byte-for-byte what json.Marshal writes
// for engine.Decision (a test and a fuzz target hold it to that), so the
// JSON tags on the type stay the documentation.

var errBadFloat = errors.New("api: a score is NaN or infinite")

// appendDecision appends d's JSON to b.
func appendDecision(b []byte, d *engine.Decision) ([]byte, error) {
	b = append(b, `{"decision_id":`...)
	b = appendString(b, d.DecisionID)
	if d.Customer != "" {
		b = append(b, `,"customer":`...)
		b = appendString(b, d.Customer)
	}
	b = append(b, `,"offers":`...)
	if d.Offers == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range d.Offers {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendOffer(b, &d.Offers[i]); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"group":`...)
	b = appendString(b, d.Group)
	if d.ModelVersion != "" {
		b = append(b, `,"model_version":`...)
		b = appendString(b, d.ModelVersion)
	}
	if !d.NewestEventTS.IsZero() {
		b = append(b, `,"newest_event_ts":`...)
		var err error
		if b, err = appendTime(b, d.NewestEventTS); err != nil {
			return b, err
		}
	}
	b = append(b, `,"fallback":`...)
	b = strconv.AppendBool(b, d.Fallback)
	if d.EmptyReason != "" {
		b = append(b, `,"empty_reason":`...)
		b = appendString(b, d.EmptyReason)
	}
	return append(b, '}'), nil
}

func appendOffer(b []byte, o *engine.OfferResult) ([]byte, error) {
	b = append(b, `{"offer_id":`...)
	b = appendString(b, o.OfferID)
	b = append(b, `,"type":`...)
	b = appendString(b, o.Type)
	b = append(b, `,"title":`...)
	b = appendString(b, o.Title)
	b = append(b, `,"text":`...)
	b = appendString(b, o.Text)
	b = append(b, `,"value":`...)
	b = strconv.AppendInt(b, o.Value, 10)
	b = append(b, `,"coupon_code":`...)
	b = appendString(b, o.CouponCode)
	if !o.Expiry.IsZero() {
		b = append(b, `,"expiry":`...)
		var err error
		if b, err = appendTime(b, o.Expiry); err != nil {
			return b, err
		}
	}
	if o.FulfilmentStore != "" {
		b = append(b, `,"fulfilment_store":`...)
		b = appendString(b, o.FulfilmentStore)
	}
	if o.Scenario != "" {
		b = append(b, `,"scenario":`...)
		b = appendString(b, o.Scenario)
	}
	if o.ReasonCode != "" {
		b = append(b, `,"reason_code":`...)
		b = appendString(b, o.ReasonCode)
	}
	b = append(b, `,"reason":`...)
	b = appendString(b, o.Reason)
	s := &o.Score
	b = append(b, `,"score":{"propensity":`...)
	var err error
	for i, f := range [6]float64{s.Propensity, s.ContextWeight, s.Value, s.Lever, s.Explore, s.Total} {
		if i > 0 {
			b = append(b, scoreKeys[i]...)
		}
		if b, err = appendFloat(b, f); err != nil {
			return b, err
		}
	}
	return append(b, "}}"...), nil
}

var scoreKeys = [6]string{"", `,"context_weight":`, `,"value":`, `,"lever":`, `,"explore":`, `,"total":`}

// appendFloat formats like encoding/json: shortest representation, 'e'
// notation outside [1e-6, 1e21) with a cleaned-up exponent.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errBadFloat
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, errors.New("api: a time is outside years 0-9999")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does by default: HTML-safe
// (<, >, & escaped), invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

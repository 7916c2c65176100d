package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// TestOpenAPIEventLimitsAreTheDecoders: a client that validates events
// against the Event schema must not send what the server refuses, nor be
// kept from sending what it takes. Each limit the schema states is tried
// at the limit (accepted) and one past it (refused) by the decoder the
// server runs with its default options.
func TestOpenAPIEventLimitsAreTheDecoders(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Event struct {
					Properties map[string]struct {
						MaxLength     *int   `json:"maxLength"`
						Maximum       *int64 `json:"maximum"`
						MaxProperties *int   `json:"maxProperties"`
						Pattern       string `json:"pattern"`
						Properties    map[string]struct {
							MaxLength *int   `json:"maxLength"`
							Pattern   string `json:"pattern"`
						} `json:"properties"`
					} `json:"properties"`
				} `json:"Event"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openapiDoc, &doc))
	props := doc.Components.Schemas.Event.Properties
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	decode := func(extra string) *features.Rejection {
		body := `{"event_id":"e1","ts":"2026-11-20T10:00:00Z","type":"dwell","channel":"store","store":"S1","dwell_s":5,"ids":{"member":"M1"}` + extra + `}`
		var ev features.Event
		return features.DecodeEvent([]byte(body), now, &features.DecodeOptions{}, &ev)
	}
	set := func(field, value string) string { // a field the base event lacks
		return fmt.Sprintf(",%q:%s", field, value)
	}
	accepts := func(what, body string) {
		t.Helper()
		r := decode(body)
		require.Nil(t, r, "%s: the schema allows it, the server must take it", what)
	}
	refuses := func(what, body string) {
		t.Helper()
		require.NotNil(t, decode(body), "%s: the schema refuses it, so must the server", what)
	}

	// Integers at their maximum, and one past.
	for _, f := range []string{"amount", "quantity"} {
		max := props[f].Maximum
		require.NotNil(t, max, f)
		accepts(f, set(f, fmt.Sprint(*max)))
		refuses(f, set(f, fmt.Sprint(*max+1)))
	}
	// dwell_s is in the base event: decode a copy without it.
	max := props["dwell_s"].Maximum
	require.NotNil(t, max)
	for v, ok := range map[int64]bool{*max: true, *max + 1: false} {
		body := fmt.Sprintf(`{"event_id":"e1","ts":"2026-11-20T10:00:00Z","type":"dwell","channel":"store","store":"S1","dwell_s":%d,"ids":{"member":"M1"}}`, v)
		var ev features.Event
		r := features.DecodeEvent([]byte(body), now, &features.DecodeOptions{}, &ev)
		require.Equal(t, ok, r == nil, "dwell_s %d", v)
	}
	// Strings at their maxLength (ASCII: bytes are characters), and one past.
	for _, f := range []string{"sku", "category", "offer_id", "decision_id", "coupon_code", "query"} {
		n := props[f].MaxLength
		require.NotNil(t, n, f)
		accepts(f, set(f, fmt.Sprintf("%q", strings.Repeat("a", *n))))
		refuses(f, set(f, fmt.Sprintf("%q", strings.Repeat("a", *n+1))))
	}
	// attrs: entries and value length.
	n := props["attrs"].MaxProperties
	require.NotNil(t, n)
	attrs := func(k int, vlen int) string {
		var kv []string
		for i := range k {
			kv = append(kv, fmt.Sprintf(`"k%d":%q`, i, strings.Repeat("v", vlen)))
		}
		return set("attrs", "{"+strings.Join(kv, ",")+"}")
	}
	accepts("attrs count", attrs(*n, 1))
	refuses("attrs count", attrs(*n+1, 1))
	accepts("attrs value", attrs(1, 256))
	refuses("attrs value", attrs(1, 257))
	// event_id: length and pattern.
	idLen := props["event_id"].MaxLength
	require.NotNil(t, idLen)
	require.Equal(t, "^[!-~]+$", props["event_id"].Pattern)
	for id, ok := range map[string]bool{strings.Repeat("x", *idLen): true, strings.Repeat("x", *idLen+1): false, "a b": false, "é": false, "!~": true} {
		body := fmt.Sprintf(`{"event_id":%q,"ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"web","ids":{"member":"M1"}}`, id)
		var ev features.Event
		r := features.DecodeEvent([]byte(body), now, &features.DecodeOptions{}, &ev)
		require.Equal(t, ok, r == nil, "event_id %q", id)
	}
	// Identifiers: member, card and device length and characters.
	for _, ns := range []string{"member", "card", "device"} {
		p := props["ids"].Properties[ns]
		require.NotNil(t, p.MaxLength, ns)
		require.Equal(t, "^[A-Za-z0-9._:-]+$", p.Pattern, ns)
		for id, ok := range map[string]bool{strings.Repeat("A", *p.MaxLength): true, strings.Repeat("A", *p.MaxLength+1): false, "a/b": false, "x:y-1.2_3": true} {
			body := fmt.Sprintf(`{"event_id":"e1","ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"web","ids":{%q:%q}}`, ns, id)
			var ev features.Event
			r := features.DecodeEvent([]byte(body), now, &features.DecodeOptions{}, &ev)
			require.Equal(t, ok, r == nil, "%s %q", ns, id)
		}
	}
}

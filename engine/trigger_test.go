package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/scenarios"
)

func TestTriggerIDsAreDeterministicAndDistinct(t *testing.T) {
	id := TriggerID("member:M1", "cart-abandoned", "pickup-10", "ev-1")
	require.Regexp(t, regexp.MustCompile(`^tr_[0-9a-f]{32}$`), id)
	require.Equal(t, id, TriggerID("member:M1", "cart-abandoned", "pickup-10", "ev-1"), "a replay gives the same ID")
	dec := TriggerDecisionID(id)
	require.Regexp(t, regexp.MustCompile(`^dt_[0-9a-f]{32}$`), dec)
	require.Equal(t, dec, TriggerDecisionID(id))

	tr := NewTrigger("member:M1", "cart-abandoned", "pickup-10", "ev-1", t0)
	require.Equal(t, id, tr.TriggerID)
	require.Equal(t, dec, tr.DecisionID)
	require.Equal(t, features.ChannelPush, tr.Channel)

	seen := map[string]string{id: "base", dec: "decision"}
	variants := map[string]string{
		"another customer":         TriggerID("member:M2", "cart-abandoned", "pickup-10", "ev-1"),
		"another scenario":         TriggerID("member:M1", "win-back", "pickup-10", "ev-1"),
		"another offer":            TriggerID("member:M1", "cart-abandoned", "pickup-20", "ev-1"),
		"another event":            TriggerID("member:M1", "cart-abandoned", "pickup-10", "ev-2"),
		"fields shifted by a byte": TriggerID("member:M1", "cart-abandone", "dpickup-10", "ev-1"),
	}
	for name, v := range variants {
		prev, dup := seen[v]
		require.False(t, dup, "%s collides with %s", name, prev)
		seen[v] = name
	}
}

func TestTriggerEncodeDecodeRoundTrip(t *testing.T) {
	id := TriggerID("member:M1", "compare-models", "try-both", "ev-9")
	tr := Trigger{
		Version:   TriggerVersion,
		TriggerID: id, Customer: "member:M1", Scenario: "compare-models", OfferID: "try-both",
		Channel: features.ChannelPush, Locale: "zh-CN", Title: "到店体验", Text: "顾问已为您准备好对比",
		DecisionID: TriggerDecisionID(id), CouponCode: CouponCode(TriggerDecisionID(id), "try-both"),
		EventID: "ev-9", TS: utc("2026-11-24T04:00:00Z") + 123,
		Value: 5000, Expiry: utc("2026-11-27T04:00:00Z") + 123, FulfilmentStore: "S01",
		NotAfter: utc("2026-11-24T05:00:00Z") + 123,
	}
	data, err := tr.Encode()
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"v":1,"trigger_id":%q,"customer":"member:M1","scenario":"compare-models","offer_id":"try-both",
		"channel":"push","locale":"zh-CN","title":"到店体验","text":"顾问已为您准备好对比","decision_id":%q,"coupon_code":%q,
		"value":5000,"expiry":"2026-11-27T04:00:00.123Z","fulfilment_store":"S01","event_id":"ev-9",
		"ts":"2026-11-24T04:00:00.123Z","not_after":"2026-11-24T05:00:00.123Z"}`, id, tr.DecisionID, tr.CouponCode), string(data))
	back, err := DecodeTrigger(data)
	require.NoError(t, err)
	require.Equal(t, tr, back)
	require.Equal(t, []byte("member:M1"), tr.Key())

	// An online offer's trigger has no fulfilment store, and a value of 0
	// is still written: a version-1 message always says its value.
	tr.FulfilmentStore, tr.Value = "", 0
	data, err = tr.Encode()
	require.NoError(t, err)
	require.NotContains(t, string(data), "fulfilment_store")
	require.Contains(t, string(data), `"value":0`)
	back, err = DecodeTrigger(data)
	require.NoError(t, err)
	require.Equal(t, tr, back)
}

func TestAnUnversionedTriggerFromBeforeVersion1StillDecodes(t *testing.T) {
	// A message as nbo published it before "v", value, expiry and
	// not_after existed: a push service replaying old messages reads it.
	old := `{"trigger_id":"tr_1","customer":"member:M1","scenario":"s","offer_id":"o","channel":"push","locale":"en",
		"title":"T","text":"X","decision_id":"dt_1","coupon_code":"C","event_id":"ev-1","ts":"2026-11-24T04:00:00.000Z"}`
	tr, err := DecodeTrigger([]byte(old))
	require.NoError(t, err)
	require.Zero(t, tr.Version)
	require.Zero(t, tr.Value)
	require.Zero(t, tr.Expiry)
	require.Zero(t, tr.NotAfter)
	require.Equal(t, utc("2026-11-24T04:00:00Z"), tr.TS)
	again, err := tr.Encode()
	require.NoError(t, err)
	require.JSONEq(t, old, string(again), "it is written back as it was, not dressed up as version 1")
}

func TestDecodeTriggerRejectsBadMessages(t *testing.T) {
	good := `"trigger_id":"tr_1","customer":"member:M1","decision_id":"dt_1","channel":"push","ts":"2026-11-24T04:00:00Z"`
	v1 := `"v":1,` + good + `,"value":0,"expiry":"2026-11-27T04:00:00Z","not_after":"2026-11-24T05:00:00Z"`
	cases := []struct{ name, msg string }{
		{"an unknown field is rejected", `{` + good + `,"extra":1}`},
		{"a missing trigger_id is rejected", `{"customer":"member:M1","decision_id":"d","channel":"push","ts":"2026-11-24T04:00:00Z"}`},
		{"an unknown channel is rejected", `{"trigger_id":"t","customer":"c","decision_id":"d","channel":"fax","ts":"2026-11-24T04:00:00Z"}`},
		{"a bad timestamp is rejected", `{"trigger_id":"t","customer":"c","decision_id":"d","channel":"push","ts":"yesterday"}`},
		{"trailing data is rejected", `{` + good + `}{}`},
		{"not JSON is rejected", `push`},
		{"a version this decoder does not know is rejected", `{"v":2,` + v1[len(`"v":1,`):] + `}`},
		{"version 0 spelt out is rejected", `{"v":0,` + v1[len(`"v":1,`):] + `}`},
		{"a version-1 message without value is rejected", `{"v":1,` + good + `,"expiry":"2026-11-27T04:00:00Z","not_after":"2026-11-24T05:00:00Z"}`},
		{"a version-1 message without expiry is rejected", `{"v":1,` + good + `,"value":0,"not_after":"2026-11-24T05:00:00Z"}`},
		{"a version-1 message without not_after is rejected", `{"v":1,` + good + `,"value":0,"expiry":"2026-11-27T04:00:00Z"}`},
		{"a bad expiry is rejected", `{"v":1,` + good + `,"value":0,"expiry":"soon","not_after":"2026-11-24T05:00:00Z"}`},
		{"a bad not_after is rejected", `{"v":1,` + good + `,"value":0,"expiry":"2026-11-27T04:00:00Z","not_after":"later"}`},
		{"a value as a string is rejected", `{"v":1,` + good + `,"value":"50.00","expiry":"2026-11-27T04:00:00Z","not_after":"2026-11-24T05:00:00Z"}`},
		{"version-1 fields without the version are rejected", `{` + good + `,"value":5000}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTrigger([]byte(tc.msg))
			require.ErrorIs(t, err, ErrBadTrigger)
		})
	}
	_, err := DecodeTrigger([]byte(`{` + good + `}`))
	require.NoError(t, err)
	_, err = DecodeTrigger([]byte(`{` + v1 + `}`))
	require.NoError(t, err)
}

func FuzzDecodeTrigger(f *testing.F) {
	tr := Trigger{TriggerID: "tr_1", Customer: "member:M1", DecisionID: "dt_1", Channel: features.ChannelPush, TS: t0}
	data, _ := tr.Encode()
	f.Add(data)
	tr.Version, tr.Value, tr.Expiry, tr.NotAfter, tr.FulfilmentStore = TriggerVersion, 5000, t0+72*3600_000, t0+3600_000, "S01"
	data, _ = tr.Encode()
	f.Add(data)
	f.Add([]byte(`{"trigger_id":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTrigger(data)
		if err != nil {
			return
		}
		out, err := tr.Encode()
		require.NoError(t, err)
		back, err := DecodeTrigger(out)
		require.NoError(t, err)
		require.Equal(t, tr, back)
	})
}

func TestTriggerDedupSuppressesReplaysAcrossARestart(t *testing.T) {
	d := NewTriggerDedup(24*time.Hour, 0)
	now := utc("2026-11-24T04:00:00Z")
	events := []string{"ev-1", "ev-2", "ev-3"}
	emit := func(d *TriggerDedup, at int64) []string {
		var out []string
		for _, ev := range events {
			id := TriggerID("member:M1", "s", "o", ev)
			if !d.Seen(id, at) {
				out = append(out, id)
			}
		}
		return out
	}
	first := emit(d, now)
	require.Len(t, first, 3)
	require.Empty(t, emit(d, now+1000), "a replay emits nothing")

	data, err := d.MarshalBinary()
	require.NoError(t, err)
	restarted := NewTriggerDedup(24*time.Hour, 0)
	require.NoError(t, restarted.UnmarshalBinary(data))
	require.Empty(t, emit(restarted, now+2000), "a replay after a restart emits nothing")
	again, _ := restarted.MarshalBinary()
	require.Equal(t, data, again)

	require.Equal(t, first, emit(restarted, now+24*time.Hour.Milliseconds()),
		"after the retention the IDs are forgotten, and they are the same IDs")
	for i := 1; i < len(data); i++ {
		require.Error(t, NewTriggerDedup(0, 0).UnmarshalBinary(data[:i]), "truncated at %d", i)
	}
}

func TestTriggerDedupIsBoundedBySize(t *testing.T) {
	d := NewTriggerDedup(time.Hour, 100)
	for i := 0; i < 10_000; i++ {
		require.False(t, d.Seen(fmt.Sprint("t", i), t0))
	}
	require.Equal(t, 100, d.Len())
	require.True(t, d.Contains("t9999", t0))
	require.False(t, d.Contains("t0", t0), "the oldest are forgotten first")

	d.Forget("t9999")
	require.False(t, d.Seen("t9999", t0+1), "a forgotten ID can be emitted again")
	require.True(t, d.Seen("t9999", t0+2))
	require.Equal(t, 100, d.Len())
}

// pushAtClose applies browsedAndLeft(views) and fires the wake-up at the
// instant the 48 h window closes, by the wall clock as a live engine on a
// quiet stream does; it returns the rig, that instant and the one
// trigger's message.
func pushAtClose(t *testing.T, views time.Time) (*rig, time.Time, []byte) {
	t.Helper()
	closes := views.Add(5*time.Minute + 48*time.Hour)
	r := newRig(t, views)
	r.clock = views.Add(10 * time.Minute)
	r.apply(t, browsedAndLeft(views)...)
	r.clock = closes.Add(time.Second)
	r.eng.OnIdle(r.clock)
	require.Len(t, r.triggers.msgs, 1)
	return r, closes, r.triggers.msgs[0]
}

func TestATriggerCarriesTheOffersTermsAsDecideGivesThem(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	_, closes, msg := pushAtClose(t, views)
	tr, err := DecodeTrigger(msg)
	require.NoError(t, err)
	require.Equal(t, TriggerVersion, tr.Version)
	require.Equal(t, "instore_trial_coupon", tr.OfferID)

	// The same customer asking /v1/decide at the trigger's instant, in an
	// engine that did not push, is served the same offer on the same
	// terms.
	r2 := newRig(t, views)
	r2.eng.opts.Explorer = nil
	r2.clock = views.Add(10 * time.Minute)
	r2.apply(t, browsedAndLeft(views)...)
	r2.clock = closes.Add(time.Second)
	d := decide(t, r2, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: MaxLimit, Locale: LocaleEn, Now: &closes})
	i := slices.IndexFunc(d.Offers, func(o OfferResult) bool { return o.OfferID == tr.OfferID })
	require.GreaterOrEqual(t, i, 0, "decide serves the pushed offer: %+v", d.Offers)
	o := d.Offers[i]
	require.Equal(t, o.Value, tr.Value)
	require.Equal(t, int64(5000), tr.Value)
	require.Equal(t, o.Expiry.UnixMilli(), tr.Expiry)
	require.Equal(t, closes.Add(72*time.Hour).UnixMilli(), tr.Expiry, "the reservation TTL, 72 h by default")
	require.Equal(t, o.FulfilmentStore, tr.FulfilmentStore)
	require.Equal(t, "S01", tr.FulfilmentStore, "an in-store offer names its store")
	require.Equal(t, o.Scenario, tr.Scenario)
}

func TestATriggersNotAfterIsTheEarliestOfMaxAgeQuietHoursAndExpiry(t *testing.T) {
	cases := []struct {
		name  string
		views time.Time // the window closes 48 h 5 min later
		want  func(closes time.Time) time.Time
	}{
		{"at 20:05 the trigger is stale an hour later (TriggerMaxAge)",
			time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai),
			func(closes time.Time) time.Time { return closes.Add(time.Hour) }},
		{"at 21:30 it stops at 22:00, when the store's quiet hours start",
			time.Date(2026, 11, 18, 21, 25, 0, 0, shanghai),
			func(closes time.Time) time.Time { return time.Date(2026, 11, 20, 22, 0, 0, 0, shanghai) }},
		{"at 08:10 it is stale an hour later, not at the next night's quiet hours",
			time.Date(2026, 11, 18, 8, 5, 0, 0, shanghai),
			func(closes time.Time) time.Time { return closes.Add(time.Hour) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, closes, msg := pushAtClose(t, tc.views)
			tr, err := DecodeTrigger(msg)
			require.NoError(t, err)
			require.Equal(t, closes.UnixMilli(), tr.TS)
			require.Equal(t, tc.want(closes).UnixMilli(), tr.NotAfter)
			require.Less(t, tr.NotAfter, tr.Expiry)
		})
	}

	// An offer whose validity ends within the hour: not_after is its
	// expiry, which the offer's end caps as it does on /v1/decide.
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	closes := views.Add(5*time.Minute + 48*time.Hour)
	r := newRig(t, views)
	r.set.Offer("instore_trial_coupon").Valid.To = closes.Add(20 * time.Minute).UnixMilli()
	r.clock = views.Add(10 * time.Minute)
	r.apply(t, browsedAndLeft(views)...)
	r.clock = closes.Add(time.Second)
	r.eng.OnIdle(r.clock)
	got := r.triggers.triggers(t)
	require.Len(t, got, 1)
	require.Equal(t, closes.Add(20*time.Minute).UnixMilli(), got[0].Expiry)
	require.Equal(t, got[0].Expiry, got[0].NotAfter)
}

func TestAReplayedTriggerIsTheSameBytes(t *testing.T) {
	// Live, the wall clock fires the wake-up; a fresh engine replaying the
	// events (after a crash, from a snapshot older than the push) reaches
	// it in event time, a minute later by the wall clock. The push service
	// gets the same trigger_id and the very same message, new fields
	// included, so a repeat it keeps is indistinguishable.
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	_, closes, live := pushAtClose(t, views)

	r2 := newRig(t, views)
	r2.clock = closes.Add(time.Minute)
	r2.apply(t, browsedAndLeft(views)...)
	r2.apply(t, ev("o1", closes.Add(30*time.Second), "page_view", "web", `{"member":"OTHER"}`, ""))
	require.Len(t, r2.triggers.msgs, 1)
	require.Equal(t, string(live), string(r2.triggers.msgs[0]))
	tr, err := DecodeTrigger(live)
	require.NoError(t, err)
	require.NotZero(t, tr.Value)
	require.NotZero(t, tr.Expiry)
	require.NotZero(t, tr.NotAfter)
	require.NotEmpty(t, tr.FulfilmentStore)
}

// TestTheTriggersDocListsEveryField holds docs/triggers.md's field table
// to the message: every field nbo writes is documented, and nothing
// documented is not written.
func TestTheTriggersDocListsEveryField(t *testing.T) {
	doc, err := os.ReadFile("../docs/triggers.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "<!-- trigger fields -->\n")
	require.True(t, ok, "docs/triggers.md has the field table")
	table, _, ok := strings.Cut(rest, "<!-- end trigger fields -->")
	require.True(t, ok)
	var documented []string
	for _, row := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		cell := strings.Split(row, "|")[1]
		for _, name := range strings.Split(cell, ",") {
			documented = append(documented, strings.Trim(strings.TrimSpace(name), "`"))
		}
	}
	var sent []string
	typ := reflect.TypeOf(triggerWire{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		sent = append(sent, name)
	}
	require.ElementsMatch(t, sent, documented)
}

// TestTheDocumentedTriggerIsWhatNboPublishes decodes the example trigger
// of docs/triggers.md and the README strictly, and holds it to the
// trigger the engine publishes for that example (in English), so the
// docs cannot drift from the message. The feedback events the doc shows
// must be valid events.
func TestTheDocumentedTriggerIsWhatNboPublishes(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	r, _, msg := pushAtClose(t, views)
	want, err := DecodeTrigger(msg)
	require.NoError(t, err)
	want.Locale = string(LocaleEn)
	o := r.set.Offer(want.OfferID)
	want.Title, want.Text = o.Title[scenarios.En], o.Text[scenarios.En]

	for _, path := range []string{"../docs/triggers.md", "../README.md"} {
		doc, err := os.ReadFile(path)
		require.NoError(t, err)
		var found int
		for _, block := range jsonBlocks(string(doc)) {
			dec := json.NewDecoder(strings.NewReader(block))
			for dec.More() {
				var raw json.RawMessage
				require.NoError(t, dec.Decode(&raw), "%s: %s", path, block)
				switch {
				case bytes.Contains(raw, []byte(`"trigger_id"`)):
					got, err := DecodeTrigger(raw)
					require.NoError(t, err, "%s: %s", path, raw)
					require.Equal(t, want, got, path)
					found++
				case path == "../docs/triggers.md" && bytes.Contains(raw, []byte(`"event_id"`)):
					var opts features.DecodeOptions
					opts.EnsureDefaults()
					var ev features.Event
					require.Nil(t, features.DecodeEvent(raw, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).UnixMilli(), &opts, &ev), "%s", raw)
				}
			}
		}
		require.Equal(t, 1, found, "%s shows one trigger", path)
	}
}

// jsonBlocks returns the bodies of a Markdown file's ```json blocks.
func jsonBlocks(doc string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(doc, "```json\n")
		if !ok {
			return out
		}
		block, after, _ := strings.Cut(rest, "```")
		out = append(out, block)
		doc = after
	}
}

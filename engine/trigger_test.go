package engine

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
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
		TriggerID: id, Customer: "member:M1", Scenario: "compare-models", OfferID: "try-both",
		Channel: features.ChannelPush, Locale: "zh-CN", Title: "到店体验", Text: "顾问已为您准备好对比",
		DecisionID: TriggerDecisionID(id), EventID: "ev-9", TS: utc("2026-11-24T04:00:00Z") + 123,
	}
	data, err := tr.Encode()
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"trigger_id":%q,"customer":"member:M1","scenario":"compare-models","offer_id":"try-both",
		"channel":"push","locale":"zh-CN","title":"到店体验","text":"顾问已为您准备好对比","decision_id":%q,"event_id":"ev-9",
		"ts":"2026-11-24T04:00:00.123Z"}`, id, tr.DecisionID), string(data))
	back, err := DecodeTrigger(data)
	require.NoError(t, err)
	require.Equal(t, tr, back)
	require.Equal(t, []byte("member:M1"), tr.Key())
}

func TestDecodeTriggerRejectsBadMessages(t *testing.T) {
	good := `"trigger_id":"tr_1","customer":"member:M1","decision_id":"dt_1","channel":"push","ts":"2026-11-24T04:00:00Z"`
	cases := []struct{ name, msg string }{
		{"an unknown field is rejected", `{` + good + `,"extra":1}`},
		{"a missing trigger_id is rejected", `{"customer":"member:M1","decision_id":"d","channel":"push","ts":"2026-11-24T04:00:00Z"}`},
		{"an unknown channel is rejected", `{"trigger_id":"t","customer":"c","decision_id":"d","channel":"fax","ts":"2026-11-24T04:00:00Z"}`},
		{"a bad timestamp is rejected", `{"trigger_id":"t","customer":"c","decision_id":"d","channel":"push","ts":"yesterday"}`},
		{"trailing data is rejected", `{` + good + `}{}`},
		{"not JSON is rejected", `push`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTrigger([]byte(tc.msg))
			require.ErrorIs(t, err, ErrBadTrigger)
		})
	}
	_, err := DecodeTrigger([]byte(`{` + good + `}`))
	require.NoError(t, err)
}

func FuzzDecodeTrigger(f *testing.F) {
	tr := Trigger{TriggerID: "tr_1", Customer: "member:M1", DecisionID: "dt_1", Channel: features.ChannelPush, TS: t0}
	data, _ := tr.Encode()
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

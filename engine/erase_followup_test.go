package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// Replaying the decision log resolves the customer a record names: a
// merge or an erase since the decision left its logged key naming no one.

var replayConsent = `,"attrs":{"purpose":"marketing","granted":"true"}`

// decidedThen logs one decision for the customer ids names (after the
// events before) in a replay rig, then applies the events after; it
// returns the decision's record and the engine state after, the snapshot
// a restart restores.
func decidedThen(t *testing.T, t0 time.Time, ids string, before, after []string) ([]byte, engineState) {
	t.Helper()
	a, log := replayRig(t, t0)
	a.apply(t, before...)
	var req DecideRequest
	require.NoError(t, json.Unmarshal([]byte(ids), &req.IDs))
	req.Channel, req.Limit, req.Now = features.ChannelApp, 2, &t0
	d := decide(t, a, req)
	require.NotEmpty(t, d.Offers)
	require.Len(t, log.msgs, 1)
	a.apply(t, after...)
	return log.msgs[0], stateOf(t, a)
}

func TestReplayPutsAMergedCustomersDecisionUnderTheSurvivor(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	known := []string{
		ev("dc", t0.Add(-48*time.Hour), "consent", "app", `{"device":"D1"}`, replayConsent),
		ev("mc", t0.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, replayConsent),
	}
	merge := []string{login("l", t0.Add(time.Minute), "identify")}
	record, snap := decidedThen(t, t0, `{"device":"D1"}`, known, merge)
	require.Nil(t, ledgerOf(decidedRig(t, t0, known, merge, snap).policy, "device:D1"), "the merge moved the ledger before the snapshot")

	t.Run("a record the snapshot holds, made before the merge, adds nothing", func(t *testing.T) {
		b := decidedRig(t, t0, known, merge, snap)
		st := replayAll(t, b, t0.Add(time.Hour), [][]byte{record})
		require.Equal(t, 1, st.Merged)
		require.Zero(t, st.Contacts+st.Recorded+st.Reserved, "%+v", st)
		require.Equal(t, snap, stateOf(t, b))
	})
	t.Run("a rebuild puts the contacts and records under the member", func(t *testing.T) {
		b := decidedRig(t, t0, known, merge, engineState{})
		st := replayAll(t, b, t0.Add(time.Hour), [][]byte{record})
		require.Positive(t, st.Contacts)
		require.Positive(t, st.Recorded)
		require.Nil(t, ledgerOf(b.policy, "device:D1"), "no ledger under the absorbed key")
		require.NotNil(t, ledgerOf(b.policy, "member:M1"))
		require.Empty(t, b.stats.Served("device:D1", nil))
		require.NotEmpty(t, b.stats.Served("member:M1", nil))
	})
}

// decidedRig is a replay rig whose store has applied the events and whose
// engine state is snap (none when zero), as after a restart.
func decidedRig(t *testing.T, t0 time.Time, before, after []string, snap engineState) *rig {
	t.Helper()
	b, _ := replayRig(t, t0)
	b.apply(t, before...)
	b.apply(t, after...)
	if snap.budgets != nil {
		snap.restore(t, b)
	}
	return b
}

func TestReplayLinksNothingToAnErasedCustomer(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	known := []string{ev("mc", t0.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, replayConsent)}
	erase := []string{ev("x", t0.Add(time.Minute), "erase", "app", `{"member":"M1"}`, "")}
	record, snap := decidedThen(t, t0, `{"member":"M1"}`, known, erase)

	for _, tc := range []struct {
		name string
		snap engineState
	}{
		{"a record the snapshot holds, made before the erase", snap},
		{"a rebuild without the engine's snapshot", engineState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := decidedRig(t, t0, known, erase, tc.snap)
			rp := b.eng.NewReplayer(t0.Add(time.Hour))
			require.NoError(t, rp.Replay(record))
			require.Nil(t, ledgerOf(b.policy, "member:M1"), "no contact ledger for the erased customer")
			require.Empty(t, b.stats.Served("member:M1", nil), "no open offer")
			require.Equal(t, 1, rp.Stats.Erased)
			require.Zero(t, rp.Stats.Contacts)
			st := stateOf(t, b)
			for name, sec := range map[string][]byte{"stats": st.stats, "policy": st.policy, "budgets": st.budgets} {
				require.False(t, bytes.Contains(sec, []byte("member:M1")), "the %s section names the erased customer", name)
			}
			// The coupons issued are still held and still resolve.
			var l decisionLog
			require.NoError(t, json.Unmarshal(record, &l))
			for _, o := range l.Offers {
				_, offer, ok := b.stats.LookupCoupon(CouponCode(l.DecisionID, o.OfferID))
				require.True(t, ok, "the coupon of %s resolves", o.OfferID)
				require.Equal(t, o.OfferID, offer)
			}
			if tc.snap.budgets == nil {
				require.Positive(t, rp.Stats.Reserved, "the issued coupons' reservations come back")
				require.Positive(t, rp.Stats.Recorded, "anonymous, as Stats.Forget leaves them")
			}
		})
	}

	t.Run("a customer the events after the snapshot create keeps the decision", func(t *testing.T) {
		b := decidedRig(t, t0, nil, nil, engineState{})
		rp := b.eng.NewReplayer(t0.Add(time.Hour))
		// No erase, so no tombstone: a customer yet to come.
		require.NoError(t, rp.Replay(record))
		require.Zero(t, rp.Stats.Erased)
		require.Positive(t, rp.Stats.Contacts)
		require.NotNil(t, ledgerOf(b.policy, "member:M1"))
		require.NotEmpty(t, b.stats.Served("member:M1", nil))
	})
}

// The trigger dedup's firing marks name the customer: a merge moves
// them, an erase drops them.

func TestTheDedupsFiringMarksFollowMergesAndErases(t *testing.T) {
	// The mark the engine writes when it pushes (evaluateTriggers).
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(30 * time.Minute)
	r.apply(t, storePurchaseDay(day)...)
	require.Len(t, r.triggers.triggers(t), 1)
	require.Len(t, r.dedup.fired["member:M1"], 1, "the push's firing mark is indexed under its customer")
	mark := r.dedup.fired["member:M1"][0]
	now := day.Add(time.Hour).UnixMilli()
	require.True(t, r.dedup.Contains(mark, now))

	t.Run("an erase drops the customer's marks, in the snapshot too", func(t *testing.T) {
		d := NewTriggerDedup(24*time.Hour, 0)
		d.Seen("tr_0123", t0)
		d.Seen("fired|member:M1|s|o", t0)
		d.Seen("fired|member:M1|s|o2", t0+1)
		d.Seen("fired|member:M10|s|o", t0+2)
		d.ForgetCustomer("member:M1")
		require.False(t, d.Contains("fired|member:M1|s|o", t0+3), "a returning member may be pushed again")
		require.False(t, d.Contains("fired|member:M1|s|o2", t0+3))
		require.True(t, d.Contains("fired|member:M10|s|o", t0+3), "another customer's stays")
		require.True(t, d.Contains("tr_0123", t0+3), "trigger IDs stay: they name no customer")
		b, err := d.MarshalBinary()
		require.NoError(t, err)
		require.False(t, bytes.Contains(b, []byte("member:M1|")))

		// After a restart too.
		d.Seen("fired|member:M2|s|o", t0+4)
		b, err = d.MarshalBinary()
		require.NoError(t, err)
		restored := NewTriggerDedup(24*time.Hour, 0)
		require.NoError(t, restored.UnmarshalBinary(b))
		restored.ForgetCustomer("member:M2")
		require.False(t, restored.Contains("fired|member:M2|s|o", t0+5))
		require.Equal(t, 2, restored.Len())
	})

	t.Run("a merge moves the absorbed customer's marks onto the survivor", func(t *testing.T) {
		const hour = int64(time.Hour / time.Millisecond)
		d := NewTriggerDedup(24*time.Hour, 0)
		d.Seen("fired|device:D1|s|o", t0)           // only the device's
		d.Seen("fired|device:D1|s|both", t0+2*hour) // both: the device's is later
		d.Seen("fired|member:M1|s|both", t0+hour)   //
		d.Seen("fired|member:M1|s|mine", t0+3*hour) // the member's own
		d.Seen("fired|device:D1X|s|o", t0)          // another device
		d.Rekey("device:D1", "member:M1")
		at := t0 + 4*hour
		require.False(t, d.Contains("fired|device:D1|s|o", at), "nothing stays under the absorbed key")
		require.False(t, d.Contains("fired|device:D1|s|both", at))
		require.True(t, d.Contains("fired|member:M1|s|o", at), "the device's push stops the member's")
		require.True(t, d.Contains("fired|member:M1|s|both", at))
		require.True(t, d.Contains("fired|member:M1|s|mine", at))
		require.True(t, d.Contains("fired|device:D1X|s|o", at))
		require.Equal(t, 4, d.Len())
		require.Empty(t, d.fired["device:D1"])
		require.Len(t, d.fired["member:M1"], 3)

		// Each moved mark keeps its time: the device's first push is
		// forgotten a day after it was made, the later one a day after it.
		day := 24 * hour
		require.False(t, d.Contains("fired|member:M1|s|o", t0+day))
		require.True(t, d.Contains("fired|member:M1|s|both", t0+day+hour))
		require.False(t, d.Contains("fired|member:M1|s|both", t0+day+2*hour))
	})
}

// firingCustomers names the customer of a well-formed mark, and every
// customer a mark with a "|" in a field may name.
func TestFiringCustomers(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want []features.Key
	}{
		{"tr_0123456789abcdef", nil},
		{"fired|member:M1|s|o", []features.Key{"member:M1"}},
		{"fired|member:A|B|s|o", []features.Key{"member:A", "member:A|B"}},
		{"fired||s|o", nil},
		{"fired|member:M1|o", nil},
	} {
		require.Equal(t, tc.want, firingCustomers(tc.id), fmt.Sprintf("%q", tc.id))
	}
}

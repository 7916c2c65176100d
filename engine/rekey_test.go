package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// deviceStorePurchase is a day of anonymous events by device D1 after
// which store_purchase_review fires for push (storePurchaseDay, as the
// device).
func deviceStorePurchase(day time.Time) []string {
	d := `{"device":"D1"}`
	return []string{
		ev("dc", day.Add(-48*time.Hour), "consent", "app", d, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("ds1", day, "store_enter", "store", d, `,"store":"S01"`),
		ev("ds2", day.Add(20*time.Minute), "pos_purchase", "pos", d, `,"store":"S01","category":"skincare","sku":"K1","amount":25900`),
		ev("ds3", day.Add(25*time.Minute), "store_exit", "store", d, `,"store":"S01"`),
	}
}

// memberKnown makes member M1 a customer of its own, apart from D1.
func memberKnown(day time.Time) []string {
	m := `{"member":"M1"}`
	return []string{
		ev("mc", day.Add(-48*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("mv", day.Add(-24*time.Hour), "page_view", "web", m, ""),
	}
}

// login links D1 to M1 at instant at with an event of type typ naming
// both: member:M1 survives and device:D1 is folded into it.
func login(id string, at time.Time, typ string) string {
	extra := ""
	if typ == "consent" {
		extra = `,"attrs":{"purpose":"marketing","granted":"true"}`
	}
	return ev(id, at, typ, "app", `{"member":"M1","device":"D1"}`, extra)
}

func ledgerOf(p *Policy, k features.Key) *contactLog {
	s := p.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[k]
}

func TestAChannelCapHoldsAcrossAnIdentifyMerge(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	for _, tc := range []struct {
		name   string
		pushed bool
	}{
		{"a push to the device counts against the member it logs in as", true},
		{"without that push the merged customer is offered a push", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, day)
			r.clock = day.Add(30 * time.Minute)
			r.apply(t, memberKnown(day)...)
			if !tc.pushed {
				r.eng.opts.Triggers = nil
			}
			r.apply(t, deviceStorePurchase(day)...)
			pushes := r.triggers.triggers(t)
			if tc.pushed {
				require.Len(t, pushes, 1)
				require.Equal(t, features.Key("device:D1"), pushes[0].Customer)
			} else {
				require.Empty(t, pushes)
			}
			r.eng.opts.Triggers = r.triggers

			r.apply(t, login("l1", day.Add(28*time.Minute), "identify"))
			id, ok := r.store.ResolveKey("device:D1")
			require.True(t, ok)
			require.Equal(t, features.Key("member:M1"), id)
			require.Nil(t, ledgerOf(r.policy, "device:D1"), "no ledger is left under the absorbed key")

			at := day.Add(29 * time.Minute)
			d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelPush, Limit: 1, Now: &at})
			require.Equal(t, "member:M1", d.Customer)
			if tc.pushed {
				require.Empty(t, d.Offers, "the push cap (1 a day) is the device's and the member's together")
				require.Equal(t, DenyCapDay, d.EmptyReason)
			} else {
				require.Len(t, d.Offers, 1)
				require.Equal(t, "store_purchase_review", d.Offers[0].Scenario, "the device's purchase is the member's now")
			}
		})
	}
}

func TestEveryMergeRekeysTheLedgerAndTheAttributionRecords(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	for _, tc := range []struct {
		name     string
		event    string
		triggers bool
	}{
		{"an identify merges", "identify", true},
		{"a consent naming both identifiers merges", "consent", true},
		{"a page view naming both identifiers merges", "page_view", true},
		{"a merge re-keys without push triggers configured", "page_view", false},
		{"an identify re-keys without push triggers configured", "identify", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, day)
			r.clock = day.Add(30 * time.Minute)
			if !tc.triggers {
				r.eng.opts.Triggers = nil
			}
			r.apply(t, memberKnown(day)...)
			r.apply(t,
				ev("dc", day.Add(-time.Hour), "consent", "app", `{"device":"D1"}`, `,"attrs":{"purpose":"marketing","granted":"true"}`),
				ev("dv", day, "page_view", "app", `{"device":"D1"}`, ""),
			)
			r.policy.Record("device:D1", features.ChannelSMS, "offer-x", day.Add(time.Minute).UnixMilli())
			at := day.Add(2 * time.Minute)
			served := decide(t, r, DecideRequest{IDs: features.IDs{Device: "D1"}, Channel: features.ChannelApp, Limit: 1, Now: &at})
			require.Equal(t, "device:D1", served.Customer)
			require.Len(t, served.Offers, 1, "%+v", served)

			r.apply(t, login("l1", day.Add(3*time.Minute), tc.event))

			require.Nil(t, ledgerOf(r.policy, "device:D1"))
			l := ledgerOf(r.policy, "member:M1")
			require.NotNil(t, l, "the device's contacts are the member's")
			require.Equal(t, []int64{day.Add(time.Minute).UnixMilli()}, l.ch[features.ChannelSMS])
			ok, why := r.policy.Allow("member:M1", features.ChannelSMS, OfferPolicy{ID: "other"}, "", nil, day.Add(4*time.Minute).UnixMilli())
			require.False(t, ok, "the SMS cap (1 a day) counts the device's SMS")
			require.Equal(t, DenyCapDay, why)

			open, ok := r.eng.OpenOffers("member:M1", LocaleEn, day.Add(4*time.Minute).UnixMilli())
			require.True(t, ok)
			require.Len(t, open.Offers, 1, "the offer served to the device is open to the member")
			require.Equal(t, served.DecisionID, open.Offers[0].DecisionID)
			require.Equal(t, "member:M1", open.Customer)
			byDevice, ok := r.eng.OpenOffers("device:D1", LocaleEn, day.Add(4*time.Minute).UnixMilli())
			require.True(t, ok)
			require.Equal(t, open, byDevice, "the device's identifier finds the merged customer")
			require.Empty(t, r.stats.Served("device:D1", nil), "no record is left under the absorbed key")
		})
	}
}

func TestAMergeMovesTheAbsorbedCustomersWakeUp(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	closes := views.Add(5*time.Minute + 48*time.Hour)
	d := `{"device":"D1"}`
	r := newRig(t, views)
	r.clock = views.Add(10 * time.Minute)
	r.apply(t,
		ev("a1", views.Add(-17*24*time.Hour), "consent", "app", d, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("a2", views.Add(-16*24*time.Hour), "store_enter", "store", d, `,"store":"S01"`),
		ev("a3", views, "product_view", "app", d, `,"category":"phones","sku":"P1"`),
		ev("a4", views.Add(5*time.Minute), "product_view", "web", d, `,"category":"phones","sku":"P1"`),
	)
	r.apply(t, memberKnown(views)...)
	require.Contains(t, r.eng.wakes.byID, features.Key("device:D1"))
	require.Equal(t, 1, r.eng.PendingWakes())

	r.apply(t, login("l1", views.Add(6*time.Minute), "identify"))
	require.NotContains(t, r.eng.wakes.byID, features.Key("device:D1"), "the absorbed key's wake-up is gone")
	require.Contains(t, r.eng.wakes.byID, features.Key("member:M1"))
	require.Equal(t, closes.UnixMilli(), r.eng.wakes.byID["member:M1"].at, "the member waits for the device's window")
	require.Equal(t, 1, r.eng.PendingWakes())

	r.clock = closes.Add(time.Second)
	r.eng.OnIdle(r.clock)
	got := r.triggers.triggers(t)
	require.Len(t, got, 1)
	require.Equal(t, "browsed_online_not_bought", got[0].Scenario)
	require.Equal(t, features.Key("member:M1"), got[0].Customer)
	require.Equal(t, fmt.Sprintf("wake@%d", closes.UnixMilli()), got[0].EventID)
}

func TestAMergedCustomerKeepsTheEarlierWakeUp(t *testing.T) {
	for _, tc := range []struct {
		name           string
		from, to, want int64 // 0: none pending
	}{
		{"the absorbed key's earlier wake-up moves", 100, 200, 100},
		{"the survivor's earlier wake-up stays", 300, 200, 200},
		{"the absorbed key's wake-up moves to a survivor that had none", 100, 0, 100},
		{"a survivor's wake-up stays when the absorbed key had none", 0, 200, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q wakeQueue
			if tc.from != 0 {
				q.schedule("device:D1", tc.from)
			}
			if tc.to != 0 {
				q.schedule("member:M1", tc.to)
			}
			q.schedule("member:OTHER", 150)
			q.move("device:D1", "member:M1")
			require.NotContains(t, q.byID, features.Key("device:D1"))
			require.Equal(t, tc.want, q.byID["member:M1"].at)
			require.Equal(t, 2, q.Len())
			first, ok := q.due(1000)
			require.True(t, ok)
			require.Equal(t, min(tc.want, 150), first.at, "the heap is in order after the move")
		})
	}
}

func TestEraseForgetsTheCustomersLedgerWakeUpAndOpenOffers(t *testing.T) {
	views := time.Date(2026, 11, 18, 14, 0, 0, 0, shanghai)
	r := newRig(t, views)
	r.clock = views.Add(30 * time.Minute)
	r.apply(t, browsedAndLeft(views)...)
	r.apply(t, storePurchaseDay(views)[1:]...)
	require.Len(t, r.triggers.triggers(t), 1, "M1 was pushed")
	require.Equal(t, 1, r.eng.PendingWakes(), "M1 waits for the browse window to close")
	at := views.Add(29 * time.Minute)
	served := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 2, Now: &at})
	require.NotEmpty(t, served.Offers)
	open, ok := r.eng.OpenOffers("member:M1", LocaleEn, at.UnixMilli())
	require.True(t, ok)
	require.NotEmpty(t, open.Offers)
	require.NotNil(t, ledgerOf(r.policy, "member:M1"))
	before := r.stats.Snapshot()

	r.apply(t, ev("x", views.Add(29*time.Minute), "erase", "app", `{"member":"M1"}`, ""))
	require.Nil(t, ledgerOf(r.policy, "member:M1"), "the contact ledger is dropped")
	require.Zero(t, r.eng.PendingWakes(), "the wake-up is dropped")
	_, ok = r.eng.OpenOffers("member:M1", LocaleEn, at.UnixMilli())
	require.False(t, ok, "an erased customer is unknown")
	require.Equal(t, before, r.stats.Snapshot(), "/v1/stats counts what was served, naming no customer")
	snap, err := r.stats.MarshalBinary()
	require.NoError(t, err)
	require.False(t, bytes.Contains(snap, []byte("member:M1")), "no attribution record names the customer")
	restored := newTestStats(t)
	require.NoError(t, restored.UnmarshalBinary(snap))
	require.Empty(t, restored.Served("member:M1", nil))
	dedup, err := r.dedup.MarshalBinary()
	require.NoError(t, err)
	require.False(t, bytes.Contains(dedup, []byte("member:M1")), "the push dedup forgets the customer's marks")

	// The member comes back: a new customer, with nothing of the old one.
	back := views.Add(31 * time.Minute)
	r.apply(t, ev("m2", back, "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"marketing","granted":"true"}`))
	open, ok = r.eng.OpenOffers("member:M1", LocaleEn, back.UnixMilli())
	require.True(t, ok)
	require.Empty(t, open.Offers, "the erased customer's offers are not the new one's")
	ok, why := r.policy.Allow("member:M1", features.ChannelPush, OfferPolicy{ID: "other"}, "", nil, back.UnixMilli())
	require.True(t, ok, "the erased customer's push does not count against the new one: %s", why)
}

func TestStatsRekeyAndForgetReachRecordsBeyondTheNewestTouches(t *testing.T) {
	names := func(s *Stats, k features.Key) int {
		n := 0
		for _, r := range s.queue[s.head:] {
			if r.Customer == k {
				n++
			}
		}
		return n
	}
	s, err := NewStats(StatsOptions{MaxTouches: 4})
	require.NoError(t, err)
	// 7 records: the list holds them all (it is cut back to 4 at 8), of
	// which Served returns the newest 4.
	for i := 0; i < 7; i++ {
		s.RecordDecision(served(fmt.Sprint("d", i), "device:D1", "s", "o", features.ChannelApp, "", t0+int64(i)))
	}
	s.RecordDecision(served("m", "member:M1", "s", "o", features.ChannelApp, "", t0+10))

	s.Rekey("device:D1", "member:M1")
	require.Zero(t, names(s, "device:D1"), "no record names the absorbed key")
	require.Equal(t, 8, names(s, "member:M1"))
	got := s.Served("member:M1", nil)
	require.Len(t, got, 4)
	require.Equal(t, "m", got[3].DecisionID, "the newest first, from both histories")

	// More decisions cut the member's list back; erasing the member
	// unlinks the records that left it too.
	for i := 0; i < 3; i++ {
		s.RecordDecision(served(fmt.Sprint("n", i), "member:M1", "s", "o", features.ChannelApp, "", t0+20+int64(i)))
	}
	require.Less(t, len(s.customers["member:M1"]), 11, "the list was cut")
	total := s.Snapshot()
	s.Forget("member:M1")
	require.Zero(t, names(s, "member:M1"))
	require.Empty(t, s.Served("member:M1", nil))
	require.Equal(t, total, s.Snapshot(), "the aggregates stay")
	_, offer, ok := s.LookupCoupon(CouponCode("n2", "o"))
	require.True(t, ok, "an issued coupon still resolves, to an anonymous record")
	require.Equal(t, "o", offer)
	a, ok := s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode("n2", "o"), Channel: features.ChannelPOS, TS: t0 + 30, Revenue: 100})
	require.True(t, ok)
	require.Equal(t, "n2", a.DecisionID)
	require.Equal(t, int64(1), s.Snapshot().Total.Redemptions)
}

func TestAnEraseNamingTwoUnlinkedCustomersForgetsBoth(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(30 * time.Minute)
	r.apply(t, memberKnown(day)...)
	r.apply(t,
		ev("dv", day, "page_view", "app", `{"device":"D1"}`, ""),
		ev("ov", day, "page_view", "app", `{"member":"M2","device":"D2"}`, ""),
	)
	for _, k := range []features.Key{"member:M1", "device:D1", "member:M2"} {
		r.policy.Record(k, features.ChannelSMS, "offer-x", day.Add(time.Minute).UnixMilli())
		r.stats.RecordDecision(served("d-"+string(k), k, "s", "o", features.ChannelApp, "", day.Add(time.Minute).UnixMilli()))
	}

	// The store erases M1 and the anonymous D1 it names (not yet linked to
	// M1), and reports M1; M2 is another member and stays.
	r.apply(t, ev("x", day.Add(2*time.Minute), "erase", "app", `{"member":"M1","device":"D1"}`, ""))
	for _, k := range []features.Key{"member:M1", "device:D1"} {
		_, ok := r.store.ResolveKey(k)
		require.False(t, ok, "%s is erased", k)
		require.Nil(t, ledgerOf(r.policy, k), "%s's ledger is dropped", k)
		require.Empty(t, r.stats.Served(k, nil), "%s's records are unlinked", k)
	}
	require.NotNil(t, ledgerOf(r.policy, "member:M2"), "another customer's ledger stays")
	require.Len(t, r.stats.Served("member:M2", nil), 1)
}

// BenchmarkStatsForget is what an erase costs the attribution records:
// a walk over every record held, under the stats lock.
func BenchmarkStatsForget(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
			s, err := NewStats(StatsOptions{MaxDecisions: n})
			require.NoError(b, err)
			for i := 0; i < n; i++ {
				c := features.Key(fmt.Sprint("member:M", i%(n/4)))
				s.RecordDecision(served(fmt.Sprint("d", i), c, "s", "o", features.ChannelApp, "", t0+int64(i)))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Forget(features.Key(fmt.Sprint("member:M", i%(n/4))))
			}
		})
	}
}

// An erase forgets every customer the store removed: one named only by
// an identifier the event shares with it (a device), whose canonical key
// (its card) the event does not name, too.
func TestAnEraseForgetsEveryCustomerItRemoved(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	a, _ := replayRig(t, t0)
	a.apply(t,
		ev("cc", t0.Add(-48*time.Hour), "consent", "app", `{"card":"C1","device":"D1"}`, replayConsent),
		ev("mc", t0.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, replayConsent),
	)
	d := decide(t, a, DecideRequest{IDs: features.IDs{Card: "C1"}, Channel: features.ChannelApp, Limit: 2, Now: &t0})
	require.NotEmpty(t, d.Offers)
	require.NotNil(t, ledgerOf(a.policy, "card:C1"))
	a.apply(t, ev("x", t0.Add(time.Minute), "erase", "app", `{"member":"M1","device":"D1"}`, ""))
	_, held := a.eng.opts.Store.ResolveKey("card:C1")
	require.False(t, held, "the store erased the card's customer")
	require.Nil(t, ledgerOf(a.policy, "card:C1"), "its contact ledger is forgotten")
	require.Empty(t, a.stats.Served("card:C1", nil), "and its link to the offers served")
}

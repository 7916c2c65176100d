package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/scenarios"
)

// moneySet is the built-in library plus offers whose budgets are money:
// cost 1500 (¥15) against a total of 3000 (two issues) online, and
// against 3000 per store (two issues in each store) in store. An
// always-true scenario proposes them first.
func moneySet(t testing.TB, at time.Time) *scenarios.Set {
	return withOffersForEveryone(t, at, "money", "app", `
  - id: money_online
    type: coupon
    title: {zh-CN: 线上券, en: Online coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 90000
    cost: 1500
    channels: [app]
    fulfilment: online
    budget: {total: 3000}
    prior: 0.9
    category: money_a
  - id: money_instore
    type: coupon
    title: {zh-CN: 到店券, en: In-store coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 80000
    cost: 1500
    channels: [app]
    fulfilment: in_store
    budget: {per_store: 3000}
    prior: 0.9
    category: money_b
`, "money_online", "money_instore")
}

func TestSetCatalogBudgetsAreMoneyEachIssueTakesTheCost(t *testing.T) {
	set := moneySet(t, time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai))
	b := NewBudgets()
	b.SetCatalog(set)

	reserveAll := func(offer, store string) int {
		n := 0
		for i := range 50 {
			if _, ok := b.Reserve(offer, store, fmt.Sprintf("%s-%s-%d", offer, store, i), t0, time.Hour); ok {
				n++
			}
		}
		return n
	}
	require.Equal(t, 2, reserveAll("money_online", ""), "cost 1500 against a total of 3000: two issues, not 3000")
	u, _ := b.Usage("money_online")
	require.Equal(t, BudgetUsage{OfferID: "money_online", Total: Unlimited, Reserved: 2, ValueTotal: 3000, ValueHeld: 3000, Stores: map[string]StoreUsage{}}, u)

	require.Equal(t, 2, reserveAll("money_instore", "S01"), "3000 per store: two issues in S01")
	require.Equal(t, 2, reserveAll("money_instore", "S02"), "and two in S02")
	u, _ = b.Usage("money_instore")
	require.Equal(t, Unlimited, u.ValueTotal, "no total budget")
	require.Equal(t, StoreUsage{Limit: 3000, Reserved: 3000}, u.StoreValue["S01"])
	require.Equal(t, StoreUsage{Limit: Unlimited, Reserved: 2}, u.Stores["S01"], "counts are reported, not limited")

	// A budget on an offer that costs nothing never binds: loading
	// refuses one in a catalog, an embedder may still set it.
	b.SetValueLimit("free", 1, 0)
	require.Equal(t, 50, reserveAll("free", ""), "a budget on a zero-cost offer never binds")
	u, _ = b.Usage("free")
	require.Equal(t, int64(50), u.Reserved)
	require.Equal(t, int64(0), u.ValueHeld)

	// A reload keeps the money issued, and a redemption spends the cost.
	b.SetCatalog(set)
	require.NoError(t, b.Redeem("money_online", "money_online--0", t0+1))
	u, _ = b.Usage("money_online")
	require.Equal(t, int64(1500), u.ValueSpent)
	require.Equal(t, int64(1500), u.ValueHeld)
	require.False(t, b.Available("money_online", "", t0+1))
}

func TestDecideIssuesABudgetInMoneyAtTheOffersCost(t *testing.T) {
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	r := newRig(t, at)
	r.set = moneySet(t, at)
	r.eng.opts.Scenarios = func() *scenarios.Set { return r.set }
	r.eng.opts.Triggers = nil
	r.eng.opts.Holdout = Holdout{}
	r.budgets.SetCatalog(r.set)
	for i := 1; i <= 12; i++ {
		m := fmt.Sprintf(`{"member":"M%d"}`, i)
		r.apply(t,
			ev(fmt.Sprintf("c%d", i), at.Add(-48*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
			ev(fmt.Sprintf("s%d", i), at.Add(-24*time.Hour), "store_enter", "store", m, fmt.Sprintf(`,"store":"S0%d"`, 1+i%2)))
	}
	issued := map[string]int{}
	for i := 1; i <= 12; i++ {
		now := at.Add(time.Duration(i) * time.Minute)
		d := decide(t, r, DecideRequest{IDs: features.IDs{Member: fmt.Sprintf("M%d", i)}, Channel: features.ChannelApp, Limit: 3, Now: &now})
		for _, o := range d.Offers {
			issued[o.OfferID+"@"+o.FulfilmentStore]++
		}
	}
	require.Equal(t, 2, issued["money_online@"], "cost 1500, budget 3000: exactly two coupons (%v)", issued)
	require.Equal(t, 2, issued["money_instore@S01"], "per_store 3000: two in S01 (%v)", issued)
	require.Equal(t, 2, issued["money_instore@S02"], "per_store 3000: two in S02 (%v)", issued)
	u, _ := r.budgets.Usage("money_online")
	require.Equal(t, int64(3000), u.ValueHeld)
}

// v1Snapshot encodes a ledger as budgets snapshot version 1 did, before
// catalog budgets were money: one offer whose catalog money (3000 total,
// 3000 per store) was taken as counts, one spent and one held unit, no
// unit value.
func v1Snapshot() []byte {
	w := snapWriter{buf: []byte{1}}
	w.uvarint(1)
	w.str("money_instore")
	w.varint(3000)      // total: catalog money misread as a count
	w.varint(Unlimited) // valueTotal
	w.varint(0)         // unitValue
	w.varint(1)         // spent
	w.varint(0)         // valueSpent
	w.strInt64Map(map[string]int64{AnyStore: 3000})
	w.strInt64Map(map[string]int64{"S01": 1})
	w.uvarint(1)
	w.str("d-held")
	w.str("S01")
	w.varint(t0 + time.Hour.Milliseconds())
	w.varint(0)
	return w.buf
}

func TestBudgetsRestoreAVersion1SnapshotAsMoney(t *testing.T) {
	set := moneySet(t, time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai))
	check := func(t *testing.T, b *Budgets) {
		t.Helper()
		u, ok := b.Usage("money_instore")
		require.True(t, ok)
		require.Equal(t, Unlimited, u.Total, "the old count limit (money misread) is gone")
		require.Equal(t, int64(1), u.Spent)
		require.Equal(t, int64(1), u.Reserved)
		require.Equal(t, int64(1500), u.ValueSpent, "the spent coupon is priced at the offer's cost")
		require.Equal(t, int64(1500), u.ValueHeld)
		require.Equal(t, StoreUsage{Limit: 3000, Spent: 1500, Reserved: 1500}, u.StoreValue["S01"])
		require.False(t, b.Available("money_instore", "S01", t0), "S01 has issued its 3000")
		require.True(t, b.Available("money_instore", "S02", t0))
		// Re-encoded as version 2, it reads back the same.
		data, err := b.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, byte(budgetsSnapshotVersion), data[0])
		r := NewBudgets()
		require.NoError(t, r.UnmarshalBinary(data))
		v, _ := r.Usage("money_instore")
		require.Equal(t, u, v)
	}
	t.Run("catalog set before the restore, as serve does", func(t *testing.T) {
		b := NewBudgets()
		b.SetCatalog(set)
		require.NoError(t, b.UnmarshalBinary(v1Snapshot()))
		check(t, b)
	})
	t.Run("catalog set after the restore", func(t *testing.T) {
		b := NewBudgets()
		require.NoError(t, b.UnmarshalBinary(v1Snapshot()))
		u, _ := b.Usage("money_instore")
		require.Equal(t, Unlimited, u.Total, "not a count limit of 3000")
		// Unpriced until the catalog says what a unit costs, and it
		// survives a snapshot in between.
		data, err := b.MarshalBinary()
		require.NoError(t, err)
		b = NewBudgets()
		require.NoError(t, b.UnmarshalBinary(data))
		b.SetCatalog(set)
		check(t, b)
	})
}

func TestBudgetsRestoreKeepsTheLimitsSetBeforeIt(t *testing.T) {
	old := NewBudgets()
	old.SetValueLimit("o", 1000, 100)
	old.SetStoreValueLimits("o", map[string]int64{AnyStore: 500})
	_, ok := old.Reserve("o", "A", "d1", t0, time.Hour)
	require.True(t, ok)
	data, err := old.MarshalBinary()
	require.NoError(t, err)

	b := NewBudgets()
	b.SetValueLimit("o", 300, 100) // the current catalog
	require.NoError(t, b.UnmarshalBinary(data))
	u, _ := b.Usage("o")
	require.Equal(t, int64(300), u.ValueTotal, "the current limit, not the snapshot's")
	require.Equal(t, StoreUsage{Limit: Unlimited, Reserved: 100}, u.StoreValue["A"], "the current (no) per-store budget")
	require.Equal(t, int64(100), u.ValueHeld, "the snapshot's state")

	fresh := NewBudgets()
	require.NoError(t, fresh.UnmarshalBinary(data))
	u, _ = fresh.Usage("o")
	require.Equal(t, int64(1000), u.ValueTotal, "an offer without limits here takes the snapshot's")
	require.Equal(t, StoreUsage{Limit: 500, Reserved: 100}, u.StoreValue["A"])
}

func TestBudgetsPerStoreValueBudgetBindsUnderConcurrentReservers(t *testing.T) {
	b := NewBudgets()
	b.SetValueLimit("o", 10_000, 700)
	b.SetStoreValueLimits("o", map[string]int64{AnyStore: 2000, "B": 3500})
	got := hammer(t, b, "o", []string{"A", "B", "C"}, 16, t0, time.Hour)
	require.Len(t, got, 2+5+2, "A and C: 2 × 700 ≤ 2000; B: 5 × 700 = 3500")
	u, _ := b.Usage("o")
	require.Equal(t, StoreUsage{Limit: 3500, Reserved: 3500}, u.StoreValue["B"])
	require.Equal(t, int64(9*700), u.ValueHeld)
}

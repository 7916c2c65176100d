package engine

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/scenarios"
)

const t0 = int64(1_790_000_000_000) // a fixed instant, Unix ms

// hammer runs workers goroutines that each try reservations on their own
// channel until the budget refuses them `refusals` times in a row; it
// returns the granted reservations.
func hammer(t *testing.T, b *Budgets, offer string, stores []string, workers int, now int64, ttl time.Duration) []Reservation {
	t.Helper()
	channels := []string{"app", "web", "miniapp", "push", "tablet", "pos"}
	var (
		mu   sync.Mutex
		got  []Reservation
		seq  atomic.Int64
		wg   sync.WaitGroup
		stop = 50
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused := 0
			for refused < stop {
				n := seq.Add(1)
				store := stores[int(n)%len(stores)]
				id := fmt.Sprintf("%s-%d-%d", channels[w%len(channels)], w, n)
				r, ok := b.Reserve(offer, store, id, now, ttl)
				if !ok {
					refused++
					continue
				}
				refused = 0
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got
}

func TestBudgetsNeverExceededUnderConcurrentReservers(t *testing.T) {
	b := NewBudgets()
	stores := make([]string, 20)
	perStore := map[string]int64{}
	for i := range stores {
		stores[i] = fmt.Sprintf("S%02d", i)
		perStore[stores[i]] = 10
	}
	b.SetLimits("coupon-10", 100, perStore)

	got := hammer(t, b, "coupon-10", stores, 64, t0, time.Minute)
	require.Len(t, got, 100, "every unit of the total budget is used, and no more")
	byStore := map[string]int{}
	ids := map[string]bool{}
	for _, r := range got {
		byStore[r.Store]++
		require.False(t, ids[r.DecisionID], "a decision holds one unit")
		ids[r.DecisionID] = true
	}
	for s, n := range byStore {
		require.LessOrEqual(t, n, 10, "store %s over its budget", s)
	}
	u, ok := b.Usage("coupon-10")
	require.True(t, ok)
	require.Equal(t, int64(100), u.Reserved)
	require.Equal(t, int64(0), u.Spent)

	// Half are redeemed; the rest expire and come back.
	for i, r := range got {
		if i%2 == 0 {
			require.NoError(t, b.Redeem("coupon-10", r.DecisionID, t0+1000))
		}
	}
	require.False(t, b.Available("coupon-10", "S00", t0+2000), "nothing has expired yet")
	require.Equal(t, 50, b.Expire(t0+time.Minute.Milliseconds()))
	u, _ = b.Usage("coupon-10")
	require.Equal(t, int64(50), u.Spent)
	require.Equal(t, int64(0), u.Reserved)

	again := hammer(t, b, "coupon-10", stores, 64, t0+2*time.Minute.Milliseconds(), time.Minute)
	require.Len(t, again, 50, "expired units return and are reserved again; spent ones never")
	u, _ = b.Usage("coupon-10")
	for s, su := range u.Stores {
		require.LessOrEqual(t, su.Spent+su.Reserved, int64(10), "store %s over its budget after re-reservation", s)
	}
}

func TestBudgetsPerStoreLimitBinds(t *testing.T) {
	b := NewBudgets()
	b.SetLimits("exp", 1000, map[string]int64{"A": 5, "B": 7, "C": 3})
	got := hammer(t, b, "exp", []string{"A", "B", "C"}, 16, t0, time.Hour)
	require.Len(t, got, 15)
	u, _ := b.Usage("exp")
	require.Equal(t, int64(5), u.Stores["A"].Reserved)
	require.Equal(t, int64(7), u.Stores["B"].Reserved)
	require.Equal(t, int64(3), u.Stores["C"].Reserved)
	// Online (no store) still fits the total.
	_, ok := b.Reserve("exp", "", "online-1", t0, time.Hour)
	require.True(t, ok)
}

func TestBudgetsReservationLifecycle(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b *Budgets)
	}{
		{"reserving twice for one decision takes one unit and keeps the first expiry", func(t *testing.T, b *Budgets) {
			r1, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			r2, ok := b.Reserve("o", "A", "d1", t0+5000, time.Minute)
			require.True(t, ok)
			require.Equal(t, r1, r2)
			u, _ := b.Usage("o")
			require.Equal(t, int64(1), u.Reserved)
		}},
		{"a reservation without a decision ID is refused", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "", t0, time.Minute)
			require.False(t, ok)
			require.True(t, b.Available("o", "A", t0))
		}},
		{"a released unit can be reserved by someone else", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			_, ok = b.Reserve("o", "A", "d2", t0, time.Minute)
			require.False(t, ok)
			require.NoError(t, b.Release("o", "d1"))
			_, ok = b.Reserve("o", "A", "d2", t0, time.Minute)
			require.True(t, ok)
		}},
		{"an expired unit returns lazily without a sweep", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			_, ok = b.Reserve("o", "A", "d2", t0+59_999, time.Minute)
			require.False(t, ok)
			_, ok = b.Reserve("o", "A", "d2", t0+60_000, time.Minute)
			require.True(t, ok)
		}},
		{"redeeming after expiry fails and does not spend", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			err := b.Redeem("o", "d1", t0+61_000)
			require.True(t, errors.Is(err, ErrReservationExpired), "got %v", err)
			u, _ := b.Usage("o")
			require.Equal(t, int64(0), u.Spent+u.Reserved)
		}},
		{"a second redemption finds nothing", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			require.NoError(t, b.Redeem("o", "d1", t0+1))
			require.ErrorIs(t, b.Redeem("o", "d1", t0+2), ErrNoReservation)
			require.ErrorIs(t, b.Release("o", "d1"), ErrNoReservation)
			require.ErrorIs(t, b.Redeem("unknown", "d1", t0+2), ErrNoReservation)
		}},
		{"a spent unit never returns", func(t *testing.T, b *Budgets) {
			_, ok := b.Reserve("o", "A", "d1", t0, time.Minute)
			require.True(t, ok)
			require.NoError(t, b.Redeem("o", "d1", t0+1))
			require.Equal(t, 0, b.Expire(t0+time.Hour.Milliseconds()))
			require.False(t, b.Available("o", "A", t0+time.Hour.Milliseconds()))
		}},
		{"lowering a limit keeps issued counts", func(t *testing.T, b *Budgets) {
			b.SetLimits("o", 10, nil)
			for i := 0; i < 5; i++ {
				_, ok := b.Reserve("o", "", fmt.Sprint("d", i), t0, time.Minute)
				require.True(t, ok)
			}
			b.SetLimits("o", 3, nil)
			_, ok := b.Reserve("o", "", "late", t0, time.Minute)
			require.False(t, ok)
			u, _ := b.Usage("o")
			require.Equal(t, int64(5), u.Reserved)
		}},
		{"a value budget stops issuing before it would be exceeded", func(t *testing.T, b *Budgets) {
			b.SetLimits("o", Unlimited, nil)
			b.SetValueLimit("o", 250, 100)
			_, ok1 := b.Reserve("o", "", "d1", t0, time.Minute)
			_, ok2 := b.Reserve("o", "", "d2", t0, time.Minute)
			_, ok3 := b.Reserve("o", "", "d3", t0, time.Minute)
			require.Equal(t, []bool{true, true, false}, []bool{ok1, ok2, ok3})
			u, _ := b.Usage("o")
			require.Equal(t, int64(200), u.ValueHeld)
		}},
		{"an offer without limits is unlimited but counted", func(t *testing.T, b *Budgets) {
			for i := 0; i < 50; i++ {
				_, ok := b.Reserve("free", "A", fmt.Sprint("d", i), t0, time.Minute)
				require.True(t, ok)
			}
			u, _ := b.Usage("free")
			require.Equal(t, int64(50), u.Stores["A"].Reserved)
			require.Equal(t, Unlimited, u.Stores["A"].Limit)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudgets()
			b.SetLimits("o", 1, map[string]int64{"A": 1})
			tc.run(t, b)
		})
	}
}

func TestBudgetsSnapshotRoundTrip(t *testing.T) {
	b := NewBudgets()
	b.SetLimits("o", 10, map[string]int64{"A": 3})
	b.SetValueLimit("o", 1000, 50)
	for i := 0; i < 6; i++ {
		store := "A"
		if i >= 3 {
			store = "B"
		}
		_, ok := b.Reserve("o", store, fmt.Sprint("d", i), t0+int64(i), time.Minute)
		require.True(t, ok)
	}
	require.NoError(t, b.Redeem("o", "d0", t0+10))
	data, err := b.MarshalBinary()
	require.NoError(t, err)

	r := NewBudgets()
	require.NoError(t, r.UnmarshalBinary(data))
	want, _ := b.Usage("o")
	got, _ := r.Usage("o")
	require.Equal(t, want, got)
	again, err := r.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, data, again, "encoding is deterministic")

	// Restored reservations still expire, and the limits still hold.
	_, ok := r.Reserve("o", "A", "new", t0+20, time.Minute)
	require.False(t, ok, "store A is full: 1 spent + 2 reserved")
	require.Equal(t, 5, r.Expire(t0+10*time.Minute.Milliseconds()))
	_, ok = r.Reserve("o", "A", "new", t0+10*time.Minute.Milliseconds(), time.Minute)
	require.True(t, ok)

	for i := 0; i < len(data); i++ {
		require.Error(t, NewBudgets().UnmarshalBinary(data[:i]), "truncated at %d", i)
	}
}

func FuzzBudgetsUnmarshal(f *testing.F) {
	b := NewBudgets()
	b.SetLimits("o", 10, map[string]int64{"A": 3})
	b.Reserve("o", "A", "d", t0, time.Minute)
	data, _ := b.MarshalBinary()
	f.Add(data)
	f.Add(v1Snapshot())
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := NewBudgets()
		if err := b.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := b.MarshalBinary()
		require.NoError(t, err)
		r := NewBudgets()
		require.NoError(t, r.UnmarshalBinary(out), "a decoded ledger re-encodes readably")
	})
}

func BenchmarkBudgetsReserveParallel(b *testing.B) {
	for _, offers := range []int{1, 16} {
		b.Run(fmt.Sprintf("offers=%d", offers), func(b *testing.B) {
			bg := NewBudgets()
			names := make([]string, offers)
			for i := range names {
				names[i] = fmt.Sprint("o", i)
				bg.SetLimits(names[i], Unlimited, map[string]int64{"S1": 1 << 40})
			}
			var workers atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				// Each worker reserves and releases under its own decision
				// ID, so the ledger stays small and the benchmark measures
				// the locked path, not growth or ID formatting.
				id := fmt.Sprint("d", workers.Add(1))
				i := 0
				for pb.Next() {
					offer := names[i%offers]
					i++
					if _, ok := bg.Reserve(offer, "S1", id, t0, time.Minute); !ok {
						b.Fatal("refused")
					}
					_ = bg.Release(offer, id)
				}
			})
		})
	}
}

func TestBudgetsAnyStoreLimitsEveryStoreSeparately(t *testing.T) {
	b := NewBudgets()
	b.SetLimits("o", Unlimited, map[string]int64{AnyStore: 2})
	for _, store := range []string{"S1", "S2"} {
		for i := 0; i < 2; i++ {
			_, ok := b.Reserve("o", store, fmt.Sprintf("%s-%d", store, i), 0, time.Hour)
			require.True(t, ok)
		}
		_, ok := b.Reserve("o", store, store+"-x", 0, time.Hour)
		require.False(t, ok, "store %s is at its own limit", store)
	}
	u, _ := b.Usage("o")
	for _, store := range []string{"S1", "S2"} {
		require.Equal(t, StoreUsage{Limit: 2, Reserved: 2}, u.Stores[store], "usage reports the limit that binds store %s", store)
	}
}

func TestSetCatalogTakesLimitsFromTheOffers(t *testing.T) {
	set, err := scenarios.LoadBuiltin(time.Now())
	require.NoError(t, err)
	b := NewBudgets()
	b.SetCatalog(set)
	b.SetCatalog(nil) // a missing set changes nothing
	for _, o := range set.Offers {
		u, ok := b.Usage(o.ID)
		require.True(t, ok, o.ID)
		// The catalog's budget is money (minor units), each issue taking
		// the offer's cost; it sets no count limit.
		require.Equal(t, Unlimited, u.Total, o.ID)
		if o.Budget.Total > 0 {
			require.Equal(t, o.Budget.Total, u.ValueTotal, o.ID)
		} else {
			require.Equal(t, Unlimited, u.ValueTotal, o.ID)
		}
		if o.Budget.PerStore > 0 {
			_, _ = b.Reserve(o.ID, "S01", "probe", t0, time.Minute)
			u, _ = b.Usage(o.ID)
			require.Equal(t, o.Budget.PerStore, u.StoreValue["S01"].Limit, o.ID)
			require.Equal(t, o.Cost, u.StoreValue["S01"].Reserved, o.ID)
		}
	}
}

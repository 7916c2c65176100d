package features

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inTimeOrder returns evs sorted by event time (stable: ties keep their
// order), the order a crash-restart's catch-up of a sorted log applies.
func inTimeOrder(evs []Event) []Event {
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(a, b Event) int { return int(a.TS - b.TS) })
	return out
}

// restarted applies evs to a new store, taking a snapshot after the
// first half and going on from the restored snapshot.
func restarted(t *testing.T, evs []Event) *Store {
	t.Helper()
	s := newTestStore(t)
	apply(t, s, evs[:len(evs)/2]...)
	var snap bytes.Buffer
	require.NoError(t, s.WriteSnapshot(&snap, SnapshotMeta{}, nil))
	r := newTestStore(t)
	_, _, err := r.ReadSnapshot(&snap)
	require.NoError(t, err)
	apply(t, r, evs[len(evs)/2:]...)
	return r
}

// requireOrderIndependent applies evs (all within the allowed lateness
// of each other) in event-time order, then in many shuffled orders, some
// with a snapshot and restore half way, and requires every customer's
// features to be the time-ordered pass's.
func requireOrderIndependent(t *testing.T, evs []Event, seeds uint64) {
	t.Helper()
	ref := newTestStore(t)
	apply(t, ref, inTimeOrder(evs)...)
	now := t0 + 2*time.Hour.Milliseconds()
	want := allJSON(t, ref, now)
	for seed := range seeds {
		perm := slices.Clone(evs)
		rand.New(rand.NewPCG(seed, 9)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		s := newTestStore(t)
		apply(t, s, perm...)
		require.Equal(t, want, allJSON(t, s, now), "order %d", seed)
		require.Equal(t, want, allJSON(t, restarted(t, perm), now), "order %d, restarted half way", seed)
	}
}

// TestCartQuantityIsIndependentOfOrderWithinLateness: a line emptied and
// added again holds only the adds after its newest removal or order,
// whichever order the adds, removals and orders arrive in. A removal
// that arrived after a later re-add used to leave both adds in the line
// (quantity 2, value 200 where the ordered pass has 1 and 100).
func TestCartQuantityIsIndependentOfOrderWithinLateness(t *testing.T) {
	m := member("M1")
	qty := func(q int32) evOpt { return func(e *Event) { e.Quantity = q } }
	t.Run("an add, its removal and a re-add", func(t *testing.T) {
		evs := []Event{
			mk("a1", 0, AddToCart, ChannelApp, m, sku("K1"), amount(100)),
			mk("r", 2*time.Minute, RemoveFromCart, ChannelApp, m, sku("K1")),
			mk("a2", 4*time.Minute, AddToCart, ChannelApp, m, sku("K1"), amount(100)),
		}
		late := newTestStore(t)
		apply(t, late, evs[0], evs[2], evs[1])
		var v View
		require.True(t, late.ViewKey("member:M1", t0+time.Hour.Milliseconds(), &v))
		require.Equal(t, []CartItem{{SKU: "K1", Quantity: 1, Amount: 100, TS: t0 + 4*time.Minute.Milliseconds()}}, v.Cart)
		require.Equal(t, int64(100), v.CartValue)
		requireOrderIndependent(t, evs, 30)
	})
	t.Run("several lines, removals, a till purchase and an order", func(t *testing.T) {
		requireOrderIndependent(t, []Event{
			mk("a1", 0, AddToCart, ChannelApp, m, sku("K1"), amount(100), qty(2)),
			mk("a2", time.Minute, AddToCart, ChannelApp, m, sku("K2"), amount(300)),
			mk("a3", 2*time.Minute, AddToCart, ChannelApp, m, sku("K1"), amount(50)),
			mk("r1", 3*time.Minute, RemoveFromCart, ChannelApp, m, sku("K1")),
			mk("a4", 4*time.Minute, AddToCart, ChannelApp, m, sku("K1"), amount(70)),
			mk("p", 5*time.Minute, PosPurchase, ChannelPOS, m, sku("K2"), store("S1"), amount(300)),
			mk("a5", 6*time.Minute, AddToCart, ChannelApp, m, sku("K2"), amount(310)),
			mk("o", 7*time.Minute, Order, ChannelApp, m, amount(380)),
			mk("a6", 8*time.Minute, AddToCart, ChannelApp, m, sku("K3"), amount(20)),
			mk("a7", 9*time.Minute, AddToCart, ChannelApp, m, sku("K1"), amount(90), qty(3)),
		}, 60)
	})
	t.Run("the adds and the removal under two identities linked late", func(t *testing.T) {
		d := IDs{Device: "D1"}
		requireOrderIndependent(t, []Event{
			mk("a1", 0, AddToCart, ChannelApp, d, sku("K1"), amount(100)),
			mk("r", 2*time.Minute, RemoveFromCart, ChannelApp, m, sku("K1")),
			mk("a2", 4*time.Minute, AddToCart, ChannelApp, d, sku("K1"), amount(100)),
			mk("a3", 5*time.Minute, AddToCart, ChannelApp, m, sku("K1"), amount(40)),
			mk("o", 6*time.Minute, Order, ChannelApp, d, amount(10)),
			mk("a4", 7*time.Minute, AddToCart, ChannelApp, d, sku("K2"), amount(5)),
			mk("l", 8*time.Minute, Identify, ChannelApp, IDs{Member: "M1", Device: "D1"}),
		}, 60)
	})
}

// TestAMergeKeepsTheNewestOfEachBoundedList: when two identities are
// linked and together hold more SKUs, stores or cart lines than a
// customer keeps, the merged customer keeps what one identity applying
// every event would: the SKUs viewed last, the most visited stores, the
// lines added last. The merge used to keep the absorbing identity's full
// list and drop the other's newer entries.
func TestAMergeKeepsTheNewestOfEachBoundedList(t *testing.T) {
	m, d := member("M1"), IDs{Device: "D1"}
	both := IDs{Member: "M1", Device: "D1"}
	var old, newer []Event
	at := func(i int) time.Duration { return time.Duration(i) * time.Second }
	for i := range maxSKUs {
		old = append(old, mk(fmt.Sprintf("v%d", i), at(i), ProductView, ChannelApp, m, sku(fmt.Sprintf("OLD%d", i))))
	}
	for i := range maxCart {
		old = append(old, mk(fmt.Sprintf("c%d", i), at(10+i), AddToCart, ChannelApp, m, sku(fmt.Sprintf("C%d", i)), amount(1)))
	}
	for i := range maxStores {
		old = append(old, mk(fmt.Sprintf("s%d", i), 3*time.Hour*time.Duration(i), StoreEnter, ChannelStore, m, store(fmt.Sprintf("S%d", i))))
	}
	last := 3 * time.Hour * maxStores
	newer = append(newer,
		mk("dv", last, ProductView, ChannelApp, d, sku("NEW")),
		mk("dc", last, AddToCart, ChannelApp, d, sku("CNEW"), amount(7)),
		mk("ds1", last, StoreEnter, ChannelStore, d, store("S9")),
		mk("ds2", last+3*time.Hour, StoreEnter, ChannelStore, d, store("S9")),
	)
	now := t0 + (last + 4*time.Hour).Milliseconds()

	// One identity from the start: every event names both identifiers.
	one := newTestStore(t)
	for _, evs := range [][]Event{old, newer} {
		for _, ev := range evs {
			ev.IDs = both
			apply(t, one, ev)
		}
	}
	// Two identities, linked at the end.
	linked := newTestStore(t)
	apply(t, linked, old...)
	apply(t, linked, newer...)
	apply(t, linked, mk("l", last+3*time.Hour, Identify, ChannelApp, both))

	var want, got View
	require.True(t, one.ViewKey("member:M1", now, &want))
	require.True(t, linked.ViewKey("member:M1", now, &got))
	require.Equal(t, want.ViewedNotBoughtSKU, got.ViewedNotBoughtSKU)
	require.Contains(t, fmt.Sprint(got.ViewedNotBoughtSKU), "NEW")
	require.Equal(t, "S9", want.HomeStore)
	require.Equal(t, want.HomeStore, got.HomeStore)
	require.Equal(t, want.Cart, got.Cart)
	require.Equal(t, want.CartValue, got.CartValue)
	require.Len(t, got.Cart, maxCart)
	require.Equal(t, "CNEW", got.Cart[len(got.Cart)-1].SKU)
}

// TestAnErasedIdentifierDoesNotComeBackFromAnOlderEvent: an event dated
// before an erase that arrives after it (within the lateness) used to
// create the customer again, with its identifiers; in event-time order it
// came first and was erased. It is now refused too_late, also after a
// restart, while an event dated after the erase starts a new customer.
func TestAnErasedIdentifierDoesNotComeBackFromAnOlderEvent(t *testing.T) {
	phone := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	view := mk("v", 0, ProductView, ChannelApp, IDs{Member: "M1", Phone: phone}, sku("K1"))
	viewByPhone := mk("vp", time.Minute, ProductView, ChannelApp, IDs{Phone: phone}, sku("K2"))
	erase := mk("x", 2*time.Minute, Erase, ChannelApp, member("M1"))
	again := mk("n", 3*time.Minute, ProductView, ChannelApp, member("M1"), sku("K3"))
	now := t0 + time.Hour.Milliseconds()

	for _, tc := range []struct {
		name    string
		applied []Event // in this order
		refused []Event // then these, each refused too_late
		restart bool    // snapshot and restore between the two
		want    int     // customers left
	}{
		{"the event before the erase arrives after it", []Event{erase}, []Event{view}, false, 0},
		{"an identifier linked before the erase, named alone", []Event{view, erase}, []Event{viewByPhone}, false, 0},
		{"after a restart", []Event{view, erase}, []Event{viewByPhone}, true, 0},
		{"a new customer started after the erase stays as it is", []Event{view, erase, again}, []Event{viewByPhone, view}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			apply(t, s, tc.applied...)
			if tc.restart {
				var snap bytes.Buffer
				require.NoError(t, s.WriteSnapshot(&snap, SnapshotMeta{}, nil))
				s = newTestStore(t)
				_, _, err := s.ReadSnapshot(&snap)
				require.NoError(t, err)
			}
			for _, ev := range tc.refused {
				_, rej := s.Apply(&ev)
				require.NotNil(t, rej, "event %s", ev.ID)
				require.Equal(t, ReasonTooLate, rej.Code)
				require.Contains(t, rej.Message, "older than the erasure of its customer")
			}
			require.Equal(t, tc.want, s.Len())
			_, ok := s.ResolveKey(MakeKey(NSPhone, phone))
			require.False(t, ok, "the erased phone number is not known again")
			if tc.want > 0 {
				var v View
				require.True(t, s.ViewKey("member:M1", now, &v))
				require.Equal(t, []Key{"member:M1"}, v.Linked)
				require.Equal(t, uint32(1), v.Counts[Online][ProductView][WLifetime], "only the view after the erase")
			}
		})
	}

	t.Run("the erase and the events before it in other orders", func(t *testing.T) {
		// Not every order: an event linking the phone to the member that
		// arrives after the erase is refused, and the link with it, so a
		// view by the phone alone stays a customer of its own. And an
		// erase arriving after an event newer than it still deletes
		// everything: what the customer did after the erase cannot be
		// told apart from what they did before, and an erase must delete.
		for _, order := range [][]Event{
			{view, viewByPhone, erase},
			{view, erase, viewByPhone},
			{viewByPhone, view, erase},
		} {
			s := newTestStore(t)
			for _, ev := range order {
				s.Apply(&ev)
			}
			require.Zero(t, s.Len(), "order %s %s %s", order[0].ID, order[1].ID, order[2].ID)
		}
	})

	t.Run("tombstones are kept only while an older event may still arrive", func(t *testing.T) {
		s := newTestStore(t)
		apply(t, s, view, erase)
		require.Len(t, s.tombs, 2, "the member ID and the phone linked to it, by hash")
		// The stream moves on past the lateness; the next erase forgets
		// the first one's tombstones.
		apply(t, s,
			mk("o", 20*time.Minute, PageView, ChannelWeb, member("M2")),
			mk("x2", 21*time.Minute, Erase, ChannelWeb, member("M2")),
		)
		require.Len(t, s.tombs, 1)
		_, ok := s.tombs[hashKey("member:M2")]
		require.True(t, ok)
	})
}

// TestVisitsAreIndependentOfOrderWithinLateness: the newest visit, the
// visit counts per store (and so the home store) are those of the
// offline events in event-time order, whichever order they arrive in
// within the lateness. A late store_enter at another store used to
// become the newest visit although a newer event was at the first
// store, and a late store_enter of an existing visit counted a new visit.
func TestVisitsAreIndependentOfOrderWithinLateness(t *testing.T) {
	m := member("M1")
	t.Run("a late visit to another store splits the visit it falls in", func(t *testing.T) {
		evs := []Event{
			mk("e1", 0, StoreEnter, ChannelStore, m, store("S1")),
			mk("e2", 5*time.Minute, StoreEnter, ChannelStore, m, store("S2")),
			mk("e3", 10*time.Minute, Dwell, ChannelStore, m, store("S1"), cat("shoes"), dwell(60)),
		}
		late := newTestStore(t)
		apply(t, late, evs[0], evs[2], evs[1])
		var v View
		require.True(t, late.ViewKey("member:M1", t0+time.Hour.Milliseconds(), &v))
		require.Equal(t, "S1", v.LastVisit.Store)
		require.Equal(t, t0+10*time.Minute.Milliseconds(), v.LastVisit.Start)
		require.Equal(t, "S1", v.HomeStore, "two visits to S1")
		requireOrderIndependent(t, evs, 12)
	})
	t.Run("a late re-entry is part of its visit", func(t *testing.T) {
		requireOrderIndependent(t, []Event{
			mk("e1", 0, StoreEnter, ChannelStore, m, store("S1")),
			mk("e2", 4*time.Minute, StoreEnter, ChannelStore, m, store("S1")),
			mk("e3", 6*time.Minute, StoreEnter, ChannelStore, m, store("S2")),
		}, 12)
	})
	t.Run("a busy store visit under two identities", func(t *testing.T) {
		d := IDs{Device: "D1"}
		requireOrderIndependent(t, []Event{
			mk("e1", 0, StoreEnter, ChannelStore, m, store("S1")),
			mk("e2", time.Minute, Dwell, ChannelStore, d, store("S1"), cat("baby"), dwell(50)),
			mk("e3", 2*time.Minute, StoreExit, ChannelStore, m, store("S1"), dwell(170)),
			mk("e4", 3*time.Minute, StoreEnter, ChannelStore, d, store("S2")),
			mk("e5", 4*time.Minute, TryOn, ChannelStore, d, store("S2"), sku("K1"), cat("shoes")),
			mk("e6", 5*time.Minute, PosPurchase, ChannelPOS, d, store("S2"), cat("shoes"), amount(900)),
			mk("e7", 6*time.Minute, Dwell, ChannelStore, m, store("S1"), cat("home"), dwell(20)),
			mk("e8", 7*time.Minute, Identify, ChannelApp, IDs{Member: "M1", Device: "D1"}),
		}, 80)
	})
}

// TestVisitsOverMonthsMatchTheTimeOrderedPass applies months of offline
// and online events of one customer — gaps from seconds to days, so
// visits end and the kept events fold into the base, neighbours less
// than the lateness apart swapped — with a snapshot and restore half
// way, and requires the features of a pass in event-time order.
func TestVisitsOverMonthsMatchTheTimeOrderedPass(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	m := member("M1")
	types := []EventType{StoreEnter, Dwell, ProductTouch, TryOn, PosPurchase, StoreExit, ProductView, AddToCart}
	var evs []Event
	at := time.Duration(0)
	for i := range 600 {
		switch x := r.IntN(10); {
		case x < 6:
			at += time.Duration(1+r.IntN(240)) * time.Second
		case x < 9:
			at += time.Duration(1+r.IntN(180)) * time.Minute
		default:
			at += time.Duration(1+r.IntN(5*24)) * time.Hour
		}
		typ := types[r.IntN(len(types))]
		ch := ChannelStore
		if typ == ProductView || typ == AddToCart {
			ch = ChannelApp
		} else if typ == PosPurchase {
			ch = ChannelPOS
		}
		evs = append(evs, mk(fmt.Sprintf("e%d", i), at, typ, ch, m,
			store(fmt.Sprintf("S%d", r.IntN(6))), cat([]string{"shoes", "baby", "home"}[r.IntN(3)]),
			sku(fmt.Sprintf("K%d", r.IntN(9))), dwell(int32(1+r.IntN(900))), amount(int64(1+r.IntN(5000)))))
	}
	ref := newTestStore(t)
	apply(t, ref, evs...)
	for i := 1; i < len(evs); i++ {
		if evs[i].TS-evs[i-1].TS < 5*60_000 && r.IntN(2) == 0 {
			evs[i], evs[i-1] = evs[i-1], evs[i]
		}
	}
	now := evs[len(evs)-1].TS + time.Hour.Milliseconds()
	require.Equal(t, allJSON(t, ref, now), allJSON(t, restarted(t, evs), now))
}

// Erasures and consents are applied however late they arrive: a CRM's
// batch of opt-outs dated hours ago was refused too_late, silently for
// the sender (HTTP had answered 202), and the customer stayed opted in.
func TestLateConsentsAndErasuresAreApplied(t *testing.T) {
	now := t0 + 2*time.Hour.Milliseconds()
	newer := mk("p", 2*time.Hour, PageView, ChannelApp, member("M1"))

	s := newTestStore(t)
	apply(t, s,
		mk("c1", 0, Consent, ChannelApp, member("M1"), attrs("purpose", "marketing", "granted", "true")),
		newer,
		mk("c2", 30*time.Minute, Consent, ChannelApp, member("M1"), attrs("purpose", "marketing", "granted", "false")),
		// Older than the withdrawal: it changes nothing, in any order.
		mk("c0", 10*time.Minute, Consent, ChannelApp, member("M1"), attrs("purpose", "marketing", "granted", "true")),
	)
	var v View
	require.True(t, s.ViewKey("member:M1", now, &v))
	require.Zero(t, v.Consent[PurposeMarketing], "the late withdrawal holds")

	late := mk("late", time.Hour, PageView, ChannelApp, member("M1"))
	_, rej := s.Apply(&late)
	require.NotNil(t, rej, "other late events are still refused")
	require.Equal(t, ReasonTooLate, rej.Code)

	apply(t, s, mk("x", 20*time.Minute, Erase, ChannelApp, member("M1")))
	require.Zero(t, s.Len(), "a late erase erases")
}

// A SKU bought is not "viewed, not bought", whatever order the view and
// the purchase arrive in and whichever identity made each: the purchase
// was lost when it came before the view, or from an identity linked later.
func TestABoughtSKUIsNotViewedNotBoughtInAnyOrder(t *testing.T) {
	now := t0 + time.Hour.Milliseconds()
	view := mk("v", 0, ProductView, ChannelApp, IDs{Device: "D1"}, sku("K1"), cat("phones"))
	buy := mk("b", 2*time.Minute, PosPurchase, ChannelPOS, IDs{Card: "C1"}, sku("K1"), cat("phones"), store("S01"), amount(100))
	link := mk("l", 3*time.Minute, Identify, ChannelApp, IDs{Member: "M1", Device: "D1", Card: "C1"})
	for _, order := range [][]Event{{view, buy, link}, {buy, view, link}, {link, buy, view}, {link, view, buy}, {buy, link, view}} {
		s := newTestStore(t)
		apply(t, s, order...)
		var v View
		require.True(t, s.ViewKey("member:M1", now, &v))
		require.Empty(t, v.ViewedNotBoughtSKU, "order %s%s%s", order[0].ID, order[1].ID, order[2].ID)
	}
	// Viewed after the purchase: viewed, not bought (again).
	s := newTestStore(t)
	apply(t, s, buy, link, mk("v2", 4*time.Minute, ProductView, ChannelApp, IDs{Device: "D1"}, sku("K1"), cat("phones")))
	var v View
	require.True(t, s.ViewKey("member:M1", now, &v))
	require.Len(t, v.ViewedNotBoughtSKU, 1)
}

// An erase always applies, even one older than an erase of one of the
// identifiers it names: the others it names are erased too.
func TestAnEraseOlderThanAnotherIsStillApplied(t *testing.T) {
	s := newTestStore(t)
	apply(t, s,
		mk("d", 0, PageView, ChannelWeb, IDs{Device: "D1"}),
		mk("m", time.Minute, PageView, ChannelApp, IDs{Member: "M1"}),
		mk("x2", 10*time.Minute, Erase, ChannelApp, IDs{Member: "M1"}),
		mk("x1", 5*time.Minute, Erase, ChannelApp, IDs{Member: "M1", Device: "D1"}),
	)
	_, ok := s.ResolveKey(MakeKey(NSDevice, "D1"))
	require.False(t, ok, "device D1 is erased")
}

// An erase naming another member's shared card erases the member only,
// and leaves no tombstone on the card: the other member's events naming
// it, late within the lateness, are applied.
func TestAnEraseLeavesAnotherMembersSharedCardAlone(t *testing.T) {
	s := newTestStore(t)
	apply(t, s,
		mk("b1", 0, PageView, ChannelApp, IDs{Member: "B", Card: "C1"}),
		mk("a1", time.Minute, PageView, ChannelApp, IDs{Member: "A"}),
		mk("x", 5*time.Minute, Erase, ChannelApp, IDs{Member: "A", Card: "C1"}),
		mk("b2", 4*time.Minute, PosPurchase, ChannelPOS, IDs{Card: "C1"}, store("S1"), amount(100)),
	)
	require.False(t, s.Erased(MakeKey(NSCard, "C1")))
	require.True(t, s.Erased(MakeKey(NSMember, "A")))
	c, ok := s.ResolveKey(MakeKey(NSCard, "C1"))
	require.True(t, ok)
	require.Equal(t, Key("member:B"), c)
}

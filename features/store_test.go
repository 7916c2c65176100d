package features

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()

func newTestStore(t testing.TB) *Store {
	s, err := NewStore(Options{})
	require.NoError(t, err)
	return s
}

type evOpt func(*Event)

func mk(id string, at time.Duration, typ EventType, ch Channel, ids IDs, opts ...evOpt) Event {
	ev := Event{ID: id, TS: t0 + at.Milliseconds(), Type: typ, Channel: ch, IDs: ids}
	for _, o := range opts {
		o(&ev)
	}
	return ev
}

func cat(c string) evOpt   { return func(e *Event) { e.Category = c } }
func sku(s string) evOpt   { return func(e *Event) { e.SKU = s } }
func store(s string) evOpt { return func(e *Event) { e.Store = s } }
func amount(a int64) evOpt { return func(e *Event) { e.Amount = a } }
func dwell(d int32) evOpt  { return func(e *Event) { e.DwellS = d } }
func attrs(kv ...string) evOpt {
	return func(e *Event) {
		e.Attrs = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Attrs[kv[i]] = kv[i+1]
		}
	}
}

func member(m string) IDs { return IDs{Member: m} }

func apply(t testing.TB, s *Store, evs ...Event) {
	t.Helper()
	for i := range evs {
		_, rej := s.Apply(&evs[i])
		require.Nil(t, rej, "event %s", evs[i].ID)
	}
}

func viewJSONOf(t testing.TB, s *Store, k Key, now int64) string {
	t.Helper()
	var v View
	require.True(t, s.ViewKey(k, now, &v), "customer %s", k)
	b, err := json.Marshal(&v)
	require.NoError(t, err)
	return string(b)
}

func TestWindowsCountExactlyAtTheirResolution(t *testing.T) {
	s := newTestStore(t)
	ids := member("M1")
	apply(t, s,
		mk("e1", -40*24*time.Hour, ProductView, ChannelApp, ids, cat("shoes")),
		mk("e2", -10*24*time.Hour, ProductView, ChannelApp, ids, cat("shoes")),
		mk("e3", -3*24*time.Hour, ProductView, ChannelApp, ids, cat("shoes")),
		mk("e4", -5*time.Hour, ProductView, ChannelApp, ids, cat("shoes")),
		mk("e5", -30*time.Minute, ProductView, ChannelWeb, ids, cat("shoes")),
		mk("e6", -1*time.Minute, ProductView, ChannelApp, ids, cat("bags")),
		mk("e7", 0, PosPurchase, ChannelPOS, ids, cat("shoes"), store("S1"), amount(12_000)),
	)
	var v View
	require.True(t, s.ViewKey("member:M1", t0, &v))
	require.Equal(t, [NumWindows]uint32{2, 3, 4, 5, 6}, v.Counts[Online][ProductView])
	require.Equal(t, [NumWindows]int64{12_000, 12_000, 12_000, 12_000, 12_000}, v.Sums[Offline][PosPurchase])
	// Seen a day later, the hour and day windows have moved on.
	require.True(t, s.ViewKey("member:M1", t0+25*3600_000, &v))
	require.Equal(t, [NumWindows]uint32{0, 0, 4, 5, 6}, v.Counts[Online][ProductView])
	require.Equal(t, []Interest{{Name: "bags", Last: t0 - 60_000, Count: 1}}, v.ViewedNotBought, "shoes were bought in store after the views")
	require.Equal(t, "S1", v.HomeStore)
	require.Equal(t, int64(144), v.Points, "1.2 points per yuan in store")
}

func TestDuplicatesAreAppliedOnce(t *testing.T) {
	s := newTestStore(t)
	ev := mk("e1", 0, AddToCart, ChannelApp, member("M1"), sku("K1"), cat("shoes"), amount(100))
	apply(t, s, ev)
	_, rej := s.Apply(&ev)
	require.NotNil(t, rej)
	require.Equal(t, ReasonDuplicate, rej.Code)
	var v View
	s.ViewKey("member:M1", t0, &v)
	require.Equal(t, uint32(1), v.Counts[Online][AddToCart][WLifetime])
	require.Equal(t, int64(1), s.Stats().Rejected[ReasonDuplicate])
}

func TestEventsPastLatenessAreRejectedTooLate(t *testing.T) {
	s := newTestStore(t)
	apply(t, s, mk("e1", time.Hour, PageView, ChannelWeb, member("M1")))
	apply(t, s, mk("e2", 51*time.Minute, PageView, ChannelWeb, member("M1")))
	_, rej := s.Apply(ptr(mk("e3", 49*time.Minute, PageView, ChannelWeb, member("M1"))))
	require.NotNil(t, rej)
	require.Equal(t, ReasonTooLate, rej.Code)
	require.Equal(t, int64(1), s.Stats().Rejected[ReasonTooLate])
}

func ptr[T any](v T) *T { return &v }

// journey is a mixed set of events for a few customers linked by an
// identify event; used to check order-independence.
func journey() []Event {
	dev := IDs{Device: "D1"}
	m := member("M1")
	return []Event{
		mk("j1", 0, PageView, ChannelWeb, dev),
		mk("j2", time.Minute, ProductView, ChannelWeb, dev, sku("K1"), cat("phones")),
		mk("j3", 2*time.Minute, AddToCart, ChannelWeb, dev, sku("K1"), cat("phones"), amount(399_900)),
		mk("j4", 3*time.Minute, Consent, ChannelApp, m, attrs("purpose", "marketing", "granted", "true", "channels", "app,push")),
		mk("j5", 4*time.Minute, StoreEnter, ChannelStore, IDs{Card: "C9"}, store("S2")),
		mk("j6", 5*time.Minute, Dwell, ChannelStore, IDs{Card: "C9"}, store("S2"), cat("phones"), dwell(900)),
		mk("j7", 6*time.Minute, ProductTouch, ChannelStore, IDs{Card: "C9"}, store("S2"), sku("K2"), cat("phones")),
		mk("j8", 7*time.Minute, Identify, ChannelApp, IDs{Member: "M1", Device: "D1"}),
		mk("j9", 8*time.Minute, Identify, ChannelStore, IDs{Member: "M1", Card: "C9"}),
		mk("j10", 9*time.Minute, OfferImpression, ChannelApp, m, func(e *Event) { e.OfferID = "O1" }),
	}
}

func TestMergesInEitherOrderGiveTheSameState(t *testing.T) {
	evs := journey()
	ref := newTestStore(t)
	apply(t, ref, evs...)
	want := viewJSONOf(t, ref, "member:M1", t0+time.Hour.Milliseconds())
	require.Contains(t, want, `"linked":["card:C9","device:D1","member:M1"]`)

	// Identify events first, then the rest: one customer from the start.
	for seed := uint64(0); seed < 20; seed++ {
		perm := append([]Event(nil), evs...)
		r := rand.New(rand.NewPCG(seed, 1))
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		s := newTestStore(t)
		apply(t, s, perm...)
		got := viewJSONOf(t, s, "device:D1", t0+time.Hour.Milliseconds())
		require.JSONEq(t, want, got, "order %d", seed)
		require.Equal(t, 1, s.Len())
	}
}

// TestAVisitSplitAcrossIdentitiesMergesInAnyOrder: one store visit whose
// events came under two identities (the member at the till, their
// device's dwell) is one visit once they are linked, whichever order the
// events and the link arrive in. The merge kept only the identity whose
// visit ended last, and a crash-restart's catch-up (another order) then
// showed a different last visit than a clean pass.
func TestAVisitSplitAcrossIdentitiesMergesInAnyOrder(t *testing.T) {
	m, dev := member("M2"), IDs{Device: "D2"}
	evs := []Event{
		mk("v1", 0, StoreEnter, ChannelStore, m, store("S4")),
		mk("v2", time.Minute, ProductTouch, ChannelStore, m, store("S4"), cat("baby"), sku("K5")),
		mk("v3", 2*time.Minute, PosPurchase, ChannelPOS, m, store("S4"), cat("phones"), sku("K1"), amount(28_704)),
		mk("v4", 6*time.Minute, Dwell, ChannelStore, dev, store("S4"), cat("baby"), dwell(297)),
		mk("v5", 3*time.Minute, Dwell, ChannelStore, m, store("S4"), cat("home"), dwell(38)),
		mk("v6", 8*time.Minute, Identify, ChannelApp, IDs{Member: "M2", Device: "D2"}),
	}
	ref := newTestStore(t)
	apply(t, ref, evs[5], evs[0], evs[1], evs[2], evs[4], evs[3]) // linked first, in time order
	want := viewJSONOf(t, ref, "member:M2", t0+2*time.Hour.Milliseconds())
	require.Contains(t, want, `"dwell_s":335,"purchased":true`)
	for seed := uint64(0); seed < 30; seed++ {
		perm := append([]Event(nil), evs...)
		rand.New(rand.NewPCG(seed, 2)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		s := newTestStore(t)
		apply(t, s, perm...)
		require.JSONEq(t, want, viewJSONOf(t, s, "member:M2", t0+2*time.Hour.Milliseconds()), "order %d", seed)
	}
}

func TestTwoMembersSharingADeviceStayTwoCustomers(t *testing.T) {
	s := newTestStore(t)
	apply(t, s,
		mk("a", 0, Identify, ChannelApp, IDs{Member: "M1", Device: "TABLET"}),
		mk("b", time.Minute, Identify, ChannelApp, IDs{Member: "M2", Device: "TABLET"}),
		mk("c", 2*time.Minute, ProductView, ChannelApp, IDs{Member: "M2", Device: "TABLET"}, cat("toys")),
		mk("d", 3*time.Minute, Identify, ChannelApp, IDs{Card: "C2", Device: "TABLET"}),
	)
	require.Equal(t, 2, s.Len())
	k, _ := s.ResolveKey("device:TABLET")
	require.Equal(t, Key("member:M1"), k, "the device stays with its first member")
	var v View
	s.ViewKey("member:M2", t0+time.Hour.Milliseconds(), &v)
	require.Equal(t, uint32(1), v.Counts[Online][ProductView][WLifetime])
	require.Equal(t, []Key{"member:M2"}, v.Linked)
}

func TestEraseForgetsTheCustomer(t *testing.T) {
	s := newTestStore(t)
	apply(t, s, mk("a", 0, Identify, ChannelApp, IDs{Member: "M1", Device: "D1"}), mk("b", time.Minute, Erase, ChannelApp, member("M1")))
	require.Equal(t, 0, s.Len())
	_, ok := s.ResolveKey("device:D1")
	require.False(t, ok)
}

func TestCartIsIndependentOfOrderWithinLateness(t *testing.T) {
	ids := member("M1")
	evs := []Event{
		mk("a", 0, AddToCart, ChannelApp, ids, sku("K1"), amount(100)),
		mk("b", time.Minute, AddToCart, ChannelApp, ids, sku("K2"), amount(200)),
		mk("c", 2*time.Minute, RemoveFromCart, ChannelApp, ids, sku("K1")),
	}
	a, b := newTestStore(t), newTestStore(t)
	apply(t, a, evs...)
	apply(t, b, evs[2], evs[1], evs[0])
	now := t0 + time.Hour.Milliseconds()
	require.JSONEq(t, viewJSONOf(t, a, "member:M1", now), viewJSONOf(t, b, "member:M1", now))
	var v View
	a.ViewKey("member:M1", now, &v)
	require.Len(t, v.Cart, 1)
	require.Equal(t, "K2", v.Cart[0].SKU)
}

func BenchmarkApply(b *testing.B) {
	s := newTestStore(b)
	r := rand.New(rand.NewPCG(1, 2))
	const customers = 100_000
	types := []EventType{PageView, ProductView, ProductView, AddToCart, Search, StoreEnter, Dwell, PosPurchase, Order}
	cats := []string{"shoes", "bags", "phones", "skincare", "baby", "toys"}
	evs := make([]Event, 1<<16)
	for i := range evs {
		typ := types[r.IntN(len(types))]
		ch := ChannelApp
		if typ == StoreEnter || typ == Dwell || typ == PosPurchase {
			ch = ChannelStore
		}
		evs[i] = Event{Type: typ, Channel: ch, IDs: IDs{Member: fmt.Sprintf("M%d", r.IntN(customers))}, Category: cats[r.IntN(len(cats))], SKU: fmt.Sprintf("K%d", r.IntN(500)), Store: "S1", Amount: 1000, DwellS: 60}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i&(len(evs)-1)]
		ev.ID = fmt.Sprint(i)
		ev.TS = t0 + int64(i)
		s.Apply(&ev)
	}
}

// TestReadersRunBesideTheWriter reads customers from several goroutines
// while the single writer applies events that grow, merge and re-key
// them; run with -race, it proves reads never see a half-applied event.
func TestReadersRunBesideTheWriter(t *testing.T) {
	s := newTestStore(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	for r := 0; r < 4; r++ {
		go func() {
			defer func() { done <- struct{}{} }()
			var v View
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range []Key{"member:M1", "device:D1", "card:C9", "member:M2"} {
					if s.ViewKey(k, t0+3600_000, &v) {
						if _, err := json.Marshal(&v); err != nil {
							panic(err)
						}
					}
					s.Version(k)
				}
			}
		}()
	}
	for round := 0; round < 200; round++ {
		for _, ev := range journey() {
			ev.ID = fmt.Sprintf("%s-%d", ev.ID, round)
			ev.TS += int64(round) * 1000
			s.Apply(&ev)
		}
	}
	close(stop)
	for r := 0; r < 4; r++ {
		<-done
	}
	var v View
	require.True(t, s.ViewKey("member:M1", t0+3600_000, &v))
	require.Equal(t, uint64(200*len(journey())), v.Version)
}

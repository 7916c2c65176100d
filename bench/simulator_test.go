package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

func newSim(t testing.TB, opts Options) *Simulator {
	t.Helper()
	s, err := New(opts)
	require.NoError(t, err)
	return s
}

// streamHash runs the simulation to the end and hashes the canonical JSON
// of every event.
func streamHash(t testing.TB, opts Options) (string, int) {
	s := newSim(t, opts)
	h := sha256.New()
	var ev features.Event
	var buf []byte
	n := 0
	for s.Next(&ev) {
		buf = features.EncodeEvent(buf[:0], &ev)
		h.Write(buf)
		n++
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func TestSimulatorIsDeterministicBySeed(t *testing.T) {
	a, na := streamHash(t, Options{Seed: 7, Customers: 300, Days: 14})
	b, nb := streamHash(t, Options{Seed: 7, Customers: 300, Days: 14})
	c, _ := streamHash(t, Options{Seed: 8, Customers: 300, Days: 14})
	require.Greater(t, na, 1000, "300 customers over two weeks should produce a real stream")
	require.Equal(t, na, nb)
	require.Equal(t, a, b, "the same seed must give the same stream")
	require.NotEqual(t, a, c, "a different seed must give a different stream")
}

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	_, err := New(Options{Customers: -1, Stores: -2, Days: -3, MemberShare: 2})
	require.Error(t, err)
	for _, want := range []string{"Customers", "Stores", "Days", "MemberShare"} {
		require.Contains(t, err.Error(), want)
	}
}

// TestEveryEventIsValidSchemaV1 runs every generated event through the
// production decoder: none may be rejected, and decoding the canonical
// encoding must give back the same event. It also checks the stream's
// promises: event-time order, unique IDs, inside the simulated period.
func TestEveryEventIsValidSchemaV1(t *testing.T) {
	s := newSim(t, Options{Seed: 3, Customers: 800, Days: 21})
	now := s.End() + 86_400_000
	seen := make(map[string]bool)
	var ev, back features.Event
	var buf []byte
	var last int64
	types := make(map[features.EventType]int)
	rng := rand.New(rand.NewPCG(1, 2))
	for s.Next(&ev) {
		buf = features.EncodeEvent(buf[:0], &ev)
		rej := features.DecodeEvent(buf, now, nil, &back)
		require.Nil(t, rej, "event %s rejected: %v", buf, rej)
		require.Equal(t, ev, back, "decode(encode(ev)) must be ev")
		require.False(t, seen[ev.ID], "duplicate event ID %s", ev.ID)
		seen[ev.ID] = true
		require.GreaterOrEqual(t, ev.TS, last, "events must come in event-time order")
		require.GreaterOrEqual(t, ev.TS, s.Options().Start.UnixMilli())
		require.Less(t, ev.TS, s.End())
		last = ev.TS
		types[ev.Type]++
		if ev.Type == features.Identify {
			n := 0
			for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
				if ev.IDs.Get(ns) != "" {
					n++
				}
			}
			require.GreaterOrEqual(t, n, 2, "identify must link two or more identifiers")
		}
		// Feedback events from Respond are schema v1 too.
		if rng.IntN(50) == 0 {
			idx, ok := s.CustomerIndex(ev.IDs)
			require.True(t, ok, "every simulated identifier maps back to its customer: %+v", ev.IDs)
			out, err := s.Respond(Delivery{
				Customer: idx, OfferID: "store_online_combo", Type: OfferType(rng.IntN(int(NumOfferTypes))),
				Channel: features.ChannelApp, DecisionID: "d-" + ev.ID, CouponCode: "NBO-TEST-0001", At: ev.TS,
			}, rng)
			require.NoError(t, err)
			for i := range out.Events {
				buf = features.EncodeEvent(buf[:0], &out.Events[i])
				require.Nil(t, features.DecodeEvent(buf, now+10*86_400_000, nil, &back), "feedback event %s", buf)
			}
		}
	}
	for _, typ := range []features.EventType{
		features.PageView, features.ProductView, features.Search, features.AddToCart, features.RemoveFromCart,
		features.Checkout, features.Order, features.StoreEnter, features.StoreExit, features.Dwell,
		features.ProductTouch, features.TryOn, features.PosPurchase, features.Return, features.Review,
		features.Identify, features.Consent, features.Signup,
	} {
		require.Positive(t, types[typ], "no %s event in the stream", typ)
	}
}

// custTrack follows one customer through the stream for the journey-shape
// test.
type custTrack struct {
	viewedOnline  map[string]int64 // category → newest online product_view
	browseToStore bool             // bought in store a category viewed online before
	visitNoBuy    int64            // newest store exit of a visit without purchase
	visitBought   bool
	storeToOnline bool // ordered online within 2 days of a visit without purchase
	cartOpen      bool
	abandoned     bool
	skuViews      map[string]int // online product views per SKU
	eveningBaby   int
	weekendBaby   bool
	signupInStore bool
	lastTS        int64
	lapsed        bool
}

func TestJourneyShapesArePresent(t *testing.T) {
	s := newSim(t, Options{Seed: 11, Customers: 1500, Days: 150})
	tracks := make(map[int]*custTrack)
	var ev features.Event
	for s.Next(&ev) {
		idx, ok := s.CustomerIndex(ev.IDs)
		require.True(t, ok)
		c := tracks[idx]
		if c == nil {
			c = &custTrack{viewedOnline: map[string]int64{}, skuViews: map[string]int{}}
			tracks[idx] = c
		}
		if c.lastTS > 0 && ev.TS-c.lastTS > 55*86_400_000 {
			c.lapsed = true
		}
		c.lastTS = ev.TS
		loc := s.Stores()[s.Customer(idx).HomeStore].Location()
		local := time.UnixMilli(ev.TS).In(loc)
		switch ev.Type {
		case features.ProductView:
			c.viewedOnline[ev.Category] = ev.TS
			c.skuViews[ev.SKU]++
		case features.Search:
			if ev.Category == "baby" && local.Hour() >= 19 {
				c.eveningBaby++
			}
		case features.StoreEnter:
			c.visitBought = false
		case features.Dwell:
			if wd := local.Weekday(); ev.Category == "baby" && ev.DwellS >= 1200 && (wd == time.Saturday || wd == time.Sunday) {
				c.weekendBaby = true
			}
		case features.PosPurchase:
			c.visitBought = true
			if v, ok := c.viewedOnline[ev.Category]; ok && ev.TS-v > 12*3_600_000 {
				c.browseToStore = true
			}
		case features.StoreExit:
			if !c.visitBought {
				c.visitNoBuy = ev.TS
			}
		case features.AddToCart:
			c.cartOpen = true
		case features.Order:
			c.cartOpen = false
			if c.visitNoBuy > 0 && ev.TS-c.visitNoBuy < 2*86_400_000 {
				c.storeToOnline = true
			}
		case features.PageView:
			if c.cartOpen {
				c.abandoned = true
			}
		case features.Signup:
			if ev.Channel == features.ChannelStore {
				c.signupInStore = true
			}
		}
	}
	count := func(f func(c *custTrack) bool) int {
		n := 0
		for _, c := range tracks {
			if f(c) {
				n++
			}
		}
		return n
	}
	shapes := map[string]int{
		"browse online, buy in store":       count(func(c *custTrack) bool { return c.browseToStore }),
		"visit a store, buy online":         count(func(c *custTrack) bool { return c.storeToOnline }),
		"abandon a cart":                    count(func(c *custTrack) bool { return c.abandoned }),
		"evening baby searches":             count(func(c *custTrack) bool { return c.eveningBaby >= 2 }),
		"weekend baby-department dwell":     count(func(c *custTrack) bool { return c.weekendBaby }),
		"baby searches and a weekend visit": count(func(c *custTrack) bool { return c.eveningBaby >= 2 && c.weekendBaby }),
		"sign up in a store":                count(func(c *custTrack) bool { return c.signupInStore }),
		"lapse for two months":              count(func(c *custTrack) bool { return c.lapsed }),
		"compare two models repeatedly": count(func(c *custTrack) bool {
			perCategory := map[string]int{} // SKUs viewed at least twice, by category
			for sku, v := range c.skuViews {
				if v >= 2 {
					perCategory[sku[:len("SKU-XXX")]]++
				}
			}
			for _, n := range perCategory {
				if n >= 2 {
					return true
				}
			}
			return false
		}),
	}
	for name, n := range shapes {
		require.Positive(t, n, "no customer shows the journey %q", name)
		t.Logf("%-35s %d customers", name, n)
	}
	// The lazily generated stream keeps only journeys in progress.
	require.Less(t, len(s.journeys), 1500/10, "journey buffers must stay far below one per customer")
}

func TestInjectedEventsMergeInEventTimeOrder(t *testing.T) {
	s := newSim(t, Options{Seed: 5, Customers: 50, Days: 3})
	at := s.Options().Start.UnixMilli() + 36*3_600_000
	s.Inject(
		features.Event{ID: "x-2", TS: at + 1000, Type: features.PushOpen, Channel: features.ChannelApp, IDs: features.IDs{Device: "d"}},
		features.Event{ID: "x-1", TS: at, Type: features.PushOpen, Channel: features.ChannelApp, IDs: features.IDs{Device: "d"}},
	)
	var ev features.Event
	var last int64
	var got []string
	for s.Next(&ev) {
		require.GreaterOrEqual(t, ev.TS, last)
		last = ev.TS
		if ev.ID == "x-1" || ev.ID == "x-2" {
			got = append(got, ev.ID)
		}
	}
	require.Equal(t, []string{"x-1", "x-2"}, got)
}

func TestNextTimeIsTheTimeOfTheEventNextReturns(t *testing.T) {
	opts := Options{Seed: 5, Customers: 50, Days: 3}
	peeked, plain := newSim(t, opts), newSim(t, opts)
	at := opts.Start
	if at.IsZero() {
		at = DefaultStart
	}
	feedback := features.Event{ID: "x-1", TS: at.UnixMilli() + 36*3_600_000, Type: features.PushOpen, Channel: features.ChannelApp, IDs: features.IDs{Device: "d"}}
	var a, b features.Event
	n := 0
	for {
		ts, ok := peeked.NextTime()
		require.Equal(t, ok, peeked.Next(&a), "NextTime says whether Next has an event")
		require.Equal(t, ok, plain.Next(&b))
		if !ok {
			break
		}
		require.Equal(t, ts, a.TS, "event %d", n)
		require.Equal(t, b, a, "peeking changes nothing (event %d)", n)
		if n == 100 {
			// Feedback older than the stream comes out next, and NextTime
			// says so.
			feedback.TS = a.TS
			peeked.Inject(feedback)
			plain.Inject(feedback)
		}
		n++
	}
	require.Greater(t, n, 100)
	_, ok := peeked.NextTime()
	require.False(t, ok, "simulated time is over")
}

// binomialOK checks k successes of n against probability p within six
// standard deviations (plus one count for tiny p).
func binomialOK(t *testing.T, what string, k, n int, p float64) {
	t.Helper()
	sd := math.Sqrt(float64(n) * p * (1 - p))
	require.InDelta(t, p*float64(n), float64(k), 6*sd+1, "%s: %d of %d, expected rate %.4f", what, k, n, p)
}

func TestRespondSamplesTheHiddenProbabilities(t *testing.T) {
	s := newSim(t, Options{Seed: 21, Customers: 2000})
	rng := rand.New(rand.NewPCG(9, 9))
	type tc struct {
		name string
		idx  int
		typ  OfferType
		ch   features.Channel
	}
	var cases []tc
	// Find customers that span low and high probabilities.
	for idx := 0; idx < 2000 && len(cases) < 6; idx++ {
		for typ := range NumOfferTypes {
			p := s.TrueProbability(idx, typ, features.ChannelApp)
			if (len(cases)%2 == 0 && p > 0.15) || (len(cases)%2 == 1 && p > 0 && p < 0.03) {
				cases = append(cases, tc{"a customer with probability " + time.Duration(p*1e9).String(), idx, typ, features.ChannelApp})
				break
			}
		}
	}
	cases = append(cases, tc{"a push to an app user", cases[0].idx, cases[0].typ, features.ChannelPush})
	require.Len(t, cases, 7)
	const n = 20_000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.TrueProbability(c.idx, c.typ, c.ch)
			require.Positive(t, p)
			var imp, clk, red int
			for range n {
				out, err := s.Respond(Delivery{Customer: c.idx, OfferID: "o1", Type: c.typ, Channel: c.ch, DecisionID: "dec-1", At: 1_800_000_000_000}, rng)
				require.NoError(t, err)
				if out.Impression {
					imp++
				}
				if out.Click {
					clk++
				}
				if out.Redeem {
					red++
					require.Positive(t, out.Revenue)
					last := out.Events[len(out.Events)-2]
					require.Equal(t, features.CouponRedeem, last.Type)
					require.Equal(t, "dec-1", last.DecisionID, "a redemption without a coupon code carries the decision ID")
				}
			}
			v := visibility(c.ch)
			binomialOK(t, "impressions", imp, n, v)
			binomialOK(t, "clicks", clk, n, v*math.Min(1, clickBoost*p))
			binomialOK(t, "redemptions", red, n, v*p)
		})
	}
}

func TestRespondRejectsBadDeliveries(t *testing.T) {
	s := newSim(t, Options{Customers: 10})
	rng := rand.New(rand.NewPCG(1, 1))
	_, err := s.Respond(Delivery{Customer: 10, OfferID: "o", Type: OfferCoupon}, rng)
	require.ErrorContains(t, err, "out of range")
	_, err = s.Respond(Delivery{Customer: 1, Type: OfferCoupon}, rng)
	require.ErrorContains(t, err, "offer ID")
}

// TestTrueProbabilityFollowsTraits checks that the hidden probabilities
// are the learnable function of traits they are meant to be.
func TestTrueProbabilityFollowsTraits(t *testing.T) {
	s := newSim(t, Options{Seed: 2, Customers: 5000})
	mean := func(typ OfferType, ch features.Channel, pick func(c *Customer) bool) float64 {
		var sum float64
		var n int
		for i := range 5000 {
			c := s.Customer(i)
			if pick(&c) {
				sum += s.TrueProbability(i, typ, ch)
				n++
			}
		}
		require.Positive(t, n)
		return sum / float64(n)
	}
	app := features.ChannelApp
	require.Greater(t, mean(OfferBundle, app, (*Customer).Parent), 3*mean(OfferBundle, app, func(c *Customer) bool { return !c.Parent() }),
		"parents respond to the parenting bundle")
	require.Greater(t, mean(OfferCoupon, app, func(c *Customer) bool { return c.PriceSensitivity > 0.7 }),
		2*mean(OfferCoupon, app, func(c *Customer) bool { return c.PriceSensitivity < 0.3 }),
		"price-sensitive customers respond to coupons")
	require.Greater(t, mean(OfferVIPService, app, func(c *Customer) bool { return c.Affluence > 0.7 }),
		2*mean(OfferVIPService, app, func(c *Customer) bool { return c.Affluence < 0.3 }),
		"affluent customers respond to VIP service")
	require.Zero(t, mean(OfferExperience, features.ChannelTablet, func(c *Customer) bool { return c.Habit == OnlineOnly }),
		"online-only customers never see a store tablet")
	require.Zero(t, mean(OfferCoupon, features.ChannelPush, func(c *Customer) bool { return !c.AppUser }),
		"push does not reach customers without the app")
	// Where the customer is changes which offer suits them: among the
	// same customers (store visitors with the app), an experience beats
	// points at the tablet more often than it does in the app.
	both := func(c *Customer) bool { return c.Habit == Omnichannel && c.AppUser }
	ratio := func(ch features.Channel) float64 {
		return mean(OfferExperience, ch, both) / mean(OfferPoints, ch, both)
	}
	require.Greater(t, ratio(features.ChannelTablet), 2*ratio(app),
		"offer types suit channels differently (an associate sells an experience, the app points)")
}

func TestCustomerIndexRoundTrips(t *testing.T) {
	s := newSim(t, Options{Seed: 4, Customers: 100})
	other := newSim(t, Options{Seed: 5, Customers: 100})
	for _, idx := range []int{0, 1, 57, 99} {
		for _, ids := range []features.IDs{
			{Member: s.memberID(idx)}, {Card: s.cardID(idx)}, {Device: s.deviceID(idx)}, s.CustomerIDs(idx),
		} {
			got, ok := s.CustomerIndex(ids)
			require.True(t, ok)
			require.Equal(t, idx, got)
			_, ok = other.CustomerIndex(ids)
			require.False(t, ok, "another seed's simulator does not claim %+v", ids)
		}
	}
	_, ok := s.CustomerIndex(features.IDs{Member: s.memberID(100)})
	require.False(t, ok, "an index past the customer count is not a customer")
}

func FuzzCustomerIndex(f *testing.F) {
	s := newSim(f, Options{Seed: 4, Customers: 100})
	f.Add(s.memberID(3), s.deviceID(5))
	f.Add("M", "dv-")
	f.Add("M"+s.tag+"-99999999999999999999", "")
	f.Fuzz(func(t *testing.T, member, device string) {
		idx, ok := s.CustomerIndex(features.IDs{Member: member, Device: device})
		if ok {
			require.True(t, idx >= 0 && idx < 100)
		}
	})
}

func TestInStockFollowsStoreStock(t *testing.T) {
	s := newSim(t, Options{Seed: 6})
	in, total := 0, 0
	for _, st := range s.Stores() {
		for k, items := range s.Catalog() {
			for _, sku := range items {
				got := s.InStock(st.ID, sku.ID)
				if st.Stock[k] == 0 {
					require.False(t, got, "%s does not carry %s", st.ID, Categories[k])
				}
				if got {
					in++
				}
				total++
			}
		}
	}
	require.Greater(t, in, total/2)
	require.Less(t, in, total)
	require.False(t, s.InStock("nowhere", s.Catalog()[0][0].ID))
}

func TestRespondFlagsDeliveriesWithoutConsent(t *testing.T) {
	s := newSim(t, Options{Seed: 13, Customers: 400})
	cases := []struct {
		name      string
		purpose   features.Purpose
		noConsent bool
		ch        features.Channel
		want      func(c *Customer) bool
	}{
		{"a marketing offer needs marketing consent on the channel", features.PurposeMarketing, false, features.ChannelSMS,
			func(c *Customer) bool { return !c.Marketing || !c.MarketingChannels.Has(features.ChannelSMS) }},
		{"a personalised offer needs personalization consent, on any channel", features.PurposePersonalization, false, features.ChannelSMS,
			func(c *Customer) bool { return !c.Personalization }},
		{"an offer that requires no consent never violates it", features.PurposeMarketing, true, features.ChannelSMS,
			func(c *Customer) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 3))
			var flagged, clean int
			for idx := range 400 {
				c := s.Customer(idx)
				out, err := s.Respond(Delivery{Customer: idx, OfferID: "o", Type: OfferCoupon, Channel: tc.ch, At: 1_800_000_000_000,
					Purpose: tc.purpose, NoConsent: tc.noConsent}, rng)
				require.NoError(t, err)
				want := tc.want(&c)
				require.Equal(t, want, out.ConsentViolation, "customer %d", idx)
				if want {
					flagged++
				} else {
					clean++
				}
			}
			if !tc.noConsent {
				require.Positive(t, flagged)
			}
			require.Positive(t, clean)
		})
	}
}

// TestMemoryPerCustomerIsSmall checks the promise that lets the benchmarks
// simulate a million customers: the schedule costs a few words per
// customer and journeys in progress are few.
func TestMemoryPerCustomerIsSmall(t *testing.T) {
	const n = 200_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newSim(t, Options{Seed: 1, Customers: n, Days: 60})
	var ev features.Event
	for range 300_000 {
		require.True(t, s.Next(&ev))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perCustomer := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per customer, %d leg buffers", perCustomer, len(s.journeys))
	require.Less(t, perCustomer, 64.0)
	runtime.KeepAlive(s)
}

func TestPartitionKeyIsOnePerCustomer(t *testing.T) {
	s := newSim(t, Options{Seed: 3, Customers: 300, Days: 4})
	keys := map[int]map[string]bool{}
	anonymousMemberEvents := 0
	var ev features.Event
	for s.Next(&ev) {
		idx, ok := s.CustomerIndex(ev.IDs)
		require.True(t, ok, "every simulated event names its customer")
		k := s.PartitionKey(&ev)
		require.NotEmpty(t, k)
		if keys[idx] == nil {
			keys[idx] = map[string]bool{}
		}
		keys[idx][k] = true
		if ev.IDs.Member == "" && strings.HasPrefix(k, "member:") {
			anonymousMemberEvents++
		}
	}
	require.Greater(t, len(keys), 100)
	for idx, ks := range keys {
		require.Len(t, ks, 1, "customer %d's events go under one key: %v", idx, ks)
	}
	require.Positive(t, anonymousMemberEvents, "a member's device-only events go under the member")
	require.Empty(t, s.PartitionKey(&features.Event{IDs: features.IDs{Device: "someone-else"}}))
}

// Event IDs are unique per producer: responses of different customers
// never share one, however the caller's rng is seeded — one stream for
// every call (the demo), one seeded per call (the quality bench), or one
// replayed from the same seed (a restarted demo).
func TestResponseEventIDsAreUniqueAcrossCustomersAndCalls(t *testing.T) {
	s := newSim(t, Options{Customers: 300})
	shared := rand.New(rand.NewPCG(1, 2))
	rngs := map[string]func(customer, call int) *rand.Rand{
		"one stream for every call":             func(int, int) *rand.Rand { return shared },
		"one rng seeded per call":               func(c, n int) *rand.Rand { return rand.New(rand.NewPCG(uint64(c), uint64(n))) },
		"every customer's stream from one seed": func(_, n int) *rand.Rand { return rand.New(rand.NewPCG(1, uint64(n))) },
	}
	for name, rngFor := range rngs {
		t.Run(name, func(t *testing.T) {
			seen := map[string]int{} // event ID → customer
			events := 0
			for c := range s.Options().Customers {
				for n := range 5 {
					out, err := s.Respond(Delivery{Customer: c, OfferID: "o1", Type: OfferType(n % int(NumOfferTypes)),
						Channel: features.ChannelTablet, DecisionID: "dec", At: 1_800_000_000_000 + int64(n)}, rngFor(c, n))
					require.NoError(t, err)
					for _, ev := range out.Events {
						if other, dup := seen[ev.ID]; dup {
							require.Failf(t, "duplicate event ID", "%s on customers %d and %d", ev.ID, other, c)
						}
						seen[ev.ID] = c
						events++
					}
				}
			}
			require.Greater(t, events, 1000)
		})
	}
}

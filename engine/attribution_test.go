package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

func newTestStats(t testing.TB) *Stats {
	t.Helper()
	s, err := NewStats(StatsOptions{})
	require.NoError(t, err)
	return s
}

func served(id string, c features.Key, scenario, offer string, ch features.Channel, store string, ts int64) DecisionRecord {
	return DecisionRecord{DecisionID: id, Customer: c, Scenario: scenario, OfferID: offer, Channel: ch, Store: store, Group: GroupTreatment, TS: ts, Value: 2000, Cost: 500}
}

func creditOf(cs []ChannelCredit, ch string) float64 {
	for _, c := range cs {
		if c.Channel == ch {
			return c.Conversions
		}
	}
	return 0
}

func sumCredit(cs []ChannelCredit) (conv, rev float64) {
	for _, c := range cs {
		conv += c.Conversions
		rev += c.Revenue
	}
	return conv, rev
}

func rowByKey(rows []StatsRow, key string) StatsRow {
	for _, r := range rows {
		if r.Key == key {
			return r
		}
	}
	return StatsRow{}
}

func TestCouponCodeIsDeterministicAndMapsBack(t *testing.T) {
	code := CouponCode("d-1", "skin-test")
	require.Regexp(t, regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{16}$`), code)
	require.Equal(t, code, CouponCode("d-1", "skin-test"))
	require.NotEqual(t, code, CouponCode("d-1", "skin-test2"))
	require.NotEqual(t, code, CouponCode("d-2", "skin-test"))
	require.NotEqual(t, CouponCode("d-1x", "y"), CouponCode("d-1", "xy"), "the separator keeps fields apart")

	s := newTestStats(t)
	s.RecordDecision(served("d-1", "member:M1", "s", "skin-test", features.ChannelApp, "", t0))
	d, o, ok := s.LookupCoupon(code)
	require.True(t, ok)
	require.Equal(t, "d-1", d)
	require.Equal(t, "skin-test", o)
	_, _, ok = s.LookupCoupon("0000000000000000")
	require.False(t, ok)
}

func TestStoreRedemptionOfAPushedCouponIsCreditedToThePushDecision(t *testing.T) {
	s := newTestStats(t)
	const m1 = features.Key("member:M1")
	h := hourMs
	s.RecordDecision(served("d-push", m1, "browsed-not-bought", "exp-coupon", features.ChannelPush, "S1", t0))
	s.RecordDecision(served("d-app", m1, "browsed-not-bought", "bundle", features.ChannelApp, "", t0+h))
	s.RecordDecision(served("d-web", m1, "cart-abandoned", "pickup", features.ChannelWeb, "S1", t0+2*h))
	s.RecordDecision(DecisionRecord{DecisionID: "d-hold", Customer: m1, Scenario: "cart-abandoned", OfferID: "pickup", Channel: features.ChannelApp, Group: GroupHoldout, TS: t0 + 3*h})

	_, ok := s.RecordOutcome(Outcome{Type: features.PushOpen, DecisionID: "d-push", Customer: m1, Channel: features.ChannelPush, TS: t0 + 10})
	require.True(t, ok)
	// At the till: only the coupon code, no decision ID, no customer.
	a, ok := s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode("d-push", "exp-coupon"),
		Channel: features.ChannelPOS, Store: "S1", TS: t0 + 24*h, Revenue: 39900})
	require.True(t, ok)
	require.Equal(t, Attribution{DecisionID: "d-push", OfferID: "exp-coupon", Scenario: "browsed-not-bought", Channel: features.ChannelPush, CrossChannel: true, Group: GroupTreatment}, a)

	rep := s.Snapshot()
	push := rowByKey(rep.Channels, "push")
	require.Equal(t, int64(1), push.Redemptions)
	require.Equal(t, int64(39900), push.Revenue)
	require.Equal(t, int64(1), push.OnlineToStore, "online-served, redeemed in store")
	require.Equal(t, 1.0, push.ResponseRate)
	require.Equal(t, int64(0), rowByKey(rep.Channels, "app").Redemptions)
	require.Equal(t, int64(1), rowByKey(rep.Offers, "exp-coupon").Redemptions)
	require.Equal(t, int64(1), rowByKey(rep.Stores, "S1").Redemptions)
	require.Equal(t, int64(1), rep.Total.OnlineToStore)

	// Touches before the redemption: push, app, web (the holdout decision is no touch).
	require.Equal(t, int64(1), rep.Conversions)
	require.Equal(t, 1.0, creditOf(rep.FirstTouch, "push"))
	require.Equal(t, 1.0, creditOf(rep.LastTouch, "web"))
	require.InDelta(t, 0.4, creditOf(rep.PositionBased, "push"), 1e-12)
	require.InDelta(t, 0.2, creditOf(rep.PositionBased, "app"), 1e-12)
	require.InDelta(t, 0.4, creditOf(rep.PositionBased, "web"), 1e-12)
	for name, cs := range map[string][]ChannelCredit{"first": rep.FirstTouch, "last": rep.LastTouch, "position": rep.PositionBased} {
		conv, rev := sumCredit(cs)
		require.InDelta(t, 1.0, conv, 1e-12, "%s-touch weights sum to 1 per conversion", name)
		require.InDelta(t, 39900, rev, 1e-6, "%s-touch revenue adds up", name)
	}

	// The report is JSON-able.
	_, err := json.Marshal(rep)
	require.NoError(t, err)
}

func TestCrossChannelTheOtherWayAndOutcomeKinds(t *testing.T) {
	s := newTestStats(t)
	const c = features.Key("member:M2")
	s.RecordDecision(served("d-tab", c, "high-value-member", "vip-online", features.ChannelTablet, "S2", t0))
	s.RecordDecision(served("d-multi", c, "s", "o1", features.ChannelApp, "", t0+1))
	s.RecordDecision(served("d-multi", c, "s", "o2", features.ChannelApp, "", t0+1))
	s.RecordDecision(served("d-multi", c, "s", "o2", features.ChannelApp, "", t0+1)) // a replayed log line

	a, ok := s.RecordOutcome(Outcome{Type: features.CouponRedeem, DecisionID: "d-tab", Customer: c, Channel: features.ChannelApp, TS: t0 + 5, Revenue: 100})
	require.True(t, ok)
	require.True(t, a.CrossChannel)
	_, ok = s.RecordOutcome(Outcome{Type: features.OfferImpression, DecisionID: "d-multi", Customer: c, Channel: features.ChannelApp, TS: t0 + 6})
	require.True(t, ok)
	a, ok = s.RecordOutcome(Outcome{Type: features.OfferDismiss, DecisionID: "d-multi", OfferID: "o2", Customer: c, TS: t0 + 7})
	require.True(t, ok)
	require.Equal(t, "o2", a.OfferID)
	_, ok = s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "nope", TS: t0 + 8})
	require.False(t, ok)

	rep := s.Snapshot()
	require.Equal(t, int64(1), rowByKey(rep.Channels, "tablet").StoreToOnline)
	require.Equal(t, int64(1), rowByKey(rep.Offers, "o1").Impressions, "a decision-level impression goes to its first offer")
	require.Equal(t, int64(1), rowByKey(rep.Offers, "o2").Dismissals)
	require.Equal(t, int64(1), rowByKey(rep.Offers, "o2").Decisions, "replayed records are not counted twice")
	require.Equal(t, int64(2), rep.Total.Decisions, "decisions count once, however many offers they served")
	require.Equal(t, int64(3), rep.Total.OffersServed)
	require.Equal(t, int64(1), rowByKey(rep.Scenarios, "s").Decisions, "d-multi served two offers of scenario s")
	require.Equal(t, int64(2), rowByKey(rep.Scenarios, "s").OffersServed)
	require.Equal(t, int64(1), rep.Unattributed)
	// A tablet touch at t0 and an app touch at t0+1 (two offers, one each): last touch is the app.
	require.Equal(t, 1.0, creditOf(rep.FirstTouch, "tablet"))
	require.Equal(t, 1.0, creditOf(rep.LastTouch, "app"))
}

func TestPositionWeightsSumToOne(t *testing.T) {
	for n := 1; n <= 12; n++ {
		sum := 0.0
		for _, w := range PositionWeights(n) {
			sum += w
		}
		require.InDelta(t, 1.0, sum, 1e-12, "n=%d", n)
	}
	require.Equal(t, []float64{0.5, 0.5}, PositionWeights(2))
	require.Equal(t, []float64{0.4, 0.1, 0.1, 0.4}, PositionWeights(4))
}

// binomial draws the number of successes in n trials with probability p.
func binomial(r *rand.Rand, n int, p float64) int64 {
	k := int64(0)
	for i := 0; i < n; i++ {
		if r.Float64() < p {
			k++
		}
	}
	return k
}

func TestUpliftIntervalCoversTheTrueDifference(t *testing.T) {
	const (
		reps       = 1000
		nT, nH     = 2000, 500
		pT, pH     = 0.30, 0.20
		trueUplift = pT - pH
	)
	r := rand.New(rand.NewPCG(1, 2))
	covered := 0
	for i := 0; i < reps; i++ {
		u, ok := UpliftCI(binomial(r, nT, pT), nT, binomial(r, nH, pH), nH)
		require.True(t, ok)
		require.True(t, u.Reliable)
		if u.Low <= trueUplift && trueUplift <= u.High {
			covered++
		}
	}
	// A 95% interval covers the truth in 95% of experiments; with 1000
	// of them the observed share has a standard deviation of 0.7%.
	require.InDelta(t, 0.95, float64(covered)/reps, 0.025, "covered %d of %d", covered, reps)

	_, ok := UpliftCI(1, 10, 0, 0)
	require.False(t, ok, "no holdout, no uplift")
}

func TestUpliftThroughStatsOnSyntheticCustomers(t *testing.T) {
	s := newTestStats(t)
	h := Holdout{Share: 0.2, Salt: "uplift-test"}
	r := rand.New(rand.NewPCG(7, 7))
	const n = 6000
	trueT, trueH := 0.25, 0.15
	var convT, nT, convH, nH int64
	for i := 0; i < n; i++ {
		c := features.MakeKey(features.NSMember, fmt.Sprint("U", i))
		d := served(fmt.Sprint("d", i), c, "win-back", "wb-20", features.ChannelSMS, "", t0+int64(i))
		p := trueT
		if h.InHoldout(c) {
			d.Group, p = GroupHoldout, trueH
			nH++
		} else {
			nT++
		}
		s.RecordDecision(d)
		if r.Float64() < p {
			if d.Group == GroupHoldout {
				convH++
			} else {
				convT++
			}
			// Two purchases: the decision converts once.
			for k := 0; k < 2; k++ {
				s.RecordOutcome(Outcome{Type: features.Order, Customer: c, Channel: features.ChannelWeb, TS: d.TS + 3*24*hourMs + int64(k), Revenue: 5000})
			}
		} else if i%7 == 0 {
			// A purchase after the window does not convert.
			s.RecordOutcome(Outcome{Type: features.PosPurchase, Customer: c, Channel: features.ChannelPOS, TS: d.TS + 8*24*hourMs})
		}
	}
	rep := s.Snapshot()
	u := rowByKey(rep.Scenarios, "win-back").Uplift
	require.NotNil(t, u)
	want, _ := UpliftCI(convT, nT, convH, nH)
	require.Equal(t, want, *u)
	require.True(t, u.Low <= trueT-trueH && trueT-trueH <= u.High, "CI [%.3f, %.3f] covers %.2f", u.Low, u.High, trueT-trueH)
	require.Greater(t, u.Low, 0.0, "with 6000 customers the uplift is significant")
	require.Equal(t, int64(0), rep.Unattributed, "purchases are not feedback and need no decision")
}

// TestUpliftCountsEachDecisionOnce: the rows count a decision once,
// however many of its offers they hold, and a decision that served
// nothing counts in the total, channel and store rows, in both groups;
// a conversion converts a decision once.
func TestUpliftCountsEachDecisionOnce(t *testing.T) {
	s := newTestStats(t)
	const a, b, h, g = features.Key("member:A"), features.Key("member:B"), features.Key("member:H"), features.Key("member:G")
	s.RecordDecisions([]DecisionRecord{
		served("dA", a, "s", "o1", features.ChannelApp, "S1", t0),
		served("dA", a, "s", "o2", features.ChannelApp, "S1", t0),
		served("dA", a, "t", "o3", features.ChannelApp, "", t0),
		{DecisionID: "dB", Customer: b, Channel: features.ChannelApp, Group: GroupTreatment, TS: t0}, // served nothing
	})
	held := served("dH", h, "s", "o1", features.ChannelApp, "S1", t0)
	held.Group = GroupHoldout
	s.RecordDecision(held)
	held.OfferID = "o2"
	s.RecordDecision(held)
	s.RecordDecision(DecisionRecord{DecisionID: "dG", Customer: g, Channel: features.ChannelWeb, Group: GroupHoldout, TS: t0})

	_, ok := s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "dB", Customer: b, TS: t0 + 1})
	require.False(t, ok, "a decision that served nothing has nothing to click")
	s.RecordOutcome(Outcome{Type: features.Order, Customer: a, TS: t0 + 2, Revenue: 100})
	s.RecordOutcome(Outcome{Type: features.Order, Customer: h, TS: t0 + 2, Revenue: 100})

	rep := s.Snapshot()
	require.EqualValues(t, 2, rep.Total.Decisions)
	require.EqualValues(t, 2, rep.Total.Holdout)
	require.EqualValues(t, 5, rep.Total.OffersServed)
	require.Equal(t, Uplift{TreatmentN: 2, HoldoutN: 2, TreatmentRate: 0.5, HoldoutRate: 0.5, Low: -0.98, High: 0.98}, roundUplift(*rep.Total.Uplift))

	sc := rowByKey(rep.Scenarios, "s")
	require.Equal(t, [3]int64{1, 1, 4}, [3]int64{sc.Decisions, sc.Holdout, sc.OffersServed})
	require.Equal(t, 1.0, sc.Uplift.TreatmentRate, "dA converted once in scenario s, not once per offer")
	require.EqualValues(t, 1, sc.Uplift.TreatmentN)
	require.EqualValues(t, 1, rowByKey(rep.Offers, "o2").Decisions)
	require.EqualValues(t, 1, rowByKey(rep.Stores, "S1").Decisions)
	app := rowByKey(rep.Channels, "app")
	require.Equal(t, [3]int64{2, 1, 5}, [3]int64{app.Decisions, app.Holdout, app.OffersServed}, "dB counts on its channel")
	require.EqualValues(t, 1, rowByKey(rep.Channels, "web").Holdout, "so does dG")
	for _, rows := range [][]StatsRow{rep.Scenarios, rep.Offers} {
		require.Zero(t, rowByKey(rows, ""), "a decision that served nothing has no scenario or offer row")
	}
	require.Equal(t, int64(1), rep.Unattributed)
}

// TestADecisionConvertsWhenItsFirstRecordLeftTheCustomersRecentList:
// conversions look at the customer's newest MaxTouches records; a
// decision serving more offers than that still converts, once.
func TestADecisionConvertsWhenItsFirstRecordLeftTheCustomersRecentList(t *testing.T) {
	s, err := NewStats(StatsOptions{MaxTouches: 2})
	require.NoError(t, err)
	const a = features.Key("member:A")
	for _, o := range []string{"o1", "o2", "o3"} {
		s.RecordDecision(served("dA", a, "s", o, features.ChannelApp, "", t0))
	}
	s.RecordOutcome(Outcome{Type: features.Order, Customer: a, TS: t0 + 1})
	require.Equal(t, [2]int64{1, 1}, [2]int64{s.total.decisions, s.total.convTreatment})
	for _, o := range []string{"o1", "o2", "o3"} {
		require.EqualValues(t, 1, s.offers[o].convTreatment, o)
	}
}

// TestACouponRedeemedTwiceCountsOnce: a till retry or a second scan of
// the same code is a repeat, not a second redemption.
func TestACouponRedeemedTwiceCountsOnce(t *testing.T) {
	s := newTestStats(t)
	s.RecordDecision(served("d1", "member:A", "s", "o1", features.ChannelPush, "S1", t0))
	code := CouponCode("d1", "o1")
	redeem := Outcome{Type: features.CouponRedeem, CouponCode: code, Channel: features.ChannelPOS, Store: "S1", TS: t0 + 1, Revenue: 900}
	a, ok := s.RecordOutcome(redeem)
	require.True(t, ok)
	require.False(t, a.Repeat)
	redeem.TS++
	a, ok = s.RecordOutcome(redeem)
	require.True(t, ok, "still the coupon's decision")
	require.True(t, a.Repeat)
	rep := s.Snapshot()
	require.Equal(t, [4]int64{1, 900, 500, 1}, [4]int64{rep.Total.Redemptions, rep.Total.Revenue, rep.Total.Cost, rep.RepeatRedemptions})
	require.EqualValues(t, 1, rep.Conversions)
	b, err := s.MarshalBinary()
	require.NoError(t, err)
	back := newTestStats(t)
	require.NoError(t, back.UnmarshalBinary(b))
	require.EqualValues(t, 1, back.Snapshot().RepeatRedemptions)
}

// roundUplift rounds an interval's ends to 0.01, for comparison.
func roundUplift(u Uplift) Uplift {
	u.Low, u.High = math.Round(u.Low*100)/100, math.Round(u.High*100)/100
	return u
}

// TestAnEvictedFirstRecordHandsOnItsDecisionsCount: when the oldest
// record goes, the rest of its decision still converts the decision once.
func TestAnEvictedFirstRecordHandsOnItsDecisionsCount(t *testing.T) {
	s, err := NewStats(StatsOptions{MaxDecisions: 3})
	require.NoError(t, err)
	const a = features.Key("member:A")
	s.RecordDecision(served("dA", a, "s", "o1", features.ChannelApp, "", t0))
	s.RecordDecision(served("dA", a, "s", "o2", features.ChannelApp, "", t0))
	s.RecordDecision(DecisionRecord{DecisionID: "dH", Customer: "member:H", Channel: features.ChannelApp, Group: GroupHoldout, TS: t0})
	s.RecordDecision(served("dB", "member:B", "s", "o1", features.ChannelApp, "", t0+1)) // evicts dA's o1
	_, _, ok := s.LookupCoupon(CouponCode("dA", "o1"))
	require.False(t, ok)

	s.RecordOutcome(Outcome{Type: features.Order, Customer: a, TS: t0 + 2})
	rep := s.Snapshot()
	require.Equal(t, 0.5, rep.Total.Uplift.TreatmentRate, "dA converted, dB did not")
	require.Equal(t, [2]int64{1, 2}, [2]int64{s.scenarios["s"].convTreatment, s.scenarios["s"].decisions})
	require.Zero(t, s.offers["o1"].convTreatment, "dA's o1 record is gone")
	require.EqualValues(t, 1, s.offers["o2"].convTreatment)
}

// TestServedListsACustomersOffersAndTheirRedemptions: what a store
// tablet is shown as the customer's open offers comes from here, so the
// redeemed mark must survive a restart.
func TestServedListsACustomersOffersAndTheirRedemptions(t *testing.T) {
	s := newTestStats(t)
	const a = features.Key("member:A")
	s.RecordDecision(served("d1", a, "s", "o1", features.ChannelApp, "", t0))
	s.RecordDecision(served("d2", a, "s", "o2", features.ChannelPush, "S1", t0+1))
	s.RecordDecision(served("d3", "member:B", "s", "o1", features.ChannelApp, "", t0+2))
	held := served("d4", a, "s", "o3", features.ChannelApp, "", t0+3)
	held.Group = GroupHoldout
	s.RecordDecision(held)
	s.RecordDecision(DecisionRecord{DecisionID: "d5", Customer: a, Channel: features.ChannelApp, Group: GroupHoldout, TS: t0 + 4})
	_, ok := s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode("d2", "o2"), Channel: features.ChannelPOS, Store: "S1", TS: t0 + 5, Revenue: 100})
	require.True(t, ok)

	// The holdout's untargeted offers are real coupons: redeemed by code
	// at the till, they are attributed too.
	_, ok = s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode("d4", "o3"), Channel: features.ChannelPOS, Store: "S1", TS: t0 + 6, Revenue: 100})
	require.True(t, ok, "a holdout coupon is attributed")
	require.EqualValues(t, 1, s.Snapshot().Conversions, "but earns no channel credit: only d2's redemption does")

	check := func(s *Stats) {
		t.Helper()
		got := s.Served(a, nil)
		require.Len(t, got, 3, "the decision that served nothing holds no offer")
		require.Equal(t, [3]string{"d1", "d2", "d4"}, [3]string{got[0].DecisionID, got[1].DecisionID, got[2].DecisionID})
		require.Equal(t, [3]bool{false, true, true}, [3]bool{got[0].Redeemed, got[1].Redeemed, got[2].Redeemed})
		require.Equal(t, "S1", got[1].Store)
	}
	check(s)
	b, err := s.MarshalBinary()
	require.NoError(t, err)
	back := newTestStats(t)
	require.NoError(t, back.UnmarshalBinary(b))
	check(back)
}

func TestStatsRekeyAndBounds(t *testing.T) {
	s, err := NewStats(StatsOptions{MaxDecisions: 3})
	require.NoError(t, err)
	s.RecordDecision(served("d1", "device:D", "s", "o", features.ChannelWeb, "", t0))
	s.Rekey("device:D", "member:M")
	s.RecordOutcome(Outcome{Type: features.Order, Customer: "member:M", TS: t0 + 1})
	require.Equal(t, int64(1), s.Snapshot().Total.Decisions)
	u := s.Snapshot().Total.Uplift
	require.Nil(t, u, "no holdout yet")
	s.RecordDecision(DecisionRecord{DecisionID: "h1", Customer: "member:H", Scenario: "s", OfferID: "o", Channel: features.ChannelWeb, Group: GroupHoldout, TS: t0})
	u = s.Snapshot().Total.Uplift
	require.NotNil(t, u)
	require.Equal(t, 1.0, u.TreatmentRate, "the merged customer's purchase converted the device's decision")

	for i := 2; i <= 5; i++ {
		s.RecordDecision(served(fmt.Sprint("d", i), "member:M", "s", "o", features.ChannelWeb, "", t0+int64(i)))
	}
	_, _, ok := s.LookupCoupon(CouponCode("d1", "o"))
	require.False(t, ok, "the oldest records are forgotten beyond MaxDecisions")
	_, ok = s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d1", TS: t0 + 10})
	require.False(t, ok)
	_, ok = s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d5", TS: t0 + 10})
	require.True(t, ok)
	held, evicted := s.Records()
	require.Equal(t, [2]int64{3, 3}, [2]int64{int64(held), evicted}, "six records in, three held")
	require.Equal(t, int64(5), s.Snapshot().Total.Decisions, "aggregates outlive the records")

	_, err = NewStats(StatsOptions{Window: -1, MaxTouches: 5000})
	require.ErrorContains(t, err, "window")
	require.ErrorContains(t, err, "touches")
}

func TestStatsSurviveARestart(t *testing.T) {
	s := newTestStats(t)
	const m1 = features.Key("member:M1")
	s.RecordDecision(served("d-push", m1, "browsed-not-bought", "exp-coupon", features.ChannelPush, "S1", t0))
	s.RecordDecision(served("d-app", m1, "browsed-not-bought", "bundle", features.ChannelApp, "", t0+hourMs))
	s.RecordDecision(DecisionRecord{DecisionID: "d-hold", Customer: "member:H", Scenario: "browsed-not-bought", OfferID: "exp-coupon", Channel: features.ChannelPush, Group: GroupHoldout, TS: t0})
	s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d-app", Customer: m1, Channel: features.ChannelApp, TS: t0 + 2*hourMs})
	s.RecordOutcome(Outcome{Type: features.Order, Customer: "member:H", Channel: features.ChannelWeb, TS: t0 + 3*hourMs})

	data, err := s.MarshalBinary()
	require.NoError(t, err)
	r := newTestStats(t)
	require.NoError(t, r.UnmarshalBinary(data))
	require.Equal(t, s.Snapshot(), r.Snapshot())
	again, err := r.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, data, again)

	// After the restart a till redemption still finds the pushed coupon,
	// counts cross-channel and credits the whole touch sequence.
	for _, st := range []*Stats{s, r} {
		a, ok := st.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode("d-push", "exp-coupon"), Channel: features.ChannelPOS, Store: "S1", TS: t0 + 24*hourMs, Revenue: 100})
		require.True(t, ok)
		require.True(t, a.CrossChannel)
	}
	require.Equal(t, s.Snapshot(), r.Snapshot(), "the restored aggregator continues exactly like the original")
	rep := r.Snapshot()
	require.Equal(t, 1.0, creditOf(rep.FirstTouch, "push"))
	require.Equal(t, 1.0, creditOf(rep.LastTouch, "app"))
	require.Equal(t, int64(1), rep.Total.Redemptions)

	for i := 1; i < len(data); i++ {
		require.Error(t, newTestStats(t).UnmarshalBinary(data[:i]), "truncated at %d", i)
	}
}

func FuzzStatsUnmarshal(f *testing.F) {
	s, _ := NewStats(StatsOptions{})
	s.RecordDecision(served("d", "member:F", "s", "o", features.ChannelApp, "S", t0))
	s.RecordOutcome(Outcome{Type: features.CouponRedeem, DecisionID: "d", Channel: features.ChannelPOS, TS: t0 + 1})
	data, _ := s.MarshalBinary()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _ := NewStats(StatsOptions{})
		if s.UnmarshalBinary(data) != nil {
			return
		}
		out, err := s.MarshalBinary()
		require.NoError(t, err)
		r, _ := NewStats(StatsOptions{})
		require.NoError(t, r.UnmarshalBinary(out))
		_ = r.Snapshot()
	})
}

func TestStatsConcurrentRecording(t *testing.T) {
	s := newTestStats(t)
	const workers, per = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				id := fmt.Sprint("d", w, "-", i)
				c := features.Key(fmt.Sprint("member:W", w))
				s.RecordDecision(served(id, c, "s", "o", features.ChannelApp, "S1", t0+int64(i)))
				s.RecordOutcome(Outcome{Type: features.OfferImpression, DecisionID: id, Customer: c, TS: t0 + int64(i)})
				if i%4 == 0 {
					s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode(id, "o"), Channel: features.ChannelPOS, TS: t0 + int64(i) + 1, Revenue: 10})
				}
				_ = s.Snapshot()
			}
		}()
	}
	wg.Wait()
	rep := s.Snapshot()
	require.Equal(t, int64(workers*per), rep.Total.Decisions)
	require.Equal(t, int64(workers*per), rep.Total.Impressions)
	require.Equal(t, int64(workers*per/4), rep.Total.Redemptions)
	require.Equal(t, int64(workers*per/4), rep.Total.OnlineToStore)
	conv, _ := sumCredit(rep.PositionBased)
	require.InDelta(t, float64(rep.Conversions), conv, 1e-9)
}

func BenchmarkStatsRecordDecision(b *testing.B) {
	s, _ := NewStats(StatsOptions{MaxDecisions: 100_000})
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("member:M", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.RecordDecision(served(strconv.Itoa(i), features.Key(ids[i%1000]), "s", "o", features.ChannelApp, "S1", t0+int64(i)))
		i++
	}
}

// TestStatsRestoresAVersion1Snapshot reads a snapshot written before
// decision records kept their segment (engine/testdata/stats-v1.snap,
// written by that code): everything restores, the segments are empty.
func TestStatsRestoresAVersion1Snapshot(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "stats-v1.snap"))
	require.NoError(t, err)
	s, err := NewStats(StatsOptions{})
	require.NoError(t, err)
	require.NoError(t, s.UnmarshalBinary(data))
	rep := s.Snapshot()
	require.EqualValues(t, 2, rep.Total.Decisions+rep.Total.Holdout, "%+v", rep.Total)
	require.EqualValues(t, 1, rep.Total.Clicks)
	a, ok := s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d-1", OfferID: "o1", Customer: "member:M1", Channel: features.ChannelApp, TS: 1_795_000_003_000})
	require.True(t, ok, "the restored records attribute")
	require.Equal(t, Attribution{DecisionID: "d-1", OfferID: "o1", Scenario: "sc", Channel: features.ChannelApp, Group: GroupTreatment}, a)

	// Written again, it is the current version and keeps a segment.
	s.RecordDecision(DecisionRecord{DecisionID: "d-3", Customer: "member:M3", OfferID: "o3", Channel: features.ChannelWeb, Group: GroupTreatment, TS: 1_795_000_004_000, Segment: segmentNames[segMember|segOnline][features.ChannelWeb]})
	b, err := s.MarshalBinary()
	require.NoError(t, err)
	require.EqualValues(t, statsSnapshotVersion, b[0])
	back, err := NewStats(StatsOptions{})
	require.NoError(t, err)
	require.NoError(t, back.UnmarshalBinary(b))
	a, ok = back.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d-3", OfferID: "o3", Customer: "member:M3", Channel: features.ChannelWeb, TS: 1_795_000_005_000})
	require.True(t, ok)
	require.Equal(t, "/online/member/noparent/nobeauty/notech/web", a.Segment)
}

// TestStatsRestoresAVersion2Snapshot reads a snapshot written before
// decisions were counted once each (engine/testdata/stats-v2.snap,
// written by the code at beb29c3: a treatment decision serving o1 and o2,
// a holdout decision serving o2, a holdout decision serving nothing, a
// click in each group and a purchase by the treatment customer). Its
// rows counted offer records; both groups' records are read as the
// offers served, so the response rate is per offer again (it read 2
// responders over the treatment's 2 offers before, 100%).
func TestStatsRestoresAVersion2Snapshot(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "stats-v2.snap"))
	require.NoError(t, err)
	require.EqualValues(t, 2, data[0])
	s := newTestStats(t)
	require.NoError(t, s.UnmarshalBinary(data))
	tot := s.Snapshot().Total
	require.Equal(t, [5]int64{2, 2, 4, 2, 0}, [5]int64{tot.Decisions, tot.Holdout, tot.OffersServed, tot.Clicks, tot.Redemptions}, "%+v", tot)
	require.Equal(t, 0.5, tot.ResponseRate)

	// The restored records still attribute, and a new decision counts once.
	_, ok := s.RecordOutcome(Outcome{Type: features.OfferClick, DecisionID: "d-1", OfferID: "o2", Customer: "member:M1", Channel: features.ChannelApp, TS: 1_795_000_006_000})
	require.True(t, ok)
	s.RecordDecisions([]DecisionRecord{served("d-3", "member:M3", "sc", "o1", features.ChannelApp, "", 1_795_000_007_000), served("d-3", "member:M3", "sc", "o2", features.ChannelApp, "", 1_795_000_007_000)})
	tot = s.Snapshot().Total
	require.Equal(t, [2]int64{3, 6}, [2]int64{tot.Decisions, tot.OffersServed})
}

func TestAnEmptyStatsReportHasListsNotNulls(t *testing.T) {
	s, err := NewStats(StatsOptions{})
	require.NoError(t, err)
	b, err := json.Marshal(s.Snapshot())
	require.NoError(t, err)
	for _, k := range []string{"first_touch", "last_touch", "position_based"} {
		require.Contains(t, string(b), `"`+k+`":[]`, "clients iterate the list before any conversion")
	}
}

package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// interest returns a per-category counter with n events in its lifetime.
func interest(cat string, cls features.Class, typ features.EventType, n uint32) features.KeyStats {
	k := features.KeyStats{Category: cat, Class: cls, Type: typ}
	k.Count[features.WLifetime] = n
	return k
}

func TestSegmentReadsTheDriversFromBehaviour(t *testing.T) {
	on, off, life := features.Online, features.Offline, features.WLifetime
	cases := []struct {
		name string
		view func(v *features.View)
		want string
	}{
		{"a customer never seen is new", func(v *features.View) { v.Known = false }, "new"},
		{"an online member who mostly looks at baby products is an online parent",
			func(v *features.View) {
				v.Member = true
				v.Counts[on][features.ProductView][life] = 10
				v.Keys = []features.KeyStats{interest("baby", on, features.ProductView, 7), interest("grocery", on, features.ProductView, 3)}
			}, "/online/member/parent/nobeauty/notech"},
		{"one look at a category by chance is no interest",
			func(v *features.View) {
				v.Counts[on][features.ProductView][life] = 20
				v.Keys = []features.KeyStats{interest("skincare", on, features.ProductView, 1), interest("phones", on, features.ProductView, 19)}
			}, "/online/guest/noparent/nobeauty/tech"},
		{"store visits and online searches make both habits; touches and dwell count as interest",
			func(v *features.View) {
				v.Counts[off][features.StoreEnter][life] = 2
				v.Counts[on][features.Search][life] = 1
				v.Keys = []features.KeyStats{interest("makeup", off, features.ProductTouch, 3), interest("makeup", off, features.Dwell, 2), interest("home", on, features.Search, 1)}
			}, "/both/guest/noparent/beauty/notech"},
		{"purchases and redemptions do not change the segment an offer was shown in",
			func(v *features.View) {
				v.Counts[off][features.StoreEnter][life] = 1
				v.Counts[off][features.PosPurchase][life] = 3
				v.Counts[on][features.CouponRedeem][life] = 1
				v.Counts[on][features.Order][life] = 2
				v.Keys = []features.KeyStats{interest("baby", off, features.PosPurchase, 3), interest("electronics", on, features.Order, 2)}
			}, "/offline/guest/noparent/nobeauty/notech"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := features.View{Known: true}
			tc.view(&v)
			if tc.want == "new" {
				require.Equal(t, "new", segment(&v, features.ChannelTablet))
				return
			}
			require.Equal(t, tc.want+"/tablet", segment(&v, features.ChannelTablet), "the channel is the last facet")
			require.Equal(t, tc.want+"/web", segment(&v, features.ChannelWeb))
			require.Equal(t, tc.want, segment(&v, features.ChannelUnknown), "an unknown channel is no facet")
			require.Zero(t, testing.AllocsPerRun(100, func() { segment(&v, features.ChannelApp) }), "choosing a segment allocates")
		})
	}
}

// TestThompsonLearnsFromTheFacetsASegmentShares checks the hierarchical
// draw: when parents respond far more than others, whatever else they
// are, outcomes seen in other segments lift the offer for a parent in a
// segment the bandit has never seen and lower it for a non-parent; the
// offer's prior only starts the estimate.
func TestThompsonLearnsFromTheFacetsASegmentShares(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	b, bundle := r.bandit, r.set.Offers[0]
	rng := rand.New(rand.NewPCG(5, 5))
	probeParent := segmentNames[segParent|segBeauty|segTech|segOnline|segOffline][features.ChannelApp]
	probeOther := segmentNames[segMember|segTech|segOnline|segOffline][features.ChannelApp]
	for range 20000 {
		code := rng.IntN(numSegments)
		seg := segmentNames[code][features.ChannelApp]
		if seg == probeParent || seg == probeOther {
			continue
		}
		rate := 0.04
		if code&segParent != 0 {
			rate = 1.0 / 3
		}
		b.Update(models.Arm{Offer: bundle.ID, Segment: seg}, false)
		if rng.Float64() < rate {
			b.Update(models.Arm{Offer: bundle.ID, Segment: seg}, true)
		}
	}
	mean := func(segment string) float64 { return meanDraw(t, r, bundle, segment, day) }
	require.InDelta(t, 1.0/3, mean(probeParent), 0.05, "a parent never seen borrows the parents' response rate")
	require.InDelta(t, 0.04, mean(probeOther), 0.02, "a non-parent never seen borrows the others'")
	seen := segmentNames[segParent|segOnline][features.ChannelApp]
	require.InDelta(t, 1.0/3, mean(seen), 0.05, "an arm with outcomes of its own follows them")
}

// meanDraw is the mean score a scenario's candidate of propensity 0.1
// draws in segment, over 4000 decisions at day: what the bandit has learnt
// for that arm, with the score's parts adding up on every draw.
func meanDraw(t *testing.T, r *rig, offer *scenarios.Offer, segment string, day time.Time) float64 {
	t.Helper()
	st := &decideState{set: r.set, rng: rand.New(rand.NewPCG(1, 2)), segment: segment}
	st.sreq.Now = day.UnixMilli()
	var sum float64
	const n = 4000
	for range n {
		st.cands = append(st.cands[:0], candidate{offer: offer, parts: ScoreParts{Propensity: 0.1, ContextWeight: 1, Value: 1, Lever: 1}})
		st.props = append(st.props[:0], scenarios.Proposal{Scenario: &scenarios.Scenario{ID: "targeted"}, Offer: offer})
		r.eng.drawAll(st, -1, r.eng.expect(st))
		c := &st.cands[0]
		require.InDelta(t, c.parts.Total, c.parts.Propensity+c.parts.Explore, 1e-12)
		sum += c.parts.Total
	}
	return sum / n
}

// TestThompsonLearnsWhichChannelSuitsAnOffer checks the channel facet:
// when an offer does far better at the store's tablet than in the app,
// whoever the customer is, a customer never seen gets it drawn high at
// the tablet and low in the app.
func TestThompsonLearnsWhichChannelSuitsAnOffer(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	b, offer := r.bandit, r.set.Offers[0]
	rng := rand.New(rand.NewPCG(7, 7))
	probe := segParent | segBeauty | segOnline | segOffline
	for range 20000 {
		code := rng.IntN(numSegments)
		if code == probe {
			continue
		}
		ch, rate := features.ChannelApp, 0.04
		if rng.IntN(2) == 0 {
			ch, rate = features.ChannelTablet, 1.0/3
		}
		arm := models.Arm{Offer: offer.ID, Segment: segmentNames[code][ch]}
		b.Update(arm, false)
		if rng.Float64() < rate {
			b.Update(arm, true)
		}
	}
	mean := func(segment string) float64 { return meanDraw(t, r, offer, segment, day) }
	require.InDelta(t, 1.0/3, mean(segmentNames[probe][features.ChannelTablet]), 0.05, "at the tablet a new customer borrows the tablet's rate")
	require.InDelta(t, 0.04, mean(segmentNames[probe][features.ChannelApp]), 0.02, "in the app, the app's")
}

// TestTheUntargetedDiscountFadesWithEvidence checks that untargeted
// offers are discounted only while nothing is known of them: with no
// outcomes a scenario's offer outranks an untargeted one of the same
// propensity, and once the bandit has seen the untargeted offer do twice as
// well, it wins — for the candidates drawn and for those only
// expected alike (the learnt rates are read from the per-offer table).
func TestTheUntargetedDiscountFadesWithEvidence(t *testing.T) {
	require.Equal(t, untargetedLever, fadedLever(0, priorWeight))
	require.InDelta(t, (1+untargetedLever)/2, fadedLever(priorWeight, priorWeight), 1e-12, "half the discount is gone after w trials")
	require.InDelta(t, 1, fadedLever(1e6, priorWeight), 1e-4)

	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	seg := "/online/member/noparent/nobeauty/notech"
	rank := rankPair(t, r, day, seg, 20)
	a, b := rank(2) // a cut above every score: expected scores only
	require.Greater(t, a, b, "nothing learnt: the scenario's offer leads")

	// 10% for the scenario's offer, 20% for the untargeted one.
	teachPair(r, seg, 4000, func(i int, untargeted bool) bool { return i%10 == 0 || untargeted && i%10 < 2 })
	a, b = rank(2)
	require.Greater(t, b, a, "expected: a 20%% offer outranks a 10%% one whoever proposed it (without the fade, 0.5 × 20%% < 1.2 × 10%%)")
	a, b = rank(-1)
	require.Greater(t, b, a, "drawn: a 20%% offer outranks a 10%% one whoever proposed it (without the fade, 0.5 × 20%% < 1.2 × 10%%)")
}

// teachPair records n trials of the rig's first two offers (a scenario's
// and an untargeted one, as rankPair ranks them) in segment seg, trial i
// a success when success(i, untargeted) says so, and makes the engine
// read the learnt rates afresh rather than wait ratesMaxAge.
func teachPair(r *rig, seg string, n int, success func(i int, untargeted bool) bool) {
	for i := range n {
		for k, o := range r.set.Offers[:2] {
			r.bandit.Update(models.Arm{Offer: o.ID, Segment: seg}, false)
			if success(i, k == 1) {
				r.bandit.Update(models.Arm{Offer: o.ID, Segment: seg}, true)
			}
		}
	}
	r.eng.rates.Store(nil)
}

// rankPair returns a ranking of the rig's first offer, proposed by a
// scenario at priority, against its second, untargeted, both with a
// propensity of 0.1, for a customer of segment seg: their scores after
// expect and drawAll with the given cut (above every score: expected
// scores only; -1: both drawn), each checked to be explained by its
// parts.
func rankPair(t *testing.T, r *rig, day time.Time, seg string, priority int) func(cut float64) (target, untarget float64) {
	targeted, untargeted := r.set.Offers[0], r.set.Offers[1]
	return func(cut float64) (target, untarget float64) {
		st := &decideState{set: r.set, rng: rand.New(rand.NewPCG(3, 4)), segment: seg}
		st.sreq.Now = day.UnixMilli()
		st.props = []scenarios.Proposal{{Scenario: &scenarios.Scenario{ID: "s"}, Offer: targeted, Priority: priority}, {Offer: untargeted}}
		st.cands = []candidate{
			{prop: 0, offer: targeted, parts: ScoreParts{Propensity: 0.1, ContextWeight: 1, Value: 1, Lever: 1 + float64(priority)/100}},
			{prop: 1, offer: untargeted, parts: ScoreParts{Propensity: 0.1, ContextWeight: 1, Value: 1, Lever: untargetedLever}},
		}
		r.eng.drawAll(st, cut, r.eng.expect(st))
		for _, c := range st.cands {
			p := c.parts
			require.InDelta(t, (p.Propensity+p.Explore)*p.ContextWeight*p.Value*p.Lever, p.Total, 1e-12, "the parts explain the score, drawn or not")
		}
		return st.cands[0].parts.Total, st.cands[1].parts.Total
	}
}

// TestAScenariosBoostFadesWithEvidence checks that a scenario's
// priority boosts its offer only while little is known of it: with no
// outcomes a priority-80 scenario's offer outranks an untargeted one of
// the same propensity, and once the bandit has seen the untargeted offer
// do half as well again, it wins — drawn or only expected. Without the
// fade the boost of 1.8 kept the worse offer ahead for good.
func TestAScenariosBoostFadesWithEvidence(t *testing.T) {
	require.Equal(t, 1.8, fadedBoost(1.8, 0, priorWeight))
	require.InDelta(t, 1.4, fadedBoost(1.8, priorWeight, priorWeight), 1e-12, "half the boost is gone after w trials")
	require.InDelta(t, 1, fadedBoost(1.8, 1e6, priorWeight), 1e-4)
	require.Equal(t, 1.0, fadedBoost(1, 0, priorWeight), "priority 0: no boost to fade")

	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	seg := "/online/member/noparent/nobeauty/notech"
	rank := rankPair(t, r, day, seg, 80)
	a, b := rank(2) // a cut above every score: expected scores only
	require.Greater(t, a, b, "nothing learnt: the scenario's offer leads")

	// 10% for the scenario's offer, 15% for the untargeted one.
	teachPair(r, seg, 4000, func(i int, untargeted bool) bool { return i%20 < 2 || untargeted && i%20 == 2 })
	a, b = rank(2)
	require.Greater(t, b, a, "expected: a 15%% offer outranks a 10%% one whoever proposed it (without the fade, 1 × 15%% < 1.8 × 10%%)")
	a, b = rank(-1)
	require.Greater(t, b, a, "drawn: a 15%% offer outranks a 10%% one whoever proposed it (without the fade, 1 × 15%% < 1.8 × 10%%)")
}

// TestALateResponseIsCreditedToTheSegmentThatDecided checks that a
// response counts for the bandit arm its trial went to — the customer's
// segment at the decision — even when the customer's behaviour has moved
// them to another segment by the time they respond; and that responses
// to the holdout's offers, which recorded no trial, are not counted.
func TestALateResponseIsCreditedToTheSegmentThatDecided(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Holdout = Holdout{Share: -1}
	r.eng.opts.Holdout.EnsureDefaults()
	m := `{"member":"M1"}`
	r.clock = day
	r.apply(t,
		ev("c1", day.Add(-48*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("v1", day.Add(-time.Hour), "product_view", "app", m, `,"category":"phones","sku":"P1"`))
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 1})
	require.Equal(t, GroupTreatment, d.Group)
	require.NotEmpty(t, d.Offers)
	offer, decided := d.Offers[0].OfferID, d.segment
	r.eng.FlushRecords()

	// A day of browsing baby products makes them a parent.
	var later []string
	for i := range 12 {
		later = append(later, ev(fmt.Sprintf("b%d", i), day.Add(time.Duration(i+1)*time.Hour), "product_view", "app", m, `,"category":"baby","sku":"B1"`))
	}
	r.clock = day.Add(24 * time.Hour)
	r.apply(t, later...)
	now := r.eng.segmentNow("member:M1", features.ChannelApp, day.Add(24*time.Hour).UnixMilli())
	require.NotEqual(t, decided, now, "the customer's segment has changed")

	r.apply(t, ev("k1", day.Add(24*time.Hour), "offer_click", "app", m, fmt.Sprintf(`,"offer_id":%q,"decision_id":%q`, offer, d.DecisionID)))
	alpha, beta := r.bandit.Posterior(models.Arm{Offer: offer, Segment: decided})
	require.Equal(t, [2]float64{2, 2}, [2]float64{alpha, beta}, "one trial and one success in the segment that decided")
	alpha, _ = r.bandit.Posterior(models.Arm{Offer: offer, Segment: now})
	require.Equal(t, 1.0, alpha, "nothing for the segment the customer is in now")

	// The holdout: served, no trial, so its click is no success.
	r.eng.opts.Holdout = Holdout{Share: 1}
	r.eng.opts.Holdout.EnsureDefaults()
	h := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 1})
	require.Equal(t, GroupHoldout, h.Group)
	require.NotEmpty(t, h.Offers)
	r.eng.FlushRecords()
	before, _ := r.bandit.Posterior(models.Arm{Offer: h.Offers[0].OfferID})
	r.apply(t, ev("k2", day.Add(25*time.Hour), "offer_click", "app", m, fmt.Sprintf(`,"offer_id":%q,"decision_id":%q`, h.Offers[0].OfferID, h.DecisionID)))
	after, _ := r.bandit.Posterior(models.Arm{Offer: h.Offers[0].OfferID})
	require.Equal(t, before, after, "a holdout response is not a bandit success")
}

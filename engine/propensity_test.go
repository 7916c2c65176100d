package engine

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// trainOn trains a small forest on vectors laid out by schema whose label
// depends on the first feature, and saves it.
func trainOn(t *testing.T, schema models.Schema, path string) *models.Artifact {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	ds := &models.Dataset{Schema: schema}
	for i := 0; i < 600; i++ {
		x := make([]float64, len(schema.Features))
		for j := range x {
			x[j] = float64(r.IntN(5))
		}
		ds.X = append(ds.X, x)
		ds.Y = append(ds.Y, r.Float64() < 0.1+0.15*x[0])
	}
	a, err := models.Train(ds, models.TrainOptions{Trees: 5, Seed: 1, MinLeaf: 10})
	require.NoError(t, err)
	require.NoError(t, a.Save(path))
	return a
}

func TestDecisionsUseTheLoadedModelAndNameIt(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil
	reg := models.NewRegistry()
	r.eng.opts.Propensity = &RegistryPropensity{Registry: reg, Location: shanghai}
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)

	// Before a model is loaded, the offers' priors decide.
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 1})
	require.Empty(t, d.ModelVersion)
	prior := r.set.Offer(d.Offers[0].OfferID).Prior
	require.Equal(t, prior, d.Offers[0].Score.Propensity)

	// A model trained on another feature layout is refused; priors stay.
	bad := models.Schema{Features: []models.Feature{{Name: "x", Kind: models.Numeric}}}
	badPath := filepath.Join(t.TempDir(), "bad.json")
	trainOn(t, bad, badPath)
	require.ErrorIs(t, reg.Load(badPath, PropensitySchema.Hash()), models.ErrSchemaMismatch)
	require.Nil(t, reg.Active())

	path := filepath.Join(t.TempDir(), "model.json")
	a := trainOn(t, PropensitySchema, path)
	require.NoError(t, reg.Load(path, PropensitySchema.Hash()))
	d = decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelWeb, Limit: 1})
	require.Equal(t, a.Version, d.ModelVersion, "the decision names the model version")
	p := d.Offers[0].Score.Propensity
	require.False(t, math.IsNaN(p))
	require.True(t, p >= 0 && p <= 1)
}

func TestFeatureVectorMatchesTheSchema(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.apply(t, storePurchaseDay(day)...)
	var v features.View
	require.True(t, r.store.ViewKey("member:M1", day.Add(time.Hour).UnixMilli(), &v))
	o := r.set.Offers[0]
	vec := FeatureVector(nil, &v, o, features.ChannelApp, shanghai)
	require.Len(t, vec, len(PropensitySchema.Features))
	i := PropensitySchema.Index("pos_purchases_30d")
	require.Equal(t, 1.0, vec[i])
	require.Equal(t, 259.0, vec[PropensitySchema.Index("spend_offline")])
	require.Equal(t, float64(15), vec[PropensitySchema.Index("hour")], "local hour in Shanghai")
	ch := PropensitySchema.Features[PropensitySchema.Index("channel")]
	require.Equal(t, "app", ch.Vocabulary[int(vec[PropensitySchema.Index("channel")])])
}

func TestRulesReadCustomerScoresFromTheLoadedModel(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil
	reg := models.NewRegistry()
	r.eng, _ = New(Options{
		Store: r.store, Scenarios: r.eng.opts.Scenarios, Budgets: r.budgets, Policy: r.policy,
		Holdout: Holdout{Share: 0.0001}, Clock: func() time.Time { return r.clock },
		Scores: Scores{"purchase_15d": reg}, Location: shanghai,
	})
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	req := DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 5}
	var offers []OfferResult
	fired := func() bool {
		offers = decide(t, r, req).Offers
		return slices.ContainsFunc(offers, func(o OfferResult) bool { return o.Scenario == "predicted_purchase_15d" })
	}
	require.False(t, fired(), "no model: the heuristic stands in, and M1 has no carts")

	// A purchase model that says "likely" for everyone (all labels true).
	ds := &models.Dataset{Schema: CustomerSchema}
	rnd := rand.New(rand.NewPCG(2, 2))
	for i := 0; i < 300; i++ {
		x := make([]float64, len(CustomerSchema.Features))
		for j := range x {
			x[j] = float64(rnd.IntN(3))
		}
		ds.X = append(ds.X, x)
		ds.Y = append(ds.Y, i%10 != 0)
	}
	a, err := models.Train(ds, models.TrainOptions{Trees: 3, Seed: 1, MinLeaf: 10, Label: "purchase_15d"})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "p15.json")
	require.NoError(t, a.Save(path))
	require.NoError(t, reg.Load(path, CustomerSchema.Hash()))
	// The first ask was a contact: what it served (the scenario's offer
	// among them, as an untargeted one) is on its cap now. Ask again with
	// a clean ledger.
	fresh, err := NewPolicy(PolicyOptions{})
	require.NoError(t, err)
	r.eng.opts.Policy = fresh
	require.True(t, fired(), "score(\"purchase_15d\") comes from the model: %+v", offers)
}

// The price and distance drivers are read from carts and from the mix of
// store visits and online sessions; the segment gets their facets only
// once there is enough behaviour to tell, and the propensity vector
// carries them as numbers.
func TestPriceAndDistanceDriversReadCartsAndSessions(t *testing.T) {
	on, off, life := features.Online, features.Offline, features.WLifetime
	cases := []struct {
		name    string
		view    func(v *features.View)
		want    string
		abandon float64
		stores  float64
	}{
		{"one cart and three sessions tell nothing yet",
			func(v *features.View) {
				v.Counts[on][features.AddToCart][life] = 1
				v.Counts[on][features.PageView][life] = 2
				v.Counts[off][features.StoreEnter][life] = 1
			}, "/both/guest/noparent/nobeauty/notech", 1, 1.0 / 3},
		{"a customer who left three of four carts and visits stores often is thrifty and near",
			func(v *features.View) {
				v.Counts[on][features.AddToCart][life] = 4
				v.Counts[on][features.Checkout][life] = 1
				v.Counts[on][features.PageView][life] = 3
				v.Counts[off][features.StoreEnter][life] = 3
			}, "/both/guest/noparent/nobeauty/notech/thrifty/near", 0.75, 0.5},
		{"a customer who checks out every cart and rarely visits stores spends and lives far",
			func(v *features.View) {
				v.Counts[on][features.AddToCart][life] = 3
				v.Counts[on][features.Checkout][life] = 3
				v.Counts[on][features.PageView][life] = 9
				v.Counts[off][features.StoreEnter][life] = 1
			}, "/both/guest/noparent/nobeauty/notech/spender/far", 0, 0.1},
		{"distance is no facet for a customer who only shops online",
			func(v *features.View) {
				v.Counts[on][features.AddToCart][life] = 2
				v.Counts[on][features.PageView][life] = 8
			}, "/online/guest/noparent/nobeauty/notech/thrifty", 1, 0},
	}
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := features.View{Known: true, Now: day.UnixMilli()}
			tc.view(&v)
			require.Equal(t, tc.want+"/app", segment(&v, features.ChannelApp))
			require.Zero(t, testing.AllocsPerRun(100, func() { segment(&v, features.ChannelApp) }), "choosing a segment allocates")
			vec := FeatureVector(nil, &v, r.set.Offers[0], features.ChannelApp, shanghai)
			require.InDelta(t, tc.abandon, vec[PropensitySchema.Index("cart_abandon_share")], 1e-9)
			require.InDelta(t, tc.stores, vec[PropensitySchema.Index("store_share")], 1e-9)
		})
	}
}

// A customer's own offer history moves the Thompson draw: one who
// ignored every offer of a type draws lower for another offer of that
// type than the segment does, one who clicked them draws higher, and
// offers of other types are left alone.
func TestDrawsFollowTheCustomersOwnResponsesToTheOfferType(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	var coupons []*scenarios.Offer
	var other *scenarios.Offer
	for _, o := range r.set.Offers {
		switch {
		case o.Type == scenarios.Coupon:
			coupons = append(coupons, o)
		case other == nil:
			other = o
		}
	}
	require.GreaterOrEqual(t, len(coupons), 2, "the built-in catalog has two coupons")
	shown, probe := coupons[0], coupons[1]
	mean := func(history []features.OfferStats, o *scenarios.Offer) float64 {
		st := &decideState{set: r.set, rng: rand.New(rand.NewPCG(1, 2)), segment: "/online/guest/noparent/nobeauty/notech"}
		st.view = features.View{Known: true, Offers: history}
		st.sreq = scenarios.Request{Channel: features.ChannelApp, Now: day.UnixMilli()}
		st.openGate(r.policy, r.set) // reads the history
		var sum float64
		const n = 2000
		for range n {
			st.cands = append(st.cands[:0], candidate{offer: o, parts: ScoreParts{Propensity: 0.1, ContextWeight: 1, Value: 1, Lever: 1}})
			r.eng.drawAll(st, -1, 1) // no offer has outcomes: propensities need no calibration
			sum += st.cands[0].parts.Total
		}
		return sum / n
	}
	none := mean(nil, probe)
	ignored := mean([]features.OfferStats{{Offer: shown.ID, Impressions: 4}}, probe)
	clicked := mean([]features.OfferStats{{Offer: shown.ID, Impressions: 2, Clicks: 2}}, probe)
	require.Less(t, ignored, none/2, "four ignored coupons: %.3f against %.3f", ignored, none)
	require.Greater(t, clicked, 2*none, "two clicked coupons: %.3f against %.3f", clicked, none)
	require.InDelta(t, mean(nil, other), mean([]features.OfferStats{{Offer: shown.ID, Impressions: 4}}, other), 1e-12,
		"coupons say nothing about an offer of another type")
}

package engine

import (
	"sort"
	"sync"
	"time"

	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// The propensity features: what the engine knows about a customer, an
// offer and the moment, as one vector laid out by PropensitySchema. The
// same function builds the vector when a decision is served (and logs it
// with the decision) and when a model scores candidates, so a model
// trained on logged decisions sees exactly the features it will be served
// with, as they were at decision time — nothing from after the decision
// can leak into training.

var offerTypeVocab = func() []string {
	var v []string
	for t := scenarios.OfferType(0); t.String() != "unknown" && t.String() != ""; t++ {
		v = append(v, t.String())
	}
	sort.Strings(v)
	return v
}()

var channelVocab = func() []string {
	var v []string
	for c := features.ChannelWeb; c < features.NumChannels; c++ {
		v = append(v, c.String())
	}
	sort.Strings(v)
	return v
}()

// customerNames are the customer's own features, the first part of every
// propensity vector and the whole of a customer-score vector.
var customerNames = []string{
	"views_online_24h", "views_online_7d", "views_online_30d", "searches_7d", "carts_30d", "cart_value",
	"orders_online_30d", "pos_purchases_30d", "store_visits_30d", "dwell_min_30d",
	"spend_online", "spend_offline", "orders", "aov", "recency_days", "rfm_r", "rfm_f", "rfm_m", "points",
	"viewed_not_bought", "member", "tenure_days", "hour", "weekday",
}

var offerNames = []string{
	"offer_impressions", "offer_clicks", "offer_dismissals", "offer_redemptions",
	"offer_value", "offer_cost", "offer_prior",
}

// driverNames are the customer's features that drive responses to offers
// (the bandit's segment facets, as numbers) and how the customer has
// responded to offers so far, across all offers. They are propensity
// features only: customer scores such as purchase intent keep
// CustomerSchema. Cart abandonment hints at price sensitivity and the
// store share of sessions at how near the store is (see priceFacet and
// distanceFacet); the mean cart line is what the customer picks when they
// choose.
var driverNames = []string{
	"online_views_life", "store_visits_life",
	"interest_baby", "interest_beauty", "interest_tech",
	"offers_shown", "offers_clicked", "offers_redeemed",
	"carts_life", "cart_abandon_share", "cart_line_mean", "sessions_life", "store_share",
}

// CustomerSchema is the layout of customer-score vectors (scores that do
// not depend on an offer, such as purchase intent: "purchase_15d").
var CustomerSchema = func() models.Schema {
	var s models.Schema
	for _, n := range customerNames {
		s.Features = append(s.Features, models.Feature{Name: n, Kind: models.Numeric})
	}
	return s
}()

var customerSchemaHash = CustomerSchema.Hash()

// PropensitySchema is the layout of propensity feature vectors; models
// served by the engine must be trained on it (their schema hash must equal
// PropensitySchema.Hash()).
var PropensitySchema = func() models.Schema {
	s := models.Schema{Features: append([]models.Feature(nil), CustomerSchema.Features...)}
	for _, n := range offerNames {
		s.Features = append(s.Features, models.Feature{Name: n, Kind: models.Numeric})
	}
	for _, n := range driverNames {
		s.Features = append(s.Features, models.Feature{Name: n, Kind: models.Numeric})
	}
	s.Features = append(s.Features,
		models.Feature{Name: "offer_type", Kind: models.Categorical, Vocabulary: offerTypeVocab},
		models.Feature{Name: "channel", Kind: models.Categorical, Vocabulary: channelVocab},
	)
	return s
}()

var propensitySchemaHash = PropensitySchema.Hash()

func vocabIndex(vocab []string, s string) float64 {
	i := sort.SearchStrings(vocab, s)
	if i < len(vocab) && vocab[i] == s {
		return float64(i)
	}
	return -1
}

// FeatureVector appends the propensity features of customer v, offer o
// and channel ch (at v.Now, in loc) to dst.
func FeatureVector(dst []float64, v *features.View, o *scenarios.Offer, ch features.Channel, loc *time.Location) []float64 {
	var imp, clk, dis, red float64
	var shown, clicked, redeemed uint32
	for i := range v.Offers {
		st := &v.Offers[i]
		shown, clicked, redeemed = shown+st.Impressions, clicked+st.Clicks, redeemed+st.Redemptions
		if st.Offer == o.ID {
			imp, clk, dis, red = float64(st.Impressions), float64(st.Clicks), float64(st.Dismissals), float64(st.Redemptions)
		}
	}
	c := &v.Counts
	life := features.WLifetime
	total, baby, beauty, tech := interests(v)
	share := func(n uint32) float64 { return float64(n) / float64(max(total, 1)) }
	abandon, carts := cartAbandonment(v)
	stores, sessions := storeShare(v)
	var cartLine float64
	if carts > 0 {
		cartLine = float64(v.Sums[features.Online][features.AddToCart][life]) / float64(carts) / 100
	}
	dst = CustomerVector(dst, v, loc)
	return append(dst,
		imp, clk, dis, red,
		float64(o.Value)/100, float64(o.Cost)/100, o.Prior,
		float64(c[features.Online][features.PageView][life]+c[features.Online][features.ProductView][life]+c[features.Online][features.Search][life]),
		float64(c[features.Offline][features.StoreEnter][life]),
		share(baby), share(beauty), share(tech),
		float64(shown), float64(clicked), float64(redeemed),
		float64(carts), abandon, cartLine, float64(sessions), stores,
		vocabIndex(offerTypeVocab, o.Type.String()),
		vocabIndex(channelVocab, ch.String()),
	)
}

// CustomerVector appends customer v's own features (CustomerSchema, at
// v.Now, in loc) to dst.
func CustomerVector(dst []float64, v *features.View, loc *time.Location) []float64 {
	c := &v.Counts
	on, off := features.Online, features.Offline
	member, tenure := 0.0, 0.0
	if v.Member {
		member = 1
	}
	if v.FirstTS > 0 && v.Now > v.FirstTS {
		tenure = float64(v.Now-v.FirstTS) / 86_400_000
	}
	t := time.UnixMilli(v.Now).In(loc)
	return append(dst,
		float64(c[on][features.ProductView][features.W24h]),
		float64(c[on][features.ProductView][features.W7d]),
		float64(c[on][features.ProductView][features.W30d]),
		float64(c[on][features.Search][features.W7d]),
		float64(c[on][features.AddToCart][features.W30d]),
		float64(v.CartValue)/100,
		float64(c[on][features.Order][features.W30d]),
		float64(c[off][features.PosPurchase][features.W30d]),
		float64(c[off][features.StoreEnter][features.W30d]),
		float64(v.Sums[off][features.Dwell][features.W30d])/60,
		float64(v.SpendOnline)/100,
		float64(v.SpendOffline)/100,
		float64(v.Orders),
		float64(v.AOV)/100,
		float64(v.RecencyDays),
		float64(v.RScore), float64(v.FScore), float64(v.MScore),
		float64(v.Points),
		float64(len(v.ViewedNotBought)),
		member, tenure,
		float64(t.Hour()), float64(t.Weekday()),
	)
}

// Scores serves named customer scores (purchase intent, "purchase_15d")
// from their registries to scenarios' score(name): each model is trained
// on CustomerSchema. A name without a loaded model answers ok=false and
// score() is -1 in rules.
type Scores map[string]*models.Registry

// score evaluates the named model for the customer in st.view, computing
// the customer vector at most once per request.
func (st *decideState) score(name string) (float64, bool) {
	r := st.scores[name]
	if r == nil {
		return 0, false
	}
	m := r.Active()
	if m == nil {
		return 0, false
	}
	if !st.custVecOK {
		st.custVec = CustomerVector(st.custVec[:0], &st.view, st.loc)
		st.custVecOK = true
	}
	return m.Propensity(st.custVec), true
}

// RegistryPropensity serves the model registry's active model as the
// engine's Propensity. A registry with no model answers ok=false, and the
// engine falls back to the offers' priors.
type RegistryPropensity struct {
	Registry *models.Registry
	Location *time.Location
	pool     sync.Pool
}

var _ Propensity = (*RegistryPropensity)(nil)

// Propensity scores one candidate with the active model.
func (r *RegistryPropensity) Propensity(v *features.View, o *scenarios.Offer, ch features.Channel) (float64, string, bool) {
	m := r.Registry.Active()
	if m == nil {
		return 0, "", false
	}
	buf, _ := r.pool.Get().(*[]float64)
	if buf == nil {
		b := make([]float64, 0, len(PropensitySchema.Features))
		buf = &b
	}
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	vec := FeatureVector((*buf)[:0], v, o, ch, loc)
	p := m.Propensity(vec)
	*buf = vec
	r.pool.Put(buf)
	return p, m.Version, true
}

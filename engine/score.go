package engine

// Scoring and exploration: how a proposal becomes a scored candidate
// (propensity × context weight × value × lever) and how the best
// candidates are re-ranked by Thompson sampling before serving.

import (
	"nbo/features"
	"nbo/scenarios"
)

// consider checks proposal i's eligibility and scores it into st.cands,
// keeping one candidate per offer (the best-scoring proposal).
//
// Every proposal, a scenario's or the untargeted catalog's, must pass the
// same pure eligibility rules (scenarios.Offer.EligibleFor): validity and
// phase, channel, store, and the consent the offer's catalog entry
// requires on the request's channel. An offer that requires marketing
// consent needs it whoever proposed it: the engine chooses untargeted
// offers per customer too (propensity, value, the customer's segment), so
// showing one to a customer who declined marketing is marketing all the
// same. Offers that require no consent (transactional service offers)
// need none on any channel.
func (e *Engine) consider(st *decideState, i int, ch features.Channel, d *Decision) {
	p := &st.props[i]
	o := p.Offer
	v := &st.view
	if p.Scenario == nil && st.stamp[o.Index] == st.gen {
		return // a scenario proposed it already, with a higher lever
	}
	if o.EligibleFor(v, &st.sreq) != scenarios.Eligible {
		return
	}
	parts := ScoreParts{ContextWeight: 1, Lever: 1, Propensity: o.Prior, Value: expectedNet(o, v)}
	if p.Scenario != nil {
		parts.Lever = 1 + float64(p.Priority)/100
	} else {
		parts.Lever = untargetedLever
	}
	oi := o.Index
	if st.stamp[oi] == st.gen {
		// The offer is a candidate already: keep the higher lever.
		c := &st.cands[st.best[oi]-1]
		if parts.Lever > c.parts.Lever {
			c.prop = i
			c.parts.Lever = parts.Lever
			c.parts.Total = c.parts.Propensity * c.parts.ContextWeight * c.parts.Value * c.parts.Lever
		}
		return
	}
	store := scenarios.FulfilmentStore(v, &st.sreq)
	if e.opts.Propensity != nil && v.Known {
		if p, ver, ok := e.opts.Propensity.Propensity(v, o, ch); ok {
			parts.Propensity = p
			d.ModelVersion = ver
		}
	}
	parts.Total = parts.Propensity * parts.ContextWeight * parts.Value * parts.Lever
	st.cands = append(st.cands, candidate{prop: i, offer: o, store: store, parts: parts})
	st.stamp[oi] = st.gen
	st.best[oi] = int32(len(st.cands))
}

// untargetedLever discounts offers no scenario proposed: they win a slot
// only when they are clearly better (over twice, against a scenario of
// priority 0) than what the rules chose for this customer.
const untargetedLever = 0.5

// defaultBasket is the purchase a response is expected to bring for a
// customer with no purchase history, minor units.
const defaultBasket = 20_000

// expectedNet is the value of a response to the retailer, in yuan: the
// customer's average order (or defaultBasket) less what the offer costs,
// never below ¥1. Ranking by face value instead would favour the most
// generous offers whatever they earn.
func expectedNet(o *scenarios.Offer, v *features.View) float64 {
	basket := int64(defaultBasket)
	if v.Orders > 0 && v.AOV > 0 {
		basket = v.AOV
	}
	return float64(max(basket-o.Cost, 100)) / 100
}

// segment is the bandit's customer segment: channel habit × value tier,
// coarse enough that every arm learns quickly.
func segment(v *features.View) string {
	if !v.Known {
		return "new"
	}
	online := v.Counts[features.Online][features.ProductView][features.W30d] + v.Counts[features.Online][features.Order][features.W30d]
	offline := v.Counts[features.Offline][features.StoreEnter][features.W30d] + v.Counts[features.Offline][features.Dwell][features.W30d] + v.Counts[features.Offline][features.PosPurchase][features.W30d]
	habit := "both"
	switch {
	case offline == 0:
		habit = "online"
	case online == 0:
		habit = "offline"
	}
	tier := "low"
	if v.MScore >= 4 {
		tier = "high"
	}
	return habit + "-" + tier
}

// arbitrate orders candidates best first, dropping those whose budget or
// contact policy says no. With explore, the best few by expected score are
// re-scored with a Thompson draw of their response rate before the final
// order; serve then takes them in order, one per offer category
// (diversity), up to the limit.
func (e *Engine) arbitrate(st *decideState, ch features.Channel, explore bool) {
	better := func(a, b *candidate) bool {
		if a.parts.Total != b.parts.Total {
			return a.parts.Total > b.parts.Total
		}
		return a.offer.ID < b.offer.ID
	}
	// Partial selection sort: the head of the slice becomes the best k
	// allowed candidates in order; the rest is never sorted.
	k := 0
	for k < explored && k < len(st.cands) {
		best := k
		for j := k + 1; j < len(st.cands); j++ {
			if better(&st.cands[j], &st.cands[best]) {
				best = j
			}
		}
		st.cands[k], st.cands[best] = st.cands[best], st.cands[k]
		if !e.allowed(st, &st.cands[k], ch) {
			last := len(st.cands) - 1
			st.cands[k] = st.cands[last]
			st.cands = st.cands[:last]
			continue
		}
		k++
	}
	if !explore || e.opts.Explorer == nil {
		return
	}
	for i := 0; i < k; i++ {
		c := &st.cands[i]
		sample := e.opts.Explorer.Sample(c.offer.ID, st.segment, c.parts.Propensity, st.rng)
		c.parts.Explore = sample - c.parts.Propensity
		c.parts.Total = sample * c.parts.ContextWeight * c.parts.Value * c.parts.Lever
	}
	head := st.cands[:k]
	for i := 1; i < len(head); i++ {
		for j := i; j > 0 && better(&head[j], &head[j-1]); j-- {
			head[j], head[j-1] = head[j-1], head[j]
		}
	}
}

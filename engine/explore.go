package engine

import (
	"math/rand/v2"

	"nbo/models"
)

// BanditExplorer is Thompson sampling over a models.Bandit.
//
// The bandit's counts are read as trials and successes: every served offer
// records a trial (Update(arm, false) adds to beta) and every click or
// redemption a success (Update(arm, true) adds to alpha), so an arm with
// posterior counts (1+s, 1+n) has s successes in n trials. Sampling draws
// the response rate from Beta(w·p + s, w·(1−p) + n − s), where p is the
// model's (or the offer's prior) propensity and w the prior's weight in
// pseudo-observations: a new arm explores around the model's belief, and
// evidence takes over as it accumulates. A draw keeps Spread of its
// distance from the posterior's mean.
type BanditExplorer struct {
	Bandit *models.Bandit
	// PriorWeight is w above. Default: 10.
	PriorWeight float64
	// Spread scales how far a draw may land from its posterior's mean:
	// 1 is plain Thompson sampling, smaller explores less (see temper).
	// Default (0 or less): 0.5; above 1 is taken as 1.
	Spread float64
}

// weight is PriorWeight, or its default.
func (b *BanditExplorer) weight() float64 {
	if b.PriorWeight <= 0 {
		return priorWeight
	}
	return b.PriorWeight
}

func (b *BanditExplorer) spread() float64 {
	if b.Spread <= 0 {
		return explorationSpread
	}
	return min(b.Spread, 1)
}

var _ Explorer = (*BanditExplorer)(nil)

// Sample draws a response rate for arm.
func (b *BanditExplorer) Sample(offer, segment string, prior float64, rng *rand.Rand) float64 {
	w := b.weight()
	prior = min(max(prior, 1e-4), 1-1e-4)
	alpha, beta := b.Bandit.Posterior(models.Arm{Offer: offer, Segment: segment})
	s, n := alpha-1, beta-1
	return temper(w*prior+s, w*(1-prior)+max(n-s, 0), b.spread(), rng)
}

// Update records a trial (success=false, at serve time) or a success.
func (b *BanditExplorer) Update(offer, segment string, success bool) {
	b.Bandit.Update(models.Arm{Offer: offer, Segment: segment}, success)
}

package bench

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// TestOraclePolicyBeatsRandom plays two policies against the same
// simulated customers: the oracle picks the offer type with the highest
// expected redemption, the random policy any type. The oracle must redeem
// far more — the hidden probabilities leave room for a good policy.
func TestOraclePolicyBeatsRandom(t *testing.T) {
	s := newSim(t, Options{Seed: 17, Customers: 3000})
	rng := rand.New(rand.NewPCG(5, 6))
	oracle := Scorecard{Policy: "oracle"}
	random := Scorecard{Policy: "random"}
	ch := features.ChannelApp
	for round := range 4 {
		for idx := range 3000 {
			best, bestP := OfferType(0), -1.0
			for typ := range NumOfferTypes {
				if p := s.ExpectedRedemption(idx, typ, ch); p > bestP {
					best, bestP = typ, p
				}
			}
			pick := OfferType(rng.IntN(int(NumOfferTypes)))
			for _, side := range []struct {
				card *Scorecard
				typ  OfferType
			}{{&oracle, best}, {&random, pick}} {
				out, err := s.Respond(Delivery{Customer: idx, OfferID: side.typ.String(), Type: side.typ, Channel: ch, At: int64(round)}, rng)
				require.NoError(t, err)
				side.card.Add(out, 1000)
				side.card.AddRegret(s.ExpectedRedemption(idx, side.typ, ch), bestP)
			}
		}
	}
	require.Greater(t, oracle.Redemptions, 2*random.Redemptions)
	require.Greater(t, oracle.NetRevenue(), 2*random.NetRevenue())
	require.InDelta(t, 0, oracle.Regret(), 1e-9, "the oracle has no regret")
	require.Greater(t, random.Regret(), 0.0)

	var buf bytes.Buffer
	require.NoError(t, WriteScorecards(&buf, "Decision quality", "random", []Scorecard{random, oracle}))
	require.Contains(t, buf.String(), "| oracle | 12000 |")
	require.Contains(t, buf.String(), "× random")
	t.Log("\n" + buf.String())
}

func TestYuanFormatsMinorUnits(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{{0, "¥0.00"}, {5, "¥0.05"}, {12345, "¥123.45"}, {-250, "-¥2.50"}} {
		require.Equal(t, c.want, yuan(c.in))
	}
}

// TestReferenceEstimatesAverageTheHiddenTerms checks the reference
// policies' beliefs: TraitRedemption is the true probability averaged over
// the taste term, and the observable estimate sits between the reachable
// extremes for every customer with the same observable profile.
func TestReferenceEstimatesAverageTheHiddenTerms(t *testing.T) {
	s := newSim(t, Options{Seed: 5, Customers: 200})
	ch := features.ChannelApp
	d := newDraw(9, 9)
	obs := NewObservableRedemptions(512)
	for idx := range 200 {
		c := s.Customer(idx)
		for typ := range NumOfferTypes {
			z, ok := c.logit(typ, ch)
			if !ok {
				require.Zero(t, s.TraitRedemption(idx, typ, ch))
				require.Zero(t, obs.Redemption(s, idx, typ, ch))
				continue
			}
			var mc float64
			const n = 20000
			for range n {
				mc += sigmoid(z + tasteSD*d.norm())
			}
			require.InDelta(t, mc/n, s.TraitRedemption(idx, typ, ch), 0.003, "customer %d, %s", idx, typ)
			p := obs.Redemption(s, idx, typ, ch)
			require.Greater(t, p, 0.0)
			require.Less(t, p, 1.0)
		}
	}
	// Price sensitivity is hidden: two customers with the same observable
	// profile get the same estimate, though not the same truth.
	profile := func(c Customer) [7]bool {
		return [7]bool{c.Habit == OnlineOnly, c.Habit == StoreOnly, c.Member, c.AppUser, c.Parent(),
			c.likes(catSkincare) || c.likes(catMakeup), c.likes(catElectronics) || c.likes(catPhones)}
	}
	ch = features.ChannelMiniapp // reaches everyone
	pairs := 0
	for i := range 200 {
		for j := i + 1; j < 200; j++ {
			ci, cj := s.Customer(i), s.Customer(j)
			if profile(ci) != profile(cj) {
				continue
			}
			pairs++
			require.Equal(t, obs.Redemption(s, i, OfferCoupon, ch), obs.Redemption(s, j, OfferCoupon, ch))
			if ci.PriceSensitivity != cj.PriceSensitivity {
				require.NotEqual(t, s.TraitRedemption(i, OfferCoupon, ch), s.TraitRedemption(j, OfferCoupon, ch))
			}
		}
	}
	require.Positive(t, pairs)
}

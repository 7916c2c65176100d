package bench

import (
	"fmt"
	"io"
	"math"
	"strings"

	"nbo/features"
)

// ExpectedRedemption is the chance that delivering an offer of type t on
// channel ch to customer idx ends in a redemption: the channel's
// visibility times the hidden response probability. An oracle policy ranks
// candidate offers by ExpectedRedemption × margin − cost.
func (s *Simulator) ExpectedRedemption(idx int, t OfferType, ch features.Channel) float64 {
	return visibility(ch) * s.TrueProbability(idx, t, ch)
}

// TraitRedemption is what a reference policy that knows customer idx's
// traits but not their individual taste expects ExpectedRedemption to be:
// the channel's visibility times the response probability averaged over
// the taste term's distribution (7-point Gauss–Hermite quadrature). It
// measures how much of the oracle any policy could reach, however well it
// learned the customer, without reading their mind.
func (s *Simulator) TraitRedemption(idx int, t OfferType, ch features.Channel) float64 {
	if idx < 0 || idx >= s.opts.Customers || t >= NumOfferTypes {
		return 0
	}
	c := s.customer(idx)
	z, ok := c.logit(t, ch)
	if !ok {
		return 0
	}
	var p float64
	for i, x := range hermiteNodes {
		p += hermiteWeights[i] * sigmoid(z+tasteSD*x)
	}
	return visibility(ch) * p
}

// hermiteNodes and hermiteWeights integrate against the standard normal:
// E[f(X)] ≈ Σ w·f(x).
var (
	hermiteNodes   = [7]float64{0, 1.1544053947399682, -1.1544053947399682, 2.366759410734541, -2.366759410734541, 3.750439717725742, -3.750439717725742}
	hermiteWeights = [7]float64{0.45714285714285713, 0.24012317860501275, 0.24012317860501275, 0.030757123967586496, 0.030757123967586496, 0.0005482688559722184, 0.0005482688559722184}
)

// ObservableRedemptions estimates ExpectedRedemption for a reference
// policy that knows only the traits a customer's behaviour reveals in this
// simulator — channel habit, favourite categories, membership, app use —
// and averages over the rest (price sensitivity, affluence, distance to
// the home store, taste) as the population draws them. Price sensitivity
// and distance do leave weak footprints in behaviour (cart abandonment,
// the cheaper of two items, fewer store visits from far away) that this
// reference does not read, so it is a floor for what a behaviour-only
// policy can learn rather than its ceiling; the ceiling lies between it
// and oracle-without-taste. Estimates are cached per observable profile;
// not safe for concurrent use.
type ObservableRedemptions struct {
	samples []hiddenTraits
	cache   map[uint32]float64
}

type hiddenTraits struct{ ps, aff, dist, taste float64 }

// NewObservableRedemptions draws n samples of the hidden traits
// (deterministically); 512 keep the estimate within about 1% of the
// integral.
func NewObservableRedemptions(n int) *ObservableRedemptions {
	d := newDraw(0x0b5e, 0x7ab1e)
	o := &ObservableRedemptions{samples: make([]hiddenTraits, n), cache: map[uint32]float64{}}
	for i := range o.samples {
		ps := d.float()
		o.samples[i] = hiddenTraits{
			ps:    ps,
			aff:   math.Min(1, math.Max(0, 0.5+0.25*d.norm()-0.3*(ps-0.5))),
			dist:  0.3 + 12*d.exp()/2,
			taste: tasteSD * d.norm(),
		}
	}
	return o
}

// Redemption estimates ExpectedRedemption for customer idx of s.
func (o *ObservableRedemptions) Redemption(s *Simulator, idx int, t OfferType, ch features.Channel) float64 {
	if idx < 0 || idx >= s.opts.Customers || t >= NumOfferTypes || ch >= features.NumChannels {
		return 0
	}
	c := s.customer(idx)
	b := func(x bool) uint32 {
		if x {
			return 1
		}
		return 0
	}
	key := uint32(c.Habit) | b(c.Member)<<2 | b(c.AppUser)<<3 | b(c.Parent())<<4 |
		b(c.likes(catSkincare) || c.likes(catMakeup))<<5 | b(c.likes(catElectronics) || c.likes(catPhones))<<6 |
		uint32(t)<<8 | uint32(ch)<<16
	if p, ok := o.cache[key]; ok {
		return p
	}
	var sum float64
	for _, h := range o.samples {
		c.PriceSensitivity, c.Affluence, c.DistanceKm = h.ps, h.aff, h.dist
		if z, ok := c.logit(t, ch); ok {
			sum += sigmoid(z + h.taste)
		}
	}
	p := visibility(ch) * sum / float64(len(o.samples))
	o.cache[key] = p
	return p
}

// Scorecard totals how a policy did against the simulated customers, for
// the decision-quality comparison (engine vs random vs rules vs oracle).
// Add every delivery's outcome; not safe for concurrent use.
type Scorecard struct {
	Policy string

	Deliveries        int64
	Impressions       int64
	Clicks            int64
	Redemptions       int64
	InStore           int64 // redemptions at a store till
	ConsentViolations int64 // deliveries to customers who had not opted in

	Revenue   int64 // purchases that came with redemptions, minor units
	OfferCost int64 // cost of the redeemed offers, minor units

	// Expected is the sum of ExpectedRedemption over the deliveries, and
	// Best the sum of the best candidate's, as the caller reports them
	// (AddRegret); Best − Expected is the regret in redemptions.
	Expected, Best float64
}

// Add counts one delivery's outcome; cost is what the offer costs the
// retailer when it is redeemed (minor units).
func (c *Scorecard) Add(o Outcome, cost int64) {
	c.Deliveries++
	if o.Impression {
		c.Impressions++
	}
	if o.Click {
		c.Clicks++
	}
	if o.Redeem {
		c.Redemptions++
		c.Revenue += o.Revenue
		c.OfferCost += cost
		if o.InStore {
			c.InStore++
		}
	}
	if o.ConsentViolation {
		c.ConsentViolations++
	}
}

// AddRegret records the expected redemptions of the chosen offer and of
// the best offer the policy could have chosen (both from
// ExpectedRedemption).
func (c *Scorecard) AddRegret(chosen, best float64) {
	c.Expected += chosen
	c.Best += best
}

// ResponseRate is redemptions per impression.
func (c *Scorecard) ResponseRate() float64 {
	if c.Impressions == 0 {
		return 0
	}
	return float64(c.Redemptions) / float64(c.Impressions)
}

// NetRevenue is revenue from redemptions minus the offers' cost.
func (c *Scorecard) NetRevenue() int64 { return c.Revenue - c.OfferCost }

// Regret is the expected redemptions lost against always choosing the
// best candidate.
func (c *Scorecard) Regret() float64 { return c.Best - c.Expected }

// WriteScorecards writes policies side by side as a Markdown table, with
// each policy's net revenue as a ratio to the baseline policy's (the one
// named baseline; no ratio column when it is not among them).
func WriteScorecards(w io.Writer, title, baseline string, cards []Scorecard) error {
	var base int64
	haveBase := false
	for _, c := range cards {
		if c.Policy == baseline {
			base, haveBase = c.NetRevenue(), true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", title)
	b.WriteString("| policy | deliveries | impressions | clicks | redemptions | in store | response rate | revenue | offer cost | net revenue |")
	if haveBase {
		fmt.Fprintf(&b, " × %s |", mdEscape(baseline))
	}
	b.WriteString(" regret | consent violations |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	if haveBase {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, c := range cards {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.2f%% | %s | %s | %s |",
			mdEscape(c.Policy), c.Deliveries, c.Impressions, c.Clicks, c.Redemptions, c.InStore,
			100*c.ResponseRate(), yuan(c.Revenue), yuan(c.OfferCost), yuan(c.NetRevenue()))
		if haveBase {
			if base > 0 {
				fmt.Fprintf(&b, " %.2f |", float64(c.NetRevenue())/float64(base))
			} else {
				b.WriteString(" – |")
			}
		}
		fmt.Fprintf(&b, " %.1f | %d |\n", c.Regret(), c.ConsentViolations)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the scorecards %q: %w", title, err)
	}
	return nil
}

// yuan formats minor units as ¥ with two decimals.
func yuan(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, minor/100, minor%100)
}

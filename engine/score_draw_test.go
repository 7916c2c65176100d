package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/models"
)

// logOddsRate is lineageRate as drawAll describes it, summed in log-odds
// with a logarithm per level and an exponential (how thompson computed
// it until the odds-product form): the reference lineageRate must match.
func logOddsRate(path []models.Beta, p, w float64) float64 {
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	p = clampP(p)
	last := len(path) - 1
	if last > 0 {
		p = shrink(path[0], p, w)
		base := logit(p)
		z := base
		for _, b := range path[1:last] {
			if b != (models.Beta{Alpha: 1, Beta: 1}) {
				z += logit(shrink(b, p, w)) - base
			}
		}
		p = clampP(1 / (1 + math.Exp(-z)))
	}
	return p
}

// randomLineage is a lineage of 1 to lineageMax levels whose posteriors
// range from unseen (Beta(1, 1), often) through a handful of trials to
// millions, with successes from none to all of them (and a few more, as
// a success recorded without its trial allows).
func randomLineage(rng *rand.Rand, dst []models.Beta) []models.Beta {
	dst = dst[:0]
	for range 1 + rng.IntN(lineageMax) {
		if rng.IntN(4) == 0 {
			dst = append(dst, models.Beta{Alpha: 1, Beta: 1})
			continue
		}
		n := math.Floor(math.Pow(10, 7*rng.Float64()))
		s := math.Floor(n * rng.Float64() * rng.Float64())
		if rng.IntN(20) == 0 {
			s = n + float64(rng.IntN(3))
		}
		dst = append(dst, models.Beta{Alpha: 1 + s, Beta: 1 + n})
	}
	return dst
}

func TestLineageRateIsTheLogOddsSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 17))
	var path []models.Beta
	for round := range 200_000 {
		path = randomLineage(rng, path)
		p := rng.Float64()
		if rng.IntN(10) == 0 { // propensities beyond the clamp
			p = []float64{0, 1, 1e-9, 1 - 1e-9, -0.5, 2}[rng.IntN(6)]
		}
		w := []float64{1, priorWeight, 50}[rng.IntN(3)]
		want := logOddsRate(path, p, w)
		got := lineageRate(path, p, w)
		require.InEpsilon(t, want, got, 1e-12, "round %d: path %v, p %v, w %v", round, path, p, w)
		require.True(t, got >= 1e-4 && got <= 1-1e-4, "round %d: %v outside the clamp", round, got)
	}
}

// TestThompsonDrawsWhatTheLogOddsFormDrew checks that, from the same
// generator, thompson draws what the log-odds form of the prior drew
// (the same Beta draw from parameters equal up to rounding): the
// odds-product form changes the cost, not the distribution.
func TestThompsonDrawsWhatTheLogOddsFormDrew(t *testing.T) {
	pick := rand.New(rand.NewPCG(5, 23))
	rngA := rand.New(rand.NewPCG(9, 9))
	rngB := rand.New(rand.NewPCG(9, 9))
	var path []models.Beta
	for round := range 50_000 {
		path = randomLineage(pick, path)
		p, w := pick.Float64(), float64(priorWeight)
		got := thompson(path, p, w, 1, rngA)
		q := logOddsRate(path, p, w)
		s, n := path[len(path)-1].Alpha-1, path[len(path)-1].Beta-1
		want := models.SampleBeta(rngB, w*q+s, w*(1-q)+max(n-s, 0))
		// InDelta, not InEpsilon: a draw of a tiny shape may underflow to 0.
		require.InDelta(t, want, got, 1e-9*want, "round %d: path %v, p %v", round, path, p)
	}
}

// TestTemperNarrowsTheDrawAroundTheMean checks that a tempered draw is
// the plain draw from the same generator moved towards the posterior's
// mean: same mean, spread times the standard deviation.
func TestTemperNarrowsTheDrawAroundTheMean(t *testing.T) {
	rngA := rand.New(rand.NewPCG(3, 4))
	rngB := rand.New(rand.NewPCG(3, 4))
	const a, b, spread, n = 3.0, 17.0, 0.5, 200_000
	m := a / (a + b)
	var sum, sq float64
	for range n {
		x := temper(a, b, spread, rngA)
		plain := models.SampleBeta(rngB, a, b)
		require.InDelta(t, m+spread*(plain-m), x, 1e-12)
		require.True(t, x > 0 && x < 1)
		sum += x
		sq += (x - m) * (x - m)
	}
	sd := math.Sqrt(a * b / ((a + b) * (a + b) * (a + b + 1)))
	require.InDelta(t, m, sum/n, 4*spread*sd/math.Sqrt(n), "the mean is the posterior's")
	require.InEpsilon(t, spread*sd, math.Sqrt(sq/n), 0.01, "the deviation is spread times the posterior's")
	require.Equal(t, 0.5, (&BanditExplorer{}).spread(), "default spread")
	require.Equal(t, 1.0, (&BanditExplorer{Spread: 3}).spread(), "never wider than the posterior")
}

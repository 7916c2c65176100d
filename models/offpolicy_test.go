package models

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// A logged bandit problem with a known answer: context x ~ U(0,1), three
// offers with reward probabilities r(x,a), a logging policy that spreads
// its choices by a known softmax, and a target policy that always picks
// the truly best offer. Its true value is ∫ max_a r(x,a) dx.
func trueReward(x float64, a int) float64 {
	switch a {
	case 0:
		return 0.3
	case 1:
		return 0.1 + 0.6*x
	default:
		return 0.7 - 0.6*x
	}
}

func loggingPolicy(x float64) [3]float64 {
	w := [3]float64{1, math.Exp(x), math.Exp(1 - x)}
	s := w[0] + w[1] + w[2]
	return [3]float64{w[0] / s, w[1] / s, w[2] / s}
}

func bestAction(x float64) int {
	best := 0
	for a := 1; a < 3; a++ {
		if trueReward(x, a) > trueReward(x, best) {
			best = a
		}
	}
	return best
}

func syntheticLog(n int, seed uint64) []Logged {
	rng := rand.New(rand.NewPCG(seed, 1))
	logs := make([]Logged, n)
	for i := range logs {
		x := rng.Float64()
		p := loggingPolicy(x)
		u, a := rng.Float64(), 0
		for u > p[a] && a < 2 {
			u -= p[a]
			a++
		}
		r := 0.0
		if rng.Float64() < trueReward(x, a) {
			r = 1
		}
		logs[i] = Logged{Context: []float64{x}, Action: a, Propensity: p[a], Reward: r}
	}
	return logs
}

// targetTrueValue integrates max_a r(x,a) over x by the midpoint rule; the
// exact value is 0.55 (offer 2's 0.7−0.6x below x=1/2, offer 1's 0.1+0.6x
// above; the flat offer 0 is never best).
func targetTrueValue() float64 {
	const n = 1_000_000
	s := 0.0
	for i := 0; i < n; i++ {
		x := (float64(i) + 0.5) / n
		s += trueReward(x, bestAction(x))
	}
	return s / n
}

func greedy(ctx []float64, a int) float64 {
	if a == bestAction(ctx[0]) {
		return 1
	}
	return 0
}

func TestOffPolicyEstimatorsRecoverAKnownValue(t *testing.T) {
	truth := targetTrueValue()
	require.InDelta(t, 0.55, truth, 1e-6)
	logs := syntheticLog(40000, 5)

	ips, err := IPS(logs, greedy, 0)
	require.NoError(t, err)
	require.InDelta(t, truth, ips.Value, 3*ips.StdErr+0.002, "IPS %+v truth %.4f", ips, truth)
	require.Less(t, ips.StdErr, 0.01)

	// A reward model that is off by +0.1 everywhere: the direct method
	// would be 0.1 too high; doubly robust corrects it.
	biased := func(ctx []float64, a int) float64 { return trueReward(ctx[0], a) + 0.1 }
	dr, err := DoublyRobust(logs, greedy, biased, 3, 0)
	require.NoError(t, err)
	require.InDelta(t, truth, dr.Value, 3*dr.StdErr+0.002, "DR with a biased model %+v truth %.4f", dr, truth)

	// With an exact reward model DR has far less variance than IPS.
	exact := func(ctx []float64, a int) float64 { return trueReward(ctx[0], a) }
	drExact, err := DoublyRobust(logs, greedy, exact, 3, 0)
	require.NoError(t, err)
	require.InDelta(t, truth, drExact.Value, 3*drExact.StdErr+0.002)
	require.Less(t, drExact.StdErr, ips.StdErr*0.8)

	// The logging policy valued against itself is its own mean reward.
	self := func(ctx []float64, a int) float64 { return loggingPolicy(ctx[0])[a] }
	onPolicy, err := IPS(logs, self, 0)
	require.NoError(t, err)
	mean := 0.0
	for _, l := range logs {
		mean += l.Reward
	}
	require.InDelta(t, mean/float64(len(logs)), onPolicy.Value, 1e-9)
}

func TestClippingCapsWeightsAndBiasesDown(t *testing.T) {
	logs := syntheticLog(20000, 6)
	full, err := IPS(logs, greedy, 0)
	require.NoError(t, err)
	clipped, err := IPS(logs, greedy, 2)
	require.NoError(t, err)
	require.Greater(t, full.MaxWeight, 2.0)
	require.Equal(t, 2.0, clipped.MaxWeight)
	require.Greater(t, clipped.Clipped, 0)
	require.Less(t, clipped.Value, full.Value)
}

func TestEstimatorsRefuseBadRecords(t *testing.T) {
	_, err := IPS(nil, greedy, 0)
	require.ErrorIs(t, err, ErrBadLog)
	_, err = IPS([]Logged{{Context: []float64{0.5}, Action: 1, Propensity: 0, Reward: 1}}, greedy, 0)
	require.ErrorContains(t, err, "propensity 0 is not in (0, 1]")
	_, err = DoublyRobust([]Logged{{Context: []float64{0.5}, Action: 1, Propensity: 0.5, Reward: math.NaN()}}, greedy, greedy, 3, 0)
	require.ErrorIs(t, err, ErrBadLog)
}

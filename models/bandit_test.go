package models

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBanditPosteriorsCountOutcomes(t *testing.T) {
	b := NewBandit()
	arm := Arm{"coupon-10", "vip"}
	for i := 0; i < 30; i++ {
		b.Update(arm, i%3 == 0)
	}
	alpha, beta := b.Posterior(arm)
	require.Equal(t, 11.0, alpha)
	require.Equal(t, 21.0, beta)
	alpha, beta = b.Posterior(Arm{"coupon-10", "new"})
	require.Equal(t, [2]float64{1, 1}, [2]float64{alpha, beta}, "an unseen arm is uniform")
}

func TestBanditSamplesFollowThePosterior(t *testing.T) {
	b := NewBandit()
	arm := Arm{"o", "s"}
	for i := 0; i < 200; i++ {
		b.Update(arm, i%4 == 0) // Beta(51, 151): mean 0.2525, sd 0.0306
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sum, sumSq float64
	const n = 20000
	for i := 0; i < n; i++ {
		x := b.Sample(arm, rng)
		sum += x
		sumSq += x * x
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	require.InDelta(t, 51.0/202, mean, 0.002)
	require.InDelta(t, 0.0305, sd, 0.002)
}

func TestBanditIsDeterministicGivenTheGenerator(t *testing.T) {
	b := NewBandit()
	b.Update(Arm{"o", "s"}, true)
	draw := func() []float64 {
		rng := rand.New(rand.NewPCG(7, 7))
		var out []float64
		for i := 0; i < 5; i++ {
			out = append(out, b.Sample(Arm{"o", "s"}, rng))
		}
		return out
	}
	require.Equal(t, draw(), draw())
}

func TestThompsonSamplingFindsTheBestOffer(t *testing.T) {
	b := NewBandit()
	rates := map[string]float64{"a": 0.05, "b": 0.10, "c": 0.20}
	offers := []string{"a", "b", "c"}
	rng := rand.New(rand.NewPCG(3, 4))
	shown := map[string]int{}
	for i := 0; i < 5000; i++ {
		best, bestP := "", -1.0
		for _, o := range offers {
			if p := b.Sample(Arm{o, "all"}, rng); p > bestP {
				best, bestP = o, p
			}
		}
		shown[best]++
		b.Update(Arm{best, "all"}, rng.Float64() < rates[best])
	}
	require.Greater(t, shown["c"], 4000, "shown: %v", shown)
}

func TestBanditResetForgetsOneOffer(t *testing.T) {
	b := NewBandit()
	b.Update(Arm{"x", "s1"}, true)
	b.Update(Arm{"x", "s2"}, false)
	b.Update(Arm{"y", "s1"}, true)
	require.Equal(t, 2, b.Reset("x"), "the offer's two arms with outcomes")
	require.Zero(t, b.Reset("never-seen"))
	for _, a := range []Arm{{"x", "s1"}, {"x", "s2"}} {
		alpha, beta := b.Posterior(a)
		require.Equal(t, [2]float64{1, 1}, [2]float64{alpha, beta})
	}
	alpha, _ := b.Posterior(Arm{"y", "s1"})
	require.Equal(t, 2.0, alpha)
}

func TestBanditRoundTripsThroughBinary(t *testing.T) {
	b := NewBandit()
	for i := 0; i < 100; i++ {
		b.Update(Arm{string(rune('a' + i%7)), string(rune('A' + i%3))}, i%5 == 0)
	}
	data, err := b.MarshalBinary()
	require.NoError(t, err)
	c := NewBandit()
	c.Update(Arm{"stale", "x"}, true)
	require.NoError(t, c.UnmarshalBinary(data))
	again, err := c.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, data, again)
	alpha, _ := c.Posterior(Arm{"stale", "x"})
	require.Equal(t, 1.0, alpha, "unmarshal replaces, not merges")

	for _, bad := range [][]byte{nil, []byte("NBOB\x01"), data[:len(data)-3], append(append([]byte{}, data...), 0)} {
		before, _ := c.MarshalBinary()
		require.ErrorIs(t, c.UnmarshalBinary(bad), ErrBadBandit)
		after, _ := c.MarshalBinary()
		require.Equal(t, before, after, "a failed unmarshal leaves the bandit unchanged")
	}
}

func TestBanditIsSafeForConcurrentUse(t *testing.T) {
	b := NewBandit()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for i := 0; i < 1000; i++ {
				a := Arm{string(rune('a' + i%5)), "s"}
				b.Update(a, i%2 == 0)
				_ = b.Sample(a, rng)
				if i%250 == 0 {
					_, _ = b.MarshalBinary()
				}
			}
		}(g)
	}
	wg.Wait()
	var total float64
	for i := 0; i < 5; i++ {
		alpha, beta := b.Posterior(Arm{string(rune('a' + i)), "s"})
		total += alpha + beta - 2
	}
	require.Equal(t, 8000.0, total)
}

func FuzzBanditUnmarshal(f *testing.F) {
	b := NewBandit()
	b.Update(Arm{"o", "s"}, true)
	data, _ := b.MarshalBinary()
	f.Add(data)
	f.Add([]byte("NBOB\x01\x05"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewBandit()
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := c.MarshalBinary()
		require.NoError(t, err)
		d := NewBandit()
		require.NoError(t, d.UnmarshalBinary(out))
	})
}

func TestBanditFacetsBorrowStrength(t *testing.T) {
	cases := []struct {
		name    string
		updates []Arm
		arm     Arm
		want    []Beta // Lineage of arm, coarsest first
	}{
		{"an outcome counts for the offer, each facet and the segment",
			[]Arm{{"o", "/a/b"}}, Arm{"o", "/a/b"}, []Beta{{2, 1}, {2, 1}, {2, 1}, {2, 1}}},
		{"a segment never seen borrows from the facets it shares",
			[]Arm{{"o", "/a/b"}, {"o", "/a/c"}}, Arm{"o", "/a/d"}, []Beta{{3, 1}, {3, 1}, {1, 1}, {1, 1}}},
		{"other offers do not count",
			[]Arm{{"p", "/a/b"}}, Arm{"o", "/a/b"}, []Beta{{1, 1}, {1, 1}, {1, 1}, {1, 1}}},
		{"a segment of one facet is its own facet",
			[]Arm{{"o", "/a"}}, Arm{"o", "/a"}, []Beta{{2, 1}, {2, 1}}},
		{"a plain segment stands alone",
			[]Arm{{"o", "vip"}}, Arm{"o", "vip"}, []Beta{{2, 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBandit()
			for _, a := range tc.updates {
				b.Update(a, true)
			}
			require.Equal(t, tc.want, b.Lineage(tc.arm, nil))
		})
	}
	b := NewBandit()
	b.Update(Arm{"o", "vip"}, true)
	alpha, _ := b.Posterior(Arm{"o", ""})
	require.Equal(t, 1.0, alpha, "a plain segment has no ancestors")
	b.Update(Arm{"o", "/x/y"}, false)
	_, beta := b.Posterior(Arm{"o", "/y"})
	require.Equal(t, 2.0, beta, "trials count for the facets too")
	data, err := b.MarshalBinary()
	require.NoError(t, err)
	c := NewBandit()
	require.NoError(t, c.UnmarshalBinary(data))
	require.Equal(t, b.Lineage(Arm{"o", "/x/y"}, nil), c.Lineage(Arm{"o", "/x/y"}, nil), "facets survive a snapshot")
}

// TestGammaBelowShapeOneFollowsItsDistribution checks the shape < 1 branch
// of gammaSample (which the engine's priors reach whenever w·p < 1): the
// draws' mean and variance are the shape's, and from the same generator
// they are the draws of the math.Pow form, Gamma(shape+1)·U^(1/shape).
func TestGammaBelowShapeOneFollowsItsDistribution(t *testing.T) {
	for _, shape := range []float64{0.05, 0.3, 0.5, 0.999} {
		rng := rand.New(rand.NewPCG(3, uint64(shape*1000)))
		var sum, sumSq float64
		const n = 400_000
		for range n {
			x := gammaSample(rng, shape)
			sum += x
			sumSq += x * x
		}
		mean := sum / n
		variance := sumSq/n - mean*mean
		// Gamma(k, 1) has mean k and variance k; the mean's standard
		// error is √(k/n), so five of them is a generous bound.
		require.InDelta(t, shape, mean, 5*math.Sqrt(shape/n), "shape %v", shape)
		require.InEpsilon(t, shape, variance, 0.05, "shape %v", shape)

		a := rand.New(rand.NewPCG(11, 13))
		b := rand.New(rand.NewPCG(11, 13))
		for i := range 10_000 {
			got := gammaSample(a, shape)
			want := gammaSample(b, shape+1) * math.Pow(b.Float64(), 1/shape)
			require.InDelta(t, want, got, 1e-12*want, "shape %v, draw %d", shape, i)
		}
	}
}

// TestSampleBetaWithSmallShapesFollowsItsDistribution checks Beta draws
// whose shapes are below 1 (a prior of w pseudo-trials at a small rate).
func TestSampleBetaWithSmallShapesFollowsItsDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	for _, c := range []struct{ a, b float64 }{{0.5, 9.5}, {0.1, 0.9}, {0.02, 10}} {
		var sum, sumSq float64
		const n = 400_000
		for range n {
			x := SampleBeta(rng, c.a, c.b)
			require.True(t, x >= 0 && x <= 1)
			sum += x
			sumSq += x * x
		}
		mean := sum / n
		variance := sumSq/n - mean*mean
		wantMean := c.a / (c.a + c.b)
		wantVar := c.a * c.b / ((c.a + c.b) * (c.a + c.b) * (c.a + c.b + 1))
		require.InDelta(t, wantMean, mean, 5*math.Sqrt(wantVar/n), "Beta(%v, %v)", c.a, c.b)
		require.InEpsilon(t, wantVar, variance, 0.05, "Beta(%v, %v)", c.a, c.b)
	}
}

// BenchmarkSampleBeta is one Thompson draw at the shapes the engine
// meets: a prior of 10 pseudo-trials at a 5% rate with no outcomes yet
// (one shape below 1), and an arm with a couple of hundred outcomes.
func BenchmarkSampleBeta(b *testing.B) {
	for _, c := range []struct {
		name string
		a, b float64
	}{{"prior only", 0.437, 9.563}, {"200 outcomes", 51, 151}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var sum float64
			for b.Loop() {
				sum += SampleBeta(rng, c.a, c.b)
			}
			if sum < 0 {
				b.Fatal(sum)
			}
		})
	}
}

// Len counts every node an arm's lineage creates — the offer across
// segments, each facet, the arm — once, however often it is reached, and
// Reset drops an offer's.
func TestBanditLenCountsLineageNodes(t *testing.T) {
	b := NewBandit()
	require.Zero(t, b.Len())
	b.Update(Arm{Offer: "o1", Segment: "/a/b"}, true) // "", "/a", "/b", "/a/b"
	require.Equal(t, 4, b.Len())
	b.Lineage(Arm{Offer: "o1", Segment: "/a/c"}, nil) // adds "/c", "/a/c"
	require.Equal(t, 6, b.Len())
	b.Update(Arm{Offer: "o1", Segment: "/a/b"}, false)
	require.Equal(t, 6, b.Len())
	b.Update(Arm{Offer: "o2", Segment: "plain"}, true) // not faceted: the arm alone
	require.Equal(t, 7, b.Len())
	b.Reset("o1")
	require.Equal(t, 1, b.Len())
}

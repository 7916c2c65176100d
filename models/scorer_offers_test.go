package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomForest builds a valid forest artifact with random structure over
// schema s: numeric splits at thresholds drawn from a small grid (so that
// test values land exactly on them), categorical splits with kids missing
// at random (the walk stops there), splits on the same feature again
// further down, and leaves with random class counts.
func randomForest(rng *rand.Rand, s Schema, trees, maxDepth int) *Artifact {
	a := &Artifact{FormatVersion: FormatVersion, Algorithm: AlgoForest, Schema: s, SchemaHash: s.Hash()}
	for range s.Features {
		a.Impute = append(a.Impute, float64(rng.IntN(5))-2)
	}
	for range trees {
		var t Tree
		var grow func(depth int) int32
		grow = func(depth int) int32 {
			id := int32(len(t.Feature))
			t.Feature = append(t.Feature, -1)
			t.Threshold = append(t.Threshold, 0)
			t.First = append(t.First, -1)
			t.Neg = append(t.Neg, int32(rng.IntN(50)))
			t.Pos = append(t.Pos, int32(rng.IntN(50)))
			if depth >= maxDepth || rng.IntN(5) == 0 {
				return id
			}
			f := rng.IntN(len(s.Features))
			slots := 2
			if s.Features[f].Kind == Categorical {
				slots = len(s.Features[f].Vocabulary) + 1
			} else {
				t.Threshold[id] = float64(rng.IntN(9)-4) / 2
			}
			t.Feature[id] = int32(f)
			first := int32(len(t.Kids))
			t.First[id] = first
			for range slots {
				t.Kids = append(t.Kids, -1)
			}
			for j := range slots {
				if slots > 2 && rng.IntN(4) == 0 {
					continue // no training row had this value here
				}
				t.Kids[first+int32(j)] = grow(depth + 1)
			}
			return id
		}
		grow(0)
		a.Trees = append(a.Trees, t)
	}
	return a
}

// randomValue draws a feature value: on a threshold, between them, or
// missing; for a category also unknown indexes and fractions.
func randomValue(rng *rand.Rand, f Feature) float64 {
	if rng.IntN(8) == 0 {
		return math.NaN()
	}
	if f.Kind == Numeric {
		return float64(rng.IntN(13)-6) / 4
	}
	switch rng.IntN(10) {
	case 0:
		return float64(len(f.Vocabulary) + rng.IntN(3))
	case 1:
		return -1
	case 2:
		return 0.5
	}
	return float64(rng.IntN(len(f.Vocabulary)))
}

func TestPropensityOffersMatchesPropensityOnRandomForests(t *testing.T) {
	tests := []struct {
		name         string
		offerVocab   int  // 0: the offer feature is numeric
		customerCats bool // categorical customer features too
		trees, depth int
	}{
		{name: "a shallow forest over a 100-offer vocabulary agrees", offerVocab: 100, customerCats: true, trees: 30, depth: 3},
		{name: "a deep forest with repeated offer splits agrees", offerVocab: 7, customerCats: true, trees: 20, depth: 7},
		{name: "a forest over numeric customer features only agrees", offerVocab: 12, trees: 40, depth: 4},
		{name: "a one-value offer vocabulary agrees", offerVocab: 1, customerCats: true, trees: 10, depth: 5},
		{name: "a vocabulary past the stack scratch agrees", offerVocab: 300, trees: 8, depth: 3},
		{name: "a numeric offer feature agrees (per-tree path)", offerVocab: 0, customerCats: true, trees: 20, depth: 6},
	}
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ti), 99))
			for trial := range 25 {
				var s Schema
				for j := range 5 {
					s.Features = append(s.Features, Feature{Name: fmt.Sprintf("n%d", j), Kind: Numeric})
				}
				if tt.customerCats {
					s.Features = append(s.Features,
						Feature{Name: "seg", Kind: Categorical, Vocabulary: []string{"a", "b", "c"}},
						Feature{Name: "flag", Kind: Categorical, Vocabulary: []string{"y"}})
				}
				offer := Feature{Name: "offer", Kind: Numeric}
				if tt.offerVocab > 0 {
					offer.Kind = Categorical
					for o := range tt.offerVocab {
						offer.Vocabulary = append(offer.Vocabulary, fmt.Sprintf("o%04d", o))
					}
				}
				// The offer feature sits in the middle of the vector.
				of := len(s.Features) / 2
				s.Features = append(s.Features[:of], append([]Feature{offer}, s.Features[of:]...)...)
				a := randomForest(rng, s, tt.trees, tt.depth)
				sc, err := Compile(a)
				require.NoError(t, err)

				var values []float64
				for range 1 + rng.IntN(120) {
					values = append(values, randomValue(rng, offer))
				}
				dst := make([]float64, len(values))
				old := make([]float64, len(values))
				for range 10 {
					x := make([]float64, len(s.Features))
					for j, f := range s.Features {
						x[j] = randomValue(rng, f)
					}
					keep := append([]float64(nil), x...)
					sc.PropensityOffers(dst, x, of, values)
					require.Equal(t, fmt.Sprint(keep), fmt.Sprint(x), "the customer's vector is not modified")
					sc.offersByTree(old, x, of, values)
					y := append([]float64(nil), x...)
					for i, v := range values {
						y[of] = v
						want := sc.Propensity(y)
						require.InDelta(t, want, dst[i], 1e-12, "trial %d offer %d (value %v)", trial, i, v)
						require.InDelta(t, want, old[i], 1e-12, "per-tree path, trial %d offer %d", trial, i)
					}
				}
			}
		})
	}
}

func TestPropensityOffersPlanIsUsedForCategoricalOffers(t *testing.T) {
	// The fast path must actually run for the benchmark's shape; a plan
	// that silently fell back would still pass the equality tests.
	ds := offerData(3000, 5)
	f, err := fit(ds, TrainOptions{Algo: AlgoForest, Trees: 20, Seed: 1, Now: testNow, MinLeaf: 5})
	require.NoError(t, err)
	p := f.scorer.offerPlan(9)
	require.NotNil(t, p)
	require.Equal(t, 101, p.slots)
	require.NotEmpty(t, p.fanNode, "trees split on the offer")
	require.Nil(t, f.scorer.offerPlan(0), "a numeric feature has no plan")
	require.Same(t, p, f.scorer.offerPlan(9), "the plan is built once")
}

func TestPropensityOffersIsSafeForConcurrentFirstCalls(t *testing.T) {
	// Several goroutines make the first batch call on a fresh scorer at
	// once: the plan is built concurrently and scratch is shared; -race
	// checks the rest, this checks the answers.
	rng := rand.New(rand.NewPCG(7, 7))
	var s Schema
	for j := range 4 {
		s.Features = append(s.Features, Feature{Name: fmt.Sprintf("n%d", j), Kind: Numeric})
	}
	offer := Feature{Name: "offer", Kind: Categorical}
	for o := range 40 {
		offer.Vocabulary = append(offer.Vocabulary, fmt.Sprintf("o%02d", o))
	}
	s.Features = append(s.Features, offer)
	sc, err := Compile(randomForest(rng, s, 30, 5))
	require.NoError(t, err)
	values := make([]float64, 41)
	for i := range values {
		values[i] = float64(i) // the last is past the vocabulary: missing
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			dst := make([]float64, len(values))
			for range 50 {
				x := make([]float64, len(s.Features))
				for j, f := range s.Features {
					x[j] = randomValue(rng, f)
				}
				sc.PropensityOffers(dst, x, 4, values)
				for i, v := range values {
					x[4] = v
					if want := sc.Propensity(x); math.Abs(want-dst[i]) > 1e-12 {
						done <- fmt.Errorf("goroutine %d offer %d: %v, want %v", g, i, dst[i], want)
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}

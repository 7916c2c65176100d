package models

import (
	"math"
	"math/rand/v2"
)

// synthTruth is a labelled table whose P(y|x) is known: logistic in two
// numeric features plus a categorical effect, with a third numeric
// feature of pure noise and 5% missing values in x1.
type synthTruth struct {
	ds    *Dataset
	truth []float64 // true P(y=1|x) per row
}

var synthCats = []string{"app", "store", "web", "wechat"}
var synthCatEffect = []float64{0.8, -0.6, 0, -1.2}

func synthData(n int, seed uint64) synthTruth {
	rng := rand.New(rand.NewPCG(seed, 99))
	s := Schema{Features: []Feature{
		{Name: "x1", Kind: Numeric},
		{Name: "x2", Kind: Numeric},
		{Name: "noise", Kind: Numeric},
		{Name: "channel", Kind: Categorical, Vocabulary: synthCats},
	}}
	st := synthTruth{ds: &Dataset{Schema: s, Positive: "1"}}
	for i := 0; i < n; i++ {
		x1, x2 := rng.NormFloat64(), rng.NormFloat64()
		c := rng.IntN(len(synthCats))
		p := 1 / (1 + math.Exp(-(-0.3 + 1.2*x1 - 0.9*x2 + synthCatEffect[c])))
		x := []float64{x1, x2, rng.NormFloat64(), float64(c)}
		if rng.Float64() < 0.05 {
			x[0] = math.NaN()
		}
		st.ds.X = append(st.ds.X, x)
		st.ds.Y = append(st.ds.Y, rng.Float64() < p)
		st.truth = append(st.truth, p)
	}
	return st
}

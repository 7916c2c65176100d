package models

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/trees"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// stopsEarly reports whether the compiled tree stops at an internal node
// for x: a categorical value with no child of its own where golearn would
// pick one of several children in random map order.
func stopsEarly(tr Tree, s Schema, impute []float64, x []float64) bool {
	n := int32(0)
	for {
		f := tr.Feature[n]
		if f < 0 {
			return false
		}
		slot := 0
		if s.Features[f].Kind == Numeric {
			v := x[f]
			if math.IsNaN(v) {
				v = impute[f]
			}
			if v > tr.Threshold[n] {
				slot = 1
			}
		} else {
			slot = catSlot(x[f], len(s.Features[f].Vocabulary))
		}
		k := tr.Kids[tr.First[n]+int32(slot)]
		if k < 0 {
			return true
		}
		n = k
	}
}

func TestCompiledTreesAgreeWithGolearn(t *testing.T) {
	st := synthData(3000, 2)
	f, err := fit(st.ds, TrainOptions{Algo: AlgoForest, Trees: 5, Seed: 4, Now: testNow})
	require.NoError(t, err)
	a := f.artifact
	g := toGrid(a.Schema, f.test.X, f.test.Y, a.Impute)
	checked, skipped := 0, 0
	for ti, root := range f.trees {
		one := *a
		one.Trees = a.Trees[ti : ti+1]
		s, err := Compile(&one)
		require.NoError(t, err)
		pred, err := root.Predict(g.inst)
		require.NoError(t, err)
		id3 := &trees.ID3DecisionTree{Root: root}
		for r, x := range f.test.X {
			if stopsEarly(a.Trees[ti], a.Schema, a.Impute, x) {
				skipped++
				continue
			}
			checked++
			p := s.Propensity(x)
			wantPos := base.GetClass(pred, r) == posClass
			require.Equal(t, wantPos, p > 0.5, "tree %d row %d: golearn's label", ti, r)
			if r < 100 { // golearn's PredictProba takes one row at a time
				row := base.NewInstancesViewFromVisible(g.inst, []int{r}, append(append([]base.Attribute(nil), g.attrs...), g.class))
				probs, err := id3.PredictProba(row)
				require.NoError(t, err)
				var gp float64
				for _, cp := range probs {
					if cp.ClassValue == posClass {
						gp = cp.Probability
					}
				}
				require.InDelta(t, gp, p, 1e-12, "tree %d row %d: golearn's leaf probability", ti, r)
			}
		}
	}
	require.Greater(t, checked, 10*skipped, "rows where golearn's answer is random (%d) must be rare", skipped)
	t.Logf("%d tree×row answers agree; %d skipped where golearn picks a random child", checked, skipped)
}

func TestCompiledNaiveBayesAgreesWithGolearn(t *testing.T) {
	st := synthData(3000, 3)
	f, err := fit(st.ds, TrainOptions{Algo: AlgoNB, Seed: 1, Now: testNow})
	require.NoError(t, err)
	g := f.bin.nbGrid(f.test.X, f.test.Y)
	pred, err := f.nb.Predict(g.inst)
	require.NoError(t, err)
	pos := 0
	for r, x := range f.test.X {
		wantPos := base.GetClass(pred, r) == posClass
		if wantPos {
			pos++
		}
		require.Equal(t, wantPos, f.scorer.Propensity(x) > 0.5, "row %d", r)
	}
	require.Greater(t, pos, 0, "both classes are predicted")
	require.Less(t, pos, len(f.test.X))
}

func TestSameSeedGivesSameModel(t *testing.T) {
	st := synthData(2000, 4)
	for _, algo := range []Algo{AlgoForest, AlgoTree, AlgoNB} {
		t.Run(string(algo), func(t *testing.T) {
			o := TrainOptions{Algo: algo, Trees: 10, Seed: 7, Now: testNow}
			a, err := Train(st.ds, o)
			require.NoError(t, err)
			b, err := Train(st.ds, o)
			require.NoError(t, err)
			require.Equal(t, a, b)
			if algo == AlgoForest {
				// Trees grow on every core at once; four workers and one
				// grow the same forest (whatever cores this machine has).
				prev := runtime.GOMAXPROCS(4)
				t.Cleanup(func() { runtime.GOMAXPROCS(prev) }) // also when a Train fails
				four, err := Train(st.ds, o)
				require.NoError(t, err)
				runtime.GOMAXPROCS(1)
				one, err := Train(st.ds, o)
				require.NoError(t, err)
				require.Equal(t, four, one, "the model does not depend on how many cores grew it")
				require.Equal(t, a, one)
			}
			o.Seed = 8
			c, err := Train(st.ds, o)
			require.NoError(t, err)
			require.NotEqual(t, a.Version, c.Version, "another seed draws another holdout and model")
		})
	}
}

// bayesAUC is the AUC of the true probabilities on the same holdout rows.
func bayesAUC(st synthTruth, frac float64, seed uint64) (float64, []float64) {
	idx := &Dataset{Schema: st.ds.Schema, Y: st.ds.Y}
	for i := range st.truth {
		idx.X = append(idx.X, []float64{st.truth[i]})
	}
	_, te := idx.Split(frac, seed)
	p := make([]float64, len(te.X))
	for i, x := range te.X {
		p[i] = x[0]
	}
	return AUC(p, te.Y), p
}

// calibrationVsTruth cuts the holdout into deciles of prediction and
// returns the largest gap per decile between the mean prediction and the
// mean true probability, and between the mean prediction and the
// observed positive rate (which adds label noise: ±0.03 standard error
// on 240 rows).
func calibrationVsTruth(p, truth []float64, y []bool) (devTruth, devObserved float64) {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	n := len(p)
	for d := 0; d < 10; d++ {
		var mp, mt, mo float64
		bin := idx[d*n/10 : (d+1)*n/10]
		for _, i := range bin {
			mp += p[i]
			mt += truth[i]
			if y[i] {
				mo++
			}
		}
		c := float64(len(bin))
		devTruth = math.Max(devTruth, math.Abs(mp-mt)/c)
		devObserved = math.Max(devObserved, math.Abs(mp-mo)/c)
	}
	return devTruth, devObserved
}

func TestModelsRecoverAKnownTruth(t *testing.T) {
	// 12,000 rows, P(y|x) logistic in x1 and x2 plus a channel effect, a
	// noise column and 5% missing x1; 2,400 holdout rows, deciles of 240.
	// The Bayes-optimal holdout AUC is ~0.83. Measured over four data
	// seeds: forest AUC gap 0.010–0.016, calibration against the truth
	// ≤ 0.027, against observed labels ≤ 0.083; tree gap 0.019–0.031,
	// truth ≤ 0.054; naive Bayes gap 0.007–0.010, truth ≤ 0.043. The
	// tolerances leave room for that spread; the last case shows that a
	// forest blind to x1 fails them.
	st := synthData(12000, 11)
	bayes, truth := bayesAUC(st, 0.2, 1)
	require.InDelta(t, 0.83, bayes, 0.02)
	blind := synthData(12000, 11)
	shuffled := rand.New(rand.NewPCG(1, 1)).Perm(len(blind.ds.X))
	for i, x := range blind.ds.X {
		blind.ds.X[i] = append([]float64{st.ds.X[shuffled[i]][0]}, x[1:]...)
	}
	tests := []struct {
		name                     string
		data                     synthTruth
		opts                     TrainOptions
		aucGap, truthTol, obsTol float64
		wantFail                 bool
	}{
		{name: "a forest ranks within 0.025 of the Bayes optimum and is calibrated within 0.04 of the truth",
			data: st, opts: TrainOptions{Algo: AlgoForest, Trees: 30}, aucGap: 0.025, truthTol: 0.04, obsTol: 0.10},
		{name: "a single tree ranks within 0.04 of the Bayes optimum and is calibrated within 0.07 of the truth",
			data: st, opts: TrainOptions{Algo: AlgoTree}, aucGap: 0.04, truthTol: 0.07, obsTol: 0.12},
		{name: "naive Bayes ranks within 0.015 of the Bayes optimum and is calibrated within 0.06 of the truth",
			data: st, opts: TrainOptions{Algo: AlgoNB}, aucGap: 0.015, truthTol: 0.06, obsTol: 0.12},
		{name: "a forest that cannot see x1 misses the forest's bar",
			data: blind, opts: TrainOptions{Algo: AlgoForest, Trees: 30}, aucGap: 0.025, truthTol: 0.04, obsTol: 0.10, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Seed, tt.opts.Now = 1, testNow
			f, err := fit(tt.data.ds, tt.opts)
			require.NoError(t, err)
			p := make([]float64, len(f.test.X))
			f.scorer.ScoreBatch(f.test.X, p)
			devTruth, devObs := calibrationVsTruth(p, truth, f.test.Y)
			auc := f.artifact.Metrics.AUC
			t.Logf("%s: AUC %.4f (Bayes %.4f), calibration vs truth %.3f, vs observed %.3f, logloss %.4f",
				f.artifact.Algorithm, auc, bayes, devTruth, devObs, f.artifact.Metrics.LogLoss)
			pass := auc >= bayes-tt.aucGap && devTruth <= tt.truthTol && devObs <= tt.obsTol
			require.Equal(t, !tt.wantFail, pass)
		})
	}
}

func TestArtifactRoundTripsAndScoresTheSame(t *testing.T) {
	st := synthData(2000, 6)
	a, err := Train(st.ds, TrainOptions{Trees: 5, Seed: 2, Now: testNow})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "model.json")
	require.NoError(t, a.Save(path))
	b, err := LoadArtifact(path)
	require.NoError(t, err)
	require.Equal(t, a, b)
	sa, err := Compile(a)
	require.NoError(t, err)
	sb, err := Compile(b)
	require.NoError(t, err)
	for _, x := range st.ds.X[:200] {
		require.Equal(t, sa.Propensity(x), sb.Propensity(x))
	}
}

func TestDecodeArtifactRefusesBrokenModels(t *testing.T) {
	st := synthData(1000, 6)
	a, err := Train(st.ds, TrainOptions{Trees: 2, Seed: 2, Now: testNow})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "model.json")
	require.NoError(t, a.Save(path))
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	tests := []struct {
		name    string
		mutate  func(a *Artifact)
		wantErr string
	}{
		{"a kid pointing outside the tree is refused", func(a *Artifact) { a.Trees[0].Kids[0] = 1 << 20 }, "out of range"},
		{"a kid pointing backwards is refused", func(a *Artifact) { a.Trees[0].Kids[0] = 0 }, "out of range"},
		{"a schema that does not match its hash is refused", func(a *Artifact) { a.Schema.Features[0].Name = "renamed" }, "does not match the schema"},
		{"a newer format is refused", func(a *Artifact) { a.FormatVersion = 2 }, "format_version 2"},
		{"a forest without trees is refused", func(a *Artifact) { a.Trees = nil }, "without trees"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := DecodeArtifact(good)
			require.NoError(t, err)
			tt.mutate(b)
			require.ErrorContains(t, b.Validate(), tt.wantErr)
			_, err = Compile(b)
			require.ErrorIs(t, err, ErrBadArtifact)
		})
	}
	_, err = DecodeArtifact([]byte(`{"format_version":1,"surprise":true}`))
	require.ErrorContains(t, err, "unknown field")
}

// TestABrokenArtifactIsOneLineListingItsProblems: loading {} once gave a
// multi-line error repeating "models: bad artifact:" on every line.
func TestABrokenArtifactIsOneLineListingItsProblems(t *testing.T) {
	_, err := DecodeArtifact([]byte(`{}`))
	require.ErrorIs(t, err, ErrBadArtifact)
	msg := err.Error()
	require.NotContains(t, msg, "\n")
	require.Equal(t, 1, strings.Count(msg, "bad artifact"), msg)
	require.Equal(t, `models: bad artifact: format_version 0, this build reads 1; schema_hash  does not match the schema (`+Schema{}.Hash()+`); the schema has no features; unknown algorithm ""`, msg)

	a := &Artifact{FormatVersion: FormatVersion, Algorithm: AlgoForest, Schema: Schema{Features: []Feature{{Name: "a", Kind: Numeric}}}, Impute: []float64{0}}
	a.SchemaHash = a.Schema.Hash()
	for i := 0; i < 20; i++ {
		a.Trees = append(a.Trees, Tree{Feature: []int32{0}})
	}
	msg = a.Validate().Error()
	require.NotContains(t, msg, "\n")
	require.True(t, strings.HasSuffix(msg, "; and 12 more"), msg)
}

func TestScorerMissingValueRules(t *testing.T) {
	st := synthData(3000, 8)
	a, err := Train(st.ds, TrainOptions{Trees: 10, Seed: 1, Now: testNow})
	require.NoError(t, err)
	s, err := Compile(a)
	require.NoError(t, err)
	for _, x := range st.ds.X[:300] {
		imputed := append([]float64(nil), x...)
		missing := append([]float64(nil), x...)
		imputed[0], missing[0] = a.Impute[0], math.NaN()
		require.Equal(t, s.Propensity(imputed), s.Propensity(missing), "a missing number scores as its training median")
		unknown := append([]float64(nil), x...)
		nan := append([]float64(nil), x...)
		unknown[3], nan[3] = 17, math.NaN()
		require.Equal(t, s.Propensity(nan), s.Propensity(unknown), "an unknown category scores as a missing one")
		p := s.Propensity(unknown)
		require.True(t, p >= 0 && p <= 1)
	}
}

func TestScorerDoesNotAllocate(t *testing.T) {
	st := synthData(2000, 9)
	for _, algo := range []Algo{AlgoForest, AlgoNB} {
		a, err := Train(st.ds, TrainOptions{Algo: algo, Trees: 10, Seed: 1, Now: testNow})
		require.NoError(t, err)
		s, err := Compile(a)
		require.NoError(t, err)
		x := st.ds.X[0]
		require.Zero(t, testing.AllocsPerRun(100, func() { _ = s.Propensity(x) }), string(algo))
	}
}

func TestThresholdSearchIsAtLeastAsGoodAsGolearns(t *testing.T) {
	st := synthData(2000, 13)
	g := toGrid(st.ds.Schema, st.ds.X, st.ds.Y, medians(st.ds.Schema, st.ds.X))
	gr := &grower{g: g, o: growOptions{minLeaf: 1}}
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := 0; trial < 40; trial++ {
		rows := rng.Perm(len(st.ds.Y))[:20+rng.IntN(500)]
		var neg, pos int
		for _, r := range rows {
			if st.ds.Y[r] {
				pos++
			} else {
				neg++
			}
		}
		for _, f := range []int{0, 1, 2} {
			_, ours, ok := gr.threshold(rows, f, neg, pos)
			require.True(t, ok)
			view := base.NewInstancesViewFromVisible(g.inst, rows, []base.Attribute{g.attrs[f], g.class})
			var ig trees.InformationGainRuleGenerator
			theirThr := ig.GetSplitRuleFromSelection([]base.Attribute{g.attrs[f]}, view).SplitVal
			theirs, _ := gr.gain(rows, f, theirThr, neg, pos)
			require.GreaterOrEqual(t, ours, theirs-1e-12, "trial %d feature %d", trial, f)
		}
	}
}

func FuzzDecodeArtifact(f *testing.F) {
	st := synthData(400, 21)
	for _, algo := range []Algo{AlgoTree, AlgoNB} {
		a, err := Train(st.ds, TrainOptions{Algo: algo, Seed: 1, Now: testNow, MinLeaf: 20})
		require.NoError(f, err)
		body, err := json.Marshal(a)
		require.NoError(f, err)
		f.Add(body)
	}
	f.Add([]byte(`{"format_version":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeArtifact(body)
		if err != nil {
			return
		}
		// Whatever validates must compile and score any vector without
		// panicking, and answer a probability.
		s, err := Compile(a)
		require.NoError(t, err)
		for _, x := range [][]float64{
			make([]float64, s.Features()),
			fill(s.Features(), math.NaN()),
			fill(s.Features(), -1e300),
			fill(s.Features(), 3),
		} {
			p := s.Propensity(x)
			require.True(t, p >= 0 && p <= 1 || math.IsNaN(p), "p = %v", p)
		}
	})
}

func fill(n int, v float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func TestPropensityOffersEqualsScoringEachOffer(t *testing.T) {
	ds := offerData(4000, 7)
	values := make([]float64, 0, 102)
	for o := 0; o < 100; o++ {
		values = append(values, float64(o))
	}
	values = append(values, math.NaN(), 250) // missing and unknown offers
	for _, algo := range []Algo{AlgoForest, AlgoTree, AlgoNB} {
		t.Run(string(algo), func(t *testing.T) {
			f, err := fit(ds, TrainOptions{Algo: algo, Trees: 20, Seed: 1, Now: testNow})
			require.NoError(t, err)
			dst := make([]float64, len(values))
			for _, customer := range f.test.X[:20] {
				f.scorer.PropensityOffers(dst, customer, 9, values)
				x := append([]float64(nil), customer...)
				for i, v := range values {
					x[9] = v
					require.InDelta(t, f.scorer.Propensity(x), dst[i], 1e-12, "offer %v", v)
				}
			}
			customer := f.test.X[0]
			require.Zero(t, testing.AllocsPerRun(50, func() { f.scorer.PropensityOffers(dst, customer, 9, values) }))
		})
	}
}

package models

import (
	"math"
	"os"
	"path/filepath"
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

func TestModelsRecoverAKnownTruth(t *testing.T) {
	// 12,000 rows, P(y|x) logistic in x1 and x2 plus a channel effect, a
	// noise column and 5% missing x1. The Bayes-optimal holdout AUC is
	// ~0.83. Tolerances are what the models meet with some room; a model
	// that ignores x1 or x2 loses more than 0.1 AUC and fails them.
	st := synthData(12000, 11)
	bayes, _ := bayesAUC(st, 0.2, 1)
	require.InDelta(t, 0.83, bayes, 0.02)
	tests := []struct {
		name     string
		opts     TrainOptions
		aucSlack float64 // allowed AUC below the Bayes-optimal AUC
		calTol   float64 // allowed |mean predicted - observed| per decile
	}{
		{"a forest ranks within 0.02 of the Bayes optimum and is calibrated within 0.06", TrainOptions{Algo: AlgoForest, Trees: 30}, 0.02, 0.06},
		{"a single tree ranks within 0.04 of the Bayes optimum and is calibrated within 0.08", TrainOptions{Algo: AlgoTree}, 0.04, 0.08},
		{"naive Bayes ranks within 0.02 of the Bayes optimum and is calibrated within 0.08", TrainOptions{Algo: AlgoNB}, 0.02, 0.08},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Seed, tt.opts.Now = 1, testNow
			a, err := Train(st.ds, tt.opts)
			require.NoError(t, err)
			t.Logf("%s: AUC %.4f (Bayes %.4f), logloss %.4f", a.Algorithm, a.Metrics.AUC, bayes, a.Metrics.LogLoss)
			require.GreaterOrEqual(t, a.Metrics.AUC, bayes-tt.aucSlack)
			for _, b := range a.Metrics.Calibration {
				require.GreaterOrEqual(t, b.Count, 200)
				require.InDelta(t, b.Observed, b.MeanPredicted, tt.calTol, "decile %+v", b)
			}
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

package models

import (
	"fmt"
	"math"
)

// Scorer is a compiled model: pure Go, immutable, safe for concurrent use,
// and allocation-free per row. It never calls golearn.
//
// A row is a feature vector laid out by the model's Schema. Missing values
// are NaN: a missing numeric value takes the model's Impute value (the
// training median); a missing categorical value, like an index outside the
// vocabulary (an unknown category), takes the missing slot. Where the
// training data had no row with that value at a node, the walk stops there
// and the node's own class frequencies answer.
type Scorer struct {
	algo   Algo
	nfeat  int
	impute []float64
	vocab  []int32 // vocabulary size per feature; -1 for numeric

	// Trees, all concatenated; roots[t] is tree t's root.
	feature   []int32
	threshold []float64
	first     []int32
	kids      []int32
	prob      []float64
	roots     []int32

	nb *NaiveBayes
}

// Compile builds a scorer from a validated artifact.
func Compile(a *Artifact) (*Scorer, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("compiling model %s: %w", a.Version, err)
	}
	s := &Scorer{algo: a.Algorithm, nfeat: len(a.Schema.Features), impute: a.Impute, nb: a.NaiveBayes}
	for _, f := range a.Schema.Features {
		if f.Kind == Numeric {
			s.vocab = append(s.vocab, -1)
		} else {
			s.vocab = append(s.vocab, int32(len(f.Vocabulary)))
		}
	}
	for _, t := range a.Trees {
		base := int32(len(s.feature))
		kbase := int32(len(s.kids))
		s.roots = append(s.roots, base)
		for n := range t.Feature {
			s.feature = append(s.feature, t.Feature[n])
			s.threshold = append(s.threshold, t.Threshold[n])
			if t.First[n] >= 0 {
				s.first = append(s.first, t.First[n]+kbase)
			} else {
				s.first = append(s.first, -1)
			}
			p := 0.0
			if tot := t.Neg[n] + t.Pos[n]; tot > 0 {
				p = float64(t.Pos[n]) / float64(tot)
			}
			s.prob = append(s.prob, p)
		}
		for _, k := range t.Kids {
			if k >= 0 {
				k += base
			}
			s.kids = append(s.kids, k)
		}
	}
	return s, nil
}

// Features returns the length of the vectors the scorer expects.
func (s *Scorer) Features() int { return s.nfeat }

// Propensity returns P(positive | x): the leaf class frequency averaged
// over the trees, or the naive Bayes posterior. x must have Features()
// values; a shorter x panics like any out-of-range slice access.
func (s *Scorer) Propensity(x []float64) float64 {
	_ = x[s.nfeat-1]
	if s.nb != nil {
		return s.nbScore(x)
	}
	sum := 0.0
	for _, r := range s.roots {
		sum += s.walk(r, x)
	}
	return sum / float64(len(s.roots))
}

// ScoreBatch writes the propensity of each row of xs into dst, which must
// be at least as long as xs; the caller owns both.
func (s *Scorer) ScoreBatch(xs [][]float64, dst []float64) {
	for i, x := range xs {
		dst[i] = s.Propensity(x)
	}
}

func (s *Scorer) walk(n int32, x []float64) float64 {
	for {
		f := s.feature[n]
		if f < 0 {
			return s.prob[n]
		}
		v := x[f]
		var slot int32
		if vs := s.vocab[f]; vs < 0 {
			if v != v { // NaN: missing numeric
				v = s.impute[f]
			}
			if v > s.threshold[n] {
				slot = 1
			}
		} else if v >= 0 && v < float64(vs) && v == math.Trunc(v) {
			slot = int32(v)
		} else {
			slot = vs
		}
		k := s.kids[s.first[n]+slot]
		if k < 0 {
			return s.prob[n]
		}
		n = k
	}
}

func (s *Scorer) nbScore(x []float64) float64 {
	logit := s.nb.Bias
	for i, table := range s.nb.Table {
		v := x[i]
		var l int
		if vs := s.vocab[i]; vs < 0 {
			if v != v {
				v = s.impute[i]
			}
			for _, t := range s.nb.Thresholds[i] {
				if v > t {
					l++
				}
			}
		} else if v >= 0 && v < float64(vs) && v == math.Trunc(v) {
			l = int(v)
		} else {
			l = int(vs)
		}
		logit += table[l]
	}
	return 1 / (1 + math.Exp(-logit))
}

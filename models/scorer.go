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
	nodes []node
	kids  []int32   // categorical child tables
	prob  []float64 // P(positive) per node, for walks that stop early
	roots []int32

	nb *NaiveBayes
}

// node is one compiled tree node, 24 bytes, so that a step of the walk
// touches one cache line. For a leaf feat is -1 and thr holds the leaf's
// P(positive). For a numeric split a and b are the kids for x <= thr and
// x > thr; for a categorical split a is the offset of its kid table in
// Scorer.kids and vs the vocabulary size (the missing slot's index).
type node struct {
	thr  float64
	feat int32
	a, b int32
	vs   int32
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
		base := int32(len(s.nodes))
		s.roots = append(s.roots, base)
		rebase := func(k int32) int32 {
			if k < 0 {
				return -1
			}
			return k + base
		}
		for n := range t.Feature {
			p := 0.0
			if tot := t.Neg[n] + t.Pos[n]; tot > 0 {
				p = float64(t.Pos[n]) / float64(tot)
			}
			s.prob = append(s.prob, p)
			f := t.Feature[n]
			switch {
			case f < 0:
				s.nodes = append(s.nodes, node{thr: p, feat: -1})
			case s.vocab[f] < 0:
				s.nodes = append(s.nodes, node{thr: t.Threshold[n], feat: f, a: rebase(t.Kids[t.First[n]]), b: rebase(t.Kids[t.First[n]+1]), vs: -1})
			default:
				off := int32(len(s.kids))
				for _, k := range t.Kids[t.First[n] : t.First[n]+s.vocab[f]+1] {
					s.kids = append(s.kids, rebase(k))
				}
				s.nodes = append(s.nodes, node{feat: f, a: off, vs: s.vocab[f]})
			}
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
		nd := &s.nodes[n]
		if nd.feat < 0 {
			return nd.thr
		}
		v := x[nd.feat]
		var k int32
		if nd.vs < 0 {
			if v != v { // NaN: missing numeric
				v = s.impute[nd.feat]
			}
			if v > nd.thr {
				k = nd.b
			} else {
				k = nd.a
			}
		} else if v >= 0 && v < float64(nd.vs) && v == math.Trunc(v) {
			k = s.kids[nd.a+int32(v)]
		} else {
			k = s.kids[nd.a+nd.vs]
		}
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

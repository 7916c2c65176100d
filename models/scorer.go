package models

import (
	"fmt"
	"math"
	"sync/atomic"
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

	// plans[f] is PropensityOffers' plan for categorical feature f, built
	// on the first batch that varies f (see scorer_offers.go).
	plans []atomic.Pointer[offerPlan]
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
	s := &Scorer{algo: a.Algorithm, nfeat: len(a.Schema.Features), impute: a.Impute, nb: a.NaiveBayes,
		plans: make([]atomic.Pointer[offerPlan], len(a.Schema.Features))}
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
		k := s.step(nd, x[nd.feat])
		if k < 0 {
			return s.prob[n]
		}
		n = k
	}
}

func (s *Scorer) nbScore(x []float64) float64 {
	logit := s.nb.Bias
	for i, table := range s.nb.Table {
		logit += table[s.nbLevel(i, x[i])]
	}
	return 1 / (1 + math.Exp(-logit))
}

// PropensityOffers scores one customer against many offers in one pass:
// dst[i] = Propensity(x with x[feature] = values[i]), for the common
// request where the offer is one feature of the vector (its index in the
// offer vocabulary, say). x is not modified; dst must be at least as long
// as values.
//
// For a categorical feature the forest is evaluated once per customer,
// partially (scorer_offers.go): the cost grows with the nodes the customer
// reaches plus the number of offers, not with trees × offers. The first
// call for a feature builds that plan (one allocation, then cached; safe
// under concurrent calls); later calls do not allocate for vocabularies
// up to 255 values and forests with up to 512 splits on the feature. For a
// numeric feature each tree is walked once down to the first split on it,
// and per offer from there; naive Bayes adds the customer's part once.
//
// The result equals calling Propensity per offer within 1e-12 (sums are
// taken in another order, so not always bit for bit).
func (s *Scorer) PropensityOffers(dst, x []float64, feature int, values []float64) {
	_ = x[s.nfeat-1]
	_ = x[feature]
	dst = dst[:len(values)]
	if s.nb != nil {
		s.nbOffers(dst, x, feature, values)
		return
	}
	if p := s.offerPlan(feature); p != nil {
		s.offersPlanned(p, dst, x, values)
		return
	}
	s.offersByTree(dst, x, feature, values)
}

// offersByTree is PropensityOffers by walking each tree once down to the
// first split on feature and per offer from there. It does not allocate
// for up to 256 offers.
func (s *Scorer) offersByTree(dst, x []float64, feature int, values []float64) {
	clear(dst)
	var stack [256]int32
	idx := stack[:0]
	for i := range values {
		idx = append(idx, int32(i))
	}
	for _, r := range s.roots {
		s.walkGroup(r, x, int32(feature), values, idx, dst)
	}
	n := float64(len(s.roots))
	for i := range dst {
		dst[i] /= n
	}
}

// walkGroup walks one tree for the offers idx, which share every feature
// but feature: together while the splits ignore it, apart after.
func (s *Scorer) walkGroup(n int32, x []float64, feature int32, values []float64, idx []int32, dst []float64) {
	for {
		nd := &s.nodes[n]
		if nd.feat < 0 {
			for _, i := range idx {
				dst[i] += nd.thr
			}
			return
		}
		if nd.feat == feature {
			for _, i := range idx {
				dst[i] += s.walkWith(n, x, feature, values[i])
			}
			return
		}
		k := s.step(nd, x[nd.feat])
		if k < 0 {
			p := s.prob[n]
			for _, i := range idx {
				dst[i] += p
			}
			return
		}
		n = k
	}
}

// walkWith is walk with x[feature] read as v.
func (s *Scorer) walkWith(n int32, x []float64, feature int32, v float64) float64 {
	for {
		nd := &s.nodes[n]
		if nd.feat < 0 {
			return nd.thr
		}
		xv := x[nd.feat]
		if nd.feat == feature {
			xv = v
		}
		k := s.step(nd, xv)
		if k < 0 {
			return s.prob[n]
		}
		n = k
	}
}

// step returns the kid of internal node nd for value v, or -1.
func (s *Scorer) step(nd *node, v float64) int32 {
	if nd.vs < 0 {
		if v != v {
			v = s.impute[nd.feat]
		}
		if v > nd.thr {
			return nd.b
		}
		return nd.a
	}
	if v >= 0 && v < float64(nd.vs) && v == math.Trunc(v) {
		return s.kids[nd.a+int32(v)]
	}
	return s.kids[nd.a+nd.vs]
}

func (s *Scorer) nbOffers(dst, x []float64, feature int, values []float64) {
	base := s.nb.Bias
	for i, table := range s.nb.Table {
		if i != feature {
			base += table[s.nbLevel(i, x[i])]
		}
	}
	table := s.nb.Table[feature]
	for j, v := range values {
		dst[j] = 1 / (1 + math.Exp(-(base + table[s.nbLevel(feature, v)])))
	}
}

// nbLevel is the naive Bayes table index of value v of feature i.
func (s *Scorer) nbLevel(i int, v float64) int {
	vs := s.vocab[i]
	if vs >= 0 {
		if v >= 0 && v < float64(vs) && v == math.Trunc(v) {
			return int(v)
		}
		return int(vs)
	}
	if v != v {
		v = s.impute[i]
	}
	l := 0
	for _, t := range s.nb.Thresholds[i] {
		if v > t {
			l++
		}
	}
	return l
}

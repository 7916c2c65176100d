package models

import (
	"math"
	"slices"
)

// This file is the batch path of PropensityOffers for a categorical offer
// feature: one customer, many offers that differ only in that feature.
//
// The scalar path walks trees × offers × depth nodes. Here the customer is
// fixed, so each tree is evaluated once, partially: the walk from the root
// follows the customer's own features until it reaches a split on the
// offer feature (a "fan"), whose kids hold one subtree per offer slot.
// What a fan adds to each slot is then a function of the customer alone,
// and most of it is precomputed when the plan is built:
//
//   - a kid that is a leaf, or a slot with no kid (the walk stops at the
//     fan), adds a constant: it goes into the fan's base vector;
//   - a kid that is one split on a customer feature j with leaves (or
//     stops) below adds L + (R−L)·[x_j > t]: L goes into the base vector
//     and (R−L) becomes a delta entry on feature j at threshold t. A
//     categorical kid is the same telescoped over its slots (thresholds
//     s+½ on the slot index);
//   - any deeper kid is walked at call time.
//
// The base vectors of fans at a tree's root (reached by every customer)
// are summed into one vector when the plan is built, and those trees are
// not walked at all. The delta entries of all fans are kept per customer
// feature, sorted by threshold, so that a call sweeps each list from the
// bottom while the threshold is below the customer's value and adds each
// delta times "was this fan reached" (1 or 0) — a branch-predictable
// stream instead of one unpredictable comparison per tree and offer.
//
// Accumulation is per offer slot; each offer reads its slot at the end.
// The sums are taken in another order than Propensity's, and a delta is
// R−L added to L, so the results agree with Propensity within a few ulps
// (the tests hold them to 1e-12), not bit for bit.

// maxPlanFloats caps a plan's base vectors (fans × slots); a larger
// forest or vocabulary falls back to the per-tree group walk.
const maxPlanFloats = 1 << 22

// offerPlan is a forest's partial-evaluation plan for batches that vary
// one categorical feature. It is immutable once built.
type offerPlan struct {
	feature int32
	slots   int // vocabulary size + 1 (the missing slot)

	rootBase  []float64 // slots: base vectors of all root fans, summed
	reachInit []float64 // per fan: 1 for root fans, 0 for the others
	walkRoots []int32   // roots of the trees that do not start with a fan
	walkTree  []int32   // walkRoots[i]'s index into treeFans
	treeFans  []int32   // per tree: first fan index; len trees+1
	fans      []fan
	rootFans  []int32 // fan indexes of root fans, for their deep kids
	bases     []float64
	deltas    [][]delta // per customer feature, sorted by thr
	deep      []deepKid
}

// fan is one split on the offer feature.
type fan struct {
	node           int32
	root           bool
	deepLo, deepHi int32 // its deep kids: deep[deepLo:deepHi]
}

// delta adds d to slot's sum when the customer's value of the feature
// exceeds thr and fan was reached.
type delta struct {
	thr  float64
	d    float64
	slot int32
	fan  int32
}

// deepKid is a kid subtree walked at call time.
type deepKid struct {
	kid  int32
	slot int32
}

// offerPlan returns the plan for categorical feature f, building it on
// first use; nil when f is numeric or the plan would be too large.
func (s *Scorer) offerPlan(f int) *offerPlan {
	if p := s.plans[f].Load(); p != nil {
		return p
	}
	p := s.buildOfferPlan(f)
	if p == nil {
		return nil
	}
	// Concurrent first calls may both build; the first stored wins and
	// the plans are equal anyway.
	s.plans[f].CompareAndSwap(nil, p)
	return s.plans[f].Load()
}

// nodeValue is what the walk answers at kid k of node parent: the leaf's
// probability, or the parent's own when there is no kid. ok is false for
// an internal kid.
func (s *Scorer) nodeValue(parent, k int32) (v float64, ok bool) {
	if k < 0 {
		return s.prob[parent], true
	}
	if nd := &s.nodes[k]; nd.feat < 0 {
		return nd.thr, true
	}
	return 0, false
}

func (s *Scorer) buildOfferPlan(f int) *offerPlan {
	if s.vocab[f] < 0 {
		return nil
	}
	V := int(s.vocab[f]) + 1
	fanNodes := make([][]int32, len(s.roots))
	nf := 0
	for t, r := range s.roots {
		// Fans are the splits on f that a walk on the other features can
		// reach: stop descending at each one.
		stack := []int32{r}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			nd := &s.nodes[n]
			switch {
			case nd.feat < 0:
			case int(nd.feat) == f:
				fanNodes[t] = append(fanNodes[t], n)
				nf++
			case nd.vs < 0:
				stack = append(stack, nd.a, nd.b)
			default:
				for _, k := range s.kids[nd.a : nd.a+nd.vs+1] {
					if k >= 0 {
						stack = append(stack, k)
					}
				}
			}
		}
		slices.Sort(fanNodes[t])
	}
	if nf*V > maxPlanFloats {
		return nil
	}
	p := &offerPlan{
		feature:   int32(f),
		slots:     V,
		rootBase:  make([]float64, V),
		reachInit: make([]float64, nf),
		treeFans:  make([]int32, 0, len(s.roots)+1),
		bases:     make([]float64, nf*V),
		deltas:    make([][]delta, s.nfeat),
	}
	for t, r := range s.roots {
		p.treeFans = append(p.treeFans, int32(len(p.fans)))
		isRootFan := len(fanNodes[t]) > 0 && fanNodes[t][0] == r
		if !isRootFan {
			p.walkRoots = append(p.walkRoots, r)
			p.walkTree = append(p.walkTree, int32(t))
		}
		for _, n := range fanNodes[t] {
			id := int32(len(p.fans))
			fn := fan{node: n, root: n == r, deepLo: int32(len(p.deep))}
			base := p.bases[int(id)*V : int(id+1)*V]
			nd := &s.nodes[n]
			for slot := int32(0); slot < int32(V); slot++ {
				k := s.kids[nd.a+slot]
				if v, ok := s.nodeValue(n, k); ok {
					base[slot] += v
					continue
				}
				if !p.addShallow(s, base, id, slot, k) {
					p.deep = append(p.deep, deepKid{kid: k, slot: slot})
				}
			}
			fn.deepHi = int32(len(p.deep))
			if fn.root {
				p.reachInit[id] = 1
				p.rootFans = append(p.rootFans, id)
				for i, v := range base {
					p.rootBase[i] += v
				}
			}
			p.fans = append(p.fans, fn)
		}
	}
	p.treeFans = append(p.treeFans, int32(len(p.fans)))
	for j := range p.deltas {
		slices.SortStableFunc(p.deltas[j], func(a, b delta) int {
			switch {
			case a.thr < b.thr:
				return -1
			case a.thr > b.thr:
				return 1
			}
			return 0
		})
	}
	return p
}

// addShallow turns internal kid k (slot slot of fan id) into a base value
// and delta entries when it is one split on a customer feature with leaves
// or stops below; false otherwise.
func (p *offerPlan) addShallow(s *Scorer, base []float64, id, slot, k int32) bool {
	nd := &s.nodes[k]
	if nd.feat == p.feature {
		return false
	}
	if nd.vs < 0 {
		l, okL := s.nodeValue(k, nd.a)
		r, okR := s.nodeValue(k, nd.b)
		if !okL || !okR {
			return false
		}
		base[slot] += l
		if r != l {
			p.deltas[nd.feat] = append(p.deltas[nd.feat], delta{thr: nd.thr, d: r - l, slot: slot, fan: id})
		}
		return true
	}
	kids := s.kids[nd.a : nd.a+nd.vs+1]
	for _, c := range kids {
		if _, ok := s.nodeValue(k, c); !ok {
			return false
		}
	}
	prev, _ := s.nodeValue(k, kids[0])
	base[slot] += prev
	for i, c := range kids[1:] {
		v, _ := s.nodeValue(k, c)
		if v != prev {
			p.deltas[nd.feat] = append(p.deltas[nd.feat], delta{thr: float64(i) + 0.5, d: v - prev, slot: slot, fan: id})
		}
		prev = v
	}
	return true
}

// walkToFan walks tree node n on x until a leaf, a stop or a split on
// feature f; fan reports the last.
func (s *Scorer) walkToFan(n int32, x []float64, f int32) (end int32, p float64, fan bool) {
	for {
		nd := &s.nodes[n]
		if nd.feat < 0 {
			return n, nd.thr, false
		}
		if nd.feat == f {
			return n, 0, true
		}
		k := s.step(nd, x[nd.feat])
		if k < 0 {
			return n, s.prob[n], false
		}
		n = k
	}
}

// slotValue is a feature value that falls in slot (NaN for the missing
// slot).
func slotValue(slot int32, vs int) float64 {
	if int(slot) == vs {
		return math.NaN()
	}
	return float64(slot)
}

// Scratch sizes that live on the stack; larger plans allocate per call.
const (
	stackSlots    = 256
	stackFans     = 512
	stackFeatures = 64
)

// offersPlanned is PropensityOffers through plan p.
func (s *Scorer) offersPlanned(p *offerPlan, dst, x []float64, values []float64) {
	var accBuf [stackSlots]float64
	var reachBuf [stackFans]float64
	var xsBuf [stackFeatures]float64
	var acc, reached, xs []float64
	if p.slots <= stackSlots {
		acc = accBuf[:p.slots]
	} else {
		acc = make([]float64, p.slots)
	}
	if len(p.fans) <= stackFans {
		reached = reachBuf[:len(p.fans)]
	} else {
		reached = make([]float64, len(p.fans))
	}
	if s.nfeat <= stackFeatures {
		xs = xsBuf[:s.nfeat]
	} else {
		xs = make([]float64, s.nfeat)
	}
	copy(acc, p.rootBase)
	copy(reached, p.reachInit)
	// xs is the customer as the splits see it: numbers imputed,
	// categories as slots.
	for j, v := range x[:s.nfeat] {
		if vs := s.vocab[j]; vs >= 0 {
			xs[j] = float64(catSlot(v, int(vs)))
		} else if v != v {
			xs[j] = s.impute[j]
		} else {
			xs[j] = v
		}
	}
	vs := p.slots - 1
	f := p.feature
	c := 0.0
	for i, r := range p.walkRoots {
		n, v, isFan := s.walkToFan(r, x, f)
		if !isFan {
			c += v
			continue
		}
		t := p.walkTree[i]
		id := p.treeFans[t]
		for p.fans[id].node != n {
			id++
		}
		reached[id] = 1
		base := p.bases[int(id)*p.slots : int(id+1)*p.slots]
		for k, b := range base {
			acc[k] += b
		}
		for _, d := range p.deep[p.fans[id].deepLo:p.fans[id].deepHi] {
			acc[d.slot] += s.walkWith(d.kid, x, f, slotValue(d.slot, vs))
		}
	}
	for _, id := range p.rootFans {
		for _, d := range p.deep[p.fans[id].deepLo:p.fans[id].deepHi] {
			acc[d.slot] += s.walkWith(d.kid, x, f, slotValue(d.slot, vs))
		}
	}
	for j, list := range p.deltas {
		v := xs[j]
		for _, e := range list {
			if !(e.thr < v) {
				break
			}
			acc[e.slot] += e.d * reached[e.fan]
		}
	}
	n := float64(len(s.roots))
	for i, v := range values {
		dst[i] = (c + acc[catSlot(v, vs)]) / n
	}
}

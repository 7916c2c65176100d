package models

import (
	"math"
	"slices"
	"sync"
)

// This file is the batch path of PropensityOffers for a categorical offer
// feature: one customer, many offers that differ only in that feature.
//
// The scalar path walks trees × offers × depth nodes. Here the customer is
// fixed, so the forest is evaluated once, partially. The walk from a
// tree's root follows the customer's own features until it reaches a
// split on the offer feature (a "fan"); below a fan, each offer slot has
// its own kid subtree, and what it adds is a function of the customer
// alone. The plan rewrites those subtrees, once per scorer and feature,
// into sorted sweeps:
//
// A kid subtree (with any further split on the offer feature resolved for
// its slot, and a categorical split read as a chain of binary splits
// "slot > k+½") answers
//
//	L(root) + Σ over the nodes m it passes that go right: L(right(m)) − L(left(m))
//
// where L(t) is the value of t's leftmost leaf (a missing kid answers its
// parent's frequency, as in the scalar walk). L(root) goes into the fan's
// base vector; each node m becomes an "add" (threshold, delta, slot) in a
// list for its feature, sorted by threshold. A call sweeps each list from
// the bottom while the threshold is below the customer's value — exactly
// the nodes that go right — and adds each delta times the weight of m: 1
// if the walk reaches m, else 0. The branches in the sweeps are
// predictable; the per-node, per-offer unpredictable comparisons are gone.
//
// Weights: a kid's root has its fan's ("was this fan reached", set by the
// walks; always 1 at a tree's root). A node whose kids are both leaves
// repeats its parent's test instead of having a weight (a condAdd). Other
// internal nodes get a weight from "passes", swept depth by depth before
// the adds: an ascending pass (the parent goes right) or a descending one
// (swept from the top: the parent goes left) copies the parent's weight.
//
// Base vectors: those of fans at a tree's root (reached by every
// customer) are summed when the plan is built, and those trees are not
// walked at all; those of fans one numeric split below the root are
// prefix-summed per split feature (baseGroup); the rest are added per
// reached fan. Accumulation is per offer slot; each offer reads its slot
// at the end. The sums are taken in another order than Propensity's and a
// leaf value arrives as L plus deltas, so results agree with Propensity
// within a few ulps (the tests hold them to 1e-12), not bit for bit.

// maxPlanFloats caps a plan's size (base vectors plus entries); a larger
// forest or vocabulary falls back to the per-tree group walk.
const maxPlanFloats = 1 << 22

// offerPlan is a forest's partial-evaluation plan for batches that vary
// one categorical feature. It is immutable once built.
type offerPlan struct {
	feature int32
	slots   int // vocabulary size + 1 (the missing slot)

	rootBase []float64 // slots: base vectors of all root fans, summed
	// The trees that do not start with a fan are walked on the customer
	// down to a fan or a leaf, over a copy of their upper part made for
	// that walk (walkNode): wroots[i] is tree i's first node, or a
	// terminal ^k of wterms when the tree ends before any split.
	wnodes   []walkNode
	wterms   []walkTerm
	wroots   []int32
	treeFans []int32   // per tree: its first fan; len trees+1
	fanNode  []int32   // per fan: its node
	bases    []float64 // per fan: slots values
	grouped  []bool    // per fan: its base is in a baseGroup
	groups   []baseGroup
	// Weights: [0, fans) "the fan was reached" (root fans start at 1),
	// then one per internal node of a kid subtree other than its root.
	reachInit []float64
	weights   int

	// Passes hand weights down, by depth: passSegs in order, each a list
	// of passes on one feature sorted by threshold.
	passes   passCols
	passSegs []sweepSeg
	// Adds, one list per feature sorted by threshold (two: root fans'
	// apart), in columns: the sweep reads only thr until it stops, and
	// each field loads with one instruction.
	adds    addCols
	addSegs []sweepSeg
	// Conditional adds, one list per feature (two, as the adds), after
	// the adds.
	conds    condCols
	condSegs []sweepSeg

	scratch scratchPool
}

// walkNode is a binary split of a tree's upper part: the walk goes to b
// when xs[feat] > thr, else to a. A kid k < 0 is the terminal ^k. A
// categorical split is a balanced tree of these over its slot index.
type walkNode struct {
	thr  float64
	feat uint32
	a, b int32
}

// walkTerm ends a walk: at fan fan (>= 0; base is whether its base vector
// is added per call, i.e. not in a baseGroup), or at a leaf or stop that
// answers v (fan -1).
type walkTerm struct {
	v    float64
	fan  int32
	base bool
}

// add adds d×weight[in] to slot when it fires (thr < x).
type add struct {
	d        float64
	slot, in int32
}

// addCols holds adds by column, with each add's threshold.
type addCols struct {
	thr, d   []float64
	slot, in []uint32
}

func (c *addCols) push(thr float64, a add) {
	c.thr = append(c.thr, thr)
	c.d = append(c.d, a.d)
	c.slot = append(c.slot, uint32(a.slot))
	c.in = append(c.in, uint32(a.in))
}

// condCols holds conditional adds by column, with their thresholds. The
// parent's test is one comparison, xs[pf] > pt, over the customer and its
// negation (xs[nfeat+j] = −xs[j]): a left kid's x <= pt is
// −x > −nextafter(pt, +∞), exactly, for every x but NaN, and xs has none.
type condCols struct {
	thr, d, pt   []float64
	slot, in, pf []uint32
}

func (c *condCols) push(thr float64, a condAdd, nfeat int) {
	pf, pt := a.pf, a.pt
	if a.flip == 1 {
		pf, pt = pf+int32(nfeat), -math.Nextafter(pt, math.Inf(1))
	}
	c.thr = append(c.thr, thr)
	c.d = append(c.d, a.d)
	c.pt = append(c.pt, pt)
	c.slot = append(c.slot, uint32(a.slot))
	c.in = append(c.in, uint32(a.in))
	c.pf = append(c.pf, uint32(pf))
}

// condAdd is an add one level below a node with a weight, for a node
// whose kids are both leaves: it needs no weight of its own, because its
// parent's test is repeated instead (x[pf] > pt, negated when flip is 1
// for a left kid). That saves the pass that would hand it a weight.
type condAdd struct {
	d, pt        float64
	slot, in, pf int32
	flip         uint64
}

// baseGroup holds the base vectors of the fans that are one kid of a
// tree's root, a numeric split on feat: left kids (reached when x <= t0)
// or right kids (x > t0). With t0 sorted, the fans a customer reaches are
// a suffix (left) or a prefix (right) of the list, and sums holds those
// suffix (prefix) sums, so a call adds one vector per group instead of
// one per fan.
type baseGroup struct {
	feat  int32
	right bool
	t0    []float64
	sums  []float64 // len(t0) vectors of slots values
}

// pass hands weight[in] to weight[out] when it fires: in an ascending
// list when thr < x (the node goes right), in a descending one when
// thr >= x (it goes left).
type pass struct {
	thr     float64
	in, out int32
}

// passCols holds passes by column.
type passCols struct {
	thr     []float64
	in, out []uint32
}

// sweepSeg is one sorted list, [lo, hi) of its entries, on feature feat.
// desc marks a descending list of passes; unit a list of adds or
// conditional adds whose weight is always 1 (root fans), which the sweep
// skips reading.
type sweepSeg struct {
	feat       int32
	desc, unit bool
	lo, hi     int32
}

// vnode is a kid subtree node during plan building: a binary split on a
// customer feature; a kid is a vnode (internal) or a value (a leaf).
type vnode struct {
	feat        int32
	thr         float64
	left, right vkid
}

type vkid struct {
	n *vnode // nil: a leaf
	v float64
}

// leftmost is L(k): the value of k's leftmost leaf.
func (k vkid) leftmost() float64 {
	for k.n != nil {
		k = k.n.left
	}
	return k.v
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

// resolve turns kid k of node parent into a vkid for offer slot slot:
// splits on the offer feature f are decided by slot, a missing kid
// answers the parent's frequency, and a categorical split becomes a chain
// of binary splits on its slot index. size counts the vnodes made.
func (s *Scorer) resolve(parent, k int32, f, slot int32, size *int) vkid {
	for {
		if k < 0 {
			return vkid{v: s.prob[parent]}
		}
		nd := &s.nodes[k]
		if nd.feat < 0 {
			return vkid{v: nd.thr}
		}
		if nd.feat != f {
			break
		}
		parent, k = k, s.kids[nd.a+slot]
	}
	nd := &s.nodes[k]
	*size++
	if nd.vs < 0 {
		return vkid{n: &vnode{feat: nd.feat, thr: nd.thr, left: s.resolve(k, nd.a, f, slot, size), right: s.resolve(k, nd.b, f, slot, size)}}
	}
	// Slot i goes left at chain link i (slot <= i+½) and right past it;
	// the last link's right kid is the missing slot.
	last := s.resolve(k, s.kids[nd.a+nd.vs], f, slot, size)
	for i := nd.vs - 1; i >= 0; i-- {
		*size++
		last = vkid{n: &vnode{feat: nd.feat, thr: float64(i) + 0.5, left: s.resolve(k, s.kids[nd.a+i], f, slot, size), right: last}}
	}
	return last
}

type planPass struct {
	depth int
	feat  int32
	desc  bool
	p     pass
}

type planCond struct {
	feat int32
	thr  float64
	c    condAdd
}

type planAdd struct {
	feat     int32
	thr, d   float64
	slot, in int32
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
		weights:   nf,
	}
	var passes []planPass
	var adds []planAdd
	var conds []planCond
	size := 0
	// emit turns vnode n, reached with weight in, into an add (unless its
	// delta is 0) and a pass per internal kid.
	var emit func(n *vnode, depth int, slot, in int32)
	emit = func(n *vnode, depth int, slot, in int32) {
		if d := n.right.leftmost() - n.left.leftmost(); d != 0 {
			adds = append(adds, planAdd{feat: n.feat, thr: n.thr, d: d, slot: slot, in: in})
		}
		for _, k := range []struct {
			kid  vkid
			desc bool
		}{{n.left, true}, {n.right, false}} {
			if k.kid.n == nil {
				continue
			}
			if c := k.kid.n; c.left.n == nil && c.right.n == nil {
				if d := c.right.v - c.left.v; d != 0 {
					var flip uint64
					if k.desc {
						flip = 1
					}
					conds = append(conds, planCond{feat: c.feat, thr: c.thr, c: condAdd{d: d, pt: n.thr, slot: slot, in: in, pf: n.feat, flip: flip}})
				}
				continue
			}
			out := int32(p.weights)
			p.weights++
			passes = append(passes, planPass{depth: depth, feat: n.feat, desc: k.desc, p: pass{thr: n.thr, in: in, out: out}})
			emit(k.kid.n, depth+1, slot, out)
		}
	}
	for t, r := range s.roots {
		p.treeFans = append(p.treeFans, int32(len(p.fanNode)))
		for _, n := range fanNodes[t] {
			id := int32(len(p.fanNode))
			p.fanNode = append(p.fanNode, n)
			base := p.bases[int(id)*V : int(id+1)*V]
			for slot := int32(0); slot < int32(V); slot++ {
				k := s.resolve(n, s.kids[s.nodes[n].a+slot], int32(f), slot, &size)
				if size+len(p.bases) > maxPlanFloats/4 {
					return nil
				}
				base[slot] = k.leftmost()
				if k.n != nil {
					emit(k.n, 0, slot, id)
				}
			}
			if n == r {
				p.reachInit[id] = 1
				for i, v := range base {
					p.rootBase[i] += v
				}
			}
		}
	}
	p.treeFans = append(p.treeFans, int32(len(p.fanNode)))
	// Passes run by depth (a depth's weights come from the one above),
	// then by feature and direction; every list is sorted by threshold.
	slices.SortStableFunc(passes, func(a, b planPass) int {
		switch {
		case a.depth != b.depth:
			return a.depth - b.depth
		case a.feat != b.feat:
			return int(a.feat - b.feat)
		case a.desc != b.desc:
			if a.desc {
				return 1
			}
			return -1
		}
		return cmpFloat(a.p.thr, b.p.thr)
	})
	for i, pp := range passes {
		p.passes.thr = append(p.passes.thr, pp.p.thr)
		p.passes.in = append(p.passes.in, uint32(pp.p.in))
		p.passes.out = append(p.passes.out, uint32(pp.p.out))
		if i == 0 || pp.depth != passes[i-1].depth || pp.feat != passes[i-1].feat || pp.desc != passes[i-1].desc {
			p.passSegs = append(p.passSegs, sweepSeg{feat: pp.feat, desc: pp.desc, lo: int32(i)})
		}
		p.passSegs[len(p.passSegs)-1].hi = int32(i + 1)
	}
	// Adds run after every pass, so one list per feature holds them all
	// (two: the root fans' adds, whose weight is always 1, apart).
	unweighted := func(a planAdd) bool { return int(a.in) < len(p.reachInit) && p.reachInit[a.in] == 1 }
	slices.SortStableFunc(adds, func(a, b planAdd) int {
		if a.feat != b.feat {
			return int(a.feat - b.feat)
		}
		if ua, ub := unweighted(a), unweighted(b); ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return cmpFloat(a.thr, b.thr)
	})
	for i, pa := range adds {
		p.adds.push(pa.thr, add{d: pa.d, slot: pa.slot, in: pa.in})
		if i == 0 || pa.feat != adds[i-1].feat || unweighted(pa) != unweighted(adds[i-1]) {
			p.addSegs = append(p.addSegs, sweepSeg{feat: pa.feat, unit: unweighted(pa), lo: int32(i)})
		}
		p.addSegs[len(p.addSegs)-1].hi = int32(i + 1)
	}
	// Conditional adds likewise: one list per feature, root fans' apart.
	unitCond := func(c planCond) bool { return int(c.c.in) < len(p.reachInit) && p.reachInit[c.c.in] == 1 }
	slices.SortStableFunc(conds, func(a, b planCond) int {
		if a.feat != b.feat {
			return int(a.feat - b.feat)
		}
		if ua, ub := unitCond(a), unitCond(b); ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return cmpFloat(a.thr, b.thr)
	})
	for i, pc := range conds {
		p.conds.push(pc.thr, pc.c, s.nfeat)
		if i == 0 || pc.feat != conds[i-1].feat || unitCond(pc) != unitCond(conds[i-1]) {
			p.condSegs = append(p.condSegs, sweepSeg{feat: pc.feat, unit: unitCond(pc), lo: int32(i)})
		}
		p.condSegs[len(p.condSegs)-1].hi = int32(i + 1)
	}
	p.groupBases(s)
	p.buildWalks(s, fanNodes)
	p.scratch.sizes = [3]int{V, p.weights, 2 * s.nfeat}
	return p
}

// planScratch is one call's working memory.
type planScratch struct {
	acc    []float64 // per slot, plus a sink
	weight []float64
	xs     []float64 // the customer, then its negation
}

// scratchPool hands out planScratch without allocating in steady state.
// It is a plain locked free list: a sync.Pool drops items under the race
// detector, and allocation-free must hold there too.
type scratchPool struct {
	mu    sync.Mutex
	free  []*planScratch
	sizes [3]int
}

func (sp *scratchPool) get() *planScratch {
	sp.mu.Lock()
	if n := len(sp.free); n > 0 {
		b := sp.free[n-1]
		sp.free = sp.free[:n-1]
		sp.mu.Unlock()
		return b
	}
	sp.mu.Unlock()
	return &planScratch{acc: make([]float64, sp.sizes[0]), weight: make([]float64, sp.sizes[1]), xs: make([]float64, sp.sizes[2])}
}

func (sp *scratchPool) put(b *planScratch) {
	sp.mu.Lock()
	sp.free = append(sp.free, b)
	sp.mu.Unlock()
}

// offersPlanned is PropensityOffers through plan p.
func (s *Scorer) offersPlanned(p *offerPlan, dst, x []float64, values []float64) {
	sc := p.scratch.get()
	defer p.scratch.put(sc)
	acc, w, xs := sc.acc, sc.weight, sc.xs
	copy(acc, p.rootBase)
	copy(w, p.reachInit)
	clear(w[len(p.reachInit):])
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
		xs[s.nfeat+j] = -xs[j]
	}
	V := p.slots
	c := p.walk(acc, w, xs)
	for g := range p.groups {
		gr := &p.groups[g]
		v := xs[gr.feat]
		k := 0
		for k < len(gr.t0) && gr.t0[k] < v {
			k++
		}
		// Left kids with t0 >= v are reached: the suffix from k; right
		// kids with t0 < v: the prefix before k.
		if gr.right {
			k--
		}
		if k < 0 || k >= len(gr.t0) {
			continue
		}
		sum := gr.sums[k*V : (k+1)*V]
		for i, b := range sum {
			acc[i] += b
		}
	}
	for _, sg := range p.passSegs {
		if sg.desc {
			sweepPassesDown(w, &p.passes, int(sg.lo), int(sg.hi), xs[sg.feat])
		} else {
			sweepPassesUp(w, &p.passes, int(sg.lo), int(sg.hi), xs[sg.feat])
		}
	}
	for _, sg := range p.addSegs {
		if sg.unit {
			sweepUnit(acc, &p.adds, int(sg.lo), int(sg.hi), xs[sg.feat])
		} else {
			sweepAdds(acc, w, &p.adds, int(sg.lo), int(sg.hi), xs[sg.feat])
		}
	}
	for _, sg := range p.condSegs {
		if sg.unit {
			sweepUnitConds(acc, xs, &p.conds, int(sg.lo), int(sg.hi), xs[sg.feat])
		} else {
			sweepConds(acc, w, xs, &p.conds, int(sg.lo), int(sg.hi), xs[sg.feat])
		}
	}
	n := float64(len(s.roots))
	for i, v := range values {
		dst[i] = (c + acc[catSlot(v, V-1)]) / n
	}
}

// The sweeps are small functions of their own: inside offersPlanned the
// compiler spills their loop state to the stack (measured).

// walk walks the trees that do not start with a fan on the customer xs:
// it marks the fans reached in w, adds their base vectors to acc unless
// grouped, and returns the sum of the leaves and stops reached.
//
//go:noinline
func (p *offerPlan) walk(acc, w, xs []float64) (c float64) {
	wn, wt := p.wnodes, p.wterms
	V := p.slots
	acc = acc[:V]
	for _, k := range p.wroots {
		for k >= 0 {
			nd := &wn[k]
			// A branch, not an arithmetic select: measured, the select
			// is ~10% slower overall, since the walk is bound by the
			// latency of its loads and speculation hides some of it.
			if xs[nd.feat] > nd.thr {
				k = nd.b
			} else {
				k = nd.a
			}
		}
		t := &wt[^k]
		if t.fan < 0 {
			c += t.v
			continue
		}
		w[t.fan] = 1
		if !t.base {
			continue
		}
		base := p.bases[int(t.fan)*V : int(t.fan+1)*V]
		base = base[:len(acc)]
		for i, b := range base {
			acc[i] += b
		}
	}
	return c
}

// sweepPassesUp runs the ascending passes [lo, hi) that fire: thr < v.
//
//go:noinline
func sweepPassesUp(w []float64, c *passCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	in := c.in[lo:hi]
	in = in[:len(thr)]
	out := c.out[lo:hi]
	out = out[:len(thr)]
	for i, t := range thr {
		if !(t < v) {
			return
		}
		w[out[i]] = w[in[i]]
	}
}

// sweepPassesDown runs the descending passes [lo, hi) that fire, from
// the top: thr >= v.
//
//go:noinline
func sweepPassesDown(w []float64, c *passCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	in := c.in[lo:hi]
	in = in[:len(thr)]
	out := c.out[lo:hi]
	out = out[:len(thr)]
	for i := len(thr) - 1; i >= 0; i-- {
		if thr[i] < v {
			return
		}
		w[out[i]] = w[in[i]]
	}
}

// sweepUnit adds the unit adds [lo, hi) that fire: thr < v.
//
//go:noinline
func sweepUnit(acc []float64, c *addCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	d := c.d[lo:hi]
	d = d[:len(thr)]
	slot := c.slot[lo:hi]
	slot = slot[:len(thr)]
	for i, t := range thr {
		if !(t < v) {
			return
		}
		acc[slot[i]] += d[i]
	}
}

// sweepAdds adds the weighted adds [lo, hi) that fire.
//
//go:noinline
func sweepAdds(acc, w []float64, c *addCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	d := c.d[lo:hi]
	d = d[:len(thr)]
	slot := c.slot[lo:hi]
	slot = slot[:len(thr)]
	in := c.in[lo:hi]
	in = in[:len(thr)]
	for i, t := range thr {
		if !(t < v) {
			return
		}
		acc[slot[i]] += d[i] * w[in[i]]
	}
}

// sweepUnitConds adds the unit conditional adds [lo, hi) that fire.
//
//go:noinline
func sweepUnitConds(acc, xs []float64, c *condCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	d := c.d[lo:hi]
	d = d[:len(thr)]
	pt := c.pt[lo:hi]
	pt = pt[:len(thr)]
	slot := c.slot[lo:hi]
	slot = slot[:len(thr)]
	pf := c.pf[lo:hi]
	pf = pf[:len(thr)]
	for i, t := range thr {
		if !(t < v) {
			return
		}
		mask := -b2u(xs[pf[i]] > pt[i])
		acc[slot[i]] += math.Float64frombits(math.Float64bits(d[i]) & mask)
	}
}

// sweepConds adds the conditional adds [lo, hi) that fire.
//
//go:noinline
func sweepConds(acc, w, xs []float64, c *condCols, lo, hi int, v float64) {
	thr := c.thr[lo:hi]
	d := c.d[lo:hi]
	d = d[:len(thr)]
	pt := c.pt[lo:hi]
	pt = pt[:len(thr)]
	slot := c.slot[lo:hi]
	slot = slot[:len(thr)]
	in := c.in[lo:hi]
	in = in[:len(thr)]
	pf := c.pf[lo:hi]
	pf = pf[:len(thr)]
	for i, t := range thr {
		if !(t < v) {
			return
		}
		// mask is all ones when the parent's test sends the walk
		// here, else 0; d&mask is d or +0 exactly.
		mask := -b2u(xs[pf[i]] > pt[i])
		acc[slot[i]] += math.Float64frombits(math.Float64bits(d[i])&mask) * w[in[i]]
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// groupBases moves the base vectors of fans that are one kid of a numeric
// root split into baseGroups.
func (p *offerPlan) groupBases(s *Scorer) {
	V := p.slots
	p.grouped = make([]bool, len(p.fanNode))
	type member struct {
		t0 float64
		id int32
	}
	type key struct {
		feat  int32
		right bool
	}
	byKey := map[key][]member{}
	var keys []key
	for t, r := range s.roots {
		nd := &s.nodes[r]
		if nd.feat < 0 || nd.vs >= 0 || int32(nd.feat) == p.feature {
			continue
		}
		for id := p.treeFans[t]; id < p.treeFans[t+1]; id++ {
			n := p.fanNode[id]
			if (n == nd.a) == (n == nd.b) {
				continue // not a kid of the root, or both kids
			}
			k := key{nd.feat, n == nd.b}
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], member{nd.thr, id})
			p.grouped[id] = true
		}
	}
	for _, k := range keys {
		ms := byKey[k]
		slices.SortStableFunc(ms, func(a, b member) int { return cmpFloat(a.t0, b.t0) })
		g := baseGroup{feat: k.feat, right: k.right, sums: make([]float64, len(ms)*V)}
		for _, m := range ms {
			g.t0 = append(g.t0, m.t0)
		}
		// Right kids: sums[i] = bases of members 0..i; left kids: i..end.
		run := make([]float64, V)
		for i := range ms {
			j := i
			if !k.right {
				j = len(ms) - 1 - i
			}
			for q, b := range p.bases[int(ms[j].id)*V : int(ms[j].id+1)*V] {
				run[q] += b
			}
			copy(g.sums[j*V:(j+1)*V], run)
		}
		p.groups = append(p.groups, g)
	}
}

// buildWalks copies the upper part of every tree that does not start with
// a fan (down to its fans, leaves and stops) into p.wnodes.
func (p *offerPlan) buildWalks(s *Scorer, fanNodes [][]int32) {
	fanID := map[int32]int32{}
	for id, n := range p.fanNode {
		fanID[n] = int32(id)
	}
	term := func(v float64, fan int32) int32 {
		t := walkTerm{v: v, fan: fan}
		if fan >= 0 {
			t.base = !p.grouped[fan]
		}
		p.wterms = append(p.wterms, t)
		return ^int32(len(p.wterms) - 1)
	}
	node := func(feat int32, thr float64) int32 {
		p.wnodes = append(p.wnodes, walkNode{feat: uint32(feat), thr: thr})
		return int32(len(p.wnodes) - 1)
	}
	var conv func(parent, k int32) int32
	conv = func(parent, k int32) int32 {
		if k < 0 {
			return term(s.prob[parent], -1)
		}
		nd := &s.nodes[k]
		switch {
		case nd.feat < 0:
			return term(nd.thr, -1)
		case nd.feat == p.feature:
			return term(0, fanID[k])
		case nd.vs < 0:
			i := node(nd.feat, nd.thr)
			a, b := conv(k, nd.a), conv(k, nd.b)
			p.wnodes[i].a, p.wnodes[i].b = a, b
			return i
		}
		// Slots lo..hi of a categorical split: slot > mid+½ goes right.
		var split func(lo, hi int32) int32
		split = func(lo, hi int32) int32 {
			if lo == hi {
				return conv(k, s.kids[nd.a+lo])
			}
			mid := (lo + hi) / 2
			i := node(nd.feat, float64(mid)+0.5)
			a, b := split(lo, mid), split(mid+1, hi)
			p.wnodes[i].a, p.wnodes[i].b = a, b
			return i
		}
		return split(0, nd.vs)
	}
	for t, r := range s.roots {
		if len(fanNodes[t]) > 0 && fanNodes[t][0] == r {
			continue
		}
		p.wroots = append(p.wroots, conv(-1, r))
	}
}

package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/naive"
	"github.com/sjwhitworth/golearn/trees"
)

// This file is the only place that touches golearn. Its types never leave
// the package: training hands back our own compiled trees.

// missingToken is the categorical value golearn sees for a missing or
// unknown category. It is the last slot of every categorical attribute,
// index len(Vocabulary), which is also where the scorer sends NaN.
const missingToken = "\x00missing"

// Class labels as golearn sees them.
const (
	negClass = "0"
	posClass = "1"
)

// grid is a training set converted for golearn, with the attributes in
// schema order.
type grid struct {
	inst   *base.DenseInstances
	attrs  []base.Attribute
	class  base.Attribute
	schema Schema
	cols   [][]float64 // per feature: imputed numeric value or categorical slot
	y      []bool
}

// toGrid converts rows into golearn's DenseInstances. Numeric NaN is
// replaced by impute[i] (golearn has no missing values); categorical
// NaN or out-of-vocabulary indexes become missingToken.
func toGrid(s Schema, X [][]float64, Y []bool, impute []float64) *grid {
	g := &grid{inst: base.NewDenseInstances(), schema: s, y: Y, cols: make([][]float64, len(s.Features))}
	for i := range g.cols {
		g.cols[i] = make([]float64, len(X))
	}
	specs := make([]base.AttributeSpec, len(s.Features))
	for i, f := range s.Features {
		var a base.Attribute
		if f.Kind == Numeric {
			a = base.NewFloatAttribute(f.Name)
		} else {
			c := base.NewCategoricalAttribute()
			c.SetName(f.Name)
			for _, v := range f.Vocabulary {
				c.GetSysValFromString(v)
			}
			c.GetSysValFromString(missingToken)
			a = c
		}
		g.attrs = append(g.attrs, a)
		specs[i] = g.inst.AddAttribute(a)
	}
	cls := base.NewCategoricalAttribute()
	cls.SetName("__label")
	cls.GetSysValFromString(negClass)
	cls.GetSysValFromString(posClass)
	g.class = cls
	clsSpec := g.inst.AddAttribute(cls)
	if err := g.inst.AddClassAttribute(cls); err != nil {
		panic(fmt.Sprintf("models: golearn rejected the class attribute: %v", err)) // cannot happen: cls was just added
	}
	if err := g.inst.Extend(len(X)); err != nil {
		panic(fmt.Sprintf("models: golearn could not allocate %d rows: %v", len(X), err))
	}
	for r, x := range X {
		for i, f := range s.Features {
			v := x[i]
			if f.Kind == Numeric {
				if math.IsNaN(v) {
					v = impute[i]
				}
				g.inst.Set(specs[i], r, base.PackFloatToBytes(v))
				g.cols[i][r] = v
			} else {
				s := catSlot(v, len(f.Vocabulary))
				g.inst.Set(specs[i], r, base.PackU64ToBytes(uint64(s)))
				g.cols[i][r] = float64(s)
			}
		}
		c := negClass
		if Y != nil && Y[r] {
			c = posClass
		}
		g.inst.Set(clsSpec, r, cls.GetSysValFromString(c))
	}
	return g
}

// catSlot maps a categorical vector value to its slot: the vocabulary
// index, or n (the missing slot) for NaN, negatives, fractions and
// indexes past the vocabulary.
func catSlot(v float64, n int) int {
	if v >= 0 && v < float64(n) && v == math.Trunc(v) {
		return int(v)
	}
	return n
}

// grower fits trees on a grid. It is our own ID3 recursion over golearn's
// node type and golearn's numeric threshold search, for three reasons,
// each measured: golearn's InferID3Tree ranges over a map when it
// recurses, so a rule that draws random numbers draws them in a different
// order on every run; it removes a numeric attribute after its first
// split, so a path can cut each numeric feature only once (trees stay
// shallow and coarse); and its nested views make deep trees slow. Here
// every node is one view over the root rows, children grow in slot order,
// a numeric feature may be split again further down, gains are computed
// from our own counts in a fixed order (golearn sums entropies in map
// order, so equal gains tie-break differently from run to run), and
// growth is bounded by minSplit and maxDepth. golearn's Predict runs on
// the result, which is how the agreement test checks the compiler.
type grower struct {
	g   *grid
	k   int // attributes drawn per split; 0 or ≥ available: all
	rng *rand.Rand
	o   growOptions
	buf []valueClass // threshold's sort scratch, reused across nodes
}

// valueClass is one row's value of a numeric feature and its class.
type valueClass struct {
	v float64
	y bool
}

// growOptions bound a tree.
type growOptions struct {
	minSplit int // a node with fewer rows becomes a leaf
	minLeaf  int // a split leaving a non-empty child with fewer rows is not taken
	maxDepth int // 0: unlimited
}

func (gr *grower) node(rows []int, avail []int, depth int) *trees.DecisionTreeNode {
	g := gr.g
	var neg, pos int
	for _, r := range rows {
		if g.y[r] {
			pos++
		} else {
			neg++
		}
	}
	classes := map[string]int{}
	if neg > 0 {
		classes[negClass] = neg
	}
	if pos > 0 {
		classes[posClass] = pos
	}
	n := &trees.DecisionTreeNode{Type: trees.LeafNode, ClassDist: classes, Class: negClass, ClassAttr: g.class}
	if pos > neg {
		n.Class = posClass
	}
	if neg == 0 || pos == 0 || len(rows) < gr.o.minSplit || (gr.o.maxDepth > 0 && depth >= gr.o.maxDepth) {
		return n
	}
	avail = append([]int(nil), avail...)
	for len(avail) > 0 {
		cands := avail
		if gr.k > 0 && gr.k < len(avail) {
			cands = append([]int(nil), avail...)
			for i := 0; i < gr.k; i++ {
				j := i + gr.rng.IntN(len(cands)-i)
				cands[i], cands[j] = cands[j], cands[i]
			}
			cands = cands[:gr.k]
		}
		best, bestThr, bestGain := -1, 0.0, math.Inf(-1)
		for _, f := range cands {
			var thr, gain float64
			var ok bool
			if g.schema.Features[f].Kind == Numeric {
				thr, gain, ok = gr.threshold(rows, f, neg, pos)
			} else {
				gain, ok = gr.gain(rows, f, 0, neg, pos)
			}
			if ok && gain > bestGain+1e-12 {
				best, bestThr, bestGain = f, thr, gain
			}
		}
		if best < 0 {
			return n // no candidate keeps every child at minLeaf rows
		}
		parts := gr.partition(rows, best, bestThr)
		nonEmpty := 0
		for _, p := range parts {
			if len(p) > 0 {
				nonEmpty++
			}
		}
		if nonEmpty < 2 {
			// The attribute cannot separate these rows: drop it here and
			// look again, as golearn would after its one-child split.
			avail = slices.DeleteFunc(avail, func(f int) bool { return f == best })
			continue
		}
		feat := g.schema.Features[best]
		kidAvail := avail
		if feat.Kind == Categorical {
			kidAvail = slices.DeleteFunc(slices.Clone(avail), func(f int) bool { return f == best })
		}
		n.Type = trees.RuleNode
		n.SplitRule = &trees.DecisionTreeRule{SplitAttr: g.attrs[best], SplitVal: bestThr}
		n.Children = map[string]*trees.DecisionTreeNode{}
		for slot, p := range parts {
			if len(p) == 0 {
				continue
			}
			n.Children[slotKey(feat, slot)] = gr.node(p, kidAvail, depth+1)
		}
		return n
	}
	return n
}

// slotKey is golearn's child key for a slot: "0"/"1" for numeric splits,
// the categorical value otherwise.
func slotKey(f Feature, slot int) string {
	if f.Kind == Numeric {
		return strconv.Itoa(slot)
	}
	if slot < len(f.Vocabulary) {
		return f.Vocabulary[slot]
	}
	return missingToken
}

// threshold finds the numeric split of rows on f with the most
// information gain, among midpoints between consecutive distinct values
// that leave at least minLeaf rows on each side. It is golearn's search
// (getNumericAttributeEntropy: sort, sweep the midpoints, keep the lowest
// split entropy) done on our own columns: golearn's version reads every
// value and class through map-backed views and spent 80% of training
// time there (measured: 2.6 s of 3.3 s on the arrests table). It also
// counts a value equal to the threshold on the right while splitting
// puts it on the left; here search and split agree.
func (gr *grower) threshold(rows []int, f int, neg, pos int) (thr, gain float64, ok bool) {
	col := gr.g.cols[f]
	buf := gr.buf[:0]
	for _, r := range rows {
		buf = append(buf, valueClass{col[r], gr.g.y[r]})
	}
	gr.buf = buf
	slices.SortFunc(buf, func(a, b valueClass) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	minLeaf := max(gr.o.minLeaf, 1)
	base := entropy2(neg, pos)
	total := float64(len(rows))
	var ln, lp int
	bestEnt := math.Inf(1)
	for i := 0; i < len(buf)-1; i++ {
		if buf[i].y {
			lp++
		} else {
			ln++
		}
		if buf[i].v == buf[i+1].v {
			continue
		}
		left := i + 1
		if left < minLeaf || len(buf)-left < minLeaf {
			continue
		}
		ent := float64(left)/total*entropy2(ln, lp) + float64(len(buf)-left)/total*entropy2(neg-ln, pos-lp)
		if ent < bestEnt {
			bestEnt = ent
			thr = buf[i].v + (buf[i+1].v-buf[i].v)/2
		}
	}
	if math.IsInf(bestEnt, 1) {
		return 0, 0, false
	}
	return thr, base - bestEnt, true
}

// partition splits rows by feature f: two parts (x <= thr, x > thr) for a
// numeric feature, one per vocabulary slot for a categorical one.
func (gr *grower) partition(rows []int, f int, thr float64) [][]int {
	col := gr.g.cols[f]
	var parts [][]int
	if gr.g.schema.Features[f].Kind == Numeric {
		parts = make([][]int, 2)
		for _, r := range rows {
			if col[r] > thr {
				parts[1] = append(parts[1], r)
			} else {
				parts[0] = append(parts[0], r)
			}
		}
		return parts
	}
	parts = make([][]int, len(gr.g.schema.Features[f].Vocabulary)+1)
	for _, r := range rows {
		s := int(col[r])
		parts[s] = append(parts[s], r)
	}
	return parts
}

// gain is the information gain of splitting rows on f (at thr if
// numeric), summed in slot order so that it is the same on every run.
// ok is false when a non-empty part would hold fewer than minLeaf rows.
func (gr *grower) gain(rows []int, f int, thr float64, neg, pos int) (gain float64, ok bool) {
	col := gr.g.cols[f]
	var cnt [][2]int
	if gr.g.schema.Features[f].Kind == Numeric {
		cnt = make([][2]int, 2)
		for _, r := range rows {
			s := 0
			if col[r] > thr {
				s = 1
			}
			cnt[s][b2i(gr.g.y[r])]++
		}
	} else {
		cnt = make([][2]int, len(gr.g.schema.Features[f].Vocabulary)+1)
		for _, r := range rows {
			cnt[int(col[r])][b2i(gr.g.y[r])]++
		}
	}
	total := float64(len(rows))
	after := 0.0
	for _, c := range cnt {
		if m := c[0] + c[1]; m > 0 {
			if m < gr.o.minLeaf {
				return 0, false
			}
			after += float64(m) / total * entropy2(c[0], c[1])
		}
	}
	return entropy2(neg, pos) - after, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// entropy2 is the binary entropy in bits of a (a, b) class count.
func entropy2(a, b int) float64 {
	t := float64(a + b)
	e := 0.0
	for _, c := range [2]int{a, b} {
		if c > 0 {
			p := float64(c) / t
			e -= p * math.Log2(p)
		}
	}
	return e
}

// fitTrees fits the trees of a forest (or the single tree when bootstrap
// is false) sequentially: tree t draws its bootstrap rows and its split
// attributes from a generator seeded with (seed, t), so the result depends
// only on the data and the seed. progress, if not nil, is called after
// each tree.
func fitTrees(g *grid, n int, seed uint64, k int, bootstrap bool, o growOptions, progress func(done int)) []*trees.DecisionTreeNode {
	rows := len(g.y)
	avail := make([]int, len(g.attrs))
	for i := range avail {
		avail[i] = i
	}
	// Trees are independent — tree t draws from its own generator, seeded
	// by (seed, t+1) — and the grid is only read, so they grow on every
	// core at once and the forest is the same as grown one by one.
	out := make([]*trees.DecisionTreeNode, n)
	var (
		next atomic.Int64
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []valueClass
			for t := int(next.Add(1) - 1); t < n; t = int(next.Add(1) - 1) {
				rng := rand.New(rand.NewPCG(seed, uint64(t)+1))
				idx := make([]int, rows)
				for i := range idx {
					if bootstrap {
						idx[i] = rng.IntN(rows)
					} else {
						idx[i] = i
					}
				}
				gr := &grower{g: g, k: k, rng: rng, o: o, buf: buf}
				out[t] = gr.node(idx, avail, 0)
				buf = gr.buf
				if progress != nil {
					mu.Lock()
					done++
					progress(done)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// compileTree flattens a golearn tree into our arrays, numbering nodes
// depth-first with children in slot order.
func compileTree(root *trees.DecisionTreeNode, s Schema) (Tree, error) {
	var t Tree
	byName := map[string]int{}
	for i, f := range s.Features {
		byName[f.Name] = i
	}
	var walk func(n *trees.DecisionTreeNode) (int32, error)
	walk = func(n *trees.DecisionTreeNode) (int32, error) {
		id := int32(len(t.Feature))
		t.Feature = append(t.Feature, -1)
		t.Threshold = append(t.Threshold, 0)
		t.First = append(t.First, -1)
		t.Neg = append(t.Neg, int32(n.ClassDist[negClass]))
		t.Pos = append(t.Pos, int32(n.ClassDist[posClass]))
		if n.Children == nil || n.SplitRule == nil || n.SplitRule.SplitAttr == nil {
			return id, nil
		}
		name := n.SplitRule.SplitAttr.GetName()
		f, ok := byName[name]
		if !ok {
			return 0, fmt.Errorf("compiling tree: split on unknown attribute %q", name)
		}
		var keys []string
		if s.Features[f].Kind == Numeric {
			t.Threshold[id] = n.SplitRule.SplitVal
			keys = []string{"0", "1"}
		} else {
			keys = append(append(keys, s.Features[f].Vocabulary...), missingToken)
		}
		t.Feature[id] = int32(f)
		first := int32(len(t.Kids))
		t.First[id] = first
		for range keys {
			t.Kids = append(t.Kids, -1)
		}
		// golearn sends a value with no child of its own to "the first
		// child greater than the value in map order", which is random
		// when there are several; with exactly one child it is that
		// child, and the compiled tree does the same. With several we
		// stop at this node and answer its class frequencies.
		only := ""
		if len(n.Children) == 1 {
			for k := range n.Children {
				only = k
			}
		}
		for j, k := range keys {
			c, ok := n.Children[k]
			if !ok && only != "" {
				c, ok = n.Children[only], true
			}
			if !ok {
				continue
			}
			kid, err := walk(c)
			if err != nil {
				return 0, err
			}
			t.Kids[first+int32(j)] = kid
		}
		return id, nil
	}
	if _, err := walk(root); err != nil {
		return Tree{}, err
	}
	return t, nil
}

// nbBinarizer turns a feature vector into the binary indicators golearn's
// Bernoulli naive Bayes needs: a categorical feature becomes one indicator
// per vocabulary slot (one-hot, the missing slot included); a numeric
// feature is cut at its training deciles and becomes one indicator per
// bin (after imputing a missing value). One-hot bins rather than
// "thermometer" indicators x > t: thermometers count one fact nine times
// and made the posteriors far overconfident (measured: deciles of
// predicted 0.001 observed 0.15).
type nbBinarizer struct {
	schema     Schema
	impute     []float64
	thresholds [][]float64 // numeric features only
}

// slots returns the number of indicators of feature i.
func (b *nbBinarizer) slots(i int) int {
	if b.schema.Features[i].Kind == Numeric {
		return len(b.thresholds[i]) + 1
	}
	return len(b.schema.Features[i].Vocabulary) + 1
}

func newBinarizer(s Schema, X [][]float64, impute []float64) *nbBinarizer {
	b := &nbBinarizer{schema: s, impute: impute, thresholds: make([][]float64, len(s.Features))}
	for i, f := range s.Features {
		if f.Kind != Numeric {
			continue
		}
		col := make([]float64, 0, len(X))
		for _, x := range X {
			v := x[i]
			if math.IsNaN(v) {
				v = impute[i]
			}
			col = append(col, v)
		}
		sort.Float64s(col)
		var ts []float64
		for q := 1; q < 10; q++ {
			t := col[q*(len(col)-1)/10]
			if (len(ts) == 0 || t > ts[len(ts)-1]) && t < col[len(col)-1] {
				ts = append(ts, t)
			}
		}
		b.thresholds[i] = ts
	}
	return b
}

// level returns the slot whose indicator is on: for a numeric feature the
// bin, the number of thresholds x exceeds; for a categorical feature the
// vocabulary slot.
func (b *nbBinarizer) level(i int, x float64) int {
	f := &b.schema.Features[i]
	if f.Kind != Numeric {
		return catSlot(x, len(f.Vocabulary))
	}
	if math.IsNaN(x) {
		x = b.impute[i]
	}
	n := 0
	for _, t := range b.thresholds[i] {
		if x > t {
			n++
		}
	}
	return n
}

// nbGrid builds golearn's binary-attribute instances for naive Bayes.
func (b *nbBinarizer) nbGrid(X [][]float64, Y []bool) *grid {
	g := &grid{inst: base.NewDenseInstances()}
	type ref struct {
		spec base.AttributeSpec
		feat int
		slot int
	}
	var refs []ref
	for i, f := range b.schema.Features {
		for j := 0; j < b.slots(i); j++ {
			a := base.NewBinaryAttribute(fmt.Sprintf("%s#%d", f.Name, j))
			g.attrs = append(g.attrs, a)
			refs = append(refs, ref{g.inst.AddAttribute(a), i, j})
		}
	}
	cls := base.NewCategoricalAttribute()
	cls.SetName("__label")
	cls.GetSysValFromString(negClass)
	cls.GetSysValFromString(posClass)
	g.class = cls
	clsSpec := g.inst.AddAttribute(cls)
	_ = g.inst.AddClassAttribute(cls)
	_ = g.inst.Extend(len(X))
	for r, x := range X {
		for _, rf := range refs {
			on := b.indicator(rf.feat, rf.slot, x[rf.feat])
			v := []byte{0}
			if on {
				v[0] = 1
			}
			g.inst.Set(rf.spec, r, v)
		}
		c := negClass
		if Y != nil && Y[r] {
			c = posClass
		}
		g.inst.Set(clsSpec, r, cls.GetSysValFromString(c))
	}
	return g
}

func (b *nbBinarizer) indicator(i, slot int, x float64) bool {
	return b.level(i, x) == slot
}

// fitNB fits golearn's Bernoulli naive Bayes (kept for the agreement
// test) and compiles the same model into per-feature log-odds tables.
// golearn does not export its conditional probabilities, so the compiler
// recounts them with golearn's formula, P(indicator|class) =
// (rows of the class with it on + 1) / (rows of the class + 1), and
// golearn's special case for a probability of exactly 1. The agreement
// test proves the two give the same labels.
func fitNB(b *nbBinarizer, X [][]float64, Y []bool) (*naive.BernoulliNBClassifier, *NaiveBayes, error) {
	g := b.nbGrid(X, Y)
	nb := naive.NewBernoulliNBClassifier()
	if err := nb.Fit(g.inst); err != nil {
		return nil, nil, fmt.Errorf("fitting naive Bayes: %w", err)
	}
	var nc [2]float64
	on := [2][][]float64{}
	for c := range on {
		on[c] = make([][]float64, len(b.schema.Features))
		for i := range b.schema.Features {
			on[c][i] = make([]float64, b.slots(i))
		}
	}
	for r, x := range X {
		c := 0
		if Y[r] {
			c = 1
		}
		nc[c]++
		for i := range b.schema.Features {
			on[c][i][b.level(i, x[i])]++
		}
	}
	if nc[0] == 0 || nc[1] == 0 {
		return nil, nil, fmt.Errorf("fitting naive Bayes: the training set holds only one class")
	}
	// logp returns class c's log-likelihood contribution of indicator
	// (i, j) being on or off, exactly as golearn's PredictOne adds it.
	logp := func(c, i, j int, isOn bool) float64 {
		p := (on[c][i][j] + 1) / (nc[c] + 1)
		if isOn {
			return math.Log(p)
		}
		if p == 1 {
			return math.Log(1 / (nc[c] + 1))
		}
		return math.Log(1 - p)
	}
	m := &NaiveBayes{Bias: math.Log(nc[1]/(nc[0]+nc[1])) - math.Log(nc[0]/(nc[0]+nc[1]))}
	for i := range b.schema.Features {
		n := b.slots(i)
		// Per-indicator log-odds when off, and the change when on.
		off := make([]float64, n)
		delta := make([]float64, n)
		for j := 0; j < n; j++ {
			off[j] = logp(1, i, j, false) - logp(0, i, j, false)
			delta[j] = logp(1, i, j, true) - logp(0, i, j, true) - off[j]
			m.Bias += off[j]
		}
		m.Thresholds = append(m.Thresholds, b.thresholds[i]) // nil for categoricals
		m.Table = append(m.Table, delta)
	}
	return nb, m, nil
}

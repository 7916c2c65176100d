package models

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
)

// Arm is one Thompson-sampling arm: an offer shown to a segment.
//
// A segment that starts with '/' is a set of facets, each a value of one
// customer attribute ("/offline/member/parent"; a value names one facet
// only). An outcome of such an arm also counts for the offer across every
// segment (segment "") and for each facet on its own ("/offline",
// "/member", "/parent"), so a fine arm that has seen little can borrow
// strength from the coarser ones (Lineage). Other segments stand alone.
type Arm struct {
	Offer   string
	Segment string
}

// Beta is a Beta(Alpha, Beta) posterior: an arm with s successes in n
// trials recorded as Update(arm, false) per trial and Update(arm, true)
// per success has Alpha = 1+s, Beta = 1+n.
type Beta struct{ Alpha, Beta float64 }

// posterior is Beta(alpha, beta), starting from the uniform Beta(1, 1).
type posterior struct{ alpha, beta float64 }

// banditShards spreads arms over independently locked maps so that
// concurrent updates of different arms rarely contend.
const banditShards = 32

// Bandit keeps a Beta-Bernoulli posterior per arm and samples from it for
// Thompson sampling. It is safe for concurrent use. An arm never seen is
// Beta(1, 1). Deterministic given the generator passed to Sample and the
// order of updates.
type Bandit struct {
	shards [banditShards]banditShard
}

type banditShard struct {
	mu   sync.Mutex
	arms map[Arm]*armNode
	_    [48]byte // keep neighbouring locks off one cache line
}

// armNode is one arm's posterior and, once built, its lineage: the nodes
// Update counts an outcome for and Lineage reads, coarsest first and the
// arm last, so both take one map lookup instead of one per level. A node
// is created by the first Update or Lineage that reaches it; one only
// read (seen false) is still Beta(1, 1) and not part of the encoding.
// Nodes are only ever dropped with their whole offer (Reset) or the whole
// table (UnmarshalBinary), so a lineage never points at a dropped node.
type armNode struct {
	p    posterior
	seen bool       // updated or restored: the arm exists
	path []*armNode // lineage, nil until first used
}

// NewBandit returns a bandit with no observations.
func NewBandit() *Bandit {
	b := &Bandit{}
	for i := range b.shards {
		b.shards[i].arms = map[Arm]*armNode{}
	}
	return b
}

func (b *Bandit) shard(a Arm) *banditShard {
	// FNV-1a over the offer: all segments of an offer share a shard, so
	// Reset(offer) visits one shard and an arm's lineage lives in its own.
	h := uint32(2166136261)
	for i := 0; i < len(a.Offer); i++ {
		h ^= uint32(a.Offer[i])
		h *= 16777619
	}
	return &b.shards[h%banditShards]
}

// node returns the arm's node, creating an unseen one; s.mu is held.
func (s *banditShard) node(a Arm) *armNode {
	if n := s.arms[a]; n != nil {
		return n
	}
	n := &armNode{p: posterior{1, 1}}
	// The key outlives the call: copy strings the caller may reuse.
	s.arms[Arm{Offer: strings.Clone(a.Offer), Segment: strings.Clone(a.Segment)}] = n
	return n
}

// lineage returns the arm's lineage nodes (see Lineage); s.mu is held.
func (s *banditShard) lineage(a Arm) []*armNode {
	n := s.node(a)
	if n.path == nil {
		var path []*armNode
		if faceted(a.Segment) {
			path = append(path, s.node(Arm{a.Offer, ""}))
			for f := range facets(a.Segment) {
				path = append(path, s.node(Arm{a.Offer, f}))
			}
		}
		n.path = append(path, n)
	}
	return n.path
}

// Update records one outcome of showing the arm, for the arm and for
// its ancestors.
func (b *Bandit) Update(a Arm, success bool) {
	s := b.shard(a)
	s.mu.Lock()
	for _, n := range s.lineage(a) {
		if success {
			n.p.alpha++
		} else {
			n.p.beta++
		}
		n.seen = true
	}
	s.mu.Unlock()
}

// Lineage appends to dst the posteriors of the offer across every
// segment, then of each facet of the arm's segment in order, then of the
// arm itself, read under one lock: for segment "/a/b", those of "", "/a",
// "/b" and "/a/b"; for a segment that is not a set of facets, the arm's
// alone. Arms never
// seen are Beta(1, 1).
func (b *Bandit) Lineage(a Arm, dst []Beta) []Beta {
	s := b.shard(a)
	s.mu.Lock()
	for _, n := range s.lineage(a) {
		dst = append(dst, Beta{n.p.alpha, n.p.beta})
	}
	s.mu.Unlock()
	return dst
}

// facets yields the facet arms' segments of a facet segment: "/a/b"
// yields "/a" and "/b", slices of the segment, so nothing is allocated. A
// segment of one facet has none besides itself.
func facets(segment string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		start := 0
		for i := 1; i <= len(segment); i++ {
			if i < len(segment) && segment[i] != '/' {
				continue
			}
			if f := segment[start:i]; len(f) > 1 && len(f) < len(segment) && !yield(f) {
				return
			}
			start = i
		}
	}
}

// faceted reports whether a segment is a set of facets.
func faceted(segment string) bool { return len(segment) > 1 && segment[0] == '/' }

// Len returns how many posteriors the bandit holds: arms and the facet
// and offer nodes of their lineages, including those only read so far.
// Its memory grows with them (a few hundred bytes each).
func (b *Bandit) Len() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.arms)
		s.mu.Unlock()
	}
	return n
}

// Posterior returns the arm's Beta parameters.
func (b *Bandit) Posterior(a Arm) (alpha, beta float64) {
	s := b.shard(a)
	s.mu.Lock()
	n := s.arms[a]
	var p posterior
	if n != nil {
		p = n.p
	}
	s.mu.Unlock()
	if n == nil {
		return 1, 1
	}
	return p.alpha, p.beta
}

// Sample draws a success probability from the arm's posterior using rng,
// which the caller owns (a *rand.Rand is not safe for concurrent use).
func (b *Bandit) Sample(a Arm, rng *rand.Rand) float64 {
	alpha, beta := b.Posterior(a)
	x := gammaSample(rng, alpha)
	y := gammaSample(rng, beta)
	return x / (x + y)
}

// SampleBeta draws from Beta(alpha, beta) using rng (alpha, beta > 0).
func SampleBeta(rng *rand.Rand, alpha, beta float64) float64 {
	x := gammaSample(rng, alpha)
	y := gammaSample(rng, beta)
	if x+y == 0 {
		return alpha / (alpha + beta)
	}
	return x / (x + y)
}

// Reset forgets every segment's posterior of the offer and returns how
// many had outcomes (0: the bandit had learnt nothing of the offer).
func (b *Bandit) Reset(offer string) (dropped int) {
	s := b.shard(Arm{Offer: offer})
	s.mu.Lock()
	for a, n := range s.arms {
		if a.Offer == offer {
			if n.seen {
				dropped++
			}
			delete(s.arms, a)
		}
	}
	s.mu.Unlock()
	return dropped
}

// gammaSample draws Gamma(shape, 1) by Marsaglia and Tsang's method.
// Posteriors start at 1, but the engine's priors (w pseudo-trials split
// by a rate) often give a shape below 1: that is Gamma(shape+1) scaled
// by U^(1/shape), with the power taken as exp(ln U / shape), the same
// value as math.Pow up to rounding at a third of its cost (Pow splits the
// exponent into integer and fraction parts and multiplies out the
// integer's bits).
func gammaSample(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		g := gammaSample(rng, shape+1)
		return g * math.Exp(math.Log(rng.Float64())/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// banditMagic starts the binary encoding, version 1.
var banditMagic = []byte("NBOB\x01")

// MarshalBinary encodes every posterior, arms sorted, so equal bandits
// encode to equal bytes (the engine puts it in its snapshot).
func (b *Bandit) MarshalBinary() ([]byte, error) {
	type entry struct {
		a Arm
		p posterior
	}
	var all []entry
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for a, n := range s.arms {
			if n.seen {
				all = append(all, entry{a, n.p})
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].a.Offer != all[j].a.Offer {
			return all[i].a.Offer < all[j].a.Offer
		}
		return all[i].a.Segment < all[j].a.Segment
	})
	out := append([]byte(nil), banditMagic...)
	out = binary.AppendUvarint(out, uint64(len(all)))
	for _, e := range all {
		out = binary.AppendUvarint(out, uint64(len(e.a.Offer)))
		out = append(out, e.a.Offer...)
		out = binary.AppendUvarint(out, uint64(len(e.a.Segment)))
		out = append(out, e.a.Segment...)
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(e.p.alpha))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(e.p.beta))
	}
	return out, nil
}

// ErrBadBandit marks a bandit encoding that cannot be decoded.
var ErrBadBandit = errors.New("models: bad bandit encoding")

// UnmarshalBinary replaces the bandit's posteriors with the encoded ones.
// On error the bandit is unchanged.
func (b *Bandit) UnmarshalBinary(data []byte) error {
	if len(data) < len(banditMagic) || string(data[:len(banditMagic)]) != string(banditMagic) {
		return fmt.Errorf("%w: missing header", ErrBadBandit)
	}
	data = data[len(banditMagic):]
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)) {
		return fmt.Errorf("%w: bad arm count", ErrBadBandit)
	}
	data = data[k:]
	str := func() (string, error) {
		l, k := binary.Uvarint(data)
		if k <= 0 || l > uint64(len(data)-k) {
			return "", fmt.Errorf("%w: truncated string", ErrBadBandit)
		}
		s := string(data[k : k+int(l)])
		data = data[k+int(l):]
		return s, nil
	}
	fresh := NewBandit()
	for i := uint64(0); i < n; i++ {
		offer, err := str()
		if err != nil {
			return err
		}
		seg, err := str()
		if err != nil {
			return err
		}
		if len(data) < 16 {
			return fmt.Errorf("%w: truncated posterior", ErrBadBandit)
		}
		p := posterior{math.Float64frombits(binary.LittleEndian.Uint64(data)), math.Float64frombits(binary.LittleEndian.Uint64(data[8:]))}
		data = data[16:]
		if !(p.alpha >= 1 && p.beta >= 1) || math.IsInf(p.alpha, 0) || math.IsInf(p.beta, 0) {
			return fmt.Errorf("%w: posterior of %s/%s is not ≥ Beta(1,1)", ErrBadBandit, offer, seg)
		}
		a := Arm{offer, seg}
		n := fresh.shard(a).node(a)
		n.p, n.seen = p, true
	}
	if len(data) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadBandit, len(data))
	}
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		s.arms = fresh.shards[i].arms
		s.mu.Unlock()
	}
	return nil
}

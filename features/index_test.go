package features

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestIDIndexBehavesLikeAMap runs random sets, deletes and gets against a
// map, with hashes chosen to collide: many keys share a home slot, and
// some share the whole hash, so probing, key comparison and backward-shift
// deletion are all exercised. After every operation every key the map
// holds must be found, and no other.
func TestIDIndexBehavesLikeAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	const keys = 400
	hashOf := make([]uint64, keys)
	names := make([]Key, keys)
	for i := range hashOf {
		names[i] = Key(fmt.Sprintf("member:M%d", i))
		// Few distinct high halves (homes cluster); some keys share the
		// full hash.
		hashOf[i] = uint64(r.IntN(8))<<32 | uint64(r.IntN(4))
	}
	cs := make([]*customer, 8)
	for i := range cs {
		cs[i] = &customer{}
	}
	var ix idIndex
	want := map[Key]*customer{}
	for op := range 20_000 {
		i := r.IntN(keys)
		k, h := names[i], hashOf[i]
		switch x := r.IntN(10); {
		case x < 5:
			c := cs[r.IntN(len(cs))]
			ix.set(k, h, c)
			want[k] = c
		case x < 8:
			ix.del(k, h, nil)
			delete(want, k)
		default:
			// Delete only when k points at a given customer.
			c := cs[r.IntN(len(cs))]
			ix.del(k, h, c)
			if want[k] == c {
				delete(want, k)
			}
		}
		require.Equal(t, len(want), ix.n, "op %d", op)
		if op%50 == 0 || op > 19_900 {
			for j := range names {
				require.Equal(t, want[names[j]], ix.get(names[j], hashOf[j]), "op %d key %s", op, names[j])
			}
			got := map[Key]*customer{}
			ix.each(func(k Key, c *customer) { got[k] = c })
			require.Equal(t, want, got, "op %d", op)
		}
	}
	// Emptied, the table gives its memory back.
	for j := range names {
		ix.del(names[j], hashOf[j], nil)
	}
	require.Zero(t, ix.n)
	require.Nil(t, ix.slots)
	require.Nil(t, ix.get(names[0], hashOf[0]))
}

// TestCustomersHoldTheirIdentifiersPacked checks what the index relies on:
// after links and merges every identifier of a customer lies in one
// allocation, and the index finds each customer by each of them.
func TestCustomersHoldTheirIdentifiersPacked(t *testing.T) {
	s := newTestStore(t)
	apply(t, s,
		mk("a", 0, ProductView, ChannelApp, IDs{Device: "D1"}, cat("shoes")),
		mk("b", time.Minute, ProductView, ChannelApp, IDs{Card: "C1", Phone: "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"}, cat("bags")),
		mk("c", 2*time.Minute, Identify, ChannelApp, IDs{Member: "M1", Device: "D1", Card: "C1"}),
	)
	require.Equal(t, 1, s.Len())
	c := s.lookup("member:M1")
	require.NotNil(t, c)
	require.Equal(t, Key("member:M1"), c.id)
	require.Len(t, c.ids, 4)
	lo, hi, total := ^uintptr(0), uintptr(0), 0
	for _, k := range c.ids {
		require.Same(t, c, s.lookup(k), "identifier %s", k)
		p := uintptr(unsafe.Pointer(unsafe.StringData(string(k))))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(k)))
		total += len(k)
	}
	require.Equal(t, uintptr(total), hi-lo, "the identifiers are packed back to back")
}

// TestInternerGivesEachNameOneIndex interns many names (the table grows
// several times, names land in several chunks), some of them repeatedly
// and from reused buffers, and checks that every name keeps its index,
// that indexes map back to their names, and that a table rebuilt from the
// list (snapshot restore) answers the same.
func TestInternerGivesEachNameOneIndex(t *testing.T) {
	in := newInterner()
	require.Zero(t, in.id(""))
	r := rand.New(rand.NewPCG(9, 9))
	want := map[string]uint32{}
	buf := make([]byte, 0, 64)
	for range 30_000 {
		buf = fmt.Appendf(buf[:0], "SKU-%d-%s", r.IntN(9000), []string{"a", "bb", "女装"}[r.IntN(3)])
		name := bufString(buf) // aliases buf, which is reused: id must copy
		got := in.id(name)
		if id, ok := want[string(buf)]; ok {
			require.Equal(t, id, got, "name %s", buf)
		} else {
			require.Equal(t, uint32(len(want)+1), got, "a new name gets the next index")
			want[string(buf)] = got
		}
	}
	check := func(in *interner) {
		t.Helper()
		for name, id := range want {
			require.Equal(t, name, in.name(id))
			require.Equal(t, id, in.id(name))
		}
		require.Len(t, in.all(), len(want)+1)
	}
	check(in)
	restored := newInterner()
	restored.reset(append([]string(nil), in.all()...))
	check(restored)
	require.Equal(t, uint32(len(want)+1), restored.id("a name never seen"))
}

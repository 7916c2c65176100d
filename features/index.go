package features

import "github.com/cespare/xxhash/v2"

// idIndex is one shard's identifier → customer table: open addressing with
// linear probing and backward-shift deletion (no tombstones).
//
// It replaces a map[Key]*customer on the apply path of every event. A Go
// map's lookup reads the group's control word, the slot, and the stored
// key's bytes from a separate allocation; here a slot holds the key's full
// hash beside the key and the customer, so a lookup reads one slot and,
// when the hash matches, the key's bytes — which are the customer's own
// packed identifiers (packIDs), the bytes the writer reads next anyway.
//
// The shard's lock guards it like the map it replaces: readers under the
// read lock, the store's writer under the write lock.
type idIndex struct {
	slots []idSlot // len is 0 or a power of two
	n     int
}

type idSlot struct {
	h uint64    // xxhash of k
	k Key       // immutable bytes, shared with the customer's ids
	c *customer // nil: the slot is empty
}

func hashKey(k Key) uint64 { return xxhash.Sum64String(string(k)) }

// home is the slot a hash starts probing at. The shard was chosen by the
// hash's low bits, so the table index takes the high ones.
func (ix *idIndex) home(h uint64) int { return int(h>>32) & (len(ix.slots) - 1) }

// get returns the customer holding k (hash h), or nil.
func (ix *idIndex) get(k Key, h uint64) *customer {
	if ix.n == 0 {
		return nil
	}
	mask := len(ix.slots) - 1
	for i := ix.home(h); ; i = (i + 1) & mask {
		sl := &ix.slots[i]
		if sl.c == nil {
			return nil
		}
		if sl.h == h && sl.k == k {
			return sl.c
		}
	}
}

// set points k (hash h) at c, storing k itself as the slot's key (the
// caller passes a string that stays immutable).
func (ix *idIndex) set(k Key, h uint64, c *customer) {
	if (ix.n+1)*4 > len(ix.slots)*3 {
		ix.resize(max(16, 2*len(ix.slots)))
	}
	mask := len(ix.slots) - 1
	for i := ix.home(h); ; i = (i + 1) & mask {
		sl := &ix.slots[i]
		if sl.c == nil {
			*sl = idSlot{h: h, k: k, c: c}
			ix.n++
			return
		}
		if sl.h == h && sl.k == k {
			sl.k, sl.c = k, c
			return
		}
	}
}

// del removes k (hash h) when it points at c (any customer when c is nil).
func (ix *idIndex) del(k Key, h uint64, c *customer) {
	if ix.n == 0 {
		return
	}
	mask := len(ix.slots) - 1
	i := ix.home(h)
	for ; ; i = (i + 1) & mask {
		sl := &ix.slots[i]
		if sl.c == nil {
			return
		}
		if sl.h == h && sl.k == k {
			if c != nil && sl.c != c {
				return
			}
			break
		}
	}
	// Backward shift: move later entries of the probe run into the hole
	// when the hole lies between their home slot and where they are.
	for j := i; ; {
		j = (j + 1) & mask
		sl := &ix.slots[j]
		if sl.c == nil {
			break
		}
		if home := ix.home(sl.h); (j-home)&mask >= (j-i)&mask {
			ix.slots[i] = *sl
			i = j
		}
	}
	ix.slots[i] = idSlot{}
	ix.n--
	if ix.n == 0 {
		ix.slots = nil // a cleared shard gives its memory back
	}
}

func (ix *idIndex) resize(size int) {
	old := ix.slots
	ix.slots = make([]idSlot, size)
	mask := size - 1
	for _, sl := range old {
		if sl.c == nil {
			continue
		}
		i := ix.home(sl.h)
		for ix.slots[i].c != nil {
			i = (i + 1) & mask
		}
		ix.slots[i] = sl
	}
}

// each calls fn for every entry, in no order.
func (ix *idIndex) each(fn func(Key, *customer)) {
	for _, sl := range ix.slots {
		if sl.c != nil {
			fn(sl.k, sl.c)
		}
	}
}

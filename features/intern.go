package features

import (
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// interner maps the strings customers share (categories, SKUs, stores,
// offer IDs) to small integers, so per-customer state holds 4-byte indexes
// instead of strings. Index 0 is the empty string.
//
// Lookups by index take no lock: names is an append-only slice published
// through an atomic pointer; a reader holding an older header simply does
// not see names added after it loaded. The table is the writer's alone:
// id and reset run only under the store's writer lock, so id needs no lock
// of its own (it is on the apply path of every event).
//
// The table is open addressing with linear probing over (hash, id) slots,
// and the names' bytes are copied into shared chunks: a lookup reads one
// slot and the name's bytes, where a map[string]uint32 read a control
// word, a slot and a separately allocated key. With tens of thousands of
// SKUs the table is mostly out of cache, so the apply path computes the
// hash early and touches the slot (touch) while it looks up the customer,
// letting the two cache misses overlap.
type interner struct {
	slots []internSlot // power of two; id 0 marks an empty slot
	own   []string     // the writer's view of names
	chunk []byte       // the names' bytes, filled up to len
	names atomic.Pointer[[]string]
}

type internSlot struct {
	h  uint64
	id uint32
}

const internChunk = 16 << 10 // bytes per chunk of names

func newInterner() *interner {
	in := &interner{}
	in.reset(nil)
	return in
}

func internHash(s string) uint64 { return xxhash.Sum64String(s) }

// touch reads the slot where a lookup of hash h starts, so that its cache
// miss overlaps other work; the result only keeps the read.
func (in *interner) touch(h uint64) uint64 {
	return uint64(in.slots[h&uint64(len(in.slots)-1)].id)
}

// id returns the index of s, adding it when new. Only the store's writer
// calls it.
func (in *interner) id(s string) uint32 {
	if s == "" {
		return 0
	}
	return in.idHash(s, internHash(s))
}

// idHash is id for s with hash h (internHash(s)).
func (in *interner) idHash(s string, h uint64) uint32 {
	if s == "" {
		return 0
	}
	mask := uint64(len(in.slots) - 1)
	i := h & mask
	for ; in.slots[i].id != 0; i = (i + 1) & mask {
		if sl := in.slots[i]; sl.h == h && in.own[sl.id] == s {
			return sl.id
		}
	}
	id := uint32(len(in.own))
	in.own = append(in.own, in.keep(s))
	names := in.own
	in.names.Store(&names)
	in.slots[i] = internSlot{h: h, id: id}
	if len(in.own)*2 > len(in.slots) { // ids count "" too: at most half full
		in.grow()
	}
	return id
}

// keep copies s into the current chunk (s may alias a decode buffer owned
// by the caller). The bytes are never written again.
func (in *interner) keep(s string) string {
	if len(s) > internChunk/8 {
		return string([]byte(s))
	}
	if cap(in.chunk)-len(in.chunk) < len(s) {
		in.chunk = make([]byte, 0, internChunk)
	}
	start := len(in.chunk)
	in.chunk = append(in.chunk, s...)
	return bufString(in.chunk[start:])
}

func (in *interner) grow() {
	old := in.slots
	in.slots = make([]internSlot, 2*len(old))
	mask := uint64(len(in.slots) - 1)
	for _, sl := range old {
		if sl.id == 0 {
			continue
		}
		i := sl.h & mask
		for in.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		in.slots[i] = sl
	}
}

// name returns the string of index id.
func (in *interner) name(id uint32) string {
	names := *in.names.Load()
	if int(id) < len(names) {
		return names[id]
	}
	return ""
}

func (in *interner) all() []string { return *in.names.Load() }

// reset replaces the table (snapshot restore); the caller holds the
// store's writer lock.
func (in *interner) reset(names []string) {
	if len(names) == 0 {
		names = make([]string, 1, 1024)
	}
	size := 1024
	for size < 2*len(names) {
		size *= 2
	}
	in.slots = make([]internSlot, size)
	in.chunk = nil
	mask := uint64(size - 1)
	for id := 1; id < len(names); id++ {
		h := internHash(names[id])
		i := h & mask
		for in.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		in.slots[i] = internSlot{h: h, id: uint32(id)}
	}
	in.own = names
	in.names.Store(&names)
}

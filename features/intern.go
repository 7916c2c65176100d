package features

import "sync/atomic"

// interner maps the strings customers share (categories, SKUs, stores,
// offer IDs) to small integers, so per-customer state holds 4-byte indexes
// instead of strings. Index 0 is the empty string.
//
// Lookups by index take no lock: names is an append-only slice published
// through an atomic pointer; a reader holding an older header simply does
// not see names added after it loaded. The map is the writer's alone: id
// and reset run only under the store's writer lock, so id needs no lock
// of its own (it is on the apply path of every event).
type interner struct {
	m     map[string]uint32
	names atomic.Pointer[[]string]
}

func newInterner() *interner {
	in := &interner{m: map[string]uint32{"": 0}}
	names := make([]string, 1, 1024)
	in.names.Store(&names)
	return in
}

// id returns the index of s, adding it when new. Only the store's writer
// calls it.
func (in *interner) id(s string) uint32 {
	if s == "" {
		return 0
	}
	id, ok := in.m[s]
	if !ok {
		// Clone: s may alias a decode buffer owned by the caller.
		s = string([]byte(s))
		names := *in.names.Load()
		id = uint32(len(names))
		names = append(names, s)
		in.names.Store(&names)
		in.m[s] = id
	}
	return id
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
		names = []string{""}
	}
	in.m = make(map[string]uint32, len(names))
	for i, n := range names {
		in.m[n] = uint32(i)
	}
	in.names.Store(&names)
}

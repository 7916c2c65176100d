package features

import (
	"sync"
	"sync/atomic"
)

// interner maps the strings customers share (categories, SKUs, stores,
// offer IDs) to small integers, so per-customer state holds 4-byte indexes
// instead of strings. Index 0 is the empty string.
//
// Lookups by index take no lock: names is an append-only slice published
// through an atomic pointer; a reader holding an older header simply does
// not see names added after it loaded.
type interner struct {
	mu    sync.Mutex
	m     map[string]uint32
	names atomic.Pointer[[]string]
}

func newInterner() *interner {
	in := &interner{m: map[string]uint32{"": 0}}
	names := make([]string, 1, 1024)
	in.names.Store(&names)
	return in
}

// id returns the index of s, adding it when new.
func (in *interner) id(s string) uint32 {
	if s == "" {
		return 0
	}
	in.mu.Lock()
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
	in.mu.Unlock()
	return id
}

// lookup returns the index of s without adding it.
func (in *interner) lookup(s string) (uint32, bool) {
	if s == "" {
		return 0, true
	}
	in.mu.Lock()
	id, ok := in.m[s]
	in.mu.Unlock()
	return id, ok
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

// reset replaces the table (snapshot restore).
func (in *interner) reset(names []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(names) == 0 {
		names = []string{""}
	}
	in.m = make(map[string]uint32, len(names))
	for i, n := range names {
		in.m[n] = uint32(i)
	}
	in.names.Store(&names)
}

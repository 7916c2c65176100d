package features

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Options configure a Store. The zero value is valid: EnsureDefaults fills
// every unset field.
type Options struct {
	// AllowedLateness is how far behind a customer's newest event time an
	// event may be and still be applied; older ones are rejected too_late.
	// Default: 10m.
	AllowedLateness time.Duration
	// RecentEvents is how many recent events each customer keeps.
	// Default: 8.
	RecentEvents int
	// Shards is the number of independently locked customer shards, a
	// power of two. Default: 256.
	Shards int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.AllowedLateness == 0 {
		o.AllowedLateness = 10 * time.Minute
	}
	if o.RecentEvents == 0 {
		o.RecentEvents = 8
	}
	if o.Shards == 0 {
		o.Shards = 256
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("features: allowed lateness %v is negative; use 0 for the default or a positive duration", o.AllowedLateness))
	}
	if o.RecentEvents < 0 || o.RecentEvents > 256 {
		errs = append(errs, fmt.Errorf("features: recent events %d is out of range; use 1..256", o.RecentEvents))
	}
	if o.Shards < 0 || o.Shards&(o.Shards-1) != 0 {
		errs = append(errs, fmt.Errorf("features: shards %d is not a power of two", o.Shards))
	}
	return errors.Join(errs...)
}

// Applied describes the effect of one applied event.
type Applied struct {
	Customer Key    // canonical customer ID after the event
	Version  uint64 // the customer's state version after the event
	// Merged are the canonical IDs folded into Customer by this event;
	// for an erase, the canonical IDs of every customer it removed
	// (Customer's first).
	Merged []Key
	Erased bool // the event erased the customer
}

type shard struct {
	mu        sync.RWMutex
	customers map[Key]*customer // canonical ID → customer, for listing
	ids       idIndex           // identifier (canonical ones too) → customer
	_         [64]byte          // keep hot locks on separate cache lines
}

// Store is the per-customer state of every customer, sharded by key.
//
// Apply is called by one writer at a time (the ingest loop; a mutex
// enforces it); reads (ViewAt, Resolve) run concurrently from any number
// of goroutines and never see a half-applied event of one customer.
type Store struct {
	opts     Options
	lateness int64
	mask     uint64
	shards   []shard
	in       *interner

	writeMu  sync.Mutex
	keyBuf   []byte // eventKeys' scratch, used under writeMu
	warmSink uint64 // keeps customer.warm's reads, used under writeMu
	// spareLogs are visit logs customers let go, for the next customer
	// whose store event needs one (visitLogFor): most store events start
	// a log and a later event lets it go, and allocating each anew cost
	// the apply path ~5%. Used under writeMu.
	spareLogs []*visitLog
	customers atomic.Int64
	applied   atomic.Int64
	rejected  [32]atomic.Int64 // by index in Reasons

	// newestTS is the newest event time applied to any customer; tombs
	// are the erased identifiers (by hashKey) with the time of their
	// erasure, kept while an event older than it may still arrive (see
	// tombstone), and tombsNewest the newest of those times. Used under
	// writeMu.
	newestTS    int64
	tombs       map[uint64]int64
	tombsNewest int64
}

var reasonIndex = func() map[Reason]int {
	m := make(map[Reason]int, len(Reasons))
	for i, r := range Reasons {
		m[r] = i
	}
	return m
}()

// NewStore returns an empty store.
func NewStore(opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:     opts,
		lateness: opts.AllowedLateness.Milliseconds(),
		mask:     uint64(opts.Shards - 1),
		shards:   make([]shard, opts.Shards),
		in:       newInterner(),
	}
	for i := range s.shards {
		s.shards[i].customers = make(map[Key]*customer)
	}
	return s, nil
}

func (s *Store) shardOf(k Key) *shard { return &s.shards[xxhash.Sum64String(string(k))&s.mask] }

// lookup returns the customer that holds identifier k, or nil. A reader
// must take the customer's lock and check removed: a merge may have folded
// it into another customer since (look up again).
func (s *Store) lookup(k Key) *customer {
	h := hashKey(k)
	sh := &s.shards[h&s.mask]
	sh.mu.RLock()
	c := sh.ids.get(k, h)
	sh.mu.RUnlock()
	return c
}

// index points identifier k at c; the caller is the writer and k stays
// immutable (one of c's packed ids).
func (s *Store) index(k Key, c *customer) {
	h := hashKey(k)
	sh := &s.shards[h&s.mask]
	sh.mu.Lock()
	sh.ids.set(k, h, c)
	sh.mu.Unlock()
}

// unindex removes identifier k when it points at c.
func (s *Store) unindex(k Key, c *customer) {
	h := hashKey(k)
	sh := &s.shards[h&s.mask]
	sh.mu.Lock()
	sh.ids.del(k, h, c)
	sh.mu.Unlock()
}

// owner returns the canonical ID of the customer holding identifier k.
func (s *Store) owner(k Key) (Key, bool) {
	for try := 0; try < 3; try++ {
		c := s.lookup(k)
		if c == nil {
			return "", false
		}
		c.mu.RLock()
		id, removed := c.id, c.removed
		c.mu.RUnlock()
		if !removed {
			return id, true
		}
	}
	return "", false
}

// Len returns the number of customers.
func (s *Store) Len() int { return int(s.customers.Load()) }

// Stats are the store's counters, pulled by the caller.
type Stats struct {
	Customers int64
	Applied   int64
	Rejected  map[Reason]int64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Customers: s.customers.Load(), Applied: s.applied.Load(), Rejected: make(map[Reason]int64)}
	for r, i := range reasonIndex {
		if n := s.rejected[i].Load(); n > 0 {
			st.Rejected[r] = n
		}
	}
	return st
}

// CountRejected counts a rejection that happened before the store (in the
// decoder), so one set of counters covers every reason.
func (s *Store) CountRejected(r Reason) {
	if i, ok := reasonIndex[r]; ok {
		s.rejected[i].Add(1)
	}
}

func (s *Store) reject(code Reason, field, msg string) (Applied, *Rejection) {
	s.CountRejected(code)
	return Applied{}, &Rejection{Code: code, Field: field, Message: msg}
}

// eventKeys lists the event's identifiers in priority order. The keys
// are views into *scratch, valid until it is next reused: the writer
// builds them without an allocation per identifier, and clones a key only
// when it is stored.
func eventKeys(ids *IDs, buf []Key, scratch *[]byte) []Key {
	buf = buf[:0]
	b := (*scratch)[:0]
	var ends [NumNamespaces]int
	n := 0
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if v := ids.Get(ns); v != "" {
			b = append(b, ns.String()...)
			b = append(b, ':')
			b = append(b, v...)
			ends[n] = len(b)
			n++
		}
	}
	*scratch = b // b may have grown: views are taken only after the last append
	start := 0
	for _, end := range ends[:n] {
		buf = append(buf, Key(unsafe.String(&b[start], end-start)))
		start = end
	}
	return buf
}

// Resolve returns the canonical ID of the customer that owns any of ids,
// trying identifiers in priority order.
func (s *Store) Resolve(ids *IDs) (Key, bool) {
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if v := ids.Get(ns); v != "" {
			if c, ok := s.owner(MakeKey(ns, v)); ok {
				return c, true
			}
		}
	}
	return "", false
}

// ResolveKey returns the canonical ID of the customer that owns the
// identifier k ("phone:…", "member:M1", or a canonical ID).
func (s *Store) ResolveKey(k Key) (Key, bool) { return s.owner(k) }

// ViewAt fills v with the features of the customer that owns ids at
// instant now (Unix ms). It returns false, and a View with Known=false,
// for a customer never seen.
func (s *Store) ViewAt(ids *IDs, now int64, v *View) bool {
	// The customer Resolve would name, read where the identifier leads:
	// one index lookup and one lock, not a second lookup by the canonical
	// ID. Identifiers in namespace order, each retried past a merge as
	// Resolve and ViewKey do.
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if id := ids.Get(ns); id != "" && s.viewKey(MakeKey(ns, id), now, v) {
			return true
		}
	}
	v.reset(now)
	return false
}

// ViewKey is ViewAt for an identifier key.
func (s *Store) ViewKey(k Key, now int64, v *View) bool {
	if s.viewKey(k, now, v) {
		return true
	}
	v.reset(now)
	return false
}

// viewKey fills v from the customer holding identifier k; it returns
// false, leaving v as it was, when there is none.
func (s *Store) viewKey(k Key, now int64, v *View) bool {
	// A merge may fold the customer into another between the lookup and
	// the read; a retry finds the merged customer.
	for try := 0; try < 3; try++ {
		c := s.lookup(k)
		if c == nil {
			break
		}
		c.prefetchRecord()
		c.mu.RLock()
		if !c.removed {
			s.fillView(c, now, v)
			c.mu.RUnlock()
			return true
		}
		c.mu.RUnlock()
	}
	return false
}

// Version returns the state version of the customer that owns k.
func (s *Store) Version(k Key) (uint64, bool) {
	for try := 0; try < 3; try++ {
		c := s.lookup(k)
		if c == nil {
			break
		}
		c.mu.RLock()
		version, removed := c.version, c.removed
		c.mu.RUnlock()
		if !removed {
			return version, true
		}
	}
	return 0, false
}

// Customers calls fn with the canonical ID of every customer, in no order.
func (s *Store) Customers(fn func(Key)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		ids := make([]Key, 0, len(sh.customers))
		for id := range sh.customers {
			ids = append(ids, id)
		}
		sh.mu.RUnlock()
		for _, id := range ids {
			fn(id)
		}
	}
}

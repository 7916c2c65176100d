// Package cache is the decision cache: recent decisions keyed by customer,
// request and the customer's state version, so that a new event for the
// customer (which bumps the version) makes every cached decision for them
// unusable at once, and the cache never serves a decision older than the
// customer's newest event. An erased customer's decisions are never
// served again (Forget), not even to a customer created after the erase
// under the same key, whose state versions start again from the first.
//
// It is the only importer of ristretto and keeps ristretto's types out of
// its API. It is a cache only: ristretto may drop a Set under contention or
// refuse an entry by its admission policy, so a miss is always possible and
// callers compute the decision then. It is not a store of record for
// anything.
package cache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"

	"nbo/features"
)

// Options configure a Cache. The zero value is valid: EnsureDefaults fills
// every unset field.
type Options struct {
	// MaxEntries bounds the number of cached decisions. Default: 100,000.
	MaxEntries int64
	// MaxAge is how long after it was computed (by the now passed to Set
	// and Get) a decision may be served; time-dependent rules such as
	// quiet hours and validity windows change without a new event, so the
	// age must stay short. Default: 10s.
	MaxAge time.Duration
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxEntries == 0 {
		o.MaxEntries = 100_000
	}
	if o.MaxAge == 0 {
		o.MaxAge = 10 * time.Second
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxEntries < 1 {
		errs = append(errs, fmt.Errorf("cache: max entries %d must be positive", o.MaxEntries))
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("cache: max age %v is negative", o.MaxAge))
	}
	return errors.Join(errs...)
}

// Cache holds decisions of type T (typically an immutable *Decision). A
// value handed to Set is shared by every Get that returns it and must not
// be modified afterwards. Safe for concurrent use.
type Cache[T any] struct {
	rc     *ristretto.Cache[uint64, *entry[T]]
	maxAge int64

	hits, misses, stale atomic.Uint64

	// forgotten holds, per erased customer, the instant Forget was called
	// (by the caller's clock): an entry computed at or before it is
	// never served. It is read on every Get and written on an erase, so
	// it is an immutable map published whole (nil until the first erase,
	// and small after it: it holds the customers of the last 2×MaxAge);
	// forgetMu serializes the writers. A customer leaves it once every
	// entry it voids is too old to serve anyway (pruneAfter).
	forgotten atomic.Pointer[map[features.Key]int64]
	forgetMu  sync.Mutex
}

// entry is what ristretto stores. The ristretto key is a 64-bit hash of
// (customer, request key); the entry keeps both in clear so a hash
// collision is a miss, never another customer's decision.
type entry[T any] struct {
	customer features.Key
	request  string
	version  uint64
	at       int64
	value    T
}

// New returns an empty cache.
func New[T any](opts Options) (*Cache[T], error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("creating decision cache: %w", err)
	}
	c := &Cache[T]{maxAge: opts.MaxAge.Milliseconds()}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *entry[T]]{
		NumCounters: 10 * opts.MaxEntries,
		MaxCost:     opts.MaxEntries,
		BufferItems: 64,
		// Every entry costs 1; without this ristretto adds its own
		// per-item overhead to the cost and holds ~1/57 of MaxEntries.
		IgnoreInternalCost: true,
		// Never let a decision for an older state replace a newer one
		// (two deciders racing for the same customer), unless the newer
		// one can no longer be served: an erased customer's, or one past
		// MaxAge (a customer created after an erase under the same key
		// starts again from the first version, and would otherwise not
		// be cached until ristretto evicts the old entry).
		ShouldUpdate: func(cur, prev *entry[T]) bool {
			if c.voided(cur) {
				return false
			}
			return cur.version >= prev.version || c.voided(prev) || cur.at-prev.at > c.maxAge
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating decision cache: %w", err)
	}
	c.rc = rc
	return c, nil
}

func hashKey(customer features.Key, requestKey string) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(string(customer))
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(requestKey)
	return d.Sum64()
}

// Get returns the decision cached for the customer and request key if it
// was computed at exactly this state version and no longer than MaxAge
// before now. An entry for another version — older or newer — is a miss.
// requestKey identifies everything else the decision depends on (channel,
// placement, store, limit, locale, context); the caller builds it.
func (c *Cache[T]) Get(customer features.Key, version uint64, requestKey string, now int64) (T, bool) {
	var zero T
	e, ok := c.rc.Get(hashKey(customer, requestKey))
	if !ok || e.customer != customer || e.request != requestKey {
		c.misses.Add(1)
		return zero, false
	}
	if e.version != version || now-e.at > c.maxAge || now < e.at || c.voided(e) {
		c.stale.Add(1)
		return zero, false
	}
	c.hits.Add(1)
	return e.value, true
}

// Set caches value as the decision for the customer and request at state
// version, computed at now. It reports false when ristretto dropped the
// write (contention or admission) — harmless for a cache. A Set for an
// older version than the cached one is ignored.
func (c *Cache[T]) Set(customer features.Key, version uint64, requestKey string, value T, now int64) bool {
	e := &entry[T]{customer: customer, request: requestKey, version: version, at: now, value: value}
	if c.voided(e) {
		return false // a decision for the erased customer, computed before Forget
	}
	return c.rc.Set(hashKey(customer, requestKey), e, 1)
}

// Forget makes every decision cached for customer (a canonical key) that
// was computed at or before now unusable, for an erase: Get never serves
// it, even for the same state version, which a customer created after the
// erase under the same key reaches again; and a Set of a decision computed
// before now, by a request that read the erased customer's state, is
// dropped. now is the caller's clock, the one it passes to Get and Set;
// call Forget after the feature store has removed the customer, so that
// any decision computed from their state was computed at or before now.
//
// The entries stay in ristretto until evicted: they are keyed by request
// too, which the cache cannot list.
func (c *Cache[T]) Forget(customer features.Key, now int64) {
	c.forgetMu.Lock()
	defer c.forgetMu.Unlock()
	cur := c.forgotten.Load()
	next := make(map[features.Key]int64, 1)
	if cur != nil {
		for k, at := range *cur {
			if now-at <= c.pruneAfter() {
				next[k] = at
			}
		}
	}
	next[customer] = max(next[customer], now)
	c.forgotten.Store(&next)
}

// pruneAfter is how long after Forget a customer is still checked: an
// entry computed before then is past MaxAge by the time it could be read.
// Twice MaxAge leaves room for a request whose clock was read before the
// erase and that finishes after it.
func (c *Cache[T]) pruneAfter() int64 { return 2 * c.maxAge }

// voided reports whether e is a decision of a customer forgotten since it
// was computed.
func (c *Cache[T]) voided(e *entry[T]) bool {
	m := c.forgotten.Load()
	if m == nil {
		return false
	}
	at, ok := (*m)[e.customer]
	return ok && e.at <= at
}

// Wait blocks until every Set so far has been applied or dropped (tests,
// and warm-up before measuring).
func (c *Cache[T]) Wait() { c.rc.Wait() }

// Close stops the cache's goroutines and drops every entry. Get and Set on
// a closed cache miss and drop.
func (c *Cache[T]) Close() { c.rc.Close() }

// Stats are the cache's counters since New.
type Stats struct {
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"` // nothing cached for the customer and request
	Stale  uint64 `json:"stale"`  // cached, but for another state version or too old
}

// Stats returns the counters; the caller exports them as metrics.
func (c *Cache[T]) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load()}
}

package features

import (
	"slices"
	"sort"
	"sync"
	"unsafe"
)

// Windowed counters.
//
// Each customer keeps, per key (class, type, category), a lifetime count
// and sum plus a short list of time buckets at three resolutions: minutes
// for the newest ~70 minutes, hours for the newest ~25 hours and days for
// the newest ~31 days (relative to the customer's newest event). Older
// buckets are folded into the coarser resolution as the customer's event
// time advances, then dropped; the lifetime totals are kept separately.
//
// A window is evaluated at an instant now at its own resolution, so the
// answer is exact and independent of arrival order:
//
//	1h   events whose minute is one of the 60 minutes ending with now's minute
//	24h  events whose hour is one of the 24 hours ending with now's hour
//	7d   events whose UTC day is one of the 7 days ending with now's day
//	30d  events whose UTC day is one of the 30 days ending with now's day
//
// This holds for any now no earlier than 10 minutes before the customer's
// newest event (the slack in the retention above), which covers every
// decision: requests are made at or after the events they follow.
//
// Memory per key is bounded by 70+25+31 buckets of 16 bytes; a key that
// sees one event a day holds at most 31 buckets, and a sparse key a few.

const (
	resMinute = iota
	resHour
	resDay
)

const (
	minuteKeep = 70      // minutes a minute bucket is kept (60 + slack)
	hourKeep   = 25 * 60 // minutes an hour bucket is kept (24h + slack)
	dayKeep    = 31      // days a day bucket is kept (30 + slack)
	maxKeys    = 1 << 14 // keys per customer; the bucket's key field has 14 bits
	maxBucket  = 1<<16 - 1
)

type bucket struct {
	sum   int64
	start uint32 // minutes since the Unix epoch, aligned to the resolution
	count uint16 // saturates at 65535 per bucket
	kr    uint16 // key index << 2 | resolution
}

func (b *bucket) key() int { return int(b.kr >> 2) }
func (b *bucket) res() int { return int(b.kr & 3) }

type keyState struct {
	lifeSum   int64
	last      secs // newest event time
	cat       uint32
	lifeCount uint32
	cls       Class
	typ       EventType
}

// secs is a time in whole seconds since the Unix epoch (until 2106): half
// the size of milliseconds for times that need no finer grain.
type secs uint32

func toSecs(ms int64) secs {
	if ms <= 0 {
		return 0
	}
	return secs(ms / 1000)
}

// ms returns the time in Unix milliseconds (0 stays 0).
func (s secs) ms() int64 { return int64(s) * 1000 }

type recentEv struct {
	ts     int64
	amount int64
	sku    uint32
	cat    uint32
	store  uint32
	typ    EventType
	ch     Channel
}

// cartItem is one cart line. A line is in the cart while its newest add is
// newer than its newest removal and the newest order, which keeps the cart
// independent of the arrival order of events within the allowed lateness.
// Its quantity and value are those of the adds newer than both (the adds
// since the line was last emptied): a removal that arrives late takes
// back the adds it follows, found among the customer's cartAdds.
type cartItem struct {
	added   int64
	removed int64
	amount  int64
	sku     uint32
	cat     uint32
	qty     int32
}

// cartAdd is one add counted in its cart line, kept while a removal or
// an order older than it may still arrive: while it is no older than
// the customer's newest event minus the allowed lateness. An add older
// than that is older than any removal still to come, which empties its
// line of it along with every other add it holds.
type cartAdd struct {
	ts     int64
	amount int64
	sku    uint32
	qty    int32
}

type skuInterest struct {
	last   int64 // newest view
	bought int64 // newest purchase of the SKU
	sku    uint32
	count  uint32
}

type storeVisits struct {
	last   int64
	store  uint32
	visits uint32
}

// visit is the newest store visit: offline events at one store with no
// gap over visitGap between them.
type visit struct {
	start, end int64
	dwellSum   int64 // sum of dwell events' dwell_s
	exitDwell  int64 // the largest dwell_s a store_exit reported
	store      uint32
	cats       [4]uint32
	purchased  bool
}

// offlineEv is what an offline event at a store tells the visits.
type offlineEv struct {
	ts    int64
	dwell int32 // dwell_s
	cat   uint32
	store uint32
	typ   EventType
}

// visitLog keeps the customer's visits independent of arrival order: the
// newest visit and the visit counts per store depend on the time order of
// the offline events (a late event at another store splits a visit in
// two), so the events an older one may still arrive before — those no
// older than the customer's newest event minus the allowed lateness — are
// kept, and the customer's visit and stores are the base, what the older
// events made, with the kept ones applied in time order. It is nil when
// no offline event is that recent.
type visitLog struct {
	visit  visit
	stores []storeVisits
	evs    []offlineEv // by time
}

type offerStat struct {
	lastPositive  secs // newest click or redemption
	lastShown     secs
	lastRedeemed  secs
	lastActive    secs
	offer         uint32
	impressions   uint32
	clicks        uint32
	dismissals    uint32
	dismissStreak uint32
	redemptions   uint32
}

type seenEvent struct {
	ts  int64
	h   uint64
	typ EventType
}

// customer is the state of one customer. It is owned by one shard and
// changed only by the store's single writer under the shard lock.
type customer struct {
	// mu guards every field against the readers; the store's single
	// writer takes it to change the customer. Readers never hold a shard
	// lock while they take it (lock order: customer, then shard).
	mu           sync.RWMutex
	removed      bool // folded into another customer or erased; look up again
	id           Key
	ids          []Key // linked identifiers, sorted
	version      uint64
	first        int64
	newest       int64
	compactedMin uint32
	// compactAt is the first minute of newest at which compact would
	// change a bucket (0: unknown, compact looks). Not in snapshots.
	compactAt uint32

	keys    []keyState
	buckets []bucket
	recent  []recentEv // oldest first, at most Options.RecentEvents
	cart    []cartItem
	skus    []skuInterest
	stores  []storeVisits
	visit   visit
	offers  []offerStat
	seen    []seenEvent

	// cartAdds are the adds counted in cart lines that a late removal or
	// order may still take back (see cartAdd), in no order.
	cartAdds []cartAdd
	vlog     *visitLog // see visitLog

	cartCleared  int64 // newest online order: it empties the cart
	lastStore    uint32
	lastStoreTS  int64
	spendOnline  int64
	spendOffline int64
	gross        int64
	orders       int64
	points       int64
	memberSince  int64
	localeEn     bool // the customer's language is English (attrs.locale "en"); default zh-CN
	localeTS     int64
	consent      [NumPurposes]ChannelMask
	consentTS    [NumPurposes]int64
}

const (
	maxCart   = 20
	maxSKUs   = 6
	maxStores = 4
	maxOffers = 16
)

func minuteOf(ms int64) uint32 {
	if ms < 0 {
		return 0
	}
	return uint32(ms / 60_000)
}

func hourAlign(m uint32) uint32 { return m - m%60 }
func dayAlign(m uint32) uint32  { return m - m%1440 }

// placement returns the resolution and aligned start a bucket for minute m
// belongs at, given the newest minute, or ok=false when it is past every
// retention and only counts in the lifetime totals.
func placement(m, newest uint32) (res int, start uint32, ok bool) {
	if m+minuteKeep > newest {
		return resMinute, m, true
	}
	if h := hourAlign(m); h+hourKeep > hourAlign(newest) {
		return resHour, h, true
	}
	if d := dayAlign(m); d+dayKeep*1440 > dayAlign(newest) {
		return resDay, d, true
	}
	return 0, 0, false
}

func (c *customer) keyIndex(cls Class, typ EventType, cat uint32, create bool) int {
	for i := range c.keys {
		k := &c.keys[i]
		if k.typ == typ && k.cat == cat && k.cls == cls {
			return i
		}
	}
	if !create || len(c.keys) >= maxKeys {
		return -1
	}
	c.keys = grow(c.keys, keyState{cls: cls, typ: typ, cat: cat})
	return len(c.keys) - 1
}

// count adds one event to key k at time ts with value v.
func (c *customer) count(k int, ts, v int64) {
	ks := &c.keys[k]
	ks.lifeCount++
	ks.lifeSum += v
	ks.last = max(ks.last, toSecs(ts))
	res, start, ok := placement(minuteOf(ts), minuteOf(c.newest))
	if !ok {
		return
	}
	c.addBucket(k, res, start, 1, v)
}

func (c *customer) addBucket(k, res int, start uint32, n uint32, v int64) {
	kr := uint16(k<<2 | res)
	for i := len(c.buckets) - 1; i >= 0; i-- {
		b := &c.buckets[i]
		if b.kr == kr && b.start == start {
			b.count = uint16(min(uint32(b.count)+n, maxBucket))
			b.sum += v
			return
		}
	}
	c.buckets = grow(c.buckets, bucket{sum: v, start: start, count: uint16(min(n, maxBucket)), kr: kr})
	c.compactAt = min(c.compactAt, movesAt(res, start))
}

// movesAt is the first newest minute at which a bucket of resolution res
// starting at minute start no longer stays where it is (placement moves
// it to a coarser resolution or drops it).
func movesAt(res int, start uint32) uint32 {
	switch res {
	case resMinute:
		return start + minuteKeep // stays while start+minuteKeep > newest
	case resHour:
		return start + hourKeep // start is hour-aligned: stays while start+hourKeep > hourAlign(newest)
	}
	return start + dayKeep*1440 // start is day-aligned: likewise with days
}

// compact folds buckets past their resolution's retention into coarser
// ones and drops those past every retention. It runs at most once per
// minute of the customer's event time.
func (c *customer) compact() {
	newest := minuteOf(c.newest)
	if newest == c.compactedMin {
		return
	}
	c.compactedMin = newest
	if newest < c.compactAt {
		// No bucket moves before compactAt: the loop below would change
		// nothing, and it would read every bucket of the customer.
		return
	}
	next := ^uint32(0)
	// The buckets that move or drop, by index: usually a few.
	var movedBuf [32]bucket
	moved := movedBuf[:0]
	var movedIdx [4]uint64 // bit i: bucket i moved (first 256 buckets)
	anyMoved := false
	for i := range c.buckets {
		b := &c.buckets[i]
		res, start, ok := placement(b.start, newest)
		if !ok {
			b.count, b.sum, b.kr = 0, 0, 3 // mark dropped (resolution 3)
		} else if res != b.res() {
			b.kr = uint16(b.key()<<2 | res)
			b.start = start
		} else {
			next = min(next, movesAt(res, start))
			continue
		}
		anyMoved = true
		if i < 256 {
			movedIdx[i/64] |= 1 << (i % 64)
		}
		if ok && len(moved) < cap(moved) {
			moved = append(moved, *b)
			next = min(next, movesAt(res, start))
		} else if ok {
			next = min(next, movesAt(res, start))
			moved = nil // too many to merge one by one
		}
	}
	c.compactAt = next
	if !anyMoved {
		return
	}
	if moved == nil || len(c.buckets) > 256 {
		c.mergeSorted()
		return
	}
	// The buckets that stayed are still distinct; each moved one joins the
	// bucket already at its new place, if any, else is appended. Order is
	// not part of the state: every reader sums over the buckets.
	out := c.buckets[:0]
	for i, b := range c.buckets {
		if movedIdx[i/64]&(1<<(i%64)) == 0 {
			out = append(out, b)
		}
	}
	for _, b := range moved {
		found := false
		for j := range out {
			if o := &out[j]; o.kr == b.kr && o.start == b.start {
				o.count = uint16(min(uint32(o.count)+uint32(b.count), maxBucket))
				o.sum += b.sum
				found = true
				break
			}
		}
		if !found {
			out = append(out, b)
		}
	}
	c.buckets = out
}

// mergeSorted merges buckets that share (key, resolution, start) and drops
// the marked ones, by sorting: compact's way when many buckets moved.
func (c *customer) mergeSorted() {
	slices.SortFunc(c.buckets, func(a, b bucket) int {
		if a.kr != b.kr {
			return int(a.kr) - int(b.kr)
		}
		return int(int64(a.start) - int64(b.start))
	})
	out := c.buckets[:0]
	for _, b := range c.buckets {
		if b.res() == 3 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].kr == b.kr && out[n-1].start == b.start {
			out[n-1].count = uint16(min(uint32(out[n-1].count)+uint32(b.count), maxBucket))
			out[n-1].sum += b.sum
			continue
		}
		out = append(out, b)
	}
	c.buckets = out
}

// windowFrom returns, for instant now, the first minute each window
// includes.
func windowFrom(now int64) [NumWindows]uint32 {
	m := minuteOf(now)
	sub := func(a, b uint32) uint32 {
		if a < b {
			return 0
		}
		return a - b
	}
	return [NumWindows]uint32{
		W1h:  sub(m, 59),
		W24h: sub(hourAlign(m), 23*60),
		W7d:  sub(dayAlign(m), 6*1440),
		W30d: sub(dayAlign(m), 29*1440),
	}
}

// isView reports whether the type expresses interest in a product.
func isView(t EventType) bool { return t == ProductView || t == ProductTouch || t == TryOn }

// counted reports whether events of the type go into window counters.
func counted(t EventType) bool {
	switch t {
	case Identify, Consent, Erase:
		return false
	}
	return true
}

func (c *customer) offerIndex(offer uint32, create bool) int {
	for i := range c.offers {
		if c.offers[i].offer == offer {
			return i
		}
	}
	if !create {
		return -1
	}
	if len(c.offers) >= maxOffers {
		// Evict the offer with the oldest activity (ties: lowest index).
		old := 0
		for i := range c.offers {
			if c.offers[i].lastActive < c.offers[old].lastActive {
				old = i
			}
		}
		c.offers = slices.Delete(c.offers, old, old+1)
	}
	c.offers = grow(c.offers, offerStat{offer: offer})
	return len(c.offers) - 1
}

// warm reads a word of every cache line of the customer's state that
// applying an event of type typ will touch, back to back, and returns a
// value derived from them (so that the compiler keeps the reads). The
// state is spread over several allocations and, with many customers, is
// usually out of cache: read one after the other as the update reaches
// each part, every line is a miss paid in full; read here, in a loop of
// independent loads, the misses overlap.
func (c *customer) warm(typ EventType, ch Channel) uint64 {
	x := uint64(c.newest) + uint64(c.compactAt) + uint64(c.version) + uint64(c.lastStoreTS) + uint64(c.localeTS)
	if len(c.ids) > 0 {
		x += uint64(len(c.ids[0]))
	}
	if n := len(c.seen); n > 0 {
		x += uint64(c.seen[0].ts) + uint64(c.seen[n-1].ts)
	}
	for i := 0; i < len(c.keys); i += 2 { // 32-byte elements
		x += uint64(c.keys[i].cat)
	}
	for i := 0; i < len(c.buckets); i += 4 { // 16-byte elements
		x += uint64(c.buckets[i].start)
	}
	for i := 0; i < len(c.recent); i += 2 { // 32-byte elements
		x += uint64(c.recent[i].ts)
	}
	switch typ {
	case ProductView, ProductTouch, TryOn, Order, PosPurchase:
		for i := range c.skus {
			x += uint64(c.skus[i].sku)
		}
	}
	switch typ {
	case AddToCart, RemoveFromCart, PosPurchase:
		for i := 0; i < len(c.cart); i += 2 {
			x += uint64(c.cart[i].sku)
		}
	case OfferImpression, OfferClick, OfferDismiss, CouponRedeem:
		for i := 0; i < len(c.offers); i += 2 {
			x += uint64(c.offers[i].offer)
		}
	}
	if ch.Class() == Offline {
		x += uint64(c.visit.start)
		for i := range c.stores {
			x += uint64(c.stores[i].store)
		}
	}
	return x
}

// packIDs copies the identifiers' bytes into one new allocation, so that
// a customer's identifiers (compared on every event that names it) lie on
// one or two cache lines instead of one allocation each. The bytes are
// never written again: the strings stay immutable.
func packIDs(ids []Key) {
	n := 0
	for _, k := range ids {
		n += len(k)
	}
	if n == 0 {
		return
	}
	buf := make([]byte, n)
	off := 0
	for i, k := range ids {
		copy(buf[off:], k)
		ids[i] = Key(unsafe.String(&buf[off], len(k)))
		off += len(k)
	}
}

// sortIDs keeps linked identifiers in a canonical order.
func sortIDs(ids []Key) { sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] }) }

// grow appends v, growing the backing array by a quarter (at least two)
// instead of doubling: per-customer slices are small and many, and
// doubling's slack was a third of a customer's memory.
func grow[T any](s []T, v T) []T {
	if len(s) < cap(s) {
		return append(s, v)
	}
	n := make([]T, len(s), len(s)+max(2, len(s)/4))
	copy(n, s)
	return append(n, v)
}

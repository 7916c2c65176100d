package features

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Identity.
//
// Identifiers form a graph; connected identifiers are one customer. The
// canonical ID of a customer is its best identifier: the first namespace in
// priority order (member > card > phone > email > device), and within a
// namespace the smallest value. It therefore does not depend on the order
// in which links were learnt, and merging in either order ends with the
// same ID and state.
//
// Member IDs are unique: a customer holds at most one. An event that would
// connect two customers with different member IDs (a family tablet, a
// shared device) does not merge them: the event is applied to the customer
// of its member ID and the shared identifier stays with the customer that
// first held it.

// visitGap is the longest gap between two offline events of one visit.
const visitGap = 2 * 3600_000

// Apply applies one validated event: it resolves the identity (merging the
// customers the event links), refuses a duplicate event_id and an event
// older than the customer's newest event minus the allowed lateness, and
// updates every feature. A rejected event changes nothing.
func (s *Store) Apply(ev *Event) (Applied, *Rejection) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.apply(ev)
}

// ApplyBatch applies evs in order, exactly as calling Apply on each in
// turn would, and calls fn (when not nil) with each event's index and
// result as soon as it is applied. fn runs under the store's writer lock:
// it may read the store (ViewKey, Resolve) but must not call Apply,
// ApplyBatch or the snapshot methods, which would wait for that lock.
//
// It is faster than Apply per event because it sees the events coming:
// while it applies one event, it has the CPU prefetch the index slot of
// the customer three events ahead, that customer's record two ahead, and
// its state one ahead, so that the cache misses of looking up and
// updating a customer — most of the cost of an event when customers far
// outnumber the cache — overlap the work on earlier events.
func (s *Store) ApplyBatch(evs []Event, fn func(i int, a Applied, rej *Rejection)) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var ahead [4]prefetched // ring, by event index % 4
	for i := 0; i < min(3, len(evs)); i++ {
		s.prefetchSlot(&evs[i], &ahead[i%4])
	}
	for i := 0; i < min(2, len(evs)); i++ {
		s.prefetchCustomer(&ahead[i%4])
	}
	if len(evs) > 0 {
		s.prefetchState(&evs[0], &ahead[0])
	}
	for i := range evs {
		if j := i + 3; j < len(evs) {
			s.prefetchSlot(&evs[j], &ahead[j%4])
		}
		if j := i + 2; j < len(evs) {
			s.prefetchCustomer(&ahead[j%4])
		}
		if j := i + 1; j < len(evs) {
			s.prefetchState(&evs[j], &ahead[j%4])
		}
		a, rej := s.apply(&evs[i])
		if fn != nil {
			fn(i, a, rej)
		}
	}
}

// prefetched is what ApplyBatch's prefetch stages learnt of one event.
type prefetched struct {
	h uint64    // hash of the event's first identifier key (0: none)
	c *customer // the customer its index slot pointed at, if any
}

// prefetchSlot hashes the event's first identifier (the one apply looks
// up first) and prefetches its index slot and its SKU's interner slot.
func (s *Store) prefetchSlot(ev *Event, p *prefetched) {
	*p = prefetched{}
	var buf [96]byte
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if v := ev.IDs.Get(ns); v != "" {
			if len(ns.String())+1+len(v) > len(buf) {
				return // rare: no prefetch
			}
			k := append(append(append(buf[:0], ns.String()...), ':'), v...)
			p.h = xxhash.Sum64(k)
			break
		}
	}
	if p.h != 0 {
		ix := &s.shards[p.h&s.mask].ids
		if len(ix.slots) > 0 {
			prefetch(uintptr(unsafe.Pointer(&ix.slots[ix.home(p.h)])))
		}
	}
	if ev.SKU != "" {
		in := s.in
		prefetch(uintptr(unsafe.Pointer(&in.slots[internHash(ev.SKU)&uint64(len(in.slots)-1)])))
	}
}

// prefetchCustomer reads the index slot prefetchSlot prefetched (the
// writer's own table: no lock) and prefetches the customer record and
// the key bytes it will be compared with. A hint only: the slot may hold
// another key, and apply looks up properly.
func (s *Store) prefetchCustomer(p *prefetched) {
	if p.h == 0 {
		return
	}
	ix := &s.shards[p.h&s.mask].ids
	if ix.n == 0 {
		return
	}
	mask := len(ix.slots) - 1
	for i := ix.home(p.h); ; i = (i + 1) & mask {
		sl := &ix.slots[i]
		if sl.c == nil {
			return
		}
		if sl.h == p.h {
			p.c = sl.c
			prefetch(uintptr(unsafe.Pointer(unsafe.StringData(string(sl.k)))))
			sl.c.prefetchRecord()
			return
		}
	}
}

// prefetchState prefetches the parts of the customer's state that
// applying ev touches (what warm reads), from the record prefetchCustomer
// brought in.
func (s *Store) prefetchState(ev *Event, p *prefetched) {
	c := p.c
	if c == nil {
		return
	}
	prefetchSlice(c.ids)
	prefetchSlice(c.seen)
	prefetchSlice(c.keys)
	prefetchSlice(c.buckets)
	prefetchSlice(c.recent)
	switch ev.Type {
	case ProductView, ProductTouch, TryOn, Order, PosPurchase:
		prefetchSlice(c.skus)
	}
	switch ev.Type {
	case AddToCart, RemoveFromCart, PosPurchase:
		prefetchSlice(c.cart)
	case OfferImpression, OfferClick, OfferDismiss, CouponRedeem:
		prefetchSlice(c.offers)
	}
	if ev.Channel.Class() == Offline {
		prefetchSlice(c.stores)
	}
}

// apply is Apply under the writer lock.
func (s *Store) apply(ev *Event) (Applied, *Rejection) {
	var kbuf [NumNamespaces]Key
	keys := eventKeys(&ev.IDs, kbuf[:0], &s.keyBuf)
	if len(keys) == 0 {
		return s.reject(ReasonMissingField, "ids", "the event carries no identifier; add at least one of member, card, phone, email, device")
	}

	// An erased identifier does not come back from an event older than
	// its erasure: in event time the event came first and was erased. An
	// erase itself always applies (it may name identifiers erased since
	// along with others that are not).
	if ev.TS < s.tombsNewest && ev.Type != Erase {
		if at, erased := s.erasedAfter(keys, ev.TS); erased {
			return s.reject(ReasonTooLate, "ts", "the event is older than the erasure of its customer ("+FormatTS(at)+"), which deleted what it says; it is not applied")
		}
	}

	// The SKU's interned index is looked up in update, in a table too big
	// to stay in cache: touch its slot now, so that the miss overlaps the
	// customer lookup's.
	var skuH uint64
	if ev.SKU != "" {
		skuH = internHash(ev.SKU)
		s.warmSink += s.in.touch(skuH)
	}

	// Find the customers the identifiers belong to.
	var obuf [NumNamespaces]*customer
	var idbuf [NumNamespaces]Key // the owner of keys[i], "" when none
	owners := obuf[:0]
	for i, k := range keys {
		if len(owners) == 1 {
			// Most events name identifiers of one known customer: its own
			// sorted list answers without another index lookup.
			if _, held := slices.BinarySearch(owners[0].ids, k); held {
				idbuf[i] = owners[0].id
				continue
			}
		}
		// The writer reads customers without their locks: it is the only
		// one that changes them.
		if c := s.lookup(k); c != nil {
			if len(owners) == 0 {
				s.warmSink += c.warm(ev.Type, ev.Channel)
			}
			idbuf[i] = c.id
			if !slices.Contains(owners, c) {
				owners = append(owners, c)
			}
		}
	}

	var mbuf [NumNamespaces]*customer
	target, merge := s.plan(keys, owners, mbuf[:0])

	// Lateness and duplicates are judged against everything the event
	// would join, before anything changes.
	h := xxhash.Sum64String(ev.ID)
	var newest int64
	for _, c := range merge {
		newest = max(newest, c.newest)
		if c.seenBefore(h, ev) {
			return s.reject(ReasonDuplicate, "event_id", "event_id "+excerpt(ev.ID)+" was already applied; each event is counted once")
		}
	}
	// Erasures and consents are applied however late they come: a batch
	// of opt-outs from a CRM must not be lost. A consent changes a
	// purpose only when it is newer than the one held, so its arrival
	// order does not matter.
	if newest != 0 && ev.TS < newest-s.lateness && ev.Type != Erase && ev.Type != Consent {
		return s.reject(ReasonTooLate, "ts", "the event is older than the customer's newest event minus the allowed lateness ("+s.opts.AllowedLateness.String()+")")
	}

	s.newestTS = max(s.newestTS, ev.TS)
	if ev.Type == Erase {
		s.tombstone(ev.TS, keys, merge)
		var removed []Key
		for _, c := range merge {
			removed = append(removed, c.id)
			s.remove(c)
		}
		s.applied.Add(1)
		id := Key("")
		if target != nil {
			id = target.id
		}
		return Applied{Customer: id, Merged: removed, Erased: true}, nil
	}

	c, merged := s.link(merge, keys, idbuf[:len(keys)])
	// link returns c locked: readers see the merge and the event together.
	c.markSeen(h, ev, s.lateness)
	s.update(c, ev, skuH)
	c.mu.Unlock()
	s.applied.Add(1)
	return Applied{Customer: c.id, Version: c.version, Merged: merged}, nil
}

// plan decides which customer the event applies to and which existing
// customers it merges. target is nil for a new customer; merge holds the
// customers to fold together (target first).
func (s *Store) plan(keys []Key, owners []*customer, merge []*customer) (target *customer, _ []*customer) {
	if len(owners) == 0 {
		return nil, nil
	}
	memberOf := (*customer).memberKey
	// The event's own member ID decides, when it has one.
	evMember := Key("")
	if strings.HasPrefix(string(keys[0]), "member:") {
		evMember = keys[0]
	}
	if len(owners) == 1 {
		// The common case, decided with one look at the member ID: the
		// event joins its only customer unless that customer is another
		// member (then the event's member starts a customer of its own).
		c := owners[0]
		if evMember != "" {
			if m := memberOf(c); m != "" && m != evMember {
				return nil, merge
			}
		}
		return c, append(merge, c)
	}
	if evMember != "" {
		for _, c := range owners {
			if memberOf(c) == evMember {
				target = c
			}
		}
	}
	if target == nil {
		// Otherwise the customer of the best identifier, preferring one
		// with a member ID.
		for _, c := range owners {
			if memberOf(c) != "" {
				target = c
				break
			}
		}
		if target == nil {
			target = owners[0]
		}
		if evMember != "" && memberOf(target) != "" {
			// The event's member is new but the best owner already has a
			// different member: the event starts a new customer.
			target = nil
		}
	}
	tm := evMember
	if target != nil {
		merge = append(merge, target)
		if m := memberOf(target); m != "" {
			tm = m
		}
	}
	for _, c := range owners {
		if c == target {
			continue
		}
		if m := memberOf(c); m != "" && tm != "" && m != tm {
			continue // two members never merge
		} else if m != "" {
			tm = m
		}
		merge = append(merge, c)
	}
	return target, merge
}

// link folds the customers in merge (and the event's unowned identifiers)
// into one customer, re-keying it to its best identifier. It returns the
// customer with its lock held, for the caller to apply the event and
// unlock.
//
// Readers never see the merge half done: the survivor is locked first,
// the folded customers' identifiers are pointed at it, and only then are
// the folded customers marked removed, so a reader that finds one
// removed looks its identifier up again and waits on the survivor's lock
// until the merge and the event are both in. The writer takes a folded
// customer's lock while it holds the survivor's; readers hold one
// customer's lock at a time, so the two cannot wait on each other.
func (s *Store) link(merge []*customer, keys, keyOwners []Key) (*customer, []Key) {
	if len(merge) == 1 {
		// The common case: the event names identifiers of one customer
		// that already holds them all. Nothing to link.
		c := merge[0]
		known := true
		for i := range keys {
			known = known && keyOwners[i] == c.id
		}
		if known {
			c.mu.Lock()
			return c, nil
		}
	}
	var c *customer
	var merged []Key
	if len(merge) == 0 {
		c = &customer{}
		s.customers.Add(1)
	} else {
		c = merge[0]
	}
	c.mu.Lock()
	oldID := c.id
	folded := merge[min(1, len(merge)):]
	for _, o := range folded {
		for _, k := range o.ids {
			s.index(k, c) // o's immutable packed bytes, until c's replace them below
		}
	}
	for _, o := range folded {
		merged = append(merged, o.id)
		o.mu.Lock()
		o.removed = true
		o.mu.Unlock()
		sh := s.shardOf(o.id)
		sh.mu.Lock()
		delete(sh.customers, o.id)
		sh.mu.Unlock()
		c.absorb(o, s.opts.RecentEvents, max(c.newest, o.newest)-s.lateness)
		s.customers.Add(-1)
	}
	// Attach the event's identifiers nobody else holds. An identifier
	// still owned by another customer belongs to a different member: it
	// is shared and stays where it is.
	for i, k := range keys {
		if keyOwners[i] != "" {
			// Held already: by c, by a customer just folded into c (its
			// identifiers came with it), or by another member's customer
			// (a shared identifier, which stays where it is).
			continue
		}
		if !slices.Contains(c.ids, k) {
			c.ids = grow(c.ids, k) // k is a view into scratch, copied by packIDs
		}
	}
	sortIDs(c.ids)
	packIDs(c.ids)
	newID := bestKey(c.ids)
	c.id = newID
	if oldID != "" && oldID != newID {
		merged = append(merged, oldID)
		sh := s.shardOf(oldID)
		sh.mu.Lock()
		delete(sh.customers, oldID)
		sh.mu.Unlock()
	}
	sh := s.shardOf(newID)
	sh.mu.Lock()
	sh.customers[newID] = c
	sh.mu.Unlock()
	for _, k := range c.ids {
		s.index(k, c) // also moves the index onto the newly packed bytes
	}
	return c, merged
}

// bestKey is the canonical ID among identifiers sorted by value: the
// highest-priority namespace, smallest value.
func bestKey(ids []Key) Key {
	best := Key("")
	bestNS := NumNamespaces
	for _, k := range ids {
		ns, _, ok := ParseKey(string(k))
		if !ok {
			continue
		}
		if ns < bestNS || (ns == bestNS && k < best) {
			best, bestNS = k, ns
		}
	}
	return best
}

// tombstone remembers, by hash, the identifiers an erase at ts deletes —
// the event's own and every identifier of the customers in merge — so
// that an event older than the erase, arriving after it within the
// lateness, is refused instead of bringing them back. An event newer
// than the erase starts a new customer.
//
// A tombstone is kept while an event it refuses may still be accepted:
// until the newest event time of the store has moved past the erase by
// the allowed lateness. The identifiers are not kept, only their 64-bit
// hashes.
func (s *Store) tombstone(ts int64, keys []Key, merge []*customer) {
	horizon := s.newestTS - s.lateness
	s.tombsNewest = ts
	for h, at := range s.tombs {
		if at < horizon {
			delete(s.tombs, h)
		} else {
			s.tombsNewest = max(s.tombsNewest, at)
		}
	}
	if s.tombs == nil {
		s.tombs = make(map[uint64]int64)
	}
	mark := func(k Key) {
		h := hashKey(k)
		s.tombs[h] = max(s.tombs[h], ts)
	}
	// What the erase removes (the customers in merge, all their
	// identifiers) and what it names that nobody holds; not an identifier
	// another customer keeps (another member's shared card), whose own
	// events go on.
	for _, k := range keys {
		if s.lookup(k) == nil {
			mark(k)
		}
	}
	for _, c := range merge {
		for _, k := range c.ids {
			mark(k)
		}
	}
}

// Erased reports whether identifier k was erased recently enough that
// its tombstone is still kept (see tombstone): for a replay of the
// decision log to tell an erased customer from one the events after the
// snapshot will create.
func (s *Store) Erased(k Key) bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, ok := s.tombs[hashKey(k)]
	return ok
}

// erasedAfter reports whether one of keys was erased after ts, and when.
func (s *Store) erasedAfter(keys []Key, ts int64) (int64, bool) {
	for _, k := range keys {
		if at, ok := s.tombs[hashKey(k)]; ok && ts < at {
			return at, true
		}
	}
	return 0, false
}

// remove deletes a customer and its identifiers (erase).
func (s *Store) remove(c *customer) {
	s.removeQuiet(c)
	s.customers.Add(-1)
}

func (s *Store) removeQuiet(c *customer) {
	c.mu.Lock()
	c.removed = true
	c.mu.Unlock()
	sh := s.shardOf(c.id)
	sh.mu.Lock()
	delete(sh.customers, c.id)
	sh.mu.Unlock()
	for _, k := range c.ids {
		s.unindex(k, c)
	}
}

func (c *customer) seenBefore(h uint64, ev *Event) bool {
	for i := range c.seen {
		if c.seen[i].h == h && c.seen[i].ts == ev.TS && c.seen[i].typ == ev.Type {
			return true
		}
	}
	return false
}

// markSeen records the event for dedup and forgets events that can no
// longer be re-applied: anything older than the watermark minus lateness is
// refused as too_late before the duplicate test is needed.
func (c *customer) markSeen(h uint64, ev *Event, lateness int64) {
	horizon := max(c.newest, ev.TS) - lateness
	out := c.seen[:0]
	for _, e := range c.seen {
		if e.ts >= horizon {
			out = append(out, e)
		}
	}
	c.seen = grow(out, seenEvent{ts: ev.TS, h: h, typ: ev.Type})
}

func excerpt(s string) string {
	if len(s) <= 32 {
		return "\"" + s + "\""
	}
	return "\"" + s[:32] + "…\""
}

// update applies the event to the customer's features; skuH is
// internHash(ev.SKU).
func (s *Store) update(c *customer, ev *Event, skuH uint64) {
	in := s.in
	cat := in.id(ev.Category)
	sku := in.idHash(ev.SKU, skuH)
	store := in.id(ev.Store)
	ts := ev.TS
	if ts > c.newest {
		c.newest = ts
	}
	if c.first == 0 || ts < c.first {
		c.first = ts
	}
	c.compact()
	// What no late event can reach any more goes, whatever this event
	// is: the cart adds and the logged offline events older than the
	// horizon. Most customers then hold none until their next cart or
	// store event.
	if horizon := c.newest - s.lateness; len(c.cartAdds) > 0 || c.vlog != nil {
		c.pruneCartAdds(horizon)
		if c.vlog != nil {
			if l := c.foldVisits(horizon); l != nil && len(s.spareLogs) < maxSpareLogs {
				s.spareLogs = append(s.spareLogs, l)
			}
		}
	}
	cls := ev.Channel.Class()
	if counted(ev.Type) {
		if k := c.keyIndex(cls, ev.Type, cat, true); k >= 0 {
			c.count(k, ts, ev.Amount+int64(ev.DwellS))
		}
	}
	if store != 0 && cls == Offline && ts >= c.lastStoreTS {
		c.lastStore, c.lastStoreTS = store, ts
	}
	switch ev.Type {
	case AddToCart:
		c.cartAdd(ts, sku, cat, ev.Quantity, ev.Amount)
	case RemoveFromCart:
		c.cartRemove(ts, sku, cat)
	case Order, PosPurchase:
		if ev.Type == Order {
			c.cartClear(ts)
		} else if sku != 0 {
			for i := range c.cart {
				if c.cart[i].sku == sku {
					c.lineRemoved(&c.cart[i], ts)
				}
			}
		}
		if cls == Online {
			c.spendOnline += ev.Amount
			c.points += ev.Amount / 100
		} else {
			c.spendOffline += ev.Amount
			c.points += ev.Amount * 12 / 1000
		}
		c.gross += ev.Amount
		c.orders++
		if sku != 0 {
			c.skuBought(ts, sku)
		}
	case Return:
		if cls == Online {
			c.spendOnline -= ev.Amount
			c.points -= ev.Amount / 100
		} else {
			c.spendOffline -= ev.Amount
			c.points -= ev.Amount * 12 / 1000
		}
	case OfferImpression, OfferClick, OfferDismiss, CouponRedeem:
		if ev.OfferID != "" {
			ts := toSecs(ts)
			o := &c.offers[c.offerIndex(in.id(ev.OfferID), true)]
			o.lastActive = max(o.lastActive, ts)
			switch ev.Type {
			case OfferImpression:
				o.impressions++
				o.lastShown = max(o.lastShown, ts)
			case OfferClick:
				o.clicks++
				o.lastPositive = max(o.lastPositive, ts)
				o.dismissStreak = 0
			case OfferDismiss:
				o.dismissals++
				if ts > o.lastPositive {
					o.dismissStreak++
				}
			case CouponRedeem:
				o.redemptions++
				o.lastRedeemed = max(o.lastRedeemed, ts)
				o.lastPositive = max(o.lastPositive, ts)
				o.dismissStreak = 0
			}
		}
	case Consent:
		if p, ok := ParsePurpose(ev.Attrs["purpose"]); ok && ts >= c.consentTS[p] {
			mask := consentChannels(ev.Attrs["channels"])
			if ev.Attrs["granted"] == "true" {
				c.consent[p] |= mask
			} else {
				c.consent[p] &^= mask
			}
			c.consentTS[p] = ts
		}
	case Signup:
		if c.memberSince == 0 || ts < c.memberSince {
			c.memberSince = ts
		}
	}
	if l, ok := ev.Attrs["locale"]; ok && ts >= c.localeTS {
		if english, ok := ParseLanguage(l); ok {
			c.localeEn, c.localeTS = english, ts
		}
	}
	if isView(ev.Type) && sku != 0 {
		c.skuView(ts, sku)
	}
	if cls == Offline && store != 0 {
		if c.vlog == nil {
			c.vlog = s.visitLogFor(c)
		}
		c.visitEvent(offlineEv{ts: ts, dwell: ev.DwellS, cat: cat, store: store, typ: ev.Type})
	}
	if ev.Type != Consent && ev.Type != Identify {
		c.pushRecent(recentEv{ts: ts, amount: ev.Amount, sku: sku, cat: cat, store: store, typ: ev.Type, ch: ev.Channel}, s.opts.RecentEvents)
	}
	c.version++
}

func consentChannels(list string) ChannelMask {
	if list == "" {
		return AllChannels
	}
	var m ChannelMask
	for _, name := range strings.Split(list, ",") {
		if ch, ok := ParseChannel(strings.TrimSpace(name)); ok {
			m |= 1 << ch
		}
	}
	return m
}

// cartAdd records an add. One no newer than its line's last emptying (a
// removal or an order that arrived before it) is not counted. The adds
// no late event can reach are pruned already (update).
func (c *customer) cartAdd(ts int64, sku, cat uint32, qty int32, amount int64) {
	if qty <= 0 {
		qty = 1
	}
	for i := range c.cart {
		it := &c.cart[i]
		if it.sku == sku {
			if cat != 0 && ts >= it.added {
				it.cat = cat
			}
			it.added = max(it.added, ts)
			if ts > max(it.removed, c.cartCleared) {
				it.qty += qty
				it.amount += amount
				c.cartAdds = grow(c.cartAdds, cartAdd{ts: ts, amount: amount, sku: sku, qty: qty})
			}
			return
		}
	}
	it := cartItem{added: ts, sku: sku, cat: cat}
	if ts > c.cartCleared {
		it.qty, it.amount = qty, amount
		c.cartAdds = grow(c.cartAdds, cartAdd{ts: ts, amount: amount, sku: sku, qty: qty})
	}
	c.cartLine(it)
}

// cartRemove records a removal. A removal that arrives before its add (out
// of order within lateness) leaves an empty line so the late add stays out.
func (c *customer) cartRemove(ts int64, sku, cat uint32) {
	for i := range c.cart {
		if c.cart[i].sku == sku {
			c.lineRemoved(&c.cart[i], ts)
			return
		}
	}
	c.cartLine(cartItem{removed: ts, sku: sku, cat: cat})
}

// lineRemoved records a removal of the line at ts (a remove_from_cart, or
// a till purchase of its SKU): the line holds only the adds after it.
func (c *customer) lineRemoved(it *cartItem, ts int64) {
	if ts <= it.removed {
		return
	}
	emptied := max(it.removed, c.cartCleared)
	it.removed = ts
	if ts > emptied {
		it.qty, it.amount = c.addsAfter(it.sku, ts)
	}
}

// cartClear records an online order at ts, which empties every line of
// the adds before it.
func (c *customer) cartClear(ts int64) {
	if ts <= c.cartCleared {
		return
	}
	for i := range c.cart {
		if it := &c.cart[i]; ts > max(it.removed, c.cartCleared) {
			it.qty, it.amount = c.addsAfter(it.sku, ts)
		}
	}
	c.cartCleared = ts
}

// addsAfter sums the kept adds of sku newer than ts. The adds no longer
// kept are older than any removal or order that can still arrive, ts
// included.
func (c *customer) addsAfter(sku uint32, ts int64) (qty int32, amount int64) {
	for _, a := range c.cartAdds {
		if a.sku == sku && a.ts > ts {
			qty += a.qty
			amount += a.amount
		}
	}
	return qty, amount
}

// pruneCartAdds forgets the adds older than horizon (the customer's
// newest event minus the allowed lateness): no removal or order older
// than them can arrive any more.
func (c *customer) pruneCartAdds(horizon int64) {
	out := c.cartAdds[:0]
	for _, a := range c.cartAdds {
		if a.ts >= horizon {
			out = append(out, a)
		}
	}
	clear(c.cartAdds[len(out):])
	c.cartAdds = out
	if len(out) == 0 {
		c.cartAdds = nil // the array goes with the last add
	}
}

// cartLine appends a line, first dropping an emptied line or else the
// line whose newest add is oldest when the cart is full.
func (c *customer) cartLine(it cartItem) {
	if len(c.cart) >= maxCart {
		c.dropCartLine(c.cartVictim())
	}
	c.cart = grow(c.cart, it)
}

// cartVictim is the line a full cart drops: an emptied line, else the
// line whose newest add is oldest.
func (c *customer) cartVictim() int {
	old := 0
	for i := range c.cart {
		x, o := &c.cart[i], &c.cart[old]
		xGone, oGone := x.added <= max(x.removed, c.cartCleared), o.added <= max(o.removed, c.cartCleared)
		if (xGone && !oGone) || (xGone == oGone && x.added < o.added) {
			old = i
		}
	}
	return old
}

// dropCartLine removes line i and the kept adds it counted.
func (c *customer) dropCartLine(i int) {
	sku := c.cart[i].sku
	c.cart = slices.Delete(c.cart, i, i+1)
	c.cartAdds = slices.DeleteFunc(c.cartAdds, func(a cartAdd) bool { return a.sku == sku })
}

func (c *customer) skuView(ts int64, sku uint32) {
	for i := range c.skus {
		if c.skus[i].sku == sku {
			c.skus[i].count++
			c.skus[i].last = max(c.skus[i].last, ts)
			return
		}
	}
	if len(c.skus) >= maxSKUs {
		old := c.oldestSKU()
		c.skus = slices.Delete(c.skus, old, old+1)
	}
	c.skus = grow(c.skus, skuInterest{last: ts, sku: sku, count: 1})
}

// skuBought records a purchase of sku. A SKU not viewed yet gets an entry
// of its own (no view: it lists nothing), so that a view arriving late
// within the lateness, or an identity linked later that viewed it, still
// finds the purchase; such an entry takes a free place or another such
// entry's, never a viewed SKU's, and a full list drops it first.
func (c *customer) skuBought(ts int64, sku uint32) {
	for i := range c.skus {
		if c.skus[i].sku == sku {
			c.skus[i].bought = max(c.skus[i].bought, ts)
			return
		}
	}
	if len(c.skus) >= maxSKUs {
		old := c.oldestSKU()
		if c.skus[old].last != 0 {
			return
		}
		c.skus = slices.Delete(c.skus, old, old+1)
	}
	c.skus = grow(c.skus, skuInterest{bought: ts, sku: sku})
}

// oldestSKU is the SKU a full list drops: the one viewed longest ago
// (ties: the first).
func (c *customer) oldestSKU() int {
	old := 0
	for i := range c.skus {
		if c.skus[i].last < c.skus[old].last {
			old = i
		}
	}
	return old
}

// sameVisit reports whether v and o, two identities' newest visits, are
// one visit: the same store, within visitGap of each other.
func (v *visit) sameVisit(o *visit) bool {
	return v.store != 0 && v.store == o.store && o.start <= v.end+visitGap && o.end >= v.start-visitGap
}

// absorb merges visit o's events into v (see sameVisit).
func (v *visit) absorb(o *visit) {
	v.start, v.end = min(v.start, o.start), max(v.end, o.end)
	v.dwellSum += o.dwellSum
	v.exitDwell = max(v.exitDwell, o.exitDwell)
	v.purchased = v.purchased || o.purchased
	for _, cat := range o.cats {
		v.addCat(cat)
	}
}

// addCat notes a category of the visit (at most len(cats), the first
// ones seen).
func (v *visit) addCat(cat uint32) {
	if cat == 0 {
		return
	}
	for i := range v.cats {
		if v.cats[i] == cat {
			return
		}
		if v.cats[i] == 0 {
			v.cats[i] = cat
			return
		}
	}
}

// visitEvent applies an offline event at a store to the visits (see
// visitLog), logging it in c.vlog, which the caller has started
// (Store.visitLogFor) and folded to the horizon.
func (c *customer) visitEvent(e offlineEv) {
	l := c.vlog
	i := len(l.evs)
	for i > 0 && e.before(&l.evs[i-1]) {
		i--
	}
	if i == len(l.evs) {
		// The newest offline event (the common case): it follows what
		// the visits already hold.
		l.evs = grow(l.evs, e)
		c.visitStep(&e)
	} else {
		l.evs = slices.Insert(l.evs, i, e)
		c.replayVisits()
	}
}

// before orders offline events by time, and events of one instant by
// store and type, so that their order does not depend on arrival.
func (e *offlineEv) before(o *offlineEv) bool {
	if e.ts != o.ts {
		return e.ts < o.ts
	}
	if e.store != o.store {
		return e.store < o.store
	}
	if e.typ != o.typ {
		return e.typ < o.typ
	}
	if e.cat != o.cat {
		return e.cat < o.cat
	}
	return e.dwell < o.dwell
}

// visitStep applies e, no older than any offline event applied before,
// to the visit and the stores.
func (c *customer) visitStep(e *offlineEv) {
	v := &c.visit
	if v.store != 0 && v.store != e.store && e.ts < v.start {
		// Only when a merge replays one identity's recent events over the
		// other's older base: a visit older than the newest one counts
		// (once, at its store_enter) but does not replace it.
		c.storeCount(e.store, e.ts, e.typ == StoreEnter)
		return
	}
	if v.store != e.store || e.ts > v.end+visitGap {
		*v = visit{start: e.ts, end: e.ts, store: e.store}
		c.storeCount(e.store, e.ts, true)
	}
	v.end = max(v.end, e.ts)
	switch e.typ {
	case Dwell:
		v.dwellSum += int64(e.dwell)
	case StoreExit:
		v.exitDwell = max(v.exitDwell, int64(e.dwell))
	case PosPurchase:
		v.purchased = true
	}
	if e.typ == Dwell || isView(e.typ) || e.typ == PosPurchase {
		v.addCat(e.cat)
	}
}

// replayVisits rebuilds the visit and the stores from the log.
func (c *customer) replayVisits() {
	l := c.vlog
	c.visit = l.visit
	c.stores = append(c.stores[:0], l.stores...)
	for i := range l.evs {
		c.visitStep(&l.evs[i])
	}
}

// maxSpareLogs bounds Store.spareLogs.
const maxSpareLogs = 256

// visitLogFor starts customer c's visit log, with a log another customer
// let go when there is one.
func (s *Store) visitLogFor(c *customer) *visitLog {
	n := len(s.spareLogs)
	if n == 0 {
		return &visitLog{visit: c.visit, stores: slices.Clone(c.stores)}
	}
	l := s.spareLogs[n-1]
	s.spareLogs[n-1] = nil
	s.spareLogs = s.spareLogs[:n-1]
	l.visit, l.stores, l.evs = c.visit, append(l.stores[:0], c.stores...), l.evs[:0]
	return l
}

// foldVisits moves the logged events older than horizon into the base:
// no event older than them can arrive any more. With none left, the
// visit and stores are the base and the log goes: it is returned, for
// reuse.
func (c *customer) foldVisits(horizon int64) (released *visitLog) {
	l := c.vlog
	n := 0
	for n < len(l.evs) && l.evs[n].ts < horizon {
		n++
	}
	if n == len(l.evs) {
		c.vlog = nil
		return l
	}
	if n == 0 {
		return nil
	}
	visit, stores := c.visit, c.stores
	c.visit, c.stores = l.visit, l.stores
	for i := range n {
		c.visitStep(&l.evs[i])
	}
	l.visit, l.stores = c.visit, c.stores
	c.visit, c.stores = visit, stores
	l.evs = slices.Delete(l.evs, 0, n)
	return nil
}

// storeCount counts a visit to store (when newVisit) and keeps the store's
// newest time.
func (c *customer) storeCount(store uint32, ts int64, newVisit bool) {
	for i := range c.stores {
		if c.stores[i].store == store {
			if newVisit {
				c.stores[i].visits++
			}
			c.stores[i].last = max(c.stores[i].last, ts)
			return
		}
	}
	if len(c.stores) >= maxStores {
		old := c.forgottenStore()
		c.stores = slices.Delete(c.stores, old, old+1)
	}
	c.stores = grow(c.stores, storeVisits{last: ts, store: store, visits: 1})
}

// forgottenStore is the store a full list forgets: the least visited
// (ties: the oldest).
func (c *customer) forgottenStore() int {
	old := 0
	for i := range c.stores {
		o, s := &c.stores[old], &c.stores[i]
		if s.visits < o.visits || (s.visits == o.visits && s.last < o.last) {
			old = i
		}
	}
	return old
}

// pushRecent inserts e in time order and keeps the newest n.
func (c *customer) pushRecent(e recentEv, n int) {
	if len(c.recent) >= n {
		if e.ts < c.recent[0].ts {
			return // older than everything kept
		}
		copy(c.recent, c.recent[1:])
		c.recent = c.recent[:len(c.recent)-1]
	}
	i := len(c.recent)
	for i > 0 && c.recent[i-1].ts > e.ts {
		i--
	}
	c.recent = grow(c.recent, e)
	copy(c.recent[i+1:], c.recent[i:len(c.recent)-1])
	c.recent[i] = e
}

// absorb folds o into c as if their events had been applied to one
// customer: counters add, times take the newest, histories merge by time.
func (c *customer) absorb(o *customer, recentN int, horizon int64) {
	c.ids = append(c.ids, o.ids...)
	// The version counts applied events, so it only grows and a merged
	// customer's version is the same whichever side absorbed the other.
	c.version += o.version
	if c.first == 0 || (o.first != 0 && o.first < c.first) {
		c.first = o.first
	}
	c.newest = max(c.newest, o.newest)
	// Counters: re-home o's keys and buckets.
	for _, b := range o.buckets {
		ok := &o.keys[b.key()]
		k := c.keyIndex(ok.cls, ok.typ, ok.cat, true)
		if k < 0 {
			continue
		}
		c.addBucket(k, b.res(), b.start, uint32(b.count), b.sum)
	}
	for _, ok := range o.keys {
		k := c.keyIndex(ok.cls, ok.typ, ok.cat, true)
		if k < 0 {
			continue
		}
		ks := &c.keys[k]
		ks.lifeCount += ok.lifeCount
		ks.lifeSum += ok.lifeSum
		ks.last = max(ks.last, ok.last)
	}
	c.compactedMin, c.compactAt = 0, 0
	c.compact()
	for _, e := range o.recent {
		c.pushRecent(e, recentN)
	}
	c.absorbCart(o)
	for _, si := range o.skus {
		found := false
		for i := range c.skus {
			if c.skus[i].sku == si.sku {
				c.skus[i].count += si.count
				c.skus[i].last = max(c.skus[i].last, si.last)
				c.skus[i].bought = max(c.skus[i].bought, si.bought)
				found = true
			}
		}
		if !found {
			c.skus = append(c.skus, si)
		}
	}
	// Over the limit, drop the SKUs viewed longest ago, as skuView does:
	// the newest views are kept whichever identity saw them.
	for len(c.skus) > maxSKUs {
		i := c.oldestSKU()
		c.skus = slices.Delete(c.skus, i, i+1)
	}
	if c.vlog == nil && o.vlog == nil {
		c.absorbVisits(&o.visit, o.stores)
	} else {
		// Merge the bases, then apply both identities' recent offline
		// events to the merged base in time order.
		lc, lo := c.visitLog(), o.visitLog()
		stores := c.stores
		c.visit, c.stores = lc.visit, lc.stores
		c.absorbVisits(&lo.visit, lo.stores)
		lc.visit, lc.stores = c.visit, c.stores
		c.stores = stores
		evs := make([]offlineEv, 0, len(lc.evs)+len(lo.evs))
		evs = append(append(evs, lc.evs...), lo.evs...)
		slices.SortStableFunc(evs, func(a, b offlineEv) int {
			if a.before(&b) {
				return -1
			}
			if b.before(&a) {
				return 1
			}
			return 0
		})
		lc.evs = evs
		c.replayVisits()
		c.foldVisits(horizon)
	}
	if o.lastStoreTS > c.lastStoreTS {
		c.lastStore, c.lastStoreTS = o.lastStore, o.lastStoreTS
	}
	for _, os := range o.offers {
		i := c.offerIndex(os.offer, true)
		x := &c.offers[i]
		x.impressions += os.impressions
		x.clicks += os.clicks
		x.dismissals += os.dismissals
		x.redemptions += os.redemptions
		x.dismissStreak = max(x.dismissStreak, os.dismissStreak)
		x.lastShown = max(x.lastShown, os.lastShown)
		x.lastRedeemed = max(x.lastRedeemed, os.lastRedeemed)
		x.lastPositive = max(x.lastPositive, os.lastPositive)
		x.lastActive = max(x.lastActive, os.lastActive)
	}
	c.seen = append(c.seen, o.seen...)
	c.spendOnline += o.spendOnline
	c.spendOffline += o.spendOffline
	c.gross += o.gross
	c.orders += o.orders
	c.points += o.points
	if o.memberSince != 0 && (c.memberSince == 0 || o.memberSince < c.memberSince) {
		c.memberSince = o.memberSince
	}
	if o.localeTS > c.localeTS {
		c.localeEn, c.localeTS = o.localeEn, o.localeTS
	}
	for p := range c.consent {
		if o.consentTS[p] > c.consentTS[p] {
			c.consent[p], c.consentTS[p] = o.consent[p], o.consentTS[p]
		}
	}
}

// absorbCart folds o's cart into c's: a line of either is emptied by the
// newer of both sides' removals and orders, keeping the adds after it,
// and a full cart then drops lines as one customer's would (emptied ones,
// else those added longest ago).
//
// An add older than its side's lateness horizon is no longer kept on its
// own (see cartAdd); when the other side's removal or order is what
// empties the line, such adds are taken out with it. That is exact unless
// they straddle the removal — adds of one SKU under one identity more
// than the allowed lateness apart, with the other identity's removal of
// it in between — where adds after the removal are lost too.
func (c *customer) absorbCart(o *customer) {
	cleared := max(c.cartCleared, o.cartCleared)
	cart := make([]cartItem, 0, len(c.cart)+len(o.cart))
	for i := range c.cart {
		x := c.cart[i]
		j := o.cartIndex(x.sku)
		emptied := max(x.removed, cleared)
		if j >= 0 {
			emptied = max(emptied, o.cart[j].removed)
		}
		x.qty, x.amount = c.countedAfter(&c.cart[i], emptied)
		if j >= 0 {
			y := &o.cart[j]
			q, a := o.countedAfter(y, emptied)
			x.qty += q
			x.amount += a
			if y.cat != 0 && y.added > x.added {
				x.cat = y.cat
			}
			x.added, x.removed = max(x.added, y.added), max(x.removed, y.removed)
		}
		cart = append(cart, x)
	}
	for j := range o.cart {
		if c.cartIndex(o.cart[j].sku) >= 0 {
			continue
		}
		y := o.cart[j]
		y.qty, y.amount = o.countedAfter(&o.cart[j], max(y.removed, cleared))
		cart = append(cart, y)
	}
	c.cart, c.cartCleared = cart, cleared
	c.cartAdds = append(c.cartAdds, o.cartAdds...)
	for len(c.cart) > maxCart {
		c.dropCartLine(c.cartVictim())
	}
}

// countedAfter is what line it of c counts once emptied at ts.
func (c *customer) countedAfter(it *cartItem, ts int64) (qty int32, amount int64) {
	if ts <= max(it.removed, c.cartCleared) {
		return it.qty, it.amount
	}
	return c.addsAfter(it.sku, ts)
}

func (c *customer) cartIndex(sku uint32) int {
	for i := range c.cart {
		if c.cart[i].sku == sku {
			return i
		}
	}
	return -1
}

// visitLog returns the customer's visit log, making one (the current
// visit and stores as its base, no events) when it has none.
func (c *customer) visitLog() *visitLog {
	if c.vlog == nil {
		c.vlog = &visitLog{visit: c.visit, stores: slices.Clone(c.stores)}
	}
	return c.vlog
}

// absorbVisits folds another identity's visit and store counts into c's.
func (c *customer) absorbVisits(ov *visit, ostores []storeVisits) {
	for _, st := range ostores {
		found := false
		for i := range c.stores {
			if c.stores[i].store == st.store {
				c.stores[i].visits += st.visits
				c.stores[i].last = max(c.stores[i].last, st.last)
				found = true
			}
		}
		if !found {
			c.stores = append(c.stores, st)
		}
	}
	switch {
	case c.visit.sameVisit(ov):
		// One visit, its events split between the two identities (a
		// device's dwell before the member linked it): the union, as one
		// customer applying them all would have built it, counted once.
		c.visit.absorb(ov)
		for i := range c.stores {
			if c.stores[i].store == c.visit.store && c.stores[i].visits > 1 {
				c.stores[i].visits--
			}
		}
	case ov.end > c.visit.end || (ov.end == c.visit.end && ov.store > c.visit.store):
		c.visit = *ov
	}
	// Over the limit, forget stores as storeCount does (the least
	// visited, ties: the oldest), with the visits of both identities.
	for len(c.stores) > maxStores {
		i := c.forgottenStore()
		c.stores = slices.Delete(c.stores, i, i+1)
	}
}

// memberKey is the customer's member identifier, "" when it has none. The
// identifiers are sorted, and "member:" sorts after "card:", "device:" and
// "email:" but before "phone:", so a binary search finds it.
func (c *customer) memberKey() Key {
	i, _ := slices.BinarySearch(c.ids, Key("member:"))
	if i < len(c.ids) && strings.HasPrefix(string(c.ids[i]), "member:") {
		return c.ids[i]
	}
	return ""
}

package features

import (
	"cmp"
	"slices"
	"strings"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// reset makes v the view of an unknown customer, keeping its buffers.
func (v *View) reset(now int64) {
	keys, vnb, vnbs, cart, offers, recent, linked := v.Keys[:0], v.ViewedNotBought[:0], v.ViewedNotBoughtSKU[:0], v.Cart[:0], v.Offers[:0], v.Recent[:0], v.Linked[:0]
	cats := v.LastVisit.Categories[:0]
	*v = View{Now: now, RecencyDays: -1}
	v.Keys, v.ViewedNotBought, v.ViewedNotBoughtSKU, v.Cart, v.Offers, v.Recent, v.Linked = keys, vnb, vnbs, cart, offers, recent, linked
	v.LastVisit.Categories = cats
}

const day = 86_400_000

// fillView evaluates every feature of c at now into v. The caller holds
// the shard's read lock.
func (s *Store) fillView(c *customer, now int64, v *View) {
	c.prefetchView()
	v.reset(now)
	in := s.in
	v.Customer = c.id
	v.Known = true
	v.Version = c.version
	v.NewestTS = c.newest
	v.FirstTS = c.first
	v.Linked = append(v.Linked, c.ids...)
	v.Group = int(xxhash.Sum64String(string(c.id)) % 100)
	for _, k := range c.ids {
		if len(k) > 7 && k[:7] == "member:" {
			v.Member = true
		}
	}

	// Counters: lifetime from the keys, windows from the buckets.
	from := windowFrom(now)
	nowMin := minuteOf(now)
	// Keys with a category go to v.Keys sorted by category, class and
	// type (one key per triple): their order is settled first, on their
	// indexes, so that the (large) KeyStats are written once and not moved
	// by a sort. pos maps a key index to its place in v.Keys, or -1.
	var posBuf, ordBuf [64]int32
	pos, ord := posBuf[:0], ordBuf[:0]
	if len(c.keys) > len(posBuf) {
		pos, ord = make([]int32, 0, len(c.keys)), make([]int32, 0, len(c.keys))
	}
	for i := range c.keys {
		ks := &c.keys[i]
		v.Counts[ks.cls][ks.typ][WLifetime] += ks.lifeCount
		v.Sums[ks.cls][ks.typ][WLifetime] += ks.lifeSum
		if last := ks.last.ms(); last > v.LastSeen[ks.typ] {
			v.LastSeen[ks.typ] = last
		}
		pos = append(pos, -1)
		if ks.cat != 0 {
			ord = append(ord, int32(i))
		}
	}
	slices.SortFunc(ord, func(a, b int32) int {
		ka, kb := &c.keys[a], &c.keys[b]
		if ka.cat != kb.cat {
			return strings.Compare(in.name(ka.cat), in.name(kb.cat))
		}
		if ka.cls != kb.cls {
			return int(ka.cls) - int(kb.cls)
		}
		return int(ka.typ) - int(kb.typ)
	})
	for p, i := range ord {
		ks := &c.keys[i]
		v.Keys = append(v.Keys, KeyStats{Category: in.name(ks.cat), Class: ks.cls, Type: ks.typ, Last: ks.last.ms()})
		st := &v.Keys[len(v.Keys)-1]
		st.Count[WLifetime] = ks.lifeCount
		st.Sum[WLifetime] = ks.lifeSum
		pos[i] = int32(p)
	}
	for i := range c.buckets {
		b := &c.buckets[i]
		if b.start > nowMin {
			continue
		}
		ks := &c.keys[b.key()]
		var st *KeyStats
		if p := pos[b.key()]; p >= 0 {
			st = &v.Keys[p]
		}
		for w := W1h; w < WLifetime; w++ {
			if b.start >= from[w] && (w != W1h || b.res() == resMinute) && (w != W24h || b.res() != resDay) {
				v.Counts[ks.cls][ks.typ][w] += uint32(b.count)
				v.Sums[ks.cls][ks.typ][w] += b.sum
				if st != nil {
					st.Count[w] += uint32(b.count)
					st.Sum[w] += b.sum
				}
			}
		}
	}

	// Viewed, not bought: per category, the newest view against the newest
	// purchase, over the last 30 days.
	for i := range v.Keys {
		k := &v.Keys[i]
		if !isView(k.Type) || k.Last < now-30*day || k.Count[W30d] == 0 {
			continue
		}
		bought := int64(0)
		for j := range v.Keys {
			if v.Keys[j].Category == k.Category && v.Keys[j].Type.IsPurchase() {
				bought = max(bought, v.Keys[j].Last)
			}
		}
		if k.Last <= bought {
			continue
		}
		merged := false
		for j := range v.ViewedNotBought {
			if it := &v.ViewedNotBought[j]; it.Name == k.Category {
				it.Last = max(it.Last, k.Last)
				it.Count += k.Count[W30d]
				merged = true
			}
		}
		if !merged {
			v.ViewedNotBought = append(v.ViewedNotBought, Interest{Name: k.Category, Last: k.Last, Count: k.Count[W30d]})
		}
	}
	sortInterest(v.ViewedNotBought)
	for _, si := range c.skus {
		if si.last > si.bought && si.last >= now-30*day {
			v.ViewedNotBoughtSKU = append(v.ViewedNotBoughtSKU, Interest{Name: in.name(si.sku), Last: si.last, Count: si.count})
		}
	}
	sortInterest(v.ViewedNotBoughtSKU)

	for _, it := range c.cart {
		if it.added > max(it.removed, c.cartCleared) {
			v.Cart = append(v.Cart, CartItem{SKU: in.name(it.sku), Category: in.name(it.cat), Quantity: it.qty, Amount: it.amount, TS: it.added})
			v.CartValue += it.amount
			v.CartTS = max(v.CartTS, it.added)
		}
	}
	slices.SortFunc(v.Cart, func(a, b CartItem) int {
		if a.TS != b.TS {
			return cmp.Compare(a.TS, b.TS)
		}
		return cmp.Compare(a.SKU, b.SKU)
	})

	v.LastStore = in.name(c.lastStore)
	var home *storeVisits
	for i := range c.stores {
		st := &c.stores[i]
		if home == nil || st.visits > home.visits || (st.visits == home.visits && st.last > home.last) {
			home = st
		}
	}
	if home != nil {
		v.HomeStore = in.name(home.store)
	}
	if c.visit.store != 0 {
		vs := &v.LastVisit
		vs.Store = in.name(c.visit.store)
		vs.Start, vs.End = c.visit.start, c.visit.end
		vs.DwellS = max(c.visit.dwellSum, c.visit.exitDwell)
		vs.Purchased = c.visit.purchased
		for _, cat := range c.visit.cats {
			if cat != 0 {
				vs.Categories = append(vs.Categories, in.name(cat))
			}
		}
		slices.Sort(vs.Categories) // arrival order must not show
	}

	v.SpendOnline, v.SpendOffline = c.spendOnline, c.spendOffline
	v.Orders = c.orders
	if c.orders > 0 {
		v.AOV = c.gross / c.orders
	}
	v.Points = max(c.points, 0)
	v.MemberSince = c.memberSince
	lastBuy := max(v.LastSeen[Order], v.LastSeen[PosPurchase])
	if lastBuy > 0 {
		v.RecencyDays = int(max(now-lastBuy, 0) / day)
	}
	v.RScore, v.FScore, v.MScore = rfmScores(v.RecencyDays, c.orders, c.spendOnline+c.spendOffline)
	v.Consent, v.ConsentAt = c.consent, c.consentTS
	v.Locale = "zh-CN"
	if c.localeEn {
		v.Locale = "en"
	}

	for _, o := range c.offers {
		v.Offers = append(v.Offers, OfferStats{
			Offer: in.name(o.offer), Impressions: o.impressions, Clicks: o.clicks, Dismissals: o.dismissals,
			DismissStreak: o.dismissStreak, Redemptions: o.redemptions, LastShown: o.lastShown.ms(), LastRedeemed: o.lastRedeemed.ms(),
		})
	}
	slices.SortFunc(v.Offers, func(a, b OfferStats) int {
		la, lb := max(a.LastShown, a.LastRedeemed), max(b.LastShown, b.LastRedeemed)
		if la != lb {
			return cmp.Compare(lb, la)
		}
		return cmp.Compare(a.Offer, b.Offer)
	})
	for i := len(c.recent) - 1; i >= 0; i-- {
		e := &c.recent[i]
		v.Recent = append(v.Recent, RecentEvent{TS: e.ts, Type: e.typ, Channel: e.ch, Category: in.name(e.cat), SKU: in.name(e.sku), Store: in.name(e.store), Amount: e.amount})
	}
}

// prefetchRecord starts loading every line of the customer record, so
// that the misses of its lock and of the fields fillView reads overlap.
func (c *customer) prefetchRecord() {
	prefetchLines(unsafe.Pointer(c), unsafe.Sizeof(customer{}))
}

// prefetchView starts loading every line of the state fillView reads.
// The state is spread over several allocations and, with many customers,
// is usually out of cache; read part after part, each part's first lines
// are misses paid one after the other, prefetched here they overlap.
func (c *customer) prefetchView() {
	prefetchSlice(c.ids)
	prefetchSlice(c.keys)
	prefetchSlice(c.buckets)
	prefetchSlice(c.skus)
	prefetchSlice(c.cart)
	prefetchSlice(c.stores)
	prefetchSlice(c.offers)
	prefetchSlice(c.recent)
}

// prefetchLines starts loading every cache line of size bytes at ptr.
func prefetchLines(ptr unsafe.Pointer, size uintptr) {
	for off := uintptr(0); off < size; off += 64 {
		prefetch(uintptr(ptr) + off)
	}
}

// prefetchSlice starts loading every cache line of s's elements.
func prefetchSlice[T any](s []T) {
	if len(s) > 0 {
		prefetchLines(unsafe.Pointer(unsafe.SliceData(s)), uintptr(len(s))*unsafe.Sizeof(s[0]))
	}
}

// RFM thresholds: recency in days, frequency in purchases, monetary in
// minor units (fen) of lifetime net spend.
var (
	rfmRecency  = [4]int{180, 90, 30, 7}
	rfmFreq     = [4]int64{2, 5, 10, 20}
	rfmMonetary = [4]int64{50_000, 300_000, 1_000_000, 5_000_000}
)

func rfmScores(recencyDays int, orders, spend int64) (r, f, m int) {
	r, f, m = 1, 1, 1
	if recencyDays >= 0 {
		for _, t := range rfmRecency {
			if recencyDays <= t {
				r++
			}
		}
	}
	for _, t := range rfmFreq {
		if orders >= t {
			f++
		}
	}
	for _, t := range rfmMonetary {
		if spend >= t {
			m++
		}
	}
	return r, f, m
}

func sortInterest(s []Interest) {
	slices.SortFunc(s, func(a, b Interest) int {
		if a.Last != b.Last {
			return cmp.Compare(b.Last, a.Last)
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

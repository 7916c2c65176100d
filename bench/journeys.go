package bench

import (
	"strconv"
	"strings"
	"time"

	"nbo/features"
)

// Journeys: each customer lives through a sequence of journeys drawn from
// the OMO playbooks according to their habits and tastes. A journey's
// events are generated at once, in time order, starting no earlier than
// the time the schedule woke the customer at.

// JourneyKind names a journey shape.
type JourneyKind uint8

const (
	JourneyOnlineBrowse    JourneyKind = iota // look around online, buy nothing
	JourneyOnlinePurchase                     // browse, cart, order; sometimes post-purchase service
	JourneyCartAbandon                        // add to cart and leave
	JourneyBrowseThenStore                    // view a category online, buy it in store days later
	JourneyStoreThenOnline                    // visit a store without buying, maybe buy online later
	JourneyStorePurchase                      // visit a store and buy
	JourneyCompareModels                      // view two models of a category repeatedly
	JourneyBabyEvenings                       // evening baby searches, then a weekend baby-department visit
	JourneySignup                             // join as a member (in store, or in the app)
	NumJourneyKinds
)

var journeyNames = [NumJourneyKinds]string{
	"online_browse", "online_purchase", "cart_abandon", "browse_then_store", "store_then_online",
	"store_purchase", "compare_models", "baby_evenings", "signup",
}

func (k JourneyKind) String() string {
	if k < NumJourneyKinds {
		return journeyNames[k]
	}
	return "unknown"
}

const (
	second = 1000
	minute = 60 * second
	hour   = 60 * minute
	day    = 24 * hour
)

// journeyWeights are the relative odds of each kind by habit; kinds that
// need a taste (comparing models, baby) are adjusted per customer.
var journeyWeights = [3][NumJourneyKinds]float64{
	OnlineOnly:  {3, 3, 2, 0, 0, 0, 1, 1, 0},
	StoreOnly:   {0, 0, 0, 0, 2, 4, 0, 0, 0},
	Omnichannel: {1, 2, 2, 3, 2, 2, 1, 1, 0},
}

// chooseJourney picks the kind of the customer's journey number no.
func (c *Customer) chooseJourney(d *draw, no int) JourneyKind {
	if c.Member && c.JoinJourney > 0 && no == c.JoinJourney {
		return JourneySignup
	}
	w := journeyWeights[c.Habit]
	// Price-sensitive shoppers leave more carts at the checkout and finish
	// fewer orders (the scale is 1 at the population's mean sensitivity).
	w[JourneyCartAbandon] *= 0.5 + c.PriceSensitivity
	w[JourneyOnlinePurchase] *= 1.5 - c.PriceSensitivity
	if c.Habit == Omnichannel {
		// Customers who live far from their store go there less and shop
		// online more.
		lean := c.storeLean()
		for _, k := range [...]JourneyKind{JourneyBrowseThenStore, JourneyStoreThenOnline, JourneyStorePurchase} {
			w[k] *= lean
		}
		for _, k := range [...]JourneyKind{JourneyOnlineBrowse, JourneyOnlinePurchase, JourneyCartAbandon} {
			w[k] *= 2 - lean
		}
	}
	if c.likes(catPhones) || c.likes(catElectronics) {
		w[JourneyCompareModels] *= 3
	}
	if c.Parent() {
		w[JourneyBabyEvenings] = 4
	} else {
		w[JourneyBabyEvenings] = 0
	}
	var total float64
	for _, x := range w {
		total += x
	}
	r := d.float() * total
	for k, x := range w {
		if r < x {
			return JourneyKind(k)
		}
		r -= x
	}
	return JourneyOnlineBrowse
}

// builder appends one leg of one journey's events.
//
// A journey is cut into legs wherever it pauses for hours or days (each
// call of at after the first event starts a new leg). Only one leg is
// kept in memory at a time: to produce leg L the builder replays the
// journey from its seed — same draws, same choices, same event IDs — but
// appends only leg L's events and starts leg L's clock at the time the
// previous leg ended. So a customer who is between legs (waiting two days
// to go to the store) holds no events, only their place in the schedule.
type builder struct {
	s      *Simulator
	c      *Customer
	d      draw
	events []features.Event
	t      int64 // cursor, Unix ms
	loc    *time.Location
	prefix string // event ID prefix
	seq    int

	leg, target int   // current leg, the leg being produced
	resume      int64 // when the target leg may start (previous leg's end)
	exact       bool  // resume is the target leg's exact start time
	more        bool  // a leg after the target exists
	scratch     features.Event

	joined                  bool // has a member ID at this journey
	onlineIDs, storeIDs     features.IDs
	onlineCh                features.Channel
	memberID, cardID, devID string
}

// generate appends the events of leg `leg` of customer c's journey number
// no to dst. Leg 0 starts at or after at; a later leg at or after at, the
// end of the leg before; with exact, the leg starts exactly at at (which
// is then the start an earlier call computed). It reports whether the
// journey has more legs.
func (s *Simulator) generate(c *Customer, no, leg int, at int64, exact bool, dst []features.Event) ([]features.Event, bool) {
	b := builder{
		s:      s,
		c:      c,
		d:      newDraw(s.journeyKey, uint64(c.Index)<<32|uint64(no)),
		events: dst,
		t:      at,
		loc:    s.stores[c.HomeStore].loc,
		prefix: "sim" + s.tag + "-" + strconv.Itoa(c.Index) + "-" + strconv.Itoa(no) + "-",
		target: leg,
		resume: at,
		exact:  exact,
	}
	b.devID = s.deviceID(c.Index)
	b.joined = c.Member && no >= c.JoinJourney
	if b.joined {
		b.memberID = s.memberID(c.Index)
		b.cardID = s.cardID(c.Index)
	}
	// Logged in for this session or not; member card or app check-in at
	// the store.
	b.onlineIDs = features.IDs{Device: b.devID}
	b.storeIDs = features.IDs{Device: b.devID}
	if b.joined {
		if b.d.chance(0.75) {
			b.onlineIDs.Member = b.memberID
		}
		if b.d.chance(0.6) {
			b.storeIDs = features.IDs{Member: b.memberID}
		} else {
			b.storeIDs = features.IDs{Card: b.cardID}
		}
	}
	switch r := b.d.float(); {
	case c.AppUser && r < 0.7:
		b.onlineCh = features.ChannelApp
	case r < 0.85:
		b.onlineCh = features.ChannelMiniapp
	default:
		b.onlineCh = features.ChannelWeb
	}
	kind := c.chooseJourney(&b.d, no)
	if no == 0 {
		// First contact at a waking hour; the journey proper follows.
		b.at(0, 8, 23, false)
		b.prelude(kind)
	}
	switch kind {
	case JourneyOnlineBrowse:
		b.at(0, 8, 23, false)
		b.onlineSession(b.category(), b.d.between(1, 3), b.d.chance(0.5))
	case JourneyOnlinePurchase:
		b.onlinePurchase()
	case JourneyCartAbandon:
		b.at(0, 9, 24, false)
		cat := b.category()
		sku := b.onlineSession(cat, b.d.between(1, 2), b.d.chance(0.4))
		q := int32(b.d.between(1, 2))
		b.emit(features.AddToCart, b.onlineCh, b.d.between(20, 90)*second).cart(sku, q)
		if b.d.chance(0.2) {
			b.emit(features.RemoveFromCart, b.onlineCh, b.d.between(30, 300)*second).cart(sku, q)
		}
	case JourneyBrowseThenStore:
		b.at(0, 19, 23, false)
		cat := b.category()
		b.onlineSession(cat, b.d.between(2, 4), b.d.chance(0.5))
		b.at(int64(b.d.between(1, 3))*day, 10, 21, b.d.chance(b.weekend(0.5)))
		b.storeVisit(cat, 0.7, b.homeOrOther())
	case JourneyStoreThenOnline:
		b.at(0, 10, 21, b.d.chance(b.weekend(0.4)))
		cat := b.category()
		b.storeVisit(cat, 0, b.homeOrOther())
		if b.c.Habit != StoreOnly && b.d.chance(0.45) {
			b.at(int64(b.d.between(3, 30))*hour, 8, 23, false)
			b.onlineOrder(b.onlineSession(cat, 1, false))
		}
	case JourneyStorePurchase:
		b.at(0, 10, 21, b.d.chance(b.weekend(0.45)))
		b.storeVisit(b.category(), 0.8, b.homeOrOther())
	case JourneyCompareModels:
		b.compareModels()
	case JourneyBabyEvenings:
		b.babyEvenings()
	case JourneySignup:
		b.signup()
	}
	return b.events, b.more
}

// prelude is the customer's first contact: members link their
// identifiers and state their consent; anonymous visitors answer the
// consent banner on their device.
func (b *builder) prelude(kind JourneyKind) {
	if kind == JourneySignup {
		return
	}
	ch := b.onlineCh
	if b.c.Habit == StoreOnly {
		ch = features.ChannelStore
	}
	if b.joined {
		ids := features.IDs{Member: b.memberID, Card: b.cardID, Device: b.devID}
		if b.d.chance(0.5) {
			ids.Phone = b.s.phoneHash(b.c.Index)
		}
		b.emitIDs(features.Identify, ch, 0, ids)
	}
	b.consents(ch)
}

func (b *builder) consents(ch features.Channel) {
	ids := features.IDs{Device: b.devID}
	if b.joined {
		ids = features.IDs{Member: b.memberID}
	}
	c := b.c
	keep := b.leg == b.target // skip building attrs maps for a replayed leg
	e := b.emitIDs(features.Consent, ch, second, ids)
	if keep {
		e.consent("marketing", c.Marketing, channelList(c.MarketingChannels))
	}
	e = b.emitIDs(features.Consent, ch, second, ids)
	if keep {
		e.consent("personalization", c.Personalization, "")
	}
	e = b.emitIDs(features.Consent, ch, second, ids)
	if keep {
		e.consent("location", c.Location, "")
	}
}

func channelList(m features.ChannelMask) string {
	var sb strings.Builder
	for ch := features.Channel(1); ch < features.NumChannels; ch++ {
		if m.Has(ch) {
			if sb.Len() > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(ch.String())
		}
	}
	return sb.String()
}

// at moves the cursor forward by after, then on to a random local time
// between hour lo and hi (24 = midnight) of that or a later day, on a
// weekend if asked. After the journey's first event it begins a new leg.
func (b *builder) at(after int64, lo, hi int, weekend bool) {
	h := lo + b.d.intn(hi-lo)
	mi, sec := b.d.intn(60), b.d.intn(60)
	if b.seq > 0 {
		b.leg++
		switch {
		case b.leg == b.target:
			b.t = b.resume
		case b.leg > b.target:
			b.more = true
		}
	}
	if b.leg != b.target {
		return // a leg that is not kept: only its draws matter
	}
	if b.exact {
		b.t, b.exact = b.resume, false
		return
	}
	b.t += after
	start := time.UnixMilli(b.t).In(b.loc)
	y, m, dd := start.Date()
	for i := 0; i < 8; i++ {
		cand := time.Date(y, m, dd+i, h, mi, sec, 0, b.loc)
		if cand.UnixMilli() < b.t {
			continue
		}
		if wd := cand.Weekday(); weekend && wd != time.Saturday && wd != time.Sunday {
			continue
		}
		b.t = cand.UnixMilli()
		return
	}
}

func (b *builder) category() uint8 {
	if b.d.chance(0.75) {
		r := b.d.float()
		switch {
		case r < 0.5:
			return b.c.Favourites[0]
		case r < 0.8:
			return b.c.Favourites[1]
		default:
			return b.c.Favourites[2]
		}
	}
	return uint8(b.d.intn(numCategories))
}

// sku picks an item of the category; affluent customers lean to the
// pricier of two candidates, price-sensitive ones to the cheaper.
func (b *builder) sku(cat uint8) *SKU {
	items := b.s.catalog[cat]
	x, y := &items[b.d.intn(len(items))], &items[b.d.intn(len(items))]
	if (x.Price < y.Price) == (b.d.float() < b.c.pricierLean()) {
		return y
	}
	return x
}

// weekend is the chance that a store visit falls on a weekend, base on
// average: customers who live far from their store make the trip when
// they have the time.
func (b *builder) weekend(base float64) float64 {
	return min(base*(2-b.c.storeLean()), 1)
}

// homeOrOther is the store of a visit: usually the home store.
func (b *builder) homeOrOther() int {
	if b.d.chance(0.85) {
		return b.c.HomeStore
	}
	return b.d.intn(len(b.s.stores))
}

// emit appends an event after advancing the cursor by dt and returns it
// for the caller to fill in (valid until the next emit).
func (b *builder) emit(t features.EventType, ch features.Channel, dt int) *eventFill {
	ids := b.onlineIDs
	if ch.Class() == features.Offline {
		ids = b.storeIDs
	}
	return b.emitIDs(t, ch, dt, ids)
}

func (b *builder) emitIDs(t features.EventType, ch features.Channel, dt int, ids features.IDs) *eventFill {
	b.t += int64(dt)
	if b.leg != b.target {
		// Not kept: the sequence number still advances so event IDs are
		// the same whichever leg is being produced.
		b.seq++
		b.scratch = features.Event{}
		return (*eventFill)(&b.scratch)
	}
	b.events = append(b.events, features.Event{
		ID:      b.prefix + strconv.Itoa(b.seq),
		TS:      b.t,
		Type:    t,
		Channel: ch,
		IDs:     ids,
	})
	b.seq++
	return (*eventFill)(&b.events[len(b.events)-1])
}

// eventFill has chainable setters for the per-type fields.
type eventFill features.Event

func (e *eventFill) product(s *SKU) *eventFill {
	e.SKU, e.Category = s.ID, s.Category
	return e
}

func (e *eventFill) cart(s *SKU, q int32) *eventFill {
	e.SKU, e.Category, e.Quantity, e.Amount = s.ID, s.Category, q, s.Price*int64(q)
	return e
}

func (e *eventFill) category(cat uint8) *eventFill {
	e.Category = Categories[cat]
	return e
}

func (e *eventFill) store(st int, s *Simulator) *eventFill {
	e.Store = s.stores[st].ID
	return e
}

func (e *eventFill) consent(purpose string, granted bool, channels string) {
	e.Attrs = map[string]string{"purpose": purpose, "granted": strconv.FormatBool(granted)}
	if channels != "" && granted {
		e.Attrs["channels"] = channels
	}
}

// onlineSession is a visit to the app or web shop: a landing page, maybe a
// search, then views of items of one category. It returns the last item.
func (b *builder) onlineSession(cat uint8, views int, search bool) *SKU {
	ch := b.onlineCh
	b.emit(features.PageView, ch, 0)
	if search {
		e := b.emit(features.Search, ch, b.d.between(5, 40)*second).category(cat)
		e.Query = Categories[cat]
	}
	var s *SKU
	for range views {
		s = b.sku(cat)
		b.emit(features.ProductView, ch, b.d.between(10, 120)*second).product(s)
	}
	return s
}

// onlineOrder adds the item to the cart and checks out.
func (b *builder) onlineOrder(s *SKU) {
	ch := b.onlineCh
	q := int32(1)
	if s.cat == catGrocery || s.cat == catBaby {
		q = int32(b.d.between(1, 4))
	}
	b.emit(features.AddToCart, ch, b.d.between(20, 120)*second).cart(s, q)
	b.emit(features.Checkout, ch, b.d.between(30, 300)*second)
	b.emit(features.Order, ch, b.d.between(20, 90)*second).cart(s, q)
}

func (b *builder) onlinePurchase() {
	b.at(0, 8, 24, false)
	cat := b.category()
	s := b.onlineSession(cat, b.d.between(1, 3), b.d.chance(0.5))
	b.onlineOrder(s)
	if !b.d.chance(0.35) {
		return
	}
	// Post-purchase service: order tracking, then skincare and makeup
	// buyers come in for a consultation, others review or return.
	b.at(int64(b.d.between(2, 8))*day, 9, 22, false)
	b.emit(features.PageView, b.onlineCh, 0).Attrs = orderStatusPage
	switch {
	case (cat == catSkincare || cat == catMakeup) && b.c.Habit != OnlineOnly && b.d.chance(0.5):
		b.at(int64(b.d.between(1, 3))*day, 10, 20, false)
		st := b.c.HomeStore
		b.emit(features.StoreEnter, features.ChannelStore, 0).store(st, b.s)
		dwell := b.d.between(900, 2400)
		b.emit(features.Dwell, features.ChannelStore, dwell*second).store(st, b.s).category(cat).DwellS = int32(dwell)
		b.emit(features.StoreExit, features.ChannelStore, b.d.between(1, 5)*minute).store(st, b.s)
	case b.d.chance(0.1):
		e := b.emit(features.Return, b.onlineCh, b.d.between(1, 10)*minute).product(s)
		e.Amount = s.Price
	case b.d.chance(0.4):
		b.emit(features.Review, b.onlineCh, b.d.between(1, 10)*minute).product(s)
	}
}

// storeVisit walks into store st, spends time in the category's
// department touching (and for apparel, shoes and makeup trying on) items,
// buys with probability buy, and leaves.
func (b *builder) storeVisit(cat uint8, buy float64, st int) *SKU {
	b.emit(features.StoreEnter, features.ChannelStore, 0).store(st, b.s)
	startDept := b.t
	var s *SKU
	for range b.d.between(1, 3) {
		s = b.sku(cat)
		b.emit(features.ProductTouch, features.ChannelStore, b.d.between(1, 8)*minute).store(st, b.s).product(s)
		if (cat == catApparel || cat == catShoes || cat == catMakeup) && b.d.chance(0.5) {
			b.emit(features.TryOn, features.ChannelStore, b.d.between(2, 10)*minute).store(st, b.s).product(s)
		}
	}
	b.t += int64(b.d.between(1, 10) * minute)
	dwell := int32((b.t - startDept) / second)
	b.emit(features.Dwell, features.ChannelStore, 0).store(st, b.s).category(cat).DwellS = dwell
	if b.s.stores[st].Stock[cat] > 0 && b.d.chance(buy) {
		q := int32(1)
		if cat == catGrocery || cat == catBaby {
			q = int32(b.d.between(1, 4))
		}
		b.emit(features.PosPurchase, features.ChannelPOS, b.d.between(2, 8)*minute).store(st, b.s).cart(s, q)
	}
	b.emit(features.StoreExit, features.ChannelStore, b.d.between(1, 4)*minute).store(st, b.s)
	return s
}

// compareModels views two models of one category side by side over a few
// sessions, then tries both in a store or orders one online, or neither.
func (b *builder) compareModels() {
	cat := uint8(catPhones)
	switch {
	case b.c.likes(catElectronics) && !b.c.likes(catPhones):
		cat = catElectronics
	case !b.c.likes(catPhones) && !b.c.likes(catElectronics):
		cat = b.c.Favourites[0]
	}
	items := b.s.catalog[cat]
	i := b.d.intn(len(items))
	j := (i + 1 + b.d.intn(len(items)-1)) % len(items)
	if len(items) == 1 {
		j = i
	}
	x, y := &items[i], &items[j]
	for n := range b.d.between(2, 3) {
		var gap int64
		if n > 0 {
			gap = int64(b.d.between(8, 40)) * hour
		}
		b.at(gap, 12, 24, false)
		b.emit(features.PageView, b.onlineCh, 0)
		b.emit(features.ProductView, b.onlineCh, b.d.between(20, 90)*second).product(x)
		b.emit(features.ProductView, b.onlineCh, b.d.between(60, 300)*second).product(y)
		if b.d.chance(0.5) {
			b.emit(features.ProductView, b.onlineCh, b.d.between(30, 200)*second).product(x)
		}
	}
	switch r := b.d.float(); {
	case r < 0.35 && b.c.Habit != OnlineOnly:
		b.at(int64(b.d.between(1, 4))*day, 10, 21, b.d.chance(0.5))
		st := b.c.HomeStore
		b.emit(features.StoreEnter, features.ChannelStore, 0).store(st, b.s)
		b.emit(features.ProductTouch, features.ChannelStore, b.d.between(2, 6)*minute).store(st, b.s).product(x)
		b.emit(features.ProductTouch, features.ChannelStore, b.d.between(3, 10)*minute).store(st, b.s).product(y)
		dwell := b.d.between(15, 40) * 60
		b.emit(features.Dwell, features.ChannelStore, b.d.between(2, 10)*minute).store(st, b.s).category(cat).DwellS = int32(dwell)
		if b.s.stores[st].Stock[cat] > 0 && b.d.chance(0.5) {
			b.emit(features.PosPurchase, features.ChannelPOS, b.d.between(5, 15)*minute).store(st, b.s).cart(y, 1)
		}
		b.emit(features.StoreExit, features.ChannelStore, b.d.between(1, 5)*minute).store(st, b.s)
	case r < 0.6 && b.c.Habit != StoreOnly:
		b.at(int64(b.d.between(1, 48))*hour, 9, 24, false)
		b.emit(features.ProductView, b.onlineCh, 0).product(x)
		b.onlineOrder(x)
	}
}

// babyEvenings: searches for baby products on a few evenings, then (for
// customers who visit stores) a weekend visit with a long stay in the baby
// department.
func (b *builder) babyEvenings() {
	for n := range b.d.between(2, 4) {
		var gap int64
		if n > 0 {
			gap = int64(b.d.between(18, 40)) * hour
		}
		b.at(gap, 19, 23, false)
		b.emit(features.PageView, b.onlineCh, 0)
		e := b.emit(features.Search, b.onlineCh, b.d.between(5, 30)*second).category(catBaby)
		e.Query = babyQueries[b.d.intn(len(babyQueries))]
		b.emit(features.ProductView, b.onlineCh, b.d.between(10, 90)*second).product(b.sku(catBaby))
	}
	if b.c.Habit == OnlineOnly {
		if b.d.chance(0.4) {
			b.at(0, 19, 23, false)
			b.onlineOrder(b.onlineSession(catBaby, 1, false))
		}
		return
	}
	b.at(0, 10, 18, true)
	st := b.c.HomeStore
	b.emit(features.StoreEnter, features.ChannelStore, 0).store(st, b.s)
	s := b.sku(catBaby)
	b.emit(features.ProductTouch, features.ChannelStore, b.d.between(3, 10)*minute).store(st, b.s).product(s)
	dwell := b.d.between(20, 50) * 60
	b.emit(features.Dwell, features.ChannelStore, dwell*second).store(st, b.s).category(catBaby).DwellS = int32(dwell)
	if b.s.stores[st].Stock[catBaby] > 0 && b.d.chance(0.5) {
		b.emit(features.PosPurchase, features.ChannelPOS, b.d.between(3, 10)*minute).store(st, b.s).cart(s, int32(b.d.between(1, 3)))
	}
	b.emit(features.StoreExit, features.ChannelStore, b.d.between(1, 4)*minute).store(st, b.s)
}

// signup: a new member joins, in a store (store customers) or in the app;
// the membership links the identifiers and comes with consent answers.
func (b *builder) signup() {
	ids := features.IDs{Member: b.memberID, Card: b.cardID, Phone: b.s.phoneHash(b.c.Index)}
	link := features.IDs{Member: b.memberID, Device: b.devID, Card: b.cardID}
	if b.c.Habit == OnlineOnly {
		b.at(0, 9, 23, false)
		b.emit(features.PageView, b.onlineCh, 0)
		b.emitIDs(features.Signup, b.onlineCh, b.d.between(1, 5)*minute, ids)
		b.emitIDs(features.Identify, b.onlineCh, second, link)
		b.consents(b.onlineCh)
		return
	}
	b.at(0, 10, 21, b.d.chance(0.5))
	st := b.c.HomeStore
	// Enter as the anonymous visitor they were, join at the counter.
	b.emitIDs(features.StoreEnter, features.ChannelStore, 0, features.IDs{Device: b.devID}).store(st, b.s)
	cat := b.category()
	b.emitIDs(features.Dwell, features.ChannelStore, b.d.between(5, 20)*minute, features.IDs{Device: b.devID}).
		store(st, b.s).category(cat).DwellS = int32(b.d.between(300, 1200))
	b.emitIDs(features.Signup, features.ChannelStore, b.d.between(1, 5)*minute, ids).store(st, b.s)
	b.emitIDs(features.Identify, features.ChannelStore, second, link)
	b.consents(features.ChannelStore)
	if b.s.stores[st].Stock[cat] > 0 && b.d.chance(0.6) {
		s := b.sku(cat)
		b.emitIDs(features.PosPurchase, features.ChannelPOS, b.d.between(2, 10)*minute, features.IDs{Member: b.memberID}).
			store(st, b.s).cart(s, 1)
	}
	b.emitIDs(features.StoreExit, features.ChannelStore, b.d.between(1, 4)*minute, features.IDs{Member: b.memberID}).store(st, b.s)
}

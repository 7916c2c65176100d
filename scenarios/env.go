package scenarios

import (
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"nbo/features"
)

// Env is the environment scenario expressions and reason templates are
// checked against and evaluated in: the customer's features under
// snake_case names, the request context, the for_each item and helper
// functions. FEATURES.md is generated from the `doc` tags (go test
// ./scenarios -rewrite).
//
// One Env per evaluating goroutine is filled from a View once per
// evaluation and reused, because expr reads a struct environment without
// a map lookup and every field here is cheap to copy. Money is in minor
// units (fen), times are in the request's local time zone.
type Env struct {
	// Customer.
	Known         bool   `expr:"known" doc:"the engine has seen this customer before"`
	Member        bool   `expr:"member" doc:"the customer has a member ID"`
	MemberDays    int    `expr:"member_days" doc:"days since the signup event; -1 when no signup was seen"`
	Orders        int    `expr:"orders" doc:"lifetime purchases on any channel"`
	AOV           int    `expr:"aov" doc:"average order value, minor units"`
	SpendOnline   int    `expr:"spend_online" doc:"lifetime online spend net of returns, minor units"`
	SpendOffline  int    `expr:"spend_offline" doc:"lifetime in-store spend net of returns, minor units"`
	SpendTotal    int    `expr:"spend_total" doc:"spend_online + spend_offline"`
	OnlineShare   int    `expr:"online_share_pct" doc:"spend_online as a percentage of spend_total, 0-100; 0 when nothing was spent"`
	PointsBalance int    `expr:"points" doc:"loyalty points (1 per yuan online, 1.2 per yuan in store)"`
	RecencyDays   int    `expr:"recency_days" doc:"days since the newest purchase on any channel; -1 when none"`
	RScore        int    `expr:"r_score" doc:"RFM recency score 1 (lapsed) … 5 (recent)"`
	FScore        int    `expr:"f_score" doc:"RFM frequency score 1 … 5"`
	MScore        int    `expr:"m_score" doc:"RFM monetary score 1 … 5"`
	Group         int    `expr:"group" doc:"experiment bucket 0..99, stable per customer"`
	HomeStore     string `expr:"home_store" doc:"most visited store; empty when none"`
	LastStore     string `expr:"last_store" doc:"store of the newest in-store event; empty when none"`
	CartItems     int    `expr:"cart_items" doc:"lines in the current cart"`
	CartValue     int    `expr:"cart_value" doc:"value of the current cart, minor units"`
	CartAgeHours  int    `expr:"cart_age_hours" doc:"hours since the newest cart change; -1 when the cart is empty"`
	VNBCategories int    `expr:"vnb_categories" doc:"categories viewed in the last 30 days and not bought since"`
	VNBSKUs       int    `expr:"vnb_skus" doc:"SKUs viewed in the last 30 days and not bought since"`

	// The newest store visit.
	VisitStore     string `expr:"visit_store" doc:"store of the newest visit; empty when none"`
	VisitDwellMin  int    `expr:"visit_dwell_min" doc:"minutes dwelt during the newest visit"`
	VisitPurchased bool   `expr:"visit_purchased" doc:"a till purchase happened during the newest visit"`
	VisitHoursAgo  int    `expr:"visit_hours_ago" doc:"hours since the newest visit's last event; -1 when none"`
	VisitWeekend   bool   `expr:"visit_weekend" doc:"the newest visit started on a Saturday or Sunday"`
	VisitHour      int    `expr:"visit_hour" doc:"local hour (0-23) the newest visit started; -1 when none"`

	// Request context.
	Channel     string `expr:"channel" doc:"the request's channel (web, app, miniapp, store, pos, tablet, push, sms, social)"`
	Placement   string `expr:"placement" doc:"the request's placement, e.g. home_banner; empty for triggers"`
	Store       string `expr:"store" doc:"the request's store (store tablets, tills); empty online"`
	Trigger     string `expr:"trigger" doc:"on_request or on_event (a push trigger after an event)"`
	PickupStore string `expr:"pickup_store" doc:"where an in-store offer would be redeemed: the request's store, else home_store, else last_store"`
	Now         int    `expr:"now" doc:"the request's instant, Unix milliseconds (the expr builtin now() is disabled: rules see the request's time)"`
	Hour        int    `expr:"hour" doc:"local hour of the request, 0-23"`
	Weekday     int    `expr:"weekday" doc:"local day of the week of the request, 0 = Sunday … 6 = Saturday"`
	Weekend     bool   `expr:"weekend" doc:"the request is on a Saturday or Sunday (local time)"`
	Evening     bool   `expr:"evening" doc:"the request is between 18:00 and 24:00 local time"`

	// The for_each item (empty or zero outside for_each scenarios).
	Category     string `expr:"category" doc:"for_each item: the category (viewed_not_bought, cart, visit_categories)"`
	SKU          string `expr:"sku" doc:"for_each item: the SKU (viewed_not_bought_sku, cart)"`
	Views        int    `expr:"views" doc:"for_each item: times looked at within 30 days (viewed_not_bought*), quantity for cart lines"`
	ItemHoursAgo int    `expr:"item_hours_ago" doc:"for_each item: hours since the item was last looked at or added"`
	DistinctSKUs int    `expr:"distinct_skus" doc:"for_each item: distinct SKUs of the category among the recent events"`
	ComparedSKUs string `expr:"compared_skus" doc:"for_each item: the two newest distinct SKUs of the category among the recent events, \"A / B\""`

	// Functions. The event type, class, window and purpose arguments must
	// be quoted constants; they are checked at load.
	Count           func(typ, class, window string, category ...string) int `expr:"count" doc:"count(type, class, window[, category]): events of type in class (online, offline, any) within window (1h, 24h, 7d, 30d, lifetime), optionally of one category"`
	Sum             func(typ, class, window string, category ...string) int `expr:"sum" doc:"sum(type, class, window[, category]): summed amounts (dwell events: seconds) like count"`
	HoursSince      func(typ string) int                                    `expr:"hours_since" doc:"hours_since(type): whole hours since the newest event of type on any channel; -1 when never"`
	DaysSince       func(typ string) int                                    `expr:"days_since" doc:"days_since(type): whole days since the newest event of type; -1 when never"`
	EveningCount    func(typ, category string) int                          `expr:"evening_count" doc:"evening_count(type, category): recent events of type and category at 18:00-24:00 local time within 7 days (from the bounded recent-event list)"`
	HasConsent      func(purpose, channel string) bool                      `expr:"has_consent" doc:"has_consent(purpose, channel): opted in to purpose (marketing, personalization, location) on channel"`
	InCart          func(category string) bool                              `expr:"in_cart" doc:"in_cart(category): the current cart holds a line of category"`
	Viewed          func(category string) bool                              `expr:"viewed" doc:"viewed(category): category is viewed-not-bought"`
	VisitedCategory func(category string) bool                              `expr:"visited_category" doc:"visited_category(category): the newest store visit touched or dwelt in category"`
	InStock         func(sku string) bool                                   `expr:"in_stock" doc:"in_stock(sku): pickup_store stocks sku (true when no inventory feed is wired)"`
	Redeemed        func(offer string) int                                  `expr:"redeemed" doc:"redeemed(offer_id): times the customer redeemed offer_id"`
	Score           func(name string) float64                               `expr:"score" doc:"score(name): the loaded model's score by name, e.g. score(\"purchase_15d\"); -1 when no model provides it"`

	// Rewritten forms of the functions above, with their constant
	// arguments resolved at load into a slot of the Set. Not for use in
	// files: their names cannot be written in an expression.
	SlotN   func(int) int         `expr:"_n"`
	SlotNI  func(int) int         `expr:"_ni"`
	SlotNC  func(string, int) int `expr:"_nc"`
	SlotEv  func(int) int         `expr:"_ev"`
	SlotEvI func(int) int         `expr:"_evi"`
	// Field reads. expr reads struct fields through reflection, which
	// allocates for every non-pointer value; a typed func(int) call does
	// not (for bools, small ints and empty strings), so the loader
	// rewrites every feature name into one of these.
	FieldI     func(int) int       `expr:"_i"`
	FieldB     func(int) bool      `expr:"_b"`
	FieldS     func(int) string    `expr:"_s"`
	FieldEmpty func(int) bool      `expr:"_e"`
	Compare    func(int) bool      `expr:"_c"`
	StrFn      func(int, int) bool `expr:"_x"`

	st *evalState
}

// evalState is one goroutine's evaluation scratch: the environment, the
// view and request it was filled from and the expr VM. Pooled per Set.
type evalState struct {
	env  Env
	set  *Set
	view *features.View
	req  *Request
	item int // index of the for_each item, -1 outside for_each
	loc  *time.Location
	// full computes every item field, including those that cost an
	// allocation (compared_skus): set when rendering a reason.
	full bool
	// gen numbers evaluations so the item cache needs no clearing.
	gen   uint32
	cache [numForEach][maxCachedItems]itemInfo
	// itemKeys are the View.Keys of the current item's category.
	itemKeys []features.KeyStats
}

func newEvalState(set *Set) *evalState {
	st := &evalState{set: set, item: -1}
	e := &st.env
	e.st = st
	e.Count = func(typ, class, window string, category ...string) int {
		return st.countDyn(typ, class, window, category, false)
	}
	e.Sum = func(typ, class, window string, category ...string) int {
		return st.countDyn(typ, class, window, category, true)
	}
	e.HoursSince = func(typ string) int { return st.since(typ, 3_600_000) }
	e.DaysSince = func(typ string) int { return st.since(typ, 86_400_000) }
	e.EveningCount = func(typ, category string) int {
		t, _ := features.ParseEventType(typ)
		return st.evening(t, category)
	}
	e.HasConsent = func(purpose, channel string) bool {
		p, ok1 := features.ParsePurpose(purpose)
		c, ok2 := features.ParseChannel(channel)
		return ok1 && ok2 && st.view.Consent[p].Has(c)
	}
	e.InCart = func(category string) bool {
		for i := range st.view.Cart {
			if st.view.Cart[i].Category == category {
				return true
			}
		}
		return false
	}
	e.Viewed = func(category string) bool {
		for i := range st.view.ViewedNotBought {
			if st.view.ViewedNotBought[i].Name == category {
				return true
			}
		}
		return false
	}
	e.VisitedCategory = func(category string) bool { return slices.Contains(st.view.LastVisit.Categories, category) }
	e.InStock = func(sku string) bool {
		if st.req.InStock == nil {
			return true
		}
		return st.req.InStock(st.env.PickupStore, sku)
	}
	e.Redeemed = func(offer string) int {
		for i := range st.view.Offers {
			if st.view.Offers[i].Offer == offer {
				return int(st.view.Offers[i].Redemptions)
			}
		}
		return 0
	}
	e.Score = func(name string) float64 {
		if st.req.Score == nil {
			return -1
		}
		if s, ok := st.req.Score(name); ok {
			return s
		}
		return -1
	}
	e.SlotN = func(i int) int { return st.slot(&st.set.slots[i], st.set.slots[i].category) }
	e.SlotNI = func(i int) int { return st.slotItem(&st.set.slots[i]) }
	e.SlotNC = func(category string, i int) int { return st.slot(&st.set.slots[i], category) }
	e.SlotEv = func(i int) int { return st.evening(st.set.slots[i].typ, st.set.slots[i].category) }
	e.SlotEvI = func(i int) int { return st.evening(st.set.slots[i].typ, st.env.Category) }
	base := unsafe.Pointer(e)
	e.FieldI = func(i int) int { return *(*int)(unsafe.Add(base, envFields[i].offset)) }
	e.FieldB = func(i int) bool { return *(*bool)(unsafe.Add(base, envFields[i].offset)) }
	e.FieldS = func(i int) string { return *(*string)(unsafe.Add(base, envFields[i].offset)) }
	e.FieldEmpty = func(i int) bool { return *(*string)(unsafe.Add(base, envFields[i].offset)) == "" }
	e.Compare = func(i int) bool { return st.compare(&st.set.cmps[i]) }
	strFns := [...]func(string) bool{strInCart: e.InCart, strViewed: e.Viewed, strVisited: e.VisitedCategory, strInStock: e.InStock}
	e.StrFn = func(fn, field int) bool {
		return strFns[fn](*(*string)(unsafe.Add(base, envFields[field].offset)))
	}
	return st
}

// String functions callable through _x(fn, field) with a feature as the
// argument, so the string is never boxed.
const (
	strInCart = iota
	strViewed
	strVisited
	strInStock
)

var strFnNames = map[string]int{"in_cart": strInCart, "viewed": strViewed, "visited_category": strVisited, "in_stock": strInStock}

// envField describes one scalar feature of Env.
type envField struct {
	name   string
	kind   reflect.Kind
	offset uintptr
	index  int // struct field index
}

// envFields are Env's scalar features, by position; envFieldByName maps
// expression names to positions.
var envFields, envFieldByName = func() ([]envField, map[string]int) {
	var fs []envField
	m := map[string]int{}
	t := reflect.TypeFor[Env]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("expr")
		if name == "" || strings.HasPrefix(name, "_") || f.Type.Kind() == reflect.Func {
			continue
		}
		m[name] = len(fs)
		fs = append(fs, envField{name: name, kind: f.Type.Kind(), offset: f.Offset, index: i})
	}
	return fs, m
}()

// cmpSlot is a comparison of a feature, a counter or a model score with
// a constant, resolved at load: `spend_offline >= 500000` becomes _c(k).
type cmpSlot struct {
	src   uint8 // cmpField, cmpSlotN, cmpSlotNI, cmpScore
	idx   int   // field position or counter slot
	name  string
	op    string
	i     int64
	f     float64
	float bool
}

const (
	cmpField = iota
	cmpSlotN
	cmpSlotNI
	cmpScore
)

func (st *evalState) compare(c *cmpSlot) bool {
	var x float64
	var n int64
	switch c.src {
	case cmpField:
		n = int64(*(*int)(unsafe.Add(unsafe.Pointer(&st.env), envFields[c.idx].offset)))
	case cmpSlotN:
		n = int64(st.slot(&st.set.slots[c.idx], st.set.slots[c.idx].category))
	case cmpSlotNI:
		n = int64(st.slotItem(&st.set.slots[c.idx]))
	case cmpScore:
		x = st.env.Score(c.name)
	}
	if c.src != cmpScore {
		if !c.float {
			switch c.op {
			case "==":
				return n == c.i
			case "!=":
				return n != c.i
			case "<":
				return n < c.i
			case "<=":
				return n <= c.i
			case ">":
				return n > c.i
			case ">=":
				return n >= c.i
			}
			return false
		}
		x = float64(n)
	}
	switch c.op {
	case "==":
		return x == c.f
	case "!=":
		return x != c.f
	case "<":
		return x < c.f
	case "<=":
		return x <= c.f
	case ">":
		return x > c.f
	case ">=":
		return x >= c.f
	}
	return false
}

// defaultLoc is the time zone of hour, weekday and dates in files when the
// request names none: China Standard Time, without depending on tzdata.
var defaultLoc = time.FixedZone("CST", 8*3600)

func hoursSince(now, t int64, unit int64) int {
	if t == 0 {
		return -1
	}
	return int(max(now-t, 0) / unit)
}

// fill sets the customer and request fields of the environment.
func (st *evalState) fill(v *features.View, req *Request) {
	st.view, st.req, st.item, st.full = v, req, -1, false
	st.gen++
	if st.gen == 0 { // wrapped: old entries could look current
		st.cache = [numForEach][maxCachedItems]itemInfo{}
		st.gen = 1
	}
	st.loc = req.Loc
	if st.loc == nil {
		st.loc = defaultLoc
	}
	now := req.Now
	e := &st.env
	e.Known, e.Member = v.Known, v.Member
	e.MemberDays = -1
	if v.MemberSince > 0 {
		e.MemberDays = hoursSince(now, v.MemberSince, 86_400_000)
	}
	e.Orders, e.AOV = int(v.Orders), int(v.AOV)
	e.SpendOnline, e.SpendOffline, e.SpendTotal = int(v.SpendOnline), int(v.SpendOffline), int(v.SpendOnline+v.SpendOffline)
	e.OnlineShare = 0
	if total := v.SpendOnline + v.SpendOffline; total > 0 {
		e.OnlineShare = int(max(v.SpendOnline, 0) * 100 / total)
	}
	e.PointsBalance, e.RecencyDays = int(v.Points), v.RecencyDays
	e.RScore, e.FScore, e.MScore, e.Group = v.RScore, v.FScore, v.MScore, v.Group
	e.HomeStore, e.LastStore = v.HomeStore, v.LastStore
	e.CartItems, e.CartValue, e.CartAgeHours = len(v.Cart), int(v.CartValue), -1
	if len(v.Cart) > 0 {
		e.CartAgeHours = hoursSince(now, v.CartTS, 3_600_000)
	}
	e.VNBCategories, e.VNBSKUs = len(v.ViewedNotBought), len(v.ViewedNotBoughtSKU)

	lv := &v.LastVisit
	e.VisitStore, e.VisitDwellMin, e.VisitPurchased = lv.Store, int(lv.DwellS/60), lv.Purchased
	e.VisitHoursAgo, e.VisitWeekend, e.VisitHour = -1, false, -1
	if lv.Store != "" {
		e.VisitHoursAgo = hoursSince(now, max(lv.End, lv.Start), 3_600_000)
		t := time.UnixMilli(lv.Start).In(st.loc)
		wd := t.Weekday()
		e.VisitWeekend = wd == time.Saturday || wd == time.Sunday
		e.VisitHour = t.Hour()
	}

	e.Channel, e.Placement, e.Store = req.Channel.String(), req.Placement, req.Store
	e.Trigger = req.Trigger.String()
	e.PickupStore = FulfilmentStore(v, req)
	e.Now = int(now)
	t := time.UnixMilli(now).In(st.loc)
	e.Hour, e.Weekday = t.Hour(), int(t.Weekday())
	e.Weekend = e.Weekday == 0 || e.Weekday == 6
	e.Evening = e.Hour >= 18
	st.clearItem()
}

func (st *evalState) clearItem() {
	e := &st.env
	st.item, st.itemKeys = -1, nil
	e.Category, e.SKU, e.Views, e.ItemHoursAgo, e.DistinctSKUs, e.ComparedSKUs = "", "", 0, -1, 0, ""
}

// setItem binds the i-th item of source src.
func (st *evalState) setItem(src ForEach, i int) {
	st.clearItem()
	st.item = i
	e, v, now := &st.env, st.view, st.req.Now
	switch src {
	case EachViewedNotBought:
		it := &v.ViewedNotBought[i]
		e.Category, e.Views, e.ItemHoursAgo = it.Name, int(it.Count), hoursSince(now, it.Last, 3_600_000)
	case EachViewedNotBoughtSKU:
		it := &v.ViewedNotBoughtSKU[i]
		e.SKU, e.Views, e.ItemHoursAgo = it.Name, int(it.Count), hoursSince(now, it.Last, 3_600_000)
		for j := range v.Recent {
			if v.Recent[j].SKU == it.Name && v.Recent[j].Category != "" {
				e.Category = v.Recent[j].Category
				break
			}
		}
	case EachCart:
		it := &v.Cart[i]
		e.Category, e.SKU, e.Views, e.ItemHoursAgo = it.Category, it.SKU, int(it.Quantity), hoursSince(now, it.TS, 3_600_000)
	case EachVisitCategory:
		e.Category = v.LastVisit.Categories[i]
		e.ItemHoursAgo = e.VisitHoursAgo
	}
	if e.Category == "" {
		return
	}
	// The item's category facts are the same for every scenario expanded
	// over this source, so they are computed once per evaluation.
	var scratch itemInfo
	c := &scratch
	if i < maxCachedItems {
		c = &st.cache[src][i]
	}
	if c == &scratch || c.gen != st.gen {
		st.itemFacts(e.Category, c)
		c.gen = st.gen
	}
	st.itemKeys = v.Keys[c.lo:c.hi]
	e.DistinctSKUs = c.distinct
	switch {
	case c.distinct == 0:
	case c.distinct == 1:
		e.ComparedSKUs = c.a
	case st.full || st.set.needCompared:
		e.ComparedSKUs = c.b + " / " + c.a
	}
}

// maxCachedItems bounds the per-evaluation item cache; items beyond it
// are computed each time.
const maxCachedItems = 32

// itemInfo are the facts of one for_each item's category.
type itemInfo struct {
	gen      uint32
	distinct int    // distinct SKUs of the category among the recent looks
	a, b     string // the newest and second-newest of them
	lo, hi   int    // the category's range in View.Keys
}

func (st *evalState) itemFacts(category string, c *itemInfo) {
	v := st.view
	c.lo, c.hi = categoryRange(v.Keys, category)
	c.distinct, c.a, c.b = 0, "", ""
	for j := range v.Recent {
		r := &v.Recent[j]
		if r.Category != category || r.SKU == "" || !isLook(r.Type) {
			continue
		}
		seen := false
		for k := 0; k < j && !seen; k++ {
			q := &v.Recent[k]
			seen = q.SKU == r.SKU && q.Category == category && isLook(q.Type)
		}
		if seen {
			continue
		}
		switch c.distinct {
		case 0:
			c.a = r.SKU
		case 1:
			c.b = r.SKU
		}
		c.distinct++
	}
}

// categoryRange returns the range of keys of category (keys are sorted
// by category).
func categoryRange(keys []features.KeyStats, category string) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(keys, category, func(k features.KeyStats, c string) int { return strings.Compare(k.Category, c) })
	hi = lo
	for hi < len(keys) && keys[hi].Category == category {
		hi++
	}
	return lo, hi
}

// isLook reports whether the type expresses interest in a product.
func isLook(t features.EventType) bool {
	return t == features.ProductView || t == features.ProductTouch || t == features.TryOn || t == features.AddToCart
}

// items returns the number of items of a for_each source.
func items(src ForEach, v *features.View) int {
	switch src {
	case EachViewedNotBought:
		return len(v.ViewedNotBought)
	case EachViewedNotBoughtSKU:
		return len(v.ViewedNotBoughtSKU)
	case EachCart:
		return len(v.Cart)
	case EachVisitCategory:
		return len(v.LastVisit.Categories)
	}
	return 1
}

// itemName is the name an item is reported under in proposals.
func (e *Env) itemName(src ForEach) string {
	switch src {
	case EachViewedNotBoughtSKU, EachCart:
		return e.SKU
	case NoForEach:
		return ""
	}
	return e.Category
}

// classAny selects both channel classes.
const classAny = features.NumClasses

// slot is a count or sum resolved at load: count("product_view",
// "online", "7d") becomes _n(k) with slots[k] holding the parsed
// arguments.
type slot struct {
	typ      features.EventType
	class    features.Class // classAny for both
	window   features.Window
	sum      bool
	category string // constant category; "" for all (or the item's for _ni)
}

func (st *evalState) slot(s *slot, category string) int {
	v := st.view
	if category == "" && s.category == "" {
		n := int64(0)
		for c := features.Online; c < features.NumClasses; c++ {
			if s.class != classAny && c != s.class {
				continue
			}
			if s.sum {
				n += v.Sums[c][s.typ][s.window]
			} else {
				n += int64(v.Counts[c][s.typ][s.window])
			}
		}
		return int(n)
	}
	if category == "" {
		category = s.category
	}
	lo, hi := categoryRange(v.Keys, category)
	return slotKeys(s, v.Keys[lo:hi])
}

// slotItem is slot for the current for_each item's category, using the
// key range found once for the item.
func (st *evalState) slotItem(s *slot) int {
	if st.itemKeys != nil {
		return slotKeys(s, st.itemKeys)
	}
	return st.slot(s, st.env.Category)
}

// slotKeys sums a counter over the keys of one category.
func slotKeys(s *slot, keys []features.KeyStats) int {
	n := int64(0)
	for i := range keys {
		k := &keys[i]
		if k.Type != s.typ || (s.class != classAny && k.Class != s.class) {
			continue
		}
		if s.sum {
			n += k.Sum[s.window]
		} else {
			n += int64(k.Count[s.window])
		}
	}
	return int(n)
}

// countDyn is count and sum with arguments parsed at run time; the loader
// rewrites every valid call to a slot, so this only runs for calls built
// in ways the rewriter does not know.
func (st *evalState) countDyn(typ, class, window string, category []string, sum bool) int {
	s := slot{sum: sum}
	var ok bool
	if s.typ, ok = features.ParseEventType(typ); !ok {
		return 0
	}
	if s.class, ok = parseClass(class); !ok {
		return 0
	}
	if s.window, ok = features.ParseWindow(window); !ok {
		return 0
	}
	cat := ""
	if len(category) > 0 {
		cat = category[0]
	}
	return st.slot(&s, cat)
}

func parseClass(s string) (features.Class, bool) {
	if s == "any" {
		return classAny, true
	}
	return features.ParseClass(s)
}

func (st *evalState) since(typ string, unit int64) int {
	t, ok := features.ParseEventType(typ)
	if !ok {
		return -1
	}
	return hoursSince(st.req.Now, st.view.LastSeen[t], unit)
}

// evening counts recent events of typ and category between 18:00 and
// midnight local time within the last 7 days.
func (st *evalState) evening(typ features.EventType, category string) int {
	n := 0
	from := st.req.Now - 7*86_400_000
	for i := range st.view.Recent {
		r := &st.view.Recent[i]
		if r.Type != typ || r.Category != category || r.TS < from || r.TS > st.req.Now {
			continue
		}
		if time.UnixMilli(r.TS).In(st.loc).Hour() >= 18 {
			n++
		}
	}
	return n
}

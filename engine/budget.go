package engine

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"nbo/scenarios"
)

// Unlimited is the limit that means "no limit" for SetLimits and
// SetValueLimit.
const Unlimited int64 = -1

var (
	// ErrNoReservation is returned by Redeem and Release for an offer and
	// decision that hold no live reservation (never reserved, already
	// redeemed, released or swept after expiry).
	ErrNoReservation = errors.New("engine: no live budget reservation")
	// ErrReservationExpired is returned by Redeem when the reservation's
	// TTL ran out before the redemption time; the unit goes back to the
	// budget and is not counted as spent.
	ErrReservationExpired = errors.New("engine: budget reservation expired")
	// ErrCorruptState is returned when a snapshot section cannot be
	// decoded.
	ErrCorruptState = errors.New("engine: corrupt snapshot section")
)

// Reservation is one issued offer held against its budgets for a decision
// until it is redeemed, released or expires.
type Reservation struct {
	OfferID    string
	Store      string // "" when the offer is served without a fulfilment store
	DecisionID string
	Expires    int64 // Unix ms; unredeemed after this the unit returns to the budget
	Value      int64 // money held, minor units: the offer's unit value (its cost, from SetCatalog)
}

// BudgetUsage is a read-only report of one offer's budget: counts of
// issued offers (Total, Spent, Reserved, Stores) and money in minor units
// (ValueTotal, ValueSpent, ValueHeld, StoreValues). A catalog budget
// (SetCatalog) is money; its count limits are Unlimited.
type BudgetUsage struct {
	OfferID    string                `json:"offer_id"`
	Total      int64                 `json:"total"` // Unlimited (-1) or the limit, a count
	Spent      int64                 `json:"spent"`
	Reserved   int64                 `json:"reserved"`
	ValueTotal int64                 `json:"value_total"` // Unlimited (-1) or the limit, minor units
	ValueSpent int64                 `json:"value_spent"`
	ValueHeld  int64                 `json:"value_reserved"`
	Stores     map[string]StoreUsage `json:"stores,omitempty"`      // counts
	StoreValue map[string]StoreUsage `json:"store_value,omitempty"` // money, minor units
}

// StoreUsage is one store's part of an offer's budget, as a count of
// issued offers (BudgetUsage.Stores) or as money (BudgetUsage.StoreValue).
type StoreUsage struct {
	Limit    int64 `json:"limit"` // the store's own budget, else the every-store ("*") one, else Unlimited (-1)
	Spent    int64 `json:"spent"`
	Reserved int64 `json:"reserved"`
}

// Budgets is the ledger of offer budgets. Per offer it keeps two kinds of
// limit side by side: counts of issued offers (total and per store,
// SetLimits) and money in minor units (total and per store,
// SetValueLimit and SetStoreValueLimits), where each issued offer takes
// the offer's unit value. The catalog's budgets are money and its unit
// value is the offer's cost (SetCatalog). A unit is reserved when an offer
// is served on any channel, becomes spent when the coupon is redeemed and
// returns to the budget when the reservation is released or expires
// unredeemed.
//
// Issued = spent + reserved never exceeds a limit, in count or in money:
// Reserve checks and takes the total, the store's and the value budgets
// under the offer's own lock, all or nothing. A unit value of 0 (a
// zero-cost offer) takes no money, so a money budget never binds it. Offers are independently locked, and finding an offer
// takes no lock at all: the offer map is an immutable value replaced
// (copy on write, under mu) only when an offer is first seen, which
// happens when the catalog loads.
//
// The zero value is not usable; call NewBudgets.
type Budgets struct {
	mu     sync.Mutex // serialises writers of offers
	offers atomic.Pointer[map[string]*offerBudget]
}

type offerBudget struct {
	mu         sync.Mutex
	total      int64            // Unlimited or limit
	perStore   map[string]int64 // store → limit; stores not listed have no own budget
	valueTotal int64            // Unlimited or limit in value units
	storeValue map[string]int64 // store → limit in value units; AnyStore for every store
	unitValue  int64            // value units each reservation takes
	// configured says limits were set (SetLimits, SetValueLimit,
	// SetStoreValueLimits): a restored snapshot keeps them.
	configured bool
	// unpriced says the money of the spent and held units is not known:
	// restored from a version 1 snapshot, which counted catalog budgets
	// in issued offers and kept no money for them. The first unit value
	// set prices them (count × unit value).
	unpriced bool

	spent           int64
	reserved        int64
	valueSpent      int64
	valueHeld       int64
	storeSpent      map[string]int64
	storeHeld       map[string]int64
	storeValueSpent map[string]int64
	storeValueHeld  map[string]int64

	live map[string]*heldUnit // by decision ID
	exp  expiryHeap
}

type heldUnit struct {
	r     Reservation
	index int // position in the expiry heap
}

type expiryHeap []*heldUnit

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].r.Expires != h[j].r.Expires {
		return h[i].r.Expires < h[j].r.Expires
	}
	return h[i].r.DecisionID < h[j].r.DecisionID
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	u := x.(*heldUnit)
	u.index = len(*h)
	*h = append(*h, u)
}
func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	u := old[n-1]
	old[n-1] = nil
	u.index = -1
	*h = old[:n-1]
	return u
}

// NewBudgets returns an empty ledger. Offers without configured limits are
// unlimited, but their use is still counted.
func NewBudgets() *Budgets {
	b := &Budgets{}
	b.offers.Store(&map[string]*offerBudget{})
	return b
}

func newOfferBudget() *offerBudget {
	return &offerBudget{
		total:           Unlimited,
		valueTotal:      Unlimited,
		storeSpent:      map[string]int64{},
		storeHeld:       map[string]int64{},
		storeValueSpent: map[string]int64{},
		storeValueHeld:  map[string]int64{},
		live:            map[string]*heldUnit{},
	}
}

func (b *Budgets) get(offerID string) *offerBudget {
	return (*b.offers.Load())[offerID]
}

func (b *Budgets) getOrCreate(offerID string) *offerBudget {
	if ob := b.get(offerID); ob != nil {
		return ob
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.offers.Load()
	if ob := old[offerID]; ob != nil {
		return ob
	}
	next := make(map[string]*offerBudget, len(old)+1)
	for id, ob := range old {
		next[id] = ob
	}
	ob := newOfferBudget()
	next[offerID] = ob
	b.offers.Store(&next)
	return ob
}

// AnyStore in SetLimits' perStore map is the budget of every store not
// named in the map.
const AnyStore = "*"

// SetLimits sets an offer's total budget and per-store budgets as counts
// of issued offers (Unlimited or any negative number for none). Stores not
// in perStore have no own budget, unless perStore has an AnyStore entry.
// Counts already issued are kept: lowering a limit below them stops new
// reservations until enough expire. perStore is copied. The catalog's
// budgets are money, not counts: see SetCatalog.
func (b *Budgets) SetLimits(offerID string, total int64, perStore map[string]int64) {
	ob := b.getOrCreate(offerID)
	ps := limitMap(perStore)
	if total < 0 {
		total = Unlimited
	}
	ob.mu.Lock()
	ob.total = total
	ob.perStore = ps
	ob.configured = true
	ob.mu.Unlock()
}

func limitMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for s, l := range m {
		if l >= 0 {
			out[s] = l
		}
	}
	return out
}

// SetCatalog sets the limits of every offer of a scenario set from its
// catalog. An offer's budget is money in minor units, as scenarios
// documents: each issued offer takes the offer's cost from budget.total
// (none when 0) and from budget.per_store (none when 0), which applies to
// each store separately; an offer with cost 1500 and total 3000 is issued
// twice. A budget on an offer with cost 0 never binds (each issue takes
// nothing); it is still counted. The catalog sets no count limits: any set
// earlier by SetLimits are removed. Call it on every load and reload;
// issued counts and money are kept (units already held keep the cost they
// were reserved at). A nil set changes nothing.
func (b *Budgets) SetCatalog(set *scenarios.Set) {
	if set == nil {
		return
	}
	for _, o := range set.Offers {
		total := o.Budget.Total
		if total <= 0 {
			total = Unlimited
		}
		storeValue := map[string]int64{}
		if o.Budget.PerStore > 0 {
			storeValue[AnyStore] = o.Budget.PerStore
		}
		// All of an offer's limits change under its lock at once: a
		// Reserve during a reload sees the old limits or the new, never a
		// mix.
		ob := b.getOrCreate(o.ID)
		ob.mu.Lock()
		ob.total, ob.perStore = Unlimited, map[string]int64{}
		ob.storeValue = storeValue
		ob.valueTotal, ob.unitValue = total, max(o.Cost, 0)
		ob.configured = true
		ob.priceLocked()
		ob.mu.Unlock()
	}
}

// SetValueLimit sets an offer's value budget (money in minor currency
// units) and the value each issued offer takes. valueTotal Unlimited (or
// negative) removes the value budget; the unit value still counts towards
// per-store value budgets and the reported value.
func (b *Budgets) SetValueLimit(offerID string, valueTotal, unitValue int64) {
	ob := b.getOrCreate(offerID)
	if valueTotal < 0 {
		valueTotal = Unlimited
	}
	if unitValue < 0 {
		unitValue = 0
	}
	ob.mu.Lock()
	ob.valueTotal = valueTotal
	ob.unitValue = unitValue
	ob.configured = true
	ob.priceLocked()
	ob.mu.Unlock()
}

// SetStoreValueLimits sets an offer's per-store value budgets (money in
// minor units; an AnyStore entry is the budget of every store without its
// own; negative entries are dropped). Each issued offer served for a store
// takes the offer's unit value (SetValueLimit) from that store's budget.
// perStore is copied.
func (b *Budgets) SetStoreValueLimits(offerID string, perStore map[string]int64) {
	ob := b.getOrCreate(offerID)
	ps := limitMap(perStore)
	ob.mu.Lock()
	ob.storeValue = ps
	ob.configured = true
	ob.mu.Unlock()
}

// priceLocked gives the units of an unpriced offer (restored from a
// version 1 snapshot) the offer's unit value, once it has one: spent money
// is the spent count times it, and each held unit holds it.
func (ob *offerBudget) priceLocked() {
	if !ob.unpriced || ob.unitValue <= 0 {
		return
	}
	ob.unpriced = false
	ob.valueSpent = ob.spent * ob.unitValue
	ob.storeValueSpent = make(map[string]int64, len(ob.storeSpent))
	for s, n := range ob.storeSpent {
		ob.storeValueSpent[s] = n * ob.unitValue
	}
	ob.valueHeld = 0
	ob.storeValueHeld = map[string]int64{}
	for _, u := range ob.live {
		u.r.Value = ob.unitValue
		ob.valueHeld += u.r.Value
		if u.r.Store != "" {
			ob.storeValueHeld[u.r.Store] += u.r.Value
		}
	}
}

// Available reports whether one more unit of the offer could be reserved
// for store at now. It is a cheap eligibility pre-check; only Reserve
// takes the unit.
func (b *Budgets) Available(offerID, store string, now int64) bool {
	ob := b.get(offerID)
	if ob == nil {
		return true
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.expireLocked(now)
	return ob.fitsLocked(store)
}

func (ob *offerBudget) fitsLocked(store string) bool {
	if ob.total >= 0 && ob.spent+ob.reserved >= ob.total {
		return false
	}
	if ob.valueTotal >= 0 && ob.valueSpent+ob.valueHeld+ob.unitValue > ob.valueTotal {
		return false
	}
	if store != "" {
		lim, ok := ob.perStore[store]
		if !ok {
			lim, ok = ob.perStore[AnyStore]
		}
		if ok && ob.storeSpent[store]+ob.storeHeld[store] >= lim {
			return false
		}
		lim, ok = ob.storeValue[store]
		if !ok {
			lim, ok = ob.storeValue[AnyStore]
		}
		if ok && ob.storeValueSpent[store]+ob.storeValueHeld[store]+ob.unitValue > lim {
			return false
		}
	}
	return true
}

// Reserve takes one unit (one issued offer, worth the offer's unit value)
// of the offer's total budgets and, when store has its own budgets, of the
// store's — all or none — for decisionID
// until now+ttl. It reports false when a budget is exhausted. Reserving
// again for the same offer and decision is idempotent: it returns the live
// reservation (with its original expiry) without taking another unit, so a
// retried or replayed decision never spends twice. An empty decisionID is
// refused (it could not be redeemed or released).
func (b *Budgets) Reserve(offerID, store, decisionID string, now int64, ttl time.Duration) (Reservation, bool) {
	if decisionID == "" {
		return Reservation{}, false
	}
	ob := b.getOrCreate(offerID)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.expireLocked(now)
	if u, ok := ob.live[decisionID]; ok {
		return u.r, true
	}
	if !ob.fitsLocked(store) {
		return Reservation{}, false
	}
	u := &heldUnit{r: Reservation{
		OfferID:    offerID,
		Store:      store,
		DecisionID: decisionID,
		Expires:    now + ttl.Milliseconds(),
		Value:      ob.unitValue,
	}}
	ob.holdLocked(u)
	return u.r, true
}

func (ob *offerBudget) holdLocked(u *heldUnit) {
	ob.live[u.r.DecisionID] = u
	heap.Push(&ob.exp, u)
	ob.reserved++
	ob.valueHeld += u.r.Value
	if u.r.Store != "" {
		ob.storeHeld[u.r.Store]++
		ob.storeValueHeld[u.r.Store] += u.r.Value
	}
}

// dropLocked removes a live unit from the reservations; spend says whether
// it becomes spent or returns to the budget.
func (ob *offerBudget) dropLocked(u *heldUnit, spend bool) {
	delete(ob.live, u.r.DecisionID)
	if u.index >= 0 {
		heap.Remove(&ob.exp, u.index)
	}
	ob.reserved--
	ob.valueHeld -= u.r.Value
	if u.r.Store != "" {
		if n := ob.storeHeld[u.r.Store] - 1; n > 0 {
			ob.storeHeld[u.r.Store] = n
		} else {
			delete(ob.storeHeld, u.r.Store)
		}
		ob.storeValueHeld[u.r.Store] -= u.r.Value
		if ob.storeHeld[u.r.Store] == 0 {
			delete(ob.storeValueHeld, u.r.Store)
		}
	}
	if spend {
		ob.spent++
		ob.valueSpent += u.r.Value
		if u.r.Store != "" {
			ob.storeSpent[u.r.Store]++
			ob.storeValueSpent[u.r.Store] += u.r.Value
		}
	}
}

// expireLocked returns every reservation that expired at or before now.
func (ob *offerBudget) expireLocked(now int64) int {
	n := 0
	for len(ob.exp) > 0 && ob.exp[0].r.Expires <= now {
		ob.dropLocked(ob.exp[0], false)
		n++
	}
	return n
}

// Redeem converts the offer's reservation for decisionID into spent
// budget; a spent unit never returns. A reservation that expired before
// now is returned to the budget instead and ErrReservationExpired
// reported; ErrNoReservation means there was nothing to redeem (which is
// also what a second redemption of the same decision gets).
func (b *Budgets) Redeem(offerID, decisionID string, now int64) error {
	ob := b.get(offerID)
	if ob == nil {
		return fmt.Errorf("redeeming offer %s for decision %s: %w", offerID, decisionID, ErrNoReservation)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	u, ok := ob.live[decisionID]
	if !ok {
		return fmt.Errorf("redeeming offer %s for decision %s: %w", offerID, decisionID, ErrNoReservation)
	}
	if u.r.Expires <= now {
		ob.dropLocked(u, false)
		return fmt.Errorf("redeeming offer %s for decision %s: %w", offerID, decisionID, ErrReservationExpired)
	}
	ob.dropLocked(u, true)
	return nil
}

// Release returns the offer's reservation for decisionID to the budget
// (the offer was not delivered after all).
func (b *Budgets) Release(offerID, decisionID string) error {
	ob := b.get(offerID)
	if ob == nil {
		return fmt.Errorf("releasing offer %s for decision %s: %w", offerID, decisionID, ErrNoReservation)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	u, ok := ob.live[decisionID]
	if !ok {
		return fmt.Errorf("releasing offer %s for decision %s: %w", offerID, decisionID, ErrNoReservation)
	}
	ob.dropLocked(u, false)
	return nil
}

// Expire returns every reservation that expired at or before now to its
// budget and reports how many. Reserve and Available also expire their own
// offer lazily, so Expire only needs to run now and then (for example once
// a second) to keep reports current. Each offer costs O(expired · log n).
func (b *Budgets) Expire(now int64) int {
	n := 0
	for _, ob := range b.all() {
		ob.mu.Lock()
		n += ob.expireLocked(now)
		ob.mu.Unlock()
	}
	return n
}

func (b *Budgets) all() []*offerBudget {
	m := *b.offers.Load()
	out := make([]*offerBudget, 0, len(m))
	for _, ob := range m {
		out = append(out, ob)
	}
	return out
}

// Usage reports an offer's budget; false for an offer never seen.
func (b *Budgets) Usage(offerID string) (BudgetUsage, bool) {
	ob := b.get(offerID)
	if ob == nil {
		return BudgetUsage{}, false
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	u := BudgetUsage{
		OfferID: offerID, Total: ob.total, Spent: ob.spent, Reserved: ob.reserved,
		ValueTotal: ob.valueTotal, ValueSpent: ob.valueSpent, ValueHeld: ob.valueHeld,
		Stores: map[string]StoreUsage{},
	}
	limit := func(limits map[string]int64, s string) int64 {
		if lim, ok := limits[s]; ok {
			return lim
		}
		if lim, ok := limits[AnyStore]; ok {
			return lim // the budget of every store without its own
		}
		return Unlimited
	}
	add := func(s string) {
		u.Stores[s] = StoreUsage{Limit: limit(ob.perStore, s), Spent: ob.storeSpent[s], Reserved: ob.storeHeld[s]}
	}
	addValue := func(s string) {
		if u.StoreValue == nil {
			u.StoreValue = map[string]StoreUsage{}
		}
		u.StoreValue[s] = StoreUsage{Limit: limit(ob.storeValue, s), Spent: ob.storeValueSpent[s], Reserved: ob.storeValueHeld[s]}
	}
	for _, m := range []map[string]int64{ob.perStore, ob.storeSpent, ob.storeHeld} {
		for s := range m {
			add(s)
		}
	}
	if len(ob.storeValue) > 0 || ob.unitValue > 0 || ob.valueSpent+ob.valueHeld > 0 {
		for _, m := range []map[string]int64{ob.storeValue, ob.storeSpent, ob.storeHeld} {
			for s := range m {
				addValue(s)
			}
		}
	}
	return u, true
}

// Offers lists the offers the ledger knows, sorted.
func (b *Budgets) Offers() []string {
	m := *b.offers.Load()
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// budgetsSnapshotVersion is the snapshot section's version. Version 1
// (before budgets were money) has no per-store money and no flags, and its
// count limits are the catalog's money amounts misread as counts; see
// UnmarshalBinary.
const budgetsSnapshotVersion = 2

// MarshalBinary encodes the ledger — limits, spent counts and money and
// live reservations — for the state snapshot. Offers are written in
// sorted order, so equal ledgers encode to equal bytes.
func (b *Budgets) MarshalBinary() ([]byte, error) {
	w := snapWriter{buf: []byte{budgetsSnapshotVersion}}
	ids := b.Offers()
	w.uvarint(uint64(len(ids)))
	for _, id := range ids {
		ob := b.get(id)
		ob.mu.Lock()
		w.str(id)
		w.varint(ob.total)
		w.varint(ob.valueTotal)
		w.varint(ob.unitValue)
		w.varint(ob.spent)
		w.varint(ob.valueSpent)
		w.strInt64Map(ob.perStore)
		w.strInt64Map(ob.storeSpent)
		w.strInt64Map(ob.storeValue)
		w.strInt64Map(ob.storeValueSpent)
		var flags uint64
		if ob.unpriced {
			flags |= flagUnpriced
		}
		w.uvarint(flags)
		units := make([]*heldUnit, 0, len(ob.live))
		for _, u := range ob.live {
			units = append(units, u)
		}
		sort.Slice(units, func(i, j int) bool { return units[i].r.DecisionID < units[j].r.DecisionID })
		w.uvarint(uint64(len(units)))
		for _, u := range units {
			w.str(u.r.DecisionID)
			w.str(u.r.Store)
			w.varint(u.r.Expires)
			w.varint(u.r.Value)
		}
		ob.mu.Unlock()
	}
	return w.buf, nil
}

const flagUnpriced = 1 // offerBudget.unpriced

// UnmarshalBinary replaces the ledger's state — issued counts, money and
// live reservations — with a snapshot written by MarshalBinary. Limits are
// configuration, not state: an offer whose limits were set on this ledger
// before the restore (SetCatalog, SetLimits, SetValueLimit,
// SetStoreValueLimits) keeps them; other offers take the snapshot's.
// SetCatalog afterwards applies the current catalog's limits in any case.
//
// A version 1 snapshot (written when catalog budgets were counted in
// issued offers) is read without its count limits — they were the
// catalog's money amounts misread as counts — and, for an offer without a
// unit value then, with its money unknown: the offer's first unit value
// (this ledger's, or the next SetValueLimit or SetCatalog) prices it as
// the issued counts times the unit value (the offer's current cost).
func (b *Budgets) UnmarshalBinary(data []byte) error {
	r := snapReader{buf: data}
	v := r.byte()
	if v != 1 && v != budgetsSnapshotVersion {
		return fmt.Errorf("restoring budgets: version %d: %w", v, ErrCorruptState)
	}
	n := r.count()
	offers := make(map[string]*offerBudget, n)
	for i := 0; i < n && r.err == nil; i++ {
		ob := newOfferBudget()
		id := r.str()
		ob.total = r.varint()
		ob.valueTotal = r.varint()
		ob.unitValue = r.varint()
		ob.spent = r.varint()
		ob.valueSpent = r.varint()
		ob.perStore = r.strInt64Map()
		ob.storeSpent = r.strInt64Map()
		if v == 1 {
			ob.total, ob.perStore = Unlimited, map[string]int64{}
			if ob.unitValue > 0 {
				for s, c := range ob.storeSpent {
					ob.storeValueSpent[s] = c * ob.unitValue
				}
			} else {
				ob.unpriced = true
			}
		} else {
			ob.storeValue = r.strInt64Map()
			ob.storeValueSpent = r.strInt64Map()
			flags := r.uvarint()
			if flags&^flagUnpriced != 0 {
				r.fail()
			}
			ob.unpriced = flags&flagUnpriced != 0
		}
		m := r.count()
		for j := 0; j < m && r.err == nil; j++ {
			u := &heldUnit{r: Reservation{OfferID: id, DecisionID: r.str(), Store: r.str(), Expires: r.varint(), Value: r.varint()}}
			if _, dup := ob.live[u.r.DecisionID]; dup {
				r.fail()
				break
			}
			ob.holdLocked(u)
		}
		if _, dup := offers[id]; dup {
			r.fail()
		}
		offers[id] = ob
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("restoring budgets: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, cur := range *b.offers.Load() {
		cur.mu.Lock()
		configured := cur.configured
		total, perStore, valueTotal, storeValue, unitValue := cur.total, cur.perStore, cur.valueTotal, cur.storeValue, cur.unitValue
		cur.mu.Unlock()
		if !configured {
			continue
		}
		ob := offers[id]
		if ob == nil {
			ob = newOfferBudget()
			offers[id] = ob
		}
		ob.total, ob.perStore, ob.valueTotal, ob.storeValue, ob.unitValue = total, perStore, valueTotal, storeValue, unitValue
		ob.configured = true
		ob.priceLocked()
	}
	b.offers.Store(&offers)
	return nil
}

// snapWriter and snapReader are the small varint codec the engine's
// snapshot sections (budgets, contact ledger, trigger dedup) share.
type snapWriter struct{ buf []byte }

func (w *snapWriter) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *snapWriter) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *snapWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}
func (w *snapWriter) strInt64Map(m map[string]int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.varint(m[k])
	}
}

type snapReader struct {
	buf []byte
	err error
}

func (r *snapReader) fail() {
	if r.err == nil {
		r.err = ErrCorruptState
	}
	r.buf = nil
}

func (r *snapReader) byte() byte {
	if len(r.buf) == 0 {
		r.fail()
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *snapReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *snapReader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length that must be plausible for the bytes left (every
// element takes at least one byte), so corrupt input cannot make us
// allocate huge slices.
func (r *snapReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.buf)) || v > math.MaxInt32 {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *snapReader) str() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func (r *snapReader) strInt64Map() map[string]int64 {
	n := r.count()
	m := make(map[string]int64, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.str()
		m[k] = r.varint()
	}
	return m
}

func (r *snapReader) done() error {
	if r.err == nil && len(r.buf) != 0 {
		r.err = ErrCorruptState
	}
	return r.err
}

package engine

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"nbo/features"
)

// couponAlphabet is Crockford's base32: no I, L, O or U, so a code read
// aloud or typed at a till is hard to get wrong.
var couponEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// CouponCode is the coupon code of an offer served in a decision: a
// deterministic function of both, so the same decision always prints the
// same code (a replayed trigger, a re-rendered page) and a code redeemed at
// a store till maps back to the decision through Stats.LookupCoupon. It is
// 16 characters of Crockford base32 (80 bits of SHA-256): unguessable
// enough for a coupon whose validity the till checks anyway. It allocates
// only the returned string (it runs for every offer served).
func CouponCode(decisionID, offerID string) string {
	return couponKeyOf(decisionID, offerID).String()
}

// String is the coupon code of the key.
func (k couponKey) String() string {
	var b [couponLen]byte
	couponEncoding.Encode(b[:], k[:])
	return string(b[:])
}

// couponLen is the length of a coupon code: 80 bits in base32.
const couponLen = 16

// couponKey is a coupon code's 80 bits, the form Stats indexes: a map key
// without pointers, and no string to build per recorded offer.
type couponKey [10]byte

func couponKeyOf(decisionID, offerID string) couponKey {
	var buf [128]byte // decision and offer IDs are short; longer ones spill to the heap
	b := append(buf[:0], "coupon\x00"...)
	b = append(b, decisionID...)
	b = append(b, 0)
	b = append(b, offerID...)
	sum := sha256.Sum256(b)
	return couponKey(sum[:10])
}

// parseCoupon is the inverse of CouponCode's encoding; it accepts exactly
// the codes CouponCode prints (base32 decoding alone would also skip line
// breaks).
func parseCoupon(code string) (couponKey, bool) {
	var k couponKey
	if len(code) != couponLen {
		return k, false
	}
	var src, again [couponLen]byte
	copy(src[:], code)
	if n, err := couponEncoding.Decode(k[:], src[:]); err != nil || n != len(k) {
		return k, false
	}
	couponEncoding.Encode(again[:], k[:])
	return k, again == src
}

// DecisionRecord is one offer served in a decision, as the attribution
// log sees it: a decision with three offers is three records with one
// DecisionID. A holdout decision that served nothing is one record without
// an OfferID, so that a control group given nothing is measured too; the
// treatment's empty decisions are not recorded (on a busy server most
// requests are at a contact cap, and their records would crowd out the
// ones attribution needs).
type DecisionRecord struct {
	DecisionID string           `json:"decision_id"`
	Customer   features.Key     `json:"customer"`
	Scenario   string           `json:"scenario"`
	OfferID    string           `json:"offer_id"`
	Channel    features.Channel `json:"channel"`
	Store      string           `json:"store,omitempty"`
	Group      string           `json:"group"` // GroupTreatment or GroupHoldout
	TS         int64            `json:"ts"`    // Unix ms
	Value      int64            `json:"value"` // minor units
	Cost       int64            `json:"cost"`  // minor units
	// Segment is the bandit segment the decision was made in (empty for
	// triggers and records from before it was kept): a response, however
	// late, is credited to the segment whose trial it answers.
	Segment string `json:"segment,omitempty"`

	// coupon is the key of the offer's coupon code when the engine has it
	// at hand (it printed the code); zero means Stats derives it.
	coupon couponKey
}

// Outcome is a feedback or purchase event as attribution needs it.
// Feedback (offer_impression, offer_click, push_open, offer_dismiss,
// coupon_redeem) is attributed to a decision by DecisionID (and OfferID,
// when the decision had several offers) or by CouponCode. Purchases
// (order, pos_purchase) are not attributed to an offer; they only mark
// the customer's recent decisions as converted, for uplift.
type Outcome struct {
	Type       features.EventType
	DecisionID string
	OfferID    string
	CouponCode string
	Customer   features.Key // canonical; may be empty for an anonymous till redemption
	Channel    features.Channel
	Store      string
	TS         int64 // Unix ms
	Revenue    int64 // minor units (the purchase amount of a redemption)
}

// Attribution says which decision an outcome was credited to.
type Attribution struct {
	DecisionID   string
	OfferID      string
	Scenario     string
	Channel      features.Channel // where the offer was served
	CrossChannel bool             // served online and used offline, or the reverse
	Group        string           // GroupTreatment or GroupHoldout
	Segment      string           // the decision's bandit segment, if known
	// Repeat marks a redemption of an offer already redeemed (a till
	// retry, a second scan): not counted again, nothing to credit.
	Repeat bool
}

// StatsOptions configure Stats. The zero value is valid: EnsureDefaults
// fills every unset field.
type StatsOptions struct {
	// Window is the attribution window: a conversion counts for the
	// decisions made in this time before it, and the touches in it form
	// the sequence first/last/position-based attribution credit.
	// Default: 7 days.
	Window time.Duration
	// MaxDecisions bounds the decision records kept for attribution (the
	// oldest are forgotten first; their aggregates stay). Default:
	// 1,000,000.
	MaxDecisions int
	// MaxTouches bounds the recent decisions kept per customer.
	// Default: 32.
	MaxTouches int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *StatsOptions) EnsureDefaults() {
	if o.Window == 0 {
		o.Window = 7 * 24 * time.Hour
	}
	if o.MaxDecisions == 0 {
		o.MaxDecisions = 1_000_000
	}
	if o.MaxTouches == 0 {
		o.MaxTouches = 32
	}
}

// Validate reports every problem with the options at once.
func (o *StatsOptions) Validate() error {
	var errs []error
	if o.Window <= 0 {
		errs = append(errs, fmt.Errorf("engine: attribution window %v must be positive", o.Window))
	}
	if o.MaxDecisions < 1 {
		errs = append(errs, fmt.Errorf("engine: max decisions %d must be positive", o.MaxDecisions))
	}
	if o.MaxTouches < 1 || o.MaxTouches > 1024 {
		errs = append(errs, fmt.Errorf("engine: max touches %d is out of range; use 1..1024", o.MaxTouches))
	}
	return errors.Join(errs...)
}

// Stats aggregates decisions and their outcomes: per scenario, offer,
// channel and store the decisions, impressions, responses, redemptions,
// revenue, cross-channel conversions and uplift against the holdout; and
// per channel the credit for redemptions under first-touch, last-touch and
// position-based attribution. Safe for concurrent use (one lock: each
// record is a few map operations; feed it from the decision log rather
// than the request path if that ever shows up in a profile).
//
// It holds up to MaxDecisions records for as long as outcomes may arrive,
// so their layout is what the garbage collector scans on every cycle of a
// busy server: one map entry per decision (not per offer), coupon keys
// without pointers, and records allocated in slabs rather than one by one.
type Stats struct {
	opts   StatsOptions
	window int64

	mu        sync.Mutex
	decisions map[string]*decRec // decision ID → its first record; the rest follow next
	coupons   map[couponKey]*decRec
	customers map[features.Key][]*decRec // recent decisions, oldest first
	queue     []*decRec                  // insertion order, for eviction
	head      int
	live      int      // records held: len(queue) - head
	slab      []decRec // records not yet handed out

	total                     statsRow
	scenarios, offers, stores map[string]*statsRow
	channels                  map[features.Channel]*statsRow
	conversions               int64
	first1, last1, position   [features.NumChannels]credit
	unattributed              int64
	repeats                   int64 // redemptions of an offer already redeemed
	evicted                   int64 // records dropped for MaxDecisions (since start)
}

type decRec struct {
	DecisionRecord
	next                 *decRec // the decision's next offer, in recording order
	hasCoupon            bool    // DecisionRecord.coupon is indexed (records without an offer have none)
	responded, converted bool
	redeemed             bool // a coupon_redeem was attributed to it
	// first marks the rows (rowsOf, by index) in which this record is
	// its decision's first: the rows that count the decision once, and
	// its conversion once, however many of its offers they also count.
	first uint8
}

// The rows of a record (rowsOf), as bits of decRec.first.
const (
	rowTotal = 1 << iota
	rowScenario
	rowOffer
	rowChannel
	rowStore
)

// sharesRow reports whether records a and b, of one decision, count in
// the same row of kind row (one of the row bits).
func sharesRow(a, b *decRec, row uint8) bool {
	switch row {
	case rowTotal:
		return true
	case rowChannel:
		return a.Channel == b.Channel
	case rowStore:
		return a.Store != "" && a.Store == b.Store
	case rowScenario:
		return a.OfferID != "" && b.OfferID != "" && a.Scenario == b.Scenario
	}
	return false // every record of a decision has its own offer
}

// rowsHeld are the rows a record counts in: all five for an offer
// served; total, channel and store for a decision that served nothing,
// which belongs to no scenario or offer.
func rowsHeld(r *decRec) uint8 {
	rows := uint8(rowTotal | rowChannel)
	if r.OfferID != "" {
		rows |= rowScenario | rowOffer
	}
	if r.Store != "" {
		rows |= rowStore
	}
	return rows
}

// recSlab is how many records Stats allocates at once. Records are
// evicted oldest first, so a slab is freed soon after its last record.
const recSlab = 128

type credit struct{ conversions, revenue float64 }

type statsRow struct {
	decisions, holdout, served                   int64
	impressions, clicks, dismissals, redemptions int64
	responders, revenue, cost                    int64
	onlineToStore, storeToOnline                 int64
	convTreatment, convHoldout                   int64
}

// NewStats returns an empty aggregator.
func NewStats(opts StatsOptions) (*Stats, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("creating stats: %w", err)
	}
	return &Stats{
		opts: opts, window: opts.Window.Milliseconds(),
		decisions: map[string]*decRec{}, coupons: map[couponKey]*decRec{},
		customers: map[features.Key][]*decRec{},
		scenarios: map[string]*statsRow{}, offers: map[string]*statsRow{}, stores: map[string]*statsRow{},
		channels: map[features.Channel]*statsRow{},
	}, nil
}

func rowOf[K comparable](m map[K]*statsRow, k K) *statsRow {
	r := m[k]
	if r == nil {
		r = &statsRow{}
		m[k] = r
	}
	return r
}

// RecordDecision logs one served offer, or a decision that served none.
// Recording the same decision and offer again is ignored, so replaying the
// decision log is safe; recorded says whether it was recorded.
func (s *Stats) RecordDecision(d DecisionRecord) (recorded bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordLocked(d)
}

// recordLocked records d and reports whether it did: a decision and
// offer already held is not recorded again (insertLocked).
func (s *Stats) recordLocked(d DecisionRecord) bool {
	r := s.insertLocked(d, false, false, false)
	if r == nil {
		return false
	}
	holdout := d.Group == GroupHoldout
	for i, row := range s.rowsOf(r) { // one lookup of the rows for both counts
		if row == nil {
			continue
		}
		if d.OfferID != "" {
			row.served++
		}
		switch {
		case r.first&(1<<i) == 0:
		case holdout:
			row.holdout++
		default:
			row.decisions++
		}
	}
	return true
}

// RecordDecisions logs a batch of served offers, as RecordDecision does
// each, under one acquisition of the lock.
func (s *Stats) RecordDecisions(batch []DecisionRecord) {
	if len(batch) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		s.recordLocked(batch[i])
	}
}

// insertLocked adds a decision record to the indexes (not to the counts)
// and returns it; nil when the decision and offer are already recorded.
func (s *Stats) insertLocked(d DecisionRecord, responded, converted, redeemed bool) *decRec {
	first := s.decisions[d.DecisionID]
	var last *decRec
	for x := first; x != nil; x = x.next {
		if x.OfferID == d.OfferID {
			return nil
		}
		last = x
	}
	if len(s.slab) == 0 {
		s.slab = make([]decRec, recSlab)
	}
	r := &s.slab[0]
	s.slab = s.slab[1:]
	*r = decRec{DecisionRecord: d, responded: responded, converted: converted, redeemed: redeemed}
	r.first = rowsHeld(r)
	for x := first; x != nil && r.first != 0; x = x.next {
		r.first &^= sharedRows(x, r, r.first)
	}
	if last == nil {
		s.decisions[d.DecisionID] = r
	} else {
		last.next = r
	}
	if d.OfferID != "" { // the holdout's untargeted offers carry real coupons too
		if r.coupon == (couponKey{}) {
			r.coupon = couponKeyOf(d.DecisionID, d.OfferID)
		}
		r.hasCoupon = true
		s.coupons[r.coupon] = r
	}
	if d.Customer != "" {
		s.customers[d.Customer] = appendRecent(s.customers[d.Customer], r, s.opts.MaxTouches)
	}
	s.queue = append(s.queue, r)
	s.live++
	for s.live > s.opts.MaxDecisions {
		s.evictOldestLocked()
	}
	return r
}

// rowsOf returns the rows a record counts in, in the order of the row
// bits: total, scenario, offer, channel and store (nil where rowsHeld
// says the record has none). Records look them up rather than hold five
// pointers each, which the collector would scan.
func (s *Stats) rowsOf(r *decRec) [5]*statsRow {
	rows := [5]*statsRow{0: &s.total, 3: rowOf(s.channels, r.Channel)}
	if r.OfferID != "" {
		rows[1], rows[2] = rowOf(s.scenarios, r.Scenario), rowOf(s.offers, r.OfferID)
	}
	if r.Store != "" {
		rows[4] = rowOf(s.stores, r.Store)
	}
	return rows
}

func (s *Stats) each(r *decRec, fn func(*statsRow)) {
	for _, row := range s.rowsOf(r) {
		if row != nil {
			fn(row)
		}
	}
}

// eachFirst calls fn for the rows in which r is its decision's first
// record (decRec.first): the rows that count the decision once.
func (s *Stats) eachFirst(r *decRec, fn func(*statsRow)) {
	for i, row := range s.rowsOf(r) {
		if row != nil && r.first&(1<<i) != 0 {
			fn(row)
		}
	}
}

// sharedRows is the subset of rows (row bits) that record b, of the same
// decision as a, also counts in.
func sharedRows(a, b *decRec, rows uint8) uint8 {
	var shared uint8
	for row := uint8(rowTotal); row <= rowStore; row <<= 1 {
		if rows&row != 0 && rowsHeld(b)&row != 0 && sharesRow(a, b, row) {
			shared |= row
		}
	}
	return shared
}

// appendRecent inserts r by time (decisions arrive nearly in order). The
// list holds at least the newest n, which recent returns; it is cut back
// to n only when it reaches 2n, so adding to a customer's full list does
// not shift all n entries every time.
func appendRecent(list []*decRec, r *decRec, n int) []*decRec {
	i := len(list)
	for i > 0 && list[i-1].TS > r.TS {
		i--
	}
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = r
	if len(list) >= 2*n {
		old := len(list)
		list = append(list[:0], list[old-n:]...)
		clear(list[n:old]) // the records dropped are not kept alive
	}
	return list
}

// recent is the newest n of a customer's list (see appendRecent).
func recent(list []*decRec, n int) []*decRec {
	return list[max(len(list)-n, 0):]
}

// evictOldestLocked forgets the oldest decision record. Its aggregates
// stay; later outcomes for it count as unattributed.
func (s *Stats) evictOldestLocked() {
	s.evicted++
	r := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	s.live--
	if s.head > 1024 && s.head > len(s.queue)/2 {
		s.queue = append(s.queue[:0], s.queue[s.head:]...)
		s.head = 0
	}
	// The rows r counted the decision in are counted by the next of its
	// records that shares them, so a conversion arriving before those are
	// evicted too still counts once per decision.
	for x := r.next; x != nil && r.first != 0; x = x.next {
		shared := sharedRows(r, x, r.first)
		x.first |= shared
		r.first &^= shared
	}
	if first := s.decisions[r.DecisionID]; first == r {
		if r.next == nil {
			delete(s.decisions, r.DecisionID)
		} else {
			s.decisions[r.DecisionID] = r.next
		}
	} else {
		for x := first; x != nil; x = x.next {
			if x.next == r {
				x.next = r.next
				break
			}
		}
	}
	r.next = nil
	if r.hasCoupon && s.coupons[r.coupon] == r {
		delete(s.coupons, r.coupon)
	}
	list := s.customers[r.Customer]
	for i, x := range list {
		if x == r {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(s.customers, r.Customer)
	} else {
		s.customers[r.Customer] = list
	}
}

// ServedOffer is an offer served to a customer, as Stats holds it.
type ServedOffer struct {
	DecisionRecord
	Redeemed bool // a redemption was attributed to it
}

// Served appends to dst the offers served to the customer that Stats
// still holds (among the customer's newest MaxTouches records, one per
// offer served, within MaxDecisions records overall), oldest first; the
// holdout's untargeted offers too, as they are real coupons.
func (s *Stats) Served(customer features.Key, dst []ServedOffer) []ServedOffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recent(s.customers[customer], s.opts.MaxTouches) {
		if r.OfferID != "" {
			dst = append(dst, ServedOffer{DecisionRecord: r.DecisionRecord, Redeemed: r.redeemed})
		}
	}
	return dst
}

// LookupCoupon maps a coupon code back to its decision and offer.
func (s *Stats) LookupCoupon(code string) (decisionID, offerID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := parseCoupon(code)
	if !ok {
		return "", "", false
	}
	r := s.coupons[k]
	if r == nil {
		return "", "", false
	}
	return r.DecisionID, r.OfferID, true
}

// RecordOutcome attributes a feedback event to its decision and counts it;
// a purchase (or a redemption) also marks the customer's decisions of the
// last Window as converted, for uplift. It returns the decision credited,
// and false when the outcome names no decision Stats knows.
func (s *Stats) RecordOutcome(o Outcome) (Attribution, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r *decRec
	if o.Type != features.Order && o.Type != features.PosPurchase {
		r = s.findLocked(o)
		if r == nil {
			s.unattributed++
		}
	}
	customer := o.Customer
	if customer == "" && r != nil {
		customer = r.Customer
	}
	var a Attribution
	if r != nil {
		a = Attribution{DecisionID: r.DecisionID, OfferID: r.OfferID, Scenario: r.Scenario, Channel: r.Channel, Group: r.Group, Segment: r.Segment}
		switch o.Type {
		case features.OfferImpression:
			s.each(r, func(row *statsRow) { row.impressions++ })
		case features.OfferClick, features.PushOpen:
			s.each(r, func(row *statsRow) { row.clicks++ })
			s.respondLocked(r)
		case features.OfferDismiss:
			s.each(r, func(row *statsRow) { row.dismissals++ })
		case features.CouponRedeem:
			if r.redeemed {
				s.repeats++
				a.Repeat = true
			} else {
				a.CrossChannel = s.redeemLocked(r, o, customer)
			}
		}
	}
	if o.Type == features.Order || o.Type == features.PosPurchase || (o.Type == features.CouponRedeem && r != nil) {
		s.convertLocked(customer, o.TS)
	}
	return a, r != nil
}

func (s *Stats) findLocked(o Outcome) *decRec {
	if o.DecisionID != "" {
		// Without an offer ID the decision's first offer is meant. A
		// decision that served nothing has no offer to respond to.
		for r := s.decisions[o.DecisionID]; r != nil; r = r.next {
			if r.OfferID != "" && (o.OfferID == "" || r.OfferID == o.OfferID) {
				return r
			}
		}
	}
	if o.CouponCode != "" {
		if k, ok := parseCoupon(o.CouponCode); ok {
			return s.coupons[k]
		}
	}
	return nil
}

func (s *Stats) respondLocked(r *decRec) {
	if !r.responded {
		r.responded = true
		s.each(r, func(row *statsRow) { row.responders++ })
	}
}

// redeemLocked counts a redemption, its cross-channel direction and the
// channel credit of the customer's touch sequence; it reports whether the
// redemption crossed channel classes.
func (s *Stats) redeemLocked(r *decRec, o Outcome, customer features.Key) bool {
	cross := o.Channel != features.ChannelUnknown && o.Channel.Class() != r.Channel.Class()
	r.redeemed = true
	s.each(r, func(row *statsRow) {
		row.redemptions++
		row.revenue += o.Revenue
		row.cost += r.Cost
		if cross {
			if r.Channel.Class() == features.Online {
				row.onlineToStore++
			} else {
				row.storeToOnline++
			}
		}
	})
	s.respondLocked(r)
	if r.Group == GroupHoldout {
		return cross // the control group's redemptions earn no channel credit
	}

	// The touch sequence: the customer's treatment offers served within the
	// window before the redemption, oldest first, always including the
	// credited decision (even when it is older than the window).
	list := recent(s.customers[customer], s.opts.MaxTouches)
	seq := make([]*decRec, 0, len(list)+1)
	from := o.TS - s.window
	included := false
	for _, x := range list {
		if x == r {
			included = true
		} else if x.Group == GroupHoldout || x.TS > o.TS || x.TS < from {
			continue
		}
		seq = append(seq, x)
	}
	if !included { // the customer's list no longer holds it, or another person redeemed the coupon
		seq = append(seq, r)
		sort.SliceStable(seq, func(i, j int) bool { return seq[i].TS < seq[j].TS })
	}
	rev := float64(o.Revenue)
	s.conversions++
	s.first1[seq[0].Channel].add(1, rev)
	s.last1[seq[len(seq)-1].Channel].add(1, rev)
	for i, w := range PositionWeights(len(seq)) {
		s.position[seq[i].Channel].add(w, w*rev)
	}
	return cross
}

func (c *credit) add(w, rev float64) {
	c.conversions += w
	c.revenue += rev
}

// PositionWeights are the position-based (U-shaped, 40/20/40) weights of a
// sequence of n touches: one touch takes all the credit, two split it
// evenly, and from three on the first and last take 40% each and the
// touches between share 20%. The weights sum to 1.
func PositionWeights(n int) []float64 {
	switch n {
	case 0:
		return nil
	case 1:
		return []float64{1}
	case 2:
		return []float64{0.5, 0.5}
	}
	w := make([]float64, n)
	w[0], w[n-1] = 0.4, 0.4
	mid := 0.2 / float64(n-2)
	for i := 1; i < n-1; i++ {
		w[i] = mid
	}
	return w
}

// convertLocked marks the customer's decisions made within the window
// before ts as converted, once each.
func (s *Stats) convertLocked(customer features.Key, ts int64) {
	if customer == "" {
		return
	}
	for _, x := range recent(s.customers[customer], s.opts.MaxTouches) {
		if x.converted || x.TS > ts || ts-x.TS > s.window {
			continue
		}
		// The whole decision converts: its first records (which count it
		// in their rows) may have left the customer's newest MaxTouches.
		for y := s.decisions[x.DecisionID]; y != nil; y = y.next {
			if y.converted {
				continue
			}
			y.converted = true
			holdout := y.Group == GroupHoldout
			s.eachFirst(y, func(row *statsRow) {
				if holdout {
					row.convHoldout++
				} else {
					row.convTreatment++
				}
			})
		}
	}
}

// Rekey moves the customer's decisions from one canonical ID to another
// after an identity merge, so later conversions, touch sequences and
// open offers see both histories. Every record of from's list moves (not
// only the newest MaxTouches), so none is left naming a key that no
// longer resolves to anyone.
func (s *Stats) Rekey(from, to features.Key) {
	if from == to {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.customers[from]
	delete(s.customers, from)
	for _, r := range list {
		r.Customer = to
		s.customers[to] = appendRecent(s.customers[to], r, s.opts.MaxTouches)
	}
}

// Forget unlinks erased customers (canonical keys) from the decision
// records: their lists of recent decisions go, so open offers list
// nothing for them, and no record held names them any more, so neither
// does a snapshot (nor the lists a restore would rebuild from it). The
// records stay, anonymous, with the aggregates /v1/stats reports (which
// name no customer), so a coupon already issued is still attributed when
// it is redeemed. It walks every record held (up to MaxDecisions) under
// the lock, once for all the keys (BenchmarkStatsForget: 19 ms for
// 1,000,000 records on a 2-core Xeon): erasures are rare, and a record
// that left a customer's list (MaxTouches) names them all the same.
func (s *Stats) Forget(customers ...features.Key) {
	if len(customers) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range customers {
		delete(s.customers, c)
	}
	for _, r := range s.queue[s.head:] {
		if r.Customer != "" && slices.Contains(customers, r.Customer) {
			r.Customer = ""
		}
	}
}

// Uplift compares the conversion rates of treatment and holdout
// decisions: the share of each group's decisions followed by a purchase
// or a redemption within the attribution window. Each decision counts
// once, however many offers it served, and the interval
// treats decisions as independent: one customer's decisions in a window
// convert together, so with many decisions per customer the true
// interval is wider.
type Uplift struct {
	TreatmentN    int64   `json:"treatment_n"`
	HoldoutN      int64   `json:"holdout_n"`
	TreatmentRate float64 `json:"treatment_rate"`
	HoldoutRate   float64 `json:"holdout_rate"`
	Diff          float64 `json:"diff"` // TreatmentRate − HoldoutRate
	Low           float64 `json:"ci95_low"`
	High          float64 `json:"ci95_high"`
	// Reliable is false when a group has fewer than 10 conversions or 10
	// non-conversions, where the normal approximation is too optimistic.
	Reliable bool `json:"reliable"`
}

// UpliftCI is the difference of two proportions with a 95% confidence
// interval by the normal (Wald) approximation: diff ± 1.96 · √(p₁(1−p₁)/n₁
// + p₂(1−p₂)/n₂). It reports false when either group is empty.
func UpliftCI(convT, nT, convH, nH int64) (Uplift, bool) {
	if nT <= 0 || nH <= 0 {
		return Uplift{TreatmentN: nT, HoldoutN: nH}, false
	}
	pt := float64(convT) / float64(nT)
	ph := float64(convH) / float64(nH)
	se := math.Sqrt(pt*(1-pt)/float64(nT) + ph*(1-ph)/float64(nH))
	d := pt - ph
	return Uplift{
		TreatmentN: nT, HoldoutN: nH, TreatmentRate: pt, HoldoutRate: ph, Diff: d,
		Low: d - 1.96*se, High: d + 1.96*se,
		Reliable: convT >= 10 && nT-convT >= 10 && convH >= 10 && nH-convH >= 10,
	}, true
}

// StatsRow is one line of the report.
type StatsRow struct {
	Key string `json:"key"`
	// Decisions counts the treatment group's decisions that served an
	// offer, Holdout the holdout group's decisions: each decision once,
	// however many of its offers the row counts (a holdout decision that
	// served nothing counts in the total, channel and store rows only).
	// Uplift is per decision.
	Decisions int64 `json:"decisions"`
	Holdout   int64 `json:"holdout_decisions"`
	// OffersServed counts the offers served, in both groups: the unit of
	// the impressions, responses and redemptions below.
	OffersServed int64 `json:"offers_served"`
	Impressions  int64 `json:"impressions"`
	Clicks       int64 `json:"clicks"` // clicks and push opens
	Dismissals   int64 `json:"dismissals"`
	Redemptions  int64 `json:"redemptions"`
	// ResponseRate is the share of served offers clicked, opened or
	// redeemed at least once.
	ResponseRate float64 `json:"response_rate"`
	Revenue      int64   `json:"revenue"` // of attributed redemptions, minor units
	Cost         int64   `json:"cost"`    // of redeemed offers, minor units
	// Cross-channel redemptions: served online and redeemed in a store,
	// and the reverse.
	OnlineToStore int64   `json:"online_to_store"`
	StoreToOnline int64   `json:"store_to_online"`
	Uplift        *Uplift `json:"uplift,omitempty"` // nil until both groups have decisions
}

// ChannelCredit is a channel's share of the redemptions under one
// attribution model.
type ChannelCredit struct {
	Channel     string  `json:"channel"`
	Conversions float64 `json:"conversions"`
	Revenue     float64 `json:"revenue"`
}

// StatsReport is the JSON-able snapshot GET /v1/stats returns. Rows are
// sorted by key.
type StatsReport struct {
	Total     StatsRow   `json:"total"`
	Scenarios []StatsRow `json:"scenarios"`
	Offers    []StatsRow `json:"offers"`
	Channels  []StatsRow `json:"channels"`
	Stores    []StatsRow `json:"stores"`
	// Conversions is the number of attributed redemptions the channel
	// credit below divides up; each model's credits sum to it.
	Conversions   int64           `json:"conversions"`
	FirstTouch    []ChannelCredit `json:"first_touch"`
	LastTouch     []ChannelCredit `json:"last_touch"`
	PositionBased []ChannelCredit `json:"position_based"`
	// Unattributed counts feedback events that named no known decision or
	// coupon.
	Unattributed int64 `json:"unattributed"`
	// RepeatRedemptions counts redemptions of an offer already redeemed (a
	// till retry, a coupon scanned twice): each offer counts its first
	// redemption only, in the rows and the credit above.
	RepeatRedemptions int64 `json:"repeat_redemptions"`
	// Conversion for uplift: a purchase (order, pos_purchase) or a
	// redemption by the customer within the window after the decision.
	Window string `json:"attribution_window"`
}

// Records is how many decision records Stats holds (at most
// StatsOptions.MaxDecisions) and how many it has evicted to stay within
// it: a record evicted within the attribution window loses what comes
// back for it later.
func (s *Stats) Records() (held int, evicted int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, s.evicted
}

// Snapshot returns the report.
func (s *Stats) Snapshot() StatsReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := StatsReport{
		Total:       s.total.report("total"),
		Conversions: s.conversions, Unattributed: s.unattributed, RepeatRedemptions: s.repeats, Window: s.opts.Window.String(),
		Scenarios: rowsOf(s.scenarios, func(k string) string { return k }),
		Offers:    rowsOf(s.offers, func(k string) string { return k }),
		Stores:    rowsOf(s.stores, func(k string) string { return k }),
		Channels:  rowsOf(s.channels, features.Channel.String),
	}
	rep.FirstTouch = credits(&s.first1)
	rep.LastTouch = credits(&s.last1)
	rep.PositionBased = credits(&s.position)
	return rep
}

func rowsOf[K comparable](m map[K]*statsRow, name func(K) string) []StatsRow {
	out := make([]StatsRow, 0, len(m))
	for k, r := range m {
		out = append(out, r.report(name(k)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func credits(c *[features.NumChannels]credit) []ChannelCredit {
	out := []ChannelCredit{} // an empty list, not null, before any conversion
	for ch := range c {
		if c[ch].conversions != 0 {
			out = append(out, ChannelCredit{Channel: features.Channel(ch).String(), Conversions: c[ch].conversions, Revenue: c[ch].revenue})
		}
	}
	return out
}

func (r *statsRow) report(key string) StatsRow {
	row := StatsRow{
		Key: key, Decisions: r.decisions, Holdout: r.holdout, OffersServed: r.served, Impressions: r.impressions,
		Clicks: r.clicks, Dismissals: r.dismissals, Redemptions: r.redemptions,
		Revenue: r.revenue, Cost: r.cost, OnlineToStore: r.onlineToStore, StoreToOnline: r.storeToOnline,
	}
	if r.served > 0 {
		row.ResponseRate = float64(r.responders) / float64(r.served)
	}
	if u, ok := UpliftCI(r.convTreatment, r.decisions, r.convHoldout, r.holdout); ok {
		row.Uplift = &u
	}
	return row
}

// statsSnapshotVersion 2 added each decision record's segment; version 1
// snapshots are read with none. Version 3 counts decisions once each and
// offers served apart; in the rows of older snapshots the decisions
// counted the treatment's offer records and holdout the holdout's, which
// is what the decision counts are read as, and their sum as the offers
// served (a holdout decision that served nothing counts as one); version 3
// also keeps whether each record was redeemed (unknown, so false, in
// older ones) and the count of repeated redemptions.
const statsSnapshotVersion = 3

// MarshalBinary encodes the aggregates and the decision records still held
// for attribution, for the state snapshot, so counts, pending conversions
// and coupon lookups survive a restart like the feature state does.
func (s *Stats) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := snapWriter{buf: []byte{statsSnapshotVersion}}
	s.total.encode(&w)
	for _, m := range []map[string]*statsRow{s.scenarios, s.offers, s.stores} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.uvarint(uint64(len(keys)))
		for _, k := range keys {
			w.str(k)
			m[k].encode(&w)
		}
	}
	w.uvarint(uint64(len(s.channels)))
	for ch := features.Channel(0); ch < features.NumChannels; ch++ {
		if r := s.channels[ch]; r != nil {
			w.uvarint(uint64(ch))
			r.encode(&w)
		}
	}
	w.varint(s.conversions)
	w.varint(s.unattributed)
	w.varint(s.repeats)
	for _, cs := range []*[features.NumChannels]credit{&s.first1, &s.last1, &s.position} {
		for _, c := range cs {
			w.uvarint(math.Float64bits(c.conversions))
			w.uvarint(math.Float64bits(c.revenue))
		}
	}
	w.uvarint(uint64(s.live))
	for _, r := range s.queue[s.head:] {
		w.str(r.DecisionID)
		w.str(string(r.Customer))
		w.str(r.Scenario)
		w.str(r.OfferID)
		w.uvarint(uint64(r.Channel))
		w.str(r.Store)
		w.str(r.Group)
		w.varint(r.TS)
		w.varint(r.Value)
		w.varint(r.Cost)
		w.str(r.Segment)
		var flags byte
		if r.responded {
			flags |= 1
		}
		if r.converted {
			flags |= 2
		}
		if r.redeemed {
			flags |= 4
		}
		w.buf = append(w.buf, flags)
	}
	return w.buf, nil
}

// UnmarshalBinary replaces the aggregator's state with a snapshot written
// by MarshalBinary. Per-customer touch lists and coupon lookups are rebuilt
// from the decision records.
func (s *Stats) UnmarshalBinary(data []byte) error {
	r := snapReader{buf: data}
	version := r.byte()
	if version < 1 || version > statsSnapshotVersion {
		return fmt.Errorf("restoring stats: version %d: %w", version, ErrCorruptState)
	}
	fresh, _ := NewStats(s.opts)
	fresh.total.decode(&r, version)
	for _, m := range []map[string]*statsRow{fresh.scenarios, fresh.offers, fresh.stores} {
		n := r.count()
		for i := 0; i < n && r.err == nil; i++ {
			rowOf(m, r.str()).decode(&r, version)
		}
	}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		ch := r.uvarint()
		if ch >= uint64(features.NumChannels) {
			r.fail()
			break
		}
		rowOf(fresh.channels, features.Channel(ch)).decode(&r, version)
	}
	fresh.conversions = r.varint()
	fresh.unattributed = r.varint()
	if version >= 3 {
		fresh.repeats = r.varint()
	}
	for _, cs := range []*[features.NumChannels]credit{&fresh.first1, &fresh.last1, &fresh.position} {
		for i := range cs {
			cs[i].conversions = math.Float64frombits(r.uvarint())
			cs[i].revenue = math.Float64frombits(r.uvarint())
		}
	}
	n = r.count()
	for i := 0; i < n && r.err == nil; i++ {
		d := DecisionRecord{DecisionID: r.str(), Customer: features.Key(r.str()), Scenario: r.str(), OfferID: r.str()}
		ch := r.uvarint()
		if ch >= uint64(features.NumChannels) {
			r.fail()
			break
		}
		d.Channel = features.Channel(ch)
		d.Store, d.Group = r.str(), r.str()
		d.TS, d.Value, d.Cost = r.varint(), r.varint(), r.varint()
		if version >= 2 {
			d.Segment = segmentName(r.str())
		}
		flags := r.byte()
		if r.err != nil {
			break
		}
		fresh.insertLocked(d, flags&1 != 0, flags&2 != 0, flags&4 != 0) // counts are in the restored rows
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("restoring stats: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decisions, s.coupons, s.customers, s.queue, s.head, s.live, s.slab = fresh.decisions, fresh.coupons, fresh.customers, fresh.queue, 0, fresh.live, fresh.slab
	s.total = fresh.total
	s.scenarios, s.offers, s.stores, s.channels = fresh.scenarios, fresh.offers, fresh.stores, fresh.channels
	s.conversions, s.unattributed, s.repeats = fresh.conversions, fresh.unattributed, fresh.repeats
	s.first1, s.last1, s.position = fresh.first1, fresh.last1, fresh.position
	return nil
}

// fields are the row's counts in snapshot order; served, added in
// version 3, is last.
func (r *statsRow) fields() [14]*int64 {
	return [14]*int64{&r.decisions, &r.holdout, &r.impressions, &r.clicks, &r.dismissals, &r.redemptions,
		&r.responders, &r.revenue, &r.cost, &r.onlineToStore, &r.storeToOnline, &r.convTreatment, &r.convHoldout, &r.served}
}

func (r *statsRow) encode(w *snapWriter) {
	for _, f := range r.fields() {
		w.varint(*f)
	}
}

func (r *statsRow) decode(rd *snapReader, version byte) {
	fields := r.fields()
	if version < 3 {
		for _, f := range fields[:len(fields)-1] {
			*f = rd.varint()
		}
		r.served = r.decisions + r.holdout // both groups' offer records
		return
	}
	for _, f := range fields {
		*f = rd.varint()
	}
}

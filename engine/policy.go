package engine

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
	_ "time/tzdata" // store time zones must resolve on hosts without a zoneinfo database

	"github.com/cespare/xxhash/v2"

	"nbo/features"
)

// Stable codes for why contact policy refused an offer. They appear in
// decision reasons, metrics labels and tests.
const (
	DenyCapDay        = "cap_day"          // the channel's per-day contact cap is reached
	DenyCapWeek       = "cap_week"         // the channel's per-week contact cap is reached
	DenyQuietHours    = "quiet_hours"      // the store's local time is inside the channel's quiet hours
	DenyCooldown      = "cooldown"         // the offer reached this customer too recently
	DenySuppressed    = "suppressed"       // the customer dismissed the offer too often in a row
	DenyRedeemedLimit = "redemption_limit" // the customer redeemed the offer as often as allowed
)

// ChannelCap limits contacts on one channel per customer. Days and weeks
// are rolling (the last 24 h and the last 7 × 24 h before now), so a cap
// means the same thing in every time zone and no midnight lets a burst
// through. 0 means no cap.
type ChannelCap struct {
	PerDay  int
	PerWeek int
}

// QuietHours is a daily span of local wall-clock time, in minutes after
// midnight, during which a channel is not used. Start > End spans midnight
// (22:00–08:00 is {1320, 480}); Start == End means no quiet hours.
type QuietHours struct {
	Start, End int
}

// Contains reports whether minute-of-day m is inside the quiet hours.
func (q QuietHours) Contains(m int) bool {
	switch {
	case q.Start == q.End:
		return false
	case q.Start < q.End:
		return m >= q.Start && m < q.End
	default:
		return m >= q.Start || m < q.End
	}
}

// PolicyOptions configure a Policy. The zero value is valid: EnsureDefaults
// fills every unset field.
type PolicyOptions struct {
	// Caps per channel. Channels missing from the map have no cap.
	// Default (when nil): push 1/day 3/week, sms 1/day 2/week, app, web and
	// miniapp 10/day 50/week; store, pos and tablet uncapped (a person is
	// in front of the customer).
	Caps map[features.Channel]ChannelCap
	// Quiet hours per channel in the store's local time. Default (when
	// nil): push and sms 22:00–08:00.
	Quiet map[features.Channel]QuietHours
	// TimeZone returns the time zone of a store; nil or a nil result means
	// DefaultZone. Default: nil.
	TimeZone func(store string) *time.Location
	// DefaultZone is the zone of stores TimeZone does not know and of
	// contacts without a store. Default: Asia/Shanghai.
	DefaultZone *time.Location
	// DismissLimit consecutive dismissals of an offer suppress it for the
	// customer. Default: 3.
	DismissLimit uint32
	// SuppressFor is how long a suppression lasts, counted from the last
	// time the offer was shown. Default: 30 days.
	SuppressFor time.Duration
	// Window is how long the contact ledger remembers a contact, for caps
	// and for cooldowns; cooldowns longer than this fall back to the offer
	// history's last-shown time. At least 7 days. Default: 7 days.
	Window time.Duration
	// MaxOffers is how many distinct offers the ledger remembers per
	// customer for cooldowns (the least recent are forgotten first).
	// Default: 32.
	MaxOffers int
	// Shards is the number of independently locked ledger shards, a power
	// of two. Default: 64.
	Shards int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *PolicyOptions) EnsureDefaults() {
	if o.Caps == nil {
		o.Caps = map[features.Channel]ChannelCap{
			features.ChannelPush:    {PerDay: 1, PerWeek: 3},
			features.ChannelSMS:     {PerDay: 1, PerWeek: 2},
			features.ChannelApp:     {PerDay: 10, PerWeek: 50},
			features.ChannelWeb:     {PerDay: 10, PerWeek: 50},
			features.ChannelMiniapp: {PerDay: 10, PerWeek: 50},
		}
	}
	if o.Quiet == nil {
		night := QuietHours{Start: 22 * 60, End: 8 * 60}
		o.Quiet = map[features.Channel]QuietHours{features.ChannelPush: night, features.ChannelSMS: night}
	}
	if o.DefaultZone == nil {
		if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
			o.DefaultZone = loc
		} else {
			o.DefaultZone = time.FixedZone("CST", 8*3600)
		}
	}
	if o.DismissLimit == 0 {
		o.DismissLimit = 3
	}
	if o.SuppressFor == 0 {
		o.SuppressFor = 30 * 24 * time.Hour
	}
	if o.Window == 0 {
		o.Window = 7 * 24 * time.Hour
	}
	if o.MaxOffers == 0 {
		o.MaxOffers = 32
	}
	if o.Shards == 0 {
		o.Shards = 64
	}
}

// Validate reports every problem with the options at once.
func (o *PolicyOptions) Validate() error {
	var errs []error
	for ch, c := range o.Caps {
		if c.PerDay < 0 || c.PerWeek < 0 || c.PerDay > 1000 || c.PerWeek > 1000 {
			errs = append(errs, fmt.Errorf("engine: contact cap for %s is %d/day %d/week; use 0 (no cap) to 1000", ch, c.PerDay, c.PerWeek))
		}
	}
	for ch, q := range o.Quiet {
		if q.Start < 0 || q.Start >= 1440 || q.End < 0 || q.End >= 1440 {
			errs = append(errs, fmt.Errorf("engine: quiet hours for %s are %d–%d; use minutes after midnight, 0..1439", ch, q.Start, q.End))
		}
	}
	if o.SuppressFor < 0 {
		errs = append(errs, fmt.Errorf("engine: suppression %v is negative", o.SuppressFor))
	}
	if o.Window < 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("engine: contact ledger window %v is shorter than the 7 days weekly caps need", o.Window))
	}
	if o.MaxOffers < 1 || o.MaxOffers > 4096 {
		errs = append(errs, fmt.Errorf("engine: max offers per customer %d is out of range; use 1..4096", o.MaxOffers))
	}
	if o.Shards < 1 || o.Shards&(o.Shards-1) != 0 {
		errs = append(errs, fmt.Errorf("engine: policy shards %d is not a power of two", o.Shards))
	}
	return errors.Join(errs...)
}

// OfferPolicy is what contact policy needs to know about an offer.
type OfferPolicy struct {
	ID       string
	Cooldown time.Duration // minimum time between two contacts with this offer; 0 for none
	// MaxRedemptions per customer (lifetime, from the offer history); 0
	// for no limit.
	MaxRedemptions uint32
	// Transactional offers (pick-up ready, booking confirmations) bypass
	// channel caps and dismissal suppression: the marketing pressure of
	// every other offer is not theirs to count against. They keep their
	// own cooldown and redemption limit — rules their catalog entry sets
	// for this very offer, which an onboarding offer capped at once a
	// month relies on. Nor do they bypass quiet hours: a 3 a.m. push wakes
	// a customer whatever its purpose, and messages too urgent to wait
	// belong to the transactional messaging system, not to the offer
	// engine.
	Transactional bool
}

// Policy is contact policy: per-channel caps per rolling day and week,
// quiet hours in the store's time zone, per-offer cooldowns, suppression
// after repeated dismissals, and the per-customer contact ledger these
// rules read. Safe for concurrent use; customers are spread over
// independently locked shards.
type Policy struct {
	opts    PolicyOptions
	need    [features.NumChannels]int // timestamps kept per channel: max(PerDay, PerWeek)
	caps    [features.NumChannels]ChannelCap
	quiet   [features.NumChannels]QuietHours
	mask    uint64
	shards  []policyShard
	windowM int64
}

type policyShard struct {
	mu   sync.Mutex
	logs map[features.Key]*contactLog
	_    [48]byte // keep neighbouring shard locks off one cache line
}

// contactLog is one customer's recent contacts: per capped channel the
// newest max(PerDay, PerWeek) contact times (enough to decide both caps
// exactly), and per offer the newest contact time.
type contactLog struct {
	ch     [features.NumChannels][]int64 // ascending
	offers []offerContact                // newest first
}

type offerContact struct {
	offer string
	ts    int64
}

// NewPolicy returns a contact policy with an empty ledger.
func NewPolicy(opts PolicyOptions) (*Policy, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("creating contact policy: %w", err)
	}
	p := &Policy{opts: opts, shards: make([]policyShard, opts.Shards), mask: uint64(opts.Shards - 1), windowM: opts.Window.Milliseconds()}
	for ch, c := range opts.Caps {
		if ch < features.NumChannels {
			p.caps[ch] = c
			p.need[ch] = max(c.PerDay, c.PerWeek)
		}
	}
	for ch, q := range opts.Quiet {
		if ch < features.NumChannels {
			p.quiet[ch] = q
		}
	}
	for i := range p.shards {
		p.shards[i].logs = make(map[features.Key]*contactLog)
	}
	return p, nil
}

func (p *Policy) shard(k features.Key) *policyShard {
	return &p.shards[xxhash.Sum64String(string(k))&p.mask]
}

const (
	dayMs  = int64(24 * time.Hour / time.Millisecond)
	weekMs = 7 * dayMs
)

// Allow reports whether the offer may reach the customer on channel at
// now, and if not, why (one of the Deny codes). store names the store
// whose time zone decides quiet hours (the request's store, or the
// customer's home store for push); history is the customer's offer
// history from the feature view (View.Offers), nil when unknown.
//
// Allow does not record the contact; call Record once the offer is
// served, or use Claim to check and record in one step.
func (p *Policy) Allow(customer features.Key, ch features.Channel, offer OfferPolicy, store string, history []features.OfferStats, now int64) (bool, string) {
	if ok, why := p.stateless(ch, offer, store, history, now); !ok {
		return false, why
	}
	if !p.ledgerCanDeny(ch, offer) {
		return true, "" // no need to lock the customer's shard
	}
	s := p.shard(customer)
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.ledgerAllows(s.logs[customer], ch, offer, now)
}

// contactGate is Allow for the offers one decision weighs for one
// customer on one channel (openGate asks about every offer of the
// scenario set before evaluating). It reads the customer's ledger once, on
// the first offer that needs it — the channel caps' verdict and the
// offers' last contacts, under one shard lock and one lookup — instead of
// once per offer. A contact another decision records for the customer
// after that read is missed by the gate's later offers, as it would be
// had it come a moment later: Claim, which serve uses, checks and records
// atomically, so caps and cooldowns hold all the same.
type contactGate struct {
	p        *Policy
	customer features.Key
	ch       features.Channel
	now      int64
	read     bool   // the ledger is read into capsWhy and the contacts
	capsWhy  string // why the channel's caps deny; "" when they allow
	// The customer's last contact per offer, newest first: offers[:n],
	// or spill when there are more than gateOffers (a slice into offers
	// itself would move every gate to the heap).
	offers [gateOffers]offerContact
	n      int
	spill  []offerContact
}

// gateOffers is how many offer contacts a gate holds without allocating:
// the default PolicyOptions.MaxOffers.
const gateOffers = 32

// gate returns a contactGate for customer on ch at now.
func (p *Policy) gate(customer features.Key, ch features.Channel, now int64) contactGate {
	var g contactGate
	g.reset(p, customer, ch, now)
	return g
}

// reset readies g, a decision's pooled gate, for customer on ch at now in
// place: assigning a fresh gate cleared and copied its 800 bytes on every
// decision, and the contacts past g.n are never read.
func (g *contactGate) reset(p *Policy, customer features.Key, ch features.Channel, now int64) {
	g.p, g.customer, g.ch, g.now = p, customer, ch, now
	g.read, g.capsWhy, g.n, g.spill = false, "", 0, nil
}

// allow is p.Allow(g.customer, g.ch, offer, store, history, g.now), from
// the ledger as the gate read it (see contactGate).
func (g *contactGate) allow(offer OfferPolicy, store string, history []features.OfferStats) (bool, string) {
	p := g.p
	if ok, why := p.stateless(g.ch, offer, store, history, g.now); !ok {
		return false, why
	}
	if !p.ledgerCanDeny(g.ch, offer) {
		return true, ""
	}
	g.readLedger()
	if g.capsWhy != "" && !offer.Transactional {
		return false, g.capsWhy
	}
	contacts := g.offers[:g.n]
	if g.spill != nil {
		contacts = g.spill
	}
	return cooldownAllows(contacts, offer, g.now)
}

// atCap reports whether the customer has reached the channel's cap now:
// allow refuses every offer but the transactional ones, whatever else is
// true of them. It reads the ledger as allow does (once per gate).
func (g *contactGate) atCap() bool {
	if !g.p.capped(g.ch) {
		return false
	}
	g.readLedger()
	return g.capsWhy != ""
}

// readLedger reads the customer's caps verdict and offer contacts into
// the gate, once.
func (g *contactGate) readLedger() {
	if g.read {
		return
	}
	p := g.p
	s := p.shard(g.customer)
	s.mu.Lock()
	if l := s.logs[g.customer]; l != nil {
		_, g.capsWhy = p.capsAllow(l, g.ch, g.now)
		if len(l.offers) <= gateOffers {
			g.n = copy(g.offers[:], l.offers)
		} else {
			g.spill = slices.Clone(l.offers)
		}
	}
	s.mu.Unlock()
	g.read = true
}

// ledgerCanDeny reports whether the ledger has a rule for the channel or
// the offer (a cap or a cooldown); without one ledgerAllows says yes to
// every customer, and the ledger need not be read.
func (p *Policy) ledgerCanDeny(ch features.Channel, offer OfferPolicy) bool {
	return offer.Cooldown > 0 || !offer.Transactional && p.capped(ch)
}

// capped reports whether the channel has a cap.
func (p *Policy) capped(ch features.Channel) bool {
	return ch < features.NumChannels && (p.caps[ch].PerDay > 0 || p.caps[ch].PerWeek > 0)
}

// Claim is Allow followed, when allowed, by Record — atomically, so two
// deciders racing for the same customer cannot both take the last contact
// a cap allows.
func (p *Policy) Claim(customer features.Key, ch features.Channel, offer OfferPolicy, store string, history []features.OfferStats, now int64) (bool, string) {
	if ok, why := p.stateless(ch, offer, store, history, now); !ok {
		return false, why
	}
	s := p.shard(customer)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[customer]
	if ok, why := p.ledgerAllows(l, ch, offer, now); !ok {
		return false, why
	}
	p.recordLocked(s, customer, l, ch, offer.ID, now)
	return true, ""
}

// nextQuietStart is the first instant after now (Unix ms) at which
// channel ch enters its quiet hours in the store's time zone, or 0 when
// the channel has none. The contact policy checks quiet hours at the
// trigger's event time (Policy.stateless); a push sent later, after
// consumer lag, could land inside them, so the trigger's not_after stops
// there.
func (p *Policy) nextQuietStart(ch features.Channel, store string, now int64) int64 {
	if ch >= features.NumChannels {
		return 0
	}
	q := p.quiet[ch]
	if q.Start == q.End {
		return 0
	}
	t := time.UnixMilli(now).In(p.zone(store))
	y, m, d := t.Date()
	start := time.Date(y, m, d, q.Start/60, q.Start%60, 0, 0, t.Location())
	if !start.After(t) {
		start = time.Date(y, m, d+1, q.Start/60, q.Start%60, 0, 0, t.Location())
	}
	return start.UnixMilli()
}

// stateless checks the rules that need no ledger: quiet hours, dismissal
// suppression, redemption limits and the history's last-shown cooldown.
func (p *Policy) stateless(ch features.Channel, offer OfferPolicy, store string, history []features.OfferStats, now int64) (bool, string) {
	if ch < features.NumChannels {
		if q := p.quiet[ch]; q.Start != q.End {
			t := time.UnixMilli(now).In(p.zone(store))
			if q.Contains(t.Hour()*60 + t.Minute()) {
				return false, DenyQuietHours
			}
		}
	}
	for i := range history {
		h := &history[i]
		if h.Offer != offer.ID {
			continue
		}
		if !offer.Transactional && h.DismissStreak >= p.opts.DismissLimit && now < h.LastShown+p.opts.SuppressFor.Milliseconds() {
			return false, DenySuppressed
		}
		if offer.MaxRedemptions > 0 && h.Redemptions >= offer.MaxRedemptions {
			return false, DenyRedeemedLimit
		}
		if offer.Cooldown > 0 && h.LastShown > 0 && now < h.LastShown+offer.Cooldown.Milliseconds() {
			return false, DenyCooldown
		}
		break
	}
	return true, ""
}

func (p *Policy) zone(store string) *time.Location {
	if p.opts.TimeZone != nil {
		if loc := p.opts.TimeZone(store); loc != nil {
			return loc
		}
	}
	return p.opts.DefaultZone
}

func (p *Policy) ledgerAllows(l *contactLog, ch features.Channel, offer OfferPolicy, now int64) (bool, string) {
	if l == nil {
		return true, ""
	}
	if !offer.Transactional {
		if ok, why := p.capsAllow(l, ch, now); !ok {
			return false, why
		}
	}
	return cooldownAllows(l.offers, offer, now)
}

// capsAllow checks the channel's caps against the customer's ledger l
// (nil: no contacts).
func (p *Policy) capsAllow(l *contactLog, ch features.Channel, now int64) (bool, string) {
	if l != nil && ch < features.NumChannels {
		c := p.caps[ch]
		ts := l.ch[ch]
		if c.PerDay > 0 && countSince(ts, now-dayMs, now) >= c.PerDay {
			return false, DenyCapDay
		}
		if c.PerWeek > 0 && countSince(ts, now-weekMs, now) >= c.PerWeek {
			return false, DenyCapWeek
		}
	}
	return true, ""
}

// cooldownAllows checks the offer's cooldown against the customer's
// last contact per offer (a contactLog's offers).
func cooldownAllows(offers []offerContact, offer OfferPolicy, now int64) (bool, string) {
	if offer.Cooldown > 0 {
		for _, oc := range offers {
			if oc.offer == offer.ID {
				if now < oc.ts+offer.Cooldown.Milliseconds() {
					return false, DenyCooldown
				}
				break
			}
		}
	}
	return true, ""
}

// countSince counts timestamps in (from, to]; ts is ascending. Contacts
// after now (a replay running behind) do not count against now.
func countSince(ts []int64, from, to int64) int {
	n := 0
	for i := len(ts) - 1; i >= 0 && ts[i] > from; i-- {
		if ts[i] <= to {
			n++
		}
	}
	return n
}

// Record notes that offerID reached the customer on channel at now.
func (p *Policy) Record(customer features.Key, ch features.Channel, offerID string, now int64) {
	s := p.shard(customer)
	s.mu.Lock()
	p.recordLocked(s, customer, s.logs[customer], ch, offerID, now)
	s.mu.Unlock()
}

func (p *Policy) recordLocked(s *policyShard, customer features.Key, l *contactLog, ch features.Channel, offerID string, now int64) {
	if l == nil {
		l = &contactLog{}
		s.logs[customer] = l
	}
	if ch < features.NumChannels && p.need[ch] > 0 {
		l.ch[ch] = insertNewest(l.ch[ch], now, p.need[ch])
	}
	if offerID != "" {
		l.offers = noteOffer(l.offers, offerContact{offerID, now}, p.opts.MaxOffers)
	}
}

// insertNewest inserts t into ascending ts and keeps the newest n.
func insertNewest(ts []int64, t int64, n int) []int64 {
	i := sort.Search(len(ts), func(i int) bool { return ts[i] > t })
	ts = append(ts, 0)
	copy(ts[i+1:], ts[i:])
	ts[i] = t
	if len(ts) > n {
		ts = append(ts[:0], ts[len(ts)-n:]...)
	}
	return ts
}

// noteOffer records the newest contact time per offer, newest first,
// keeping at most n offers.
func noteOffer(offers []offerContact, c offerContact, n int) []offerContact {
	for i := range offers {
		if offers[i].offer == c.offer {
			if offers[i].ts >= c.ts {
				return offers
			}
			offers = append(offers[:i], offers[i+1:]...)
			break
		}
	}
	i := sort.Search(len(offers), func(i int) bool { return offers[i].ts < c.ts })
	offers = append(offers, offerContact{})
	copy(offers[i+1:], offers[i:])
	offers[i] = c
	if len(offers) > n {
		offers = offers[:n]
	}
	return offers
}

// Rekey moves everything the ledger holds for from onto to, for an
// identity merge: the merged customer's caps count both histories, as if
// the contacts had been made under one ID from the start, and each
// offer's cooldown runs from its later contact. Both customers' shards
// are held for the move, so a Claim for to sees both histories or
// neither, never a ledger half moved.
func (p *Policy) Rekey(from, to features.Key) {
	if from == to {
		return
	}
	i, j := p.shardIndex(from), p.shardIndex(to)
	sf, st := &p.shards[i], &p.shards[j]
	// Two shards are locked in index order, so that Rekeys running the
	// opposite ways cannot deadlock.
	first, second := sf, st
	if j < i {
		first, second = st, sf
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	lf := sf.logs[from]
	if lf == nil {
		return
	}
	delete(sf.logs, from)
	lt := st.logs[to]
	if lt == nil {
		st.logs[to] = lf
		return
	}
	for ch := range lf.ch {
		for _, t := range lf.ch[ch] {
			lt.ch[ch] = insertNewest(lt.ch[ch], t, p.need[ch])
		}
	}
	for _, oc := range lf.offers {
		lt.offers = noteOffer(lt.offers, oc, p.opts.MaxOffers)
	}
}

// shardIndex is the index of k's shard in p.shards.
func (p *Policy) shardIndex(k features.Key) uint64 {
	return xxhash.Sum64String(string(k)) & p.mask
}

// Forget drops a customer's ledger (an erase request).
func (p *Policy) Forget(customer features.Key) {
	s := p.shard(customer)
	s.mu.Lock()
	delete(s.logs, customer)
	s.mu.Unlock()
}

// Prune forgets contacts older than the ledger window before now, and
// customers left with none; it reports how many customers were dropped.
// Run it now and then (for example hourly) to bound memory.
func (p *Policy) Prune(now int64) int {
	cut := now - p.windowM
	dropped := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for k, l := range s.logs {
			if l.prune(cut) {
				delete(s.logs, k)
				dropped++
			}
		}
		s.mu.Unlock()
	}
	return dropped
}

// prune drops contacts at or before cut and reports whether none remain.
func (l *contactLog) prune(cut int64) bool {
	empty := true
	for ch := range l.ch {
		ts := l.ch[ch]
		i := sort.Search(len(ts), func(i int) bool { return ts[i] > cut })
		l.ch[ch] = append(ts[:0], ts[i:]...)
		if len(l.ch[ch]) > 0 {
			empty = false
		}
	}
	for i, oc := range l.offers {
		if oc.ts <= cut {
			l.offers = l.offers[:i]
			break
		}
	}
	return empty && len(l.offers) == 0
}

// Len reports how many customers the ledger holds.
func (p *Policy) Len() int {
	n := 0
	for i := range p.shards {
		p.shards[i].mu.Lock()
		n += len(p.shards[i].logs)
		p.shards[i].mu.Unlock()
	}
	return n
}

const policySnapshotVersion = 1

// MarshalBinary encodes the contact ledger for the state snapshot.
// Customers are written shard by shard in sorted order.
func (p *Policy) MarshalBinary() ([]byte, error) {
	w := snapWriter{buf: []byte{policySnapshotVersion}}
	var keys []features.Key
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		keys = keys[:0]
		for k := range s.logs {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		for _, k := range keys {
			l := s.logs[k]
			w.buf = append(w.buf, 1)
			w.str(string(k))
			for ch := range l.ch {
				if len(l.ch[ch]) == 0 {
					continue
				}
				w.uvarint(uint64(ch))
				w.uvarint(uint64(len(l.ch[ch])))
				for _, t := range l.ch[ch] {
					w.varint(t)
				}
			}
			w.uvarint(0) // channel 0 (unknown) is never kept: end of channels
			w.uvarint(uint64(len(l.offers)))
			for _, oc := range l.offers {
				w.str(oc.offer)
				w.varint(oc.ts)
			}
		}
		s.mu.Unlock()
	}
	w.buf = append(w.buf, 0)
	return w.buf, nil
}

// UnmarshalBinary replaces the ledger with a snapshot written by
// MarshalBinary. Records beyond what the current options keep (a lowered
// cap) are trimmed to the newest.
func (p *Policy) UnmarshalBinary(data []byte) error {
	r := snapReader{buf: data}
	if v := r.byte(); v != policySnapshotVersion {
		return fmt.Errorf("restoring contact ledger: version %d: %w", v, ErrCorruptState)
	}
	logs := make([]map[features.Key]*contactLog, len(p.shards))
	for i := range logs {
		logs[i] = make(map[features.Key]*contactLog)
	}
	for r.err == nil {
		if r.byte() != 1 {
			break
		}
		k := features.Key(r.str())
		l := &contactLog{}
		for r.err == nil {
			ch := r.uvarint()
			if ch == 0 {
				break
			}
			if ch >= uint64(features.NumChannels) {
				r.fail()
				break
			}
			n := r.count()
			for j := 0; j < n && r.err == nil; j++ {
				if need := p.need[ch]; need > 0 {
					l.ch[ch] = insertNewest(l.ch[ch], r.varint(), need)
				} else {
					r.varint()
				}
			}
		}
		n := r.count()
		for j := 0; j < n && r.err == nil; j++ {
			oc := offerContact{offer: r.str(), ts: r.varint()}
			l.offers = noteOffer(l.offers, oc, p.opts.MaxOffers)
		}
		logs[xxhash.Sum64String(string(k))&p.mask][k] = l
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("restoring contact ledger: %w", err)
	}
	for i := range p.shards {
		p.shards[i].mu.Lock()
		p.shards[i].logs = logs[i]
		p.shards[i].mu.Unlock()
	}
	return nil
}

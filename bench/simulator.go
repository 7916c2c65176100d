package bench

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"nbo/features"
)

// Options configure a Simulator. The zero value of every field means its
// default.
type Options struct {
	// Seed makes the whole simulation deterministic: the same options give
	// the same stores, catalog, customers and event stream. Default: 0 (a
	// seed like any other).
	Seed uint64
	// Customers is how many customers the retailer has. Memory is about 24
	// bytes per customer plus the journeys in progress. Default: 10000.
	// At most 1<<30.
	Customers int
	// Stores is how many physical stores there are, spread over nine cities
	// in three time zones. Default: 24.
	Stores int
	// SKUsPerCategory is the catalog depth per category. Default: 40.
	SKUsPerCategory int
	// Start is the beginning of simulated time. Default:
	// 2026-11-02T00:00:00+08:00 (a Monday).
	Start time.Time
	// Days is how long the simulation runs in simulated time; no event is
	// at or after Start+Days. Default: 28.
	Days int
	// MemberShare is the fraction of customers who are (or become)
	// members; the rest stay anonymous (a device ID). Default: 0.7.
	MemberShare float64
}

// DefaultStart is the default beginning of simulated time.
var DefaultStart = time.Date(2026, 11, 2, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Customers == 0 {
		o.Customers = 10_000
	}
	if o.Stores == 0 {
		o.Stores = 24
	}
	if o.SKUsPerCategory == 0 {
		o.SKUsPerCategory = 40
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Days == 0 {
		o.Days = 28
	}
	if o.MemberShare == 0 {
		o.MemberShare = 0.7
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Customers < 0 || o.Customers > 1<<30 {
		errs = append(errs, fmt.Errorf("bench: Customers is %d, want 1..%d", o.Customers, 1<<30))
	}
	if o.Stores < 0 || o.Stores > 10_000 {
		errs = append(errs, fmt.Errorf("bench: Stores is %d, want 1..10000", o.Stores))
	}
	if o.SKUsPerCategory < 0 || o.SKUsPerCategory > 100_000 {
		errs = append(errs, fmt.Errorf("bench: SKUsPerCategory is %d, want 1..100000", o.SKUsPerCategory))
	}
	if o.Days < 0 || o.Days > 3650 {
		errs = append(errs, fmt.Errorf("bench: Days is %d, want 1..3650", o.Days))
	}
	if o.MemberShare < 0 || o.MemberShare > 1 {
		errs = append(errs, fmt.Errorf("bench: MemberShare is %g, want 0..1", o.MemberShare))
	}
	if !o.Start.IsZero() && o.Start.Year() < 2000 {
		errs = append(errs, fmt.Errorf("bench: Start is %s, want 2000 or later (the event schema refuses older times)", o.Start))
	}
	return errors.Join(errs...)
}

// Simulator streams the events of a simulated OMO retailer in event-time
// order and answers, from each customer's hidden probabilities, how they
// respond to offers.
//
// The stream is generated lazily: each customer has one entry in a
// time-ordered heap (the start of their next journey, or the next event of
// the journey in progress); only journeys in progress hold their events.
// So memory stays bounded by the customer count times a few words, whatever
// the simulated duration.
//
// Next and Inject may be called from different goroutines; the read-only
// methods (TrueProbability, Customer, Stores, Catalog, Respond) may be
// called concurrently with everything.
type Simulator struct {
	opts    Options
	stores  []Store
	catalog [][]SKU
	skus    map[string]*SKU
	storeIx map[string]int
	tag     string // seed tag inside identifiers

	traitKey   uint64
	journeyKey uint64
	start, end int64 // Unix ms

	mu       sync.Mutex
	sched    []slot     // min-heap by (t, idx)
	journeys []*journey // legs in progress, indexed by slot.buf
	free     []int32    // free journey buffers
	injected eventHeap
	emitted  int64
	now      int64
}

// slot is one customer's place in the schedule.
type slot struct {
	t       int64  // next event time, or the next journey's earliest start
	idx     uint32 // customer index
	journey uint32 // journey number (0 = first)
	buf     int32  // leg in progress, -1 when none
	leg     uint8  // the journey's next or current leg
	exact   bool   // t is the exact start of the next leg
}

func (a *slot) less(b *slot) bool {
	return a.t < b.t || (a.t == b.t && a.idx < b.idx)
}

// journey holds the events of one customer's journey leg in progress.
type journey struct {
	events []features.Event
	pos    int
	more   bool // the journey has legs after this one
	// The customer's schedule traits, kept so the end of a journey does
	// not recompute the customer.
	meanGap    time.Duration
	lapseAfter int
}

// New builds the retailer and schedules every customer's first journey.
func New(opts Options) (*Simulator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("creating simulator: %w", err)
	}
	s := &Simulator{
		opts:       opts,
		tag:        strconv.FormatUint(mix64(opts.Seed)&0xffff, 36),
		traitKey:   mix64(opts.Seed ^ saltTraits<<56),
		journeyKey: mix64(opts.Seed ^ saltJourney<<56),
		start:      opts.Start.UnixMilli(),
	}
	s.end = s.start + int64(opts.Days)*86_400_000
	var err error
	if s.stores, err = buildStores(opts.Seed, opts.Stores); err != nil {
		return nil, fmt.Errorf("creating simulator: %w", err)
	}
	s.storeIx = make(map[string]int, len(s.stores))
	for i := range s.stores {
		s.storeIx[s.stores[i].ID] = i
	}
	s.catalog = buildCatalog(opts.Seed, opts.SKUsPerCategory)
	s.skus = make(map[string]*SKU, numCategories*opts.SKUsPerCategory)
	for k := range s.catalog {
		for j := range s.catalog[k] {
			s.skus[s.catalog[k][j].ID] = &s.catalog[k][j]
		}
	}
	s.sched = make([]slot, opts.Customers)
	for i := range s.sched {
		c := s.customer(i)
		// First journeys spread over the customer's usual gap, so the
		// stream starts in a steady state rather than with a burst.
		d := newDraw(s.journeyKey, uint64(i)<<32|0xffffffff)
		first := s.start + int64(d.float()*float64(min(c.MeanGap, time.Duration(opts.Days)*24*time.Hour).Milliseconds()))
		s.sched[i] = slot{t: first, idx: uint32(i), buf: -1}
	}
	for i := len(s.sched)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
	return s, nil
}

// Options returns the options the simulator runs with, defaults filled in.
func (s *Simulator) Options() Options { return s.opts }

// Stores returns the store list. The caller must not modify it.
func (s *Simulator) Stores() []Store { return s.stores }

// Catalog returns the SKUs per category, indexed like Categories. The
// caller must not modify it.
func (s *Simulator) Catalog() [][]SKU { return s.catalog }

// Customer returns the latent traits of customer idx (0 ≤ idx < Customers).
func (s *Simulator) Customer(idx int) Customer { return s.customer(idx) }

// CustomerIDs returns the identifiers a policy would address customer idx
// by: member ID (for members from the start) and device ID.
func (s *Simulator) CustomerIDs(idx int) features.IDs {
	c := s.customer(idx)
	ids := features.IDs{Device: s.deviceID(idx)}
	if c.Member && c.JoinJourney == 0 {
		ids.Member = s.memberID(idx)
	}
	return ids
}

// PartitionKey is the record key of a simulated customer's event: the
// customer's best identifier over their life ("member:…" for members,
// whose anonymous and pre-signup events too go under it, else
// "device:…"), so all of one customer's events share a partition and
// keep their order, whichever identifiers each event carries. Keyed by
// each event's own identifiers, a device-only event goes to another
// partition than the identify that links the device, and an ingest loop
// reading that partition first refuses the identify as too_late. "" for
// an event of no simulated customer.
func (s *Simulator) PartitionKey(ev *features.Event) string {
	idx, ok := s.CustomerIndex(ev.IDs)
	if !ok {
		return ""
	}
	if c := s.customer(idx); c.Member {
		return string(features.MakeKey(features.NSMember, s.memberID(idx)))
	}
	return string(features.MakeKey(features.NSDevice, s.deviceID(idx)))
}

// InStock reports whether a store has a SKU on its shelves: the store
// carries the category and the SKU is not one of the fifth it is out of.
func (s *Simulator) InStock(store, sku string) bool {
	i, ok := s.storeIx[store]
	k, ok2 := s.skus[sku]
	if !ok || !ok2 || s.stores[i].Stock[k.cat] == 0 {
		return false
	}
	return mix64(uint64(i)<<32^uint64(len(sku))^s.journeyKey^fnv(sku))%5 != 0
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Emitted is how many events Next has returned.
func (s *Simulator) Emitted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted
}

// Now is the event time (Unix ms) of the newest event Next returned, or
// the start of simulated time before the first.
func (s *Simulator) Now() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.emitted == 0 {
		return s.start
	}
	return s.now
}

// End is the end of simulated time (Unix ms, exclusive).
func (s *Simulator) End() int64 { return s.end }

// Next stores the next event in event-time order into ev and reports
// whether there was one; false means simulated time is over. The
// simulator never modifies an event's strings or Attrs map after it is
// returned, so ev may be kept; Attrs maps may be shared between events, so
// the caller must not modify them either.
func (s *Simulator) Next(ev *features.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	injected, ok := s.head()
	switch {
	case !ok:
		return false
	case injected:
		*ev = s.injected.pop()
		s.emit(ev)
		return true
	}
	top := &s.sched[0]
	j := s.journeys[top.buf]
	*ev = j.events[j.pos]
	j.pos++
	if j.pos == len(j.events) {
		more := j.more
		c := Customer{MeanGap: j.meanGap, LapseAfter: j.lapseAfter}
		s.release(top.buf)
		top.buf = -1
		if more {
			// The next leg starts from where this one ended.
			top.leg++
			top.t = ev.TS
		} else {
			top.t = s.nextJourneyStart(&c, int(top.journey), int(top.idx), ev.TS)
			top.journey++
			top.leg = 0
		}
	} else {
		top.t = j.events[j.pos].TS
	}
	s.down(0)
	s.emit(ev)
	return true
}

// NextTime is the event time (Unix ms) of the event Next would return
// now; false means simulated time is over. An event injected meanwhile
// may come out first. A live feed peeks with it, so that it can wait for
// a simulated event that lies in the future without holding it while
// feedback injected in the meantime is due.
func (s *Simulator) NextTime() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	injected, ok := s.head()
	switch {
	case !ok:
		return 0, false
	case injected:
		return s.injected[0].TS, true
	}
	return s.sched[0].t, true
}

// head readies the next event: the oldest injected one (injected true),
// or the schedule's top with its journey leg generated and sched[0].t
// the time of its next event. ok is false when simulated time is over.
// s.mu is held.
func (s *Simulator) head() (injected, ok bool) {
	for {
		if len(s.sched) == 0 && len(s.injected) == 0 {
			return false, false
		}
		if len(s.injected) > 0 && (len(s.sched) == 0 || s.injected[0].TS <= s.sched[0].t) {
			return true, true
		}
		top := &s.sched[0]
		if top.t >= s.end {
			s.release(top.buf)
			s.popSched()
			continue
		}
		if top.buf < 0 {
			s.startJourney(top)
			s.down(0)
			continue
		}
		return false, true
	}
}

func (s *Simulator) emit(ev *features.Event) {
	s.emitted++
	if ev.TS > s.now {
		s.now = ev.TS
	}
}

// Inject adds events (feedback from Respond, typically) to the stream:
// they come out of Next in event-time order with the simulated events. An
// injected event older than the stream's current time comes out next.
func (s *Simulator) Inject(events ...features.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		s.injected.push(ev)
	}
}

// holdAhead is how far ahead of the schedule a generated leg may start
// and still be kept in memory; a later one is generated again when due.
// Longer saves generating twice, shorter saves memory.
const holdAhead = 30 * 60 * 1000

// startJourney generates the customer's next journey leg.
func (s *Simulator) startJourney(sl *slot) {
	c := s.customer(int(sl.idx))
	b := s.acquire()
	j := s.journeys[b]
	j.meanGap, j.lapseAfter = c.MeanGap, c.LapseAfter
	for {
		j.events, j.more = s.generate(&c, int(sl.journey), int(sl.leg), sl.t, sl.exact, j.events[:0])
		j.pos = 0
		wasExact := sl.exact
		sl.exact = false
		if len(j.events) > 0 {
			if first := j.events[0].TS; first > sl.t+holdAhead && !wasExact {
				// The leg starts later (tomorrow evening, at the weekend):
				// do not hold its events until then; produce it again,
				// exactly as now, when it is due.
				s.release(b)
				sl.t, sl.exact = first, true
				return
			}
			sl.buf = b
			sl.t = j.events[0].TS
			return
		}
		if !j.more || sl.leg == 255 {
			break
		}
		sl.leg++ // an empty leg: go on to the next
	}
	// Nothing happened (cannot happen with the current journey mix, but a
	// zero-event journey must not stall the schedule).
	s.release(b)
	sl.t = s.nextJourneyStart(&c, int(sl.journey), int(sl.idx), sl.t+1)
	sl.journey++
	sl.leg = 0
}

// nextJourneyStart is the earliest start of the customer's next journey
// after one that ended at last: an exponential gap around their mean, or
// months for a customer who lapses now.
func (s *Simulator) nextJourneyStart(c *Customer, journey, idx int, last int64) int64 {
	d := newDraw(s.journeyKey^0x5bd1e995, uint64(idx)<<32|uint64(journey))
	if c.LapseAfter > 0 && journey+1 == c.LapseAfter {
		return last + int64(d.between(60, 120))*86_400_000
	}
	gap := int64(d.exp() * float64(c.MeanGap.Milliseconds()))
	return last + max(gap, 30*60*1000)
}

func (s *Simulator) acquire() int32 {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	s.journeys = append(s.journeys, &journey{events: make([]features.Event, 0, 16)})
	return int32(len(s.journeys) - 1)
}

func (s *Simulator) release(b int32) {
	if b < 0 {
		return
	}
	j := s.journeys[b]
	// Drop references so the events' strings can be collected, but keep
	// the backing array.
	clear(j.events)
	j.events = j.events[:0]
	s.free = append(s.free, b)
}

func (s *Simulator) popSched() {
	n := len(s.sched) - 1
	s.sched[0] = s.sched[n]
	s.sched = s.sched[:n]
	if n > 0 {
		s.down(0)
	}
}

func (s *Simulator) down(i int) {
	h := s.sched
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].less(&h[l]) {
			m = r
		}
		if !h[m].less(&h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// eventHeap is a min-heap of injected events by (TS, ID).
type eventHeap []features.Event

func evLess(a, b *features.Event) bool {
	return a.TS < b.TS || (a.TS == b.TS && a.ID < b.ID)
}

func (h *eventHeap) push(ev features.Event) {
	*h = append(*h, ev)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !evLess(&a[i], &a[p]) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *eventHeap) pop() features.Event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = features.Event{}
	a = a[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && evLess(&a[r], &a[l]) {
			m = r
		}
		if !evLess(&a[m], &a[i]) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

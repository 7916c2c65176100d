package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"nbo/engine/cache"
	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// Propensity gives P(response) for a customer and an offer from the
// active model. ok is false when no model is loaded (the offer's prior is
// used instead). It must be safe for concurrent use and cheap: it runs
// once per candidate offer on the request path.
type Propensity interface {
	Propensity(v *features.View, o *scenarios.Offer, ch features.Channel) (p float64, version string, ok bool)
}

// PropensityFunc adapts a function to Propensity.
type PropensityFunc func(v *features.View, o *scenarios.Offer, ch features.Channel) (float64, string, bool)

func (f PropensityFunc) Propensity(v *features.View, o *scenarios.Offer, ch features.Channel) (float64, string, bool) {
	return f(v, o, ch)
}

// Explorer is online learning: per arm (offer × segment) a posterior over
// the response rate, sampled for Thompson-sampling exploration and
// updated from outcomes as they stream in.
type Explorer interface {
	// Sample draws a response rate for the arm (offer, segment); prior is
	// the model's or the offer's propensity, the posterior's starting mean.
	Sample(offer, segment string, prior float64, rng *rand.Rand) float64
	// Update records one trial of the arm and whether it succeeded.
	Update(offer, segment string, success bool)
}

// Publisher sends a record to a topic (decisions, triggers). Publish must
// not block the caller for long; implementations buffer and send.
type Publisher interface {
	Publish(key, value []byte)
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(key, value []byte)

func (f PublisherFunc) Publish(key, value []byte) { f(key, value) }

// Options configure an Engine.
type Options struct {
	Store     *features.Store         // required
	Scenarios func() *scenarios.Set   // required: the active scenario set
	Budgets   *Budgets                // required
	Policy    *Policy                 // required
	Cache     *cache.Cache[*Decision] // optional decision cache
	// Holdout assigns the control group. Default: 5% with the default salt.
	Holdout Holdout
	// Propensity is the model registry. Optional: priors without it.
	Propensity Propensity
	// Explorer is the Thompson sampler. Optional: no exploration.
	Explorer Explorer
	// Stats records decisions and outcomes for attribution. Optional.
	Stats *Stats
	// Scores are the named customer scores rules read with score(name),
	// such as "purchase_15d". Optional.
	Scores Scores
	// Decisions receives every decision (nbo.decisions). Optional.
	Decisions Publisher
	// Triggers receives push triggers (nbo.triggers). Optional: without
	// it no triggers are evaluated.
	Triggers Publisher
	// TriggerDedup remembers published trigger IDs. Default: 7 days.
	TriggerDedup *TriggerDedup
	// ReservationTTL is how long a served offer holds its budget unit
	// before it returns unredeemed (capped by the offer's validity).
	// Default: 72h.
	ReservationTTL time.Duration
	// TriggerMaxAge: events older than this (against the wall clock) are
	// applied but trigger no push, so catching up with a backlog does not
	// flood customers. Default: 1h.
	TriggerMaxAge time.Duration
	// Location is the time zone of hour-of-day rules, whatever the
	// store (a store's own zone sets only its quiet hours: Policy).
	// Default: Asia/Shanghai.
	Location *time.Location
	// Clock is the wall clock. Default: time.Now.
	Clock func() time.Time
	// Seed makes decisions reproducible: they then draw from one generator
	// seeded with it, one decision at a time, and decision IDs derive from
	// it, so the same requests in the same order repeat exactly (replays,
	// tests). It
	// serialises Decide; leave it 0 in production. Default: 0, seeded at
	// random per scratch space.
	Seed uint64
	// Views reads a customer's features for a decision. Default: the
	// Store's ViewAt. Benchmarks swap in other feature stores (Redis) to
	// compare the same pipeline over them.
	Views func(ids *features.IDs, now int64, v *features.View) bool
}

// Engine decides. It is safe for concurrent use; OnApplied is called by
// the ingest loop's single goroutine.
type Engine struct {
	opts  Options
	pool  sync.Pool
	seq   atomic.Uint64
	node  uint64
	stats struct {
		decisions, fallbacks, empty, holdouts, triggers, cacheHits atomic.Int64
	}
	seeded    *rand.Rand // with Options.Seed: the one generator, under seedMu
	seedMu    sync.Mutex
	trigState *decideState // used only by OnApplied's goroutine
	wakes     wakeQueue    // used only by OnApplied's goroutine

	// Decisions served to requests reach Stats through records, so the
	// request path does not wait for its lock (nil without Stats).
	records   *decisionRecorder
	closeOnce sync.Once

	// rates are the bandit's learnt rates per offer (offerRates).
	rates   atomic.Pointer[learntRates]
	ratesMu sync.Mutex
}

// decideState is the per-request scratch space, pooled.
type decideState struct {
	set  *scenarios.Set // the scenario set of the decision
	view features.View
	// personal: the customer's behaviour may choose the offers (see
	// Personalized); set by the caller after begin.
	personal bool
	props    []scenarios.Proposal
	cands    []candidate
	rng      *rand.Rand
	sreq     scenarios.Request
	// segment is the customer's bandit segment on segmentCh (see
	// segment), worked out on first use (seg): "" until then.
	segment   string
	segmentCh features.Channel
	// modelVersion is the propensity model's version when consider scored
	// a candidate with it, "" otherwise.
	modelVersion string
	// gate is the customer's contact ledger for the decision's channel,
	// read at most once per decision (openGate); refused[offer index] is
	// whether the offer cannot be served: ineligible, or refused by the
	// gate (sreq.Refused); open is how many offers are not refused.
	gate    contactGate
	refused []bool
	open    int
	// why is the first contact-policy reason openGate met (a Deny code),
	// and overBudget whether arbitrate dropped a candidate for its budget:
	// what an empty decision says (Decision.EmptyReason).
	why        string
	overBudget bool
	// histAt[offer index] is 1 + the index of the offer's entry in the
	// customer's offer history (View.Offers), 0 for none; own sums that
	// history per offer type (both by openGate, in one pass).
	histAt []int32
	own    [scenarios.NumOfferTypes]responses
	// Customer scores for rules: the vector is computed at most once.
	scores    Scores
	loc       *time.Location
	custVec   []float64
	custVecOK bool
	scoreFn   func(string) (float64, bool)
	// best[offer index] is 1 + the candidate index of the offer in cands,
	// valid when stamp[offer index] == gen: one candidate per offer
	// without clearing or hashing per request.
	best  []int32
	stamp []uint32
	gen   uint32
}

// ranked is how many of the best candidates within budget arbitrate orders at
// the head of the list; serve takes offers from them only (one per
// category, up to the request's limit), so the rest is never sorted.
const ranked = 8

type candidate struct {
	prop  int // index into decideState.props
	offer *scenarios.Offer
	store string
	parts ScoreParts
	// learnt is the bandit's posterior of the offer across every segment
	// (expect), when the explorer is a BanditExplorer.
	learnt models.Beta
}

// New returns an Engine.
func New(opts Options) (*Engine, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("engine: Store is required"))
	}
	if opts.Scenarios == nil {
		errs = append(errs, errors.New("engine: Scenarios is required"))
	}
	if opts.Budgets == nil {
		errs = append(errs, errors.New("engine: Budgets is required"))
	}
	if opts.Policy == nil {
		errs = append(errs, errors.New("engine: Policy is required"))
	}
	opts.Holdout.EnsureDefaults()
	if err := opts.Holdout.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.ReservationTTL == 0 {
		opts.ReservationTTL = 72 * time.Hour
	}
	if opts.TriggerMaxAge == 0 {
		opts.TriggerMaxAge = time.Hour
	}
	if opts.TriggerDedup == nil {
		opts.TriggerDedup = NewTriggerDedup(7*24*time.Hour, 1<<20)
	}
	if opts.Location == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			loc = time.FixedZone("CST", 8*3600)
		}
		opts.Location = loc
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Views == nil {
		opts.Views = opts.Store.ViewAt
	}
	e := &Engine{opts: opts, node: uint64(time.Now().UnixNano())}
	if opts.Seed != 0 {
		e.seeded = rand.New(rand.NewPCG(opts.Seed, opts.Seed))
		e.node = opts.Seed // decision IDs repeat too
	}
	e.pool.New = func() any {
		st := &decideState{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), scores: opts.Scores, loc: opts.Location}
		st.scoreFn = st.score // one closure per scratch space, not per request
		return st
	}
	e.trigState = e.pool.New().(*decideState)
	if opts.Stats != nil {
		e.records = newDecisionRecorder(opts.Stats, recordEvery)
	}
	return e, nil
}

// Close stops the engine's background work, recording the decisions still
// queued for attribution. Decide must not be called after Close.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		if e.records != nil {
			e.records.close()
		}
	})
}

// requestKey identifies a request's shape for the decision cache.
func requestKey(req *DecideRequest) string {
	b := make([]byte, 0, 64)
	b = append(b, req.Channel.String()...)
	b = append(b, '|')
	b = append(b, req.Placement...)
	b = append(b, '|')
	b = append(b, req.Store...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(req.Limit), 10)
	b = append(b, '|')
	b = append(b, req.Locale...)
	if len(req.Context) > 0 {
		keys := make([]string, 0, len(req.Context))
		for k := range req.Context {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = append(b, '|')
			b = append(b, k...)
			b = append(b, '=')
			b = append(b, req.Context[k]...)
		}
	}
	return string(b)
}

// newDecisionID returns a unique, roughly time-ordered decision ID:
// "d-", the time in base 36, "-" and a hash of the node and a sequence
// number in base 36. It allocates only the returned string.
func (e *Engine) newDecisionID(now int64) string {
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], e.node^e.seq.Add(1))
	var buf [32]byte // "d-" + ≤13 + "-" + ≤10 characters
	b := append(buf[:0], "d-"...)
	b = appendBase36(b, uint64(now))
	b = append(b, '-')
	b = appendBase36(b, xxhash.Sum64(seq[:])>>16)
	return string(b)
}

// appendBase36 is strconv.AppendUint(b, u, 36). strconv divides by a
// base it takes as a variable, one hardware division per digit (19 per
// decision ID); by the constant 36 the compiler multiplies instead.
func appendBase36(b []byte, u uint64) []byte {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var a [13]byte // 36^13 > 2^64
	i := len(a)
	for u >= 36 {
		q := u / 36
		i--
		a[i] = digits[u-q*36]
		u = q
	}
	i--
	a[i] = digits[u]
	return append(b, a[i:]...)
}

// decisionBox holds a Decision and room for its offers in one allocation
// for requests within the default limit (nearly all of them).
type decisionBox struct {
	d      Decision
	offers [DefaultLimit]OfferResult
}

// decisionBox1 is decisionBox for a decision with one candidate (a
// customer at the cap has transactional offers only): under 512 bytes,
// it is allocated without the malloc header decisionBox needs.
type decisionBox1 struct {
	d      Decision
	offers [1]OfferResult
}

// newDecision returns an empty decision with room for n offers (serve
// never takes more than ranked). With none it allocates the Decision
// alone: a decision at a contact cap, most of those the API comparison
// makes, has no candidate, and the box is four times its size (its
// allocation was a quarter of such a decision's time).
func newDecision(n int) *Decision {
	switch n = min(n, ranked); {
	case n <= 0:
		return &Decision{Offers: []OfferResult{}} // "offers":[], not null; no allocation for the slice
	case n == 1:
		b := &decisionBox1{}
		b.d.Offers = b.offers[:0:1]
		return &b.d
	case n > DefaultLimit:
		return &Decision{Offers: make([]OfferResult, 0, n)}
	}
	b := &decisionBox{}
	b.d.Offers = b.offers[:0:n]
	return &b.d
}

func localeIndex(l Locale) scenarios.Locale {
	if l == LocaleEn {
		return scenarios.En
	}
	return scenarios.ZhCN
}

// Decide chooses the next best offers for req. It never fails for an
// unknown customer (the fallback offers answer); it returns an error only
// when the engine cannot decide at all (no scenario set loaded).
func (e *Engine) Decide(ctx context.Context, req *DecideRequest) (*Decision, error) {
	set := e.opts.Scenarios()
	if set == nil {
		return nil, errors.New("engine: no scenario set is loaded")
	}
	if req.Limit <= 0 {
		req.Limit = DefaultLimit
	}
	if req.Locale == "" {
		req.Locale = DefaultLocale
	}
	nowT := e.opts.Clock()
	if req.Now != nil {
		nowT = *req.Now
	}
	now := nowT.UnixMilli()
	st := e.pool.Get().(*decideState)
	defer e.pool.Put(st)
	if e.seeded != nil {
		e.seedMu.Lock()
		defer e.seedMu.Unlock()
		own := st.rng
		st.rng = e.seeded
		defer func() { st.rng = own }()
	}
	v := &st.view
	known := e.opts.Views(&req.IDs, now, v)
	var rkey string
	if known && e.opts.Cache != nil && req.Now == nil {
		rkey = requestKey(req)
		if d, ok := e.opts.Cache.Get(v.Customer, v.Version, rkey, now); ok {
			e.stats.cacheHits.Add(1)
			return d, nil
		}
	}
	group := GroupTreatment
	if known && e.opts.Holdout.InHoldout(v.Customer) {
		group = GroupHoldout
	}
	st.sreq = scenarios.Request{Channel: req.Channel, Placement: req.Placement, Store: req.Store, Now: now, Trigger: scenarios.OnRequest, Loc: e.opts.Location, Score: st.scoreFn}
	// The decision is allocated once arbitrate has said how many offers
	// serve can take (newDecision).
	st.begin(set, v, req.Channel)
	st.personal = known && Personalized(v, req.Channel)
	st.openGate(e.opts.Policy, set)
	st.props = st.props[:0]
	// With every offer refused (a customer at the cap whose transactional
	// offers are on their cooldowns: most decisions of the API comparison)
	// no scenario could propose anything: Evaluate is not even asked. A
	// customer who withdrew personalization gets what anyone would: no
	// scenario reads their behaviour, and the untargeted offers are
	// ranked by what all customers did with them (below).
	if group == GroupTreatment && st.personal && st.open > 0 {
		st.props = set.Evaluate(v, &st.sreq, st.props)
		for i := range st.props {
			e.consider(st, i, req.Channel)
		}
	}
	// The untargeted offers of the catalog compete too, without a
	// scenario's lever: a customer no scenario fits (or the holdout)
	// still gets the best generic offer, and learning covers them. The
	// other offers go only where their scenarios' conditions put them.
	// An offer that a scenario proposed keeps its targeted candidate, so
	// its untargeted proposal is not even made (consider would drop it;
	// writing the proposals of a 100-offer catalog cost ~1 µs per
	// decision).
	first := len(st.props)
	for _, o := range set.Offers {
		if !o.Untargeted || st.stamp[o.Index] == st.gen || st.sreq.Refused[o.Index] {
			continue
		}
		st.props = append(st.props, scenarios.Proposal{Offer: o})
	}
	for i := first; i < len(st.props); i++ {
		e.consider(st, i, req.Channel)
	}
	if group == GroupTreatment && !st.personal {
		// What all customers did with each offer, not a draw by segment.
		e.expect(st)
	}
	e.arbitrate(st, group == GroupTreatment && st.personal)
	d := newDecision(min(req.Limit, len(st.cands)))
	d.DecisionID, d.Customer, d.Group = e.newDecisionID(now), string(v.Customer), group
	d.ModelVersion = st.modelVersion
	if len(st.cands) > 0 || e.opts.Decisions != nil {
		// What reads d.segment: the records of served offers
		// (recordServed) and the decision log (encodeDecision).
		d.segment = st.seg()
	}
	if v.NewestTS > 0 {
		d.NewestEventTS = time.UnixMilli(v.NewestTS).UTC()
	}
	e.serve(st, set, req, v, d, now)
	e.stats.decisions.Add(1)
	if d.Fallback {
		e.stats.fallbacks.Add(1)
	}
	if len(d.Offers) == 0 {
		d.EmptyReason = st.emptyReason()
		e.stats.empty.Add(1)
	}
	if group == GroupHoldout {
		e.stats.holdouts.Add(1)
	}
	if e.opts.Cache != nil && rkey != "" {
		e.opts.Cache.Set(v.Customer, v.Version, rkey, d, now)
	}
	return d, nil
}

// Why a decision served nothing, besides the contact-policy codes (Deny*).
const (
	EmptyBudget      = "budget"       // every offer that could be served was out of budget
	EmptyNotEligible = "not_eligible" // no offer is valid, shown on the channel, at the store and consented to
)

// emptyReason says why the decision served nothing: the first
// contact-policy refusal (a channel cap, quiet hours, a cooldown, …),
// else a budget that ran out, else that no offer was eligible.
func (st *decideState) emptyReason() string {
	switch {
	case st.why != "":
		return st.why
	case st.overBudget:
		return EmptyBudget
	}
	return EmptyNotEligible
}

// seg returns the customer's bandit segment (st.view on the channel
// begin was given), working it out on the first call. A decision that
// has no candidate, in the treatment group and without a decision log,
// reads it nowhere: most decisions of the API comparison, for which the
// scan of the customer's interests was 3% of Decide's time.
func (st *decideState) seg() string {
	if st.segment == "" { // segment never names one ""
		st.segment = segment(&st.view, st.segmentCh)
	}
	return st.segment
}

// begin readies the per-request scratch space.
func (st *decideState) begin(set *scenarios.Set, v *features.View, ch features.Channel) {
	st.set = set
	st.cands = st.cands[:0]
	st.custVecOK = false
	st.segment, st.segmentCh, st.modelVersion = "", ch, ""
	if n := len(set.Offers); len(st.best) < n {
		st.best = make([]int32, n)
		st.stamp = make([]uint32, n)
	}
	st.gen++
	if st.gen == 0 { // wrapped: stamps from 2^32 requests ago would match
		clear(st.stamp)
		st.gen = 1
	}
}

// openGate opens the contact gate for the decision's customer, channel
// and time (st.view and st.sreq are set) and decides, before any scenario
// is evaluated, which offers of the set can be served: those eligible
// (validity, channel, store, consent) that, for a known customer, the
// gate allows — it holds the customer's ledger, so each answer is a scan
// of a few contacts. The others are not proposed, a scenario with none
// left is not evaluated, and nothing is drawn for them: a customer at the
// channel's cap can have transactional offers only, one asked often has
// most offers on their cooldowns, and one who declined marketing none of
// the promotions.
func (st *decideState) openGate(p *Policy, set *scenarios.Set) {
	v := &st.view
	st.gate.reset(p, v.Customer, st.sreq.Channel, st.sreq.Now)
	n := len(set.Offers)
	st.refused = slices.Grow(st.refused[:0], n)[:n]
	store := scenarios.FulfilmentStore(v, &st.sreq)
	atCap := v.Known && st.gate.atCap()
	st.why, st.overBudget = "", false
	if atCap {
		st.why = st.gate.capsWhy
	}
	st.own = [scenarios.NumOfferTypes]responses{}
	st.open = 0
	if v.Known {
		// One pass over the customer's offer history, one catalog lookup
		// per entry: each offer's own entry (for the gate, rather than a
		// scan of the history per offer) and the responses per offer type
		// (for drawAll's shrinkage towards the customer's own).
		st.histAt = slices.Grow(st.histAt[:0], n)[:n]
		clear(st.histAt)
		for i := range v.Offers {
			h := &v.Offers[i]
			o := set.Offer(h.Offer)
			if o == nil {
				continue
			}
			if st.histAt[o.Index] == 0 {
				st.histAt[o.Index] = int32(i + 1)
			}
			if h.Impressions > 0 {
				st.own[o.Type].successes += float64(h.Clicks + h.Redemptions)
				st.own[o.Type].trials += float64(h.Impressions)
			}
		}
	}
	for _, o := range set.Offers {
		refused := atCap && !o.Transactional || o.EligibleFor(v, &st.sreq) != scenarios.Eligible
		if !refused && v.Known {
			var own []features.OfferStats
			if i := st.histAt[o.Index]; i > 0 {
				own = v.Offers[i-1 : i]
			}
			ok, why := st.gate.allow(offerPolicy(o), store, own)
			refused = !ok
			if !ok && st.why == "" {
				st.why = why
			}
		}
		st.refused[o.Index] = refused
		if !refused {
			st.open++
		}
	}
	st.sreq.Refused = st.refused
}

// offerPolicy is what contact policy enforces for an offer. The offer's
// per-customer cap (count per period) is enforced as a minimum spacing of
// period/count between contacts, on top of its cooldown: exact for the
// common count of 1, and never more than count contacts in any period.
func offerPolicy(o *scenarios.Offer) OfferPolicy {
	p := OfferPolicy{ID: o.ID, Cooldown: o.Cooldown, Transactional: o.Transactional}
	if o.Cap.Count > 0 && o.Cap.Period > 0 {
		p.Cooldown = max(p.Cooldown, o.Cap.Period/time.Duration(o.Cap.Count))
	}
	return p
}

// reservationTTL is how long an offer served at now holds its budget unit
// (and how long its coupon is valid): ReservationTTL, or less when the
// offer ends sooner.
func (e *Engine) reservationTTL(o *scenarios.Offer, now int64) time.Duration {
	ttl := e.opts.ReservationTTL
	if o.Valid.To > 0 {
		ttl = min(ttl, time.Duration(o.Valid.To-now)*time.Millisecond)
	}
	return ttl
}

// budgeted reports whether an offer has a budget to reserve from. Offers
// without one take no reservation: holding one per served offer for days
// would cost memory for nothing.
func budgeted(o *scenarios.Offer) bool { return o.Budget.Total > 0 || o.Budget.PerStore > 0 }

// reserve takes a budget unit for the candidate's offer, if it has a budget.
func (e *Engine) reserve(c *candidate, decisionID string, now int64, ttl time.Duration) bool {
	if !budgeted(c.offer) {
		return true
	}
	_, ok := e.opts.Budgets.Reserve(c.offer.ID, c.store, decisionID, now, ttl)
	return ok
}

func (e *Engine) release(c *candidate, decisionID string) {
	if budgeted(c.offer) {
		_ = e.opts.Budgets.Release(c.offer.ID, decisionID)
	}
}

// inBudget reports whether the candidate's offer has budget left at its
// store (Budgets is shared state, so it is read only for candidates that
// reach the top, not for every proposal).
func (e *Engine) inBudget(st *decideState, c *candidate) bool {
	return !budgeted(c.offer) || e.opts.Budgets.Available(c.offer.ID, c.store, st.sreq.Now)
}

// serve reserves budget and contact for the best candidates, up to the
// limit, and fills the decision.
func (e *Engine) serve(st *decideState, set *scenarios.Set, req *DecideRequest, v *features.View, d *Decision, now int64) {
	loc := localeIndex(req.Locale)
	var cats [MaxLimit]string
	ncats := 0
	for i := range st.cands[:min(len(st.cands), ranked)] {
		if len(d.Offers) >= req.Limit {
			break
		}
		c := &st.cands[i]
		prop := &st.props[c.prop]
		cat := c.offer.Category
		if cat == "" {
			cat = c.offer.ID
		}
		if slices.Contains(cats[:ncats], cat) {
			continue
		}
		ttl := e.reservationTTL(c.offer, now)
		if !e.reserve(c, d.DecisionID, now, ttl) {
			continue
		}
		if v.Known {
			if ok, _ := e.opts.Policy.Claim(v.Customer, req.Channel, offerPolicy(c.offer), c.store, v.Offers, now); !ok {
				e.release(c, d.DecisionID)
				continue
			}
		}
		cats[ncats] = cat
		ncats++
		coupon := couponKeyOf(d.DecisionID, c.offer.ID)
		r := OfferResult{
			OfferID: c.offer.ID, Type: c.offer.Type.String(), CouponCode: coupon.String(),
			Title: c.offer.Title[loc], Text: c.offer.Text[loc],
			Value: c.offer.Value, Expiry: offerExpiry(now, ttl), FulfilmentStore: fulfilmentStore(c.offer, c.store),
			Score: c.parts, store: c.store,
		}
		if prop.Scenario != nil {
			r.Scenario = prop.Scenario.ID
			r.ReasonCode = prop.Scenario.ID
			r.Reason = set.Reason(prop, v, &st.sreq, loc)
		} else {
			// Similar customers chose it only where the explorer learns by
			// segment, for a known customer in the treatment group.
			r.ReasonCode, r.Reason = untargetedReason(st, d.Group == GroupTreatment && st.personal && e.opts.Explorer != nil, loc)
		}
		d.Offers = append(d.Offers, r)
		if e.opts.Explorer != nil && d.Group == GroupTreatment {
			e.opts.Explorer.Update(c.offer.ID, st.seg(), false) // a trial; a response adds the success
		}
		e.recordServed(d, &r, c, coupon, req.Channel, v.Customer, now, false)
	}
	d.Fallback = true // unless a scenario's offer was served
	for i := range d.Offers {
		d.Fallback = d.Fallback && d.Offers[i].Scenario == ""
	}
	if len(d.Offers) == 0 && d.Group == GroupHoldout {
		// The control group is recorded even when it gets nothing.
		e.recordServed(d, nil, nil, couponKey{}, req.Channel, v.Customer, now, false)
	}
	if e.opts.Decisions != nil {
		var vecs [][]float64
		var cust []float64
		if v.Known {
			cust = CustomerVector(nil, v, e.opts.Location)
			vecs = make([][]float64, 0, len(d.Offers))
			for _, r := range d.Offers {
				if o := set.Offer(r.OfferID); o != nil {
					vecs = append(vecs, FeatureVector(make([]float64, 0, len(PropensitySchema.Features)), v, o, req.Channel, e.opts.Location))
				}
			}
		}
		if b, err := encodeDecision(d, req, now, vecs, cust); err == nil {
			e.opts.Decisions.Publish([]byte(d.Customer), b)
		}
	}
}

// score helpers shared by triggers.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

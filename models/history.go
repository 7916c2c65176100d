package models

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"nbo/features"
)

// Training from the engine's own history. The engine logs every decision
// (topic nbo.decisions) with the feature vectors it scored, as they were at
// decision time; outcomes (clicks, redemptions, purchases) arrive later as
// events (topic nbo.events). The builders here join the two: each row is a
// logged vector, never one rebuilt later, and its label is an outcome in
// the attribution window after the decision. Decisions whose window has not
// closed by the newest event in the history are censored (left out): their
// label is not known yet.

// Outcome kinds a propensity model can learn.
const (
	OutcomeRedeem = "redeem" // a coupon_redeem of the offer
	OutcomeClick  = "click"  // an offer_click on the offer
)

// PurchaseLabel is the label (and customer-score name) of the purchase
// intent model: P(order or pos_purchase within the purchase window).
const PurchaseLabel = "purchase_15d"

// HistoryOptions configure the history dataset builders.
type HistoryOptions struct {
	// Outcome is what labels an offer row positive: OutcomeRedeem or
	// OutcomeClick. Default: OutcomeRedeem.
	Outcome string
	// Window is the attribution window after a decision: an outcome at a
	// time in (decision, decision+Window] labels it. Default: 7 days.
	Window time.Duration
	// PurchaseWindow is the purchase-intent window. Default: 15 days.
	PurchaseWindow time.Duration
	// Schema is the layout of the logged offer vectors (the engine's
	// PropensitySchema); rows of records logged under another schema hash,
	// or of another length, are skipped and counted.
	Schema Schema
	// CustomerSchema is the layout of the logged customer vectors (the
	// engine's CustomerSchema), for the purchase-intent dataset.
	CustomerSchema Schema
	// CouponCode maps (decision ID, offer ID) to the coupon code printed
	// for it (the engine's CouponCode), so a till redemption carrying only
	// the code labels its decision. Nil: such redemptions are not
	// attributed.
	CouponCode func(decisionID, offerID string) string
}

// EnsureDefaults fills zero fields with their defaults.
func (o *HistoryOptions) EnsureDefaults() {
	if o.Outcome == "" {
		o.Outcome = OutcomeRedeem
	}
	if o.Window == 0 {
		o.Window = 7 * 24 * time.Hour
	}
	if o.PurchaseWindow == 0 {
		o.PurchaseWindow = 15 * 24 * time.Hour
	}
}

// Validate reports every problem at once.
func (o HistoryOptions) Validate() error {
	var errs []error
	switch o.Outcome {
	case OutcomeRedeem, OutcomeClick:
	default:
		errs = append(errs, fmt.Errorf("models: history: unknown outcome %q (use redeem or click)", o.Outcome))
	}
	if o.Window <= 0 || o.PurchaseWindow <= 0 {
		errs = append(errs, fmt.Errorf("models: history: windows must be positive (window %v, purchase window %v)", o.Window, o.PurchaseWindow))
	}
	return errors.Join(errs...)
}

// LoggedOffer is one offer of a logged decision.
type LoggedOffer struct {
	OfferID  string `json:"offer_id"`
	Scenario string `json:"scenario,omitempty"`
	// Propensity is the response propensity the engine scored (model or
	// prior), not the probability that it chose the offer.
	Propensity float64 `json:"propensity"`
	// Explore is the exploration (Thompson) sample added to the score.
	Explore float64 `json:"explore"`
	// Score is the total score the offers were ranked by.
	Score    float64   `json:"score"`
	Features []float64 `json:"features,omitempty"`
}

// LoggedDecision is one record of the engine's decision log.
type LoggedDecision struct {
	DecisionID       string        `json:"decision_id"`
	Customer         string        `json:"customer"`
	Channel          string        `json:"channel"`
	Placement        string        `json:"placement,omitempty"`
	Store            string        `json:"store,omitempty"`
	Group            string        `json:"group"`
	TSText           string        `json:"ts"`
	ModelVersion     string        `json:"model_version,omitempty"`
	Fallback         bool          `json:"fallback"`
	FeatureSchema    string        `json:"feature_schema"`
	CustomerSchema   string        `json:"customer_schema,omitempty"`
	CustomerFeatures []float64     `json:"customer_features,omitempty"`
	Offers           []LoggedOffer `json:"offers"`
	// TS is TSText in Unix milliseconds.
	TS int64 `json:"-"`
}

// ErrBadHistory marks a decision log or event log that cannot be read.
var ErrBadHistory = errors.New("models: bad history")

// maxHistoryLine is the longest accepted NDJSON line (a decision with many
// offers and their vectors).
const maxHistoryLine = 16 << 20

// DecodeDecision parses one decision record.
func DecodeDecision(b []byte) (LoggedDecision, error) {
	var d LoggedDecision
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%w: decision record: %v", ErrBadHistory, err)
	}
	if d.DecisionID == "" {
		return d, fmt.Errorf("%w: decision record without decision_id", ErrBadHistory)
	}
	t, err := time.Parse(time.RFC3339Nano, d.TSText)
	if err != nil {
		return d, fmt.Errorf("%w: decision %s: ts %q: %v", ErrBadHistory, d.DecisionID, d.TSText, err)
	}
	d.TS = t.UnixMilli()
	return d, nil
}

// ReadDecisions reads a decision log as NDJSON, one record per line (blank
// lines are ignored). Errors name the line.
func ReadDecisions(r io.Reader) ([]LoggedDecision, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxHistoryLine)
	var out []LoggedDecision
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		d, err := DecodeDecision(b)
		if err != nil {
			return nil, fmt.Errorf("reading decisions: line %d: %w", line, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading decisions: %w", err)
	}
	return out, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// respKey names an outcome on one offer of one decision.
type respKey struct {
	decision, offer string
	typ             features.EventType
}

// untargeted is an offer outcome that names the offer but not the
// decision: it goes to the customer's latest earlier decision offering it.
type untargeted struct {
	ids   features.IDs
	offer string
	typ   features.EventType
	ts    int64
}

// Outcomes indexes the outcome events of a history: offer responses by
// decision and offer, till redemptions by coupon code, and purchases by
// customer, with identities resolved through a features.Store that applies
// every event in order (so a purchase made under a card that was later
// linked to a member counts for the member's decisions).
type Outcomes struct {
	store     *features.Store
	decode    features.DecodeOptions
	resp      map[respKey][]int64
	byDecAny  map[respKey][]int64 // decision_id without offer_id (offer "")
	coupons   map[string][]int64
	untarget  []untargeted
	purchases []untargeted // offer unused
	// Events counts the events read, Rejected those the decoder refused.
	Events, Rejected int
	// Newest is the newest event time (Unix ms): the history's horizon.
	Newest int64

	resolved map[features.Key][]int64 // purchases by final canonical key, sorted
}

// NewOutcomes returns an empty index.
func NewOutcomes() (*Outcomes, error) {
	// Identity only: events of one customer may come from several
	// partitions (keyed by different identifiers), so none is too late.
	st, err := features.NewStore(features.Options{Shards: 16, AllowedLateness: 100 * 365 * 24 * time.Hour})
	if err != nil {
		return nil, fmt.Errorf("indexing outcomes: %w", err)
	}
	o := &Outcomes{store: st, resp: map[respKey][]int64{}, byDecAny: map[respKey][]int64{}, coupons: map[string][]int64{}}
	o.decode.EnsureDefaults()
	return o, nil
}

// farFuture is the clock the decoder checks event times against: history
// is read after the fact, so no event is "from the future".
const farFuture = int64(1) << 60

// Add decodes one event (schema v1) and indexes it. A malformed event is
// counted in Rejected and otherwise ignored.
func (o *Outcomes) Add(line []byte) {
	var ev features.Event
	if rej := features.DecodeEvent(line, farFuture, &o.decode, &ev); rej != nil {
		o.Rejected++
		return
	}
	o.AddEvent(&ev)
}

// AddEvent indexes one decoded event. Events must come in log order (the
// order the engine applied them), so identity links form as they did live.
func (o *Outcomes) AddEvent(ev *features.Event) {
	o.Events++
	o.resolved = nil
	if ev.TS > o.Newest {
		o.Newest = ev.TS
	}
	_, _ = o.store.Apply(ev) // identity only: a late event still counts as an outcome below
	switch ev.Type {
	case features.OfferClick, features.CouponRedeem:
		switch {
		case ev.DecisionID != "" && ev.OfferID != "":
			k := respKey{ev.DecisionID, ev.OfferID, ev.Type}
			o.resp[k] = append(o.resp[k], ev.TS)
		case ev.DecisionID != "":
			k := respKey{ev.DecisionID, "", ev.Type}
			o.byDecAny[k] = append(o.byDecAny[k], ev.TS)
		case ev.CouponCode != "" && ev.Type == features.CouponRedeem:
			o.coupons[ev.CouponCode] = append(o.coupons[ev.CouponCode], ev.TS)
		case ev.OfferID != "":
			o.untarget = append(o.untarget, untargeted{ids: ev.IDs, offer: ev.OfferID, typ: ev.Type, ts: ev.TS})
		}
	case features.Order, features.PosPurchase:
		o.purchases = append(o.purchases, untargeted{ids: ev.IDs, ts: ev.TS})
	}
}

// ReadOutcomes reads an event log as NDJSON, one event per line.
func ReadOutcomes(r io.Reader) (*Outcomes, error) {
	o, err := NewOutcomes()
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxHistoryLine)
	for sc.Scan() {
		if b := trimSpace(sc.Bytes()); len(b) > 0 {
			o.Add(b)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return o, nil
}

// canonical maps a customer key to its owner after the whole history (a
// key merged into another resolves to the survivor).
func (o *Outcomes) canonical(k features.Key) features.Key {
	if c, ok := o.store.ResolveKey(k); ok {
		return c
	}
	return k
}

func (o *Outcomes) resolveIDs(ids *features.IDs) features.Key {
	if c, ok := o.store.Resolve(ids); ok {
		return c
	}
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if v := ids.Get(ns); v != "" {
			return features.MakeKey(ns, v)
		}
	}
	return ""
}

// resolve indexes purchases and untargeted responses by final canonical
// customer, once per batch of added events.
func (o *Outcomes) resolve() {
	if o.resolved != nil {
		return
	}
	o.resolved = map[features.Key][]int64{}
	for i := range o.purchases {
		k := o.resolveIDs(&o.purchases[i].ids)
		o.resolved[k] = append(o.resolved[k], o.purchases[i].ts)
	}
	for _, ts := range o.resolved {
		sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	}
}

// anyIn reports whether some time in ts lies in (from, to].
func anyIn(ts []int64, from, to int64) bool {
	for _, t := range ts {
		if t > from && t <= to {
			return true
		}
	}
	return false
}

// Censored reports whether a decision at ts has a window still open at
// the history's horizon: its label is not known yet.
func (o *Outcomes) Censored(ts int64, window time.Duration) bool {
	return ts+window.Milliseconds() > o.Newest
}

// Purchased reports whether the decision's customer made an order or a
// store purchase in (decision, decision+window].
func (o *Outcomes) Purchased(d *LoggedDecision, window time.Duration) bool {
	o.resolve()
	return anyIn(o.resolved[o.canonical(features.Key(d.Customer))], d.TS, d.TS+window.Milliseconds())
}

// HistoryRow names the decision (index into the decision slice) and offer
// (index into its Offers; -1 for a per-decision row) a dataset row came
// from.
type HistoryRow struct {
	Decision, Offer int
}

// HistoryStats count what the builders kept and left out.
type HistoryStats struct {
	Decisions int `json:"decisions"`
	Rows      int `json:"rows"`
	Positives int `json:"positives"`
	// Censored counts rows left out because their window had not closed
	// by the newest event.
	Censored int `json:"rows_censored"`
	// SchemaMismatch counts rows logged under another feature schema;
	// BadVector rows whose vector had the wrong length or was absent.
	SchemaMismatch int `json:"rows_schema_mismatch,omitempty"`
	BadVector      int `json:"rows_bad_vector,omitempty"`
	// NoOffers counts decisions without offers (holdout or empty);
	// Strangers decisions for customers the engine had never seen (no
	// customer key, no features: the fallback offers).
	NoOffers       int       `json:"decisions_without_offers,omitempty"`
	Strangers      int       `json:"decisions_for_strangers,omitempty"`
	Events         int       `json:"events"`
	EventsRejected int       `json:"events_rejected,omitempty"`
	Horizon        time.Time `json:"horizon"`
}

// HistoryDataset is a dataset built from history, with each row's origin.
type HistoryDataset struct {
	*Dataset
	Rows  []HistoryRow
	Stats HistoryStats
}

// untargetedIndex attributes responses that name an offer but no decision
// to the customer's latest decision offering that offer at or before the
// response, keyed like Outcomes.resp.
func (o *Outcomes) untargetedIndex(decs []LoggedDecision) map[respKey][]int64 {
	if len(o.untarget) == 0 {
		return nil
	}
	type served struct {
		ts int64
		id string
	}
	byCustOffer := map[[2]string][]served{}
	for i := range decs {
		d := &decs[i]
		c := string(o.canonical(features.Key(d.Customer)))
		for _, of := range d.Offers {
			k := [2]string{c, of.OfferID}
			byCustOffer[k] = append(byCustOffer[k], served{d.TS, d.DecisionID})
		}
	}
	for _, s := range byCustOffer {
		sort.Slice(s, func(a, b int) bool { return s[a].ts < s[b].ts })
	}
	out := map[respKey][]int64{}
	for i := range o.untarget {
		u := &o.untarget[i]
		s := byCustOffer[[2]string{string(o.resolveIDs(&u.ids)), u.offer}]
		j := sort.Search(len(s), func(j int) bool { return s[j].ts >= u.ts }) - 1
		if j >= 0 {
			k := respKey{s[j].id, u.offer, u.typ}
			out[k] = append(out[k], u.ts)
		}
	}
	return out
}

// Labeller answers, for one configured outcome, whether an offer of a
// logged decision got that outcome in its window.
type Labeller struct {
	o     *Outcomes
	opts  HistoryOptions
	typ   features.EventType
	extra map[respKey][]int64
	decs  []LoggedDecision
}

// NewLabeller prepares labels for decisions under opts.
func (o *Outcomes) NewLabeller(decs []LoggedDecision, opts HistoryOptions) (*Labeller, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	typ := features.CouponRedeem
	if opts.Outcome == OutcomeClick {
		typ = features.OfferClick
	}
	return &Labeller{o: o, opts: opts, typ: typ, extra: o.untargetedIndex(decs), decs: decs}, nil
}

// Censored reports whether decision i's window is still open.
func (l *Labeller) Censored(i int) bool { return l.o.Censored(l.decs[i].TS, l.opts.Window) }

// Label reports whether offer j of decision i got the outcome within the
// window: by decision and offer ID, by decision ID alone when the decision
// had a single offer, by coupon code (redemptions), or, for an event that
// names only the offer, as the customer's latest decision offering it.
func (l *Labeller) Label(i, j int) bool {
	d := &l.decs[i]
	of := &d.Offers[j]
	from, to := d.TS, d.TS+l.opts.Window.Milliseconds()
	if anyIn(l.o.resp[respKey{d.DecisionID, of.OfferID, l.typ}], from, to) {
		return true
	}
	if len(d.Offers) == 1 && anyIn(l.o.byDecAny[respKey{d.DecisionID, "", l.typ}], from, to) {
		return true
	}
	if l.typ == features.CouponRedeem && l.opts.CouponCode != nil && len(l.o.coupons) > 0 {
		if anyIn(l.o.coupons[l.opts.CouponCode(d.DecisionID, of.OfferID)], from, to) {
			return true
		}
	}
	return anyIn(l.extra[respKey{d.DecisionID, of.OfferID, l.typ}], from, to)
}

func (o *Outcomes) baseStats(decs []LoggedDecision) HistoryStats {
	return HistoryStats{Decisions: len(decs), Events: o.Events, EventsRejected: o.Rejected, Horizon: time.UnixMilli(o.Newest).UTC()}
}

// PropensityDataset builds one row per (logged decision, offer): the
// vector logged with the offer at decision time, labelled by whether the
// configured outcome followed within the window. Censored decisions,
// decisions without offers, and vectors of another schema are left out
// and counted.
func (o *Outcomes) PropensityDataset(decs []LoggedDecision, opts HistoryOptions) (*HistoryDataset, error) {
	opts.EnsureDefaults()
	if len(opts.Schema.Features) == 0 {
		return nil, errors.New("models: history: the propensity schema is required")
	}
	lab, err := o.NewLabeller(decs, opts)
	if err != nil {
		return nil, err
	}
	hash, n := opts.Schema.Hash(), len(opts.Schema.Features)
	hd := &HistoryDataset{Dataset: &Dataset{Schema: opts.Schema, Positive: "1"}, Stats: o.baseStats(decs)}
	for i := range decs {
		d := &decs[i]
		if d.Customer == "" {
			hd.Stats.Strangers++
			continue
		}
		if len(d.Offers) == 0 {
			hd.Stats.NoOffers++
			continue
		}
		if d.FeatureSchema != hash {
			hd.Stats.SchemaMismatch += len(d.Offers)
			continue
		}
		if lab.Censored(i) {
			hd.Stats.Censored += len(d.Offers)
			continue
		}
		for j := range d.Offers {
			x := d.Offers[j].Features
			if len(x) != n {
				hd.Stats.BadVector++
				continue
			}
			hd.add(x, lab.Label(i, j), HistoryRow{i, j})
		}
	}
	return hd, nil
}

// PurchaseDataset builds one row per logged decision: the customer vector
// logged at decision time, labelled by whether the customer made an order
// or a store purchase within the purchase window. Train it with
// TrainOptions{Label: PurchaseLabel} so the engine serves it under that
// name.
func (o *Outcomes) PurchaseDataset(decs []LoggedDecision, opts HistoryOptions) (*HistoryDataset, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(opts.CustomerSchema.Features) == 0 {
		return nil, errors.New("models: history: the customer schema is required")
	}
	hash, n := opts.CustomerSchema.Hash(), len(opts.CustomerSchema.Features)
	hd := &HistoryDataset{Dataset: &Dataset{Schema: opts.CustomerSchema, Positive: "1"}, Stats: o.baseStats(decs)}
	for i := range decs {
		d := &decs[i]
		if d.Customer == "" {
			hd.Stats.Strangers++
			continue
		}
		if d.CustomerSchema != hash {
			hd.Stats.SchemaMismatch++
			continue
		}
		if len(d.CustomerFeatures) != n {
			hd.Stats.BadVector++
			continue
		}
		if o.Censored(d.TS, opts.PurchaseWindow) {
			hd.Stats.Censored++
			continue
		}
		hd.add(d.CustomerFeatures, o.Purchased(d, opts.PurchaseWindow), HistoryRow{i, -1})
	}
	return hd, nil
}

func (hd *HistoryDataset) add(x []float64, y bool, r HistoryRow) {
	row := make([]float64, len(x))
	for k, v := range x {
		if math.IsInf(v, 0) {
			v = math.NaN()
		}
		row[k] = v
	}
	hd.X = append(hd.X, row)
	hd.Y = append(hd.Y, y)
	hd.Rows = append(hd.Rows, r)
	hd.Stats.Rows++
	if y {
		hd.Stats.Positives++
	}
}

package engine

import (
	"encoding/json"
	"time"

	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// OnApplied is the ingest loop's hook, called after each applied event on
// the loop's goroutine: outcomes close the loop (attribution, budgets,
// the bandit) and on_event scenarios may raise push triggers. Everything
// it does is a function of the event and the state, so replaying the same
// events after a restart repeats the same triggers with the same IDs.
//
// Whatever the event's type, an identity merge it caused (Applied.Merged)
// first moves what the engine keeps per customer onto the survivor
// (rekey), and an erase forgets it (forget): identify, consent and erase
// events change who the customer is, not what they did, so they raise no
// trigger, but they move or drop the customer's state all the same.
func (e *Engine) OnApplied(ev *features.Event, a features.Applied) {
	if a.Erased {
		e.forget(a.Merged) // every customer the store removed
		return
	}
	if len(a.Merged) > 0 {
		// Before the outcome below, so that a redemption that also links
		// a device converts the device's decisions too.
		e.rekey(a.Merged, a.Customer)
	}
	switch ev.Type {
	case features.OfferImpression, features.OfferClick, features.OfferDismiss, features.CouponRedeem, features.PushOpen:
		e.outcome(ev, a)
	case features.Identify, features.Consent:
		return
	}
	if e.opts.Triggers == nil {
		return
	}
	e.evaluateTriggers(a.Customer, ev.TS, ev.ID)
	e.fireWakes(ev.TS)
}

// rekey moves everything the engine keeps under the canonical keys from,
// folded by a merge into the customer to, onto to: the contact ledger
// (caps and cooldowns count both customers' contacts), the pending
// wake-up (to keeps the earlier one), the attribution records (open
// offers, touch sequences and conversions see both histories) and the
// push dedup's marks. It runs on the ingest loop's goroutine, which owns
// the wake-ups.
func (e *Engine) rekey(from []features.Key, to features.Key) {
	if e.records != nil {
		e.records.flush() // so the decisions pending are re-keyed too
	}
	for _, k := range from {
		if k == to || k == "" {
			continue
		}
		e.opts.Policy.Rekey(k, to)
		e.wakes.move(k, to)
		e.opts.TriggerDedup.Rekey(k, to)
		if e.opts.Stats != nil {
			e.opts.Stats.Rekey(k, to)
		}
	}
}

// forget drops everything the engine keeps for the erased customers
// (their canonical keys, as the store reports them in Applied.Merged: an
// erase naming a member and an anonymous device not linked yet removes
// both, a customer known by a card and that device goes too, and another
// member's shared card stays with its owner): the contact ledger, the
// pending wake-up, the push dedup's marks, the cached decisions, and the
// customers' link to the attribution records, which stay, anonymous, in
// the aggregates of /v1/stats, so that a coupon already issued is still
// counted when it is redeemed.
func (e *Engine) forget(gone []features.Key) {
	if len(gone) == 0 {
		return
	}
	now := e.opts.Clock().UnixMilli()
	for _, k := range gone {
		e.opts.Policy.Forget(k)
		e.wakes.cancel(k)
		e.opts.TriggerDedup.ForgetCustomer(k)
		if e.opts.Cache != nil {
			e.opts.Cache.Forget(k, now)
		}
	}
	if e.opts.Stats != nil {
		if e.records != nil {
			e.records.flush() // a decision pending names the customer too
		}
		e.opts.Stats.Forget(gone...)
	}
}

// ResolveCoupon completes, before it is applied, a redemption that names
// only its coupon code (a till scanning the code, as docs/events.md
// shows) with the offer and decision the code was issued for, so the
// customer's offer history counts it as it counts one naming the offer:
// redeemed(offer) in rules, the offer's redemption limit, the
// own-response shrinkage. A code the engine did not issue, or whose
// decision record Stats no longer keeps (it keeps the newest
// StatsOptions.MaxDecisions), leaves the event as it is.
// It is the ingest loop's Prepare hook and runs on the loop's goroutine.
func (e *Engine) ResolveCoupon(ev *features.Event) {
	if ev.Type != features.CouponRedeem || ev.CouponCode == "" || ev.OfferID != "" || e.opts.Stats == nil {
		return
	}
	if e.records != nil {
		e.records.flush() // decisions served just before are findable
	}
	if decision, offer, ok := e.opts.Stats.LookupCoupon(ev.CouponCode); ok && (ev.DecisionID == "" || ev.DecisionID == decision) {
		ev.OfferID, ev.DecisionID = offer, decision
	}
}

func (e *Engine) outcome(ev *features.Event, a features.Applied) {
	success := ev.Type == features.OfferClick || ev.Type == features.CouponRedeem
	if ev.Type == features.CouponRedeem && ev.OfferID != "" && ev.DecisionID != "" {
		_ = e.opts.Budgets.Redeem(ev.OfferID, ev.DecisionID, ev.TS)
	}
	if e.recordOutcome(ev, a, success) {
		return // attribution found the decision and credited the bandit
	}
	if success && e.opts.Explorer != nil && ev.OfferID != "" {
		// No decision record (no Stats, or the decision has left the
		// attribution window): the customer's segment now stands in for
		// the one decided in.
		e.opts.Explorer.Update(ev.OfferID, e.segmentNow(a.Customer, ev.Channel, ev.TS), true)
	}
}

// segmentNow is the customer's bandit segment at instant ts on channel
// ch: when no decision record says where an offer was shown, the
// outcome event's channel stands in for it.
func (e *Engine) segmentNow(customer features.Key, ch features.Channel, ts int64) string {
	st := e.trigState
	e.opts.Store.ViewKey(customer, ts, &st.view)
	return segment(&st.view, ch)
}

// evaluateTriggers runs the on_event scenarios for the push channel at
// instant now (an event's time, or a wake-up's), publishes at most one
// trigger, and schedules the customer's next wake-up. cause names what
// made it run (the event ID, or the wake-up) and enters the trigger ID.
func (e *Engine) evaluateTriggers(customer features.Key, now int64, cause string) {
	set := e.opts.Scenarios()
	if set == nil {
		return
	}
	st := e.trigState
	v := &st.view
	if !e.opts.Store.ViewKey(customer, now, v) {
		return
	}
	st.custVecOK = false
	if w := set.NextWake(v, now); w.At != 0 {
		e.wakes.schedule(v.Customer, w.At)
	}
	if wall := e.opts.Clock().UnixMilli(); wall-now > e.opts.TriggerMaxAge.Milliseconds() {
		return // catching up with old events: no pushes for the past
	}
	if e.opts.Holdout.InHoldout(v.Customer) || !Personalized(v, features.ChannelPush) {
		return // a push chosen from behaviour is personalization
	}
	st.sreq = scenarios.Request{Channel: features.ChannelPush, Store: v.HomeStore, Now: now, Trigger: scenarios.OnEvent, Loc: e.opts.Location, Score: st.scoreFn}
	st.props = set.Evaluate(v, &st.sreq, st.props[:0])
	if len(st.props) == 0 {
		return // most events: no need to read the contact ledger
	}
	st.begin(set, v, features.ChannelPush)
	st.personal = true
	st.openGate(e.opts.Policy, set) // consider drops what it refuses
	for i := range st.props {
		e.consider(st, i, features.ChannelPush)
	}
	e.arbitrate(st, false) // no exploration: a replay must choose the same
	for i := range st.cands[:min(len(st.cands), ranked)] {
		c := &st.cands[i]
		prop := &st.props[c.prop]
		id := TriggerID(v.Customer, prop.Scenario.ID, c.offer.ID, cause)
		if e.opts.TriggerDedup.Contains(id, now) {
			return // already published (a replay)
		}
		// One push per firing: while the scenario stays true for this
		// offer, later events do not raise it again (for the dedup's
		// retention, 7 days by default).
		firing := "fired|" + string(v.Customer) + "|" + prop.Scenario.ID + "|" + c.offer.ID
		if e.opts.TriggerDedup.Contains(firing, now) {
			continue
		}
		decisionID := TriggerDecisionID(id)
		ttl := e.reservationTTL(c.offer, now)
		if !e.reserve(c, decisionID, now, ttl) {
			continue
		}
		if ok, _ := e.opts.Policy.Claim(v.Customer, features.ChannelPush, offerPolicy(c.offer), c.store, v.Offers, now); !ok {
			e.release(c, decisionID)
			continue
		}
		e.opts.TriggerDedup.Seen(id, now)
		e.opts.TriggerDedup.Seen(firing, now)
		locale := Locale(v.Locale)
		loc := localeIndex(locale)
		// The offer's terms as /v1/decide serves them at this instant.
		r := OfferResult{
			OfferID: c.offer.ID, Scenario: prop.Scenario.ID, Value: c.offer.Value,
			Expiry: offerExpiry(now, ttl), FulfilmentStore: fulfilmentStore(c.offer, c.store),
		}
		t := Trigger{
			Version:   TriggerVersion,
			TriggerID: id, Customer: v.Customer, Scenario: prop.Scenario.ID, OfferID: c.offer.ID,
			Channel: features.ChannelPush, Locale: string(locale),
			Title: c.offer.Title[loc], Text: c.offer.Text[loc], DecisionID: decisionID, EventID: cause, TS: now,
			CouponCode: CouponCode(decisionID, c.offer.ID),
			Value:      r.Value, Expiry: r.Expiry.UnixMilli(), FulfilmentStore: r.FulfilmentStore,
		}
		t.NotAfter = min(now+e.opts.TriggerMaxAge.Milliseconds(), t.Expiry)
		if q := e.opts.Policy.nextQuietStart(features.ChannelPush, c.store, now); q != 0 {
			t.NotAfter = min(t.NotAfter, q)
		}
		if b, err := t.Encode(); err == nil {
			e.opts.Triggers.Publish(t.Key(), b)
		}
		e.stats.triggers.Add(1)
		d := Decision{DecisionID: decisionID, Customer: string(v.Customer), Group: GroupTreatment}
		e.recordServed(&d, &r, c, couponKey{}, features.ChannelPush, v.Customer, now, true)
		return
	}
}

// offerExpiry is when an offer served at now with a budget reservation
// of ttl (Engine.reservationTTL) stops being redeemable: a decision's
// OfferResult.Expiry and a push trigger's expiry.
func offerExpiry(now int64, ttl time.Duration) time.Time {
	return time.UnixMilli(now).Add(ttl).UTC()
}

// fulfilmentStore is where offer o, served for store, is fulfilled: that
// store when the offer is not online-only, else "".
func fulfilmentStore(o *scenarios.Offer, store string) string {
	if o.Fulfilment != scenarios.Online {
		return store
	}
	return ""
}

// Counters are the engine's counters, pulled by the caller. Fallbacks
// count the decisions that served no scenario's offer, Empty those that
// served no offer at all (contact policy, budgets or eligibility left
// none); an empty decision is a fallback too.
type Counters struct {
	Decisions, Fallbacks, Empty, Holdouts, Triggers, CacheHits int64
}

// Counters returns the engine's counters.
func (e *Engine) Counters() Counters {
	return Counters{
		Decisions: e.stats.decisions.Load(), Fallbacks: e.stats.fallbacks.Load(), Empty: e.stats.empty.Load(), Holdouts: e.stats.holdouts.Load(),
		Triggers: e.stats.triggers.Load(), CacheHits: e.stats.cacheHits.Load(),
	}
}

// decisionLog is one record of nbo.decisions.
type decisionLog struct {
	DecisionID   string `json:"decision_id"`
	Customer     string `json:"customer"`
	Channel      string `json:"channel"`
	Placement    string `json:"placement,omitempty"`
	Store        string `json:"store,omitempty"`
	Group        string `json:"group"`
	Segment      string `json:"segment,omitempty"` // the bandit segment it was made in
	TS           string `json:"ts"`
	ModelVersion string `json:"model_version,omitempty"`
	Fallback     bool   `json:"fallback"`
	NewestEvent  string `json:"newest_event_ts,omitempty"`
	// FeatureSchema is the hash of PropensitySchema, the layout of the
	// offers' feature vectors; CustomerSchema that of CustomerFeatures,
	// the customer's own features at decision time (for customer scores
	// such as purchase intent).
	FeatureSchema    string    `json:"feature_schema"`
	CustomerSchema   string    `json:"customer_schema,omitempty"`
	CustomerFeatures []float64 `json:"customer_features,omitempty"`
	// Offers are written in the layout models reads them back in.
	Offers []models.LoggedOffer `json:"offers"`
	// Served holds, per offer in Offers' order, what a restart needs to
	// rebuild the state the decision made (Replayer.Replay): the budget
	// reservation's end, the offer's value and the stores it was served
	// for. Records written before it existed lack it; replay then takes
	// these from the catalog and the customer's view.
	Served []servedLog `json:"served,omitempty"`
}

// servedLog is one served offer as Replayer.Replay needs it.
type servedLog struct {
	OfferID string `json:"offer_id"`
	Value   int64  `json:"value"`
	// Expires is the offer's expiry, which is its budget reservation's
	// (Unix ms; 0 for none).
	Expires int64 `json:"expires_ms,omitempty"`
	// Store is the fulfilment store of an in-store offer ("" online).
	Store string `json:"store,omitempty"`
	// ReservedStore is the store the offer was served for, online offers
	// included (scenarios.FulfilmentStore at decision time; "" when the
	// decision had none): its budget reservation and attribution record
	// are under it. It is written even when empty, so that nil means a
	// record from before the field existed: replay then works the store
	// out as those versions did (Replayer.store), which for an online
	// offer is the customer's home or last store at the snapshot, not
	// necessarily the decision's.
	ReservedStore *string `json:"reserved_store,omitempty"`
}

// finiteAll replaces NaN and infinities (which JSON cannot carry) by 0, so
// a decision is never dropped from the log for one odd feature.
func finiteAll(v []float64) []float64 {
	for i, f := range v {
		v[i] = finite(f)
	}
	return v
}

// encodeDecision renders a decision for nbo.decisions; vecs[i] holds the
// propensity features of d.Offers[i], cust the customer's own features.
func encodeDecision(d *Decision, req *DecideRequest, now int64, vecs [][]float64, cust []float64) ([]byte, error) {
	l := decisionLog{FeatureSchema: propensitySchemaHash,
		DecisionID: d.DecisionID, Customer: d.Customer, Channel: req.Channel.String(), Placement: req.Placement,
		Store: req.Store, Group: d.Group, Segment: d.segment, TS: features.FormatTS(now), ModelVersion: d.ModelVersion, Fallback: d.Fallback,
		Offers: make([]models.LoggedOffer, 0, len(d.Offers)),
		Served: make([]servedLog, 0, len(d.Offers)),
	}
	if cust != nil {
		l.CustomerSchema = customerSchemaHash
		l.CustomerFeatures = finiteAll(cust)
	}
	if !d.NewestEventTS.IsZero() {
		l.NewestEvent = features.FormatTS(d.NewestEventTS.UnixMilli())
	}
	for i, o := range d.Offers {
		rec := models.LoggedOffer{OfferID: o.OfferID, Scenario: o.Scenario, Propensity: finite(o.Score.Propensity), Explore: finite(o.Score.Explore), Score: finite(o.Score.Total)}
		if i < len(vecs) {
			rec.Features = finiteAll(vecs[i])
		}
		l.Offers = append(l.Offers, rec)
		s := servedLog{OfferID: o.OfferID, Value: o.Value, Store: o.FulfilmentStore, ReservedStore: &d.Offers[i].store}
		if !o.Expiry.IsZero() {
			s.Expires = o.Expiry.UnixMilli()
		}
		l.Served = append(l.Served, s)
	}
	return json.Marshal(&l)
}

// recordServed logs one served offer for attribution and uplift: through
// the recorder for requests, so they do not wait for the stats lock, or
// directly (direct) on the ingest loop's goroutine, where outcomes are
// recorded too, in order. coupon is the key of the offer's coupon code
// when the caller has it at hand (zero: Stats derives it).
func (e *Engine) recordServed(d *Decision, r *OfferResult, c *candidate, coupon couponKey, ch features.Channel, customer features.Key, now int64, direct bool) {
	if e.opts.Stats == nil {
		return
	}
	rec := e.decisionRecord(d, r, c, ch, customer, now)
	rec.coupon = coupon
	if direct || e.records == nil {
		e.opts.Stats.RecordDecision(rec)
		return
	}
	e.records.add(rec)
}

func (e *Engine) decisionRecord(d *Decision, r *OfferResult, c *candidate, ch features.Channel, customer features.Key, now int64) DecisionRecord {
	rec := DecisionRecord{DecisionID: d.DecisionID, Customer: customer, Channel: ch, Group: d.Group, TS: now}
	if r != nil { // an offer served; a decision that served nothing gets no response to credit
		rec.Scenario, rec.OfferID, rec.Value, rec.Segment = r.Scenario, r.OfferID, r.Value, d.segment
	}
	if c != nil {
		rec.Store, rec.Cost = c.store, c.offer.Cost
	}
	return rec
}

// recordOutcome attributes a feedback event to the decision it answers
// (by decision ID, or by the coupon code a till scanned) and closes the
// loop: a redemption spends its budget reservation, and a success (a
// click or a redemption) is credited to the bandit arm of the decision's
// offer in the segment it was decided in — the arm its trial went to,
// however the customer's segment has changed since. A holdout decision
// recorded no trial, so its responses are not credited. It reports
// whether the decision was found and the success dealt with.
func (e *Engine) recordOutcome(ev *features.Event, a features.Applied, success bool) bool {
	if e.opts.Stats == nil {
		return false
	}
	if e.records != nil {
		// Decisions served before this event was applied are in Stats
		// before it is attributed, however recently they were made.
		e.records.flush()
	}
	att, ok := e.opts.Stats.RecordOutcome(Outcome{
		Type: ev.Type, DecisionID: ev.DecisionID, OfferID: ev.OfferID, CouponCode: ev.CouponCode,
		Customer: a.Customer, Channel: ev.Channel, Store: ev.Store, TS: ev.TS, Revenue: ev.Amount,
	})
	if !ok {
		return false
	}
	if ev.Type == features.CouponRedeem && (ev.OfferID == "" || ev.DecisionID == "") {
		_ = e.opts.Budgets.Redeem(att.OfferID, att.DecisionID, ev.TS)
	}
	if success && e.opts.Explorer != nil && att.Group != GroupHoldout && !att.Repeat {
		seg := att.Segment
		if seg == "" { // a trigger's, or recorded before segments were kept
			seg = e.segmentNow(a.Customer, att.Channel, ev.TS)
		}
		e.opts.Explorer.Update(att.OfferID, seg, true)
	}
	return true
}

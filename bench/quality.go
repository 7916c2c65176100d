package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"nbo/engine"
	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// Decision quality: the engine's policy against what a retailer would do
// instead, scored against the simulated customers' hidden probabilities
// over the same simulated weeks. Each policy gets its own simulator (same
// seed), feature store, budgets and contact policy; the decision points are
// the same for all of them (a page view on an online channel or a store
// entry, picked by a hash of the event ID), and so is the randomness of the
// customers' responses to a given offer at a given decision point (common
// random numbers), so differences come from the choices, not from luck.

// Policy names of the decision-quality comparison.
const (
	PolicyEngine = "engine"
	// PolicyEngineModel is the engine that, halfway through the offer
	// period, trains a propensity model (models.Train, a random forest on
	// engine.PropensitySchema) on its own deliveries so far and serves it.
	PolicyEngineModel = "engine+model"
	PolicyRules       = "rules"
	PolicyRandom      = "random"
	PolicyOracle      = "oracle"
	// PolicyOracleTraits knows every customer's traits but not their
	// individual taste: the most any policy could reach without reading
	// minds.
	PolicyOracleTraits = "oracle-without-taste"
	// PolicyOracleObservable knows only the traits behaviour reveals
	// plainly in the simulator (channel habit, favourite categories,
	// membership, app use), not price sensitivity, affluence, distance or
	// taste. Price sensitivity and distance leave footprints in behaviour
	// too (cart abandonment, cheaper items; fewer store visits), which it
	// does not read, so a behaviour-only policy can pass it.
	PolicyOracleObservable = "oracle-observable"
)

// QualityPolicies are the policies RunQuality compares, in report order.
var QualityPolicies = []string{PolicyEngine, PolicyEngineModel, PolicyRules, PolicyRandom, PolicyOracleObservable, PolicyOracleTraits, PolicyOracle}

// isOracle reports whether the policy is one of the reference policies
// that rank by (estimated) hidden probabilities.
func isOracle(policy string) bool {
	return policy == PolicyOracle || policy == PolicyOracleTraits || policy == PolicyOracleObservable
}

// QualityOptions configure RunQuality.
type QualityOptions struct {
	// Seed of the simulated retailer. Default: 1 (0 is a seed too, but 1
	// keeps reports comparable across runs).
	Seed uint64
	// Customers in the simulation. Default: 5000.
	Customers int
	// Days of simulated time. Default: 28.
	Days int
	// WarmupDays at the start build up customers' histories; no offers are
	// made during them. Default: 7.
	WarmupDays int
	// DecideOneIn: one decision point in this many candidate events (page
	// views online, store entries). Default: 3.
	DecideOneIn int
	// ModelTrees is the forest size of the engine+model policy. Default: 100.
	ModelTrees int
	// Start of simulated time. Default: DefaultStart.
	Start time.Time
	// Policies to run. Default: QualityPolicies.
	Policies []string
}

// EnsureDefaults fills unset fields with their defaults.
func (o *QualityOptions) EnsureDefaults() {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Customers == 0 {
		o.Customers = 5000
	}
	if o.Days == 0 {
		o.Days = 28
	}
	if o.WarmupDays == 0 {
		o.WarmupDays = 7
	}
	if o.DecideOneIn == 0 {
		o.DecideOneIn = 3
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.ModelTrees == 0 {
		o.ModelTrees = 100
	}
	if len(o.Policies) == 0 {
		o.Policies = QualityPolicies
	}
}

// Validate reports every problem with the options at once.
func (o *QualityOptions) Validate() error {
	var errs []error
	if o.Customers < 1 {
		errs = append(errs, fmt.Errorf("bench: quality customers is %d, want at least 1", o.Customers))
	}
	if o.Days < 1 || o.WarmupDays < 0 || o.WarmupDays >= o.Days {
		errs = append(errs, fmt.Errorf("bench: quality days %d and warm-up days %d: want 0 <= warm-up < days", o.Days, o.WarmupDays))
	}
	if o.DecideOneIn < 1 {
		errs = append(errs, fmt.Errorf("bench: quality DecideOneIn is %d, want at least 1", o.DecideOneIn))
	}
	for _, p := range o.Policies {
		if !slices.Contains(QualityPolicies, p) {
			errs = append(errs, fmt.Errorf("bench: unknown quality policy %q (want one of %s)", p, strings.Join(QualityPolicies, ", ")))
		}
	}
	return errors.Join(errs...)
}

// PolicyResult is one policy's score.
type PolicyResult struct {
	Card Scorecard
	// Decisions is how many decision points the policy was asked at;
	// Card.Deliveries how many offers it made.
	Decisions int64
	// ExpectedNet is the expected net revenue of the offers made (from
	// the hidden probabilities), minor units; OracleNet the expected net
	// revenue of the best eligible offer at the same points, under the
	// policy's own budgets and contact history. Regret is the difference.
	ExpectedNet, OracleNet float64
	// RegretByType breaks the regret of the decision points with an
	// eligible offer down by the best offer's type and the type of the
	// offer made (NumOfferTypes: none): where the policy confuses what.
	RegretByType [NumOfferTypes][NumOfferTypes + 1]TypeRegret
	// Holdouts are decisions that fell in the engine's control group;
	// Fallbacks those the engine answered with its fallback offers; Empty
	// those where the policy made no offer although some offer was
	// eligible.
	Holdouts, Fallbacks, Empty int64
	// Model describes the model the engine+model policy trained ("" for
	// the other policies), or why it could not.
	Model string
	// ByOffer breaks the offers made down by offer ID.
	ByOffer map[string]*OfferTally
	// Weeks breaks the outcomes down by the week of offers the decision
	// was made in (Weeks[0] is the first week after the warm-up), to show
	// how a learning policy improves.
	Weeks []WeekTally
	Took  time.Duration
}

// WeekTally is one policy's outcomes of the decisions of one week.
type WeekTally struct {
	Decisions int64
	Net       int64 // realised revenue − cost of the redeemed offers, minor units
}

// week returns the tally of the week of offers that instant now is in.
func (r *PolicyResult) week(offersFrom, now int64) *WeekTally {
	i := int(max(now-offersFrom, 0) / (7 * 86_400_000))
	for len(r.Weeks) <= i {
		r.Weeks = append(r.Weeks, WeekTally{})
	}
	return &r.Weeks[i]
}

// OfferTally is what one offer did under one policy.
type OfferTally struct {
	Deliveries, Redemptions int64
	Net                     int64 // revenue − cost of its redemptions, minor units
}

// TypeRegret is the regret of the decision points of one cell of
// PolicyResult.RegretByType.
type TypeRegret struct {
	Decisions int64
	Regret    float64 // minor units
}

// Regret is the expected net revenue lost against the best eligible offer
// at each decision point, in minor units.
func (r *PolicyResult) Regret() float64 { return r.OracleNet - r.ExpectedNet }

// QualityReport is RunQuality's result.
type QualityReport struct {
	Options QualityOptions
	Results []PolicyResult // in Options.Policies order
}

// Result returns the named policy's result.
func (q *QualityReport) Result(policy string) (PolicyResult, bool) {
	for _, r := range q.Results {
		if r.Card.Policy == policy {
			return r, true
		}
	}
	return PolicyResult{}, false
}

// NetRatio is policy a's realised net revenue over policy b's (0 when b's
// is not positive or either is missing).
func (q *QualityReport) NetRatio(a, b string) float64 {
	ra, oka := q.Result(a)
	rb, okb := q.Result(b)
	if !oka || !okb || rb.Card.NetRevenue() <= 0 {
		return 0
	}
	return float64(ra.Card.NetRevenue()) / float64(rb.Card.NetRevenue())
}

// RunQuality runs every policy over the same simulated weeks. It returns
// ctx.Err() if ctx ends first.
func RunQuality(ctx context.Context, opts QualityOptions) (QualityReport, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return QualityReport{}, fmt.Errorf("running the decision-quality comparison: %w", err)
	}
	rep := QualityReport{Options: opts}
	for _, p := range opts.Policies {
		r, err := runPolicy(ctx, opts, p)
		if err != nil {
			return rep, fmt.Errorf("running the decision-quality comparison for policy %s: %w", p, err)
		}
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

// qualityRun is one policy's world.
type qualityRun struct {
	policy   string
	sim      *Simulator
	store    *features.Store
	set      *scenarios.Set
	budgets  *engine.Budgets
	contact  *engine.Policy
	eng      *engine.Engine
	loc      *time.Location
	types    []OfferType // by offer index; NumOfferTypes when unknown
	basket   []float64   // expected basket value per customer, minor units; 0 until computed
	view     features.View
	cands    []*scenarios.Offer
	props    []scenarios.Proposal // eligible's scratch
	proposed []bool               // by offer index: a scenario proposes it now
	rng      *rand.Rand
	seq      int
	// observable estimates the oracle-observable policy's probabilities.
	observable *ObservableRedemptions

	// engine+model: deliveries logged until trainAt, then a model.
	registry *models.Registry
	trainAt  int64
	trained  bool
	logX     [][]float64
	logY     []bool
}

func newQualityRun(opts QualityOptions, policy string) (*qualityRun, error) {
	sim, err := New(Options{Seed: opts.Seed, Customers: opts.Customers, Days: opts.Days, Start: opts.Start})
	if err != nil {
		return nil, err
	}
	store, err := features.NewStore(features.Options{})
	if err != nil {
		return nil, err
	}
	set, err := scenarios.Load(scenarios.Builtin(), opts.Start)
	if err != nil {
		return nil, fmt.Errorf("loading the built-in scenarios: %w", err)
	}
	q := &qualityRun{
		policy: policy, sim: sim, store: store, set: set, budgets: engine.NewBudgets(),
		basket: make([]float64, opts.Customers), rng: rand.New(rand.NewPCG(opts.Seed, 77)),
	}
	q.budgets.SetCatalog(set)
	if policy == PolicyOracleObservable {
		q.observable = NewObservableRedemptions(512)
	}
	if q.contact, err = engine.NewPolicy(engine.PolicyOptions{}); err != nil {
		return nil, err
	}
	q.loc, err = time.LoadLocation("Asia/Shanghai")
	if err != nil {
		q.loc = time.FixedZone("CST", 8*3600)
	}
	for _, o := range set.Offers {
		t, ok := ParseOfferType(o.Type.String())
		if !ok {
			t = NumOfferTypes
		}
		q.types = append(q.types, t)
	}
	switch policy {
	case PolicyEngine, PolicyEngineModel, PolicyRules:
		eo := engine.Options{Store: store, Scenarios: func() *scenarios.Set { return set }, Budgets: q.budgets, Policy: q.contact, Location: q.loc}
		if eo.Stats, err = engine.NewStats(engine.StatsOptions{}); err != nil {
			return nil, err
		}
		if policy != PolicyRules {
			eo.Explorer = &engine.BanditExplorer{Bandit: models.NewBandit()}
		}
		if policy == PolicyEngineModel {
			q.registry = models.NewRegistry()
			eo.Propensity = &engine.RegistryPropensity{Registry: q.registry, Location: q.loc}
			offersFrom := opts.Start.Add(time.Duration(opts.WarmupDays) * 24 * time.Hour)
			q.trainAt = offersFrom.Add(opts.Start.Add(time.Duration(opts.Days)*24*time.Hour).Sub(offersFrom) / 2).UnixMilli()
		}
		if policy == PolicyRules {
			eo.Holdout.Share = -1 // a rules engine has no control group
		}
		eo.Seed = opts.Seed // decisions repeat with the seed
		if q.eng, err = engine.New(eo); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// decisionPoint says whether ev is a moment a channel asks for an offer,
// and on which channel: a page view in the app, mini-program or web shop,
// or a store entry (the associate's tablet). One in n such events, by a
// hash of the event ID, so every policy decides at the same points.
func decisionPoint(ev *features.Event, n int) (features.Channel, bool) {
	var ch features.Channel
	switch {
	case ev.Type == features.PageView || ev.Type == features.ProductView:
		switch ev.Channel {
		case features.ChannelApp, features.ChannelMiniapp, features.ChannelWeb:
			ch = ev.Channel
		default:
			return 0, false
		}
	case ev.Type == features.StoreEnter:
		ch = features.ChannelTablet
	default:
		return 0, false
	}
	return ch, fnv(ev.ID)%uint64(n) == 0
}

func isFeedback(t features.EventType) bool {
	switch t {
	case features.OfferImpression, features.OfferClick, features.OfferDismiss, features.CouponRedeem, features.PushOpen:
		return true
	}
	return false
}

// expectedBasket is what a redeeming customer spends on average: the mean
// price over their favourite categories' catalogs (Respond's basketItem).
func (q *qualityRun) expectedBasket(idx int) float64 {
	if b := q.basket[idx]; b > 0 {
		return b
	}
	c := q.sim.Customer(idx)
	cat := q.sim.Catalog()
	var sum float64
	for _, f := range c.Favourites {
		var s float64
		for _, sku := range cat[f] {
			s += float64(sku.Price)
		}
		sum += s / float64(max(len(cat[f]), 1))
	}
	q.basket[idx] = sum / float64(len(c.Favourites))
	return q.basket[idx]
}

// value is an offer's expected net revenue for the customer on ch.
func (q *qualityRun) value(idx int, o *scenarios.Offer, ch features.Channel) float64 {
	t := q.types[o.Index]
	if t >= NumOfferTypes {
		return 0
	}
	return q.sim.ExpectedRedemption(idx, t, ch) * (q.expectedBasket(idx) - float64(o.Cost))
}

// believed is the expected net revenue of an offer as a reference policy
// other than the oracle estimates it: from the traits without the taste,
// or from the observable traits alone.
func (q *qualityRun) believed(idx int, o *scenarios.Offer, ch features.Channel) float64 {
	t := q.types[o.Index]
	if t >= NumOfferTypes {
		return 0
	}
	var p float64
	switch q.policy {
	case PolicyOracleTraits:
		p = q.sim.TraitRedemption(idx, t, ch)
	case PolicyOracleObservable:
		p = q.observable.Redemption(q.sim, idx, t, ch)
	default:
		p = q.sim.ExpectedRedemption(idx, t, ch)
	}
	return p * (q.expectedBasket(idx) - float64(o.Cost))
}

func offerPolicyOf(o *scenarios.Offer) engine.OfferPolicy {
	p := engine.OfferPolicy{ID: o.ID, Cooldown: o.Cooldown, Transactional: o.Transactional}
	if o.Cap.Count > 0 && o.Cap.Period > 0 {
		p.Cooldown = max(p.Cooldown, o.Cap.Period/time.Duration(o.Cap.Count))
	}
	return p
}

// eligible lists the offers the customer may get now on ch under this
// run's catalog rules, budgets and contact policy: the untargeted offers
// and those a scenario firing now proposes, as for the engine (none for
// a customer who withdrew personalization consent).
func (q *qualityRun) eligible(ch features.Channel, store string, now int64) []*scenarios.Offer {
	v := &q.view
	req := scenarios.Request{Channel: ch, Store: store, Now: now, Trigger: scenarios.OnRequest, Loc: q.loc}
	q.props = q.props[:0]
	if engine.Personalized(v, ch) { // else no scenario may read their behaviour
		q.props = q.set.Evaluate(v, &req, q.props)
	}
	q.proposed = slices.Grow(q.proposed[:0], len(q.set.Offers))[:len(q.set.Offers)]
	clear(q.proposed)
	for _, p := range q.props {
		q.proposed[p.Offer.Index] = true
	}
	q.cands = q.cands[:0]
	for _, o := range q.set.Offers {
		if q.types[o.Index] >= NumOfferTypes || !o.Untargeted && !q.proposed[o.Index] || o.EligibleFor(v, &req) != scenarios.Eligible {
			continue
		}
		fs := scenarios.FulfilmentStore(v, &req)
		if !q.budgets.Available(o.ID, fs, now) {
			continue
		}
		if ok, _ := q.contact.Allow(v.Customer, ch, offerPolicyOf(o), fs, v.Offers, now); !ok {
			continue
		}
		q.cands = append(q.cands, o)
	}
	return q.cands
}

// claim reserves budget and contact for an offer a non-engine policy
// chose, as the engine's serve step does; false when either refuses.
func (q *qualityRun) claim(o *scenarios.Offer, ch features.Channel, store, decisionID string, now int64) bool {
	v := &q.view
	req := scenarios.Request{Channel: ch, Store: store, Now: now, Loc: q.loc}
	fs := scenarios.FulfilmentStore(v, &req)
	if _, ok := q.budgets.Reserve(o.ID, fs, decisionID, now, 72*time.Hour); !ok {
		return false
	}
	if ok, _ := q.contact.Claim(v.Customer, ch, offerPolicyOf(o), fs, v.Offers, now); !ok {
		_ = q.budgets.Release(o.ID, decisionID)
		return false
	}
	return true
}

func runPolicy(ctx context.Context, opts QualityOptions, policy string) (PolicyResult, error) {
	q, err := newQualityRun(opts, policy)
	if err != nil {
		return PolicyResult{}, err
	}
	if q.eng != nil {
		defer q.eng.Close()
	}
	res := PolicyResult{Card: Scorecard{Policy: policy}, ByOffer: map[string]*OfferTally{}}
	started := time.Now()
	offersFrom := opts.Start.Add(time.Duration(opts.WarmupDays) * 24 * time.Hour).UnixMilli()
	var ev features.Event
	for n := 0; q.sim.Next(&ev); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		a, rej := q.store.Apply(&ev)
		if rej != nil {
			continue
		}
		if q.eng != nil {
			q.eng.OnApplied(&ev, a)
		}
		if isFeedback(ev.Type) || ev.TS < offersFrom {
			continue
		}
		ch, ok := decisionPoint(&ev, opts.DecideOneIn)
		if !ok {
			continue
		}
		if q.registry != nil && !q.trained && ev.TS >= q.trainAt {
			res.Model = q.train(opts, ev.TS)
		}
		idx, ok := q.sim.CustomerIndex(ev.IDs)
		if !ok {
			continue
		}
		if err := q.decide(&res, res.week(offersFrom, ev.TS), &ev, idx, ch); err != nil {
			return res, err
		}
	}
	res.Took = time.Since(started)
	return res, nil
}

// decide makes one decision at ev for customer idx on ch, delivers it and
// feeds the response back into the stream.
func (q *qualityRun) decide(res *PolicyResult, wk *WeekTally, ev *features.Event, idx int, ch features.Channel) error {
	now := ev.TS
	wk.Decisions++
	store := ""
	if ch == features.ChannelTablet {
		store = ev.Store
	}
	res.Decisions++
	if !q.store.ViewAt(&ev.IDs, now, &q.view) {
		return nil
	}
	// The best eligible offer by expected net revenue, for regret (and
	// the oracle's choice), under this policy's own state.
	cands := q.eligible(ch, store, now)
	var best *scenarios.Offer
	bestV := 0.0
	for _, o := range cands {
		if v := q.value(idx, o, ch); best == nil || v > bestV {
			best, bestV = o, v
		}
	}
	var chosen *scenarios.Offer
	var decisionID, coupon string
	q.seq++
	switch q.policy {
	case PolicyEngine, PolicyEngineModel, PolicyRules:
		t := time.UnixMilli(now)
		d, err := q.eng.Decide(context.Background(), &engine.DecideRequest{IDs: ev.IDs, Channel: ch, Store: store, Limit: 1, Locale: engine.LocaleEn, Now: &t})
		if err != nil {
			return err
		}
		if d.Group == engine.GroupHoldout {
			res.Holdouts++
		}
		if d.Fallback {
			res.Fallbacks++
		}
		if len(d.Offers) > 0 {
			chosen = q.set.Offer(d.Offers[0].OfferID)
			decisionID, coupon = d.DecisionID, d.Offers[0].CouponCode
		}
	case PolicyRandom, PolicyOracle, PolicyOracleTraits, PolicyOracleObservable:
		var pick *scenarios.Offer
		switch {
		case q.policy == PolicyOracle:
			if bestV > 0 {
				pick = best
			}
		case isOracle(q.policy):
			pickV := 0.0
			for _, o := range cands {
				if v := q.believed(idx, o, ch); v > pickV {
					pick, pickV = o, v
				}
			}
		case len(cands) > 0:
			pick = cands[q.rng.IntN(len(cands))]
		}
		decisionID = "q-" + q.policy + "-" + strconv.Itoa(q.seq)
		if pick != nil && q.claim(pick, ch, store, decisionID, now) {
			chosen, coupon = pick, engine.CouponCode(decisionID, pick.ID)
		}
	}
	if best != nil {
		res.OracleNet += max(bestV, 0)
		made, madeV := NumOfferTypes, 0.0
		if chosen != nil && q.types[chosen.Index] < NumOfferTypes {
			made, madeV = q.types[chosen.Index], q.value(idx, chosen, ch)
		}
		cell := &res.RegretByType[q.types[best.Index]][made]
		cell.Decisions++
		cell.Regret += max(bestV, 0) - madeV
	}
	if chosen == nil {
		if len(cands) > 0 {
			res.Empty++
		}
		return nil
	}
	t := q.types[chosen.Index]
	if t >= NumOfferTypes {
		return nil
	}
	res.ExpectedNet += q.value(idx, chosen, ch)
	// Common random numbers: the same customer at the same decision point
	// offered the same offer responds the same way under every policy.
	rng := rand.New(rand.NewPCG(fnv(ev.ID), fnv(chosen.ID)))
	dl := Delivery{Customer: idx, OfferID: chosen.ID, Type: t, Channel: ch, DecisionID: decisionID, CouponCode: coupon, Store: store, At: now}
	dl.Purpose, dl.NoConsent = chosen.ConsentPurpose, !chosen.RequiresConsent
	out, err := q.sim.Respond(dl, rng)
	if err != nil {
		return err
	}
	cost := int64(0)
	if out.Redeem {
		cost = chosen.Cost
	}
	res.Card.Add(out, cost)
	if q.registry != nil && !q.trained {
		q.logX = append(q.logX, engine.FeatureVector(nil, &q.view, chosen, ch, q.loc))
		q.logY = append(q.logY, out.Redeem)
	}
	tally := res.ByOffer[chosen.ID]
	if tally == nil {
		tally = &OfferTally{}
		res.ByOffer[chosen.ID] = tally
	}
	tally.Deliveries++
	if out.Redeem {
		tally.Redemptions++
		tally.Net += out.Revenue - cost
		wk.Net += out.Revenue - cost
	}
	if len(out.Events) > 0 {
		q.sim.Inject(out.Events...)
	}
	return nil
}

// train fits the engine+model policy's propensity model on the deliveries
// logged so far (features as they were at decision time, labelled by
// whether the customer redeemed) and makes it the engine's active model.
// It returns a description for the report; a model that cannot be
// trained leaves the engine on its priors.
func (q *qualityRun) train(opts QualityOptions, now int64) string {
	q.trained = true
	ds := &models.Dataset{Schema: engine.PropensitySchema, X: q.logX, Y: q.logY}
	q.logX, q.logY = nil, nil
	a, err := models.Train(ds, models.TrainOptions{Trees: opts.ModelTrees, Seed: opts.Seed, Now: time.UnixMilli(now)})
	if err != nil {
		return "not trained: " + err.Error()
	}
	dir, err := os.MkdirTemp("", "nbo-quality-model-")
	if err != nil {
		return "not saved: " + err.Error()
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.json")
	if err := a.Save(path); err != nil {
		return "not saved: " + err.Error()
	}
	if err := q.registry.Load(path, engine.PropensitySchema.Hash()); err != nil {
		return "not loaded: " + err.Error()
	}
	pos := 0
	for _, y := range ds.Y {
		if y {
			pos++
		}
	}
	m := a.Metrics
	return fmt.Sprintf("a %d-tree forest trained on day %d on %d deliveries (%d redeemed); on its %d holdout rows AUC %.3f, log loss %.3f",
		opts.ModelTrees, int((now-opts.Start.UnixMilli())/86_400_000)+1, len(ds.Y), pos, m.RowsTest, m.AUC, m.LogLoss)
}

// WriteQuality writes the decision-quality table: realised outcomes,
// ratios of net revenue to the random and oracle policies, and regret.
func WriteQuality(w io.Writer, m Machine, rep QualityReport) error {
	var b strings.Builder
	o := rep.Options
	fmt.Fprintf(&b, "## Decision quality on the simulated retailer\n\n")
	fmt.Fprintf(&b, "%s\n\n", machineLine(m))
	fmt.Fprintf(&b, "Seed %d, %d customers, %d simulated days (offers from day %d on), one decision point in %d page views online / store entries, one offer per decision.\n\n",
		o.Seed, o.Customers, o.Days, o.WarmupDays+1, o.DecideOneIn)
	b.WriteString("| policy | decisions | offers made | impressions | redemptions | in store | response rate | revenue | offer cost | net revenue | × random | × oracle | regret (expected net vs best eligible) | consent violations |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	ratio := func(a, base string) string {
		if r := rep.NetRatio(a, base); r != 0 {
			return fmt.Sprintf("%.2f", r)
		}
		return "–"
	}
	for _, r := range rep.Results {
		c := &r.Card
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.2f%% | %s | %s | %s | %s | %s | %s | %d |\n",
			c.Policy, r.Decisions, c.Deliveries, c.Impressions, c.Redemptions, c.InStore, 100*c.ResponseRate(),
			yuan(c.Revenue), yuan(c.OfferCost), yuan(c.NetRevenue()), ratio(c.Policy, PolicyRandom), ratio(c.Policy, PolicyOracle),
			yuan(int64(r.Regret())), c.ConsentViolations)
	}
	b.WriteString(`
- **engine**: the built-in scenarios, propensity priors (no trained model), Thompson sampling over the best 8 candidates by their offers' learnt rates (models.Bandit per offer × customer segment — channel habit, membership, baby/beauty/tech interest, cart abandonment as a sign of price sensitivity, store-visit share as a sign of distance, all read from behaviour, and the channel the offer is shown on — with each facet's effect learnt across segments, from the clicks and redemptions as they stream back, credited through attribution to the segment each decision was made in; each draw then moved towards the customer's own responses to offers of the same type; offers no scenario proposed start at half a scenario's lever, a discount that fades as the offer's outcomes accumulate), 5% holdout (the holdout gets the untargeted offers).
- **engine+model**: the engine as above that, halfway through the offer period, trains a propensity model (a random forest, models.Train on engine.PropensitySchema) on its own deliveries so far, labelled by redemption, and serves it from then on.
- **rules**: the same scenarios and scoring with no model, no exploration and no holdout.
- **random**: a uniformly random offer among those eligible (untargeted or proposed by a scenario firing now; validity, channel, store, consent, budget, contact policy).
- **oracle-observable**: a reference, not a product: knows only the traits a customer's behaviour reveals in the simulator (channel habit, favourite categories, membership, app use) and averages the response probability over the traits it does not (price sensitivity, affluence, distance to the home store, individual taste), then picks like the oracle. Price sensitivity and distance also leave footprints in behaviour (price-sensitive customers abandon more carts and pick cheaper items; customers far from their store visit it less, more at weekends, and shop online more), which this reference does not read: a policy that learns from behaviour can pass it.
- **oracle-without-taste**: knows every trait but not the individual taste term (N(0, 0.5²) on the log-odds per customer and offer type) and picks like the oracle: the ceiling for any policy that cannot read minds.
- **oracle**: knows every customer's hidden response probability and picks the eligible offer with the highest expected net revenue (P(redeem) × expected basket − offer cost).

Every policy chooses among the same eligible offers: the catalog's untargeted offers and those a scenario firing for the customer now proposes (the others speak to a moment — a lapse, a new membership, a VIP — and go only where their scenarios put them; a customer who withdrew personalization consent, 15% of the simulated ones, gets only the untargeted offers), valid now, shown on the channel, valid at the store, within budget and contact policy, and with the consent the offer's catalog entry requires on the channel (marketing for promotions, personalization for personalised services; transactional offers require none). A consent violation is a delivery to a customer who had not granted the offer's required purpose on that channel, per the simulator's truth.

Response rate is redemptions per impression. Revenue is the purchases that came with redemptions; net revenue subtracts the redeemed offers' cost. Regret sums, over the decision points, the expected net revenue of the best eligible offer minus that of the offer made (under each policy's own budgets and contact history).
`)
	for _, r := range rep.Results {
		if r.Model != "" {
			fmt.Fprintf(&b, "\nThe %s policy's model: %s.\n", r.Card.Policy, r.Model)
		}
	}
	writeWeeks(&b, rep)
	writeRegretByType(&b, rep)
	b.WriteString("\n### Where each policy's offers went\n\n")
	b.WriteString("| policy | fallback answers | no offer although one was eligible | holdout | most-made offers (share of offers made, redemptions per offer made, net) |\n|---|---:|---:|---:|---|\n")
	for _, r := range rep.Results {
		ids := make([]string, 0, len(r.ByOffer))
		for id := range r.ByOffer {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int {
			if d := r.ByOffer[b].Deliveries - r.ByOffer[a].Deliveries; d != 0 {
				return int(d)
			}
			return strings.Compare(a, b)
		})
		var top []string
		for _, id := range ids[:min(len(ids), 5)] {
			t := r.ByOffer[id]
			top = append(top, fmt.Sprintf("%s %.0f%%, %.1f%%, %s", id, 100*float64(t.Deliveries)/float64(max(r.Card.Deliveries, 1)),
				100*float64(t.Redemptions)/float64(max(t.Deliveries, 1)), yuan(t.Net)))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s |\n", r.Card.Policy, r.Fallbacks, r.Empty, r.Holdouts, strings.Join(top, "; "))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the decision-quality report: %w", err)
	}
	return nil
}

// writeWeeks writes the learning curve: each week of offers, every
// policy's realised net revenue over the oracle's for the decisions of
// that week, and the engine's over random's.
func writeWeeks(b *strings.Builder, rep QualityReport) {
	oracle, ok := rep.Result(PolicyOracle)
	if !ok || len(oracle.Weeks) < 2 {
		return
	}
	var cols []PolicyResult
	for _, r := range rep.Results {
		if r.Card.Policy != PolicyOracle {
			cols = append(cols, r)
		}
	}
	random, hasRandom := rep.Result(PolicyRandom)
	eng, hasEngine := rep.Result(PolicyEngine)
	b.WriteString("\n### Week by week\n\nEach policy's realised net revenue over the oracle's, for the decisions made in each week of offers (a redemption counts in the week of its decision). The learning policies start from priors and improve as outcomes come in; the reference policies do not learn.\n\n| week of offers | days | decisions |")
	for _, r := range cols {
		fmt.Fprintf(b, " %s × oracle |", r.Card.Policy)
	}
	if hasRandom && hasEngine {
		b.WriteString(" engine × random |")
	}
	b.WriteString("\n|---:|---|---:|" + strings.Repeat("---:|", len(cols)))
	if hasRandom && hasEngine {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	o := rep.Options
	weekRatio := func(a PolicyResult, base PolicyResult, i int) string {
		if i >= len(a.Weeks) || i >= len(base.Weeks) || base.Weeks[i].Net <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", float64(a.Weeks[i].Net)/float64(base.Weeks[i].Net))
	}
	for i, w := range oracle.Weeks {
		first := o.WarmupDays + 7*i + 1
		last := min(first+6, o.Days)
		fmt.Fprintf(b, "| %d | %d–%d | %d |", i+1, first, last, w.Decisions)
		for _, r := range cols {
			fmt.Fprintf(b, " %s |", weekRatio(r, oracle, i))
		}
		if hasRandom && hasEngine {
			fmt.Fprintf(b, " %s |", weekRatio(eng, random, i))
		}
		b.WriteString("\n")
	}
}

// writeRegretByType writes where the engine's regret goes: the cells of
// its RegretByType that hold the most, against the same cells under
// the oracle without taste (what knowing the traits recovers).
func writeRegretByType(b *strings.Builder, rep QualityReport) {
	eng, ok := rep.Result(PolicyEngine)
	if !ok {
		return
	}
	traits, hasTraits := rep.Result(PolicyOracleTraits)
	type cell struct{ best, made OfferType }
	var cells []cell
	var total float64
	for bt := range NumOfferTypes {
		for mt := range NumOfferTypes + 1 {
			if r := eng.RegretByType[bt][mt].Regret; r > 0 {
				cells = append(cells, cell{bt, mt})
				total += r
			}
		}
	}
	if total <= 0 {
		return
	}
	at := func(r *PolicyResult, c cell) TypeRegret { return r.RegretByType[c.best][c.made] }
	slices.SortFunc(cells, func(x, y cell) int {
		rx, ry := at(&eng, x).Regret, at(&eng, y).Regret
		switch {
		case rx > ry:
			return -1
		case rx < ry:
			return 1
		}
		return int(x.best)*16 + int(x.made) - int(y.best)*16 - int(y.made)
	})
	b.WriteString("\n### Where the engine's regret goes\n\nThe engine's regret by the type of the best eligible offer and the type of the offer it made, largest first")
	if hasTraits {
		b.WriteString(", with the same cells under the oracle without taste (which knows every trait: what reading the customer better could recover)")
	}
	b.WriteString(".\n\n| best offer's type | offer made | decisions | regret | share of the engine's regret |")
	if hasTraits {
		b.WriteString(" oracle-without-taste: decisions | its regret |")
	}
	b.WriteString("\n|---|---|---:|---:|---:|")
	if hasTraits {
		b.WriteString("---:|---:|")
	}
	b.WriteString("\n")
	name := func(t OfferType) string {
		if t >= NumOfferTypes {
			return "none"
		}
		return t.String()
	}
	for _, c := range cells[:min(len(cells), 8)] {
		e := at(&eng, c)
		fmt.Fprintf(b, "| %s | %s | %d | %s | %.0f%% |", name(c.best), name(c.made), e.Decisions, yuan(int64(e.Regret)), 100*e.Regret/total)
		if hasTraits {
			t := at(&traits, c)
			fmt.Fprintf(b, " %d | %s |", t.Decisions, yuan(int64(t.Regret)))
		}
		b.WriteString("\n")
	}
}

// machineLine describes where a report ran.
func machineLine(m Machine) string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	return fmt.Sprintf("Machine: %s, %d logical CPUs, %s, %s, host %s; run %s.", cpu, m.Cores, m.OS, m.Go, m.Host, m.Started.UTC().Format(time.RFC3339))
}

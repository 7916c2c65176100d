package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (r *recorder) Publish(key, value []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, append([]byte(nil), value...))
	r.mu.Unlock()
}

func (r *recorder) triggers(t *testing.T) []Trigger {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Trigger, 0, len(r.msgs))
	for _, m := range r.msgs {
		tr, err := DecodeTrigger(m)
		require.NoError(t, err)
		out = append(out, tr)
	}
	return out
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

// rig is an engine over a real store and the built-in library, with a
// driven clock.
type rig struct {
	store    *features.Store
	eng      *Engine
	budgets  *Budgets
	policy   *Policy
	dedup    *TriggerDedup
	bandit   *models.Bandit
	triggers *recorder
	stats    *Stats
	clock    time.Time
	set      *scenarios.Set
}

func newRig(t testing.TB, at time.Time) *rig {
	t.Helper()
	set, err := scenarios.LoadBuiltin(at)
	require.NoError(t, err)
	return newRigWith(t, at, set)
}

// builtinWith loads the built-in library with more files beside it.
func builtinWith(t testing.TB, at time.Time, files map[string]string) *scenarios.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(scenarios.Builtin(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(scenarios.Builtin(), path)
		fsys[path] = &fstest.MapFile{Data: b}
		return err
	}))
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	set, err := scenarios.Load(fsys, at)
	require.NoError(t, err)
	return set
}

// newRigWith is newRig deciding with set.
func newRigWith(t testing.TB, at time.Time, set *scenarios.Set) *rig {
	t.Helper()
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	policy, err := NewPolicy(PolicyOptions{})
	require.NoError(t, err)
	r := &rig{store: store, budgets: NewBudgets(), policy: policy, dedup: NewTriggerDedup(7*24*time.Hour, 1<<16), bandit: models.NewBandit(), triggers: &recorder{}, clock: at, set: set}
	r.stats, err = NewStats(StatsOptions{})
	require.NoError(t, err)
	r.eng, err = New(Options{
		Stats: r.stats,
		Store: store, Scenarios: func() *scenarios.Set { return set }, Budgets: r.budgets, Policy: policy,
		Explorer: &BanditExplorer{Bandit: r.bandit}, Triggers: r.triggers, TriggerDedup: r.dedup,
		Holdout: Holdout{Share: 0.0001}, Clock: func() time.Time { return r.clock },
	})
	require.NoError(t, err)
	t.Cleanup(r.eng.Close)
	return r
}

// apply decodes and applies event lines, calling the engine's hook like
// the ingest loop does.
func (r *rig) apply(t testing.TB, lines ...string) {
	t.Helper()
	var opts features.DecodeOptions
	opts.EnsureDefaults()
	for _, l := range lines {
		var ev features.Event
		require.Nil(t, features.DecodeEvent([]byte(l), r.clock.Add(time.Hour).UnixMilli(), &opts, &ev), l)
		r.eng.ResolveCoupon(&ev) // the ingest loop's Prepare hook
		a, rej := r.store.Apply(&ev)
		require.Nil(t, rej, l)
		r.eng.OnApplied(&ev, a)
	}
}

func ev(id string, at time.Time, typ, ch, ids, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"ts":%q,"type":%q,"channel":%q,"ids":%s%s}`, id, at.Format(time.RFC3339), typ, ch, ids, extra)
}

// storePurchaseDay is a day of events after which the store purchase →
// online review scenario fires for push.
func storePurchaseDay(day time.Time) []string {
	m := `{"member":"M1"}`
	return []string{
		ev("c1", day.Add(-48*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("s1", day, "store_enter", "store", m, `,"store":"S01"`),
		ev("s2", day.Add(20*time.Minute), "pos_purchase", "pos", m, `,"store":"S01","category":"skincare","sku":"K1","amount":25900`),
		ev("s3", day.Add(25*time.Minute), "store_exit", "store", m, `,"store":"S01"`),
	}
}

func TestOneTriggerPerFiringWithIDsStableAcrossReplays(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(30 * time.Minute)
	r.apply(t, storePurchaseDay(day)...)
	first := r.triggers.triggers(t)
	require.Len(t, first, 1, "exactly one trigger for the firing, however many events followed")
	require.Equal(t, "store_purchase_review", first[0].Scenario)
	require.Equal(t, features.Key("member:M1"), first[0].Customer)
	require.Equal(t, TriggerDecisionID(first[0].TriggerID), first[0].DecisionID)
	require.NotEmpty(t, first[0].Text)

	// Replaying the same events in the same engine publishes nothing new.
	r2 := newRig(t, day)
	r2.clock = r.clock
	r2.apply(t, storePurchaseDay(day)...)
	again := r2.triggers.triggers(t)
	require.Len(t, again, 1)
	require.Equal(t, first[0].TriggerID, again[0].TriggerID, "a replay in a fresh engine yields the same trigger ID")

	// After a restart from a snapshot (the dedup set restored), the replayed
	// events find their trigger already published.
	b, err := r.dedup.MarshalBinary()
	require.NoError(t, err)
	r3 := newRig(t, day)
	r3.clock = r.clock
	require.NoError(t, r3.dedup.UnmarshalBinary(b))
	r3.apply(t, storePurchaseDay(day)...)
	require.Empty(t, r3.triggers.triggers(t), "no second trigger after a restart")
}

func TestAPushedOfferIsNotRepeatedOnAnotherChannel(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	pushed := r.triggers.triggers(t)
	require.Len(t, pushed, 1)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3})
	for _, o := range d.Offers {
		require.NotEqual(t, pushed[0].OfferID, o.OfferID, "one action per moment across channels")
	}
}

func TestAbsenceFiresWhenTheWindowClosesNotWhenTheCustomerReturns(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	r := newRig(t, views)
	m := `{"member":"M1"}`
	r.clock = views.Add(10 * time.Minute)
	r.apply(t,
		ev("a1", views.Add(-17*24*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("a2", views.Add(-16*24*time.Hour), "store_enter", "store", m, `,"store":"S01"`),
		ev("a3", views, "product_view", "app", m, `,"category":"phones","sku":"P1"`),
		ev("a4", views.Add(5*time.Minute), "product_view", "web", m, `,"category":"phones","sku":"P1"`),
	)
	require.Empty(t, r.triggers.triggers(t), "inside the 48 h window nothing fires")
	require.Equal(t, 1, r.eng.PendingWakes())

	// Other customers' events move the stream's event time past the
	// window's close; M1 sends nothing.
	closes := views.Add(5*time.Minute + 48*time.Hour)
	r.clock = closes.Add(time.Minute)
	r.apply(t, ev("o1", closes.Add(30*time.Second), "page_view", "web", `{"member":"OTHER"}`, ""))
	got := r.triggers.triggers(t)
	require.Len(t, got, 1)
	require.Equal(t, "browsed_online_not_bought", got[0].Scenario)
	require.Equal(t, features.Key("member:M1"), got[0].Customer)
	require.Equal(t, closes.UnixMilli(), got[0].TS, "evaluated at the instant the window closed")
	require.Equal(t, fmt.Sprintf("wake@%d", closes.UnixMilli()), got[0].EventID)

	// The wake-up queue survives a restart through its snapshot section.
	b, err := r.eng.Wakes().MarshalBinary()
	require.NoError(t, err)
	r2 := newRig(t, views)
	require.NoError(t, r2.eng.Wakes().UnmarshalBinary(b))
	again, err := r2.eng.Wakes().MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, b, again)
}

func TestTriggersSpeakTheCustomersLanguage(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(time.Hour)
	events := storePurchaseDay(day)
	events[0] = ev("c1", day.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"marketing","granted":"true","locale":"en"}`)
	r.apply(t, events...)
	got := r.triggers.triggers(t)
	require.Len(t, got, 1)
	require.Equal(t, "en", got[0].Locale)
	require.Equal(t, r.set.Offer(got[0].OfferID).Text[scenarios.En], got[0].Text)
}

func TestAStoreRedemptionOfAPushedCouponIsCreditedToThePush(t *testing.T) {
	day := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	r := newRig(t, day)
	m := `{"member":"M1"}`
	r.clock = day.Add(10 * time.Minute)
	r.apply(t,
		ev("a1", day.Add(-17*24*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("a2", day.Add(-16*24*time.Hour), "store_enter", "store", m, `,"store":"S01"`),
		ev("a3", day, "product_view", "app", m, `,"category":"phones","sku":"P1"`),
		ev("a4", day.Add(5*time.Minute), "product_view", "web", m, `,"category":"phones","sku":"P1"`),
	)
	closes := day.Add(5*time.Minute + 48*time.Hour)
	r.clock = closes.Add(time.Minute)
	r.apply(t, ev("o1", closes.Add(30*time.Second), "page_view", "web", `{"member":"OTHER"}`, ""))
	pushed := r.triggers.triggers(t)
	require.Len(t, pushed, 1)
	require.NotEmpty(t, pushed[0].CouponCode)

	// The customer walks into the store; the till scans the coupon — no
	// decision ID, no offer ID, only the code — on a card the engine links
	// to the member.
	redeem := closes.Add(20 * time.Hour)
	r.clock = redeem.Add(time.Minute)
	r.apply(t,
		ev("t1", redeem.Add(-time.Minute), "identify", "pos", `{"member":"M1","card":"C1"}`, ""),
		ev("t2", redeem, "coupon_redeem", "pos", `{"card":"C1"}`, `,"store":"S01","coupon_code":"`+pushed[0].CouponCode+`","amount":399900`),
	)
	rep := r.stats.Snapshot()
	require.Len(t, rep.Channels, 1)
	push := rep.Channels[0]
	require.Equal(t, "push", push.Key, "credited to the push decision")
	require.EqualValues(t, 1, push.Redemptions)
	require.EqualValues(t, 399900, push.Revenue)
	require.EqualValues(t, 1, push.OnlineToStore, "pushed online, redeemed in store")
	require.Equal(t, "push", rep.LastTouch[0].Channel)
	u, ok := r.budgets.Usage(pushed[0].OfferID)
	require.True(t, ok)
	require.EqualValues(t, 1, u.Spent, "the redemption spent the reservation")

	// The customer's offer history counts it too (redeemed() in rules, the
	// offer's redemption limit), although the till named only the code.
	var v features.View
	require.True(t, r.store.ViewKey("member:M1", redeem.UnixMilli(), &v))
	var redeemed uint32
	for _, o := range v.Offers {
		if o.Offer == pushed[0].OfferID {
			redeemed = o.Redemptions
		}
	}
	require.EqualValues(t, 1, redeemed, "the code resolves to its offer before the event is applied: %+v", v.Offers)
}

func TestAnEmptyDecisionSaysWhy(t *testing.T) {
	night := time.Date(2026, 11, 20, 23, 0, 0, 0, shanghai)
	r := newRig(t, night)
	r.clock = night.Add(30 * time.Minute)
	r.apply(t, storePurchaseDay(night)...)
	ask := func(ch features.Channel, ids features.IDs) *Decision {
		return decide(t, r, DecideRequest{IDs: ids, Channel: ch, Limit: 3, Locale: LocaleEn})
	}
	d := ask(features.ChannelSMS, features.IDs{Member: "M1"})
	require.Empty(t, d.Offers)
	require.Equal(t, DenyQuietHours, d.EmptyReason, "23:30 at the store is quiet for SMS")
	// No offer of the library is shown at the till.
	d = ask(features.ChannelPOS, features.IDs{Member: "M1"})
	require.Empty(t, d.Offers)
	require.Equal(t, EmptyNotEligible, d.EmptyReason)
	d = ask(features.ChannelApp, features.IDs{Member: "M1"})
	require.NotEmpty(t, d.Offers)
	require.Empty(t, d.EmptyReason, "an answer with offers gives no empty reason")
}

func TestNoPushDuringQuietHours(t *testing.T) {
	night := time.Date(2026, 11, 20, 23, 0, 0, 0, shanghai)
	r := newRig(t, night)
	r.clock = night.Add(30 * time.Minute)
	r.apply(t, storePurchaseDay(night)...)
	require.Empty(t, r.triggers.triggers(t), "22:00–08:00 in the store's zone is quiet for push")
}

func TestStaleEventsRaiseNoTriggers(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(5 * time.Hour) // catching up: the events are hours old
	r.apply(t, storePurchaseDay(day)...)
	require.Empty(t, r.triggers.triggers(t))
}

func decide(t testing.TB, r *rig, req DecideRequest) *Decision {
	t.Helper()
	d, err := r.eng.Decide(context.Background(), &req)
	require.NoError(t, err)
	return d
}

func TestDecideExplainsTargetedOffersAndFallsBackForStrangers(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil // no push first: see TestAPushedOfferIsNotRepeatedOnAnotherChannel
	r.eng.opts.Explorer = nil // rank by expected score: a lucky draw may lift any offer
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)

	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3, Locale: LocaleEn})
	require.Equal(t, "member:M1", d.Customer)
	require.Equal(t, GroupTreatment, d.Group)
	require.False(t, d.Fallback)
	require.NotEmpty(t, d.Offers)
	require.Equal(t, "store_purchase_review", d.Offers[0].Scenario, "the targeted offer ranks first: %+v", d.Offers)
	require.Contains(t, d.Offers[0].Reason, "S01")
	require.Equal(t, day.Add(25*time.Minute).UTC(), d.NewestEventTS)
	require.Greater(t, d.Offers[0].Score.Total, 0.0)

	// The built-in untargeted offers all need marketing consent, which
	// nobody has given for a stranger.
	unknown := decide(t, r, DecideRequest{IDs: features.IDs{Member: "NOBODY"}, Channel: features.ChannelApp, Limit: 2, Locale: LocaleZhCN})
	require.True(t, unknown.Fallback)
	require.Empty(t, unknown.Customer)
	require.Empty(t, unknown.Offers)
	require.Equal(t, "not_eligible", unknown.EmptyReason)
}

// An offer that is not untargeted goes only where a scenario proposing it
// fires; an untargeted one also to customers no scenario fits and to
// strangers, when they may see it.
func TestOnlyUntargetedOffersGoWhereNoScenarioProposesThem(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	set := builtinWith(t, day, map[string]string{"walk-in.yaml": `offers:
  - id: store_events
    type: experience
    title: {zh-CN: 门店活动, en: Store events}
    text: {zh-CN: 本周门店活动, en: What is on at the store this week}
    channels: [app]
    prior: 0.5
    untargeted: true
  - id: staff_only_coupon
    type: coupon
    title: {zh-CN: 员工券, en: Staff coupon}
    text: {zh-CN: 员工专享, en: For staff}
    value: 50000
    cost: 100
    channels: [app]
    prior: 0.9
scenarios:
  - id: staff
    when: member && m_score >= 5
    offers: [staff_only_coupon]
    channels: [app]
    trigger: on_request
    priority: 10
    reason: {zh-CN: 员工, en: staff}
`})
	r := newRigWith(t, day, set)
	r.eng.opts.Triggers = nil
	r.eng.opts.Explorer = nil
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)

	for _, ids := range []features.IDs{{Member: "M1"}, {Member: "NOBODY"}} {
		d := decide(t, r, DecideRequest{IDs: ids, Channel: features.ChannelApp, Limit: 10, Locale: LocaleEn})
		require.True(t, slices.ContainsFunc(d.Offers, func(o OfferResult) bool { return o.OfferID == "store_events" }),
			"%s gets the untargeted offer: %+v", ids.Member, d.Offers)
		for _, o := range d.Offers {
			require.NotEqual(t, "staff_only_coupon", o.OfferID, "%s is no staff: its scenario does not fire", ids.Member)
			if o.Scenario == "" {
				require.True(t, set.Offer(o.OfferID).Untargeted, "%s got %s, which only its scenarios give", ids.Member, o.OfferID)
			}
		}
	}
}

func TestHoldoutGetsNoTargetedOffers(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Holdout = Holdout{Share: 1} // everyone is held out
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3})
	require.Equal(t, GroupHoldout, d.Group)
	for _, o := range d.Offers {
		require.Empty(t, o.Scenario, "holdout customers get only untargeted offers")
		require.Equal(t, ReasonFallback, o.ReasonCode, "chosen without the customer's segment")
	}
	require.Empty(t, r.triggers.triggers(t), "and no push triggers")
}

func TestDecisionLogRecordsEveryDecision(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	log := &recorder{}
	r.eng.opts.Decisions = log
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3})
	require.Len(t, log.msgs, 1)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(log.msgs[0], &rec))
	require.Equal(t, d.DecisionID, rec["decision_id"])
	require.Equal(t, "app", rec["channel"])
	require.Len(t, rec["offers"], len(d.Offers))
}

// builtinFS is a writable copy of the built-in scenario library, for a
// test to add its own files to.
func builtinFS(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(scenarios.Builtin(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(scenarios.Builtin(), p)
		fsys[p] = &fstest.MapFile{Data: data}
		return err
	}))
	return fsys
}

// benchSet is the built-in library plus 100 coupons that one always-true
// scenario proposes: a customer with 100 candidate offers.
func benchSet(b *testing.B, at time.Time) *scenarios.Set {
	fsys := builtinFS(b)
	var offers, ids strings.Builder
	offers.WriteString("offers:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&offers, `  - id: bench_%03d
    type: coupon
    title: {zh-CN: 券 %d, en: Coupon %d}
    text: {zh-CN: 立减, en: Money off}
    value: %d
    cost: 500
    channels: [app]
    fulfilment: either
    prior: 0.%02d
    category: bench_%d
`, i, i, i, 1000+i*10, 1+i%90, i%10)
		if i > 0 {
			ids.WriteString(", ")
		}
		fmt.Fprintf(&ids, "bench_%03d", i)
	}
	fsys["bench_offers.yaml"] = &fstest.MapFile{Data: []byte(offers.String())}
	fsys["bench_scenarios.yaml"] = &fstest.MapFile{Data: []byte(`scenarios:
  - id: bench_all
    description: Proposes every bench offer.
    when: orders >= 0
    offers: [` + ids.String() + `]
    channels: [app]
    trigger: on_request
    priority: 10
    reason: {zh-CN: 测试, en: bench}
`)}
	set, err := scenarios.Load(fsys, at)
	require.NoError(b, err)
	return set
}

// BenchmarkDecide is one in-process decision for a known customer with
// 100 candidate offers and the built-in library, over 1000 customers, with
// caps and budgets that never run out (so every decision does the whole
// pipeline) and no decision cache, at the Go default GC setting (GOGC=100
// unless the environment says otherwise). Decisions are recorded for
// attribution as in production, so Stats' held records grow through the
// run (600k at 200000x) and with them the heap each collection marks.
func BenchmarkDecide(b *testing.B) { benchDecide(b) }

// BenchmarkDecideServeGC is BenchmarkDecide at the GC setting `nbo serve`
// runs with (gc_percent, default 400): the number the service's own
// latency sees. It is reported beside BenchmarkDecide, not instead of it.
func BenchmarkDecideServeGC(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	benchDecide(b)
}

func benchDecide(b *testing.B) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(b, day)
	set := benchSet(b, day)
	policy, err := NewPolicy(PolicyOptions{Caps: map[features.Channel]ChannelCap{}})
	require.NoError(b, err)
	r.eng.opts.Policy = policy
	r.eng.opts.Scenarios = func() *scenarios.Set { return set }
	r.clock = day.Add(time.Hour)
	runDecideBench(b, r, benchCustomers(b, r, day, "B", 1000, "phones"), true)
}

// benchCustomers makes n app customers (members prefix0…) who consented
// to marketing, viewed a product of category and bought at store S01, and
// returns a request for each.
func benchCustomers(b *testing.B, r *rig, day time.Time, prefix string, n int, category string) []DecideRequest {
	for c := 0; c < n; c++ {
		m := fmt.Sprintf(`{"member":"%s%d"}`, prefix, c)
		r.apply(b,
			ev(fmt.Sprintf("%s%d-1", prefix, c), day.Add(-time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
			ev(fmt.Sprintf("%s%d-2", prefix, c), day, "product_view", "app", m, fmt.Sprintf(`,"category":%q,"sku":"P1"`, category)),
			ev(fmt.Sprintf("%s%d-3", prefix, c), day.Add(time.Minute), "pos_purchase", "pos", m, `,"store":"S01","category":"phones","amount":1000`),
		)
	}
	reqs := make([]DecideRequest, n)
	for c := range reqs {
		reqs[c] = DecideRequest{IDs: features.IDs{Member: fmt.Sprintf("%s%d", prefix, c)}, Channel: features.ChannelApp, Limit: 3}
	}
	return reqs
}

// runDecideBench decides for the requests in turn, b.N times, and reports
// the median and 99th percentile latency besides ns/op. With serving,
// every decision must serve an offer (the whole pipeline ran); without,
// none may.
func runDecideBench(b *testing.B, r *rig, reqs []DecideRequest, serving bool) {
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := r.eng.Decide(context.Background(), &reqs[i%len(reqs)])
		lat = append(lat, time.Since(start))
		if err != nil || (len(d.Offers) > 0) != serving {
			b.Fatalf("decision %d: %v %+v", i, err, d)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// At the channel's cap a customer can still be served transactional
// offers, and the scenarios that propose them still fire; nothing else is
// served. The transactional offer keeps its own cap.
func TestACustomerAtTheChannelCapStillGetsTransactionalScenarioOffers(t *testing.T) {
	day := time.Date(2026, 11, 20, 11, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil
	r.eng.opts.Explorer = nil
	policy, err := NewPolicy(PolicyOptions{Caps: map[features.Channel]ChannelCap{features.ChannelTablet: {PerDay: 3}}})
	require.NoError(t, err)
	r.eng.opts.Policy, r.policy = policy, policy
	r.clock = day.Add(23 * time.Hour)
	now := r.clock.UnixMilli()
	for _, member := range []string{"M1", "M2"} {
		m := `{"member":"` + member + `"}`
		r.apply(t,
			ev("j-"+member, day, "signup", "store", m, `,"store":"S01"`),
			ev("c-"+member, day.Add(time.Minute), "consent", "store", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		)
	}
	ask := func(member string) *Decision {
		return decide(t, r, DecideRequest{IDs: features.IDs{Member: member}, Channel: features.ChannelTablet, Store: "S01", Limit: 3, Locale: LocaleEn})
	}

	below := ask("M1")
	require.Equal(t, "new_store_member_onboarding", below.Offers[0].Scenario, "%+v", below.Offers)
	require.True(t, slices.ContainsFunc(below.Offers, func(o OfferResult) bool { return !r.set.Offer(o.OfferID).Transactional }),
		"below the cap, marketing offers are served too: %+v", below.Offers)

	// M2 has had the SMS channel's three contacts today.
	for i := range 3 {
		r.policy.Record("member:M2", features.ChannelTablet, fmt.Sprintf("earlier-%d", i), now-int64(i+1)*60_000)
	}
	_, why := r.policy.Allow("member:M2", features.ChannelTablet, OfferPolicy{ID: "promo"}, "S01", nil, now)
	require.Equal(t, DenyCapDay, why)
	at := ask("M2")
	require.Len(t, at.Offers, 1, "only the transactional offer: %+v", at.Offers)
	require.Equal(t, "app_onboarding", at.Offers[0].OfferID)
	require.Equal(t, "new_store_member_onboarding", at.Offers[0].Scenario, "its scenario still fires at the cap")
	require.False(t, at.Fallback)

	require.Empty(t, at.EmptyReason, "an answer with an offer gives no empty reason")
	again := ask("M2")
	require.Empty(t, again.Offers, "app_onboarding is capped at once in 30 days, transactional or not")
	require.Equal(t, DenyCapDay, again.EmptyReason, "an empty answer says why: the channel's daily cap")
	c := r.eng.Counters()
	require.Equal(t, int64(3), c.Decisions)
	require.Equal(t, int64(1), c.Empty, "the last decision served nothing")
	require.Equal(t, int64(1), c.Fallbacks, "and so served no scenario's offer either")
}

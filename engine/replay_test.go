package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/scenarios"
)

// replaySet is the built-in library plus two budgeted offers, one redeemed
// in store (a per-store budget too) and one online, that an always-true
// scenario proposes first.
func replaySet(t testing.TB, at time.Time) *scenarios.Set {
	return withOffersForEveryone(t, at, "replay", "app, web", `
  - id: replay_instore
    type: coupon
    title: {zh-CN: 到店券, en: In-store coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 90000
    cost: 700
    channels: [app, web]
    fulfilment: in_store
    budget: {total: 6300, per_store: 2800} # money: 9 and 4 issues at cost 700
    prior: 0.9
    category: replay_a
    untargeted: true # the holdout's decisions take budget too
  - id: replay_online
    type: coupon
    title: {zh-CN: 线上券, en: Online coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 80000
    cost: 500
    channels: [app, web]
    fulfilment: online
    budget: {total: 3500} # money: 7 issues at cost 500
    prior: 0.9
    category: replay_b
    untargeted: true
  - id: replay_plenty
    type: coupon
    title: {zh-CN: 通用券, en: Any coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 20000
    cost: 100
    channels: [app, web]
    budget: {total: 10000000} # never runs out: reservations to expire
    prior: 0.5
    category: replay_c
    untargeted: true
`, "replay_instore", "replay_online")
}

// withOffersForEveryone is the built-in library plus the offers (a YAML
// list) that a scenario NAME_all, true for everyone on channels, proposes
// at priority 90.
func withOffersForEveryone(t testing.TB, at time.Time, name, channels, offers string, ids ...string) *scenarios.Set {
	t.Helper()
	fsys := builtinFS(t)
	fsys[name+"_offers.yaml"] = &fstest.MapFile{Data: []byte("offers:" + offers)}
	fsys[name+"_scenarios.yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`scenarios:
  - id: %s_all
    description: Proposes the %s offers to everyone.
    when: orders >= 0
    offers: [%s]
    channels: [%s]
    trigger: on_request
    priority: 90
    reason: {zh-CN: 测试, en: %s}
`, name, name, strings.Join(ids, ", "), channels, name))}
	set, err := scenarios.Load(fsys, at)
	require.NoError(t, err)
	return set
}

// replayRig is a rig over replaySet whose decisions are logged, with a
// short reservation TTL, a holdout group and no push triggers (they are
// the event replay's, not the decision log's).
func replayRig(t testing.TB, at time.Time) (*rig, *recorder) {
	t.Helper()
	r := newRig(t, at)
	r.set = replaySet(t, at)
	log := &recorder{}
	r.eng.opts.Scenarios = func() *scenarios.Set { return r.set }
	r.eng.opts.Decisions = log
	r.eng.opts.Triggers = nil
	r.eng.opts.ReservationTTL = 2 * time.Hour
	r.eng.opts.Holdout = Holdout{Share: 0.25}
	r.eng.opts.Holdout.EnsureDefaults()
	r.budgets.SetCatalog(r.set)
	r.eng.seeded = rand.New(rand.NewPCG(1, 2)) // the same draws every run
	return r, log
}

type engineState struct{ budgets, policy, stats []byte }

func stateOf(t testing.TB, r *rig) engineState {
	t.Helper()
	r.eng.FlushRecords()
	var s engineState
	var err error
	s.budgets, err = r.budgets.MarshalBinary()
	require.NoError(t, err)
	s.policy, err = r.policy.MarshalBinary()
	require.NoError(t, err)
	s.stats, err = r.stats.MarshalBinary()
	require.NoError(t, err)
	return s
}

func (s engineState) restore(t testing.TB, r *rig) {
	t.Helper()
	require.NoError(t, r.budgets.UnmarshalBinary(s.budgets))
	require.NoError(t, r.policy.UnmarshalBinary(s.policy))
	require.NoError(t, r.stats.UnmarshalBinary(s.stats))
}

func replayAll(t *testing.T, r *rig, now time.Time, records [][]byte) ReplayStats {
	t.Helper()
	rp := r.eng.NewReplayer(now)
	for _, rec := range records {
		require.NoError(t, rp.Replay(rec))
	}
	return rp.Stats
}

func TestReplayingTheDecisionLogRestoresBudgetsCapsAndAttribution(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	var setup []string
	for i := 1; i <= 12; i++ {
		m := fmt.Sprintf(`{"member":"M%d"}`, i)
		setup = append(setup,
			ev(fmt.Sprintf("c%d", i), t0.Add(-48*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
			ev(fmt.Sprintf("s%d", i), t0.Add(-24*time.Hour), "store_enter", "store", m, fmt.Sprintf(`,"store":"S0%d"`, 1+i%3)))
	}
	a, log := replayRig(t, t0)
	a.clock = t0
	a.apply(t, setup...)

	// decideAt makes the i-th request of a run: known customers and
	// strangers, with and without a store, on two channels.
	decideAt := func(r *rig, i int, at time.Time) *Decision {
		req := DecideRequest{Channel: features.ChannelApp, Limit: 3, Now: &at}
		if i%2 == 1 {
			req.Channel = features.ChannelWeb
		}
		if i%5 == 4 {
			req.IDs = features.IDs{Member: fmt.Sprintf("STRANGER%d", i)}
		} else {
			req.IDs = features.IDs{Member: fmt.Sprintf("M%d", 1+i%12)}
		}
		if i%3 == 0 {
			req.Store = fmt.Sprintf("S0%d", 1+i%2)
		}
		return decide(t, r, req)
	}

	// Before the snapshot: an hour of requests.
	for i := 0; i < 20; i++ {
		decideAt(a, i, t0.Add(time.Duration(i)*3*time.Minute))
	}
	snap := stateOf(t, a)
	cut := len(log.msgs)

	// After it: two more hours, with two decisions for one customer in
	// the same millisecond, and a redemption of one offer served.
	var redeem string
	for i := 20; i < 60; i++ {
		at := t0.Add(time.Hour + time.Duration(i-20)*3*time.Minute)
		d := decideAt(a, i, at)
		if i == 30 {
			decideAt(a, 30, at)
		}
		for _, o := range d.Offers {
			if redeem == "" && o.OfferID == "replay_instore" && d.Customer != "" {
				redeem = ev("r1", at.Add(time.Minute), "coupon_redeem", "pos", `{"member":"`+d.Customer[len("member:"):]+`"}`,
					`,"store":"S01","offer_id":"replay_instore","decision_id":"`+d.DecisionID+`","amount":120000`)
			}
		}
	}
	require.NotEmpty(t, redeem, "an in-store offer was served after the snapshot")
	end := t0.Add(3*time.Hour + 30*time.Minute)
	a.clock = end
	a.apply(t, redeem)
	a.budgets.Expire(end.UnixMilli())
	want := stateOf(t, a)
	used, ok := a.budgets.Usage("replay_instore")
	require.True(t, ok)
	require.EqualValues(t, 1, used.Spent)
	rep := a.stats.Snapshot()
	require.Greater(t, rep.Total.Holdout, int64(0), "some decisions fell in the holdout group")

	// The restart: the snapshot's state, the features (restored from
	// their own snapshot in production), then the decisions logged since
	// the snapshot — and two it already has — then the events since it.
	b, _ := replayRig(t, t0)
	b.clock = t0
	b.apply(t, setup...)
	snap.restore(t, b)
	b.clock = end
	got := replayAll(t, b, end, log.msgs[cut-2:])
	// Replaying again — all of it this time — changes nothing.
	replayed := stateOf(t, b)
	again := replayAll(t, b, end, log.msgs)
	require.Equal(t, replayed, stateOf(t, b), "a second replay changes nothing")
	require.Zero(t, again.Reserved)
	require.Zero(t, again.Contacts)
	require.Zero(t, again.Recorded)
	// Then the events since the snapshot, as the ingest loop applies them.
	b.apply(t, redeem)
	b.budgets.Expire(end.UnixMilli()) // as the serving process does every minute
	gotState := stateOf(t, b)
	for _, id := range a.budgets.Offers() {
		u, _ := a.budgets.Usage(id)
		v, _ := b.budgets.Usage(id)
		require.Equal(t, u, v, "budget of %s", id)
	}
	require.Equal(t, want.budgets, gotState.budgets, "budgets")
	require.Equal(t, want.policy, gotState.policy, "contact ledger")
	require.Equal(t, a.stats.Snapshot(), b.stats.Snapshot(), "attribution report")
	require.Equal(t, want.stats, gotState.stats, "attribution records")
	require.Equal(t, len(log.msgs)-cut+2, got.Decisions)
	require.Positive(t, got.Reserved)
	require.Positive(t, got.Expired, "reservations whose time was up are not re-created")
	require.Positive(t, got.Contacts)
	require.Positive(t, got.Recorded)

	// Replaying what the snapshot already holds, just after it was
	// taken, changes nothing either.
	d, _ := replayRig(t, t0)
	d.clock = t0
	d.apply(t, setup...)
	snap.restore(t, d)
	held := replayAll(t, d, t0.Add(time.Hour), log.msgs[:cut])
	require.Equal(t, snap, stateOf(t, d))
	require.Positive(t, held.Held, "the snapshot's own reservations are not taken twice")
	require.Zero(t, held.Reserved+held.Expired+held.Contacts+held.Recorded, "%+v", held)

	// Without the replay the restart would have budget to hand out again.
	c, _ := replayRig(t, t0)
	snap.restore(t, c)
	c.budgets.Expire(end.UnixMilli())
	for _, id := range []string{"replay_instore", "replay_online"} {
		u, _ := b.budgets.Usage(id)
		v, _ := c.budgets.Usage(id)
		require.Less(t, v.Reserved+v.Spent, u.Reserved+u.Spent, id)
	}
}

func TestReplayRecordsTheHoldoutsEmptyDecisionsOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	r, _ := replayRig(t, t0)
	d := &Decision{DecisionID: "d-holdout", Customer: "member:M1", Group: GroupHoldout}
	rec, err := encodeDecision(d, &DecideRequest{Channel: features.ChannelApp}, t0.UnixMilli(), nil, nil)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		st := replayAll(t, r, t0, [][]byte{rec})
		require.Equal(t, 1-i, st.Recorded)
		require.EqualValues(t, 1, r.stats.Snapshot().Total.Holdout)
	}
	// The engine records it the same way.
	o, _ := replayRig(t, t0)
	o.eng.recordServed(d, nil, nil, couponKey{}, features.ChannelApp, "member:M1", t0.UnixMilli(), true)
	require.Equal(t, stateOf(t, o).stats, stateOf(t, r).stats)
}

func TestReplayPointRoundTrips(t *testing.T) {
	p := ReplayPoint{At: 1_790_000_000_000, Offsets: map[int]int64{0: 12, 3: 0, 1: 7}}
	b, err := p.MarshalBinary()
	require.NoError(t, err)
	var q ReplayPoint
	require.NoError(t, q.UnmarshalBinary(b))
	require.Equal(t, p, q)
	require.Error(t, q.UnmarshalBinary(b[:len(b)-1]))
	require.Error(t, q.UnmarshalBinary(append([]byte{9}, b[1:]...)))
}

// FuzzReplay feeds the replayer arbitrary records: it never panics, a
// record it refuses changes nothing (no half-applied decision), and a
// record replayed twice changes nothing the second time.
func FuzzReplay(f *testing.F) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	r, log := replayRig(f, t0)
	r.clock = t0
	r.apply(f,
		ev("c1", t0.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("s1", t0.Add(-24*time.Hour), "store_enter", "store", `{"member":"M1"}`, `,"store":"S01"`))
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Minute)
		req := DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3, Now: &at}
		if i%2 == 1 {
			req.IDs, req.Channel, req.Store = features.IDs{Member: fmt.Sprintf("X%d", i)}, features.ChannelWeb, "S02"
		}
		decide(f, r, req)
	}
	r.eng.FlushRecords()
	require.Len(f, log.msgs, 6, "every decision is logged")
	for _, m := range log.msgs {
		f.Add(m)
	}
	f.Add([]byte(`{"decision_id":"d1","ts":"2026-11-20T01:00:00Z","channel":"app","group":"holdout"}`))
	f.Add([]byte(`{"decision_id":"d2","ts":"2026-11-20T01:00:00Z","channel":"app","customer":"member:M1","offers":[{"offer_id":"replay_online"}],"served":[{"offer_id":"replay_online","expiry":"x"}]}`))
	// The reserved store: a record's own, an empty one, one from before
	// the field (null reads as absent), one that is not a string, and
	// two offers of one decision under different stores.
	for _, rs := range []string{`"S09"`, `""`, `null`, `5`} {
		f.Add([]byte(`{"decision_id":"d3","ts":"2026-11-20T01:00:00Z","channel":"app","customer":"member:M1","offers":[{"offer_id":"replay_online"}],"served":[{"offer_id":"replay_online","value":80000,"expires_ms":1795654800000,"reserved_store":` + rs + `}]}`))
	}
	f.Add([]byte(`{"decision_id":"d4","ts":"2026-11-20T01:00:00Z","channel":"web","customer":"member:M1","offers":[{"offer_id":"replay_instore"},{"offer_id":"replay_online"}],"served":[{"offer_id":"replay_instore","store":"S01","reserved_store":"S01"},{"offer_id":"replay_online","reserved_store":"S02"}]}`))
	// Every input starts from the state after the seeds' decisions, with
	// nothing of them replayed.
	base := stateOf(f, r)
	now := t0.Add(time.Hour)
	for _, m := range log.msgs {
		require.NoError(f, r.eng.NewReplayer(now).Replay(m), "a logged decision replays")
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		base.restore(t, r)
		rp := r.eng.NewReplayer(now)
		if err := rp.Replay(record); err != nil {
			require.Equal(t, base, stateOf(t, r), "a refused record changed the state")
			return
		}
		once := stateOf(t, r)
		require.NoError(t, r.eng.NewReplayer(now).Replay(record))
		require.Equal(t, once, stateOf(t, r), "replaying a record twice changed the state")
	})
}

// storeMoveRig is a replay rig at the snapshot the test restarts from:
// customer M1 last visited store S01, replay_online has one unit of budget
// in each of S01 and S02, and replay_instore's S02 budget is spent, so that a decision
// for M1 at S02 with one offer serves replay_online alone (with an
// in-store offer beside it, even a record without reserved_store would
// name the store).
func storeMoveRig(t *testing.T, t0 time.Time) (*rig, *recorder) {
	t.Helper()
	r, log := replayRig(t, t0)
	r.eng.opts.Holdout = Holdout{} // M1 is served
	r.clock = t0
	r.apply(t,
		ev("c1", t0.Add(-48*time.Hour), "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("s1", t0.Add(-24*time.Hour), "store_enter", "store", `{"member":"M1"}`, `,"store":"S01"`))
	r.budgets.SetLimits("replay_online", 7, map[string]int64{"S01": 1, "S02": 1})
	for i := range 4 {
		_, ok := r.budgets.Reserve("replay_instore", "S02", fmt.Sprintf("earlier-%d", i), t0.UnixMilli(), 24*time.Hour)
		require.True(t, ok)
	}
	return r, log
}

// storeMoved makes, on a storeMoveRig, the decision the store-move tests
// replay: after the snapshot M1 enters S02, then asks for one offer
// online. It returns the snapshot, the decision's log record and the
// state after the decision.
func storeMoved(t *testing.T, t0 time.Time) (snap engineState, record []byte, after engineState) {
	t.Helper()
	a, log := storeMoveRig(t, t0)
	snap = stateOf(t, a)
	a.apply(t, ev("s2", t0.Add(time.Minute), "store_enter", "store", `{"member":"M1"}`, `,"store":"S02"`))
	at := t0.Add(2 * time.Minute)
	d := decide(t, a, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 1, Now: &at})
	require.Len(t, d.Offers, 1)
	require.Equal(t, "replay_online", d.Offers[0].OfferID)
	require.Empty(t, d.Offers[0].FulfilmentStore, "an online offer names no fulfilment store to the client")
	u, _ := a.budgets.Usage("replay_online")
	require.Equal(t, map[string]StoreUsage{"S01": {Limit: 1}, "S02": {Limit: 1, Reserved: 1}}, u.Stores, "the decision reserved under S02")
	require.Len(t, log.msgs, 1)
	return snap, log.msgs[0], stateOf(t, a)
}

// withoutReservedStore rewrites a decision record as versions before
// served[].reserved_store wrote it; with empty set, the field says "".
func withoutReservedStore(t *testing.T, record []byte, empty bool) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(record, &m))
	for _, s := range m["served"].([]any) {
		s := s.(map[string]any)
		require.Contains(t, s, "reserved_store")
		delete(s, "reserved_store")
		if empty {
			s["reserved_store"] = ""
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestReplayReservesUnderTheStoreTheDecisionUsedNotTheStoreAtTheSnapshot(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	snap, record, want := storeMoved(t, t0)
	require.Contains(t, string(record), `"reserved_store":"S02"`)

	// The restart: the features as of the snapshot (M1's last store is
	// still S01 there) and the snapshot's state, then the decision.
	b, _ := storeMoveRig(t, t0)
	snap.restore(t, b)
	got := replayAll(t, b, t0.Add(3*time.Minute), [][]byte{record})
	require.Equal(t, 1, got.Reserved)
	u, _ := b.budgets.Usage("replay_online")
	require.Equal(t, map[string]StoreUsage{"S01": {Limit: 1}, "S02": {Limit: 1, Reserved: 1}}, u.Stores, "S02's budget is taken, S01's untouched")
	now := t0.Add(3 * time.Minute).UnixMilli()
	require.False(t, b.budgets.Available("replay_online", "S02", now))
	require.True(t, b.budgets.Available("replay_online", "S01", now))
	require.Equal(t, want, stateOf(t, b), "the replay leaves the state the decision left")
}

func TestReplayOfARecordWithoutReservedStoreTakesTheStoreAsBefore(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, shanghai)
	snap, record, _ := storeMoved(t, t0)
	for _, c := range []struct {
		name   string
		record []byte
		want   map[string]StoreUsage
	}{
		{"a record written before the field existed takes the customer's store at the snapshot, as those versions did",
			withoutReservedStore(t, record, false), map[string]StoreUsage{"S01": {Limit: 1, Reserved: 1}, "S02": {Limit: 1}}},
		{"a record whose reserved store is empty reserves under no store, whatever the customer's store",
			withoutReservedStore(t, record, true), map[string]StoreUsage{"S01": {Limit: 1}, "S02": {Limit: 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := storeMoveRig(t, t0)
			snap.restore(t, r)
			for i := range 2 {
				got := replayAll(t, r, t0.Add(3*time.Minute), [][]byte{c.record})
				require.Equal(t, 1-i, got.Reserved, "replayed once, reserved once")
				require.Equal(t, 1-i, got.Recorded)
				u, _ := r.budgets.Usage("replay_online")
				require.Equal(t, int64(1), u.Reserved)
				require.Equal(t, c.want, u.Stores)
			}
		})
	}
}

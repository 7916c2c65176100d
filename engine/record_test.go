package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

func TestAClickRightAfterTheDecisionIsAttributedToIt(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil // only the decision below is recorded
	// A recorder that waits an hour between batches: only the click's
	// own flush can bring the decision into Stats in time.
	r.eng.records.close()
	r.eng.records = newDecisionRecorder(r.stats, time.Hour)
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 3})
	require.NotEmpty(t, d.Offers)

	// The decision's records may still wait for the recorder; the click
	// is applied at once and must find them all the same.
	o := d.Offers[0]
	r.apply(t, ev("click-1", r.clock, "offer_click", "app", `{"member":"M1"}`, fmt.Sprintf(`,"decision_id":%q,"offer_id":%q`, d.DecisionID, o.OfferID)))
	rep := r.stats.Snapshot()
	require.Zero(t, rep.Unattributed)
	require.EqualValues(t, 1, rowByKey(rep.Offers, o.OfferID).Clicks)
	require.EqualValues(t, len(d.Offers), rep.Total.OffersServed, "every offer of the decision is recorded before the click")
	require.EqualValues(t, 1, rep.Total.Decisions)
	for _, o := range d.Offers {
		id, offer, ok := r.stats.LookupCoupon(o.CouponCode)
		require.True(t, ok, "the printed code %s maps back", o.CouponCode)
		require.Equal(t, d.DecisionID, id)
		require.Equal(t, o.OfferID, offer)
	}
}

func TestDecisionRecorderLosesNothingUnderConcurrentDeciders(t *testing.T) {
	s := newTestStats(t)
	rec := newDecisionRecorder(s, recordEvery)
	// More than recordMax records, so requests also flush themselves.
	const workers, per = 4, recordMax/2 + 100
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				rec.add(served(fmt.Sprint("d", w, "-", i), "member:M", "s", "o", features.ChannelApp, "", t0+int64(i)))
			}
		}()
	}
	wg.Wait()
	rec.close()
	require.EqualValues(t, workers*per, s.Snapshot().Total.Decisions)
}

func TestDecisionRecorderRecordsAfterAQuietSpell(t *testing.T) {
	s := newTestStats(t)
	rec := newDecisionRecorder(s, recordEvery)
	defer rec.close()
	for i := range 3 {
		// Let the recorder go idle, then one record must wake it.
		require.Eventually(t, func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.idle
		}, 5*time.Second, time.Millisecond)
		rec.add(served(fmt.Sprint("q", i), "member:M", "s", "o", features.ChannelApp, "", t0))
		require.Eventually(t, func() bool { return s.Snapshot().Total.Decisions == int64(i+1) }, 5*time.Second, time.Millisecond)
	}
}

func TestLookupCouponAcceptsOnlyTheExactCode(t *testing.T) {
	s := newTestStats(t)
	s.RecordDecision(served("d-1", "member:M1", "s", "o", features.ChannelApp, "", t0))
	code := CouponCode("d-1", "o")
	for _, c := range []struct{ name, code string }{
		{"lower case is another code", strings.ToLower(code)},
		{"a line break inside is another code", code[:8] + "\n" + code[8:]},
		{"a prefix is another code", code[:15]},
		{"a longer code is another code", code + "0"},
		{"the empty code is no code", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, ok := s.LookupCoupon(c.code)
			require.False(t, ok)
		})
	}
	d, o, ok := s.LookupCoupon(code)
	require.True(t, ok)
	require.Equal(t, "d-1", d)
	require.Equal(t, "o", o)
}

func TestAnOutcomeWithoutOfferIDFindsTheDecisionsFirstOfferStillHeld(t *testing.T) {
	s, err := NewStats(StatsOptions{MaxDecisions: 3})
	require.NoError(t, err)
	s.RecordDecision(served("d1", "member:M", "s", "a", features.ChannelApp, "", t0))
	s.RecordDecision(served("d1", "member:M", "s", "b", features.ChannelApp, "", t0))
	a, ok := s.RecordOutcome(Outcome{Type: features.OfferImpression, DecisionID: "d1", TS: t0 + 1})
	require.True(t, ok)
	require.Equal(t, "a", a.OfferID, "the first offer served")
	s.RecordDecision(served("d2", "member:M", "s", "a", features.ChannelApp, "", t0+2))
	s.RecordDecision(served("d2", "member:M", "s", "b", features.ChannelApp, "", t0+2)) // evicts d1/a
	a, ok = s.RecordOutcome(Outcome{Type: features.OfferImpression, DecisionID: "d1", TS: t0 + 3})
	require.True(t, ok)
	require.Equal(t, "b", a.OfferID, "the first offer still held")
	_, _, ok = s.LookupCoupon(CouponCode("d1", "a"))
	require.False(t, ok, "the evicted offer's coupon is forgotten")
	_, _, ok = s.LookupCoupon(CouponCode("d1", "b"))
	require.True(t, ok)
}

func TestTheTouchSequenceIsTheCustomersNewestMaxTouchesDecisions(t *testing.T) {
	s, err := NewStats(StatsOptions{MaxTouches: 2})
	require.NoError(t, err)
	chans := []features.Channel{features.ChannelWeb, features.ChannelApp, features.ChannelPush, features.ChannelSMS, features.ChannelTablet}
	// Many rounds, so the list is cut back (at 2·MaxTouches) several times.
	var last string
	for round := range 7 {
		for i, ch := range chans {
			last = fmt.Sprint("d", round, "-", i)
			s.RecordDecision(served(last, "member:M", "s", "o", ch, "", t0+int64(round*len(chans)+i)))
		}
	}
	_, ok := s.RecordOutcome(Outcome{Type: features.CouponRedeem, CouponCode: CouponCode(last, "o"), Customer: "member:M", Channel: features.ChannelPOS, TS: t0 + 100, Revenue: 10})
	require.True(t, ok)
	rep := s.Snapshot()
	require.Equal(t, 1.0, creditOf(rep.FirstTouch, "sms"), "the older of the two newest decisions")
	require.Equal(t, 1.0, creditOf(rep.LastTouch, "tablet"))
	require.Equal(t, 0.5, creditOf(rep.PositionBased, "sms"))
	require.Zero(t, creditOf(rep.PositionBased, "web")+creditOf(rep.PositionBased, "app")+creditOf(rep.PositionBased, "push"))
}

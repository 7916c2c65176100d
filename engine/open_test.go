package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// TestOpenOffersAreWhatTheCustomerCanStillRedeem: a store tablet asking
// again for a customer it served a moment ago gets nothing new (the
// offers are in cooldown); the offers the customer holds — the push's
// coupon, the tablet's own — are listed with their codes until redeemed
// or expired.
func TestOpenOffersAreWhatTheCustomerCanStillRedeem(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(30 * time.Minute)
	r.apply(t, storePurchaseDay(day)...) // raises a push with a coupon
	pushed := r.triggers.triggers(t)
	require.Len(t, pushed, 1)
	r.apply(t, ev("card", r.clock, "identify", "pos", `{"member":"M1","card":"C1"}`, ""))

	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelTablet, Store: "S01", Limit: 2, Locale: LocaleEn})
	require.NotEmpty(t, d.Offers)
	r.clock = r.clock.Add(time.Minute)
	again := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelTablet, Store: "S01", Limit: 2, Locale: LocaleEn})
	for _, o := range again.Offers {
		for _, was := range d.Offers {
			require.NotEqual(t, was.OfferID, o.OfferID, "an offer served a minute ago is in cooldown")
		}
	}

	// A catalog edit since does not change what the customer was given.
	for _, o := range d.Offers {
		r.set.Offer(o.OfferID).Value += 999
	}
	open, ok := r.eng.OpenOffers("card:C1", LocaleEn, r.clock.Add(time.Minute).UnixMilli())
	require.True(t, ok, "a linked identifier finds the customer")
	require.Equal(t, "member:M1", open.Customer)
	want := map[string]OfferResult{}
	for _, o := range append(d.Offers, again.Offers...) {
		want[o.CouponCode] = o
	}
	require.Len(t, open.Offers, len(want)+1, "the tablet's offers and the push's: %+v", open.Offers)
	var sawPush bool
	for _, o := range open.Offers {
		if o.DecisionID == pushed[0].DecisionID {
			sawPush = true
			require.Equal(t, pushed[0].CouponCode, o.CouponCode)
			require.Equal(t, "push", o.Channel)
			continue
		}
		w, ok := want[o.CouponCode]
		require.True(t, ok, "coupon %s was served", o.CouponCode)
		require.Equal(t, [4]string{w.OfferID, w.Title, w.Text, w.FulfilmentStore}, [4]string{o.OfferID, o.Title, o.Text, o.FulfilmentStore})
		require.Equal(t, w.Value, o.Value, "the value as served")
		require.True(t, w.Expiry.Equal(o.Expiry), "expiry %v, decide said %v", o.Expiry, w.Expiry)
		require.Equal(t, "tablet", o.Channel)
	}
	require.True(t, sawPush)
	var order, wantOrder []string
	for _, o := range open.Offers {
		order = append(order, o.CouponCode)
	}
	for _, o := range append(again.Offers, d.Offers...) {
		wantOrder = append(wantOrder, o.CouponCode)
	}
	wantOrder = append(wantOrder, pushed[0].CouponCode)
	require.Equal(t, wantOrder, order, "newest decision first, each decision's offers in the order it served them")

	// Redeemed at the till by its code: no longer open.
	used := d.Offers[0]
	r.apply(t, ev("till", r.clock.Add(5*time.Minute), "coupon_redeem", "pos", `{"card":"C1"}`, fmt.Sprintf(`,"store":"S01","coupon_code":%q,"amount":5000`, used.CouponCode)))
	open, _ = r.eng.OpenOffers("member:M1", LocaleEn, r.clock.Add(6*time.Minute).UnixMilli())
	require.Len(t, open.Offers, len(want))
	for _, o := range open.Offers {
		require.NotEqual(t, used.CouponCode, o.CouponCode)
	}

	// Past every expiry: none.
	open, _ = r.eng.OpenOffers("member:M1", LocaleEn, r.clock.Add(73*time.Hour).UnixMilli())
	require.Empty(t, open.Offers)
	require.NotNil(t, open.Offers, "an empty list, not null")

	_, ok = r.eng.OpenOffers("member:NOBODY", LocaleEn, r.clock.UnixMilli())
	require.False(t, ok)
}

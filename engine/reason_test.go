package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/scenarios"
)

func TestSegmentReasonsSayWhoTheSimilarCustomersAre(t *testing.T) {
	code := segOnline | segOffline | segMember | segBeauty | segTech | segThrifty | segNear
	require.Equal(t, "Chosen from how similar customers responded to it: members who shop online and in store, interested in beauty and tech, price-conscious, living near a store", segmentReasons[code][scenarios.En])
	require.Equal(t, "根据相似顾客对此优惠的反应推荐：线上线下都购物的会员，关注美妆和数码，对价格敏感，住在门店附近", segmentReasons[code][scenarios.ZhCN])
	require.Equal(t, "Chosen from how similar customers responded to it: customers who shop in store, interested in baby products", segmentReasons[segOffline|segParent][scenarios.En])
	for c := range numSegmentCodes {
		for loc := range scenarios.NumLocales {
			valid := segmentNames[c][0] != ""
			require.Equal(t, valid && c != 0, segmentReasons[c][loc] != "", "code %b locale %d", c, loc)
		}
	}
	_, ok := similarReason("new", scenarios.En)
	require.False(t, ok, "an unknown customer has no similar customers to tell")
	r, ok := similarReason(segmentNames[segMember][features.ChannelApp], scenarios.En)
	require.True(t, ok)
	require.Equal(t, "Chosen from how similar customers responded to it: members", r)
}

// An offer no scenario proposed, chosen for a known customer, says whom
// it was chosen by; for an unknown customer it is a fallback.
func TestAnUntargetedOfferSaysItWasChosenBySimilarCustomers(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 5, Locale: LocaleEn})
	require.Equal(t, GroupTreatment, d.Group)
	var untargeted int
	for _, o := range d.Offers {
		if o.Scenario != "" {
			continue
		}
		untargeted++
		require.Equal(t, ReasonSimilar, o.ReasonCode)
		require.Contains(t, o.Reason, "shop in store", "M1 visited a store: %s", o.Reason)
	}
	require.Positive(t, untargeted, "%+v", d.Offers)
}

// Without an explorer no segment chose the offer: it is a fallback.
func TestWithoutAnExplorerAnUntargetedOfferIsAFallback(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Explorer = nil
	r.clock = day.Add(time.Hour)
	r.apply(t, storePurchaseDay(day)...)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 5, Locale: LocaleEn})
	var untargeted int
	for _, o := range d.Offers {
		if o.Scenario == "" {
			untargeted++
			require.Equal(t, ReasonFallback, o.ReasonCode)
		}
	}
	require.Positive(t, untargeted)
}

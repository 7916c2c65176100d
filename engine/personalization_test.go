package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/models"
)

// A customer who withdrew personalization consent gets what anyone
// would: no scenario reads their behaviour (no scenario offer, no push),
// and the untargeted offers are not chosen by their segment or valued by
// their purchases. One who never said anything about it is personalized
// (an opt-out); a withdrawal on one channel leaves the others alone.
func TestAWithdrawnPersonalizationConsentGetsUnpersonalizedOffers(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	withdraw := func(channels string) string {
		return ev("p1", day.Add(-time.Hour), "consent", "app", `{"member":"M1"}`,
			`,"attrs":{"purpose":"personalization","granted":"false"`+channels+`}`)
	}
	for _, tc := range []struct {
		name     string
		extra    []string
		personal bool // on the app
		pushed   bool
	}{
		{"never said: personalized", nil, true, true},
		{"granted: personalized", []string{ev("p1", day.Add(-time.Hour), "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"personalization","granted":"true"}`)}, true, true},
		{"withdrawn everywhere", []string{withdraw("")}, false, false},
		{"granted on the app only", []string{ev("p1", day.Add(-time.Hour), "consent", "app", `{"member":"M1"}`, `,"attrs":{"purpose":"personalization","granted":"true","channels":"app"}`)}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := append(tc.extra, storePurchaseDay(day)...)
			pushed := newRig(t, day)
			pushed.clock = day.Add(30 * time.Minute)
			pushed.apply(t, events...)
			if pushes := pushed.triggers.triggers(t); tc.pushed {
				require.Len(t, pushes, 1, "the store purchase's scenario pushes")
			} else {
				require.Empty(t, pushes, "no push chosen from behaviour")
			}

			r := newRig(t, day)
			r.eng.opts.Triggers = nil // no push first: its offer would be on its cooldown
			r.eng.opts.Explorer = nil
			r.clock = day.Add(30 * time.Minute)
			r.apply(t, events...)
			at := day.Add(40 * time.Minute)
			d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 5, Locale: LocaleEn, Now: &at})
			scenarioOffers := 0
			for _, o := range d.Offers {
				if o.Scenario != "" {
					scenarioOffers++
				} else {
					require.Equal(t, "fallback", o.ReasonCode)
				}
				if !tc.personal {
					require.Equal(t, expectedNet(r.set.Offer(o.OfferID), defaultBasket), o.Score.Value, "valued as anyone's, not by their ¥259 order")
				}
			}
			if tc.personal {
				require.Positive(t, scenarioOffers, "a scenario's offer: %+v", d.Offers)
			} else {
				require.Zero(t, scenarioOffers, "no scenario's offer: %+v", d.Offers)
				require.NotEmpty(t, d.Offers, "the untargeted offers still: %+v", d.Offers)
			}
		})
	}
}

// Their untargeted offers are ranked by what all customers did with
// each offer (the offer's learnt rate across every segment), not by the
// catalog's priors and not by a draw for their segment.
func TestUnpersonalizedOffersAreRankedByWhatAllCustomersDid(t *testing.T) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(t, day)
	r.eng.opts.Triggers = nil
	r.clock = day.Add(30 * time.Minute)
	r.apply(t, append([]string{ev("p1", day.Add(-time.Hour), "consent", "app", `{"member":"M1"}`,
		`,"attrs":{"purpose":"personalization","granted":"false"}`)}, storePurchaseDay(day)...)...)
	// store_online_combo has one of the lowest priors of the untargeted
	// offers on the app (0.07; review_for_points has 0.2), and every
	// customer who got it took it.
	for range 200 {
		r.bandit.Update(models.Arm{Offer: "store_online_combo", Segment: "/online/member/noparent/nobeauty/notech/app"}, true)
	}
	at := day.Add(40 * time.Minute)
	d := decide(t, r, DecideRequest{IDs: features.IDs{Member: "M1"}, Channel: features.ChannelApp, Limit: 1, Locale: LocaleEn, Now: &at})
	require.Len(t, d.Offers, 1)
	require.Equal(t, "store_online_combo", d.Offers[0].OfferID, "%+v", d.Offers)
	require.Equal(t, "fallback", d.Offers[0].ReasonCode)
}

package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// Evaluate given Refused (which includes every ineligible offer, as the
// contract says) proposes exactly what it proposes without, less the
// refused offers; Explain ignores Refused and still says why each
// proposal is blocked.
func TestEvaluateLeavesOutRefusedOffers(t *testing.T) {
	joined := time.Date(2026, 11, 20, 11, 0, 0, 0, defaultLoc)
	now := joined.Add(23 * time.Hour).UnixMilli()
	set, err := LoadBuiltin(joined)
	require.NoError(t, err)
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	for i, ev := range []features.Event{
		{ID: "j", TS: joined.UnixMilli(), Type: features.Signup, Channel: features.ChannelStore, IDs: features.IDs{Member: "M1"}, Store: "S01"},
		{ID: "c", TS: joined.UnixMilli() + 1, Type: features.Consent, Channel: features.ChannelStore, IDs: features.IDs{Member: "M1"},
			Attrs: map[string]string{"purpose": "marketing", "granted": "true"}},
	} {
		_, rej := store.Apply(&ev)
		require.Nil(t, rej, "event %d", i)
	}
	var v features.View
	require.True(t, store.ViewAt(&features.IDs{Member: "M1"}, now, &v))
	req := Request{Channel: features.ChannelSMS, Now: now}
	all := set.Evaluate(&v, &req, nil)
	onboarding := set.Offer("app_onboarding")
	require.True(t, containsOffer(all, onboarding), "the onboarding scenario fires: %v", all)

	explained := set.Explain(&v, &req)
	req.Refused = make([]bool, len(set.Offers))
	for _, o := range set.Offers {
		req.Refused[o.Index] = o.EligibleFor(&v, &req) != Eligible
	}
	require.Equal(t, all, set.Evaluate(&v, &req, nil), "only the ineligible refused: the same proposals")

	req.Refused[onboarding.Index] = true
	got := set.Evaluate(&v, &req, nil)
	require.False(t, containsOffer(got, onboarding))
	var want []Proposal
	for _, p := range all {
		if p.Offer != onboarding {
			want = append(want, p)
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, explained, set.Explain(&v, &req), "Explain ignores Refused")
}

func containsOffer(ps []Proposal, o *Offer) bool {
	for _, p := range ps {
		if p.Offer == o {
			return true
		}
	}
	return false
}

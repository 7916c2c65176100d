package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// Evaluate given Refused proposes exactly what it proposes without, less
// the refused offers, and does not evaluate a scenario whose offers are
// all refused (here: its proposals are gone, though its condition holds).
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

	req.Refused = make([]bool, len(set.Offers))
	require.Equal(t, all, set.Evaluate(&v, &req, nil), "nothing refused: the same proposals")

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
}

func containsOffer(ps []Proposal, o *Offer) bool {
	for _, p := range ps {
		if p.Offer == o {
			return true
		}
	}
	return false
}

package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// A contactGate reads the ledger once per decision; every answer it gives
// must be Allow's for the same offer at the same moment, whatever the
// ledger, the channel, the offer's rules and the customer's history —
// also when a ledger remembers more offers than a gate holds in place.
func TestContactGateAnswersAsAllowDoes(t *testing.T) {
	t.Run("default ledger", func(t *testing.T) { testContactGate(t, newTestPolicy(t), 0) })
	t.Run("a ledger of more offers than a gate holds", func(t *testing.T) {
		p, err := NewPolicy(PolicyOptions{MaxOffers: 2 * gateOffers})
		require.NoError(t, err)
		testContactGate(t, p, gateOffers+8)
	})
}

// testContactGate compares gate and Allow over 3000 random decisions,
// each customer's ledger also holding contacts with filler other offers.
func testContactGate(t *testing.T, p *Policy, filler int) {
	rng := rand.New(rand.NewPCG(4, 21))
	customers := []features.Key{"member:G1", "member:G2", "member:G3"}
	offers := []OfferPolicy{
		promo,
		{ID: "cool", Cooldown: 48 * time.Hour},
		{ID: "brief", Cooldown: time.Hour},
		{ID: "once", MaxRedemptions: 1},
		{ID: "pickup", Transactional: true},
	}
	stores := []string{"SH-1", "LDN-1", ""}
	start := utc("2026-11-24T00:00:00Z")
	at := start
	for _, c := range customers {
		for i := range filler {
			p.Record(c, features.ChannelStore, fmt.Sprint("filler", i), start-int64(i+1)*hourMs)
		}
	}
	seen := map[string]int{}
	for decision := range 3000 {
		at += int64(rng.IntN(int(3 * hourMs)))
		c := customers[rng.IntN(len(customers))]
		ch := features.Channel(rng.IntN(int(features.NumChannels) + 1)) // and one out of range
		var history []features.OfferStats
		for _, o := range offers {
			if rng.IntN(3) == 0 {
				history = append(history, features.OfferStats{
					Offer: o.ID, LastShown: at - int64(rng.IntN(int(72*hourMs))),
					DismissStreak: uint32(rng.IntN(4)), Redemptions: uint32(rng.IntN(2)),
				})
			}
		}
		g := p.gate(c, ch, at)
		for range 1 + rng.IntN(10) {
			o := offers[rng.IntN(len(offers))]
			store := stores[rng.IntN(len(stores))]
			wantOK, want := p.Allow(c, ch, o, store, history, at)
			ok, why := g.allow(o, store, history)
			require.Equal(t, want, why, "decision %d: %s on %s", decision, o.ID, ch)
			require.Equal(t, wantOK, ok, "decision %d: %s on %s", decision, o.ID, ch)
			// atCap for a non-transactional offer (what openGate refuses
			// without asking allow) refuses only what Allow refuses, and
			// everything Allow refuses for a cap.
			capped := !o.Transactional && g.atCap()
			if capped {
				require.False(t, wantOK, "decision %d: %s on %s capped but allowed", decision, o.ID, ch)
			}
			if want == DenyCapDay || want == DenyCapWeek {
				require.True(t, capped, "decision %d: %s on %s refused for %s but not capped", decision, o.ID, ch, want)
			}
			seen[why]++
		}
		// Serving records contacts between decisions, enough that caps
		// and cooldowns bite.
		if rng.IntN(2) == 0 {
			p.Record(c, ch, offers[rng.IntN(len(offers))].ID, at)
		}
	}
	for _, why := range []string{"", DenyCapDay, DenyCapWeek, DenyCooldown, DenyQuietHours, DenySuppressed, DenyRedeemedLimit} {
		require.Positive(t, seen[why], "no answer %q: the test no longer reaches it", why)
	}
}

// BenchmarkContactGate is the contact policy's share of one decision's
// arbitration: the `ranked` best candidates of a customer on the app
// (capped by default), one of them with a cooldown, asked of Allow one by
// one and of one contactGate.
func BenchmarkContactGate(b *testing.B) {
	p := newTestPolicy(b)
	now := utc("2026-11-24T04:00:00Z")
	const customers = 10_000
	keys := make([]features.Key, customers)
	for i := range keys {
		keys[i] = features.Key(fmt.Sprint("member:B", i))
		for h := range 5 {
			p.Record(keys[i], features.ChannelApp, fmt.Sprint("o", h), now-int64(h+1)*hourMs)
		}
	}
	history := []features.OfferStats{{Offer: "o1", LastShown: now - 2*hourMs}, {Offer: "c3", Impressions: 2}}
	var offers [ranked]OfferPolicy
	for i := range offers {
		offers[i] = OfferPolicy{ID: fmt.Sprint("c", i)}
	}
	offers[3].Cooldown = 24 * time.Hour
	b.Run("Allow", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := keys[i%customers]
			for _, o := range offers {
				p.Allow(k, features.ChannelApp, o, "SH-1", history, now)
			}
			i++
		}
	})
	b.Run("gate", func(b *testing.B) {
		i := 0
		for b.Loop() {
			g := p.gate(keys[i%customers], features.ChannelApp, now)
			for _, o := range offers {
				g.allow(o, "SH-1", history)
			}
			i++
		}
	})
}

package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

const hourMs = int64(time.Hour / time.Millisecond)

func utc(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func newTestPolicy(t testing.TB) *Policy {
	t.Helper()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	p, err := NewPolicy(PolicyOptions{TimeZone: func(store string) *time.Location {
		if store == "LDN-1" {
			return london
		}
		return nil // Shanghai, the default
	}})
	require.NoError(t, err)
	return p
}

var promo = OfferPolicy{ID: "promo"}

func TestPolicyChannelCaps(t *testing.T) {
	const c = features.Key("member:M1")
	noon := utc("2026-11-24T04:00:00Z") // 12:00 in Shanghai: outside quiet hours
	p := newTestPolicy(t)

	steps := []struct {
		name string
		at   int64
		ch   features.Channel
		want string // "" = allowed (and recorded)
	}{
		{"the first push of the day is allowed", noon, features.ChannelPush, ""},
		{"a second push within 24 hours hits the day cap", noon + 3*hourMs, features.ChannelPush, DenyCapDay},
		{"the app channel has its own cap", noon + 3*hourMs, features.ChannelApp, ""},
		{"a push 24 hours later is allowed", noon + 24*hourMs, features.ChannelPush, ""},
		{"the third push of the week is allowed", noon + 48*hourMs, features.ChannelPush, ""},
		{"a fourth push within 7 days hits the week cap", noon + 72*hourMs, features.ChannelPush, DenyCapWeek},
		{"still capped just before the first push leaves the week", noon + 7*24*hourMs - 1, features.ChannelPush, DenyCapWeek},
		{"allowed once the first push is 7 days old", noon + 7*24*hourMs, features.ChannelPush, ""},
		{"the store tablet is never capped", noon + 7*24*hourMs, features.ChannelTablet, ""},
		{"the store tablet again", noon + 7*24*hourMs + 1, features.ChannelTablet, ""},
	}
	for _, s := range steps {
		ok, why := p.Allow(c, s.ch, promo, "SH-1", nil, s.at)
		require.Equal(t, s.want, why, s.name)
		require.Equal(t, s.want == "", ok, s.name)
		if ok {
			p.Record(c, s.ch, "o-"+s.name, s.at)
		}
	}
}

func TestPolicyQuietHoursInTheStoresTimeZone(t *testing.T) {
	p := newTestPolicy(t)
	cases := []struct {
		name  string
		at    string
		store string
		ch    features.Channel
		want  string
	}{
		{"23:00 in Shanghai is quiet for push", "2026-11-24T15:00:00Z", "SH-1", features.ChannelPush, DenyQuietHours},
		{"the same instant is 15:00 in London and allowed", "2026-11-24T15:00:00Z", "LDN-1", features.ChannelPush, ""},
		{"07:30 in London is quiet in winter (GMT)", "2026-11-24T07:30:00Z", "LDN-1", features.ChannelPush, DenyQuietHours},
		{"the same instant is 15:30 in Shanghai and allowed", "2026-11-24T07:30:00Z", "SH-1", features.ChannelPush, ""},
		{"07:30 UTC is 08:30 in London in summer (BST) and allowed", "2026-07-01T07:30:00Z", "LDN-1", features.ChannelPush, ""},
		{"sms keeps the same quiet hours", "2026-11-24T23:59:00Z", "SH-1", features.ChannelSMS, DenyQuietHours},
		{"quiet hours end at 08:00 sharp", "2026-11-24T00:00:00Z", "SH-1", features.ChannelPush, ""},
		{"quiet hours start at 22:00 sharp", "2026-11-24T14:00:00Z", "SH-1", features.ChannelPush, DenyQuietHours},
		{"a store without a known zone uses Shanghai", "2026-11-24T15:00:00Z", "", features.ChannelPush, DenyQuietHours},
		{"the app has no quiet hours", "2026-11-24T15:00:00Z", "SH-1", features.ChannelApp, ""},
		{"transactional offers still respect quiet hours", "2026-11-24T15:00:00Z", "SH-1", features.ChannelPush, DenyQuietHours},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			offer := promo
			if i == len(cases)-1 {
				offer.Transactional = true
			}
			ok, why := p.Allow(features.Key(fmt.Sprint("member:Q", i)), tc.ch, offer, tc.store, nil, utc(tc.at))
			require.Equal(t, tc.want, why)
			require.Equal(t, tc.want == "", ok)
		})
	}
}

func TestPolicyCooldownsSuppressionAndTransactional(t *testing.T) {
	now := utc("2026-11-24T04:00:00Z")
	day := 24 * hourMs
	cool := OfferPolicy{ID: "cool", Cooldown: 72 * time.Hour}
	cases := []struct {
		name    string
		offer   OfferPolicy
		ch      features.Channel
		record  []int64 // earlier contacts with the offer on the app
		history []features.OfferStats
		want    string
	}{
		{"an offer inside its cooldown is refused", cool, features.ChannelApp, []int64{now - 2*day}, nil, DenyCooldown},
		{"an offer past its cooldown is allowed", cool, features.ChannelApp, []int64{now - 3*day}, nil, ""},
		{"the cooldown applies across channels", cool, features.ChannelWeb, []int64{now - day}, nil, DenyCooldown},
		{"the history's last-shown time also starts a cooldown", cool, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "cool", LastShown: now - day}}, DenyCooldown},
		{"another offer's history does not", cool, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "other", LastShown: now - day, DismissStreak: 9}}, ""},
		{"three dismissals in a row suppress the offer", promo, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "promo", Dismissals: 3, DismissStreak: 3, LastShown: now - 10*day}}, DenySuppressed},
		{"two dismissals in a row do not", promo, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "promo", Dismissals: 5, DismissStreak: 2, LastShown: now - 10*day}}, ""},
		{"suppression ends 30 days after the offer was last shown", promo, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "promo", DismissStreak: 3, LastShown: now - 30*day}}, ""},
		{"a redemption limit is enforced from the history", OfferPolicy{ID: "once", MaxRedemptions: 1}, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "once", Redemptions: 1}}, DenyRedeemedLimit},
		{"a transactional offer bypasses suppression", OfferPolicy{ID: "cool", Transactional: true}, features.ChannelApp,
			nil, []features.OfferStats{{Offer: "cool", DismissStreak: 5, LastShown: now - day}}, ""},
		{"a transactional offer keeps its own cooldown", OfferPolicy{ID: "cool", Cooldown: 72 * time.Hour, Transactional: true}, features.ChannelApp,
			[]int64{now - day}, nil, DenyCooldown},
		{"and its own cooldown from the history", OfferPolicy{ID: "cool", Cooldown: 72 * time.Hour, Transactional: true}, features.ChannelApp,
			nil, []features.OfferStats{{Offer: "cool", LastShown: now - day}}, DenyCooldown},
		{"and its redemption limit", OfferPolicy{ID: "once", MaxRedemptions: 1, Transactional: true}, features.ChannelApp, nil,
			[]features.OfferStats{{Offer: "once", Redemptions: 1}}, DenyRedeemedLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPolicy(t)
			c := features.Key("member:C")
			for _, at := range tc.record {
				p.Record(c, features.ChannelApp, tc.offer.ID, at)
			}
			ok, why := p.Allow(c, tc.ch, tc.offer, "SH-1", tc.history, now)
			require.Equal(t, tc.want, why)
			require.Equal(t, tc.want == "", ok)
		})
	}

	t.Run("a transactional offer bypasses a full channel cap", func(t *testing.T) {
		p := newTestPolicy(t)
		c := features.Key("member:T")
		p.Record(c, features.ChannelPush, "x", now-hourMs)
		ok, why := p.Allow(c, features.ChannelPush, promo, "SH-1", nil, now)
		require.Equal(t, DenyCapDay, why)
		require.False(t, ok)
		ok, _ = p.Claim(c, features.ChannelPush, OfferPolicy{ID: "pickup-ready", Transactional: true}, "SH-1", nil, now)
		require.True(t, ok)
	})
}

func TestPolicyClaimIsAtomicUnderConcurrency(t *testing.T) {
	p := newTestPolicy(t)
	now := utc("2026-11-24T04:00:00Z")
	var granted atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := p.Claim("member:R", features.ChannelPush, OfferPolicy{ID: fmt.Sprint("o", i)}, "SH-1", nil, now); ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), granted.Load(), "a 1/day push cap grants exactly one of many racing claims")
}

func TestPolicyRekeyMergesContactHistories(t *testing.T) {
	p := newTestPolicy(t)
	now := utc("2026-11-24T04:00:00Z")
	p.Record("device:D1", features.ChannelPush, "a", now-3*24*hourMs)
	p.Record("member:M1", features.ChannelPush, "b", now-2*24*hourMs)
	ok, _ := p.Allow("member:M1", features.ChannelPush, promo, "", nil, now)
	require.True(t, ok, "one push this week before the merge")
	p.Record("member:M1", features.ChannelPush, "c", now-26*hourMs)

	p.Rekey("device:D1", "member:M1")
	ok, why := p.Allow("member:M1", features.ChannelPush, promo, "", nil, now)
	require.False(t, ok)
	require.Equal(t, DenyCapWeek, why, "the device's push counts after the merge")
	ok, why = p.Allow("member:M1", features.ChannelApp, OfferPolicy{ID: "a", Cooldown: 96 * time.Hour}, "", nil, now)
	require.Equal(t, DenyCooldown, why, "the device's offer cooldown moved too")
	require.False(t, ok)
	require.Equal(t, 1, p.Len())
}

func TestPolicyForgetDropsTheCustomersLedgerOnly(t *testing.T) {
	p := newTestPolicy(t)
	now := utc("2026-11-24T04:00:00Z")
	p.Record("member:M1", features.ChannelPush, "a", now-hourMs)
	p.Record("member:M2", features.ChannelPush, "a", now-hourMs)
	p.Forget("member:M1")
	ok, why := p.Allow("member:M1", features.ChannelPush, OfferPolicy{ID: "a", Cooldown: 96 * time.Hour}, "", nil, now)
	require.True(t, ok, "an erased customer's cap and cooldown are gone: %s", why)
	ok, _ = p.Allow("member:M2", features.ChannelPush, promo, "", nil, now)
	require.False(t, ok, "another customer's ledger stays")
	require.Equal(t, 1, p.Len())
}

func TestPolicyRekeysRacingEachOtherLoseNoContact(t *testing.T) {
	p := newTestPolicy(t)
	now := utc("2026-11-24T04:00:00Z")
	// Pairs of customers re-keyed both ways at once (two shards locked in
	// opposite orders would deadlock) while contacts are recorded for
	// both: every contact ends under one key or the other.
	const pairs, rounds = 16, 20 // 2 × rounds + 1 contacts: within the 50 an app ledger keeps
	key := func(ns string, i int) features.Key { return features.Key(fmt.Sprint(ns, ":", i)) }
	var wg sync.WaitGroup
	for i := 0; i < pairs; i++ {
		a, b := key("device", i), key("member", i)
		p.Record(a, features.ChannelApp, "x", now-hourMs)
		for _, pair := range [][2]features.Key{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < rounds; j++ {
					p.Rekey(pair[0], pair[1])
					p.Record(pair[1], features.ChannelApp, "y", now+int64(j))
				}
			}()
		}
	}
	wg.Wait()
	for i := 0; i < pairs; i++ {
		n := 0
		for _, k := range []features.Key{key("device", i), key("member", i)} {
			if l := ledgerOf(p, k); l != nil {
				n += len(l.ch[features.ChannelApp])
			}
		}
		require.Equal(t, 2*rounds+1, n, "pair %d", i)
	}
}

func TestPolicySnapshotAndPrune(t *testing.T) {
	p := newTestPolicy(t)
	now := utc("2026-11-24T04:00:00Z")
	for i := 0; i < 200; i++ {
		c := features.Key(fmt.Sprint("member:S", i))
		p.Record(c, features.ChannelPush, "o", now-int64(i)*hourMs)
		p.Record(c, features.ChannelApp, "o2", now-int64(i)*hourMs)
	}
	data, err := p.MarshalBinary()
	require.NoError(t, err)
	r := newTestPolicy(t)
	require.NoError(t, r.UnmarshalBinary(data))
	again, err := r.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, data, again)
	for i := 0; i < 200; i++ {
		c := features.Key(fmt.Sprint("member:S", i))
		ok1, why1 := p.Allow(c, features.ChannelPush, OfferPolicy{ID: "o", Cooldown: 48 * time.Hour}, "SH-1", nil, now+hourMs)
		ok2, why2 := r.Allow(c, features.ChannelPush, OfferPolicy{ID: "o", Cooldown: 48 * time.Hour}, "SH-1", nil, now+hourMs)
		require.Equal(t, ok1, ok2)
		require.Equal(t, why1, why2)
	}
	small := newTestPolicy(t)
	for i := 0; i < 5; i++ {
		small.Record(features.Key(fmt.Sprint("member:S", i)), features.ChannelSMS, "o", now-int64(i)*hourMs)
	}
	smallData, err := small.MarshalBinary()
	require.NoError(t, err)
	for i := 1; i < len(smallData); i++ {
		require.Error(t, small.UnmarshalBinary(smallData[:i]), "truncated at %d", i)
	}

	// Contacts older than the 7-day window go; customers without any go too.
	require.Equal(t, 56, r.Prune(now+24*hourMs))
	require.Equal(t, 144, r.Len())
}

func TestPolicyOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts PolicyOptions
		ok   bool
	}{
		{"defaults are valid", PolicyOptions{}, true},
		{"a negative cap is refused", PolicyOptions{Caps: map[features.Channel]ChannelCap{features.ChannelPush: {PerDay: -1}}}, false},
		{"quiet hours past midnight are refused", PolicyOptions{Quiet: map[features.Channel]QuietHours{features.ChannelPush: {Start: 1440}}}, false},
		{"a ledger shorter than a week is refused", PolicyOptions{Window: time.Hour}, false},
		{"shards must be a power of two", PolicyOptions{Shards: 3}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.opts)
			require.Equal(t, tc.ok, err == nil, "err: %v", err)
		})
	}
}

func FuzzPolicyUnmarshal(f *testing.F) {
	p, _ := NewPolicy(PolicyOptions{})
	p.Record("member:F", features.ChannelPush, "o", t0)
	data, _ := p.MarshalBinary()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _ := NewPolicy(PolicyOptions{})
		if p.UnmarshalBinary(data) != nil {
			return
		}
		out, err := p.MarshalBinary()
		require.NoError(t, err)
		q, _ := NewPolicy(PolicyOptions{})
		require.NoError(t, q.UnmarshalBinary(out))
	})
}

func BenchmarkPolicyAllow(b *testing.B) {
	p := newTestPolicy(b)
	now := utc("2026-11-24T04:00:00Z")
	const customers = 10_000
	keys := make([]features.Key, customers)
	for i := range keys {
		keys[i] = features.Key(fmt.Sprint("member:B", i))
		p.Record(keys[i], features.ChannelApp, "o1", now-5*hourMs)
		p.Record(keys[i], features.ChannelPush, "o2", now-30*hourMs)
	}
	history := []features.OfferStats{{Offer: "o1", LastShown: now - 5*hourMs}, {Offer: "o3", Impressions: 2}}
	offer := OfferPolicy{ID: "o3", Cooldown: 24 * time.Hour}
	for _, ch := range []features.Channel{features.ChannelApp, features.ChannelPush} {
		b.Run(ch.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Allow(keys[i%customers], ch, offer, "SH-1", history, now)
				i++
			}
		})
	}
	b.Run("app-parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := seq.Add(1)
				p.Allow(keys[i%customers], features.ChannelApp, offer, "SH-1", history, now)
			}
		})
	})
}

// Allow skips the customer's ledger when no cap or cooldown applies; its
// answers must be those of the ledger for every channel and offer.
func TestPolicyAllowAgreesWithTheLedgerWhetherOrNotItReadsIt(t *testing.T) {
	const c = features.Key("member:M1")
	noon := utc("2026-11-24T04:00:00Z")
	p := newTestPolicy(t)
	offers := []OfferPolicy{promo, {ID: "cool", Cooldown: 48 * time.Hour}}
	for i := range 20 {
		at := noon + int64(i)*hourMs
		for ch := features.Channel(0); ch < features.NumChannels; ch++ {
			for _, o := range offers {
				s := p.shard(c)
				s.mu.Lock()
				wantOK, want := p.ledgerAllows(s.logs[c], ch, o, at)
				s.mu.Unlock()
				ok, why := p.Allow(c, ch, o, "SH-1", nil, at)
				if why == DenyQuietHours {
					continue // a stateless rule, not the ledger's
				}
				require.Equal(t, want, why, "%s %s at hour %d", ch, o.ID, i)
				require.Equal(t, wantOK, ok)
				if ok && (i+int(ch))%3 == 0 {
					p.Record(c, ch, o.ID, at)
				}
			}
		}
	}
	ok, why := p.Allow(c, features.ChannelApp, offers[1], "SH-1", nil, noon+20*hourMs)
	require.False(t, ok, "the cooldown still reads the ledger on an uncapped channel")
	require.Equal(t, DenyCooldown, why)
}

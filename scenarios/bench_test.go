package scenarios

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

// busyView builds, through a real feature store, a customer that touches
// most built-in scenarios: store visits, online browsing in several
// categories, a cart, purchases and consent.
func busyView(tb testing.TB) (*features.View, *Request) {
	tb.Helper()
	st, err := features.NewStore(features.Options{RecentEvents: 32})
	require.NoError(tb, err)
	base := time.Date(2026, 11, 10, 9, 0, 0, 0, defaultLoc).UnixMilli()
	n := 0
	apply := func(offset time.Duration, typ features.EventType, ch features.Channel, mod func(*features.Event)) {
		n++
		ev := features.Event{ID: "b" + strconv.Itoa(n), TS: base + offset.Milliseconds(), Type: typ, Channel: ch, IDs: features.IDs{Member: "M1"}}
		if mod != nil {
			mod(&ev)
		}
		_, rej := st.Apply(&ev)
		require.Nil(tb, rej)
	}
	apply(0, features.Consent, features.ChannelApp, func(e *features.Event) {
		e.Attrs = map[string]string{"purpose": "marketing", "granted": "true"}
	})
	apply(time.Minute, features.Consent, features.ChannelApp, func(e *features.Event) {
		e.Attrs = map[string]string{"purpose": "personalization", "granted": "true"}
	})
	apply(time.Hour, features.PosPurchase, features.ChannelPOS, func(e *features.Event) { e.Store, e.Amount, e.Category = "S01", 600000, "skincare" })
	cats := []string{"phones", "skincare", "baby", "shoes", "bags", "headphones"}
	for d := 0; d < 10; d++ {
		for i, c := range cats {
			apply(time.Duration(d)*24*time.Hour+time.Duration(10+i)*time.Hour, features.ProductView, features.ChannelApp, func(e *features.Event) {
				e.Category, e.SKU = c, c+"-"+strconv.Itoa(d%3)
			})
		}
		apply(time.Duration(d)*24*time.Hour+20*time.Hour, features.Search, features.ChannelApp, func(e *features.Event) { e.Category = "baby" })
	}
	apply(9*24*time.Hour+21*time.Hour, features.AddToCart, features.ChannelApp, func(e *features.Event) { e.Category, e.SKU, e.Amount = "headphones", "HD-1", 129900 })
	apply(9*24*time.Hour+21*time.Hour+time.Minute, features.AddToCart, features.ChannelApp, func(e *features.Event) { e.Category, e.SKU, e.Amount = "shoes", "SH-1", 59900 })
	apply(10*24*time.Hour+10*time.Hour, features.StoreEnter, features.ChannelStore, func(e *features.Event) { e.Store = "S01" })
	apply(10*24*time.Hour+10*time.Hour+5*time.Minute, features.Dwell, features.ChannelStore, func(e *features.Event) { e.Store, e.Category, e.DwellS = "S01", "baby", 1500 })
	var v features.View
	now := base + (11*24*time.Hour + 20*time.Hour).Milliseconds()
	require.True(tb, st.ViewAt(&features.IDs{Member: "M1"}, now, &v))
	return &v, &Request{Channel: features.ChannelApp, Now: now, Trigger: OnRequest, Placement: "home"}
}

// BenchmarkEvaluate evaluates the whole built-in library for one
// customer: every scenario, for_each expanded. Target: ≤ 5 µs median and
// no allocations beyond the result (out is reused here, so none).
// Customers: never seen; one store purchase; busy (6 viewed-not-bought
// categories, 2 cart lines, visits, 17 proposals).
func BenchmarkEvaluate(b *testing.B) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(b, err)
	busy, req := busyView(b)
	unknown := &features.View{RecencyDays: -1}
	quiet := &features.View{Known: true, Member: true, Orders: 1, SpendOffline: 30000, RecencyDays: 3, LastStore: "S01", HomeStore: "S01"}
	quiet.Counts[features.Offline][features.PosPurchase][features.W30d] = 1
	for _, c := range []struct {
		name string
		v    *features.View
	}{{"unknown", unknown}, {"quiet", quiet}, {"busy", busy}} {
		b.Run(c.name, func(b *testing.B) {
			out := set.Evaluate(c.v, req, nil)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				out = set.Evaluate(c.v, req, out[:0])
			}
			// On a shared machine wall time includes waiting for a core;
			// the process's CPU time per evaluation is the work itself.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(len(out)), "proposals")
		})
	}
}

// BenchmarkReason renders one proposal's reason (done only for the offers
// finally chosen).
func BenchmarkReason(b *testing.B) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(b, err)
	v, req := busyView(b)
	out := set.Evaluate(v, req, nil)
	require.NotEmpty(b, out)
	b.ReportAllocs()
	for b.Loop() {
		_ = set.Reason(&out[0], v, req, ZhCN)
	}
}

// BenchmarkLoad compiles the built-in library (a reload's cost).
func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadBuiltin(time.Unix(0, 0)); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkEvaluateParallel is the same from every core at once (pooled
// VMs and environments).
func BenchmarkEvaluateParallel(b *testing.B) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(b, err)
	v, req := busyView(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var out []Proposal
		for pb.Next() {
			out = set.Evaluate(v, req, out[:0])
		}
	})
}

package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"nbo/features"
)

// BenchmarkDecideDefaultPolicy is one decision with the built-in library
// alone and the default contact policy (the app capped at 10 a day and
// 50 a week), as `nbo bench --only api` decides: every candidate that
// reaches the top is checked against the customer's contact ledger. A
// decision serves up to 3 offers, 3 contacts: run it at -benchtime
// 60000x or less (3 decisions per customer) so caps never run out and
// every decision does the whole pipeline.
func BenchmarkDecideDefaultPolicy(b *testing.B) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(b, day)
	r.clock = day.Add(time.Hour)
	const customers = 20_000
	for c := 0; c < customers; c++ {
		m := fmt.Sprintf(`{"member":"P%d"}`, c)
		r.apply(b,
			ev(fmt.Sprintf("p%d-1", c), day.Add(-time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
			ev(fmt.Sprintf("p%d-2", c), day, "product_view", "app", m, `,"category":"skincare","sku":"K1"`),
			ev(fmt.Sprintf("p%d-3", c), day.Add(time.Minute), "pos_purchase", "pos", m, `,"store":"S01","category":"phones","amount":1000`),
		)
	}
	reqs := make([]DecideRequest, customers)
	for c := range reqs {
		reqs[c] = DecideRequest{IDs: features.IDs{Member: fmt.Sprintf("P%d", c)}, Channel: features.ChannelApp, Limit: 3}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := r.eng.Decide(context.Background(), &reqs[i%customers])
		lat = append(lat, time.Since(start))
		if err != nil || len(d.Offers) == 0 {
			b.Fatalf("decision %d: %v %+v", i, err, d)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

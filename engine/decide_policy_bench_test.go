package engine

import (
	"fmt"
	"testing"
	"time"

	"nbo/features"
)

// BenchmarkDecideDefaultPolicy is one decision with the built-in library
// alone and the default contact policy (the app capped at 10 a day and
// 50 a week), as `nbo bench --only api` decides: every offer is checked
// against the customer's contact ledger before the scenarios run. A
// decision serves up to 3 offers, 3 contacts, and the offers' own caps
// and cooldowns allow about 3 decisions per customer: there are b.N/3
// customers (at least 20,000), so every decision does the whole pipeline.
func BenchmarkDecideDefaultPolicy(b *testing.B) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(b, day)
	r.clock = day.Add(time.Hour)
	runDecideBench(b, r, benchCustomers(b, r, day, "P", max(20_000, b.N/3+1), "skincare"), true)
}

// BenchmarkDecideAtTheCap is BenchmarkDecideDefaultPolicy for customers
// who have had the app's 10 contacts today: only transactional offers
// may still reach them, and the built-in one is on its own cap, so the
// decisions serve nothing. This is the decision most requests of the API
// comparison make (it asks about each customer every few seconds).
func BenchmarkDecideAtTheCap(b *testing.B) {
	day := time.Date(2026, 11, 20, 14, 0, 0, 0, shanghai)
	r := newRig(b, day)
	r.clock = day.Add(time.Hour)
	reqs := benchCustomers(b, r, day, "C", 20_000, "skincare")
	now := r.clock.UnixMilli()
	for i := range reqs {
		c := features.Key("member:" + reqs[i].IDs.Member)
		r.policy.Record(c, features.ChannelApp, "app_onboarding", now-time.Hour.Milliseconds())
		for j := range 9 {
			r.policy.Record(c, features.ChannelApp, fmt.Sprintf("earlier-%d", j), now-int64(j+2)*60_000)
		}
	}
	runDecideBench(b, r, reqs, false)
}

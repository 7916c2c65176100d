package engine

import (
	"testing"
	"time"
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
	runDecideBench(b, r, benchCustomers(b, r, day, "P", 20_000, "skincare"))
}

package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// leakSchema is a small offer-vector layout: recent redemptions and
// purchases (which a later vector would give away), and noise.
var leakSchema = Schema{Features: []Feature{
	{Name: "redemptions_10d", Kind: Numeric},
	{Name: "purchases_10d", Kind: Numeric},
	{Name: "noise", Kind: Numeric},
}}

var leakCustomerSchema = Schema{Features: []Feature{
	{Name: "purchases_10d", Kind: Numeric},
	{Name: "noise", Kind: Numeric},
}}

func testCoupon(decisionID, offerID string) string { return "C-" + decisionID + "-" + offerID }

// leakHistory is a synthetic history whose labels are coin flips
// independent of everything known at decision time, while every positive
// outcome shows up in the customer's next logged vectors: a builder that
// took a vector from after the decision would predict the label almost
// perfectly.
type leakHistory struct {
	decisions, events []string
	// truth[decisionID] is the generated outcome of offer "o1"; bought the
	// generated purchase.
	truth, bought map[string]bool
	// decoys are decisions with outcome events just before the decision
	// or just after the window, which must not label them.
	decoys  map[string]bool
	horizon time.Time
	// leaky[decisionID] is the vector the customer had at the next
	// decision, i.e. after this decision's outcome.
	leaky map[string][]float64
}

func genLeakHistory(customers int, seed uint64) *leakHistory {
	rng := rand.New(rand.NewPCG(seed, 7))
	h := &leakHistory{truth: map[string]bool{}, bought: map[string]bool{}, decoys: map[string]bool{}, leaky: map[string][]float64{}}
	start := time.Date(2026, 9, 1, 6, 0, 0, 0, time.UTC)
	type evt struct {
		ts   time.Time
		body string
	}
	var evs []evt
	n := 0
	// The horizon: the last decisions (day 60) have both windows open;
	// nothing has been logged after it yet.
	h.horizon = start.Add(65 * 24 * time.Hour)
	add := func(ts time.Time, format string, args ...any) {
		if ts.After(h.horizon) {
			return
		}
		n++
		evs = append(evs, evt{ts, fmt.Sprintf(`{"event_id":"e%d","ts":%q,`, n, ts.Format(time.RFC3339Nano)) + fmt.Sprintf(format, args...) + "}"})
	}
	hash, chash := leakSchema.Hash(), leakCustomerSchema.Hash()
	const decisionsPer = 4
	for c := 0; c < customers; c++ {
		member, card := fmt.Sprintf("M%d", c), fmt.Sprintf("K%d", c)
		add(start.Add(-time.Hour), `"type":"identify","channel":"app","ids":{"member":%q,"card":%q}`, member, card)
		var prevID string
		var redeemedPrev, boughtPrev float64
		for k := 0; k < decisionsPer; k++ {
			ts := start.Add(time.Duration(k)*20*24*time.Hour + time.Duration(c)*time.Minute)
			id := fmt.Sprintf("d-%d-%d", c, k)
			vec := []float64{redeemedPrev, boughtPrev, rng.Float64()}
			if prevID != "" {
				h.leaky[prevID] = vec
			}
			prevID = id
			rec := map[string]any{
				"decision_id": id, "customer": "member:" + member, "channel": "app", "group": "treatment",
				"ts": ts.Format("2006-01-02T15:04:05.000Z07:00"), "fallback": false,
				"feature_schema": hash, "customer_schema": chash, "customer_features": []float64{boughtPrev, vec[2]},
				"offers": []map[string]any{{"offer_id": "o1", "propensity": 0.1, "explore": 0, "score": 1, "features": vec}},
			}
			b, _ := json.Marshal(rec)
			h.decisions = append(h.decisions, string(b))

			redeem := rng.Float64() < 0.35
			buy := rng.Float64() < 0.4
			h.truth[id], h.bought[id] = redeem, buy
			redeemedPrev, boughtPrev = 0, 0
			if redeem {
				at := ts.Add(time.Duration(1+rng.IntN(6*24)) * time.Hour)
				switch rng.IntN(3) {
				case 0:
					add(at, `"type":"coupon_redeem","channel":"app","ids":{"member":%q},"decision_id":%q,"offer_id":"o1"`, member, id)
				case 1:
					add(at, `"type":"coupon_redeem","channel":"pos","ids":{"card":%q},"store":"S1","coupon_code":%q`, card, testCoupon(id, "o1"))
				default:
					// exactly at the end of the window still counts
					add(ts.Add(7*24*time.Hour), `"type":"coupon_redeem","channel":"app","ids":{"member":%q},"decision_id":%q,"offer_id":"o1"`, member, id)
				}
				redeemedPrev = 1
			} else if rng.IntN(4) == 0 {
				h.decoys[id] = true
				add(ts.Add(-time.Minute), `"type":"coupon_redeem","channel":"app","ids":{"member":%q},"decision_id":%q,"offer_id":"o1"`, member, id)
				add(ts.Add(7*24*time.Hour+time.Millisecond), `"type":"coupon_redeem","channel":"app","ids":{"member":%q},"decision_id":%q,"offer_id":"o1"`, member, id)
				add(ts.Add(time.Hour), `"type":"offer_click","channel":"app","ids":{"member":%q},"decision_id":%q,"offer_id":"o1"`, member, id)
			}
			if buy {
				// Many purchases after a buying decision, under the card
				// (identity resolution must map them to the member).
				for p := 0; p < 5; p++ {
					add(ts.Add(time.Duration(2+p*20)*time.Hour), `"type":"pos_purchase","channel":"pos","ids":{"card":%q},"store":"S1","amount":1000`, card)
				}
				boughtPrev = 5
			} else if rng.IntN(4) == 0 {
				add(ts.Add(-2*time.Hour), `"type":"order","channel":"web","ids":{"member":%q},"amount":500`, member)
				add(ts.Add(15*24*time.Hour+time.Minute), `"type":"order","channel":"web","ids":{"member":%q},"amount":500`, member)
			}
		}
	}
	add(h.horizon, `"type":"page_view","channel":"web","ids":{"member":"M-last"}`)
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].ts.Before(evs[b].ts) })
	for _, e := range evs {
		h.events = append(h.events, e.body)
	}
	return h
}

func (h *leakHistory) read(t *testing.T) ([]LoggedDecision, *Outcomes) {
	t.Helper()
	decs, err := ReadDecisions(strings.NewReader(strings.Join(h.decisions, "\n") + "\n"))
	require.NoError(t, err)
	o, err := ReadOutcomes(strings.NewReader(strings.Join(h.events, "\n")))
	require.NoError(t, err)
	require.Zero(t, o.Rejected, "every synthetic event decodes")
	return decs, o
}

func TestHistoryRowsAreTheVectorsLoggedAtDecisionTimeAndLabelsComeOnlyFromTheWindow(t *testing.T) {
	h := genLeakHistory(300, 1)
	decs, o := h.read(t)
	opts := HistoryOptions{Schema: leakSchema, CustomerSchema: leakCustomerSchema, CouponCode: testCoupon}
	hd, err := o.PropensityDataset(decs, opts)
	require.NoError(t, err)

	window := (7 * 24 * time.Hour).Milliseconds()
	kept := map[string]bool{}
	for r, ref := range hd.Rows {
		d := decs[ref.Decision]
		kept[d.DecisionID] = true
		// (a) the row is exactly the vector logged with the decision.
		require.Equal(t, d.Offers[ref.Offer].Features, hd.X[r], "row %d of %s", r, d.DecisionID)
		// (b) the label is the generated outcome: decoy events before the
		// decision and after the window did not label it.
		require.Equal(t, h.truth[d.DecisionID], hd.Y[r], "label of %s (decoy %v)", d.DecisionID, h.decoys[d.DecisionID])
		// (c) only decisions whose window closed by the horizon.
		require.LessOrEqual(t, d.TS+window, h.horizon.UnixMilli())
	}
	// Every decision of days 0–40 is kept, those of day 60 censored.
	censored := 0
	for _, d := range decs {
		open := d.TS+window > h.horizon.UnixMilli()
		require.Equal(t, !open, kept[d.DecisionID], d.DecisionID)
		if open {
			censored++
		}
	}
	require.Equal(t, 300, censored, "the last decision of each customer is censored")
	require.Equal(t, censored, hd.Stats.Censored)
	require.Equal(t, 900, hd.Stats.Rows)
	decoys := 0
	for id := range h.decoys {
		if kept[id] {
			decoys++
		}
	}
	require.Greater(t, decoys, 30, "enough decoys to mean something")

	// With clicks as the outcome, only the decoys' clicks count.
	clicks, err := o.PropensityDataset(decs, HistoryOptions{Outcome: OutcomeClick, Schema: leakSchema})
	require.NoError(t, err)
	for r, ref := range clicks.Rows {
		require.Equal(t, h.decoys[decs[ref.Decision].DecisionID], clicks.Y[r])
	}

	// The labels are coin flips, so the point-in-time rows predict
	// nothing; the vectors of the next decision (after the outcome) would
	// predict them almost perfectly — which is the leak the builder avoids.
	train := TrainOptions{Trees: 30, Seed: 3, MinLeaf: 10, Now: time.Unix(0, 0)}
	a, err := Train(hd.Dataset, train)
	require.NoError(t, err)
	leaked := &Dataset{Schema: leakSchema, Positive: "1"}
	for r, ref := range hd.Rows {
		if v, ok := h.leaky[decs[ref.Decision].DecisionID]; ok {
			leaked.X = append(leaked.X, v)
			leaked.Y = append(leaked.Y, hd.Y[r])
		}
	}
	b, err := Train(leaked, train)
	require.NoError(t, err)
	t.Logf("point-in-time AUC %.3f, with the next decision's vectors %.3f", a.Metrics.AUC, b.Metrics.AUC)
	require.Less(t, a.Metrics.AUC, 0.62)
	require.Greater(t, b.Metrics.AUC, 0.95)
}

func TestHistoryPurchaseIntentResolvesIdentitiesAndCensorsOpenWindows(t *testing.T) {
	h := genLeakHistory(200, 2)
	decs, o := h.read(t)
	hd, err := o.PurchaseDataset(decs, HistoryOptions{CustomerSchema: leakCustomerSchema})
	require.NoError(t, err)
	window := (15 * 24 * time.Hour).Milliseconds()
	for r, ref := range hd.Rows {
		d := decs[ref.Decision]
		require.Equal(t, -1, ref.Offer)
		require.Equal(t, d.CustomerFeatures, hd.X[r])
		require.Equal(t, h.bought[d.DecisionID], hd.Y[r], "purchases under the linked card label %s; those before it or after 15d do not", d.DecisionID)
		require.LessOrEqual(t, d.TS+window, h.horizon.UnixMilli())
	}
	// Days 0, 20 and 40 close by day 65; day 60 does not.
	require.Equal(t, 600, hd.Stats.Rows)
	require.Equal(t, 200, hd.Stats.Censored)
	require.Equal(t, PurchaseLabel, "purchase_15d")
}

func TestHistorySkipsRecordsOfAnotherSchemaAndCountsThem(t *testing.T) {
	h := genLeakHistory(20, 3)
	other := strings.ReplaceAll(h.decisions[0], leakSchema.Hash(), "0000")
	short := strings.Replace(h.decisions[1], `"features":[`, `"features":[1,`, 1)
	holdout := `{"decision_id":"h1","customer":"member:M1","channel":"app","group":"holdout","ts":"2026-09-01T06:00:00.000Z","feature_schema":"` + leakSchema.Hash() + `","offers":[]}`
	stranger := `{"decision_id":"s1","customer":"","channel":"app","group":"treatment","ts":"2026-09-01T06:00:00.000Z","fallback":true,"feature_schema":"` + leakSchema.Hash() + `","offers":[{"offer_id":"o1","propensity":0.1,"explore":0,"score":1}]}`
	lines := append([]string{other, short, holdout, stranger}, h.decisions[2:]...)
	decs, err := ReadDecisions(strings.NewReader(strings.Join(lines, "\n")))
	require.NoError(t, err)
	o, err := ReadOutcomes(strings.NewReader(strings.Join(h.events, "\n") + "\n{not json}\n"))
	require.NoError(t, err)
	require.Equal(t, 1, o.Rejected)
	hd, err := o.PropensityDataset(decs, HistoryOptions{Schema: leakSchema})
	require.NoError(t, err)
	require.Equal(t, 1, hd.Stats.SchemaMismatch)
	require.Equal(t, 1, hd.Stats.BadVector)
	require.Equal(t, 1, hd.Stats.NoOffers)
	require.Equal(t, 1, hd.Stats.Strangers)
	pd, err := o.PurchaseDataset(decs, HistoryOptions{CustomerSchema: leakCustomerSchema})
	require.NoError(t, err)
	require.Equal(t, 1, pd.Stats.Strangers)
	require.Equal(t, 1, hd.Stats.EventsRejected)
}

func TestHistoryRefusesBadInputWithTheLine(t *testing.T) {
	_, err := ReadDecisions(strings.NewReader("\n{\"decision_id\":\"d\",\"customer\":\"member:M\",\"ts\":\"yesterday\"}\n"))
	require.ErrorIs(t, err, ErrBadHistory)
	require.Contains(t, err.Error(), "line 2")
	_, err = ReadDecisions(bytes.NewReader([]byte("[1,2]")))
	require.ErrorIs(t, err, ErrBadHistory)
	o, err := NewOutcomes()
	require.NoError(t, err)
	_, err = o.PropensityDataset(nil, HistoryOptions{Outcome: "buy", Schema: leakSchema})
	require.ErrorContains(t, err, `unknown outcome "buy"`)
}

func FuzzHistoryDecodeDecision(f *testing.F) {
	for _, l := range genLeakHistory(2, 4).decisions[:3] {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"decision_id":"d","customer":"c","ts":"2026-01-01T00:00:00Z","offers":[{"features":[1e400]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDecision(b)
		if err == nil {
			require.NotEmpty(t, d.DecisionID)
			require.NotZero(t, d.TS)
		}
	})
}

// BenchmarkHistoryPropensityDataset measures labelling: reading the
// events into the identity store and joining them with the decisions
// (2000 customers, 8000 decisions).
func BenchmarkHistoryPropensityDataset(b *testing.B) {
	h := genLeakHistory(2000, 5)
	decs, err := ReadDecisions(strings.NewReader(strings.Join(h.decisions, "\n")))
	require.NoError(b, err)
	events := strings.Join(h.events, "\n")
	opts := HistoryOptions{Schema: leakSchema, CouponCode: testCoupon}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := ReadOutcomes(strings.NewReader(events))
		require.NoError(b, err)
		hd, err := o.PropensityDataset(decs, opts)
		require.NoError(b, err)
		if i == 0 {
			b.ReportMetric(float64(len(h.events)), "events/op")
			b.ReportMetric(float64(hd.Stats.Rows), "rows/op")
		}
	}
}

func TestHistoryAttributesOutcomesThatNameOnlyTheOfferToTheLatestEarlierDecision(t *testing.T) {
	hash := leakSchema.Hash()
	dec := func(id, ts string, offers ...string) string {
		var o []string
		for _, of := range offers {
			o = append(o, fmt.Sprintf(`{"offer_id":%q,"propensity":0.1,"explore":0,"score":1,"features":[0,0,0]}`, of))
		}
		return fmt.Sprintf(`{"decision_id":%q,"customer":"member:M1","channel":"app","group":"treatment","ts":%q,"feature_schema":%q,"offers":[%s]}`, id, ts, hash, strings.Join(o, ","))
	}
	decs, err := ReadDecisions(strings.NewReader(strings.Join([]string{
		dec("d1", "2026-09-01T06:00:00Z", "o1", "o2"),
		dec("d2", "2026-09-02T06:00:00Z", "o1", "o2"),
		dec("d3", "2026-09-03T06:00:00Z", "o3"),
	}, "\n")))
	require.NoError(t, err)
	o, err := ReadOutcomes(strings.NewReader(strings.Join([]string{
		// A click naming only the offer: d2 was the latest decision showing o1.
		`{"event_id":"c1","ts":"2026-09-02T07:00:00Z","type":"offer_click","channel":"app","ids":{"member":"M1"},"offer_id":"o1"}`,
		// A redemption naming only the decision: d3 had a single offer.
		`{"event_id":"r1","ts":"2026-09-03T07:00:00Z","type":"coupon_redeem","channel":"app","ids":{"member":"M1"},"decision_id":"d3"}`,
		// ...but for a decision of two offers it is ambiguous.
		`{"event_id":"r2","ts":"2026-09-01T07:00:00Z","type":"coupon_redeem","channel":"app","ids":{"member":"M1"},"decision_id":"d1"}`,
		`{"event_id":"end","ts":"2026-09-30T00:00:00Z","type":"page_view","channel":"web","ids":{"member":"M9"}}`,
	}, "\n")))
	require.NoError(t, err)
	labels := func(outcome string) map[string]bool {
		hd, err := o.PropensityDataset(decs, HistoryOptions{Outcome: outcome, Schema: leakSchema})
		require.NoError(t, err)
		out := map[string]bool{}
		for r, ref := range hd.Rows {
			out[decs[ref.Decision].DecisionID+"/"+decs[ref.Decision].Offers[ref.Offer].OfferID] = hd.Y[r]
		}
		return out
	}
	require.Equal(t, map[string]bool{"d1/o1": false, "d1/o2": false, "d2/o1": true, "d2/o2": false, "d3/o3": false}, labels(OutcomeClick))
	require.Equal(t, map[string]bool{"d1/o1": false, "d1/o2": false, "d2/o1": false, "d2/o2": false, "d3/o3": true}, labels(OutcomeRedeem))
}

package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/scenarios"
)

func TestArbitrateHeadsTheBestAllowedCandidatesInOrder(t *testing.T) {
	// Reference: sort every candidate best first, drop the refused ones,
	// keep the first `ranked`. Refusal here is an exhausted budget; ties
	// in score are broken by offer ID.
	rng := rand.New(rand.NewPCG(7, 11))
	emptied := 0
	for round := 0; round < 500; round++ {
		budgets := NewBudgets()
		e := &Engine{opts: Options{Budgets: budgets}}
		n := rng.IntN(40)
		st := &decideState{}
		st.sreq.Now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC).UnixMilli()
		refused := map[string]bool{}
		for i := 0; i < n; i++ {
			o := &scenarios.Offer{ID: fmt.Sprintf("o%02d", i)}
			if rng.IntN(4) == 0 { // a budgeted offer whose budget is spent
				o.Budget.Total = 1
				budgets.SetLimits(o.ID, 1, nil)
				_, ok := budgets.Reserve(o.ID, "", "d-"+o.ID, st.sreq.Now, time.Hour)
				require.True(t, ok)
				refused[o.ID] = true
			}
			total := float64(rng.IntN(6)) // many ties
			st.cands = append(st.cands, candidate{offer: o, parts: ScoreParts{Total: total}})
		}
		want := slices.Clone(st.cands)
		slices.SortFunc(want, func(a, b candidate) int {
			if a.parts.Total != b.parts.Total {
				if a.parts.Total > b.parts.Total {
					return -1
				}
				return 1
			}
			if a.offer.ID < b.offer.ID {
				return -1
			}
			return 1
		})
		want = slices.DeleteFunc(want, func(c candidate) bool { return refused[c.offer.ID] })
		want = want[:min(len(want), ranked)]

		e.arbitrate(st, false)
		got := st.cands[:min(len(st.cands), ranked)]
		require.Len(t, got, len(want), "round %d", round)
		for i := range want {
			require.Equal(t, want[i].offer.ID, got[i].offer.ID, "round %d, place %d", round, i)
		}
		if len(want) == 0 && len(refused) > 0 {
			emptied++
			require.Equal(t, EmptyBudget, st.emptyReason(), "round %d: every candidate was out of budget", round)
		}
	}
	require.Positive(t, emptied, "some rounds leave nothing but spent budgets")
}

package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

func TestHoldoutShareIsWithinBinomialTolerance(t *testing.T) {
	const n = 100_000
	for _, tc := range []struct {
		name  string
		share float64
		salt  string
	}{
		{"the default 5% share", 0, ""},
		{"a salted 5% share", 0.05, "2026-q4"},
		{"a 20% share", 0.20, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Holdout{Share: tc.share, Salt: tc.salt}
			h.EnsureDefaults()
			held := 0
			for i := 0; i < n; i++ {
				if h.InHoldout(features.MakeKey(features.NSMember, fmt.Sprint("M", i))) {
					held++
				}
			}
			p := h.Share
			sd := math.Sqrt(n * p * (1 - p))
			require.InDelta(t, n*p, float64(held), 4*sd, "held %d of %d", held, n)
		})
	}
}

func TestHoldoutAssignmentIsStableAndSaltDependent(t *testing.T) {
	a := Holdout{Share: 0.05, Salt: "a"}
	a2 := Holdout{Share: 0.05, Salt: "a"}
	b := Holdout{Share: 0.05, Salt: "b"}
	both, inA := 0, 0
	for i := 0; i < 10_000; i++ {
		k := features.MakeKey(features.NSMember, fmt.Sprint("M", i))
		require.Equal(t, a.InHoldout(k), a.InHoldout(k))
		require.Equal(t, a.InHoldout(k), a2.InHoldout(k), "the same salt gives the same group")
		if a.InHoldout(k) {
			inA++
			if b.InHoldout(k) {
				both++
			}
		}
	}
	// Independent salts overlap by about share²: 10000·0.0025 = 25.
	require.Greater(t, inA, 400)
	require.Less(t, both, 60, "another salt draws an independent holdout")
	require.Equal(t, GroupHoldout, a.Group(firstHeldOut(t, &a)))
}

func firstHeldOut(t *testing.T, h *Holdout) features.Key {
	for i := 0; ; i++ {
		k := features.MakeKey(features.NSMember, fmt.Sprint("M", i))
		if h.InHoldout(k) {
			return k
		}
	}
}

func TestHoldoutEdges(t *testing.T) {
	none := Holdout{Share: -1}
	all := Holdout{Share: 1}
	require.False(t, none.InHoldout("member:M1"))
	require.True(t, all.InHoldout("member:M1"))
	require.False(t, all.InHoldout(""), "an unknown customer is never held out")
	require.Error(t, (&Holdout{Share: 1.5}).Validate())
	require.Equal(t, GroupTreatment, none.Group("member:M1"))
}

func BenchmarkHoldoutInHoldout(b *testing.B) {
	h := Holdout{Share: 0.05, Salt: "s"}
	b.ReportAllocs()
	for b.Loop() {
		h.InHoldout("member:M1234567")
	}
}

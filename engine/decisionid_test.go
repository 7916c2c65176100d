package engine

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Decision IDs and coupon codes derived from them must not change with
// how the base-36 digits are computed.
func TestAppendBase36IsStrconvBase36(t *testing.T) {
	check := func(u uint64) {
		require.Equal(t, strconv.FormatUint(u, 36), string(appendBase36(nil, u)), "%d", u)
	}
	for _, u := range []uint64{0, 1, 35, 36, 37, 36 * 36, 36*36 - 1, 1_764_028_800_000, math.MaxUint64 >> 16, math.MaxUint64 - 1, math.MaxUint64} {
		check(u)
	}
	p := uint64(1)
	for range 13 {
		check(p - 1)
		check(p)
		p *= 36
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		check(rng.Uint64() >> rng.IntN(64))
	}
	require.Equal(t, "ab-c", string(appendBase36([]byte("ab-"), 12)), "appends to what b holds")
}

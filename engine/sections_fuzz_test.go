package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The snapshot sections without a fuzz target of their own elsewhere, and
// the coupon code a till scans: whatever the bytes, decoding does not
// panic, and what it accepts encodes back to bytes that decode to the same.

func FuzzWakeSection(f *testing.F) {
	var e Engine
	e.wakes.schedule("member:M1", 1_795_000_000_000)
	e.wakes.schedule("device:d-9", 1_795_000_100_000)
	e.wakes.watermark = 1_795_000_000_500
	good, err := e.Wakes().MarshalBinary()
	require.NoError(f, err)
	f.Add(good)
	f.Add(wakeMagic)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Engine
		if err := a.Wakes().UnmarshalBinary(data); err != nil {
			require.ErrorIs(t, err, ErrCorruptState)
			return
		}
		again, err := a.Wakes().MarshalBinary()
		require.NoError(t, err)
		var b Engine
		require.NoError(t, b.Wakes().UnmarshalBinary(again))
		back, err := b.Wakes().MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, again, back)
	})
}

func FuzzTriggerDedupUnmarshal(f *testing.F) {
	d := NewTriggerDedup(time.Hour, 100)
	d.Seen("t-1", 1_795_000_000_000)
	d.Seen("t-2", 1_795_000_001_000)
	good, err := d.MarshalBinary()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{dedupSnapshotVersion, 2, 1, 'x', 0, 1, 'x', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewTriggerDedup(time.Hour, 100)
		if err := a.UnmarshalBinary(data); err != nil {
			require.ErrorIs(t, err, ErrCorruptState)
			return
		}
		again, err := a.MarshalBinary()
		require.NoError(t, err)
		b := NewTriggerDedup(time.Hour, 100)
		require.NoError(t, b.UnmarshalBinary(again))
		back, err := b.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, again, back)
	})
}

func FuzzReplayPointUnmarshal(f *testing.F) {
	good, err := (&ReplayPoint{At: 1_795_000_000_000, Offsets: map[int]int64{0: 12, 3: 0}}).MarshalBinary()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{replayPointVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p ReplayPoint
		if err := p.UnmarshalBinary(data); err != nil {
			require.ErrorIs(t, err, ErrCorruptState)
			return
		}
		again, err := p.MarshalBinary()
		require.NoError(t, err)
		var q ReplayPoint
		require.NoError(t, q.UnmarshalBinary(again))
		require.Equal(t, p, q)
	})
}

// FuzzParseCoupon: a code is accepted exactly when it is one CouponCode
// prints, i.e. when it encodes back to itself.
func FuzzParseCoupon(f *testing.F) {
	f.Add(CouponCode("d-1", "o-1"))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAA\n")
	f.Fuzz(func(t *testing.T, code string) {
		k, ok := parseCoupon(code)
		if !ok {
			return
		}
		var enc [couponLen]byte
		couponEncoding.Encode(enc[:], k[:])
		require.Equal(t, code, string(enc[:]))
	})
}

package features

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReadSnapshot feeds the snapshot reader arbitrary bytes, as they come
// and resealed (the end record's checksum recomputed, so a mutation gets
// past the checksum to the record decoders). Whatever the input, reading
// does not panic; a refused snapshot is ErrCorruptSnapshot (or, intact
// but unreadable, ErrSnapshotFormat) and leaves the store empty; an
// accepted one writes back to a snapshot that restores the same
// customers.
func FuzzReadSnapshot(f *testing.F) {
	s := newTestStore(f)
	apply(f, s, journey()...)
	apply(f, s, mk("x1", 0, PosPurchase, ChannelPOS, member("M7"), store("S1"), cat("baby"), amount(5000)))
	good, err := s.EncodeSnapshot(SnapshotMeta{Offsets: map[int32]int64{0: 42}}, map[string][]byte{"engine.budgets": []byte("B")})
	require.NoError(f, err)
	f.Add(good, false)
	f.Add(good[:len(good)/2], true)
	f.Add([]byte(snapMagic), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, reseal bool) {
		if reseal {
			data = resealSnapshot(data)
		}
		r := newTestStore(t)
		_, _, err := r.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			// An intact file (the checksum holds, as after a reseal) whose
			// records do not decode is refused by its format instead.
			if !errors.Is(err, ErrSnapshotFormat) {
				require.ErrorIs(t, err, ErrCorruptSnapshot)
			}
			require.Zero(t, r.Len(), "a refused snapshot leaves the store empty")
			return
		}
		again, err := r.EncodeSnapshot(SnapshotMeta{}, nil)
		require.NoError(t, err)
		back := newTestStore(t)
		_, _, err = back.ReadSnapshot(bytes.NewReader(again))
		require.NoError(t, err, "a snapshot of a restored store restores")
		now := t0 + 3600_000
		require.Equal(t, allJSON(t, r, now), allJSON(t, back, now))
	})
}

// resealSnapshot walks data's records and rewrites the end record's
// checksum to match what precedes it; data it cannot walk comes back as
// it is.
func resealSnapshot(data []byte) []byte {
	if !bytes.HasPrefix(data, []byte(snapMagic)) {
		return data
	}
	out := append([]byte(nil), data...)
	i := len(snapMagic)
	for i < len(out) {
		kind := out[i]
		n, k := binary.Uvarint(out[i+1:])
		if k <= 0 || n > uint64(len(out)-(i+1+k)) {
			return data
		}
		body := i + 1 + k
		if kind == 'E' && n == 4 {
			binary.LittleEndian.PutUint32(out[body:], crc32.Update(0, crcTable, out[:i]))
			return out
		}
		i = body + int(n)
	}
	return data
}

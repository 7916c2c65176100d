package features

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// allJSON renders every customer of s, keyed by canonical ID.
func allJSON(t testing.TB, s *Store, now int64) map[Key]string {
	out := map[Key]string{}
	s.Customers(func(k Key) { out[k] = viewJSONOf(t, s, k, now) })
	return out
}

func TestSnapshotRoundTripRestoresEveryCustomer(t *testing.T) {
	s := newTestStore(t)
	apply(t, s, journey()...)
	apply(t, s, mk("x1", 0, PosPurchase, ChannelPOS, member("M7"), store("S1"), cat("baby"), amount(5000)))
	path := filepath.Join(t.TempDir(), "state.snap")
	meta := SnapshotMeta{Offsets: map[int32]int64{0: 42, 3: 7}}
	require.NoError(t, s.WriteSnapshotFile(path, meta, map[string][]byte{"engine.budgets": []byte("B"), "models.bandit": {1, 2}}))

	r := newTestStore(t)
	got, extras, err := r.ReadSnapshotFile(path)
	require.NoError(t, err)
	require.Equal(t, meta.Offsets, got.Offsets)
	require.Equal(t, map[string][]byte{"engine.budgets": []byte("B"), "models.bandit": {1, 2}}, extras)
	now := t0 + 3600_000
	require.Equal(t, allJSON(t, s, now), allJSON(t, r, now))
	require.Equal(t, s.Len(), r.Len())

	// The restored store goes on: duplicates are still caught.
	ev := journey()[0]
	_, rej := r.Apply(&ev)
	require.NotNil(t, rej)
	require.Equal(t, ReasonDuplicate, rej.Code)
}

func TestCorruptSnapshotsAreRefused(t *testing.T) {
	s := newTestStore(t)
	apply(t, s, journey()...)
	path := filepath.Join(t.TempDir(), "state.snap")
	require.NoError(t, s.WriteSnapshotFile(path, SnapshotMeta{}, nil))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"truncated":    data[:len(data)/2],
		"flipped byte": append(append(append([]byte{}, data[:40]...), data[40]^0xff), data[41:]...),
		"empty":        {},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.snap")
			require.NoError(t, os.WriteFile(p, bad, 0o644))
			r := newTestStore(t)
			_, _, err := r.ReadSnapshotFile(p)
			require.ErrorIs(t, err, ErrCorruptSnapshot)
			require.Equal(t, 0, r.Len())
		})
	}
}

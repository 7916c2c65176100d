package features

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// formatOneEvents are the events behind testdata/snapshot/format1.snap,
// in event-time order: every part of a customer's state (counters, cart,
// SKUs, stores and the newest visit, offers, consent, locale, dedup)
// for a few customers, one of them merged from three identities.
func formatOneEvents() []Event {
	m2 := member("M2")
	offer := func(o string) evOpt { return func(e *Event) { e.OfferID = o } }
	evs := journey()
	return append(evs,
		mk("f1", 10*time.Minute, AddToCart, ChannelApp, m2, sku("K7"), cat("toys"), amount(1_500)),
		mk("f2", 11*time.Minute, AddToCart, ChannelApp, m2, sku("K8"), cat("toys"), amount(2_500)),
		mk("f3", 12*time.Minute, RemoveFromCart, ChannelApp, m2, sku("K7")),
		mk("f4", 13*time.Minute, StoreEnter, ChannelStore, m2, store("S1")),
		mk("f5", 14*time.Minute, TryOn, ChannelStore, m2, store("S1"), sku("K9"), cat("shoes")),
		mk("f6", 15*time.Minute, PosPurchase, ChannelPOS, m2, store("S1"), sku("K9"), cat("shoes"), amount(39_900)),
		mk("f7", 16*time.Minute, OfferClick, ChannelApp, m2, offer("O2")),
		mk("f8", 17*time.Minute, Signup, ChannelStore, m2, store("S1"), attrs("locale", "en")),
		mk("f9", 18*time.Minute, Consent, ChannelApp, m2, attrs("purpose", "location", "granted", "true")),
	)
}

// TestASnapshotOfFormatOneStillRestores reads testdata/snapshot/format1.snap,
// written by the build of commit d8eca42 (format 1) from formatOneEvents,
// and requires the customers a store applying those events has. The file
// is never rewritten: it stands for the snapshots operators already hold.
func TestASnapshotOfFormatOneStillRestores(t *testing.T) {
	r := newTestStore(t)
	meta, extras, err := r.ReadSnapshotFile("testdata/snapshot/format1.snap")
	require.NoError(t, err)
	require.Equal(t, 1, meta.Format)
	require.Equal(t, map[int32]int64{0: 42}, meta.Offsets)
	require.Equal(t, map[string][]byte{"engine.budgets": []byte("B")}, extras)

	want := newTestStore(t)
	apply(t, want, formatOneEvents()...)
	now := t0 + time.Hour.Milliseconds()
	require.Equal(t, allJSON(t, want, now), allJSON(t, r, now))
	require.Equal(t, want.Len(), r.Len())
	require.Equal(t, want.Stats(), r.Stats())

	// The restored store goes on: a repeat is still a duplicate.
	ev := formatOneEvents()[len(formatOneEvents())-1]
	_, rej := r.Apply(&ev)
	require.NotNil(t, rej)
	require.Equal(t, ReasonDuplicate, rej.Code)
}

// rewriteSnapshot re-records data with each record's payload passed
// through edit (nil drops the record) and a new end checksum: a file as
// intact as one the writer made.
func rewriteSnapshot(t *testing.T, data []byte, edit func(kind byte, payload []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	cw := &crcWriter{w: bufio.NewWriter(&out)}
	_, err := cw.Write([]byte(snapMagic))
	require.NoError(t, err)
	for i := len(snapMagic); ; {
		kind := data[i]
		n, k := binary.Uvarint(data[i+1:])
		require.Positive(t, k)
		body := data[i+1+k : i+1+k+int(n)]
		i += 1 + k + int(n)
		if kind == 'E' {
			break
		}
		if p := edit(kind, slices.Clone(body)); p != nil {
			require.NoError(t, cw.record(kind, p))
		}
	}
	var end [4]byte
	binary.LittleEndian.PutUint32(end[:], cw.crc)
	require.NoError(t, cw.record('E', end[:]))
	require.NoError(t, cw.w.Flush())
	return out.Bytes()
}

// TestAnIntactSnapshotThisBuildCannotReadIsRefusedByItsFormat: a snapshot
// of a format this build does not know (a newer build's), or one that
// says format 1 but whose customer records have another layout (a build
// that changed the layout without a new format), is refused as
// ErrSnapshotFormat naming the format, not as a corrupt file, and leaves
// the store empty.
func TestAnIntactSnapshotThisBuildCannotReadIsRefusedByItsFormat(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot/format1.snap")
	require.NoError(t, err)
	withFormat := func(f int) func(byte, []byte) []byte {
		return func(kind byte, p []byte) []byte {
			if kind != 'M' {
				return p
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal(p, &m))
			m["format"] = f
			b, err := json.Marshal(m)
			require.NoError(t, err)
			return b
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"a format from a newer build", rewriteSnapshot(t, data, withFormat(snapFormat+1)), fmt.Sprintf("the snapshot is format %d and this build reads formats %d to %d", snapFormat+1, snapOldestFormat, snapFormat)},
		{"a format older than any this build reads", rewriteSnapshot(t, data, withFormat(0)), "the snapshot is format 0 and this build reads formats"},
		{"format 1 with customer records one field short", rewriteSnapshot(t, data, func(kind byte, p []byte) []byte {
			if kind == 'C' {
				return p[:len(p)-1]
			}
			return p
		}), "the snapshot says format 1 but customer record 1 does not have that format's layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestStore(t)
			_, _, err := r.ReadSnapshot(bytes.NewReader(tc.data))
			require.ErrorIs(t, err, ErrSnapshotFormat)
			require.NotErrorIs(t, err, ErrCorruptSnapshot)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, r.Len())
		})
	}

	// The same file damaged is corrupt, whatever its format says.
	bad := rewriteSnapshot(t, data, withFormat(snapFormat+1))
	bad[len(bad)/2] ^= 0xff
	_, _, err = newTestStore(t).ReadSnapshot(bytes.NewReader(bad))
	require.ErrorIs(t, err, ErrCorruptSnapshot)
}

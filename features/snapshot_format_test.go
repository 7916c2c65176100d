package features

import (
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

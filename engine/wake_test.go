package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// browsedAndLeft are M1's events after which browsed_online_not_bought
// waits for the 48 h window to close at views+5m+48h.
func browsedAndLeft(views time.Time) []string {
	m := `{"member":"M1"}`
	return []string{
		ev("a1", views.Add(-17*24*time.Hour), "consent", "app", m, `,"attrs":{"purpose":"marketing","granted":"true"}`),
		ev("a2", views.Add(-16*24*time.Hour), "store_enter", "store", m, `,"store":"S01"`),
		ev("a3", views, "product_view", "app", m, `,"category":"phones","sku":"P1"`),
		ev("a4", views.Add(5*time.Minute), "product_view", "web", m, `,"category":"phones","sku":"P1"`),
	}
}

func TestAnIdleStreamFiresWakeUpsByTheWallClock(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	closes := views.Add(5*time.Minute + 48*time.Hour)
	r := newRig(t, views)
	r.clock = views.Add(10 * time.Minute)
	r.apply(t, browsedAndLeft(views)...)
	require.Equal(t, 1, r.eng.PendingWakes())
	watermark := r.eng.wakes.watermark

	// Before the window closes the wall clock fires nothing.
	r.clock = closes.Add(-time.Second)
	r.eng.OnIdle(r.clock)
	require.Empty(t, r.triggers.triggers(t))
	require.Equal(t, 1, r.eng.PendingWakes())

	// Once it has closed, no event needed: the wake-up fires at its own
	// instant, with the cause it has in event time.
	r.clock = closes.Add(time.Second)
	r.eng.OnIdle(r.clock)
	got := r.triggers.triggers(t)
	require.Len(t, got, 1)
	require.Equal(t, "browsed_online_not_bought", got[0].Scenario)
	require.Equal(t, closes.UnixMilli(), got[0].TS)
	require.Equal(t, fmt.Sprintf("wake@%d", closes.UnixMilli()), got[0].EventID)
	require.Zero(t, r.eng.PendingWakes())
	require.Equal(t, watermark, r.eng.wakes.watermark, "the wall clock does not move the stream's event time")
}

func TestAWakeUpFiredByTheWallClockIsNotPublishedAgainInEventTime(t *testing.T) {
	views := time.Date(2026, 11, 18, 20, 0, 0, 0, shanghai)
	closes := views.Add(5*time.Minute + 48*time.Hour)
	later := ev("o1", closes.Add(30*time.Second), "page_view", "web", `{"member":"OTHER"}`, "")

	// Live: the stream is quiet when the window closes, and the wall clock
	// fires the wake-up.
	r := newRig(t, views)
	r.clock = views.Add(10 * time.Minute)
	r.apply(t, browsedAndLeft(views)...)
	wakesBefore, err := r.eng.Wakes().MarshalBinary()
	require.NoError(t, err)
	r.clock = closes.Add(time.Second)
	r.eng.OnIdle(r.clock)
	live := r.triggers.triggers(t)
	require.Len(t, live, 1)

	// The event-time pass of the same wake-up gives the same trigger ID:
	// a fresh engine replaying the events, where the next event fires it.
	r2 := newRig(t, views)
	r2.clock = closes.Add(time.Minute)
	r2.apply(t, browsedAndLeft(views)...)
	r2.apply(t, later)
	replayed := r2.triggers.triggers(t)
	require.Len(t, replayed, 1)
	require.Equal(t, live[0].TriggerID, replayed[0].TriggerID, "the wall clock and event time fire the same trigger")
	require.Equal(t, TriggerID("member:M1", live[0].Scenario, live[0].OfferID, fmt.Sprintf("wake@%d", closes.UnixMilli())), live[0].TriggerID)

	// In the live engine: the wake-up comes back (a snapshot taken before
	// it fired), and the next event passes it in event time: the dedup
	// knows the trigger, nothing is published twice.
	require.NoError(t, r.eng.Wakes().UnmarshalBinary(wakesBefore))
	require.Equal(t, 1, r.eng.PendingWakes())
	r.clock = closes.Add(time.Minute)
	r.apply(t, later)
	require.Zero(t, r.eng.PendingWakes(), "the event-time pass ran")
	require.Len(t, r.triggers.triggers(t), 1, "published once")

	// And a restart that restores the dedup replays the events to no
	// second publication either.
	dedup, err := r.dedup.MarshalBinary()
	require.NoError(t, err)
	r3 := newRig(t, views)
	r3.clock = closes.Add(time.Minute)
	require.NoError(t, r3.dedup.UnmarshalBinary(dedup))
	r3.apply(t, browsedAndLeft(views)...)
	r3.apply(t, later)
	require.Empty(t, r3.triggers.triggers(t), "the replay finds the wall-clock trigger already published")
}

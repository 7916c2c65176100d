package main

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/bench"
	"nbo/features"
)

// While the simulated customers are quiet (their next journey starts in an
// hour), the responses to offers made now still stream: the pump does not
// sleep holding the future event while feedback is due.
func TestTheDemoStreamsResponsesWhileTheCustomersAreQuiet(t *testing.T) {
	d, err := newDemo(time.Now().Add(time.Hour))
	require.NoError(t, err)
	got := make(chan features.Event, 16)
	produce := func(batch []features.Event) error {
		for _, ev := range batch {
			got <- ev
		}
		return nil
	}
	var out bytes.Buffer // read once the pump has stopped
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.pump(ctx, produce, 0, &out) }()
	stop := func() { cancel(); <-done }
	defer stop()

	require.Eventually(t, func() bool { return d.live.Load() }, 10*time.Second, 10*time.Millisecond, "the pump waits for the first journey")
	time.Sleep(300 * time.Millisecond) // it is asleep towards the future event
	response := features.Event{ID: "response-1", TS: time.Now().UnixMilli(), Type: features.PushOpen, Channel: features.ChannelApp, IDs: features.IDs{Device: "d"}}
	d.mu.Lock()
	d.sim.Inject(response)
	d.mu.Unlock()
	select {
	case ev := <-got:
		require.Equal(t, "response-1", ev.ID, "the response, not a journey event of the future")
	case <-time.After(30 * time.Second):
		t.Fatal("the response waited behind the customers' next journey")
	}
	stop()
	require.Contains(t, out.String(), "the simulated customers are quiet until")
	require.Empty(t, got, "nothing of the future was produced")
}

// A restarted demo skips what an earlier run produced and streams the
// rest.
func TestTheDemoResumesAfterTheNewestAppliedEvent(t *testing.T) {
	start := time.Now().Add(-demoHistory)
	d, err := newDemo(start)
	require.NoError(t, err)
	resume := start.Add(demoHistory - 12*time.Hour).UnixMilli()
	var mu sync.Mutex
	var first, n int64
	produce := func(batch []features.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range batch {
			if first == 0 {
				first = ev.TS
			}
			n++
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.pump(ctx, produce, resume, io.Discard) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n >= 500
	}, 30*time.Second, 10*time.Millisecond, "the stream after the resume point is produced")
	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, first, resume, "events up to the resume point are skipped")
}

func TestTheDemoSamplesAMemberWithHistory(t *testing.T) {
	d, err := newDemo(time.Now().Add(-demoHistory))
	require.NoError(t, err)
	member, err := d.sampleMember()
	require.NoError(t, err)
	require.NotEmpty(t, member)
	seen := 0
	var ev features.Event
	until := d.sim.Options().Start.Add(demoHistory).UnixMilli()
	for d.sim.Next(&ev) && ev.TS < until {
		if ev.IDs.Member == member {
			seen++
		}
	}
	require.GreaterOrEqual(t, seen, 10, "the sample member has a profile in the history")
}

// A restarted demo (make run resumes from its data dir) answers offers
// with response events whose IDs the previous run never used: a repeat
// would be dropped as a duplicate of an event the engine applied.
func TestARestartedDemoRespondsWithNewEventIDs(t *testing.T) {
	start := time.Now().Add(-demoHistory)
	seen := map[string]bool{}
	for run, at := range []time.Time{start, start.Add(time.Minute)} {
		d, err := newDemo(at)
		require.NoError(t, err)
		for c := range 200 {
			out, err := d.sim.Respond(bench.Delivery{Customer: c, OfferID: "o1", Type: bench.OfferType(c % int(bench.NumOfferTypes)),
				Channel: features.ChannelTablet, At: at.UnixMilli()}, d.rng)
			require.NoError(t, err)
			for _, ev := range out.Events {
				require.False(t, seen[ev.ID], "run %d repeats event ID %s", run+1, ev.ID)
				seen[ev.ID] = true
			}
		}
	}
	require.Greater(t, len(seen), 400)
}

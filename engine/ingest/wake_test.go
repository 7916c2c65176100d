package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
	"nbo/features/kafka"
	"nbo/scenarios"
)

// absenceLibrary is a scenario set with one absence scenario whose window
// is short enough for a test: a store visit, then no purchase for 2 s.
const absenceLibrary = `offers:
  - id: comeback_coupon
    type: coupon
    title: {zh-CN: 线上专享券, en: Online coupon}
    text: {zh-CN: 线上下单立减 30 元。, en: Take 30 off online.}
    value: 3000
    cost: 3000
    channels: [push]
    fulfilment: online
    requires_consent: marketing
    prior: 0.06
    category: coupon
scenarios:
  - id: left_without_buying
    description: Entered a store and bought nothing within 2 seconds.
    after: {types: [store_enter], class: offline, within: 1d}
    absent: {types: [order, pos_purchase], within: 2s}
    when: "true"
    offers: [comeback_coupon]
    channels: [push]
    trigger: on_event
    priority: 50
    reason: {zh-CN: 进店未购买, en: Left without buying}
`

// publishedTriggers is a trigger Publisher that keeps what it was given.
type publishedTriggers struct {
	mu  sync.Mutex
	got []engine.Trigger
}

func (p *publishedTriggers) Publish(_, value []byte) {
	t, err := engine.DecodeTrigger(value)
	if err != nil {
		panic(err)
	}
	p.mu.Lock()
	p.got = append(p.got, t)
	p.mu.Unlock()
}

func (p *publishedTriggers) list() []engine.Trigger {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]engine.Trigger(nil), p.got...)
}

// absenceEngine is an engine on store with absenceLibrary, the real wall
// clock and no quiet hours (the test may run at night), publishing to pub.
func absenceEngine(t *testing.T, store *features.Store, pub engine.Publisher) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scenarios.yaml"), []byte(absenceLibrary), 0o644))
	set, err := scenarios.Load(os.DirFS(dir), time.Now())
	require.NoError(t, err)
	policy, err := engine.NewPolicy(engine.PolicyOptions{Quiet: map[features.Channel]engine.QuietHours{}})
	require.NoError(t, err)
	eng, err := engine.New(engine.Options{
		Store: store, Scenarios: func() *scenarios.Set { return set }, Budgets: engine.NewBudgets(), Policy: policy,
		Triggers: pub, TriggerDedup: engine.NewTriggerDedup(0, 0), Holdout: engine.Holdout{Share: -1},
	})
	require.NoError(t, err)
	t.Cleanup(eng.Close)
	return eng
}

func eventLine(id string, at time.Time, typ, ch, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"ts":%q,"type":%q,"channel":%q,"ids":{"member":"M1"}%s}`,
		id, at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), typ, ch, extra)
}

func TestAnAbsenceWindowClosingOnAQuietStreamPushesOnTime(t *testing.T) {
	t.Parallel()
	// A customer enters a store and buys nothing; no other event follows,
	// for anyone. The stream's event time stays at the visit, but once the
	// loop is live the wake-up fires by the wall clock: the push leaves
	// within about a second of the window closing, not at the next event.
	brokers := startBroker(t, 2)
	store, err := features.NewStore(features.Options{AllowedLateness: lateness})
	require.NoError(t, err)
	pub := &publishedTriggers{}
	eng := absenceEngine(t, store, pub)
	var idles atomic.Int64
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true,
		now:       time.Now,
		store:     store,
		onApplied: eng.OnApplied,
		onIdle: func(now time.Time) {
			idles.Add(1)
			eng.OnIdle(now)
		},
	})
	require.True(t, r.loop.Ready(), "an empty log is live at once")

	enter := time.Now().Truncate(time.Millisecond)
	closes := enter.Add(2 * time.Second)
	produce(t, brokers, []kafka.Message{
		{Key: []byte("member:M1"), Value: []byte(eventLine("c1", enter.Add(-time.Hour), "consent", "app", `,"attrs":{"purpose":"marketing","granted":"true"}`))},
		{Key: []byte("member:M1"), Value: []byte(eventLine("e1", enter, "store_enter", "store", `,"store":"S01"`))},
	})
	r.waitHandled(t, 2)
	require.Empty(t, pub.list(), "nothing inside the window")

	// A generous deadline: the point is that it comes without another
	// event, not how fast.
	deadline := closes.Add(20 * time.Second)
	for len(pub.list()) == 0 {
		require.True(t, time.Now().Before(deadline), "no trigger %s after the window closed with the stream quiet (%d idle checks)", time.Since(closes), idles.Load())
		time.Sleep(20 * time.Millisecond)
	}
	got := pub.list()
	require.Len(t, got, 1)
	require.Equal(t, "left_without_buying", got[0].Scenario)
	require.Equal(t, features.Key("member:M1"), got[0].Customer)
	require.Equal(t, fmt.Sprintf("wake@%d", closes.UnixMilli()), got[0].EventID, "the same cause as in event time")
	require.Equal(t, closes.UnixMilli(), got[0].TS, "evaluated at the instant the window closed")
	require.Equal(t, engine.TriggerID("member:M1", "left_without_buying", "comeback_coupon", got[0].EventID), got[0].TriggerID)
	require.Equal(t, int64(2), r.loop.Stats().Applied, "no other event released it")
	r.stop(t)
	require.Zero(t, eng.PendingWakes(), "the wake-up was consumed")
}

// slowFetches delays the first n fetches, so the stream is idle while
// the loop still catches up.
type slowFetches struct {
	*kafka.Consumer
	n     *atomic.Int64
	delay time.Duration
}

func (s slowFetches) Fetch(ctx context.Context) (kafka.Record, error) {
	if s.n.Add(-1) >= 0 {
		time.Sleep(s.delay)
	}
	return s.Consumer.Fetch(ctx)
}

func TestIdleWakeUpsWaitForTheLoopToCatchUp(t *testing.T) {
	t.Parallel()
	// A backlog that trickles in (the stream idle for more than the idle
	// interval between records) is still catch-up: OnIdle is not called
	// until the loop is ready, so old wake-ups fire in event time.
	brokers := startBroker(t, 1)
	msgs := encode(interleave(3, journeys(3, 2, 2)))
	produce(t, brokers, msgs)
	var loop *Loop
	var applied, idleBeforeReady, idles atomic.Int64
	slow := &atomic.Int64{}
	slow.Store(3)
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true,
		source: func(c *kafka.Consumer) Source {
			return slowFetches{Consumer: c, n: slow, delay: 1500 * time.Millisecond}
		},
		beforeRun: func(l *Loop) { loop = l },
		onApplied: func(*features.Event, features.Applied) { applied.Add(1) },
		onIdle: func(time.Time) {
			idles.Add(1)
			if !loop.Ready() || applied.Load() < int64(len(msgs)) {
				idleBeforeReady.Add(1)
			}
		},
	})
	r.waitHandled(t, int64(len(msgs)))
	deadline := time.Now().Add(20 * time.Second)
	for idles.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "OnIdle is called once the loop is live and the stream quiet")
		time.Sleep(20 * time.Millisecond)
	}
	require.Zero(t, idleBeforeReady.Load(), "OnIdle was called while catching up")
	r.stop(t)
}

func TestIdleWakeUpsWaitWhileTheLogHoldsUnreadRecords(t *testing.T) {
	t.Parallel()
	// Live and caught up, the fetch then stalls (a broker outage, lag)
	// while a record waits in the log: no record for a second is not a
	// quiet stream, and OnIdle waits until the record is handled.
	brokers := startBroker(t, 1)
	msgs := encode(interleave(4, journeys(4, 1, 4)))
	require.GreaterOrEqual(t, len(msgs), 2)
	msgs = msgs[:2]
	var applied, idles, idlesWhileBehind atomic.Int64
	var idlesAtFirst atomic.Int64
	slow := &atomic.Int64{}
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true,
		source: func(c *kafka.Consumer) Source {
			return slowFetches{Consumer: c, n: slow, delay: 3500 * time.Millisecond}
		},
		onApplied: func(*features.Event, features.Applied) {
			switch applied.Add(1) {
			case 1:
				idlesAtFirst.Store(idles.Load())
			case 2:
				idlesWhileBehind.Store(idles.Load() - idlesAtFirst.Load())
			}
		},
		onIdle: func(time.Time) { idles.Add(1) },
	})
	deadline := time.Now().Add(20 * time.Second)
	for idles.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "OnIdle is called on the empty, quiet log")
		time.Sleep(20 * time.Millisecond)
	}
	// The fetch waiting now returns the first record; the next one sleeps
	// 3.5 s before it fetches the second, which is in the log all along.
	slow.Store(1)
	produce(t, brokers, msgs)
	r.waitHandled(t, 2)
	require.Zero(t, idlesWhileBehind.Load(), "OnIdle was called while a record waited in the log")
	r.stop(t)
}

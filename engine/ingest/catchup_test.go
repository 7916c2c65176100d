package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

// loginJourneys returns a log in event-time order (times unique) where
// customers browse the app anonymously, log in (identify member+device),
// and go on with member events and device-only app events — keyed, as the
// edge keys them, by the best identifier each event carries: device-only
// events by device, the rest by member. So most customers' events sit in
// two partitions, the normal case. The first customer is the minimal
// repro, with its member and device keys in different partitions:
// identify(M,D) at t, page_view(D) at t+5m, order(M) at t+30m.
func loginJourneys(seed uint64, customers, partitions int) []kafka.Message {
	r := rand.New(rand.NewPCG(seed, 13))
	base := testNow.Add(-30 * 24 * time.Hour).UnixMilli()
	var evs []features.Event
	// The minimal repro, early in the log so that catch-up fetches reach
	// far past t+30m in one partition before the other.
	m9 := "M9"
	d9 := "ios-repro-0"
	for i := 1; kafka.PartitionOf(customerKey(&features.IDs{Device: d9}), partitions) == kafka.PartitionOf(customerKey(&features.IDs{Member: m9}), partitions); i++ {
		d9 = fmt.Sprintf("ios-repro-%d", i)
	}
	t := base + 3600_000
	evs = append(evs,
		features.Event{ID: "repro-identify", TS: t, Type: features.Identify, Channel: features.ChannelApp, IDs: features.IDs{Member: m9, Device: d9}},
		features.Event{ID: "repro-page-view", TS: t + 5*60_000, Type: features.PageView, Channel: features.ChannelApp, IDs: features.IDs{Device: d9}, Attrs: map[string]string{"page": "/makeup"}},
		features.Event{ID: "repro-order", TS: t + 30*60_000, Type: features.Order, Channel: features.ChannelApp, IDs: features.IDs{Member: m9}, Category: "makeup", SKU: "SKU-MAK-00001", Amount: 12900, Quantity: 1},
	)
	for c := 0; c < customers; c++ {
		member := fmt.Sprintf("M%09d", c)
		device := fmt.Sprintf("and-%08x-%04d", uint32(c)*2246822519, c%10000)
		ts := base + int64(r.IntN(20*86400))*1000
		loggedIn := false
		for i, n := 0, 8+r.IntN(24); i < n; i++ {
			ts += int64(1+r.IntN(90)) * 1000
			if r.IntN(6) == 0 {
				ts += int64(600+r.IntN(86400)) * 1000 // a new session
			}
			id := fmt.Sprintf("lj-%d-%d", c, i)
			switch {
			case !loggedIn && (i >= 3 || r.IntN(3) == 0) && i > 0:
				loggedIn = true
				evs = append(evs, features.Event{ID: id, TS: ts, Type: features.Identify, Channel: features.ChannelApp, IDs: features.IDs{Member: member, Device: device}})
			case !loggedIn || r.IntN(3) == 0:
				// The app sends only its device until (and, for some
				// screens, after) the customer logs in.
				cat := categories[(c*5+r.IntN(3))%len(categories)]
				evs = append(evs, features.Event{ID: id, TS: ts, Type: features.PageView, Channel: features.ChannelApp,
					IDs: features.IDs{Device: device}, Attrs: map[string]string{"page": "/" + cat}})
			default:
				ev := mixEvent(r, c, ts, id, visitStore(r, c))
				ev.IDs = features.IDs{Member: member}
				evs = append(evs, ev)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b features.Event) int { return int(a.TS - b.TS) })
	for i := 1; i < len(evs); i++ {
		evs[i].TS = max(evs[i].TS, evs[i-1].TS+1) // unique times keep "time order" one order
	}
	return encode(evs)
}

// waitReady waits until the loop has caught up with the log.
func (r *running) waitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !r.loop.Ready() {
		select {
		case err := <-r.done:
			tb.Fatalf("the loop stopped before catching up: %v", err)
		default:
		}
		require.True(tb, time.Now().Before(deadline), "caught up within two minutes")
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCatchUpAppliesACustomersPartitionsInEventTime: a rebuild from the
// log, a clean restart in the middle of catch-up and a crash in the middle
// of catch-up all end with the state of applying the events in time order,
// and nothing is refused as too_late — although one customer's events sit
// in two partitions and catch-up reads the partitions in blocks.
func TestCatchUpAppliesACustomersPartitionsInEventTime(t *testing.T) {
	t.Parallel()
	const partitions = 4
	msgs := loginJourneys(21, 2000, partitions)
	want := referenceStore(t, msgs)

	cases := []struct {
		name string
		// interrupt consumes part of the log and stops; what it leaves
		// behind (snapshot file, group commits) is what the last run
		// restores. nil: the last run rebuilds from the log.
		interrupt func(t *testing.T, brokers []string, snap string)
	}{
		{name: "a rebuild from the log"},
		{
			name: "a clean stop in the middle of catch-up, then a restart",
			interrupt: func(t *testing.T, brokers []string, snap string) {
				// The last quarter of the log never arrives, so the stop
				// is in the middle of catch-up however fast the loop is;
				// the merge keeps waiting for it (no stall valve) until
				// the stop.
				var src *pausingSource
				r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap, endOffsets: true, catchUpStall: time.Hour,
					source: func(c *kafka.Consumer) Source {
						src = &pausingSource{Consumer: c, limit: int64(len(msgs)) * 3 / 4}
						return src
					}})
				require.Eventually(t, func() bool { return src.fetched.Load() > src.limit }, time.Minute, time.Millisecond)
				r.stop(t)
				require.False(t, r.loop.Ready(), "stopped before catching up")
				require.Empty(t, r.store.Stats().Rejected)
			},
		},
		{
			name: "a crash in the middle of catch-up, then a restart",
			interrupt: func(t *testing.T, brokers []string, snap string) {
				// The process dies after a periodic snapshot taken while
				// merging; its later work (and commits) never happened.
				r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap, endOffsets: true, snapshotEvery: 20 * time.Millisecond,
					source: func(c *kafka.Consumer) Source { return failingCommits{c} }})
				r.waitHandled(t, int64(len(msgs)/3))
				var taken []byte
				require.Eventually(t, func() bool {
					b, err := os.ReadFile(snap)
					taken = b
					return err == nil
				}, time.Minute, time.Millisecond)
				r.stop(t)
				require.NoError(t, os.WriteFile(snap, taken, 0o644))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := startBroker(t, partitions)
			produce(t, brokers, msgs)
			snap := filepath.Join(t.TempDir(), "state.snap")
			if tc.interrupt != nil {
				tc.interrupt(t, brokers, snap)
			}
			last := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap, endOffsets: true})
			last.waitReady(t)
			last.stop(t)
			t.Logf("%d records; catch-up queued at most %d, %d applied out of order", len(msgs), last.loop.mergePeak.Load(), last.loop.mergeForced.Load())
			require.Empty(t, last.store.Stats().Rejected, "nothing refused (no too_late)")
			require.Zero(t, last.loop.mergeForced.Load(), "no valve opened")
			requireSameFeatures(t, want, last.store)
		})
	}
}

// pausingSource delivers limit records and then blocks every Fetch until
// the loop stops: a log whose tail has not arrived yet.
type pausingSource struct {
	*kafka.Consumer
	limit   int64
	fetched atomic.Int64
}

func (p *pausingSource) Fetch(ctx context.Context) (kafka.Record, error) {
	if p.fetched.Add(1) > p.limit {
		<-ctx.Done()
		return kafka.Record{}, ctx.Err()
	}
	return p.Consumer.Fetch(ctx)
}

// catchUpPeak is the most records the loop's catch-up merge held back.
func catchUpPeak(l *Loop) int64 { return l.mergePeak.Load() }

// withholdingSource holds back every record of one partition until
// release is closed, and then delivers them (in offset order) before that
// partition's later records: a partition with backlog that is not being
// delivered — moved to another member, or a slow broker — and comes back.
// The consumer is woken by the next record of any partition, so a test
// that releases must produce one.
type withholdingSource struct {
	*kafka.Consumer
	partition int
	release   chan struct{}
	held      []kafka.Record // only the loop's fetch goroutine touches it
	withheld  atomic.Int64   // records held back so far
}

func (w *withholdingSource) Fetch(ctx context.Context) (kafka.Record, error) {
	for {
		released := false
		select {
		case <-w.release:
			released = true
		default:
		}
		if released && len(w.held) > 0 {
			rec := w.held[0]
			w.held = w.held[1:]
			return rec, nil
		}
		rec, err := w.Consumer.Fetch(ctx)
		if err != nil || rec.Partition != w.partition {
			return rec, err
		}
		w.held = append(w.held, rec)
		w.withheld.Add(1)
	}
}

// lockedBuffer is a log destination read while the loop writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// liveEvents returns the events of n customers whose records do not go to
// partition skip (-1: any partition), none of them a customer of the
// backlog's or of another seed's.
func liveEvents(seed uint64, n, skip, partitions int) []features.Event {
	var out []features.Event
	for c, evs := range journeys(seed, n*partitions, 4) {
		ids := customerIDs(int(seed)*1_000_000 + c)
		if skip >= 0 && kafka.PartitionOf(customerKey(&ids), partitions) == skip {
			continue
		}
		for _, ev := range evs {
			ev.ID, ev.IDs = fmt.Sprintf("live-%d-%s", seed, ev.ID), ids
			out = append(out, ev)
		}
		if n--; n == 0 {
			break
		}
	}
	return out
}

// TestTheStallValveStopsWaitingForAWithheldPartition: a partition with
// backlog that is not delivered does not hold the others' records back
// for more than CatchUpStall (plus the 250 ms check), the valve is logged
// and counted, the loop stays unready until that partition's backlog is
// applied, and once it comes every record is applied exactly once. Each
// customer's events sit in one partition here, so the order across
// partitions does not change the state.
func TestTheStallValveStopsWaitingForAWithheldPartition(t *testing.T) {
	t.Parallel()
	const partitions, withheld = 4, 0
	const stall = 500 * time.Millisecond
	msgs := encode(interleave(31, journeys(31, 300, 12)))
	inWithheld := 0
	for _, m := range msgs {
		if kafka.PartitionOf(m.Key, partitions) == withheld {
			inWithheld++
		}
	}
	require.NotZero(t, inWithheld)
	others := len(msgs) - inWithheld

	cases := []struct {
		name string
		// live keeps producing to the other partitions (never the
		// withheld one) while the test waits for the valve.
		live bool
	}{
		{name: "nothing else arrives"},
		{name: "the other partitions keep delivering", live: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := startBroker(t, partitions)
			produce(t, brokers, msgs)
			var logs lockedBuffer
			var backlogApplied atomic.Int64 // the events of msgs applied (on the loop's goroutine)
			src := &withholdingSource{partition: withheld, release: make(chan struct{})}
			start := time.Now()
			r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true,
				catchUpStall: stall, logger: slog.New(slog.NewTextHandler(&logs, nil)),
				source: func(c *kafka.Consumer) Source { src.Consumer = c; return src },
				onApplied: func(ev *features.Event, _ features.Applied) {
					if !strings.HasPrefix(ev.ID, "live-") {
						backlogApplied.Add(1)
					}
				}})

			all := slices.Clone(msgs)
			stopLive := make(chan struct{})
			stop := sync.OnceFunc(func() { close(stopLive) })
			var sent []kafka.Message // the live records produced, once liveDone is closed
			liveDone := make(chan struct{})
			if tc.live {
				// Live traffic every 50 ms, far less than the stall, for
				// longer than the wait below: before the per-partition
				// valve something always arrived, and the merge held every
				// record back while the withheld partition was silent.
				live := encode(liveEvents(32, 800, withheld, partitions))
				p, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEvents})
				require.NoError(t, err)
				t.Cleanup(func() { stop(); <-liveDone; _ = p.Close() })
				go func() {
					defer close(liveDone)
					for i := 0; i < len(live); i += 5 {
						select {
						case <-stopLive:
							return
						case <-time.After(50 * time.Millisecond):
						}
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						err := p.Produce(ctx, live[i:min(i+5, len(live))])
						cancel()
						if err != nil {
							t.Errorf("producing live traffic: %v", err)
							return
						}
						sent = append(sent, live[i:min(i+5, len(live))]...)
					}
					t.Errorf("the live traffic (%d records) ran out before the test stopped it", len(live))
				}()
			} else {
				close(liveDone)
			}
			require.Eventually(t, func() bool { return backlogApplied.Load() == int64(others) }, 15*time.Second, 5*time.Millisecond,
				"the other partitions' backlog (%d records) is applied while one partition is withheld", others)
			t.Logf("the other partitions' backlog applied %v after the loop started", time.Since(start).Round(time.Millisecond))
			require.Eventually(t, func() bool { return src.withheld.Load() == int64(inWithheld) }, time.Minute, 5*time.Millisecond,
				"the whole backlog of the withheld partition was fetched and held back")
			require.Eventually(t, func() bool {
				return regexp.MustCompile(`level=WARN msg="catch-up merge[^"]*" `).MatchString(logs.String())
			}, 10*time.Second, 5*time.Millisecond, "the valve is logged")
			require.False(t, r.loop.Ready(), "not ready while the withheld partition's backlog is missing")
			stop()
			<-liveDone
			all = append(all, sent...)

			// The withheld partition comes back; one more record wakes the
			// consumer.
			close(src.release)
			wake := encode(liveEvents(33, 1, -1, partitions))
			produce(t, brokers, wake)
			all = append(all, wake...)
			r.waitHandled(t, int64(len(all)))
			r.waitReady(t)
			r.stop(t)
			require.Equal(t, int64(len(all)), r.loop.Stats().Applied, "every record applied once")
			require.Empty(t, r.store.Stats().Rejected)
			require.Positive(t, r.loop.mergeForced.Load(), "the records the valve let through are counted")
			requireSameFeatures(t, referenceStore(t, all), r.store)
		})
	}
}

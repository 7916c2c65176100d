package kafka

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startBroker starts an in-memory embedded broker on a free loopback port
// and closes it when the test ends.
func startBroker(t testing.TB, dataDir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(context.Background(), EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dataDir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newTestProducer(t testing.TB, brokers []string, topic string) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerOptions{Brokers: brokers, Topic: topic})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func newTestConsumer(t testing.TB, brokers []string, topic, group string) *Consumer {
	t.Helper()
	c, err := NewConsumer(ConsumerOptions{Brokers: brokers, Topic: topic, GroupID: group})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// eventMessages returns n messages spread over `keys` customer keys, with
// values that name their index.
func eventMessages(n, keys int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		key := "member:" + strconv.Itoa(i%keys)
		msgs[i] = Message{
			Key:   []byte(key),
			Value: fmt.Appendf(nil, `{"event_id":"e%d","type":"page_view","channel":"web","ids":{"member":%q}}`, i, key),
		}
	}
	return msgs
}

// fetchN fetches exactly n records or fails the test.
func fetchN(t testing.TB, ctx context.Context, c *Consumer, n int) []Record {
	t.Helper()
	out := make([]Record, 0, n)
	for len(out) < n {
		r, err := c.Fetch(ctx)
		require.NoError(t, err, "after %d of %d records", len(out), n)
		out = append(out, r)
	}
	return out
}

// requireNoMore asserts that nothing more arrives within d.
func requireNoMore(t testing.TB, c *Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := c.Fetch(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "unexpected record p%d@%d: %s", r.Partition, r.Offset, r.Value)
}

// nextOffsets returns, per partition, one past the highest offset in recs.
func nextOffsets(recs []Record) map[int]int64 {
	m := map[int]int64{}
	for _, r := range recs {
		if r.Offset+1 > m[r.Partition] {
			m[r.Partition] = r.Offset + 1
		}
	}
	return m
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestProduceThenConsumeRoundTrip(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), Topics(4)))
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), Topics(4)), "a second call finds the topics and changes nothing")

	p := newTestProducer(t, e.Addrs(), TopicEvents)
	msgs := eventMessages(1000, 37)
	msgs[5].Headers = []Header{{Key: "source", Value: []byte("pos")}, {Key: "empty", Value: nil}}
	require.NoError(t, p.Produce(ctx, msgs[:500]))
	require.NoError(t, p.Produce(ctx, msgs[500:]))

	c := newTestConsumer(t, e.Addrs(), TopicEvents, "round-trip")
	recs := fetchN(t, ctx, c, len(msgs))
	requireNoMore(t, c, 300*time.Millisecond)

	byValue := map[string]Record{}
	partitionOfKey := map[string]int{}
	for _, r := range recs {
		require.NotContains(t, byValue, string(r.Value), "delivered twice")
		byValue[string(r.Value)] = r
		if p, ok := partitionOfKey[string(r.Key)]; ok {
			require.Equal(t, p, r.Partition, "key %s moved partitions", r.Key)
		}
		partitionOfKey[string(r.Key)] = r.Partition
		require.Equal(t, PartitionOf(r.Key, 4), r.Partition, "PartitionOf agrees with the producer for key %s", r.Key)
		require.False(t, r.Time.IsZero())
	}
	partitions := map[int]bool{}
	for i, m := range msgs {
		r, ok := byValue[string(m.Value)]
		require.True(t, ok, "message %d lost", i)
		require.Equal(t, m.Key, r.Key)
		partitions[r.Partition] = true
	}
	require.Len(t, partitions, 4, "37 keys spread over all 4 partitions")

	// Per key, records arrive in the order they were produced.
	seen := map[string]int{}
	for _, r := range recs {
		var idx int
		_, err := fmt.Sscanf(string(r.Value), `{"event_id":"e%d"`, &idx)
		require.NoError(t, err)
		if prev, ok := seen[string(r.Key)]; ok {
			require.Greater(t, idx, prev, "key %s out of order", r.Key)
		}
		seen[string(r.Key)] = idx
	}

	h := byValue[string(msgs[5].Value)].Headers
	require.Len(t, h, 2)
	require.Equal(t, "source", h[0].Key)
	require.Equal(t, []byte("pos"), h[0].Value)
	require.Equal(t, "empty", h[1].Key)
	require.Empty(t, h[1].Value)
}

func TestConsumerGroupResumesWithoutLossOrDuplicates(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
	p := newTestProducer(t, e.Addrs(), TopicEvents)
	msgs := eventMessages(300, 50)
	require.NoError(t, p.Produce(ctx, msgs))

	// First run: apply everything, snapshot after 200 records, but the
	// commit only got as far as the first 100 before the "crash".
	c1, err := NewConsumer(ConsumerOptions{Brokers: e.Addrs(), Topic: TopicEvents, GroupID: "engine"})
	require.NoError(t, err)
	first := fetchN(t, ctx, c1, 300)
	snapshot := nextOffsets(first[:200])
	require.NoError(t, c1.Commit(ctx, nextOffsets(first[:100])))
	require.NoError(t, c1.Close())
	_, err = c1.Fetch(ctx)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, c1.Commit(ctx, snapshot), ErrClosed)

	// Second run: restore the snapshot, skip what it covers. The group
	// re-delivers from the commit; the snapshot's records are dropped.
	applied := map[string]int{}
	for _, r := range first[:200] {
		applied[string(r.Value)]++
	}
	// What the snapshot does not cover, per partition, is what must arrive.
	var want int
	for _, r := range first {
		if r.Offset >= snapshot[r.Partition] {
			want++
		}
	}
	c2 := newTestConsumer(t, e.Addrs(), TopicEvents, "engine")
	c2.SkipBelow(snapshot)
	c2.SkipBelow(nextOffsets(first[:100])) // lower floors never lower what is skipped
	second := fetchN(t, ctx, c2, want)
	requireNoMore(t, c2, 500*time.Millisecond)
	for _, r := range second {
		applied[string(r.Value)]++
	}
	require.Len(t, applied, len(msgs), "every record applied")
	for v, n := range applied {
		require.Equal(t, 1, n, "record %s applied %d times", v, n)
	}
	var redelivered int
	for _, r := range first[:200] {
		if r.Offset >= nextOffsets(first[:100])[r.Partition] {
			redelivered++
		}
	}
	require.EqualValues(t, redelivered, c2.Skipped(), "records between commit and snapshot were re-delivered and skipped")
	require.Positive(t, c2.Skipped())

	// Commit the snapshot and more: a third member resumes exactly there.
	require.NoError(t, c2.Commit(ctx, nextOffsets(append(first, second...))))
	require.NoError(t, c2.Close())
	require.NoError(t, p.Produce(ctx, eventMessages(10, 3)))
	c3 := newTestConsumer(t, e.Addrs(), TopicEvents, "engine")
	third := fetchN(t, ctx, c3, 10)
	requireNoMore(t, c3, 300*time.Millisecond)
	require.Zero(t, c3.Skipped())
	for _, r := range third {
		require.GreaterOrEqual(t, r.Offset, nextOffsets(first)[r.Partition])
	}
}

func TestConsumerOfUnreachableBrokerReportsErrUnavailable(t *testing.T) {
	t.Parallel() // it waits out the join retries; let other tests run meanwhile
	c := newTestConsumer(t, []string{deadAddr(t)}, TopicEvents, "nobody-home")
	ctx := testCtx(t, time.Minute)
	_, err := c.Fetch(ctx)
	require.ErrorIs(t, err, ErrUnavailable)
	require.NoError(t, ctx.Err(), "the error came from the bounded join retries, not the test deadline")

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Commit(short, map[int]int64{0: 1}), context.DeadlineExceeded,
		"without a group generation a commit waits for one until its context ends")
}

func TestUnreachableBrokerIsErrUnavailable(t *testing.T) {
	dead := []string{deadAddr(t)}
	ctx := testCtx(t, time.Minute)

	p := newTestProducer(t, dead, TopicEvents)
	start := time.Now()
	err := p.Produce(ctx, eventMessages(3, 3))
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrUnavailable)
	require.NoError(t, ctx.Err(), "the error came from the producer's own bounded retries, not the test deadline")
	t.Logf("produce to a dead broker failed after %v: %v", elapsed, err)

	require.ErrorIs(t, EnsureTopics(ctx, dead, Topics(4)), ErrUnavailable)
	_, err = EndOffsets(ctx, dead, TopicEvents)
	require.ErrorIs(t, err, ErrUnavailable)
}

func TestProducerReportsBrokerGoingAway(t *testing.T) {
	e, err := StartEmbedded(context.Background(), EmbeddedOptions{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 2}}))
	p := newTestProducer(t, e.Addrs(), TopicEvents)
	require.NoError(t, p.Produce(ctx, eventMessages(10, 5)))
	require.NoError(t, e.Close())
	require.ErrorIs(t, p.Produce(ctx, eventMessages(10, 5)), ErrUnavailable, "never nil once the broker is gone")
}

func TestProduceAfterCloseAndCanceledContext(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 1}}))

	p, err := NewProducer(ProducerOptions{Brokers: e.Addrs(), Topic: TopicEvents})
	require.NoError(t, err)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = p.Produce(canceled, eventMessages(1, 1))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrUnavailable)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Produce(ctx, eventMessages(1, 1)), ErrClosed)

	c := newTestConsumer(t, e.Addrs(), TopicEvents, "cancel")
	_, err = c.Fetch(canceled)
	require.ErrorIs(t, err, context.Canceled)
}

func TestEndOffsetsCountProducedRecords(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 3}}))
	end, err := EndOffsets(ctx, e.Addrs(), TopicEvents)
	require.NoError(t, err)
	require.Equal(t, map[int]int64{0: 0, 1: 0, 2: 0}, end)

	p := newTestProducer(t, e.Addrs(), TopicEvents)
	require.NoError(t, p.Produce(ctx, eventMessages(90, 30)))
	end, err = EndOffsets(ctx, e.Addrs(), TopicEvents)
	require.NoError(t, err)
	var total int64
	for _, o := range end {
		total += o
	}
	require.EqualValues(t, 90, total)

	_, err = EndOffsets(ctx, e.Addrs(), "no.such.topic")
	require.Error(t, err)
}

// TestEndOffsetsLeavesNoConnectionsBehind: the ingest loop asks for end
// offsets every second while the stream is quiet; each call's client
// must close its connections rather than keep them until they idle out.
func TestEndOffsetsLeavesNoConnectionsBehind(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 3}}))
	_, err := EndOffsets(ctx, e.Addrs(), TopicEvents)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 30 {
		_, err := EndOffsets(ctx, e.Addrs(), TopicEvents)
		require.NoError(t, err)
	}
	// Closed connections' goroutines end shortly after; 30 calls' worth
	// kept open would be dozens more.
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+5 }, 5*time.Second, 20*time.Millisecond,
		"goroutines grew from %d to %d over 30 calls", before, runtime.NumGoroutine())
}

func TestOptionsValidation(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"a producer without brokers or topic reports both", ProducerOptions{}.Validate(), []string{"brokers", "topic is required"}},
		{"a producer with negative timeouts is refused", ProducerOptions{Brokers: []string{"x:1"}, Topic: "t", WriteTimeout: -1}.Validate(), []string{"negative"}},
		{"a consumer without group reports it", ConsumerOptions{Brokers: []string{"x:1"}, Topic: "t"}.Validate(), []string{"group id"}},
		{"a consumer with min bytes above max bytes is refused", ConsumerOptions{Brokers: []string{"x:1"}, Topic: "t", GroupID: "g", MinBytes: 10, MaxBytes: 5}.Validate(), []string{"min bytes"}},
		{"a consumer whose heartbeat is slower than its session is refused", ConsumerOptions{Brokers: []string{"x:1"}, Topic: "t", GroupID: "g", HeartbeatInterval: time.Minute, SessionTimeout: time.Second}.Validate(), []string{"heartbeat"}},
		{"an embedded broker address without a port is refused", EmbeddedOptions{Addr: "localhost", Partitions: 1}.Validate(), []string{"host:port"}},
		{"an embedded broker with zero partitions is refused", EmbeddedOptions{Addr: "127.0.0.1:0"}.Validate(), []string{"partitions"}},
		{"topics with no name or partitions are refused", EnsureTopics(context.Background(), []string{"x:1"}, []TopicSpec{{Name: ""}}), []string{"empty name", "at least 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, tc.err)
			for _, w := range tc.want {
				require.ErrorContains(t, tc.err, w)
			}
		})
	}
	_, err := NewConsumer(ConsumerOptions{})
	require.Error(t, err)
	_, err = NewProducer(ProducerOptions{})
	require.Error(t, err)
	_, err = StartEmbedded(context.Background(), EmbeddedOptions{Addr: "nope"})
	require.Error(t, err)
	require.NoError(t, ProducerOptions{Brokers: []string{"x:1"}, Topic: "t"}.Validate())
	require.NoError(t, ConsumerOptions{Brokers: []string{"x:1"}, Topic: "t", GroupID: "g"}.withDefaults().Validate())
	require.NoError(t, EmbeddedOptions{}.withDefaults().Validate())
}

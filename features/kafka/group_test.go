package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two members of one group split the partitions between them (this is how
// N replicas of nbo share customers), and when one leaves the other takes
// over its partitions.
func TestTwoGroupMembersSplitPartitionsAndTakeOver(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
	a := newTestConsumer(t, e.Addrs(), TopicEvents, "replicas")
	b, err := NewConsumer(ConsumerOptions{Brokers: e.Addrs(), Topic: TopicEvents, GroupID: "replicas"})
	require.NoError(t, err)
	_, err = e.cluster.WaitGroupStable(ctx, "replicas", 2)
	require.NoError(t, err)

	p := newTestProducer(t, e.Addrs(), TopicEvents)
	msgs := eventMessages(400, 97)
	require.NoError(t, p.Produce(ctx, msgs))

	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		ownerOf  = map[int]*Consumer{}
		wg       sync.WaitGroup
		fetchCtx context.Context
		stop     context.CancelFunc
	)
	fetchCtx, stop = context.WithCancel(ctx)
	for _, c := range []*Consumer{a, b} {
		wg.Go(func() {
			for {
				r, err := c.Fetch(fetchCtx)
				if err != nil {
					return
				}
				mu.Lock()
				seen[string(r.Value)]++
				if o, ok := ownerOf[r.Partition]; ok && o != c {
					t.Errorf("partition %d read by both members", r.Partition)
				}
				ownerOf[r.Partition] = c
				if len(seen) == len(msgs) {
					stop()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stop()
	require.Len(t, seen, len(msgs))
	for v, n := range seen {
		require.Equal(t, 1, n, "record %s delivered %d times", v, n)
	}
	owners := map[*Consumer]int{}
	for _, c := range ownerOf {
		owners[c]++
	}
	require.Equal(t, map[*Consumer]int{a: 2, b: 2}, owners)

	// b leaves; a gets all four partitions. Nothing was committed, so the
	// group rewinds all four to the start: a's own records are re-delivered
	// and dropped as already returned, b's are new to a.
	require.NoError(t, b.Close())
	var bRecords int
	for _, r := range msgs {
		if ownerOf[PartitionOf(r.Key, 4)] == b {
			bRecords++
		}
	}
	got := fetchN(t, ctx, a, bRecords)
	for _, r := range got {
		require.Same(t, b, ownerOf[r.Partition], "a only re-reads partitions it did not own")
	}
	requireNoMore(t, a, 300*time.Millisecond)
	require.EqualValues(t, len(msgs)-bRecords, a.Skipped())
}

package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The embedded broker keeps topics, records and committed group offsets in
// its data directory: a restart on the same directory (even on another
// port) serves the same log and resumes groups where they committed.
func TestEmbeddedBrokerKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t, time.Minute)
	msgs := eventMessages(500, 40)
	msgs[0].Headers = []Header{{Key: "k", Value: []byte("v")}}

	e1, err := StartEmbedded(ctx, EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, EnsureTopics(ctx, e1.Addrs(), Topics(4)))
	p1, err := NewProducer(ProducerOptions{Brokers: e1.Addrs(), Topic: TopicEvents})
	require.NoError(t, err)
	require.NoError(t, p1.Produce(ctx, msgs))
	require.NoError(t, p1.Close())
	c1, err := NewConsumer(ConsumerOptions{Brokers: e1.Addrs(), Topic: TopicEvents, GroupID: "engine"})
	require.NoError(t, err)
	before := fetchN(t, ctx, c1, len(msgs))
	committed := nextOffsets(before[:300])
	require.NoError(t, c1.Commit(ctx, committed))
	require.NoError(t, c1.Close())
	endBefore, err := EndOffsets(ctx, e1.Addrs(), TopicEvents)
	require.NoError(t, err)
	require.NoError(t, e1.Close())
	require.NoError(t, e1.Close(), "closing twice is harmless")

	e2 := startBroker(t, dir)
	require.NoError(t, EnsureTopics(ctx, e2.Addrs(), Topics(4)), "topics survived; nothing to create")
	endAfter, err := EndOffsets(ctx, e2.Addrs(), TopicEvents)
	require.NoError(t, err)
	require.Equal(t, endBefore, endAfter)

	// A new group reads the same records at the same offsets.
	fresh := newTestConsumer(t, e2.Addrs(), TopicEvents, "fresh")
	after := fetchN(t, ctx, fresh, len(msgs))
	requireNoMore(t, fresh, 300*time.Millisecond)
	type pos struct {
		p int
		o int64
	}
	want := map[pos]Record{}
	for _, r := range before {
		want[pos{r.Partition, r.Offset}] = r
	}
	for _, r := range after {
		w, ok := want[pos{r.Partition, r.Offset}]
		require.True(t, ok, "record p%d@%d did not exist before the restart", r.Partition, r.Offset)
		require.Equal(t, w.Key, r.Key)
		require.Equal(t, w.Value, r.Value)
		require.Equal(t, w.Headers, r.Headers)
		require.True(t, w.Time.Equal(r.Time))
		delete(want, pos{r.Partition, r.Offset})
	}
	require.Empty(t, want)

	// The old group resumes from its committed offsets.
	var remaining int
	for _, r := range before {
		if r.Offset >= committed[r.Partition] {
			remaining++
		}
	}
	resumed := newTestConsumer(t, e2.Addrs(), TopicEvents, "engine")
	for _, r := range fetchN(t, ctx, resumed, remaining) {
		require.GreaterOrEqual(t, r.Offset, committed[r.Partition])
	}
	requireNoMore(t, resumed, 300*time.Millisecond)

	// And the restarted broker takes new writes after the old offsets.
	p2 := newTestProducer(t, e2.Addrs(), TopicEvents)
	require.NoError(t, p2.Produce(ctx, eventMessages(8, 8)))
	for _, r := range fetchN(t, ctx, resumed, 8) {
		require.GreaterOrEqual(t, r.Offset, endBefore[r.Partition])
	}
}

func TestEmbeddedBrokerRefusesABusyAddress(t *testing.T) {
	e := startBroker(t, "")
	_, err := StartEmbedded(context.Background(), EmbeddedOptions{Addr: e.Addrs()[0]})
	require.Error(t, err)
	require.ErrorContains(t, err, e.Addrs()[0])
}

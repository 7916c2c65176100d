package kafka

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The embedded broker must serve any ordinary Kafka client, not only
// kafka-go. franz-go's kgo is an independent implementation of the protocol
// (its own framing, version negotiation and group protocol).
func TestEmbeddedBrokerServesFranzGoClients(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, time.Minute)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))

	kcl, err := kgo.NewClient(
		kgo.SeedBrokers(e.Addrs()...),
		kgo.DefaultProduceTopic(TopicEvents),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	require.NoError(t, err)
	defer kcl.Close()

	// kgo produces keyed records; our consumer reads them.
	const n = 200
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{
			Key:     []byte("device:" + strconv.Itoa(i%20)),
			Value:   fmt.Appendf(nil, `{"event_id":"kgo-%d"}`, i),
			Headers: []kgo.RecordHeader{{Key: "via", Value: []byte("kgo")}},
		})
	}
	require.NoError(t, kcl.ProduceSync(ctx, recs...).FirstErr())
	kgoPartition := map[string]int32{}
	for _, r := range recs {
		kgoPartition[string(r.Key)] = r.Partition
	}

	c := newTestConsumer(t, e.Addrs(), TopicEvents, "reads-kgo")
	got := fetchN(t, ctx, c, n)
	values := map[string]bool{}
	for _, r := range got {
		values[string(r.Value)] = true
		require.Equal(t, []Header{{Key: "via", Value: []byte("kgo")}}, r.Headers)
		require.EqualValues(t, kgoPartition[string(r.Key)], r.Partition)
	}
	require.Len(t, values, n)

	// Our producer writes the same keys: both clients hash keys with
	// murmur2, so a key lands on the same partition whichever client wrote
	// it (replicas route requests to a customer's owner by this).
	p := newTestProducer(t, e.Addrs(), TopicEvents)
	ours := make([]Message, 0, 20)
	for i := range 20 {
		ours = append(ours, Message{Key: []byte("device:" + strconv.Itoa(i)), Value: fmt.Appendf(nil, `{"event_id":"ours-%d"}`, i)})
	}
	require.NoError(t, p.Produce(ctx, ours))
	for _, r := range fetchN(t, ctx, c, len(ours)) {
		require.EqualValues(t, kgoPartition[string(r.Key)], r.Partition, "key %s", r.Key)
	}

	// A kgo consumer group reads everything (kgo's and ours) and commits.
	group, err := kgo.NewClient(
		kgo.SeedBrokers(e.Addrs()...),
		kgo.ConsumeTopics(TopicEvents),
		kgo.ConsumerGroup("kgo-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	require.NoError(t, err)
	defer group.Close()
	seen := map[string]bool{}
	for len(seen) < n+len(ours) {
		fs := group.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("kgo fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	require.NoError(t, group.CommitUncommittedOffsets(ctx))
	require.Len(t, seen, n+len(ours))
}

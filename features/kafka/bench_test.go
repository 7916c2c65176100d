package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchEvent is a small schema-v1 event, about 180 bytes, like the bulk of
// real traffic (page and product views).
func benchEvent(i int) Message {
	key := "member:" + strconv.Itoa(i%100000)
	return Message{
		Key: []byte(key),
		Value: fmt.Appendf(nil,
			`{"event_id":"b-%d","ts":"2026-11-24T08:00:00Z","type":"product_view","channel":"app","ids":{"member":%q},"sku":"SKU-%d","category":"skincare"}`,
			i, key, i%5000),
	}
}

// fill produces n benchmark events to topic with `writers` concurrent
// Produce calls of `batch` messages each.
func fill(b *testing.B, ctx context.Context, brokers []string, topic string, n, batch, writers int) {
	b.Helper()
	p, err := NewProducer(ProducerOptions{Brokers: brokers, Topic: topic})
	require.NoError(b, err)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			msgs := make([]Message, 0, batch)
			for i := w * batch; i < n; i += writers * batch {
				msgs = msgs[:0]
				for j := i; j < min(i+batch, n); j++ {
					msgs = append(msgs, benchEvent(j))
				}
				if err := p.Produce(ctx, msgs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)
}

// BenchmarkConsumerFetch measures the raw Fetch loop through the embedded
// broker: b.N small JSON records are produced first (not timed), then a
// fresh group member fetches all of them. Run with -benchtime=1000000x for
// the 1M-record figure.
func BenchmarkConsumerFetch(b *testing.B) {
	e := startBroker(b, "")
	ctx := testCtx(b, 10*time.Minute)
	require.NoError(b, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
	fill(b, ctx, e.Addrs(), TopicEvents, b.N, 5000, 4)
	c := newTestConsumer(b, e.Addrs(), TopicEvents, "bench-"+strconv.Itoa(b.N))
	// Join the group and receive the first record before timing, so the
	// figure is the steady-state rate, not the group join.
	_, err := c.Fetch(ctx)
	require.NoError(b, err)

	b.ReportAllocs()
	b.ResetTimer()
	var bytes int64
	for i := 1; i < b.N; i++ {
		r, err := c.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(r.Value))
	}
	b.StopTimer()
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkProducerProduce measures acknowledged (acks=all) produce
// throughput for different Produce call sizes and concurrent callers.
func BenchmarkProducerProduce(b *testing.B) {
	for _, bc := range []struct{ batch, writers int }{{1, 1}, {1, 64}, {100, 4}, {500, 4}, {5000, 4}} {
		b.Run(fmt.Sprintf("batch=%d/writers=%d", bc.batch, bc.writers), func(b *testing.B) {
			e := startBroker(b, "")
			ctx := testCtx(b, 10*time.Minute)
			require.NoError(b, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
			b.ReportAllocs()
			b.ResetTimer()
			fill(b, ctx, e.Addrs(), TopicEvents, b.N, bc.batch, bc.writers)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

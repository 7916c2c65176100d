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
// Produce calls of `batch` messages each. It may run on any goroutine.
func fill(ctx context.Context, brokers []string, topic string, n, batch, writers int) error {
	p, err := NewProducer(ProducerOptions{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
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
	return <-errs
}

// BenchmarkConsumerFetch measures the raw Fetch loop through the embedded
// broker: b.N small JSON records are produced first (not timed), then a
// fresh group member fetches all of them. Run with -benchtime=1000000x for
// the 1M-record figure.
func BenchmarkConsumerFetch(b *testing.B) {
	e := startBroker(b, "")
	ctx := testCtx(b, 10*time.Minute)
	require.NoError(b, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
	require.NoError(b, fill(ctx, e.Addrs(), TopicEvents, b.N, 5000, 4))
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
// throughput for different Produce call sizes and concurrent callers. Run it
// with a time-based -benchtime (e.g. 3s): a single synchronous one-message
// Produce takes about BatchTimeout, so a fixed count like 1000000x would run
// the batch=1/writers=1 case for half an hour.
func BenchmarkProducerProduce(b *testing.B) {
	for _, bc := range []struct{ batch, writers int }{{1, 1}, {1, 64}, {100, 4}, {500, 4}, {5000, 4}} {
		b.Run(fmt.Sprintf("batch=%d/writers=%d", bc.batch, bc.writers), func(b *testing.B) {
			e := startBroker(b, "")
			ctx := testCtx(b, 10*time.Minute)
			require.NoError(b, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
			b.ReportAllocs()
			b.ResetTimer()
			require.NoError(b, fill(ctx, e.Addrs(), TopicEvents, b.N, bc.batch, bc.writers))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkPipeline produces and fetches at the same time through one
// embedded broker, as `nbo serve` does with a load generator in the same
// process: 4 writers produce b.N events in calls of 5000 while one consumer
// fetches them. The figure is the ceiling the engine's ingest can reach on
// this machine before it does any work of its own. "datadir" persists the
// log to disk as `nbo serve` does; "memory" keeps it in memory.
func BenchmarkPipeline(b *testing.B) {
	for _, persist := range []bool{false, true} {
		name := "memory"
		if persist {
			name = "datadir"
		}
		b.Run(name, func(b *testing.B) {
			dir := ""
			if persist {
				dir = b.TempDir()
			}
			e := startBroker(b, dir)
			ctx := testCtx(b, 10*time.Minute)
			require.NoError(b, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 4}}))
			group := "pipeline-" + strconv.Itoa(b.N)
			c := newTestConsumer(b, e.Addrs(), TopicEvents, group)
			_, err := e.cluster.WaitGroupStable(ctx, group, 1)
			require.NoError(b, err)

			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() { done <- fill(ctx, e.Addrs(), TopicEvents, b.N, 5000, 4) }()
			for i := 0; i < b.N; i++ {
				if _, err := c.Fetch(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			require.NoError(b, <-done)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

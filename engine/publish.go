package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"nbo/features/kafka"
)

// TopicPublisher sends records to one Kafka topic in the background,
// batching what arrives together, so the request path and the ingest loop
// never wait for the broker. Publish blocks only when the buffer is full
// (backpressure rather than loss); a batch that fails is retried until it
// is acknowledged or Close gives up.
type TopicPublisher struct {
	p       *kafka.Producer
	ch      chan kafka.Message
	log     *slog.Logger
	wg      sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	closing chan struct{}
	once    sync.Once
}

var _ Publisher = (*TopicPublisher)(nil)

// NewTopicPublisher starts a publisher on p with room for buffer records.
func NewTopicPublisher(p *kafka.Producer, buffer int, log *slog.Logger) *TopicPublisher {
	if buffer <= 0 {
		buffer = 4096
	}
	if log == nil {
		log = slog.Default()
	}
	t := &TopicPublisher{p: p, ch: make(chan kafka.Message, buffer), log: log, closing: make(chan struct{})}
	t.wg.Add(1)
	go t.run()
	return t
}

// Publish queues one record. The key and value must not be changed
// afterwards.
func (t *TopicPublisher) Publish(key, value []byte) {
	select {
	case t.ch <- kafka.Message{Key: key, Value: value}:
	case <-t.closing:
		t.failed.Add(1)
	}
}

func (t *TopicPublisher) run() {
	defer t.wg.Done()
	batch := make([]kafka.Message, 0, 512)
	for {
		select {
		case m := <-t.ch:
			batch = append(batch[:0], m)
		case <-t.closing:
			// Drain what is queued, then stop.
			for {
				select {
				case m := <-t.ch:
					batch = append(batch, m)
				default:
					t.send(batch, 3)
					return
				}
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case m := <-t.ch:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		t.send(batch, 0)
		batch = batch[:0]
	}
}

// send produces batch, retrying with backoff; attempts 0 retries until
// closing.
func (t *TopicPublisher) send(batch []kafka.Message, attempts int) {
	if len(batch) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := t.p.Produce(ctx, batch)
		cancel()
		if err == nil {
			t.sent.Add(int64(len(batch)))
			return
		}
		t.log.Warn("publishing; will retry", "topic", t.p.Topic(), "records", len(batch), "err", err)
		if attempts > 0 && try >= attempts {
			t.failed.Add(int64(len(batch)))
			return
		}
		select {
		case <-time.After(backoff):
		case <-t.closing:
			if attempts == 0 {
				attempts = try + 3
			}
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Sent and Failed count records acknowledged and given up on.
func (t *TopicPublisher) Sent() int64   { return t.sent.Load() }
func (t *TopicPublisher) Failed() int64 { return t.failed.Load() }

// Close sends what is queued (a few more tries) and stops.
func (t *TopicPublisher) Close() {
	t.once.Do(func() { close(t.closing) })
	t.wg.Wait()
}

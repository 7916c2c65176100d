package engine

import (
	"context"
	"errors"
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
	ch      chan pubItem
	log     *slog.Logger
	wg      sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	closing chan struct{}
	once    sync.Once
}

var _ Publisher = (*TopicPublisher)(nil)

// pubItem is a record to send or, with flushed set, a Flush marker: it is
// closed once every record queued before it has been sent (or given up).
type pubItem struct {
	msg     kafka.Message
	flushed chan struct{}
}

// ErrPublisherClosed is returned by Flush after Close.
var ErrPublisherClosed = errors.New("engine: publisher closed")

// NewTopicPublisher starts a publisher on p with room for buffer records.
func NewTopicPublisher(p *kafka.Producer, buffer int, log *slog.Logger) *TopicPublisher {
	if buffer <= 0 {
		buffer = 4096
	}
	if log == nil {
		log = slog.Default()
	}
	t := &TopicPublisher{p: p, ch: make(chan pubItem, buffer), log: log, closing: make(chan struct{})}
	t.wg.Add(1)
	go t.run()
	return t
}

// Publish queues one record. The key and value must not be changed
// afterwards.
func (t *TopicPublisher) Publish(key, value []byte) {
	select {
	case t.ch <- pubItem{msg: kafka.Message{Key: key, Value: value}}:
	case <-t.closing:
		t.failed.Add(1)
	}
}

// Flush returns once every record whose Publish returned before Flush was
// called has been acknowledged by the broker (or given up on at Close). It
// returns ctx's error if ctx ends first and ErrPublisherClosed after
// Close. Records are sent in order, so a flushed record's topic offset is
// below the end offsets read after Flush returns: the snapshot uses that
// to know which decisions it holds (see engine/replay.go).
func (t *TopicPublisher) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case t.ch <- pubItem{flushed: done}:
	case <-t.closing:
		return ErrPublisherClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *TopicPublisher) run() {
	defer t.wg.Done()
	batch := make([]kafka.Message, 0, 512)
	var marks []chan struct{}
	add := func(it pubItem) {
		if it.flushed != nil {
			marks = append(marks, it.flushed)
			return
		}
		batch = append(batch, it.msg)
	}
	// sent closes the Flush markers of what was just sent: every record
	// queued before a marker is in this batch or an earlier one.
	sent := func() {
		for _, m := range marks {
			close(m)
		}
		marks = marks[:0]
	}
	for {
		batch = batch[:0]
		select {
		case it := <-t.ch:
			add(it)
		case <-t.closing:
			// Drain what is queued, then stop.
			for {
				select {
				case it := <-t.ch:
					add(it)
				default:
					t.send(batch, 3)
					sent()
					return
				}
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case it := <-t.ch:
				add(it)
			default:
				break fill
			}
		}
		t.send(batch, 0)
		sent()
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

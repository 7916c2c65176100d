package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Header is one Kafka record header.
type Header struct {
	// Key is the header's name; keys may repeat.
	Key string
	// Value is the header's raw value; nil and empty are the same.
	Value []byte
}

// Message is a record to produce. The producer does not keep references to
// Key, Value or Headers after Produce returns.
type Message struct {
	// Key chooses the partition (murmur2 hash, as the Java client and
	// franz-go do, so every client agrees on where a key lives). Records
	// with the same key keep their order.
	Key []byte
	// Value is the record's payload (an event's JSON for TopicEvents).
	Value []byte
	// Headers travel with the record, in order.
	Headers []Header
}

// ProducerOptions configures a Producer.
type ProducerOptions struct {
	// Brokers is the bootstrap list, host:port each. Required.
	Brokers []string
	// Topic every message goes to. Required.
	Topic string
	// BatchTimeout is how long a partial batch waits for more messages
	// before it is sent. A synchronous Produce of fewer than BatchSize
	// messages per partition waits this long once. Default: 2ms.
	BatchTimeout time.Duration
	// BatchSize is the most messages sent to one partition in one request.
	// kafka-go allocates room for BatchSize messages per batch, so a large
	// value turns into garbage on every small synchronous write (1000 made
	// 67% of all allocations at 20k events/s and stretched freshness p99
	// through GC pauses); bulk producers may raise it. Default: 100.
	BatchSize int
	// BatchBytes is the most bytes sent to one partition in one request;
	// keep it at or below the broker's message.max.bytes. Default: 1 MiB.
	BatchBytes int64
	// MaxAttempts is how many times a batch is tried before Produce gives
	// up with an error. Default: 3.
	MaxAttempts int
	// WriteTimeout bounds one produce request on the wire. Default: 10s.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting to a broker. Default: 3s.
	DialTimeout time.Duration
	// ErrorLog receives the client's internal error messages. Default: nil
	// (discarded).
	ErrorLog *slog.Logger
}

func (o ProducerOptions) withDefaults() ProducerOptions {
	if o.BatchTimeout == 0 {
		o.BatchTimeout = 2 * time.Millisecond
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 1 << 20
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 3 * time.Second
	}
	return o
}

// Validate reports every problem with the options at once.
func (o ProducerOptions) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("kafka producer: brokers: at least one host:port is required"))
	}
	if o.Topic == "" {
		errs = append(errs, errors.New("kafka producer: topic is required"))
	}
	if o.BatchTimeout < 0 || o.WriteTimeout < 0 || o.DialTimeout < 0 {
		errs = append(errs, errors.New("kafka producer: timeouts must not be negative"))
	}
	if o.BatchSize < 0 || o.BatchBytes < 0 || o.MaxAttempts < 0 {
		errs = append(errs, errors.New("kafka producer: batch size, batch bytes and max attempts must not be negative"))
	}
	return errors.Join(errs...)
}

// Producer writes messages to one topic and waits for the broker to
// acknowledge them from all in-sync replicas (acks=all). It is safe for
// concurrent use; concurrent Produce calls share batches.
type Producer struct {
	topic  string
	w      *kafkago.Writer
	closed atomic.Bool
}

// NewProducer returns a producer for opts.Topic. It does not connect until
// the first Produce.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(opts.Brokers...),
		Topic:        opts.Topic,
		Balancer:     &kafkago.Murmur2Balancer{},
		MaxAttempts:  opts.MaxAttempts,
		BatchSize:    opts.BatchSize,
		BatchBytes:   opts.BatchBytes,
		BatchTimeout: opts.BatchTimeout,
		WriteTimeout: opts.WriteTimeout,
		ReadTimeout:  opts.WriteTimeout,
		// kafka-go defaults to RequireNone, under which a write to a dead
		// broker "succeeds" and the record is lost.
		RequiredAcks: kafkago.RequireAll,
		Transport: &kafkago.Transport{
			DialTimeout: opts.DialTimeout,
			ClientID:    "nbo",
		},
	}
	if opts.ErrorLog != nil {
		log := opts.ErrorLog
		w.ErrorLogger = kafkago.LoggerFunc(func(msg string, args ...any) {
			log.Error(fmt.Sprintf(msg, args...), "component", "kafka-producer")
		})
	}
	return &Producer{topic: opts.Topic, w: w}, nil
}

// PartitionOf returns the partition, among `partitions`, that Produce (and
// the Java client, franz-go and librdkafka with partitioner=murmur2_random)
// writes a record with this key to. Replicas use it to route a customer's
// requests to the replica that owns the customer's partition. A nil key has
// no fixed partition: Produce spreads such records at random, and so does
// PartitionOf. It returns 0 when partitions < 1.
func PartitionOf(key []byte, partitions int) int {
	if partitions < 1 {
		return 0
	}
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	return (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: key}, ids...)
}

// Topic returns the topic the producer writes to.
func (p *Producer) Topic() string { return p.topic }

// Produce writes msgs and returns nil only after the broker acknowledged
// every one of them. On error some messages may have been written (Kafka
// offers no atomic multi-partition write without transactions), so callers
// retry the whole call and rely on idempotency keys (event_id) downstream.
//
// The error wraps ErrUnavailable when the broker could not be reached or
// could not take the write; it is ctx's error when ctx ended first, and
// ErrClosed after Close.
func (p *Producer) Produce(ctx context.Context, msgs []Message) error {
	if p.closed.Load() {
		return fmt.Errorf("producing to %s: %w", p.topic, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	kmsgs := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		kmsgs[i] = kafkago.Message{Key: m.Key, Value: m.Value}
		if len(m.Headers) > 0 {
			hs := make([]kafkago.Header, len(m.Headers))
			for j, h := range m.Headers {
				hs[j] = kafkago.Header{Key: h.Key, Value: h.Value}
			}
			kmsgs[i].Headers = hs
		}
	}
	if err := p.w.WriteMessages(ctx, kmsgs...); err != nil {
		if p.closed.Load() {
			return fmt.Errorf("producing %d messages to %s: %w", len(msgs), p.topic, ErrClosed)
		}
		return fmt.Errorf("producing %d messages to %s: %w", len(msgs), p.topic, classify(ctx, summarize(err)))
	}
	return nil
}

// Close flushes pending batches and releases connections. Produce calls
// after Close return ErrClosed.
func (p *Producer) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("closing producer for %s: %w", p.topic, err)
	}
	return nil
}

// summarize shortens kafka-go's per-message WriteErrors (one entry per
// message, often hundreds of copies of one cause) to a count and the first
// cause, which stays in the error chain.
func summarize(err error) error {
	var werrs kafkago.WriteErrors
	if !errors.As(err, &werrs) {
		return err
	}
	var first error
	for _, e := range werrs {
		if e != nil {
			first = e
			break
		}
	}
	if first == nil {
		return err
	}
	return fmt.Errorf("%d of %d messages failed, first: %w", werrs.Count(), len(werrs), first)
}

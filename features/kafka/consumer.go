package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Record is one consumed record.
type Record struct {
	// Partition is the partition the record was read from.
	Partition int
	// Offset is the record's position in its partition; the offset to
	// commit after applying it is Offset+1.
	Offset int64
	// Key, Value and Headers belong to the caller; the consumer does not
	// reuse them.
	Key     []byte
	Value   []byte
	Headers []Header
	// Time is the record's timestamp as the broker stored it (by default
	// the producer's create time).
	Time time.Time
}

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	// Brokers is the bootstrap list, host:port each. Required.
	Brokers []string
	// Topic to consume. Required.
	Topic string
	// GroupID names the consumer group whose committed offsets the consumer
	// resumes from and commits to. Required.
	GroupID string
	// MinBytes is the least data a fetch waits for. 1 delivers a record as
	// soon as it is written, which is what freshness needs. Default: 1.
	MinBytes int
	// MaxBytes is the most data one fetch returns per partition; large
	// fetches are what make consuming fast. Default: 16 MiB.
	MaxBytes int
	// MaxWait is how long the broker holds a fetch open waiting for MinBytes.
	// With MinBytes 1 it does not delay records that exist; short values
	// (200ms) caused i/o-timeout refetches under load with kafka-go.
	// Default: 2s.
	MaxWait time.Duration
	// QueueCapacity is how many fetched records are buffered ahead of Fetch.
	// Default: 10000.
	QueueCapacity int
	// StartAtEnd makes a group with no committed offset for a partition start
	// at the end of the log instead of the beginning. Default: false (read
	// everything: the log is the record of truth).
	StartAtEnd bool
	// SessionTimeout is how long the group coordinator waits without a
	// heartbeat before it declares a member dead and hands its partitions to
	// others; after a crash, a restarted member waits about this long for its
	// partitions. Default: 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the member heartbeats. Default: 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for members to
	// rejoin. Default: 10s.
	RebalanceTimeout time.Duration
	// JoinGroupBackoff is the pause between attempts to join the group when
	// the coordinator cannot be reached; after three failed attempts Fetch
	// returns an error wrapping ErrUnavailable. Default: 1s.
	JoinGroupBackoff time.Duration
	// DialTimeout bounds connecting to a broker. Default: 3s.
	DialTimeout time.Duration
	// ErrorLog receives the client's internal error messages (fetch retries,
	// rebalances). Default: nil (discarded).
	ErrorLog *slog.Logger
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.MinBytes == 0 {
		o.MinBytes = 1
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 16 << 20
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Second
	}
	if o.QueueCapacity == 0 {
		o.QueueCapacity = 10000
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.RebalanceTimeout == 0 {
		o.RebalanceTimeout = 10 * time.Second
	}
	if o.JoinGroupBackoff == 0 {
		o.JoinGroupBackoff = time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 3 * time.Second
	}
	return o
}

// Validate reports every problem with the options at once.
func (o ConsumerOptions) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("kafka consumer: brokers: at least one host:port is required"))
	}
	if o.Topic == "" {
		errs = append(errs, errors.New("kafka consumer: topic is required"))
	}
	if o.GroupID == "" {
		errs = append(errs, errors.New("kafka consumer: group id is required"))
	}
	if o.MinBytes < 0 || o.MaxBytes < 0 || o.MinBytes > o.MaxBytes {
		errs = append(errs, fmt.Errorf("kafka consumer: need 0 <= min bytes (%d) <= max bytes (%d)", o.MinBytes, o.MaxBytes))
	}
	if o.QueueCapacity < 0 {
		errs = append(errs, fmt.Errorf("kafka consumer: queue capacity must not be negative, got %d", o.QueueCapacity))
	}
	if o.MaxWait < 0 || o.SessionTimeout < 0 || o.HeartbeatInterval < 0 || o.RebalanceTimeout < 0 || o.JoinGroupBackoff < 0 || o.DialTimeout < 0 {
		errs = append(errs, errors.New("kafka consumer: timeouts must not be negative"))
	}
	if o.HeartbeatInterval > 0 && o.SessionTimeout > 0 && o.HeartbeatInterval >= o.SessionTimeout {
		errs = append(errs, fmt.Errorf("kafka consumer: heartbeat interval %v must be shorter than session timeout %v", o.HeartbeatInterval, o.SessionTimeout))
	}
	return errors.Join(errs...)
}

// Consumer reads one topic as a member of a consumer group. The group
// delivers at least once: after a restart or a rebalance it resumes from its
// last committed offsets, which lag what the engine has applied (commits
// follow durable snapshots), so records may arrive again. Fetch drops the
// ones it already returned in this process and, after SkipBelow, the ones a
// restored snapshot covers, so each offset is returned at most once.
//
// Fetch and Commit may be called from different goroutines; Fetch must be
// called from one goroutine at a time (the ingest loop).
type Consumer struct {
	topic   string
	group   string
	brokers []string
	r       *kafkago.Reader
	// pending holds floors from SkipBelow not yet merged into next.
	pending atomic.Pointer[map[int]int64]
	// next is, per partition, the lowest offset Fetch may still return:
	// one past the last record it returned, or a SkipBelow floor. Only
	// Fetch touches it.
	next    map[int]int64
	skipped atomic.Int64
	closed  atomic.Bool
}

// NewConsumer returns a consumer. It starts joining the group and
// prefetching records in the background at once; call SkipBelow before the
// first Fetch.
func NewConsumer(opts ConsumerOptions) (*Consumer, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	start := kafkago.FirstOffset
	if opts.StartAtEnd {
		start = kafkago.LastOffset
	}
	cfg := kafkago.ReaderConfig{
		Brokers:           opts.Brokers,
		GroupID:           opts.GroupID,
		Topic:             opts.Topic,
		Dialer:            &kafkago.Dialer{Timeout: opts.DialTimeout, DualStack: true, ClientID: "nbo"},
		QueueCapacity:     opts.QueueCapacity,
		MinBytes:          opts.MinBytes,
		MaxBytes:          opts.MaxBytes,
		MaxWait:           opts.MaxWait,
		HeartbeatInterval: opts.HeartbeatInterval,
		SessionTimeout:    opts.SessionTimeout,
		RebalanceTimeout:  opts.RebalanceTimeout,
		JoinGroupBackoff:  opts.JoinGroupBackoff,
		// Commits are explicit (Commit) and synchronous: CommitInterval 0.
		CommitInterval: 0,
		StartOffset:    start,
	}
	if opts.ErrorLog != nil {
		log := opts.ErrorLog
		cfg.ErrorLogger = kafkago.LoggerFunc(func(msg string, args ...any) {
			log.Error(fmt.Sprintf(msg, args...), "component", "kafka-consumer", "topic", opts.Topic, "group", opts.GroupID)
		})
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer for %s: %w", opts.Topic, err)
	}
	c := &Consumer{
		topic:   opts.Topic,
		group:   opts.GroupID,
		brokers: append([]string(nil), opts.Brokers...),
		r:       kafkago.NewReader(cfg),
		next:    map[int]int64{},
	}
	return c, nil
}

// Topic returns the consumed topic.
func (c *Consumer) Topic() string { return c.topic }

// SkipBelow makes Fetch drop records whose offset is below offsets[partition]
// ("next offset to read", as stored in a snapshot). Call it after restoring a
// snapshot, before the first Fetch; it may be called again at any time and
// only ever raises a partition's floor.
//
// Independently of SkipBelow, Fetch never returns a record at or below one it
// already returned for the same partition: after a rebalance the group
// rewinds every partition to its last commit, and those re-deliveries are
// dropped here rather than applied twice.
func (c *Consumer) SkipBelow(offsets map[int]int64) {
	for {
		old := c.pending.Load()
		merged := maps.Clone(offsets)
		if merged == nil {
			merged = map[int]int64{}
		}
		if old != nil {
			for p, o := range *old {
				merged[p] = max(merged[p], o)
			}
		}
		if c.pending.CompareAndSwap(old, &merged) {
			return
		}
	}
}

// Skipped returns how many records Fetch has dropped as already covered (by
// SkipBelow or by an earlier delivery).
func (c *Consumer) Skipped() int64 { return c.skipped.Load() }

// Fetch blocks until the next record is available and returns it. It
// returns ctx's error when ctx ends and ErrClosed after Close. Fetch errors
// on an established connection are retried inside the client; when the group
// cannot be joined (three attempts JoinGroupBackoff apart) Fetch returns an
// error wrapping ErrUnavailable, and the caller may simply call Fetch again,
// which keeps trying. Records come in offset order within a partition;
// partitions interleave.
func (c *Consumer) Fetch(ctx context.Context) (Record, error) {
	for {
		m, err := c.r.FetchMessage(ctx)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return Record{}, ctxErr
			}
			if c.closed.Load() || errors.Is(err, io.EOF) {
				return Record{}, fmt.Errorf("fetching from %s: %w", c.topic, ErrClosed)
			}
			return Record{}, fmt.Errorf("fetching from %s (group %s): %w", c.topic, c.group, classify(ctx, err))
		}
		if c.pending.Load() != nil {
			for p, o := range *c.pending.Swap(nil) {
				c.next[p] = max(c.next[p], o)
			}
		}
		if m.Offset < c.next[m.Partition] {
			c.skipped.Add(1)
			continue
		}
		c.next[m.Partition] = m.Offset + 1
		rec := Record{
			Partition: m.Partition,
			Offset:    m.Offset,
			Key:       m.Key,
			Value:     m.Value,
			Time:      m.Time,
		}
		if len(m.Headers) > 0 {
			rec.Headers = make([]Header, len(m.Headers))
			for i, h := range m.Headers {
				rec.Headers[i] = Header{Key: h.Key, Value: h.Value}
			}
		}
		return rec, nil
	}
}

// Commit stores offsets[partition] — the next offset to read, i.e. the last
// applied offset plus one — as the group's committed position, and returns
// once the coordinator acknowledged it. Call it only for offsets covered by
// a durable snapshot. While the consumer holds no group generation (right
// after NewConsumer, during a rebalance, or while the broker is down) Commit
// waits for one until ctx ends.
// It returns ctx's error on cancellation and ErrClosed after Close.
func (c *Consumer) Commit(ctx context.Context, offsets map[int]int64) error {
	if c.closed.Load() {
		return fmt.Errorf("committing offsets for %s: %w", c.topic, ErrClosed)
	}
	if len(offsets) == 0 {
		return nil
	}
	msgs := make([]kafkago.Message, 0, len(offsets))
	for p, next := range offsets {
		if p < 0 || next < 0 {
			return fmt.Errorf("committing offsets for %s: partition %d offset %d: both must be non-negative", c.topic, p, next)
		}
		// kafka-go commits Offset+1 for a message (the next one to read),
		// so a synthesized message at next-1 commits exactly next.
		msgs = append(msgs, kafkago.Message{Topic: c.topic, Partition: p, Offset: next - 1})
	}
	if err := c.r.CommitMessages(ctx, msgs...); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if c.closed.Load() || errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("committing offsets for %s: %w", c.topic, ErrClosed)
		}
		return fmt.Errorf("committing offsets %v for %s (group %s): %w", offsets, c.topic, c.group, classify(ctx, err))
	}
	return nil
}

// Close leaves the group (so its partitions move to other members at once)
// and releases connections; it takes up to HeartbeatInterval. A Fetch
// blocked in another goroutine returns ErrClosed. Offsets are not committed
// on Close: commits are the caller's, after a durable snapshot.
func (c *Consumer) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.r.Close(); err != nil {
		return fmt.Errorf("closing consumer for %s (group %s): %w", c.topic, c.group, err)
	}
	return nil
}

package kafka

import (
	"context"
	"fmt"
	"strconv"
)

// Dead-letter header names. Values are UTF-8 text.
const (
	HeaderSourceTopic     = "nbo-source-topic"
	HeaderSourcePartition = "nbo-source-partition" // decimal
	HeaderSourceOffset    = "nbo-source-offset"    // decimal
	HeaderReason          = "nbo-reason"           // a stable reason code, e.g. "missing_field"
	HeaderField           = "nbo-field"            // the offending field, may be empty
	HeaderValueBytes      = "nbo-value-bytes"      // decimal size of the original value
	HeaderTruncated       = "nbo-truncated"        // "true" when the value was cut to MaxDeadLetterValue
)

// MaxDeadLetterValue is the most bytes of a rejected record's value kept in
// its dead letter; longer values are cut to this prefix, flagged with
// HeaderTruncated, and their original size is in HeaderValueBytes. It keeps
// one oversized or hostile record from producing an oversized dead letter.
const MaxDeadLetterValue = 64 << 10

// DeadLetter describes one rejected record.
type DeadLetter struct {
	// Source is the record as it was consumed.
	Source Record
	// SourceTopic is the topic the record was consumed from.
	SourceTopic string
	// Reason is the stable reason code (features.Reason as a string).
	Reason string
	// Field is the offending field, if any.
	Field string
}

// Message returns the dead letter as a message: the source record's key, its
// value (cut to MaxDeadLetterValue) and the nbo-* headers. The source
// record's own headers are not carried over.
func (d DeadLetter) Message() Message {
	value := d.Source.Value
	truncated := len(value) > MaxDeadLetterValue
	if truncated {
		value = value[:MaxDeadLetterValue]
	}
	headers := []Header{
		{Key: HeaderSourceTopic, Value: []byte(d.SourceTopic)},
		{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(d.Source.Partition), 10)},
		{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, d.Source.Offset, 10)},
		{Key: HeaderReason, Value: []byte(d.Reason)},
		{Key: HeaderField, Value: []byte(d.Field)},
		{Key: HeaderValueBytes, Value: strconv.AppendInt(nil, int64(len(d.Source.Value)), 10)},
	}
	if truncated {
		headers = append(headers, Header{Key: HeaderTruncated, Value: []byte("true")})
	}
	return Message{Key: d.Source.Key, Value: value, Headers: headers}
}

// DeadLetters writes rejected records to a dead-letter topic through a
// Producer it owns.
type DeadLetters struct {
	p *Producer
}

// NewDeadLetters returns a dead-letter writer. opts.Topic defaults to
// TopicEventsDLQ; the other options are the Producer's.
func NewDeadLetters(opts ProducerOptions) (*DeadLetters, error) {
	if opts.Topic == "" {
		opts.Topic = TopicEventsDLQ
	}
	p, err := NewProducer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating dead-letter writer: %w", err)
	}
	return &DeadLetters{p: p}, nil
}

// Send produces the dead letters and returns once the broker acknowledged
// all of them; errors are the Producer's (ErrUnavailable, ctx's error,
// ErrClosed). The engine must not commit past a rejected record's offset
// until its dead letter is sent, or the rejection would be lost.
func (d *DeadLetters) Send(ctx context.Context, letters []DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
	msgs := make([]Message, len(letters))
	for i, l := range letters {
		msgs[i] = l.Message()
	}
	if err := d.p.Produce(ctx, msgs); err != nil {
		return fmt.Errorf("sending %d dead letters: %w", len(letters), err)
	}
	return nil
}

// Close flushes and closes the underlying producer.
func (d *DeadLetters) Close() error { return d.p.Close() }

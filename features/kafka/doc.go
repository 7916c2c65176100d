// Package kafka is nbo's adapter to the Kafka protocol: the one place that
// imports a Kafka client library (segmentio/kafka-go for traffic, franz-go's
// kfake for the embedded broker).
//
// It provides
//   - an embedded Kafka-protocol broker (StartEmbedded) with a data directory,
//     so one nbo binary runs the whole system and tests exercise the same
//     client code paths as production;
//   - idempotent topic creation (EnsureTopics) for nbo's topics;
//   - a synchronous, fully acknowledged producer (Producer) whose Produce
//     returns only once the broker acknowledged every message, and reports an
//     unreachable broker as ErrUnavailable;
//   - a consumer-group reader (Consumer) with explicit per-partition offset
//     commits and a skip list for records a durable snapshot already covers;
//   - a dead-letter writer (DeadLetters) for rejected records.
//
// Only this package's own types (Message, Record, Header, TopicSpec, …) cross
// its boundary; no kafka-go or franz-go type appears in the exported API.
//
// It is not a general Kafka toolkit: there are no transactions, no idempotent
// producer (kafka-go has none) and no partition reassignment. Exactly-once
// processing is the engine's job (snapshot offsets plus event_id dedup), and
// this package only gives it the primitives: at-least-once delivery, explicit
// commits, and SkipBelow.
package kafka

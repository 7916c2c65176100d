// Package features is the streaming feature store: it decodes and validates
// behavioural events (schema v1), resolves one identity per customer, keeps
// exact event-time features per customer (windowed counters, recency, cart,
// visits, spend, consent, offer history), deduplicates by event_id, and
// snapshots its state with the Kafka offsets it covers.
//
// It is the lowest package: it imports no other package of the module, and
// every other package speaks its vocabulary (Event, Key, Channel, View). It
// does not decide anything and knows nothing of offers beyond their history.
package features

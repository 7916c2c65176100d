package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// nbo's topic names.
const (
	// TopicEvents carries behavioural events (schema v1 JSON), keyed by a
	// customer identifier. It is the log of record.
	TopicEvents = "nbo.events"
	// TopicEventsDLQ carries events rejected while consuming TopicEvents,
	// with their source offset and reason in headers (see DeadLetters).
	TopicEventsDLQ = "nbo.events.dlq"
	// TopicTriggers carries trigger messages for the push service.
	TopicTriggers = "nbo.triggers"
	// TopicDecisions carries the decision log.
	TopicDecisions = "nbo.decisions"
)

// TopicSpec names a topic and the partition count it gets if it has to be
// created.
type TopicSpec struct {
	// Name is the topic's name, e.g. TopicEvents.
	Name string
	// Partitions is used only when creating the topic; an existing topic is
	// left as it is. Must be at least 1.
	Partitions int
}

// Topics returns the specs for all of nbo's topics with the given partition
// count.
func Topics(partitions int) []TopicSpec {
	return []TopicSpec{
		{Name: TopicEvents, Partitions: partitions},
		{Name: TopicEventsDLQ, Partitions: partitions},
		{Name: TopicTriggers, Partitions: partitions},
		{Name: TopicDecisions, Partitions: partitions},
	}
}

// EnsureTopics creates the topics that do not exist yet and waits until the
// cluster's metadata lists every one of them. Existing topics are left as
// they are (their partition count is not changed), so calling it again is
// harmless. It returns ctx's error if ctx ends first, and wraps ErrUnavailable
// when the brokers cannot be reached.
func EnsureTopics(ctx context.Context, brokers []string, topics []TopicSpec) error {
	var errs []error
	if len(brokers) == 0 {
		errs = append(errs, errors.New("ensuring topics: no brokers given"))
	}
	for _, t := range topics {
		if t.Name == "" {
			errs = append(errs, errors.New("ensuring topics: a topic has an empty name"))
		}
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("ensuring topic %q: partitions must be at least 1, got %d", t.Name, t.Partitions))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	client, done := adminClient(brokers)
	defer done()
	missing, err := missingTopics(ctx, client, topics)
	if err != nil {
		return fmt.Errorf("ensuring topics on %v: listing topics: %w", brokers, classify(ctx, err))
	}
	if len(missing) == 0 {
		return nil
	}

	req := &kafkago.CreateTopicsRequest{}
	for _, t := range missing {
		req.Topics = append(req.Topics, kafkago.TopicConfig{
			Topic:             t.Name,
			NumPartitions:     t.Partitions,
			ReplicationFactor: -1, // the cluster's default.replication.factor
		})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("ensuring topics on %v: creating %d topics: %w", brokers, len(missing), classify(ctx, err))
	}
	for name, terr := range resp.Errors {
		// Another process may have created it between our listing and our
		// request; that is success for an idempotent call.
		if terr != nil && !errors.Is(terr, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("ensuring topics: creating %q: %w", name, classify(ctx, terr)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// Topic creation is asynchronous on a real cluster: wait until every
	// topic shows up in metadata with its leaders, so a producer started
	// right after us does not see UnknownTopicOrPartition.
	for {
		missing, err = missingTopics(ctx, client, topics)
		if err == nil && len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensuring topics on %v: waiting for %d created topics to appear: %w", brokers, len(missing), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// missingTopics returns the specs whose topic is absent from the cluster's
// metadata (or present without partitions yet).
func missingTopics(ctx context.Context, client *kafkago.Client, topics []TopicSpec) ([]TopicSpec, error) {
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		names = append(names, t.Name)
	}
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return nil, err
	}
	var missing []TopicSpec
	for _, t := range topics {
		i := slices.IndexFunc(md.Topics, func(mt kafkago.Topic) bool { return mt.Name == t.Name })
		if i < 0 || md.Topics[i].Error != nil || len(md.Topics[i].Partitions) == 0 {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// adminClient returns a kafka-go client for metadata and admin requests.
// adminClient is a client for one admin call; done closes its
// connections (its transport would otherwise keep them open until they
// idle out, one set per call: the ingest loop asks for end offsets every
// second while the stream is quiet).
func adminClient(brokers []string) (client *kafkago.Client, done func()) {
	t := &kafkago.Transport{DialTimeout: 3 * time.Second, ClientID: "nbo"}
	return &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second, Transport: t}, t.CloseIdleConnections
}

// EndOffsets returns, per partition of topic, the offset the next produced
// record will get (the high watermark). An engine that has applied every
// record below these offsets has caught up with the log as of the call,
// which is what readiness after a restart waits for. The error wraps
// ErrUnavailable when the brokers cannot be reached.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	if len(brokers) == 0 {
		return nil, errors.New("listing end offsets: no brokers given")
	}
	client, done := adminClient(brokers)
	defer done()
	parts, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	var reqs []kafkago.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafkago.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{topic: reqs},
	})
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, classify(ctx, err))
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing end offsets of %s partition %d: %w", topic, po.Partition, classify(ctx, po.Error))
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// CommittedOffsets returns, per partition of topic, the offset group has
// committed (the next one it would read); partitions without a commit are
// left out. A consumer of the group resumes from these offsets, so a state
// restored from older offsets would never see the records in between. The
// error wraps ErrUnavailable when the brokers cannot be reached.
func CommittedOffsets(ctx context.Context, brokers []string, topic, group string) (map[int]int64, error) {
	if len(brokers) == 0 {
		return nil, errors.New("reading committed offsets: no brokers given")
	}
	client, done := adminClient(brokers)
	defer done()
	parts, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return nil, fmt.Errorf("reading the committed offsets of group %s on %s: %w", group, topic, err)
	}
	resp, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = resp.Error
	}
	if errors.Is(err, kafkago.GroupIdNotFound) {
		// A group that does not exist (yet: its first member may still be
		// joining) has committed nothing.
		return map[int]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the committed offsets of group %s on %s: %w", group, topic, classify(ctx, err))
	}
	out := make(map[int]int64, len(parts))
	for _, po := range resp.Topics[topic] {
		if errors.Is(po.Error, kafkago.GroupIdNotFound) {
			continue
		}
		if po.Error != nil {
			return nil, fmt.Errorf("reading the committed offsets of group %s on %s partition %d: %w", group, topic, po.Partition, classify(ctx, po.Error))
		}
		if po.CommittedOffset >= 0 {
			out[po.Partition] = po.CommittedOffset
		}
	}
	return out, nil
}

// topicPartitions lists topic's partition IDs from the brokers' metadata;
// an unknown topic is kafka-go's UnknownTopicOrPartition.
func topicPartitions(ctx context.Context, client *kafkago.Client, topic string) ([]int, error) {
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata: %w", classify(ctx, err))
	}
	i := slices.IndexFunc(md.Topics, func(mt kafkago.Topic) bool { return mt.Name == topic })
	if i < 0 {
		return nil, kafkago.UnknownTopicOrPartition
	}
	if md.Topics[i].Error != nil {
		return nil, md.Topics[i].Error
	}
	parts := make([]int, 0, len(md.Topics[i].Partitions))
	for _, p := range md.Topics[i].Partitions {
		parts = append(parts, p.ID)
	}
	return parts, nil
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedOptions configures the embedded broker.
type EmbeddedOptions struct {
	// Addr is the host:port the broker listens on and advertises to clients
	// in metadata. Use port 0 to pick a free port (tests); Embedded.Addrs
	// reports the bound address. Bind to a concrete address clients can
	// dial: the listener's address is what the broker advertises, so
	// "0.0.0.0:9092" would advertise an address remote clients cannot use.
	// Default: 127.0.0.1:9092.
	Addr string

	// DataDir is where the broker keeps its log segments, topics and
	// consumer-group offsets so they survive a restart. It is created if
	// missing. Empty keeps everything in memory (lost on Close).
	// Default: "" (in memory).
	DataDir string

	// Partitions is the partition count for topics created without one
	// (CreateTopics with -1 partitions). EnsureTopics passes its own count.
	// Default: 4.
	Partitions int

	// SyncWrites fsyncs every produced batch before acknowledging it. Without
	// it the broker relies on the page cache (as real Kafka does by default):
	// a killed process loses nothing, a power cut may lose the newest batches.
	// Default: false.
	SyncWrites bool
}

// withDefaults returns a copy of o with zero fields set to their defaults.
func (o EmbeddedOptions) withDefaults() EmbeddedOptions {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:9092"
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	return o
}

// Validate reports every problem with the options at once.
func (o EmbeddedOptions) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		errs = append(errs, fmt.Errorf("embedded kafka: addr %q is not host:port: %w", o.Addr, err))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("embedded kafka: partitions must be at least 1, got %d", o.Partitions))
	}
	return errors.Join(errs...)
}

// Embedded is a single-node Kafka-protocol broker running inside this process
// (franz-go's kfake). It speaks the ordinary Kafka wire protocol, so any Kafka
// client — kafka-go, franz-go, kcat, the Java client — can produce to it and
// consume from it, including consumer groups and offset commits.
//
// It is meant for a one-binary deployment and for tests, not as a replacement
// for a replicated cluster: there is one broker and no replication.
type Embedded struct {
	cluster *kfake.Cluster
	addrs   []string
}

// StartEmbedded starts the broker and returns once it is listening. With a
// DataDir that holds a previous run's state, topics, records and committed
// group offsets are loaded from it. ctx bounds only the start-up; the broker
// runs until Close.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions) (*Embedded, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting embedded kafka on %s: %w", opts.Addr, err)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.ClusterID("nbo-embedded"),
		// kfake always binds 127.0.0.1:<port>; ListenFn lets us bind the
		// configured host too. The listener's address is what the broker
		// advertises in metadata.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, opts.Addr)
		}),
	}
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("starting embedded kafka: creating data dir %s: %w", opts.DataDir, err)
		}
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
		if opts.SyncWrites {
			kopts = append(kopts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded kafka on %s (data dir %q): %w", opts.Addr, opts.DataDir, err)
	}
	return &Embedded{cluster: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the broker's bound host:port, for use as a bootstrap list.
func (e *Embedded) Addrs() []string {
	return append([]string(nil), e.addrs...)
}

// Close stops the broker. With a DataDir it first writes the broker's state
// (partition snapshots, group offsets) so the next StartEmbedded resumes
// from it. Close is safe to call more than once.
func (e *Embedded) Close() error {
	e.cluster.Close()
	return nil
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedOptions configures the embedded broker.
type EmbeddedOptions struct {
	// Addr is the host:port the broker listens on. Use port 0 to pick a
	// free port (tests). A wildcard host ("0.0.0.0", "::" or empty)
	// listens on every interface. Default: 127.0.0.1:9092.
	Addr string

	// AdvertisedAddr is the host:port the broker names in metadata, which
	// is where every client connects after its bootstrap: it must be an
	// address clients can dial, so never a wildcard. Port 0 (or none,
	// "host") means the bound port. Embedded.Addrs reports it.
	// Default: Addr's host and the bound port; for a wildcard Addr, this
	// machine's hostname (it must resolve here; clients on other hosts
	// must be able to resolve it too, else set an address they can).
	AdvertisedAddr string

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
	if o.AdvertisedAddr != "" {
		if err := CheckAdvertisedAddr(o.AdvertisedAddr); err != nil {
			errs = append(errs, fmt.Errorf("embedded kafka: %w", err))
		}
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
	warning string
}

// Warning is what an operator should hear about the broker's address, or
// "": a broker on every interface that advertises this machine's name,
// which resolves only to loopback here, cannot be reached from elsewhere
// (clients there would dial their own loopback).
func (e *Embedded) Warning() string { return e.warning }

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
	advHost, advPort, warning, err := advertised(ctx, opts)
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.ClusterID("nbo-embedded"),
		// kfake always binds 127.0.0.1:<port>; ListenFn lets us bind the
		// configured host too. kfake advertises whatever the listener's
		// Addr says (it has no option of its own), so the listener
		// reports the advertised address: a wildcard bind would otherwise
		// tell clients to connect to "::", which no client on another
		// host can dial.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, opts.Addr)
			if err != nil {
				return nil, err
			}
			port := advPort
			if port == "" || port == "0" {
				_, port, _ = net.SplitHostPort(ln.Addr().String())
			}
			return advertisedListener{ln, advertisedAddr(net.JoinHostPort(advHost, port))}, nil
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
	return &Embedded{cluster: c, addrs: c.ListenAddrs(), warning: warning}, nil
}

// advertised returns the host and port (empty or "0": the bound port) the
// broker names in metadata (see EmbeddedOptions.AdvertisedAddr), and a
// warning for the operator (Embedded.Warning).
func advertised(ctx context.Context, opts EmbeddedOptions) (host, port, warning string, err error) {
	if opts.AdvertisedAddr != "" {
		host, port, err = splitAdvertised(opts.AdvertisedAddr) // Validate checked it
		return host, port, "", err
	}
	host, _, _ = net.SplitHostPort(opts.Addr) // Validate checked it
	if !isWildcard(host) {
		return host, "", "", nil
	}
	name, err := os.Hostname()
	var addrs []string
	if err == nil {
		addrs, err = net.DefaultResolver.LookupHost(ctx, name)
	}
	if err != nil {
		return "", "", "", fmt.Errorf("starting embedded kafka on %s: a broker listening on every interface advertises this machine's hostname, which does not resolve here (%w); set the advertised address (--embedded-kafka-advertised-addr) to a name or IP clients can reach", opts.Addr, err)
	}
	if loopbackOnly(addrs) {
		warning = fmt.Sprintf("the embedded broker listens on every interface but advertises %s, which resolves only to loopback on this machine: clients elsewhere cannot reach it; set --embedded-kafka-advertised-addr to this machine's IP or a name they resolve", name)
	}
	return name, "", warning, nil
}

// loopbackOnly reports whether every address is a loopback one.
func loopbackOnly(addrs []string) bool {
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(addrs) > 0
}

// CheckAdvertisedAddr reports whether addr (host:port, or a bare host
// that takes the bound port) names a host clients can dial: not a
// wildcard such as 0.0.0.0 or ::.
func CheckAdvertisedAddr(addr string) error {
	host, port, err := splitAdvertised(addr)
	if err != nil {
		return err
	}
	if isWildcard(host) || strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("advertised addr %q is not an address clients can dial; give this machine's name or IP, with or without a port (e.g. nbo-1.example.com:9092)", addr)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("advertised addr %q has port %q; give 1..65535, or leave it out (or 0) to advertise the one the broker listens on", addr, port)
		}
	}
	if strings.Trim(host, "0123456789") == "" {
		return fmt.Errorf("advertised addr %q names no host (a port alone?); give this machine's name or IP, with or without a port (e.g. nbo-1.example.com:9092)", addr)
	}
	return nil
}

// splitAdvertised reads an advertised address: host:port, or a bare host
// (a name or an IP, IPv6 too) that takes the bound port.
func splitAdvertised(addr string) (host, port string, err error) {
	if h, p, err := net.SplitHostPort(addr); err == nil {
		return h, p, nil
	}
	if !strings.Contains(addr, ":") || net.ParseIP(addr) != nil {
		return addr, "", nil
	}
	return "", "", fmt.Errorf("advertised addr %q is neither host:port nor a host", addr)
}

// isWildcard reports whether host listens on every interface rather than
// naming one a client could dial.
func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// advertisedListener is a listener whose Addr is the advertised address
// (what kfake puts in metadata), not the bound one.
type advertisedListener struct {
	net.Listener
	addr advertisedAddr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// advertisedAddr is a host:port as a net.Addr.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// Addrs returns the broker's advertised host:port (see
// EmbeddedOptions.AdvertisedAddr), for use as a bootstrap list.
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

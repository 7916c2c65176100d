package kafka

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// metadataBrokers bootstraps a kafka-go client from addr and returns the
// brokers the metadata names: where every client connects next.
func metadataBrokers(t *testing.T, addr string) []kafkago.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	brokers, err := conn.Brokers()
	require.NoError(t, err)
	require.NotEmpty(t, brokers)
	return brokers
}

func TestABrokerOnEveryInterfaceAdvertisesADialableHost(t *testing.T) {
	cases := []struct {
		name, addr, advertised string
		wantHost               string // "" for any dialable host but a wildcard
	}{
		{name: "0.0.0.0 advertises the hostname", addr: "0.0.0.0:0"},
		{name: "an empty host advertises the hostname", addr: ":0"},
		{name: "an explicit advertised host takes the bound port", addr: "0.0.0.0:0", advertised: "127.0.0.1", wantHost: "127.0.0.1"},
		{name: "an explicit advertised host:port 0 takes the bound port", addr: "0.0.0.0:0", advertised: "localhost:0", wantHost: "localhost"},
		{name: "a concrete listen host is advertised as is", addr: "127.0.0.1:0", wantHost: "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := StartEmbedded(context.Background(), EmbeddedOptions{Addr: c.addr, AdvertisedAddr: c.advertised})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, e.Close()) })
			_, port, err := net.SplitHostPort(e.Addrs()[0])
			require.NoError(t, err)

			for _, b := range metadataBrokers(t, net.JoinHostPort("127.0.0.1", port)) {
				require.False(t, isWildcard(b.Host), "metadata names the wildcard %q", b.Host)
				require.Equal(t, port, strconv.Itoa(b.Port), "metadata names the bound port")
				if c.wantHost != "" {
					require.Equal(t, c.wantHost, b.Host)
				}
				adv := net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
				require.Equal(t, []string{adv}, e.Addrs(), "Addrs reports what metadata advertises")
				d, err := net.DialTimeout("tcp", adv, 5*time.Second)
				require.NoError(t, err, "the advertised %s is dialable", adv)
				require.NoError(t, d.Close())
				// And a client that bootstraps from the advertised address
				// gets the same answer.
				require.Equal(t, b.Host, metadataBrokers(t, adv)[0].Host)
			}
		})
	}
}

func TestAWildcardAdvertisedAddrIsRefused(t *testing.T) {
	for _, adv := range []string{"0.0.0.0:9092", "[::]:9092", ":9092", "::"} {
		err := EmbeddedOptions{Addr: "0.0.0.0:0", AdvertisedAddr: adv, Partitions: 1}.Validate()
		require.ErrorContains(t, err, "is not an address clients can dial", adv)
	}
	require.ErrorContains(t, EmbeddedOptions{Addr: "0.0.0.0:0", AdvertisedAddr: "a:b:c", Partitions: 1}.Validate(), "neither host:port nor a host")
	for adv, want := range map[string]string{
		"host:abc": `has port "abc"`, "host:99999": `has port "99999"`, "bad host": "is not an address clients can dial",
		"19500": "names no host", "19500:9092": "names no host",
	} {
		require.ErrorContains(t, CheckAdvertisedAddr(adv), want, adv)
	}
	for _, ok := range []string{"nbo-1.example.com", "nbo-1.example.com:9092", "192.0.2.7", "[2001:db8::1]:9092", "localhost:0"} {
		require.NoError(t, CheckAdvertisedAddr(ok), ok)
	}
}

func TestLoopbackOnly(t *testing.T) {
	require.True(t, loopbackOnly([]string{"127.0.0.1", "::1"}))
	require.False(t, loopbackOnly([]string{"127.0.0.1", "192.0.2.7"}))
	require.False(t, loopbackOnly(nil), "nothing resolved is not loopback")
}

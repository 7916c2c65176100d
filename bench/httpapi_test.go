package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine/api"
	"nbo/features"
)

// TestHTTPSinkAgainstTheRealAPI posts a simulated stream through the real
// hertz ingest endpoint on loopback: every event is accepted (the API's
// decoder agrees with the simulator), the key is honoured, and a broker
// outage answered 503 with Retry-After is waited out and retried.
func TestHTTPSinkAgainstTheRealAPI(t *testing.T) {
	sim := newSim(t, Options{Seed: 12, Customers: 300, Days: 7})
	clock := time.UnixMilli(sim.End()) // the simulated weeks are in the past

	var mu sync.Mutex
	var got []features.Event
	calls := 0
	ingest := api.IngesterFunc(func(ctx context.Context, evs []features.Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 2 {
			return fmt.Errorf("producing events: %w", api.ErrUnavailable)
		}
		got = append(got, evs...)
		return nil
	})
	keys, err := api.NewKeyRing([]api.KeySpec{{Name: "sim", SHA256: sha256.Sum256([]byte("k-sim")), Scopes: api.ScopeIngest}})
	require.NoError(t, err)
	srv, err := api.New(api.Options{
		Addr: "127.0.0.1:0", Keys: keys, Ingester: ingest, RateLimit: 100_000,
		Now: func() time.Time { return clock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	sink, err := NewHTTPSink(HTTPSinkOptions{URL: "http://" + srv.Addr(), APIKey: "k-sim"})
	require.NoError(t, err)
	var want []features.Event
	var ev features.Event
	for len(want) < 1500 && sim.Next(&ev) {
		want = append(want, ev)
	}
	// The server may take a moment to start accepting connections; the
	// sink retries connection errors.
	require.NoError(t, sink.Write(ctx, want))

	st := sink.Stats()
	require.Equal(t, int64(len(want)), st.Accepted)
	require.Zero(t, st.Rejected, "the API accepts every simulated event")
	require.GreaterOrEqual(t, st.Retries, int64(1), "the 503 was retried")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, want, got)

	bad, err := NewHTTPSink(HTTPSinkOptions{URL: "http://" + srv.Addr(), APIKey: "wrong"})
	require.NoError(t, err)
	require.ErrorContains(t, bad.Write(ctx, want[:1]), "answered 401")
}

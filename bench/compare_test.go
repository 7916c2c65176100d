package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/engine/api"
	"nbo/features"
)

// hashOf turns HSET's field/value pairs into the map HGETALL returns.
func hashOf(t *testing.T, pairs []any) map[string]string {
	t.Helper()
	require.Len(t, pairs, 2*len(RedisFields))
	h := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		h[pairs[i].(string)] = pairs[i+1].(string)
	}
	require.Len(t, h, len(RedisFields), "field names are unique")
	return h
}

func sampleView() features.View {
	var v features.View
	v.Customer, v.Known, v.Version, v.NewestTS, v.FirstTS, v.Now = "member:M42", true, 17, 1_790_000_000_000, 1_780_000_000_000, 1_790_000_100_000
	on, off := features.Online, features.Offline
	v.Counts[on][features.ProductView][features.W24h] = 3
	v.Counts[on][features.ProductView][features.W7d] = 9
	v.Counts[on][features.ProductView][features.W30d] = 21
	v.Counts[on][features.Search][features.W7d] = 4
	v.Counts[on][features.AddToCart][features.W30d] = 2
	v.Counts[on][features.Order][features.W30d] = 1
	v.Counts[off][features.PosPurchase][features.W30d] = 5
	v.Counts[off][features.StoreEnter][features.W30d] = 6
	v.Sums[off][features.Dwell][features.W30d] = 3600
	v.CartValue, v.SpendOnline, v.SpendOffline, v.Orders, v.AOV, v.Points = 12900, 45000, 88000, 7, 19000, 1500
	v.Member, v.MemberSince = true, 1_700_000_000_000
	v.RecencyDays, v.RScore, v.FScore, v.MScore = 3, 5, 4, 3
	v.LastStore, v.HomeStore = "SH-002", "SH-001"
	v.Consent = [features.NumPurposes]features.ChannelMask{0b1010, 0b11, 0}
	v.ViewedNotBought = []features.Interest{{Name: "skincare", Last: 1_789_000_000_000, Count: 4}, {Name: "baby", Last: 1_788_000_000_000, Count: 1}}
	v.Group = 37
	return v
}

func TestRedisHashRoundTripsTheThirtyFields(t *testing.T) {
	want := sampleView()
	var got features.View
	got.ViewedNotBought = make([]features.Interest, 0, 8) // reused, as the engine's pooled View is
	require.NoError(t, DecodeViewHash(hashOf(t, EncodeViewHash(&want)), want.Now, &got))
	require.Equal(t, want, got)
	require.Equal(t, "nbo:v:member:M42", RedisKey(&features.IDs{Member: "M42", Device: "d1"}), "the member ID names the hash")
	require.Equal(t, "nbo:v:device:d1", RedisKey(&features.IDs{Device: "d1"}))
}

func TestDecodeViewHashStartsFromAnEmptyView(t *testing.T) {
	full := sampleView()
	v := full
	require.NoError(t, DecodeViewHash(map[string]string{"customer": "device:d9"}, 5, &v))
	require.Equal(t, features.View{Customer: "device:d9", Known: true, Now: 5, RecencyDays: -1, ViewedNotBought: v.ViewedNotBought}, v)
	require.Empty(t, v.ViewedNotBought)
}

func TestDecodeViewHashNamesEveryBadField(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    map[string]string
		bad  []string
	}{
		{"a count that is not a number", map[string]string{"customer": "member:M1", "views_online_7d": "many"}, []string{"views_online_7d"}},
		{"a negative count", map[string]string{"customer": "member:M1", "carts_30d": "-1"}, []string{"carts_30d"}},
		{"consent with two purposes of three", map[string]string{"customer": "member:M1", "consent": "1,2"}, []string{"consent"}},
		{"an interest without its count", map[string]string{"customer": "member:M1", "viewed_not_bought": "baby:17"}, []string{"viewed_not_bought"}},
		{"two bad fields at once", map[string]string{"customer": "member:M1", "version": "v2", "aov": "1.5"}, []string{"version", "aov"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v features.View
			err := DecodeViewHash(tc.h, 1, &v)
			require.ErrorIs(t, err, ErrBadHash)
			for _, f := range tc.bad {
				require.Contains(t, err.Error(), f)
			}
		})
	}
}

func FuzzDecodeViewHash(f *testing.F) {
	v := sampleView()
	h := map[string]string{}
	pairs := EncodeViewHash(&v)
	for i := 0; i < len(pairs); i += 2 {
		h[pairs[i].(string)] = pairs[i+1].(string)
	}
	f.Add("consent", "1,2,3")
	f.Add("viewed_not_bought", "a:1:2;b:3:4")
	f.Add("version", "18446744073709551615")
	f.Fuzz(func(t *testing.T, field, value string) {
		in := map[string]string{}
		for k, s := range h {
			in[k] = s
		}
		in[field] = value
		var got features.View
		if err := DecodeViewHash(in, 1, &got); err != nil {
			return
		}
		// Whatever decodes re-encodes to a hash that decodes the same.
		var again features.View
		require.NoError(t, DecodeViewHash(hashOf(t, EncodeViewHash(&got)), 1, &again))
		require.Equal(t, got, again)
	})
}

func TestVerdictMet(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    Verdict
		met  bool
	}{
		{"a ratio at its lower bound is met", Verdict{Value: 2.5, Target: 2.5}, true},
		{"a ratio below its lower bound is not", Verdict{Value: 2.49, Target: 2.5}, false},
		{"a latency under its upper bound is met", Verdict{Value: 6, Target: 10, AtMost: true}, true},
		{"a latency over its upper bound is not", Verdict{Value: 11, Target: 10, AtMost: true}, false},
		{"a skipped comparison is never met", Verdict{Value: 9, Target: 1, Skipped: "no redis"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.met, tc.v.Met()) })
	}
}

// The load client against the real HTTP API on loopback: keep-alive
// requests succeed, and an answer other than 200 counts as an error.
func TestHTTPTargetAgainstTheRealAPI(t *testing.T) {
	dir := t.TempDir()
	path, key, err := api.GenerateKeyFile(dir)
	require.NoError(t, err)
	keys, err := api.LoadKeys(path)
	require.NoError(t, err)
	srv, err := api.New(api.Options{
		Addr: "127.0.0.1:0", Keys: keys, RateLimit: 1e6,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Decider: api.DeciderFunc(func(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error) {
			return &engine.Decision{DecisionID: "d-1", Customer: "member:" + req.IDs.Member, Group: engine.GroupTreatment, Offers: []engine.OfferResult{}}, nil
		}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	var bodies [][]byte
	for i := range 5 {
		bodies = append(bodies, fmt.Appendf(nil, `{"ids":{"member":"M%d"},"channel":"app"}`, i))
	}
	good := newHTTPTarget("good", srv.Addr(), "/v1/decide", key, bodies, 4)
	defer good.close()
	rep, err := RunLoad(ctx, LoadOptions{Name: "good", Rate: 400, Duration: 500 * time.Millisecond, Connections: 4}, good.do)
	require.NoError(t, err)
	require.Equal(t, int64(200), rep.Requests)
	require.Zero(t, rep.Errors, rep.ErrorSample)
	require.LessOrEqual(t, len(good.conns), 4, "connections are reused, not piled up")

	bad := newHTTPTarget("bad key", srv.Addr(), "/v1/decide", "not-a-key", bodies, 1)
	defer bad.close()
	err = bad.do(ctx)
	require.ErrorContains(t, err, "HTTP 401")
	require.NoError(t, good.do(ctx), "a refused request leaves the others working")
}

package api

import (
	"strings"
	"testing"

	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/stretchr/testify/require"

	"nbo/engine"
)

var offersSeeds = []string{
	"customer=member:M1&channel=app",
	"customer=phone:%2B8613800138000&channel=web&limit=20&locale=zh-CN&placement=cart&store=S1",
	"customer=email:A%40B.cn&channel=push&locale=en&limit=%2B3",
	"customer=member:M1&channel=app&channel=web",
	"customer=member&channel=app", "customer=:M1&channel=app", "customer=member:&channel=app",
	"customer=passport:P1&channel=app", "customer=member:M%201&channel=app",
	"customer=member:M1&channel=app&limit=-1", "customer=member:M1&channel=app&limit=003",
	"customer=member:M1&channel=app&limit=", "customer=member:M1&channel=&placement=p",
	"customer=member:M1&channel=social", "customer=member:M1&channel=app&locale=fr",
	"customer=member:M1&channel=app&placement=" + strings.Repeat("p", 129),
	"customer=member:M1&channel=app&store=%01", "customer=member:M1:x&channel=app&store=" + strings.Repeat("s", 300),
	"channel=app&colour=red&customer=member:M1", "foo=bar", "", "&&&=", "customer",
}

func requireOffersSameAsReference(t *testing.T, q string) {
	t.Helper()
	var args protocol.Args
	args.ParseBytes([]byte(q))
	var got, want engine.DecideRequest
	we := referenceDecodeOffersQuery(args.VisitAll, &want)
	ge := decodeOffersQuery(&args, &got)
	require.Equal(t, we, ge, "errors differ for %q", q)
	if we == nil {
		require.Equal(t, want, got, "requests differ for %q", q)
	}
}

func TestOffersQueryMatchesReferenceOnSeeds(t *testing.T) {
	for _, q := range offersSeeds {
		requireOffersSameAsReference(t, q)
	}
}

// FuzzOffersQueryMatchesReference holds GET /v1/offers's decoder to the
// one it replaced: the same error or the same request for any query.
func FuzzOffersQueryMatchesReference(f *testing.F) {
	for _, q := range offersSeeds {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		requireOffersSameAsReference(t, q)
	})
}

func TestOffersQueryAllocations(t *testing.T) {
	var args protocol.Args
	args.ParseBytes([]byte("customer=member:M1&channel=app&placement=home_banner&store=S1&limit=3&locale=zh-CN"))
	n := testing.AllocsPerRun(100, func() {
		var req engine.DecideRequest
		if e := decodeOffersQuery(&args, &req); e != nil {
			t.Fatal(e)
		}
	})
	require.LessOrEqual(t, n, 1.0, "a query's kept strings share one allocation")
}

package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestAdminServerServesMetricsAndPprof(t *testing.T) {
	h := start(t, nil)
	// Some traffic to count: one accepted event batch with a rejection.
	a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+event("x1", "page_view")+","+event("x2", "nope")+"]"))
	require.Equal(t, 202, a.status)

	adm, err := NewAdminServer("127.0.0.1:0", h.reg)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(adm.Addr(), "127.0.0.1:"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- adm.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	get := func(path string) (int, string) {
		var resp *http.Response
		require.Eventually(t, func() bool {
			var err error
			resp, err = http.Get("http://" + adm.Addr() + path)
			return err == nil
		}, 5*time.Second, 5*time.Millisecond)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, `nbo_events_rejected_total{reason="unknown_type"} 1`)
	require.Contains(t, body, `nbo_http_requests_total{class="2xx",route="/v1/events"} 1`)
	require.Contains(t, body, `nbo_http_request_duration_seconds_bucket{route="/v1/events"`)

	code, body = get("/debug/pprof/")
	require.Equal(t, 200, code)
	require.Contains(t, body, "goroutine")
}

func TestAdminServerDefaultsToLoopbackAndNeedsARegistry(t *testing.T) {
	require.True(t, strings.HasPrefix(DefaultAdminAddr, "127.0.0.1:"))
	_, err := NewAdminServer("127.0.0.1:0", nil)
	require.Error(t, err)
}

func TestRejectionCounterIsSharedWithOtherComponents(t *testing.T) {
	reg := prometheus.NewRegistry()
	// The ingest loop registered the counter first.
	theirs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nbo_events_rejected_total", Help: "Events rejected, by reason code."}, []string{"reason"})
	reg.MustRegister(theirs)
	h := start(t, func(o *Options) { o.Registry = reg })
	a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+event("y1", "page_view")+","+event("y2", "nope")+"]"))
	require.Equal(t, 202, a.status)
	require.Equal(t, 1.0, counterValue(theirs.WithLabelValues("unknown_type")))

	// Or handed over explicitly, registered nowhere.
	mine := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "other_name", Help: "x"}, []string{"reason"})
	h2 := start(t, func(o *Options) { o.RejectedEvents = mine })
	a = h2.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+event("y3", "page_view")+","+event("y4", "nope")+"]"))
	require.Equal(t, 202, a.status)
	require.Equal(t, 1.0, counterValue(mine.WithLabelValues("unknown_type")))
}

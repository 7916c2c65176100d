package bench

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadSendsEveryScheduledRequest(t *testing.T) {
	var calls atomic.Int64
	r, err := RunLoad(context.Background(), LoadOptions{Name: "noop", Rate: 1000, Duration: time.Second, Connections: 4},
		func(context.Context) error { calls.Add(1); return nil })
	require.NoError(t, err)
	require.Equal(t, int64(1000), calls.Load(), "open loop: exactly Rate×Duration requests are scheduled")
	require.Equal(t, int64(1000), r.Requests)
	require.Zero(t, r.Unsent)
	require.Zero(t, r.Errors)
	// Generous bounds: the schedule spreads 1000 requests over one second,
	// so the achieved rate cannot exceed the target, and even a loaded
	// machine gets well above a quarter of it.
	require.InDelta(t, 1000, r.Throughput, 750)
	require.LessOrEqual(t, r.Throughput, 1001.0)
	var sum int64
	for _, sec := range r.Timeline {
		sum += sec.Requests
	}
	require.Equal(t, r.Requests, sum, "the timeline accounts for every request")
	require.NotEmpty(t, r.Distribution)
}

// TestLoadMeasuresFromTheScheduledTime drives a function that takes 10 ms
// with one connection at 200 requests per second: the system can serve
// only 100 per second, so requests queue and the k-th waits about 5k ms.
// A closed-loop tool would report 10 ms for all of them; the open-loop
// report must show the queueing.
func TestLoadMeasuresFromTheScheduledTime(t *testing.T) {
	slow := func(ctx context.Context) error {
		time.Sleep(10 * time.Millisecond)
		return nil
	}
	r, err := RunLoad(context.Background(), LoadOptions{Name: "slow", Rate: 200, Duration: 500 * time.Millisecond, Connections: 1}, slow)
	require.NoError(t, err)
	require.Equal(t, int64(100), r.Requests)
	require.Zero(t, r.Unsent)
	// The last request is due at 495 ms and cannot finish before 1000 ms.
	require.GreaterOrEqual(t, r.Max, 480*time.Millisecond, "the queueing delay is part of the latency")
	require.GreaterOrEqual(t, r.P50, 200*time.Millisecond, "half the requests waited behind others")
	require.Greater(t, r.P99, r.P50)
	// Achieved throughput reflects the 100/s the function allows.
	require.Less(t, r.Throughput, 150.0)
}

func TestLoadCountsUnsentRequestsWhenTheDrainRunsOut(t *testing.T) {
	slow := func(ctx context.Context) error {
		time.Sleep(50 * time.Millisecond)
		return nil
	}
	r, err := RunLoad(context.Background(), LoadOptions{Rate: 100, Duration: 500 * time.Millisecond, Connections: 1, Drain: 50 * time.Millisecond}, slow)
	require.NoError(t, err)
	require.Equal(t, int64(50), r.Requests+r.Unsent, "every scheduled request is either completed or counted unsent")
	require.Positive(t, r.Unsent)
}

func TestLoadCountsErrors(t *testing.T) {
	var n atomic.Int64
	r, err := RunLoad(context.Background(), LoadOptions{Rate: 400, Duration: 500 * time.Millisecond, Connections: 2},
		func(context.Context) error {
			if n.Add(1)%10 == 0 {
				return errors.New("boom")
			}
			return nil
		})
	require.NoError(t, err)
	require.Equal(t, int64(200), r.Requests)
	require.Equal(t, int64(20), r.Errors)
	require.Equal(t, "boom", r.ErrorSample)
}

func TestLoadOptionsAreValidated(t *testing.T) {
	_, err := RunLoad(context.Background(), LoadOptions{Rate: 0, Connections: -1}, func(context.Context) error { return nil })
	require.ErrorContains(t, err, "rate")
	require.ErrorContains(t, err, "connections")
}

func TestLoadStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r, err := RunLoad(ctx, LoadOptions{Rate: 100, Duration: time.Hour}, func(context.Context) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, r.Requests, int64(1000))
}

func TestWriteMarkdownListsEveryRun(t *testing.T) {
	reports := []Report{
		{Name: "offers|nbo", TargetRate: 10000, Throughput: 9990, Requests: 99900, P50: 180 * time.Microsecond, P90: 400 * time.Microsecond, P99: 2500 * time.Microsecond, P999: 12 * time.Millisecond, Max: 1500 * time.Millisecond},
		{Name: "offers-redis", TargetRate: 10000, Throughput: 8000, Requests: 80000, Errors: 3, ErrorSample: "dial tcp: refused"},
	}
	var buf bytes.Buffer
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux/amd64", Go: "go1.26", Started: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	require.NoError(t, WriteMarkdown(&buf, "Offer API", m, reports))
	out := buf.String()
	for _, want := range []string{
		"## Offer API", "Test CPU, 2 logical CPUs", "2026-11-24T08:00:00Z",
		`| offers\|nbo | 10000 | 9990 | 99900 | 0 | 0 | 180 µs | 400 µs | 2.5 ms | 12 ms | 1.5 s |`,
		"| offers-redis | 10000 | 8000 | 80000 | 3 |", "`dial tcp: refused`",
	} {
		require.Contains(t, out, want)
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// RequestFunc is one request of a load test: an HTTP call, an in-process
// decision, anything. It should honour ctx.
type RequestFunc func(ctx context.Context) error

// LoadOptions configure an open-loop load test.
type LoadOptions struct {
	// Name labels the report.
	Name string
	// Rate is the target in requests per second. Required.
	Rate float64
	// Duration is how long requests are scheduled for (after warm-up).
	// Default: 10s.
	Duration time.Duration
	// Warmup runs the same load first without recording it. Default: 0.
	Warmup time.Duration
	// Connections is how many requests may be in flight at once (workers;
	// for HTTP, size the client's connection pool to match). Default: 16.
	Connections int
	// Timeout bounds one request: the request's ctx carries the deadline,
	// which the request function applies to its own I/O. Default: 5s.
	Timeout time.Duration
	// Drain is how long after the end of the schedule requests still
	// waiting to start may start; the rest are counted as Unsent (the
	// system could not keep up). Default: 5s.
	Drain time.Duration
}

// EnsureDefaults fills unset fields with their defaults.
func (o *LoadOptions) EnsureDefaults() {
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Connections == 0 {
		o.Connections = 16
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Drain == 0 {
		o.Drain = 5 * time.Second
	}
}

// Validate reports every problem with the options at once.
func (o *LoadOptions) Validate() error {
	var errs []error
	if o.Rate <= 0 {
		errs = append(errs, fmt.Errorf("bench: load rate is %g, want > 0 requests per second", o.Rate))
	}
	if o.Duration < 0 || o.Warmup < 0 || o.Timeout < 0 || o.Drain < 0 {
		errs = append(errs, errors.New("bench: load durations must not be negative"))
	}
	if o.Connections < 1 || o.Connections > 100_000 {
		errs = append(errs, fmt.Errorf("bench: load connections is %d, want 1..100000", o.Connections))
	}
	return errors.Join(errs...)
}

// Report is the result of one load test. Latencies are measured from the
// time each request was scheduled to be sent, not from when it was sent,
// so time spent queued behind slow requests counts (no coordinated
// omission).
type Report struct {
	Name        string
	TargetRate  float64       // requests per second asked for
	Duration    time.Duration // scheduled window
	Connections int

	Requests    int64   // completed requests, errors included
	Errors      int64   // requests whose function returned an error
	Unsent      int64   // scheduled requests never started (the drain ran out)
	Throughput  float64 // completed requests per second over the measured window
	ErrorSample string  // the first error, for the report

	Mean, P50, P90, P99, P999, Max time.Duration
	// Distribution is the latency at a fixed set of quantiles (for
	// percentile charts), ascending.
	Distribution []Quantile
	// Timeline has one entry per second of the run, by completion time
	// (for throughput-over-time charts).
	Timeline []Second
}

// Second is what completed in one second of a load run.
type Second struct {
	Requests int64
	Errors   int64
	// MeanLatency and MaxLatency are over the requests completed in this
	// second, measured from their scheduled times.
	MeanLatency, MaxLatency time.Duration
}

// timeline accumulates one worker's per-second counts.
type timeline struct {
	n, errs, sumUS, maxUS []int64
}

func (tl *timeline) add(sec int, us int64, failed bool) {
	for len(tl.n) <= sec {
		tl.n, tl.errs, tl.sumUS, tl.maxUS = append(tl.n, 0), append(tl.errs, 0), append(tl.sumUS, 0), append(tl.maxUS, 0)
	}
	tl.n[sec]++
	if failed {
		tl.errs[sec]++
	}
	tl.sumUS[sec] += us
	tl.maxUS[sec] = max(tl.maxUS[sec], us)
}

// Quantile is the latency at one quantile (0.5 = median).
type Quantile struct {
	Q       float64
	Latency time.Duration
}

// chartQuantiles are the quantiles Report.Distribution holds.
var chartQuantiles = []float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1}

const (
	histMin = 1               // 1 µs
	histMax = 120 * 1_000_000 // 120 s, in µs
	histSig = 3
)

// RunLoad drives fn at opts.Rate requests per second, open loop: request i
// is due at start + i/Rate whatever happened to earlier ones. Connections
// workers take the next due request, wait until it is due, run it and
// record its latency from the due time. When every worker is busy, due
// requests queue and their wait is part of their latency.
//
// It returns when the schedule has run (plus the drain) or ctx is done; a
// cancelled ctx returns the report so far and ctx.Err().
func RunLoad(ctx context.Context, opts LoadOptions, fn RequestFunc) (Report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Report{}, fmt.Errorf("running load %q: %w", opts.Name, err)
	}
	if opts.Warmup > 0 {
		w := opts
		w.Duration, w.Warmup = opts.Warmup, 0
		if _, err := runPhase(ctx, w, fn); err != nil {
			return Report{}, fmt.Errorf("running load %q: warm-up: %w", opts.Name, err)
		}
	}
	r, err := runPhase(ctx, opts, fn)
	if err != nil {
		return r, fmt.Errorf("running load %q: %w", opts.Name, err)
	}
	return r, nil
}

func runPhase(ctx context.Context, opts LoadOptions, fn RequestFunc) (Report, error) {
	interval := float64(time.Second) / opts.Rate
	total := int64(opts.Duration.Seconds() * opts.Rate)
	var next atomic.Int64
	var errCount, unsent atomic.Int64
	var firstErr sync.Once
	var errSample string

	hists := make([]*hdrhistogram.Histogram, opts.Connections)
	lines := make([]timeline, opts.Connections)
	lastDone := make([]time.Time, opts.Connections)
	start := time.Now()
	drainEnd := start.Add(opts.Duration + opts.Drain)
	var wg sync.WaitGroup
	for w := range opts.Connections {
		h := hdrhistogram.New(histMin, histMax, histSig)
		hists[w] = h
		wg.Go(func() {
			// One request context per worker, its deadline moved per
			// request: context.WithTimeout would cost a timer and four
			// allocations per request in the process being measured.
			rctx := &deadlineCtx{Context: ctx}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				due := start.Add(time.Duration(float64(i) * interval))
				now := time.Now()
				if now.After(drainEnd) {
					// This request and every one not yet taken are never
					// sent; workers holding a taken one count their own.
					unsent.Add(1 + max(0, total-next.Swap(total)))
					return
				}
				if d := due.Sub(now); d > 0 {
					if sleepCtx(ctx, d) != nil {
						return
					}
				}
				rctx.deadline = time.Now().Add(opts.Timeout)
				err := fn(rctx)
				end := time.Now()
				if err != nil {
					if ctx.Err() != nil {
						return // cancelled mid-request: not the system's failure
					}
					errCount.Add(1)
					firstErr.Do(func() { errSample = err.Error() })
				}
				us := max(end.Sub(due).Microseconds(), histMin)
				_ = h.RecordValue(min(us, histMax))
				lines[w].add(int(end.Sub(start)/time.Second), us, err != nil)
				lastDone[w] = end
			}
		})
	}
	wg.Wait()

	all := hdrhistogram.New(histMin, histMax, histSig)
	var last time.Time
	for w, h := range hists {
		all.Merge(h)
		if lastDone[w].After(last) {
			last = lastDone[w]
		}
	}
	r := Report{
		Name: opts.Name, TargetRate: opts.Rate, Duration: opts.Duration, Connections: opts.Connections,
		Requests: all.TotalCount(), Errors: errCount.Load(), Unsent: unsent.Load(), ErrorSample: errSample,
	}
	// Throughput over the window the requests actually took: the schedule
	// or, when the system fell behind, until the last one finished.
	window := max(opts.Duration, last.Sub(start))
	if window > 0 {
		r.Throughput = float64(r.Requests) / window.Seconds()
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	r.Mean = time.Duration(all.Mean() * float64(time.Microsecond))
	r.P50 = us(all.ValueAtQuantile(50))
	r.P90 = us(all.ValueAtQuantile(90))
	r.P99 = us(all.ValueAtQuantile(99))
	r.P999 = us(all.ValueAtQuantile(99.9))
	r.Max = us(all.Max())
	for _, tl := range lines {
		for sec := range tl.n {
			for len(r.Timeline) <= sec {
				r.Timeline = append(r.Timeline, Second{})
			}
			t := &r.Timeline[sec]
			t.Requests += tl.n[sec]
			t.Errors += tl.errs[sec]
			t.MeanLatency += time.Duration(tl.sumUS[sec]) * time.Microsecond // a sum until divided below
			t.MaxLatency = max(t.MaxLatency, time.Duration(tl.maxUS[sec])*time.Microsecond)
		}
	}
	for i := range r.Timeline {
		if n := r.Timeline[i].Requests; n > 0 {
			r.Timeline[i].MeanLatency /= time.Duration(n)
		}
	}
	for _, q := range chartQuantiles {
		r.Distribution = append(r.Distribution, Quantile{Q: q, Latency: us(all.ValueAtQuantile(q * 100))})
	}
	return r, ctx.Err()
}

// deadlineCtx is a request's context in RunLoad: the run's context with
// the request's deadline. The deadline is advisory — nothing cancels the
// context when it passes — so a request function applies Deadline() to
// its own I/O (connection deadlines), as the HTTP and Redis targets do.
// A request function must not keep the context after it returns.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

// Deadline returns the request's deadline.
func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

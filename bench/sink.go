package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"nbo/features"
)

// Sink receives batches of events: a file, the HTTP ingest API, Kafka.
// Write returns once the batch is durable as far as the sink can tell (for
// HTTP: answered 202), or an error; with a cancelled ctx it returns
// ctx.Err() (possibly wrapped) and the batch may be partly written.
type Sink interface {
	Write(ctx context.Context, events []features.Event) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, events []features.Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, events []features.Event) error { return f(ctx, events) }

// Source yields events one at a time, in order; the Simulator is one.
type Source interface {
	Next(ev *features.Event) bool
}

var (
	_ Sink   = (*NDJSONSink)(nil)
	_ Sink   = (*HTTPSink)(nil)
	_ Sink   = SinkFunc(nil)
	_ Source = (*Simulator)(nil)
)

// NDJSONSink writes events as NDJSON, one canonical schema v1 object
// (features.EncodeEvent) per line. It buffers; call Flush at the end.
type NDJSONSink struct {
	w   *bufio.Writer
	buf []byte
}

// NewNDJSONSink writes to w.
func NewNDJSONSink(w io.Writer) *NDJSONSink {
	return &NDJSONSink{w: bufio.NewWriterSize(w, 256<<10)}
}

// Write encodes and buffers the events.
func (s *NDJSONSink) Write(ctx context.Context, events []features.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range events {
		s.buf = features.EncodeEvent(s.buf[:0], &events[i])
		s.buf = append(s.buf, '\n')
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("writing event %s as NDJSON: %w", events[i].ID, err)
		}
	}
	return nil
}

// Flush writes out what is buffered.
func (s *NDJSONSink) Flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("flushing NDJSON events: %w", err)
	}
	return nil
}

// HTTPSinkOptions configure an HTTPSink.
type HTTPSinkOptions struct {
	// URL is the nbo server's base URL, e.g. "http://127.0.0.1:8080";
	// events go to URL + "/v1/events". Required.
	URL string
	// APIKey is sent as "Authorization: Bearer <key>"; it needs the ingest
	// scope. Default: none (the server will answer 401).
	APIKey string
	// Client sends the requests. Default: a client with a 30 s timeout.
	Client *http.Client
	// MaxBatch is the most events per request (the server takes 500).
	// Default: 500.
	MaxBatch int
	// MaxBodyBytes is the largest request body; a batch is split before it
	// grows past it (the server takes 1 MiB). Default: 1000000.
	MaxBodyBytes int
	// MaxRetries is how many times a request answered 503 or 429 (or that
	// failed to connect) is retried before Write gives up. Default: 10.
	MaxRetries int
	// MaxRetryWait caps the wait a Retry-After header asks for.
	// Default: 10s.
	MaxRetryWait time.Duration
}

// EnsureDefaults fills unset fields with their defaults.
func (o *HTTPSinkOptions) EnsureDefaults() {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 500
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1_000_000
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 10
	}
	if o.MaxRetryWait == 0 {
		o.MaxRetryWait = 10 * time.Second
	}
}

// Validate reports every problem with the options at once.
func (o *HTTPSinkOptions) Validate() error {
	var errs []error
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		errs = append(errs, fmt.Errorf("bench: HTTP sink URL %q must start with http:// or https://", o.URL))
	}
	if o.MaxBatch < 1 || o.MaxBatch > 500 {
		errs = append(errs, fmt.Errorf("bench: HTTP sink MaxBatch is %d, want 1..500", o.MaxBatch))
	}
	if o.MaxBodyBytes < 16<<10 {
		errs = append(errs, fmt.Errorf("bench: HTTP sink MaxBodyBytes is %d, want at least 16 KiB (one event's limit)", o.MaxBodyBytes))
	}
	if o.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("bench: HTTP sink MaxRetries is %d, want ≥ 0", o.MaxRetries))
	}
	return errors.Join(errs...)
}

// HTTPSink posts events to POST /v1/events as NDJSON batches. Safe for
// concurrent use.
type HTTPSink struct {
	opts     HTTPSinkOptions
	endpoint string

	requests, retries, accepted, rejected atomic.Int64
}

// HTTPSinkStats count what an HTTPSink did.
type HTTPSinkStats struct {
	Requests int64 // requests sent, retries included
	Retries  int64 // requests repeated after 503, 429 or a connection error
	Accepted int64 // events the server accepted
	Rejected int64 // events the server rejected (listed in its answer)
}

// NewHTTPSink checks the options.
func NewHTTPSink(opts HTTPSinkOptions) (*HTTPSink, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("creating HTTP sink: %w", err)
	}
	return &HTTPSink{opts: opts, endpoint: strings.TrimRight(opts.URL, "/") + "/v1/events"}, nil
}

// Stats returns the counters so far.
func (s *HTTPSink) Stats() HTTPSinkStats {
	return HTTPSinkStats{
		Requests: s.requests.Load(), Retries: s.retries.Load(),
		Accepted: s.accepted.Load(), Rejected: s.rejected.Load(),
	}
}

// Write posts the events in batches of at most MaxBatch events and
// MaxBodyBytes bytes. Events the server rejects individually (its 202 or
// 400 answer lists them) are counted in Stats, not returned as an error:
// the server has decided about them. Any other answer is an error.
func (s *HTTPSink) Write(ctx context.Context, events []features.Event) error {
	var body []byte
	n := 0
	var line []byte
	for i := range events {
		line = features.EncodeEvent(line[:0], &events[i])
		if n > 0 && (n == s.opts.MaxBatch || len(body)+len(line)+1 > s.opts.MaxBodyBytes) {
			if err := s.post(ctx, body, n); err != nil {
				return err
			}
			body, n = body[:0], 0
		}
		body = append(body, line...)
		body = append(body, '\n')
		n++
	}
	if n > 0 {
		return s.post(ctx, body, n)
	}
	return nil
}

type ingestAnswer struct {
	Accepted int64             `json:"accepted"`
	Code     string            `json:"code"`
	Message  string            `json:"message"`
	Rejected []json.RawMessage `json:"rejected"`
}

func (s *HTTPSink) post(ctx context.Context, body []byte, n int) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("posting %d events to %s: %w", n, s.endpoint, err)
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		if s.opts.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+s.opts.APIKey)
		}
		s.requests.Add(1)
		resp, err := s.opts.Client.Do(req)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("posting %d events to %s: %w", n, s.endpoint, ctx.Err())
			}
			if attempt >= s.opts.MaxRetries {
				return fmt.Errorf("posting %d events to %s: %w", n, s.endpoint, err)
			}
			wait = backoff(attempt)
		} else {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			var ans ingestAnswer
			_ = json.Unmarshal(data, &ans)
			switch {
			case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
				s.accepted.Add(ans.Accepted)
				s.rejected.Add(int64(len(ans.Rejected)))
				return nil
			case resp.StatusCode == http.StatusBadRequest && ans.Rejected != nil:
				// No event in the batch was valid; the server said why.
				s.rejected.Add(int64(len(ans.Rejected)))
				return nil
			case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
				if attempt >= s.opts.MaxRetries {
					return fmt.Errorf("posting %d events to %s: still %d after %d retries: %s", n, s.endpoint, resp.StatusCode, attempt, excerpt(data))
				}
				wait = backoff(attempt)
				if ra, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && ra >= 0 {
					wait = time.Duration(ra) * time.Second
				}
				wait = min(wait, s.opts.MaxRetryWait)
			default:
				return fmt.Errorf("posting %d events to %s: answered %d: %s", n, s.endpoint, resp.StatusCode, excerpt(data))
			}
		}
		s.retries.Add(1)
		if err := sleepCtx(ctx, wait); err != nil {
			return fmt.Errorf("posting %d events to %s: waiting to retry: %w", n, s.endpoint, err)
		}
	}
}

func backoff(attempt int) time.Duration {
	return min(50*time.Millisecond<<min(attempt, 10), 5*time.Second)
}

// excerpt cuts an answer body for an error message.
func excerpt(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(b[:limit]) + "…"
	}
	return string(b)
}

// sleepCtx sleeps for d or until ctx is done (returning ctx.Err()).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Limiter is a token bucket: Rate tokens per second, holding at most
// Burst. Time is passed in, so it is testable; it is not safe for
// concurrent use.
type Limiter struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// NewLimiter starts a full bucket at now.
func NewLimiter(rate float64, burst int, now time.Time) *Limiter {
	return &Limiter{rate: rate, burst: float64(max(burst, 1)), tokens: float64(max(burst, 1)), last: now}
}

// Reserve takes n tokens at now and returns how long to wait before
// using them (0 when they were there). Tokens may go into debt, so waits
// that oversleep are made up for by the next reservations and the long-run
// rate stays exact.
func (l *Limiter) Reserve(now time.Time, n int) time.Duration {
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(l.burst, l.tokens+el.Seconds()*l.rate)
		l.last = now
	}
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// PumpOptions configure Pump.
type PumpOptions struct {
	// Rate is the most events per second (wall clock) sent to the sink;
	// 0 means as fast as the sink takes them. Default: 0.
	Rate float64
	// Batch is the most events per Write. Default: 500.
	Batch int
	// FlushInterval bounds how long a partial batch waits for more events
	// when the rate limit holds them back. Default: 100ms.
	FlushInterval time.Duration
	// MaxEvents stops after this many events; 0 means until the source
	// ends. Default: 0.
	MaxEvents int64
	// Live stamps each event with the wall-clock time it is taken from the
	// source (Unix ms, never decreasing) instead of its simulated time, so
	// a live engine sees a current stream at any rate — for demos. The
	// order of events is kept; the gaps between them shrink to the pace of
	// the pump, so time-of-day and multi-day patterns are compressed.
	// Default: false.
	Live bool
}

// PumpStats say what a Pump did.
type PumpStats struct {
	Events  int64
	Batches int64
	Elapsed time.Duration
}

// Rate is the achieved events per second.
func (p PumpStats) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Events) / p.Elapsed.Seconds()
}

// Pump moves events from src to sink in batches, at most opts.Rate events
// per second, until the source ends, MaxEvents were sent, the sink fails
// or ctx is done (then it returns ctx.Err(), wrapped).
func Pump(ctx context.Context, src Source, sink Sink, opts PumpOptions) (PumpStats, error) {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.Rate < 0 {
		return PumpStats{}, fmt.Errorf("pumping events: rate %g is negative", opts.Rate)
	}
	begin := time.Now()
	var st PumpStats
	var lim *Limiter
	if opts.Rate > 0 {
		// A twentieth of a second's worth of burst keeps sleeps coarse
		// enough to be cheap and the rate smooth at the scale people watch.
		lim = NewLimiter(opts.Rate, int(min(float64(opts.Batch), max(1, opts.Rate/20))), begin)
	}
	batch := make([]features.Event, 0, opts.Batch)
	var first time.Time
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := sink.Write(ctx, batch); err != nil {
			return fmt.Errorf("pumping events: writing a batch of %d: %w", len(batch), err)
		}
		st.Events += int64(len(batch))
		st.Batches++
		clear(batch)
		batch = batch[:0]
		return nil
	}
	var ev features.Event
	var lastLive int64
	for opts.MaxEvents == 0 || st.Events+int64(len(batch)) < opts.MaxEvents {
		if err := ctx.Err(); err != nil {
			st.Elapsed = time.Since(begin)
			return st, fmt.Errorf("pumping events: %w", err)
		}
		if !src.Next(&ev) {
			break
		}
		if opts.Live {
			ms := max(time.Now().UnixMilli(), lastLive)
			ev.TS, lastLive = ms, ms
		}
		var now time.Time
		if lim != nil {
			now = time.Now()
			if wait := lim.Reserve(now, 1); wait > 0 {
				if len(batch) > 0 && (wait >= opts.FlushInterval || now.Sub(first) >= opts.FlushInterval) {
					if err := flush(); err != nil {
						st.Elapsed = time.Since(begin)
						return st, err
					}
				}
				if err := sleepCtx(ctx, wait); err != nil {
					st.Elapsed = time.Since(begin)
					return st, fmt.Errorf("pumping events: %w", err)
				}
				now = time.Now()
			}
		}
		if len(batch) == 0 {
			first = now
		}
		batch = append(batch, ev)
		if len(batch) == opts.Batch || (lim != nil && now.Sub(first) >= opts.FlushInterval) {
			if err := flush(); err != nil {
				st.Elapsed = time.Since(begin)
				return st, err
			}
		}
	}
	err := flush()
	st.Elapsed = time.Since(begin)
	return st, err
}

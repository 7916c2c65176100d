package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"nbo/bench"
	"nbo/features"
)

func init() {
	subcommands = append(subcommands, newSimulateCmd)
}

func newSimulateCmd() *cobra.Command {
	var (
		seed                uint64
		customers, stores   int
		days, batch         int
		rate                float64
		maxEvents           int64
		start, out          string
		httpURL, apiKey     string
		kafkaBrokers, topic string
		live                bool
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Stream the events of a simulated omnichannel retailer to a file, the HTTP API or Kafka",
		Long: `Simulate runs a retailer — stores in several time zones, a catalog, customers
with hidden tastes and channel habits — through the OMO journeys (browse online
and buy in store, visit a store and buy online, cart abandonment, comparing
models, evening baby searches and a weekend store visit, new members, lapsing)
and writes the events, schema v1, in event-time order. The same --seed gives the
same stream.

Exactly one destination: --out FILE (NDJSON; "-" is stdout, the default),
--http URL with --api-key (POST /v1/events, batches of 500, retried on 503/429),
or --kafka BROKERS (comma-separated; each record keyed by its simulated customer's best
identifier, so a member's anonymous events go under the member).
--rate limits events per second of wall-clock time (0: as fast as possible);
--live stamps each event with the time it is sent instead of its simulated time.

Simulated time starts at --start (RFC 3339). By default it is 2026-11-02T00:00+08:00
for files, and for --http and --kafka it ends at the current hour, because a
live engine refuses events from the future (code future_ts). With --http or
--kafka, a --start whose --days run past now is refused (give an earlier
--start or fewer --days, or --live); with --max-events, which may stop the
stream in time, it is only a warning.

With --http, the rejection reasons the server gives are printed with their
counts, and simulate exits non-zero when the server rejected any event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var dests []string
			for _, d := range []struct {
				name string
				set  bool
			}{{"--out", cmd.Flags().Changed("out")}, {"--http", httpURL != ""}, {"--kafka", kafkaBrokers != ""}} {
				if d.set {
					dests = append(dests, d.name)
				}
			}
			if len(dests) > 1 {
				return fmt.Errorf("simulate: give exactly one of --out, --http and --kafka, not %s", strings.Join(dests, " and "))
			}
			// The simulator reads 0 as "the default"; on the command line
			// the defaults are already the flags', so 0 is a mistake.
			var bad []error
			for _, f := range []struct {
				name string
				v    int
			}{{"customers", customers}, {"stores", stores}, {"days", days}, {"batch", batch}} {
				if f.v < 1 {
					bad = append(bad, fmt.Errorf("simulate: --%s is %d, want at least 1", f.name, f.v))
				}
			}
			if maxEvents < 0 || rate < 0 {
				bad = append(bad, errors.New("simulate: --max-events and --rate must not be negative (0: no limit)"))
			}
			if err := errors.Join(bad...); err != nil {
				return err
			}
			opts := bench.Options{Seed: seed, Customers: customers, Stores: stores, Days: days}
			switch {
			case start != "":
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return fmt.Errorf("simulate: --start %q is not RFC 3339 (2026-11-02T00:00:00+08:00): %w", start, err)
				}
				opts.Start = t
				if httpURL != "" || kafkaBrokers != "" {
					if err := checkNotFuture(cmd.ErrOrStderr(), t, days, live, maxEvents, time.Now()); err != nil {
						return err
					}
				}
			case httpURL != "" || kafkaBrokers != "":
				d := days
				if d == 0 {
					d = 28
				}
				opts.Start = time.Now().Truncate(time.Hour).Add(-time.Duration(d) * 24 * time.Hour)
			}
			sim, err := bench.New(opts)
			if err != nil {
				return fmt.Errorf("simulate: %w", err)
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			var sink bench.Sink
			var finish func() error
			describe := ""
			switch {
			case httpURL != "":
				reasons := &rejectionTally{next: http.DefaultTransport}
				h, err := bench.NewHTTPSink(bench.HTTPSinkOptions{URL: httpURL, APIKey: apiKey, MaxBatch: min(batch, 500),
					Client: &http.Client{Timeout: 30 * time.Second, Transport: reasons}})
				if err != nil {
					return fmt.Errorf("simulate: %w", err)
				}
				sink, describe = h, httpURL
				finish = func() error {
					st := h.Stats()
					fmt.Fprintf(cmd.ErrOrStderr(), "nbo simulate: server accepted %d, rejected %d events (%d requests, %d retries)\n",
						st.Accepted, st.Rejected, st.Requests, st.Retries)
					if st.Rejected == 0 {
						return nil
					}
					why := reasons.String()
					fmt.Fprintf(cmd.ErrOrStderr(), "nbo simulate: rejected by reason: %s\n", why)
					return fmt.Errorf("the server rejected %d of %d events (%s; the codes are in docs/events.md)", st.Rejected, st.Accepted+st.Rejected, why)
				}
			case kafkaBrokers != "":
				k, err := bench.NewKafkaSink(bench.KafkaSinkOptions{Brokers: strings.Split(kafkaBrokers, ","), Topic: topic, Key: sim.PartitionKey})
				if err != nil {
					return fmt.Errorf("simulate: %w", err)
				}
				sink, describe, finish = k, "kafka "+kafkaBrokers, k.Close
			default:
				var w io.Writer = cmd.OutOrStdout()
				describe = "stdout"
				if out != "-" && out != "" {
					f, err := os.Create(out)
					if err != nil {
						return fmt.Errorf("simulate: %w", err)
					}
					defer f.Close()
					w, describe = f, out
				}
				n := bench.NewNDJSONSink(w)
				sink = n
				finish = n.Flush
			}

			o := sim.Options()
			fmt.Fprintf(cmd.ErrOrStderr(), "nbo simulate: seed %d, %d customers, %d stores, %d days from %s → %s\n",
				o.Seed, o.Customers, o.Stores, o.Days, o.Start.Format(time.RFC3339), describe)
			st, perr := bench.Pump(ctx, sim, sink, bench.PumpOptions{Rate: rate, Batch: batch, MaxEvents: maxEvents, Live: live})
			ferr := finish()
			fmt.Fprintf(cmd.ErrOrStderr(), "nbo simulate: %d events in %s (%.0f events/s)\n", st.Events, st.Elapsed.Round(time.Millisecond), st.Rate())
			if perr != nil {
				if errors.Is(perr, context.Canceled) {
					return ferr // interrupted: a clean stop
				}
				return fmt.Errorf("simulate: %w", perr)
			}
			if ferr != nil {
				return fmt.Errorf("simulate: %w", ferr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", 1, "random seed; the same seed gives the same stream")
	f.IntVar(&customers, "customers", 10_000, "number of customers")
	f.IntVar(&stores, "stores", 24, "number of stores")
	f.IntVar(&days, "days", 28, "simulated days")
	f.StringVar(&start, "start", "", "start of simulated time, RFC 3339 (default: see above)")
	f.Float64Var(&rate, "rate", 0, "events per second of wall-clock time; 0 is unlimited")
	f.IntVar(&batch, "batch", 500, "events per write (HTTP: at most 500)")
	f.Int64Var(&maxEvents, "max-events", 0, "stop after this many events; 0 runs to the end of simulated time")
	f.StringVar(&out, "out", "-", `NDJSON output file; "-" is stdout`)
	f.StringVar(&httpURL, "http", "", "nbo server base URL to POST /v1/events to, e.g. http://127.0.0.1:8080")
	f.StringVar(&apiKey, "api-key", "", "API key with the ingest scope, for --http")
	f.StringVar(&kafkaBrokers, "kafka", "", "Kafka bootstrap brokers host:port[,host:port] to produce to")
	f.StringVar(&topic, "topic", "", `Kafka topic (default "nbo.events")`)
	f.BoolVar(&live, "live", false, "stamp events with the wall-clock time they are sent (a live demo stream; journeys are compressed in time)")
	return cmd
}

// futureSlack is how far ahead of its clock an engine accepts an event's
// time by default (docs/events.md, future_ts): the decoder's own default.
var futureSlack = func() time.Duration {
	var o features.DecodeOptions
	o.EnsureDefaults()
	return o.MaxFutureSkew
}()

// checkNotFuture refuses a stream for a live engine whose simulated time,
// from start for days, runs past now: the engine would reject those events
// future_ts. With --live the events carry the time they are sent; with
// --max-events the stream may stop in time, so it only warns.
func checkNotFuture(stderr io.Writer, start time.Time, days int, live bool, maxEvents int64, now time.Time) error {
	end := start.Add(time.Duration(days) * 24 * time.Hour)
	if live || !end.After(now.Add(futureSlack)) {
		return nil
	}
	msg := fmt.Sprintf("--start %s with --days %d runs to %s, %s past now; a live engine refuses events more than %s in the future (future_ts)",
		start.Format(time.RFC3339), days, end.Format(time.RFC3339), end.Sub(now).Round(time.Minute), futureSlack)
	if maxEvents > 0 {
		fmt.Fprintf(stderr, "nbo simulate: warning: %s; events past now will be rejected\n", msg)
		return nil
	}
	return fmt.Errorf("simulate: %s: give an earlier --start or fewer --days, omit --start (the stream then ends at the current hour), or use --live", msg)
}

// rejectionTally is an http.RoundTripper that counts the reason codes of
// the events a POST /v1/events answer lists as rejected (202 and 400
// answers: {"rejected": [{"index": 3, "code": "future_ts", …}]}); the
// sink itself only counts them.
type rejectionTally struct {
	next http.RoundTripper

	mu     sync.Mutex
	counts map[string]int
}

func (t *rejectionTally) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest) {
		return resp, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	var ans struct {
		Rejected []struct {
			Code string `json:"code"`
		} `json:"rejected"`
	}
	if json.Unmarshal(data, &ans) == nil && len(ans.Rejected) > 0 {
		t.mu.Lock()
		if t.counts == nil {
			t.counts = map[string]int{}
		}
		for _, r := range ans.Rejected {
			code := r.Code
			if code == "" {
				code = "unknown"
			}
			t.counts[code]++
		}
		t.mu.Unlock()
	}
	return resp, nil
}

// String lists the reasons, most frequent first: "future_ts 97, bad_ts 2".
func (t *rejectionTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	codes := make([]string, 0, len(t.counts))
	for c := range t.counts {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(a, b int) bool {
		if t.counts[codes[a]] != t.counts[codes[b]] {
			return t.counts[codes[a]] > t.counts[codes[b]]
		}
		return codes[a] < codes[b]
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, t.counts[c])
	}
	if len(parts) == 0 {
		return "no reasons given"
	}
	return strings.Join(parts, ", ")
}

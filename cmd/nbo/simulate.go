package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"nbo/bench"
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
or --kafka BROKERS (comma-separated; records keyed by the best identifier).
--rate limits events per second of wall-clock time (0: as fast as possible);
--live stamps each event with the time it is sent instead of its simulated time.

Simulated time starts at --start (RFC 3339). By default it is 2026-11-02T00:00+08:00
for files, and for --http and --kafka it ends at the current hour, because a
live engine refuses events from the future.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dests := 0
			for _, set := range []bool{cmd.Flags().Changed("out"), httpURL != "", kafkaBrokers != ""} {
				if set {
					dests++
				}
			}
			if dests > 1 {
				return errors.New("simulate: give one of --out, --http and --kafka")
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
				h, err := bench.NewHTTPSink(bench.HTTPSinkOptions{URL: httpURL, APIKey: apiKey, MaxBatch: min(batch, 500)})
				if err != nil {
					return fmt.Errorf("simulate: %w", err)
				}
				sink, describe = h, httpURL
				finish = func() error {
					st := h.Stats()
					fmt.Fprintf(cmd.ErrOrStderr(), "nbo simulate: server accepted %d, rejected %d events (%d requests, %d retries)\n",
						st.Accepted, st.Rejected, st.Requests, st.Retries)
					return nil
				}
			case kafkaBrokers != "":
				k, err := bench.NewKafkaSink(bench.KafkaSinkOptions{Brokers: strings.Split(kafkaBrokers, ","), Topic: topic})
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

package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"nbo/bench"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var opts bench.CompareOptions
	var cpuProfile, memProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the side-by-side benchmark comparisons and write bench/results",
		Long: `bench measures, side by side in one run on this machine, with open-loop load
at a fixed rate and ingest running at the same time:

  1. the offer API against the same pipeline reading features from Redis
     (a 30-field hash per customer, HGETALL per request);
  2. the offer API against a bare lookup handler on the same server;
  3. the ingest loop against raw kafka-go reads, and freshness while serving;
  4. decision quality on the simulated retailer: the engine against random,
     rules-only and oracle policies.

It writes README.md (ratios against the targets, with the machine), one
Markdown file per comparison and PNG charts to --out. With --redis auto it
starts redis-server from PATH on a free loopback port and stops it after;
when redis-server is missing the Redis comparison is skipped and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC(DefaultConfig().GCPercent) // measure the engine as serve runs it
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("bench: creating the CPU profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("bench: starting the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				runtime.MemProfileRate = 64 << 10
				defer func() {
					if f, err := os.Create(memProfile); err == nil {
						_ = pprof.Lookup("allocs").WriteTo(f, 0)
						f.Close()
					}
				}()
			}
			out := cmd.OutOrStdout()
			opts.Log = out
			sum, err := bench.RunComparisons(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nresults in %s (took %v):\n", opts.Out, sum.Took.Round(1e9))
			for _, v := range sum.Verdicts {
				state := "not met"
				switch {
				case v.Skipped != "":
					state = "skipped: " + v.Skipped
				case v.Met():
					state = "met"
				}
				fmt.Fprintf(out, "  %-34s %-48s %10.3f %-2s (target %g) %s\n", v.Comparison, v.Measure, v.Value, v.Unit, v.Target, state)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Quick, "quick", false, "a short pass (under 3 minutes): fewer customers, shorter runs, one round")
	f.StringVar(&opts.Out, "out", "bench/results", "directory for the reports and charts")
	f.StringVar(&opts.Redis, "redis", "auto", `Redis for comparison 1: "auto" starts redis-server from PATH, "off" skips it, or host:port of a running one`)
	f.Float64Var(&opts.Rate, "rate", 0, "offer requests per second of the fixed-rate runs (default 10000)")
	f.StringSliceVar(&opts.Only, "only", nil, "run only these parts: api, freshness, ingest, quality (default all); a partial run does not rewrite README.md")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the whole run to this file (go tool pprof -sample_index=alloc_space)")
	f.IntVar(&opts.Customers, "customers", 0, "simulated customers behind the API (default 50000, quick 10000)")
	f.Uint64Var(&opts.Quality.Seed, "quality-seed", 1, "seed of the simulated retailer in the decision-quality comparison (another seed is another retailer: check a result holds across several)")
	f.IntVar(&opts.Quality.Customers, "quality-customers", 0, "simulated customers in the decision-quality comparison (default 10000, quick 3000)")
	return cmd
}

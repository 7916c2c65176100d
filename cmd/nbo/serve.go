package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"nbo/engine/ingest"
	"nbo/features"
	"nbo/features/kafka"
)

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var configFile string
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine: ingest, feature store, offer API",
		Long: `serve runs the whole engine in one process: it consumes nbo.events (from an
external Kafka/Redpanda cluster, or from the embedded Kafka-protocol broker it
starts when no brokers are configured), keeps every customer's features,
answers the HTTP API and publishes triggers. SIGINT/SIGTERM stop it cleanly
with a final snapshot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resolved, err := resolveConfig(cmd.Flags(), configFile)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, resolved, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (strict; flags override it)")
	bindConfigFlags(cmd.Flags(), &cfg)
	return cmd
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve builds every component from cfg and runs them until ctx ends.
func serve(ctx context.Context, cfg Config, out io.Writer) error {
	log := newLogger(cfg.LogLevel, os.Stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	brokers := cfg.KafkaBrokers
	if len(brokers) == 0 {
		emb, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{
			Addr:       cfg.EmbeddedKafkaAddr,
			DataDir:    filepath.Join(cfg.DataDir, "kafka"),
			Partitions: cfg.Partitions,
		})
		if err != nil {
			return fmt.Errorf("starting the embedded Kafka broker: %w", err)
		}
		defer emb.Close()
		brokers = emb.Addrs()
		fmt.Fprintf(out, "embedded Kafka-protocol broker on %s (data in %s)\n", strings.Join(brokers, ","), filepath.Join(cfg.DataDir, "kafka"))
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := kafka.EnsureTopics(tctx, brokers, kafka.Topics(cfg.Partitions))
	cancel()
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}

	store, err := features.NewStore(features.Options{AllowedLateness: cfg.AllowedLateness})
	if err != nil {
		return err
	}
	consumer, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: kafka.TopicEvents, GroupID: cfg.GroupID})
	if err != nil {
		return err
	}
	defer consumer.Close()
	dlq, err := kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEventsDLQ})
	if err != nil {
		return err
	}
	defer dlq.Close()

	loop, err := ingest.New(ingest.Options{
		Store:         store,
		Source:        consumer,
		DeadLetters:   dlq,
		SnapshotPath:  filepath.Join(cfg.DataDir, "state.snap"),
		SnapshotEvery: cfg.SnapshotEvery,
		EndOffsets: func(ctx context.Context) (map[int]int64, error) {
			return kafka.EndOffsets(ctx, brokers, kafka.TopicEvents)
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	if err := loop.Restore(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "nbo serving: %d customers restored; consuming %s\n", store.Len(), kafka.TopicEvents)

	err = loop.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := loop.Stats()
	fmt.Fprintf(out, "nbo stopped: %d events applied, %d rejected, final snapshot written\n", st.Applied, st.Rejected)
	return nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nbo/engine"
	"nbo/features/kafka"
	"nbo/models"
)

func init() {
	subcommands = append(subcommands, newTrainCmd, newScoreCmd)
}

// trainSummary is the one JSON object `nbo train` prints to stdout.
type trainSummary struct {
	Version    string      `json:"version"`
	Algo       models.Algo `json:"algo"`
	Seed       uint64      `json:"seed"`
	Trees      int         `json:"trees"`
	AUC        float64     `json:"auc"`
	Accuracy   float64     `json:"accuracy"`
	LogLoss    float64     `json:"logloss"`
	RowsTrain  int         `json:"rows_train"`
	RowsTest   int         `json:"rows_test"`
	SchemaHash string      `json:"schema_hash"`
	Out        string      `json:"out"`
	// History mode only.
	Target       string               `json:"target,omitempty"`
	Label        string               `json:"label,omitempty"`
	RowsCensored *int                 `json:"rows_censored,omitempty"`
	Positives    *int                 `json:"positives,omitempty"`
	History      *models.HistoryStats `json:"history,omitempty"`
}

// Training targets from the engine's history.
const (
	targetPropensity = "propensity"
	targetPurchase   = models.PurchaseLabel
)

// historyFlags say where the engine's history comes from and what to learn.
type historyFlags struct {
	decisions, decisionsKafka, events, target, outcome string
	window, purchaseWindow, before                     string
	kafkaTimeout                                       time.Duration
}

func (h *historyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&h.decisions, "decisions", "", "the engine's decision log, NDJSON (one nbo.decisions record per line)")
	fl.StringVar(&h.decisionsKafka, "decisions-from-kafka", "", "read nbo.decisions (and, without --events, nbo.events) from these brokers (comma-separated host:port)")
	fl.StringVar(&h.events, "events", "", "the event log, NDJSON (schema v1, one event per line, in log order)")
	fl.StringVar(&h.outcome, "outcome", models.OutcomeRedeem, "what labels an offer positive: redeem or click")
	fl.StringVar(&h.window, "window", "7d", "attribution window after a decision (e.g. 7d, 36h)")
	fl.StringVar(&h.purchaseWindow, "purchase-window", "15d", "purchase-intent window")
	fl.StringVar(&h.before, "decided-before", "", "use only decisions made before this time (RFC 3339), e.g. to train on the past and evaluate on the latest period")
	fl.DurationVar(&h.kafkaTimeout, "kafka-timeout", 2*time.Minute, "how long reading the topics may take")
}

func (h *historyFlags) enabled() bool { return h.decisions != "" || h.decisionsKafka != "" }

// options turns the flags into history options on the engine's schemas.
func (h *historyFlags) options() (models.HistoryOptions, error) {
	w, err := parseWindow(h.window)
	if err != nil {
		return models.HistoryOptions{}, fmt.Errorf("--window: %w", err)
	}
	pw, err := parseWindow(h.purchaseWindow)
	if err != nil {
		return models.HistoryOptions{}, fmt.Errorf("--purchase-window: %w", err)
	}
	o := models.HistoryOptions{Outcome: h.outcome, Window: w, PurchaseWindow: pw,
		Schema: engine.PropensitySchema, CustomerSchema: engine.CustomerSchema, CouponCode: engine.CouponCode}
	o.EnsureDefaults()
	return o, o.Validate()
}

// parseWindow reads a duration that may be in days ("7d").
func parseWindow(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad window %q (use e.g. 7d or 36h)", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad window %q (use e.g. 7d or 36h)", s)
	}
	return d, nil
}

// read loads the decision log and indexes the outcome events.
func (h *historyFlags) read(ctx context.Context, stderr io.Writer) ([]models.LoggedDecision, *models.Outcomes, error) {
	if h.decisions != "" && h.decisionsKafka != "" {
		return nil, nil, errors.New("give --decisions or --decisions-from-kafka, not both")
	}
	if h.events == "" && h.decisionsKafka == "" {
		return nil, nil, errors.New("--events is required with --decisions (the outcomes that label the decisions)")
	}
	var decs []models.LoggedDecision
	if h.decisions != "" {
		f, err := os.Open(h.decisions)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		if decs, err = models.ReadDecisions(f); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", h.decisions, err)
		}
	} else {
		brokers := strings.Split(h.decisionsKafka, ",")
		kctx, cancel := context.WithTimeout(ctx, h.kafkaTimeout)
		defer cancel()
		err := readTopic(kctx, brokers, kafka.TopicDecisions, func(b []byte) error {
			d, err := models.DecodeDecision(b)
			if err != nil {
				return err
			}
			decs = append(decs, d)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	var out *models.Outcomes
	if h.events != "" {
		f, err := os.Open(h.events)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		if out, err = models.ReadOutcomes(f); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", h.events, err)
		}
	} else {
		var err error
		if out, err = models.NewOutcomes(); err != nil {
			return nil, nil, err
		}
		kctx, cancel := context.WithTimeout(ctx, h.kafkaTimeout)
		defer cancel()
		if err := readTopic(kctx, strings.Split(h.decisionsKafka, ","), kafka.TopicEvents, func(b []byte) error {
			out.Add(b)
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	// A canonical order (time, then ID), so the same history gives the
	// same rows and model whichever way it was read.
	sort.Slice(decs, func(a, b int) bool {
		if decs[a].TS != decs[b].TS {
			return decs[a].TS < decs[b].TS
		}
		return decs[a].DecisionID < decs[b].DecisionID
	})
	if h.before != "" {
		t, err := time.Parse(time.RFC3339Nano, h.before)
		if err != nil {
			return nil, nil, fmt.Errorf("--decided-before: %w", err)
		}
		n := sort.Search(len(decs), func(i int) bool { return decs[i].TS >= t.UnixMilli() })
		decs = decs[:n]
	}
	fmt.Fprintf(stderr, "read %d decisions, %d events (%d rejected), newest event %s\n",
		len(decs), out.Events, out.Rejected, time.UnixMilli(out.Newest).UTC().Format(time.RFC3339))
	return decs, out, nil
}

// readTopic reads topic from the beginning to its end offsets as of the
// call, calling fn with each record's value.
func readTopic(ctx context.Context, brokers []string, topic string, fn func([]byte) error) error {
	end, err := kafka.EndOffsets(ctx, brokers, topic)
	if err != nil {
		return fmt.Errorf("reading %s: %w", topic, err)
	}
	return readRange(ctx, brokers, topic, "nbo-history", nil, end, fn)
}

// readRange calls fn with every record of topic from from[partition]
// (0 when absent) up to end[partition], through a fresh consumer group
// named after group (so nothing is committed under a group anyone else
// uses). When from is not all zero, the group's offsets are first set to
// it, so the reader starts there rather than at the beginning of the log.
func readRange(ctx context.Context, brokers []string, topic, group string, from, end map[int]int64, fn func([]byte) error) error {
	remaining := 0
	seek := false
	for p, o := range end {
		if o > from[p] {
			remaining++
		}
		seek = seek || from[p] > 0
	}
	if remaining == 0 {
		return nil
	}
	opts := kafka.ConsumerOptions{Brokers: brokers, Topic: topic, GroupID: fmt.Sprintf("%s-%d-%d", group, os.Getpid(), time.Now().UnixNano())}
	if seek {
		c, err := kafka.NewConsumer(opts)
		if err != nil {
			return fmt.Errorf("reading %s: %w", topic, err)
		}
		err = c.Commit(ctx, from)
		c.Close()
		if err != nil {
			return fmt.Errorf("positioning the reader of %s: %w", topic, err)
		}
	}
	c, err := kafka.NewConsumer(opts)
	if err != nil {
		return fmt.Errorf("reading %s: %w", topic, err)
	}
	defer c.Close()
	c.SkipBelow(from)
	for remaining > 0 {
		rec, err := c.Fetch(ctx)
		if err != nil {
			return fmt.Errorf("reading %s: %w", topic, err)
		}
		if rec.Offset >= end[rec.Partition] {
			continue // produced after the read started
		}
		if err := fn(rec.Value); err != nil {
			return fmt.Errorf("reading %s partition %d offset %d: %w", topic, rec.Partition, rec.Offset, err)
		}
		if rec.Offset+1 == end[rec.Partition] {
			remaining--
		}
	}
	return nil
}

func newTrainCmd() *cobra.Command {
	var (
		csvPath, label, positive, algo, out string
		trees, minLeaf                      int
		holdout                             float64
		seed                                uint64
		hist                                historyFlags
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model from a labelled CSV or from the engine's own history and write a model artifact",
		Long: `Train fits a model and writes it to --out, printing one JSON object with the
holdout metrics to stdout; progress goes to stderr.

From a CSV (--csv FILE --label COLUMN): the file has a header row and is
UTF-8; string columns are categorical, numeric columns numeric, and empty
cells and NA, NaN, null, N/A (any case) missing.

From the engine's history (--decisions FILE --events FILE, or
--decisions-from-kafka BROKERS to read nbo.decisions and nbo.events):
  --target propensity: one row per (logged decision, offer) with the feature
    vector the engine logged at decision time (nothing from after the
    decision can leak in), labelled by a --outcome (redeem or click) of that
    offer within --window after the decision;
  --target purchase_15d: one row per logged decision with the customer's
    logged features, labelled by an order or store purchase within
    --purchase-window (served as the customer score "purchase_15d").
Decisions whose window has not closed by the newest event are left out
(censored) and counted in rows_censored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			// Check what needs no input before reading or training: a bad
			// flag or an unwritable --out once failed only after the
			// whole model was trained.
			if algo == string(models.AlgoForest) && (trees < 1 || trees > 10000) {
				return fmt.Errorf("train: --trees %d out of range 1..10000", trees)
			}
			if err := checkWritable(out); err != nil {
				return fmt.Errorf("train: --out: %w", err)
			}
			var (
				ds    *models.Dataset
				stats *models.HistoryStats
			)
			if hist.enabled() {
				if csvPath != "" {
					return errors.New("train: give --csv or --decisions, not both")
				}
				if !cmd.Flags().Changed("trees") {
					trees = 30 // scoring cost matters on the request path
				}
				hd, err := trainHistory(cmd.Context(), &hist, stderr)
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				ds, stats = hd.Dataset, &hd.Stats
				if hist.target == targetPurchase {
					label = models.PurchaseLabel
				} else {
					label = hist.outcome + "_" + hist.window
				}
				fmt.Fprintf(stderr, "training on %s: %d rows, %d positive, %d censored\n", hist.target, stats.Rows, stats.Positives, stats.Censored)
				if stats.Rows == 0 {
					return fmt.Errorf("train: no labelled rows yet: %d decisions, %d censored (windows still open at the newest event, %s)", stats.Decisions, stats.Censored, stats.Horizon.Format(time.RFC3339))
				}
				if stats.Positives == 0 || stats.Positives == stats.Rows {
					return fmt.Errorf("train: the history gives %d rows of one class only (%d positive); nothing to learn yet", stats.Rows, stats.Positives)
				}
			} else {
				if csvPath == "" || label == "" {
					return errors.New("train: give --csv FILE --label COLUMN, or --decisions FILE --events FILE")
				}
				f, err := os.Open(csvPath)
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				defer f.Close()
				ds, err = models.ReadCSV(bufio.NewReader(f), models.CSVOptions{Label: label, Positive: positive})
				if err != nil {
					return fmt.Errorf("train: reading %s: %w", csvPath, err)
				}
				fmt.Fprintf(stderr, "training on %s: %d rows, %d features, positive label %q\n", csvPath, len(ds.Y), len(ds.Schema.Features), ds.Positive)
				for _, w := range ds.Warnings {
					fmt.Fprintf(stderr, "warning: %s\n", w)
				}
			}
			a, err := models.Train(ds, models.TrainOptions{
				Algo: models.Algo(algo), Trees: trees, Seed: seed, Holdout: holdout, MinLeaf: minLeaf,
				Label: label, Now: time.Now(), Progress: stderr,
			})
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			if err := a.Save(out); err != nil {
				return fmt.Errorf("train: %w", err)
			}
			sum := trainSummary{
				Version: a.Version, Algo: a.Algorithm, Seed: a.Seed, Trees: len(a.Trees),
				AUC: a.Metrics.AUC, Accuracy: a.Metrics.Accuracy, LogLoss: a.Metrics.LogLoss,
				RowsTrain: a.Metrics.RowsTrain, RowsTest: a.Metrics.RowsTest,
				SchemaHash: a.SchemaHash, Out: out,
			}
			if stats != nil {
				sum.Target, sum.Label, sum.History = hist.target, a.Label, stats
				sum.RowsCensored, sum.Positives = &stats.Censored, &stats.Positives
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(sum)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&csvPath, "csv", "", "labelled CSV file with a header row")
	fl.StringVar(&label, "label", "", "name of the label column (with --csv)")
	fl.StringVar(&positive, "positive", "", `label value of the positive class (default "1", "yes", "true" or "y" if present, any case, else the later of the two labels alphabetically, with a warning)`)
	fl.StringVar(&algo, "algo", "forest", "algorithm: forest, tree or nb")
	fl.IntVar(&trees, "trees", 100, "number of trees of a forest (default 30 when training from history: scoring cost matters on the request path)")
	fl.IntVar(&minLeaf, "min-leaf", 0, "fewest training rows a split may leave in a leaf (default: for a forest, the best of 1, 5, 20 and 40 by log loss on a validation quarter of the training rows; 100 for a tree)")
	fl.Float64Var(&holdout, "holdout", 0.2, "stratified share of rows held out for the metrics")
	fl.Uint64Var(&seed, "seed", 1, "seed for the holdout split, bootstrap rows and split attributes")
	fl.StringVar(&out, "out", "", "path of the model artifact to write (required)")
	fl.StringVar(&hist.target, "target", targetPropensity, "with history: propensity or purchase_15d")
	hist.register(cmd)
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// checkWritable reports whether a file can be written at path, the way
// Artifact.Save writes it (a temporary file in the same directory, renamed
// over path), by creating and removing such a temporary file.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".model-*.json")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	name := tmp.Name()
	tmp.Close()
	return os.Remove(name)
}

// trainHistory builds the dataset for hist.target from the history.
func trainHistory(ctx context.Context, hist *historyFlags, stderr io.Writer) (*models.HistoryDataset, error) {
	if hist.target != targetPropensity && hist.target != targetPurchase {
		return nil, fmt.Errorf("unknown --target %q (use propensity or purchase_15d)", hist.target)
	}
	opts, err := hist.options()
	if err != nil {
		return nil, err
	}
	decs, out, err := hist.read(ctx, stderr)
	if err != nil {
		return nil, err
	}
	switch hist.target {
	case targetPropensity:
		return out.PropensityDataset(decs, opts)
	case targetPurchase:
		return out.PurchaseDataset(decs, opts)
	}
	return nil, fmt.Errorf("unknown --target %q (use propensity or purchase_15d)", hist.target)
}

func newScoreCmd() *cobra.Command {
	var modelPath, csvPath string
	cmd := &cobra.Command{
		Use:   "score",
		Short: "Score the rows of a CSV with a model artifact, one probability per line",
		Long: `Score reads a model artifact and a CSV with a header row, matches the
model's features to columns by name (the label column, if present, is
ignored; unknown categories are treated as missing) and prints P(positive)
for each row, one per line, in row order.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := models.LoadArtifact(modelPath)
			if err != nil {
				return fmt.Errorf("score: %w", err)
			}
			s, err := models.Compile(a)
			if err != nil {
				return fmt.Errorf("score: %w", err)
			}
			f, err := os.Open(csvPath)
			if err != nil {
				return fmt.Errorf("score: %w", err)
			}
			defer f.Close()
			rows, err := models.ScoreRows(bufio.NewReader(f), a.Schema, a.Label)
			if err != nil {
				return fmt.Errorf("score: reading %s: %w", csvPath, err)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			var buf []byte
			for _, x := range rows {
				buf = strconv.AppendFloat(buf[:0], s.Propensity(x), 'g', 6, 64)
				buf = append(buf, '\n')
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("score: writing: %w", err)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model artifact written by nbo train (required)")
	cmd.Flags().StringVar(&csvPath, "csv", "", "CSV file with a header row (required)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("csv")
	return cmd
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

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
}

func newTrainCmd() *cobra.Command {
	var (
		csvPath, label, positive, algo, out string
		trees, minLeaf                      int
		holdout                             float64
		seed                                uint64
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a propensity model from a labelled CSV and write a model artifact",
		Long: `Train reads a CSV with a header row: string columns are categorical, numeric
columns numeric, empty cells missing. It holds out a stratified share of the
rows, fits the model, scores the holdout through the compiled scorer, writes
the artifact to --out and prints one JSON object with the holdout metrics to
stdout. Progress goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(csvPath)
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			defer f.Close()
			ds, err := models.ReadCSV(bufio.NewReader(f), models.CSVOptions{Label: label, Positive: positive})
			if err != nil {
				return fmt.Errorf("train: reading %s: %w", csvPath, err)
			}
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "nbo train: %d rows, %d features, positive label %q\n", len(ds.Y), len(ds.Schema.Features), ds.Positive)
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
			enc := json.NewEncoder(cmd.OutOrStdout())
			return enc.Encode(trainSummary{
				Version: a.Version, Algo: a.Algorithm, Seed: a.Seed, Trees: len(a.Trees),
				AUC: a.Metrics.AUC, Accuracy: a.Metrics.Accuracy, LogLoss: a.Metrics.LogLoss,
				RowsTrain: a.Metrics.RowsTrain, RowsTest: a.Metrics.RowsTest,
				SchemaHash: a.SchemaHash, Out: out,
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&csvPath, "csv", "", "labelled CSV file with a header row (required)")
	fl.StringVar(&label, "label", "", "name of the label column (required)")
	fl.StringVar(&positive, "positive", "", `label value of the positive class (default "1", "yes" or "true" if present, else the larger of the two labels)`)
	fl.StringVar(&algo, "algo", "forest", "algorithm: forest, tree or nb")
	fl.IntVar(&trees, "trees", 100, "number of trees of a forest")
	fl.IntVar(&minLeaf, "min-leaf", 0, "fewest training rows a split may leave in a leaf (default 40 for a forest, 30 for a tree)")
	fl.Float64Var(&holdout, "holdout", 0.2, "stratified share of rows held out for the metrics")
	fl.Uint64Var(&seed, "seed", 1, "seed for the holdout split, bootstrap rows and split attributes")
	fl.StringVar(&out, "out", "", "path of the model artifact to write (required)")
	for _, name := range []string{"csv", "label", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
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

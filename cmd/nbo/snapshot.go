package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"nbo/features"
)

func init() { subcommands = append(subcommands, newSnapshotCmd) }

func newSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Inspect state snapshots"}
	var dataDir, at string
	dump := &cobra.Command{
		Use:   "dump",
		Short: "Print every customer of the snapshot as canonical JSON, one per line, sorted by ID",
		Long: `dump reads DATA_DIR/state.snap (or --file) and prints each customer's features
evaluated at --at (RFC 3339; default: now) as one canonical JSON line, sorted by
customer ID. Two stores with equal state print identical output, which is how
the crash-equivalence test compares a recovered engine with a clean replay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now, err := parseAt(at)
			if err != nil {
				return err
			}
			file, _ := cmd.Flags().GetString("file")
			if file == "" {
				file = filepath.Join(dataDir, "state.snap")
			}
			store, err := features.NewStore(features.Options{})
			if err != nil {
				return err
			}
			if _, _, err := store.ReadSnapshotFile(file); err != nil {
				return fmt.Errorf("reading %s: %w", file, err)
			}
			return dumpCustomers(cmd, store, now.UnixMilli())
		},
	}
	dump.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory holding state.snap")
	dump.Flags().String("file", "", "snapshot file (overrides --data-dir)")
	dump.Flags().StringVar(&at, "at", "", "instant to evaluate windows at (RFC 3339)")
	cmd.AddCommand(dump)

	var events, out string
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Build state from an NDJSON event log in one clean pass; dump it or write a snapshot",
		Long: `replay applies every event of --events (NDJSON, schema v1) once, in file order, to
an empty feature store — the clean single pass a recovered engine must equal — and
prints every customer like "snapshot dump" (evaluated at --at), or writes the state
as a snapshot file with --out. Rejected events are counted on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now, err := parseAt(at)
			if err != nil {
				return err
			}
			f, err := os.Open(events)
			if err != nil {
				return err
			}
			defer f.Close()
			store, err := features.NewStore(features.Options{})
			if err != nil {
				return err
			}
			var opts features.DecodeOptions
			opts.EnsureDefaults()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			var ev features.Event
			rejected := map[features.Reason]int{}
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue
				}
				if rej := features.DecodeEvent(sc.Bytes(), time.Now().UnixMilli(), &opts, &ev); rej != nil {
					rejected[rej.Code]++
					continue
				}
				if _, rej := store.Apply(&ev); rej != nil {
					rejected[rej.Code]++
				}
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("reading %s: %w", events, err)
			}
			for r, n := range rejected {
				fmt.Fprintf(cmd.ErrOrStderr(), "rejected %s: %d\n", r, n)
			}
			if out != "" {
				return store.WriteSnapshotFile(out, features.SnapshotMeta{CreatedAt: time.Now().UTC().Format(time.RFC3339)}, nil)
			}
			return dumpCustomers(cmd, store, now.UnixMilli())
		},
	}
	replay.Flags().StringVar(&events, "events", "", "NDJSON event log (required)")
	replay.Flags().StringVar(&at, "at", "", "instant to evaluate windows at (RFC 3339)")
	replay.Flags().StringVar(&out, "out", "", "write a snapshot file instead of printing")
	_ = replay.MarkFlagRequired("events")
	cmd.AddCommand(replay)
	return cmd
}

func dumpCustomers(cmd *cobra.Command, store *features.Store, now int64) error {
	var ids []features.Key
	store.Customers(func(k features.Key) { ids = append(ids, k) })
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	w := bufio.NewWriter(cmd.OutOrStdout())
	var v features.View
	for _, id := range ids {
		if !store.ViewKey(id, now, &v) {
			continue
		}
		b, err := json.Marshal(&v)
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	return w.Flush()
}

// parseAt reads --at: an RFC 3339 instant, or now when empty.
func parseAt(at string) (time.Time, error) {
	if at == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return t, fmt.Errorf("--at %q is not RFC 3339 (e.g. 2026-11-20T10:00:00Z): %w", at, err)
	}
	return t, nil
}

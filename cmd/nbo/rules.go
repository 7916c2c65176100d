package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nbo/scenarios"
)

func init() { subcommands = append(subcommands, newRulesCmd) }

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Export, check and test scenario and offer files",
		Long: `Scenarios and the offer catalog are YAML files checked strictly and tested with
golden files (testdata/*.txt). Without DIR the commands use the built-in library
embedded in the binary.`,
	}
	cmd.AddCommand(newRulesExportCmd(), newRulesCheckCmd(), newRulesTestCmd())
	return cmd
}

// rulesFS returns the library directory named by args, or the built-in one.
func rulesFS(args []string) (fs.FS, string, error) {
	if len(args) == 0 {
		return scenarios.Builtin(), "built-in library", nil
	}
	fsys, err := scenarioDir(args[0])
	return fsys, args[0], err
}

func newRulesExportCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "export DIR",
		Short: "Write the built-in library (offers, scenarios, golden tests) into DIR as a starting point",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			src := scenarios.Builtin()
			var files []string
			err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("listing the built-in library: %w", err)
			}
			sort.Strings(files)
			if !force {
				for _, f := range files {
					if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
						return fmt.Errorf("%s already exists; pass --force to overwrite", filepath.Join(dir, f))
					}
				}
			}
			for _, f := range files {
				data, err := fs.ReadFile(src, f)
				if err != nil {
					return fmt.Errorf("reading built-in %s: %w", f, err)
				}
				dst := filepath.Join(dir, filepath.FromSlash(f))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return fmt.Errorf("exporting rules: %w", err)
				}
				if err := os.WriteFile(dst, data, 0o644); err != nil {
					return fmt.Errorf("exporting rules: %w", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files to %s; check them with: nbo rules check %s\n", len(files), dir, dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

func newRulesCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [DIR]",
		Short: "Load and type-check every scenario and offer file; print every problem (exit 1 on any)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, name, err := rulesFS(args)
			if err != nil {
				return err
			}
			set, err := scenarios.Load(fsys, time.Now())
			if err != nil {
				var les scenarios.LoadErrors
				if errors.As(err, &les) {
					fmt.Fprintln(cmd.OutOrStdout(), les.Error())
					return fmt.Errorf("%s: %d problem(s)", name, len(les))
				}
				return fmt.Errorf("%s: %w", name, err) // os.DirFS's errors name only "."
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s, version %s, %d scenarios, %d offers\n", name, set.Version, len(set.Scenarios), len(set.Offers))
			return nil
		},
	}
}

func newRulesTestCmd() *cobra.Command {
	var rewrite bool
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the golden tests DIR/testdata/*.txt against the library in DIR (--rewrite to regenerate)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, name, err := rulesFS(args)
			if err != nil {
				return err
			}
			if rewrite && len(args) == 0 {
				return errors.New("--rewrite needs a DIR; the built-in library is read-only (nbo rules export DIR first)")
			}
			set, err := scenarios.Load(fsys, time.Now())
			if err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), err.Error())
				return fmt.Errorf("%s does not load; fix it first (nbo rules check)", name)
			}
			files, err := fs.Glob(fsys, "testdata/*.txt")
			if err != nil {
				return fmt.Errorf("listing golden files: %w", err)
			}
			if len(files) == 0 {
				return fmt.Errorf("%s has no golden files under testdata/*.txt", name)
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, f := range files {
				want, err := fs.ReadFile(fsys, f)
				if err != nil {
					return fmt.Errorf("reading %s: %w", f, err)
				}
				got, err := scenarios.RunGolden(set, want)
				if err != nil {
					fmt.Fprintf(out, "FAIL %s: %v\n", f, err)
					failed++
					continue
				}
				switch {
				case bytes.Equal(want, got):
					fmt.Fprintf(out, "ok   %s\n", f)
				case rewrite:
					if err := os.WriteFile(filepath.Join(args[0], filepath.FromSlash(f)), got, 0o644); err != nil {
						return fmt.Errorf("rewriting %s: %w", f, err)
					}
					fmt.Fprintf(out, "rewrote %s\n", f)
				default:
					failed++
					fmt.Fprintf(out, "FAIL %s\n%s", f, firstDiff(path.Base(f), string(want), string(got)))
				}
			}
			if failed > 0 {
				dir := "DIR"
				if len(args) > 0 {
					dir = args[0]
				}
				return fmt.Errorf("%d of %d golden files failed; review, then accept with: nbo rules test %s --rewrite", failed, len(files), dir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&rewrite, "rewrite", false, "write the actual output into the golden files")
	return cmd
}

// firstDiff shows where two golden files first differ, with a little
// context, in the style of a unified diff.
func firstDiff(name, want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  --- %s (expected) / +++ actual, from line %d\n", name, i+1)
	for j := max(i-2, 0); j < i; j++ {
		fmt.Fprintf(&b, "   %s\n", w[j])
	}
	for j := i; j < min(i+6, len(w)); j++ {
		fmt.Fprintf(&b, "  -%s\n", w[j])
	}
	for j := i; j < min(i+6, len(g)); j++ {
		fmt.Fprintf(&b, "  +%s\n", g[j])
	}
	return b.String()
}

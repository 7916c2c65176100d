// Command nbo is the next-best-offer engine: one binary with subcommands to
// serve, check and test rules, train and score models, simulate a retailer
// and benchmark. It only wires: each subcommand parses flags, loads config,
// builds components with New(Options) and runs them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "nbo:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nbo",
		Short:         "Real-time next-best-offer engine for online-merge-offline retail",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range subcommands {
		cmd := add()
		if cmd.HasSubCommands() && !cmd.Runnable() {
			// A group ("rules", "snapshot") alone prints its help; with a
			// mistyped subcommand cobra would print the help too and exit
			// 0, so an argument is an unknown command, which exits 1.
			cmd.Args = cobra.NoArgs
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		root.AddCommand(cmd)
	}
	return root
}

// subcommands is filled by each subcommand's file in init, so each lives in
// its own file and main stays the same.
var subcommands []func() *cobra.Command

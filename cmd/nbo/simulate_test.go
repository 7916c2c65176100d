package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSimulateRefusesZeroSizes: the simulator reads 0 as "the default",
// so "--days 0" once streamed 28 days; on the command line it is an error
// that names every bad flag.
func TestSimulateRefusesZeroSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events.ndjson")
	_, err := runNbo(t, "simulate", "--days", "0", "--customers", "0", "--stores", "0", "--batch", "0", "--out", out)
	for _, flag := range []string{"--days", "--customers", "--stores", "--batch"} {
		require.ErrorContains(t, err, flag+" is 0")
	}
	_, statErr := os.Stat(out)
	require.True(t, os.IsNotExist(statErr), "nothing is written")

	_, err = runNbo(t, "simulate", "--days", "1", "--customers", "3", "--stores", "1", "--out", out)
	require.NoError(t, err)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NotEmpty(t, strings.TrimSpace(string(data)))
}

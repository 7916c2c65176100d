package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWiringNamesTheScenariosDirectory: nbo serve --scenarios /missing/dir
// said "open .: no such file or directory", naming a "." the user never
// typed; it now says what nbo rules check says.
func TestWiringNamesTheScenariosDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-lib")
	_, err := newScenarioLibrary(missing, nil)
	require.EqualError(t, err, "scenarios: "+missing+": no such directory")

	file := filepath.Join(t.TempDir(), "offers.yaml")
	require.NoError(t, os.WriteFile(file, []byte("offers: []\n"), 0o600))
	_, err = newScenarioLibrary(file, nil)
	require.ErrorContains(t, err, file+" is not a directory")
	require.NotContains(t, err.Error(), "open .")

	_, err = newScenarioLibrary(t.TempDir(), nil)
	require.ErrorContains(t, err, "no scenario files", "an empty directory still loads and says what is missing")
}

package scenarios

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var rewrite = flag.Bool("rewrite", false, "rewrite golden files and FEATURES.md with the actual output")

// TestGolden runs the built-in library's golden files through a real
// feature store. Regenerate with go test ./scenarios -rewrite and review
// the diff.
func TestGolden(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	files, err := filepath.Glob("library/testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			got, err := RunGolden(set, data)
			require.NoError(t, err)
			if *rewrite {
				require.NoError(t, os.WriteFile(path, got, 0o644))
				return
			}
			require.Equal(t, string(data), string(got), "golden output differs; run go test ./scenarios -rewrite and review the diff")
		})
	}
}

// TestGoldenCoversEveryScenario checks that each built-in scenario fires
// in some golden file and is also shown not firing.
func TestGoldenCoversEveryScenario(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	files, err := filepath.Glob("library/testdata/*.txt")
	require.NoError(t, err)
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		all = append(all, data...)
	}
	for _, sc := range set.Scenarios {
		require.Contains(t, string(all), sc.ID+" ", "scenario %s never fires in a golden file", sc.ID)
		require.FileExists(t, filepath.Join("library/testdata", sc.ID+".txt"), "scenario %s needs its own golden file with negative cases", sc.ID)
	}
}

// TestFeaturesDocIsCurrent keeps FEATURES.md generated from the code.
func TestFeaturesDocIsCurrent(t *testing.T) {
	got := FeaturesMarkdown()
	if *rewrite {
		require.NoError(t, os.WriteFile("FEATURES.md", []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile("FEATURES.md")
	require.NoError(t, err, "run go test ./scenarios -rewrite")
	require.Equal(t, string(want), got, "FEATURES.md is stale; run go test ./scenarios -rewrite")
}

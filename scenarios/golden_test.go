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

// TestGoldenErrorsNameTheLine: an error in an event said "line 1", the
// events command's line, whichever event line it was on.
func TestGoldenErrorsNameTheLine(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	const ok = "2026-11-20T10:00:00+08:00 app product_view member=M1 category=phones sku=P1"
	cases := []struct{ file, want string }{
		{"events\n" + ok + "\n2026-11-20T11:00:00+08:00 store store_entr member=M1 store=S1\n----\nok\n",
			`golden: line 3: unknown event type "store_entr"`},
		{"events\n2026-11-20T11:00:00 store store_enter member=M1 store=S1\n----\nok\n",
			`golden: line 2: time "2026-11-20T11:00:00" is not RFC 3339`},
		{"# dwell\n\nevents\n" + ok + "\n# a comment\n2026-11-20T11:00:00+08:00 store dwell member=M1 store=S1 dwell_s=abc\n----\nok\n",
			`golden: line 6: dwell_s="abc" is not a number`},
		{"events\n" + ok + "\n----\nok\n\ndecide at=2026-11-22T11:00:00+08:00 channel=ap member=M1\n----\n",
			`golden: line 6: unknown channel "ap"`},
	}
	for _, c := range cases {
		_, err := RunGolden(set, []byte(c.file))
		require.ErrorContains(t, err, c.want, c.file)
	}
}

package scenarios

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStrictLoadErrors loads each file under testdata/bad on its own and
// compares every reported problem with NAME.err. Regenerate with -rewrite
// and read the messages: each must say where, what and how to fix it.
func TestStrictLoadErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 12)
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			set, err := Load(fstest.MapFS{name: {Data: data}}, time.Unix(0, 0))
			require.Error(t, err, "a bad file must not load")
			require.Nil(t, set)
			var les LoadErrors
			require.ErrorAs(t, err, &les)
			got := err.Error() + "\n"
			errPath := strings.TrimSuffix(path, ".yaml") + ".err"
			if *rewrite {
				require.NoError(t, os.WriteFile(errPath, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(errPath)
			require.NoError(t, err, "missing %s; run go test ./scenarios -rewrite", errPath)
			require.Equal(t, string(want), got)
		})
	}
}

func badFS() fs.FS { return os.DirFS("testdata/bad") }

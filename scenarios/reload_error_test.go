package scenarios

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestARefusedReloadSaysOnceWhichSetKeepsServing: the error of a refused
// reload names the problems with file:line and the active set's version,
// and says only once that the active set goes on serving.
func TestARefusedReloadSaysOnceWhichSetKeepsServing(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(100, 0))
	require.NoError(t, err)
	lib, err := NewLibrary(set, LibraryOptions{})
	require.NoError(t, err)

	err = lib.Reload(builtinWith(t, "priority: 60", "priorty: 60"), time.Unix(200, 0))
	var re *ReloadError
	require.ErrorAs(t, err, &re)
	require.Equal(t, set.Version, re.Active)
	var les LoadErrors
	require.True(t, errors.As(err, &les), "the load's problems are reachable for callers that list them")
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, "scenarios: reload refused, set "+set.Version+" keeps serving: scenarios.yaml:"), msg)
	require.Contains(t, msg, `unknown key "priorty"`)
	require.Equal(t, 1, strings.Count(msg, set.Version), msg)
	require.NotContains(t, msg, "stays", msg)
}

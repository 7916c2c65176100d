package scenarios

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBuiltinLibraryLoads(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	require.Len(t, set.Scenarios, 11)
	require.Len(t, set.Offers, 11)
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range envNames {
		require.False(t, seen[n], "two Env fields are named %q in expressions", n)
		seen[n] = true
	}
}

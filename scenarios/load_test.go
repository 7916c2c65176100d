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

package kafka

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCommittedOffsetsOfAGroupWithoutCommits: a group nobody has used, and
// one whose first member is still joining (the broker may answer "group
// ID not found" then), have committed nothing — not an error that would
// stop serve's first start.
func TestCommittedOffsetsOfAGroupWithoutCommits(t *testing.T) {
	e := startBroker(t, "")
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, EnsureTopics(ctx, e.Addrs(), []TopicSpec{{Name: TopicEvents, Partitions: 2}}))

	got, err := CommittedOffsets(ctx, e.Addrs(), TopicEvents, "never-used")
	require.NoError(t, err)
	require.Empty(t, got)

	for i := range 5 {
		group := "joining-" + string(rune('a'+i))
		newTestConsumer(t, e.Addrs(), TopicEvents, group)
		got, err := CommittedOffsets(ctx, e.Addrs(), TopicEvents, group)
		require.NoError(t, err, "group %s", group)
		require.Empty(t, got)
	}
}

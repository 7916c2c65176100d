package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

// TestBeforeSnapshotRunsBeforeTheStateIsRenderedAndCanStopIt: the push
// triggers the dedup state marks as sent must be on the broker before
// that state is snapshotted, so BeforeSnapshot runs before Extras, and a
// failure writes no snapshot (and commits nothing).
func TestBeforeSnapshotRunsBeforeTheStateIsRenderedAndCanStopIt(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t, 1)
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: kafka.TopicEvents, GroupID: "nbo"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cons.Close() })
	dlq, err := kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dlq.Close() })

	var order []string
	flushErr := errors.New("broker down")
	var fail bool
	path := filepath.Join(t.TempDir(), "state.snap")
	loop, err := New(Options{
		Store: store, Source: cons, DeadLetters: dlq, SnapshotPath: path,
		Now:    func() time.Time { return testNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BeforeSnapshot: func(context.Context) error {
			order = append(order, "flush")
			if fail {
				return flushErr
			}
			return nil
		},
		Extras: func() map[string][]byte {
			order = append(order, "extras")
			return map[string][]byte{"x": {1}}
		},
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, loop.Restore(ctx))

	fail = true
	err = loop.Snapshot(ctx)
	require.ErrorIs(t, err, flushErr)
	require.Equal(t, []string{"flush"}, order, "the state is not rendered")
	_, statErr := os.Stat(path)
	require.ErrorIs(t, statErr, os.ErrNotExist, "no snapshot written")

	fail, order = false, nil
	require.NoError(t, loop.Snapshot(ctx))
	require.Equal(t, []string{"flush", "extras"}, order)
	_, statErr = os.Stat(path)
	require.NoError(t, statErr)

	// A restart reports the restored snapshot as the newest (its age is
	// what operators alert on), not none.
	again, err := New(Options{
		Store: store, Source: cons, DeadLetters: dlq, SnapshotPath: path,
		Now:    func() time.Time { return testNow.Add(time.Hour) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	require.True(t, again.Stats().LastSnapshot.IsZero())
	require.NoError(t, again.Restore(ctx))
	require.True(t, testNow.Equal(again.Stats().LastSnapshot), "%v", again.Stats().LastSnapshot)
}

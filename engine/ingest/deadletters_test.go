package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

// These tests drive the Loop with in-process fakes for the source and the
// dead-letter topic: what they check is how the loop behaves while the
// topic fails, which a real broker does not do on cue.

// fedSource delivers the records sent on ch and records the commits.
type fedSource struct {
	ch chan kafka.Record

	mu      sync.Mutex
	commits []map[int]int64
}

func newFedSource() *fedSource { return &fedSource{ch: make(chan kafka.Record, 64)} }

func (s *fedSource) Fetch(ctx context.Context) (kafka.Record, error) {
	select {
	case r := <-s.ch:
		return r, nil
	case <-ctx.Done():
		return kafka.Record{}, ctx.Err()
	}
}

func (s *fedSource) Commit(_ context.Context, offsets map[int]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, maps.Clone(offsets))
	return nil
}

func (*fedSource) SkipBelow(map[int]int64) {}

func (s *fedSource) committed() []map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[int]int64(nil), s.commits...)
}

// switchableLetters is a dead-letter topic that can be taken down: while
// down, Send fails (at once, or — hang — only when its context ends, as a
// producer waiting for a leader does). It keeps what it delivered.
type switchableLetters struct {
	down atomic.Bool
	hang bool

	mu        sync.Mutex
	delivered []kafka.DeadLetter
	attempts  int
}

func (s *switchableLetters) Send(ctx context.Context, letters []kafka.DeadLetter) error {
	s.mu.Lock()
	s.attempts++
	s.mu.Unlock()
	if s.down.Load() {
		if s.hang {
			<-ctx.Done()
			return ctx.Err()
		}
		return fmt.Errorf("producing to %s: %w", kafka.TopicEventsDLQ, kafka.ErrUnavailable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delivered = append(s.delivered, letters...)
	return nil
}

func (s *switchableLetters) offsets() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, len(s.delivered))
	for i, d := range s.delivered {
		out[i] = d.Source.Offset
	}
	return out
}

// pageView is a valid event record at offset off of partition 0.
func pageView(off int64) kafka.Record {
	v := fmt.Sprintf(`{"event_id":"e%d","ts":%q,"type":"page_view","channel":"web","ids":{"member":"M%d"}}`, off, testNow.Add(-time.Minute).Format(time.RFC3339), off)
	return kafka.Record{Partition: 0, Offset: off, Value: []byte(v), Time: testNow}
}

// notAnEvent is a record the decoder refuses, at offset off of partition 0.
func notAnEvent(off int64) kafka.Record {
	return kafka.Record{Partition: 0, Offset: off, Value: []byte(`{"not":"an event"}`), Time: testNow}
}

// runFed runs a loop over src and dl until the test ends; it returns the
// loop and a stop function that waits for Run and returns its error.
func runFed(t *testing.T, src *fedSource, dl DeadLetterSink, o Options) (*Loop, string, func() error) {
	t.Helper()
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	o.Store, o.Source, o.DeadLetters = store, src, dl
	o.SnapshotPath = filepath.Join(t.TempDir(), "state.snap")
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = time.Hour
	}
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l, err := New(o)
	require.NoError(t, err)
	require.NoError(t, l.Restore(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return l, o.SnapshotPath, stop
}

func TestValidEventsKeepFlowingWhileTheDeadLetterTopicHangs(t *testing.T) {
	t.Parallel()
	src := newFedSource()
	dl := &switchableLetters{hang: true}
	dl.down.Store(true)
	l, _, _ := runFed(t, src, dl, Options{})

	src.ch <- notAnEvent(0)
	require.Eventually(t, func() bool { return l.Stats().Rejected == 1 }, 5*time.Second, 5*time.Millisecond)
	for off := int64(1); off <= 20; off++ {
		src.ch <- pageView(off)
	}
	// A send hangs for up to 10 s; the valid records behind the refused
	// one must not wait for it.
	require.Eventually(t, func() bool { return l.Stats().Applied == 20 }, 2*time.Second, 5*time.Millisecond,
		"applied %d of 20 valid records while the dead-letter topic hangs", l.Stats().Applied)
	st := l.Stats()
	require.Equal(t, int64(1), st.DeadLettersPending, "the letter is kept, not dropped")
	require.False(t, st.Paused)
}

func TestSnapshotsWaitForTheDeadLettersTheyCoverAndResumeWhenTheTopicIsBack(t *testing.T) {
	t.Parallel()
	src := newFedSource()
	dl := &switchableLetters{}
	dl.down.Store(true)
	var logs lockedBuffer
	l, path, stop := runFed(t, src, dl, Options{SnapshotEvery: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	src.ch <- pageView(0)
	src.ch <- notAnEvent(1)
	src.ch <- pageView(2)
	require.Eventually(t, func() bool { return l.Stats().Applied == 2 && l.Stats().DeadLettersUnavailable }, 5*time.Second, 5*time.Millisecond)

	// Several snapshot ticks pass: none may cover offset 1, whose dead
	// letter is only in memory, so nothing is written or committed.
	time.Sleep(300 * time.Millisecond)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "a snapshot covered an undelivered dead letter")
	require.Empty(t, src.committed(), "offsets committed past an undelivered dead letter")
	require.Contains(t, logs.String(), "the dead-letter topic does not take letters")
	require.Contains(t, logs.String(), "snapshot postponed until the dead letters it would cover are delivered")
	require.Equal(t, int64(1), l.Stats().DeadLettersPending)

	// The topic comes back: the letter is delivered once, and the next
	// snapshot covers everything and is committed.
	dl.down.Store(false)
	require.Eventually(t, func() bool {
		c := src.committed()
		return len(c) > 0 && c[len(c)-1][0] == 3
	}, 5*time.Second, 5*time.Millisecond, "no commit after the topic came back")
	require.Equal(t, []int64{1}, dl.offsets())
	st := l.Stats()
	require.Zero(t, st.DeadLettersPending)
	require.False(t, st.DeadLettersUnavailable)
	require.Contains(t, logs.String(), "the dead-letter topic takes letters again")
	require.NoError(t, stop())
	require.Equal(t, []int64{1}, dl.offsets(), "the final snapshot sends nothing twice")
}

func TestTheFinalSnapshotFailsRatherThanCoverAnUndeliveredDeadLetter(t *testing.T) {
	t.Parallel()
	src := newFedSource()
	dl := &switchableLetters{}
	dl.down.Store(true)
	l, path, stop := runFed(t, src, dl, Options{})

	src.ch <- notAnEvent(0)
	src.ch <- pageView(1)
	require.Eventually(t, func() bool { return l.Stats().Applied == 1 }, 5*time.Second, 5*time.Millisecond)
	err := stop()
	require.ErrorIs(t, err, errLettersPending, "a stop while the topic is down must not write a snapshot past the letter")
	require.ErrorIs(t, err, kafka.ErrUnavailable, "the error says why")
	_, statErr := os.Stat(path)
	require.ErrorIs(t, statErr, os.ErrNotExist)
	require.Empty(t, src.committed())
}

func TestAFullDeadLetterBufferPausesIngestUntilTheTopicTakesLetters(t *testing.T) {
	t.Parallel()
	src := newFedSource()
	dl := &switchableLetters{}
	dl.down.Store(true)
	var logs lockedBuffer
	// Room for about two letters.
	l, _, _ := runFed(t, src, dl, Options{DeadLetterBuffer: 500, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	src.ch <- notAnEvent(0)
	require.Eventually(t, func() bool { return l.Stats().Rejected == 1 }, 5*time.Second, 5*time.Millisecond)
	src.ch <- notAnEvent(1)
	require.Eventually(t, func() bool { return l.Stats().Paused }, 5*time.Second, 5*time.Millisecond, "the loop did not pause at the buffer's limit")
	for off := int64(2); off < 12; off++ {
		src.ch <- pageView(off)
	}
	time.Sleep(300 * time.Millisecond)
	st := l.Stats()
	require.Zero(t, st.Applied, "the loop consumed while its dead-letter buffer was full")
	require.Equal(t, int64(2), st.DeadLettersPending)
	require.GreaterOrEqual(t, st.DeadLetterBytes, int64(500))
	require.Contains(t, logs.String(), "the dead-letter buffer is full; ingest paused")

	dl.down.Store(false)
	require.Eventually(t, func() bool { return l.Stats().Applied == 10 }, 10*time.Second, 5*time.Millisecond, "ingest did not resume")
	st = l.Stats()
	require.False(t, st.Paused)
	require.Zero(t, st.DeadLettersPending)
	require.Zero(t, st.DeadLetterBytes)
	require.Equal(t, []int64{0, 1}, dl.offsets())
	require.Contains(t, logs.String(), "ingest resumed")
}

func TestANegativeDeadLetterBufferIsRefused(t *testing.T) {
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	_, err = New(Options{Store: store, Source: newFedSource(), DeadLetters: discardLetters{}, SnapshotPath: "x", DeadLetterBuffer: -1})
	require.ErrorContains(t, err, "DeadLetterBuffer -1 is negative")
}

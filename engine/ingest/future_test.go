package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

func TestFutureTSIsJudgedAgainstTheRecordsTimestampCappedByTheClock(t *testing.T) {
	t.Parallel()
	written := testNow // when the producer wrote the records
	cases := []struct {
		name    string
		ts      time.Time // the event's ts
		written time.Time // the record's Kafka timestamp
		now     time.Time // the loop's clock
		future  bool
	}{
		{"an event 10 min ahead of its record is future, read live", written.Add(10 * time.Minute), written, written.Add(time.Second), true},
		{"an event 10 min ahead of its record is still future, replayed a day later", written.Add(10 * time.Minute), written, written.Add(24 * time.Hour), true},
		{"an event 4 min ahead of its record is fine, read live", written.Add(4 * time.Minute), written, written.Add(time.Second), false},
		{"an event 4 min ahead of its record is fine, replayed a day later", written.Add(4 * time.Minute), written, written.Add(24 * time.Hour), false},
		{"a record stamped ahead of the clock is judged against the clock", written.Add(10 * time.Minute), written.Add(time.Hour), written, true},
		{"a record without a timestamp is judged against the clock", written.Add(4 * time.Minute), time.Time{}, written, false},
		{"a record without a timestamp is judged against the clock, and refused past the skew", written.Add(10 * time.Minute), time.Time{}, written, true},
		{"a record stamped before 2000 counts as one without a timestamp", written.Add(4 * time.Minute), time.Unix(0, 0), written, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev features.Event
			v := fmt.Sprintf(`{"event_id":"e1","ts":%q,"type":"page_view","channel":"web","ids":{"member":"M1"}}`, c.ts.Format(time.RFC3339))
			rec := kafka.Record{Value: []byte(v), Time: c.written}
			rej := features.DecodeEvent(rec.Value, futureRef(&rec, c.now), nil, &ev)
			if c.future {
				require.NotNil(t, rej)
				require.Equal(t, features.ReasonFutureTS, rej.Code)
			} else {
				require.Nil(t, rej)
			}
		})
	}
}

// A record refused live as future_ts is refused again by a replay of the
// log hours later, so the restored state never holds an event the live
// run refused (and the dead-letter topic gets the same letters).
func TestAReplayRefusesTheFutureEventsTheLiveRunRefused(t *testing.T) {
	t.Parallel()
	written := testNow.Add(-6 * time.Hour) // the records' Kafka timestamps
	record := func(off int64, ts time.Time) kafka.Record {
		v := fmt.Sprintf(`{"event_id":"e%d","ts":%q,"type":"page_view","channel":"web","ids":{"member":"M%d"}}`, off, ts.Format(time.RFC3339), off)
		return kafka.Record{Partition: 0, Offset: off, Value: []byte(v), Time: written}
	}
	log := []kafka.Record{
		record(0, written.Add(-time.Minute)),
		record(1, written.Add(time.Hour)), // an hour ahead when written
		record(2, written.Add(3*time.Minute)),
	}
	for _, run := range []struct {
		name string
		now  time.Time
	}{{"live", written.Add(time.Second)}, {"replayed six hours later", testNow}} {
		t.Run(run.name, func(t *testing.T) {
			src := newFedSource()
			dl := &switchableLetters{}
			l, _, stop := runFedAt(t, src, dl, run.now)
			for _, r := range log {
				src.ch <- r
			}
			require.Eventually(t, func() bool { st := l.Stats(); return st.Applied+st.Rejected == 3 }, 5*time.Second, 5*time.Millisecond)
			require.NoError(t, stop())
			require.Equal(t, int64(2), l.Stats().Applied)
			require.Equal(t, []int64{1}, dl.offsets())
			require.Equal(t, string(features.ReasonFutureTS), dl.delivered[0].Reason)
		})
	}
}

// runFedAt is runFed with the loop's clock at now.
func runFedAt(t *testing.T, src *fedSource, dl DeadLetterSink, now time.Time) (*Loop, string, func() error) {
	t.Helper()
	return runFed(t, src, dl, Options{Now: func() time.Time { return now }})
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"nbo/engine"
	"nbo/features/kafka"
)

// decisionsSection is the snapshot section holding where nbo.decisions
// resumes (engine.ReplayPoint).
const decisionsSection = "engine.decisions"

// oldSnapshotMargin: a snapshot written before decisionsSection existed
// says only when it was written (its file's time), so the decisions of
// this much time before it are replayed too (the replay is idempotent for
// those the snapshot holds).
const oldSnapshotMargin = 2 * time.Minute

// decisionReplay closes the gap between a snapshot and a crash for the
// state offer requests make (budget reservations, the contact ledger,
// attribution): every snapshot records where nbo.decisions ends, and a
// restart replays the decisions logged after that before it serves. See
// engine/replay.go for what is replayed and the ordering argument.
type decisionReplay struct {
	brokers   []string
	publisher *engine.TopicPublisher
	eng       *engine.Engine
	log       *slog.Logger
	snapPath  string

	restored    *engine.ReplayPoint // the snapshot's, when it had one
	last        *engine.ReplayPoint // the newest point taken or restored
	sawSnapshot bool
}

// extras renders the snapshot sections: the decision publisher is flushed
// and the topic's end offsets read before the engine's records are moved
// into Stats and the sections encoded, so every decision below the
// offsets is in them. It runs on the ingest loop's goroutine.
func (r *decisionReplay) extras(parts snapshotParts) func() map[string][]byte {
	return func() map[string][]byte {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.publisher.Flush(ctx); err != nil {
			// Still correct: what is below the offsets read next was
			// published, so decided, before; the replay after a crash only
			// has more records to find already applied.
			r.log.Warn("flushing the decision log before a snapshot", "err", err)
		}
		at := time.Now().UnixMilli()
		if end, err := kafka.EndOffsets(ctx, r.brokers, kafka.TopicDecisions); err == nil {
			r.last = &engine.ReplayPoint{At: at, Offsets: end}
		} else {
			// The previous point is still a safe place to resume from.
			r.log.Warn("reading the decision log's end for the snapshot; keeping the previous position", "err", err)
		}
		r.eng.FlushRecords()
		out := parts.marshal()
		if r.last != nil {
			if b, err := r.last.MarshalBinary(); err == nil {
				out[decisionsSection] = b
			}
		}
		return out
	}
}

// restoreExtras restores the sections and keeps the replay point.
func (r *decisionReplay) restoreExtras(parts snapshotParts) func(map[string][]byte) error {
	return func(sections map[string][]byte) error {
		r.sawSnapshot = true
		if b, ok := sections[decisionsSection]; ok {
			p := new(engine.ReplayPoint)
			if err := p.UnmarshalBinary(b); err != nil {
				return fmt.Errorf("restoring %s: %w", decisionsSection, err)
			}
			r.restored, r.last = p, p
		}
		return parts.unmarshal(sections)
	}
}

// replay applies the decisions logged since the restored snapshot: from
// its point; from the snapshot file's time (less oldSnapshotMargin) for a
// snapshot without one; from the start of the log without a snapshot.
// Call it after the snapshot is restored and before the ingest loop runs
// and the API serves.
func (r *decisionReplay) replay(ctx context.Context) (engine.ReplayStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	from := map[int]int64{}
	rp := r.eng.NewReplayer(time.Now())
	switch {
	case r.restored != nil:
		from = r.restored.Offsets
	case r.sawSnapshot:
		if fi, err := os.Stat(r.snapPath); err == nil {
			rp.Since = fi.ModTime().Add(-oldSnapshotMargin).UnixMilli()
		}
		r.log.Info("the snapshot does not say where the decision log resumes; replaying the decisions made since shortly before it was written",
			"since", time.UnixMilli(rp.Since).UTC())
	}
	end, err := kafka.EndOffsets(ctx, r.brokers, kafka.TopicDecisions)
	if err != nil {
		return rp.Stats, fmt.Errorf("replaying the decision log: %w", err)
	}
	err = readRange(ctx, r.brokers, kafka.TopicDecisions, "nbo-replay", from, end, func(b []byte) error {
		if err := rp.Replay(b); err != nil {
			r.log.Warn("skipping an unreadable decision record", "err", err)
		}
		return nil
	})
	if err != nil {
		return rp.Stats, fmt.Errorf("replaying the decision log: %w", err)
	}
	st := rp.Stats
	r.log.Info("replayed the decision log since the snapshot", "decisions", st.Decisions, "reserved", st.Reserved,
		"already_held", st.Held, "expired", st.Expired, "contacts", st.Contacts, "recorded", st.Recorded,
		"skipped_older", st.Skipped, "malformed", st.Malformed)
	return st, nil
}

// Package ingest runs the feature store's consume loop: records from the
// events topic are decoded, applied to the store, and rejected ones sent to
// the dead-letter topic; the state is snapshotted with the offsets it
// covers, and offsets are committed to the consumer group only after the
// snapshot that covers them is durable. On start it restores the newest
// snapshot and skips records below its offsets, so a crash at any moment
// followed by a restart ends with the state of a clean replay. Until it
// has caught up with the log it merges the partitions by event time (see
// catchUp), so a customer whose events sit in several partitions loses
// none of them to too_late on a restart or a rebuild.
//
// It is not the HTTP ingest: events posted over HTTP are produced to the
// same topic and come back through this loop like any other.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"nbo/features"
	"nbo/features/kafka"
)

// Source is where records come from: the events topic's consumer group.
type Source interface {
	Fetch(ctx context.Context) (kafka.Record, error)
	Commit(ctx context.Context, offsets map[int]int64) error
	SkipBelow(offsets map[int]int64)
}

// DeadLetterSink receives rejected records.
type DeadLetterSink interface {
	Send(ctx context.Context, letters []kafka.DeadLetter) error
}

// AppliedFunc is called after each applied event, on the loop's goroutine
// (triggers are evaluated here). It must not block for long.
type AppliedFunc func(ev *features.Event, a features.Applied)

// Options configure a Loop.
type Options struct {
	Store       *features.Store // required
	Source      Source          // required
	DeadLetters DeadLetterSink  // required
	// Topic names the source topic in dead letters. Default: nbo.events.
	Topic string
	// Decode are the decoder's limits.
	Decode features.DecodeOptions
	// SnapshotPath is the snapshot file. Required.
	SnapshotPath string
	// SnapshotEvery is the interval between snapshots (and so between
	// offset commits). Default: 30s.
	SnapshotEvery time.Duration
	// Extras returns the other components' snapshot sections; Restore
	// hands them back through RestoreExtras. Both optional.
	Extras        func() map[string][]byte
	RestoreExtras func(map[string][]byte) error
	// BeforeSnapshot is called on the loop's goroutine before the state
	// is rendered for a snapshot: what the state records as done must be
	// durable by then. The engine's trigger dedup marks a push as sent
	// when it is queued for the broker, so serve flushes the trigger
	// publisher here; otherwise a crash right after the snapshot would
	// lose a queued push that the replay will not raise again. An error
	// fails the snapshot (nothing is committed). Optional.
	BeforeSnapshot func(context.Context) error
	// Prepare is called on the loop's goroutine for each valid event
	// before it goes to the store, and may complete it: the engine fills
	// in the offer a redeemed coupon code was issued for
	// (engine.Engine.ResolveCoupon). Optional.
	Prepare func(ev *features.Event)
	// OnApplied is called after each applied event. Optional.
	OnApplied AppliedFunc
	// OnIdle is called with the wall clock (Now) on the loop's goroutine,
	// about every IdleEvery, while the loop is live (caught up with the
	// log, the catch-up merge over) and no record arrived since the last
	// call: the engine fires the wake-ups the wall clock has reached
	// (engine.Engine.OnIdle), which a quiet stream's event time would
	// hold back. It is never called while catching up, so that wake-ups
	// then fire in event time, nor while records the log holds are not
	// yet handled (EndOffsets, read on each idle tick: a stalled fetch is
	// not a quiet stream). It must not block for long. Optional.
	OnIdle func(now time.Time)
	// IdleEvery is the interval between idle checks (OnIdle). Default: 1s.
	IdleEvery time.Duration
	// OnRejected is called for each rejected record. Optional.
	OnRejected func(r features.Reason)
	// EndOffsets returns the log's end offsets, for readiness: the loop is
	// ready once it has applied everything below the end offsets read at
	// start. Optional: without it the loop is ready after restore.
	EndOffsets func(ctx context.Context) (map[int]int64, error)
	// CommittedOffsets returns the offsets the consumer group has
	// committed, from which the Source resumes. Restore compares them with
	// the snapshot's and refuses a snapshot the group is past
	// (ErrSnapshotBehindGroup). Optional: without it nothing is compared.
	CommittedOffsets func(ctx context.Context) (map[int]int64, error)
	// CatchUpStall is how long the catch-up merge waits for a partition
	// that still has backlog and delivers nothing, while records of other
	// partitions wait for it, before it stops waiting for that partition
	// (and logs it, and how many records it applied without waiting).
	// Whether the other partitions keep delivering does not matter.
	// Default: 5s.
	CatchUpStall time.Duration
	// DeadLetterBuffer is the most bytes of dead letters held in memory
	// while the dead-letter topic does not take them (it is missing, an
	// ACL refuses us, it has no leader): the loop sends them from a
	// goroutine of its own and keeps applying valid events meanwhile,
	// but takes no snapshot (and commits no offset) past a record whose
	// dead letter is not delivered. Once the buffer holds this much, the
	// loop stops consuming until the topic takes letters again. Default:
	// 64 MiB.
	DeadLetterBuffer int64
	// Now is the wall clock. A record is refused future_ts when its ts is
	// more than the decoder's MaxFutureSkew ahead of the earlier of the
	// record's Kafka timestamp and Now (see futureRef), so a replay
	// judges a record as the live run did. Default: time.Now.
	Now func() time.Time
	// Logger. Default: slog.Default().
	Logger *slog.Logger
}

// ErrSnapshotBehindGroup is Restore's error when the consumer group has
// committed offsets past the snapshot's (the snapshot was moved away, or an
// older copy restored): the group would resume after records the state
// never held, losing them, and readiness would wait for them forever.
var ErrSnapshotBehindGroup = errors.New("ingest: the consumer group is past the snapshot")

// Loop is the consume loop. Create it with New, call Restore once, then
// Run.
type Loop struct {
	opts    Options
	offsets map[int]int64 // next offset to read, per partition, as applied
	target  map[int]int64 // end offsets at start, for readiness
	ready   atomic.Bool
	letters *letterQueue
	paused  atomic.Bool // consuming stopped: the dead-letter buffer is full

	applied  atomic.Int64
	rejected atomic.Int64
	lastSnap atomic.Int64 // Unix ms of the newest durable snapshot
	// The catch-up merge's figures, noted when it ends: the most records
	// it held back at once, and how many a valve applied out of order.
	mergePeak, mergeForced atomic.Int64

	// The run's batch scratch: the valid events of the current run, the
	// index of each in it, and the ApplyBatch callback (made once).
	batch     []decoded
	evs       []features.Event
	which     []int32
	appliedFn func(int, features.Applied, *features.Rejection)

	mu        sync.Mutex    // guards snapshotting against Snapshot from other goroutines
	processed int64         // records handled since the last snapshot
	writing   chan struct{} // closed when the background snapshot write is done
}

// New validates opts and returns a Loop.
func New(opts Options) (*Loop, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("ingest: Store is required"))
	}
	if opts.Source == nil {
		errs = append(errs, errors.New("ingest: Source is required"))
	}
	if opts.DeadLetters == nil {
		errs = append(errs, errors.New("ingest: DeadLetters is required"))
	}
	if opts.SnapshotPath == "" {
		errs = append(errs, errors.New("ingest: SnapshotPath is required"))
	}
	if opts.DeadLetterBuffer < 0 {
		errs = append(errs, fmt.Errorf("ingest: DeadLetterBuffer %d is negative; use 0 for the default (64 MiB)", opts.DeadLetterBuffer))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.DeadLetterBuffer == 0 {
		opts.DeadLetterBuffer = 64 << 20
	}
	if opts.Topic == "" {
		opts.Topic = kafka.TopicEvents
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = 30 * time.Second
	}
	if opts.IdleEvery <= 0 {
		opts.IdleEvery = time.Second
	}
	if opts.CatchUpStall <= 0 {
		opts.CatchUpStall = stallAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Decode.EnsureDefaults()
	l := &Loop{opts: opts, offsets: map[int]int64{}, evs: make([]features.Event, 0, batchMax), which: make([]int32, 0, batchMax)}
	l.letters = newLetterQueue(opts.DeadLetters, opts.DeadLetterBuffer, opts.Logger)
	l.appliedFn = l.appliedOne
	return l, nil
}

// Restore loads the snapshot, if any, and makes the source skip the
// records it covers. A missing snapshot starts empty; a corrupt one is an
// error (the operator decides: move it away to rebuild from the log, which
// takes a consumer group without commits). A snapshot the group has
// committed past, or none when the group has commits, is
// ErrSnapshotBehindGroup.
func (l *Loop) Restore(ctx context.Context) error {
	// A crash during a snapshot write leaves its temporary file behind.
	if stale, _ := filepath.Glob(l.opts.SnapshotPath + ".tmp-*"); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
		l.opts.Logger.Info("removed unfinished snapshot files", "files", len(stale))
	}
	meta, extras, err := l.opts.Store.ReadSnapshotFile(l.opts.SnapshotPath)
	haveSnapshot := err == nil
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.opts.Logger.Info("no snapshot; starting from the log", "path", l.opts.SnapshotPath)
	case err != nil:
		return fmt.Errorf("restoring snapshot %s: %w", l.opts.SnapshotPath, err)
	default:
		for p, o := range meta.Offsets {
			l.offsets[int(p)] = o
		}
		if l.opts.RestoreExtras != nil {
			if err := l.opts.RestoreExtras(extras); err != nil {
				return fmt.Errorf("restoring snapshot sections: %w", err)
			}
		}
		l.opts.Logger.Info("restored snapshot", "path", l.opts.SnapshotPath, "customers", meta.Customers, "created_at", meta.CreatedAt, "offsets", meta.Offsets)
		// The restored snapshot is the newest durable one until the next
		// is written: an alert on its age must not fire at every restart.
		if t, err := time.Parse(time.RFC3339Nano, meta.CreatedAt); err == nil {
			l.lastSnap.Store(t.UnixMilli())
		}
	}
	if l.opts.CommittedOffsets != nil {
		committed, err := l.opts.CommittedOffsets(ctx)
		if err != nil {
			return fmt.Errorf("reading the consumer group's committed offsets: %w", err)
		}
		for _, p := range slices.Sorted(maps.Keys(committed)) {
			if committed[p] > l.offsets[p] {
				if !haveSnapshot {
					return fmt.Errorf("%w: partition %d is committed up to offset %d and there is no snapshot (%s); consuming would skip the records before it", ErrSnapshotBehindGroup, p, committed[p], l.opts.SnapshotPath)
				}
				return fmt.Errorf("%w: partition %d is committed up to offset %d and the snapshot %s covers up to %d; consuming would skip the records in between", ErrSnapshotBehindGroup, p, committed[p], l.opts.SnapshotPath, l.offsets[p])
			}
		}
	}
	l.opts.Source.SkipBelow(l.offsets)
	if l.opts.EndOffsets != nil {
		end, err := l.opts.EndOffsets(ctx)
		if err != nil {
			return fmt.Errorf("reading end offsets for readiness: %w", err)
		}
		l.target = end
	}
	l.checkReady()
	return nil
}

func (l *Loop) checkReady() {
	if l.ready.Load() {
		return
	}
	if l.behind(l.target) {
		return
	}
	l.ready.Store(true)
	l.opts.Logger.Info("caught up with the log; ready", "applied", l.applied.Load())
}

// atEnd reports whether every record the log held a moment ago has been
// handled (EndOffsets; true without it). A quiet stream is one that is at
// its end: no record for a second can also mean a fetch stalled behind a
// broker outage or lag, and wake-ups fired by the wall clock then would
// push "no purchase within 48 h" while the purchase waits in the log. An
// error reading the offsets counts as not at the end.
func (l *Loop) atEnd(ctx context.Context) bool {
	if l.opts.EndOffsets == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.IdleEvery/2)
	defer cancel()
	end, err := l.opts.EndOffsets(ctx)
	return err == nil && !l.behind(end)
}

// behind reports whether some partition's records below end (per
// partition end offsets) are not all handled yet.
func (l *Loop) behind(end map[int]int64) bool {
	for p, e := range end {
		if e > 0 && l.offsets[p] < e {
			return true
		}
	}
	return false
}

// Ready reports whether restore and catch-up are done.
func (l *Loop) Ready() bool { return l.ready.Load() }

// Stats are the loop's counters.
type Stats struct {
	Applied, Rejected int64
	LastSnapshot      time.Time
	// DeadLettersPending are the dead letters not yet delivered to the
	// dead-letter topic, DeadLetterBytes what they hold (against
	// Options.DeadLetterBuffer).
	DeadLettersPending, DeadLetterBytes int64
	// DeadLettersUnavailable: the topic refused the last send; snapshots
	// and offset commits wait for it.
	DeadLettersUnavailable bool
	// Paused: the loop consumes nothing until the topic takes letters
	// (DeadLetterBytes reached Options.DeadLetterBuffer).
	Paused bool
}

// Stats returns the loop's counters.
func (l *Loop) Stats() Stats {
	ls := l.letters.stats()
	st := Stats{
		Applied: l.applied.Load(), Rejected: l.rejected.Load(),
		DeadLettersPending: ls.pending, DeadLetterBytes: ls.bytes, DeadLettersUnavailable: ls.unavailable,
		Paused: l.paused.Load(),
	}
	if ms := l.lastSnap.Load(); ms > 0 {
		st.LastSnapshot = time.UnixMilli(ms)
	}
	return st
}

// Run consumes until ctx ends, then writes a final snapshot and commits
// its offsets. It returns nil after a clean stop, or the error that
// stopped it; a broker that is unavailable (kafka.ErrUnavailable) does not
// stop it: it logs a warning and keeps fetching until the broker is back.
func (l *Loop) Run(ctx context.Context) error {
	// The fetch goroutine also decodes, so decoding runs on the other
	// core while this one applies: Apply is the only part that must be
	// sequential.
	recs := make(chan decoded, 4096)
	fetchErr := make(chan error, 1)
	fctx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		defer close(recs)
		down := false
		for {
			rec, err := l.opts.Source.Fetch(fctx)
			if errors.Is(err, kafka.ErrUnavailable) && fctx.Err() == nil {
				// The broker is down or unreachable (a restart, a network
				// blip): the consumer keeps trying on every call, and the
				// engine serves on with the state it holds meanwhile.
				if !down {
					l.opts.Logger.Warn("the events topic is unavailable; retrying", "err", err)
					down = true
				}
				select {
				case <-time.After(unavailableRetry):
					continue
				case <-fctx.Done():
					fetchErr <- fctx.Err()
					return
				}
			}
			if err != nil {
				fetchErr <- err
				return
			}
			if down {
				l.opts.Logger.Info("the events topic is available again")
				down = false
			}
			d := decoded{rec: rec}
			d.rej = features.DecodeEvent(rec.Value, futureRef(&rec, l.opts.Now()), &l.opts.Decode, &d.ev)
			select {
			case recs <- d:
			case <-fctx.Done():
				fetchErr <- fctx.Err()
				return
			}
		}
	}()
	defer func() { cancelFetch(); <-fetched }() // Run owns the goroutine: stop it and wait
	// Dead letters go out from a goroutine of their own, so an unreachable
	// dead-letter topic never holds up the loop. It outlives ctx: the
	// final snapshot waits for the letters it covers, and a stop must not
	// cut a send half-way (the letters would be sent again).
	sctx, stopSender := context.WithCancel(context.WithoutCancel(ctx))
	sent := make(chan struct{})
	l.letters.running.Store(true)
	go func() {
		defer close(sent)
		l.letters.run(sctx)
	}()
	defer func() { stopSender(); <-sent; l.letters.running.Store(false) }()
	tick := time.NewTicker(l.opts.SnapshotEvery)
	defer tick.Stop()
	flush := time.NewTicker(250 * time.Millisecond)
	defer flush.Stop()
	idle := time.NewTicker(l.opts.IdleEvery)
	defer idle.Stop()
	// received says a record arrived since the last idle check: the stream
	// is not idle, and its event time moves the wake-ups on.
	received := false
	// Records are applied in runs: what is already buffered (up to
	// batchMax) goes to the store in one ApplyBatch, which overlaps the
	// cache misses of consecutive customers.
	batch := make([]decoded, 0, batchMax)
	var rec decoded
	var ok bool
	// While catching up, records go through the merge (see catchUp);
	// afterwards merge is nil and records are applied as they arrive.
	var merge *catchUp
	if !l.ready.Load() {
		merge = newCatchUp(l.target, l.offsets, time.Now())
	}
	defer func() { l.noteMerge(merge) }()
	for {
		// While the dead-letter buffer is full, consume nothing: the flush
		// tick looks again every 250 ms.
		in := recs
		if l.letters.full() {
			in = nil
			if !l.paused.Swap(true) {
				st := l.letters.stats()
				l.opts.Logger.Error("the dead-letter buffer is full; ingest paused until the dead-letter topic takes letters", "pending", st.pending, "bytes", st.bytes, "limit", l.opts.DeadLetterBuffer)
			}
		} else if l.paused.Swap(false) {
			l.opts.Logger.Info("the dead-letter topic took letters; ingest resumed")
		}
		select {
		case rec, ok = <-in:
			received = true
			if !ok {
				err := <-fetchErr
				if ctx.Err() != nil {
					return l.final()
				}
				return fmt.Errorf("consuming events: %w", err)
			}
			if merge != nil {
				now := time.Now()
				mergeArrivals(merge, &rec, recs, now)
				merge, batch = l.advanceMerge(merge, batch, now)
				continue
			}
			batch = append(batch[:0], rec)
			// Drain what is already buffered before looking at timers.
			for n := 0; n < 1024; n++ {
				select {
				case rec, ok = <-recs:
					if !ok {
						l.handleBatch(batch)
						goto drained
					}
					batch = append(batch, rec)
					if len(batch) == batchMax {
						l.handleBatch(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			l.handleBatch(batch)
			batch = batch[:0]
		drained:
			l.checkReady()
		case <-flush.C:
			if merge != nil {
				merge, batch = l.mergeValve(merge, batch, time.Now())
			}
		case <-idle.C:
			if !received && merge == nil && l.ready.Load() && l.opts.OnIdle != nil && l.atEnd(ctx) {
				l.opts.OnIdle(l.opts.Now())
			}
			received = false
		case <-tick.C:
			err := l.snapshotInBackground(ctx)
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, errLettersPending):
				l.opts.Logger.Warn("snapshot postponed until the dead letters it would cover are delivered; offsets not committed", "err", err)
			default:
				l.opts.Logger.Error("snapshot failed; offsets not committed", "err", err)
			}
		case <-ctx.Done():
			cancelFetch()
			return l.final()
		}
	}
}

// mergeArrivals queues rec, and what else the reader has already
// delivered (up to 4096 records), in the catch-up merge, as arrived at now.
// It does not wait: a closed recs is left for Run to see.
func mergeArrivals(m *catchUp, rec *decoded, recs <-chan decoded, now time.Time) {
	m.push(rec, now)
	// Keep draining the reader into the queues: the partition the merge
	// waits for comes behind them.
	for n := 0; n < 4096; n++ {
		select {
		case d, ok := <-recs:
			if ok {
				m.push(&d, now)
				continue
			}
		default:
		}
		break
	}
}

// mergeValve stops waiting for the partitions with backlog that have
// delivered nothing for CatchUpStall while records wait for them (moved to
// another member, or records below the end offset missing), whether or
// not the others deliver, and applies what that releases.
func (l *Loop) mergeValve(m *catchUp, batch []decoded, now time.Time) (*catchUp, []decoded) {
	stopped := false
	m.stopWaiting(now, l.opts.CatchUpStall, func(p int, missing int64) {
		stopped = true
		l.opts.Logger.Warn("catch-up merge stopped waiting for a partition that delivers nothing; its records are applied as they come", "partition", p, "missing", missing, "after", l.opts.CatchUpStall, "queued", m.queued)
	})
	if !stopped {
		return m, batch
	}
	return l.advanceMerge(m, batch, now)
}

// advanceMerge applies what the catch-up merge may release at now and ends
// the merge when it is done: it returns the merge, or nil once it has
// ended (records are applied in arrival order from then on), and the
// batch buffer.
func (l *Loop) advanceMerge(m *catchUp, batch []decoded, now time.Time) (*catchUp, []decoded) {
	batch = m.release(batch, now, l.handleBatch)
	l.checkReady()
	if !m.done() {
		return m, batch
	}
	l.noteMerge(m)
	l.opts.Logger.Info("caught up merging partitions by event time", "peak_queued", m.peak, "applied_out_of_order", m.forced)
	return nil, batch
}

// noteMerge publishes the catch-up merge's figures (m may be nil).
func (l *Loop) noteMerge(m *catchUp) {
	if m != nil {
		l.mergePeak.Store(int64(m.peak))
		l.mergeForced.Store(m.forced)
	}
}

func (l *Loop) final() error {
	// The run context is done: use a fresh bounded one to finish cleanly.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.waitWriter()
	if err := l.Snapshot(ctx); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	return nil
}

// decoded is a record with its decoded event (or why it was refused).
type decoded struct {
	rec kafka.Record
	ev  features.Event
	rej *features.Rejection
}

// unavailableRetry is the pause before fetching again after Fetch reported
// the broker unavailable (the consumer itself already waited between its
// attempts to reach it).
const unavailableRetry = time.Second

// batchMax is the most records applied in one ApplyBatch.
const batchMax = 256

// handleBatch applies a run of records in order: offsets advance per
// record, refused records are dead-lettered in their place in the run, and
// the valid events between them go to the store together.
func (l *Loop) handleBatch(batch []decoded) {
	l.evs, l.which = l.evs[:0], l.which[:0]
	for i := range batch {
		d := &batch[i]
		rec := &d.rec
		l.processed++
		if next, ok := l.offsets[rec.Partition]; ok && rec.Offset < next {
			continue // covered by the snapshot (SkipBelow normally filters these)
		}
		l.offsets[rec.Partition] = rec.Offset + 1
		if d.rej != nil {
			l.applyPending(batch) // keep the dead letters in record order
			l.opts.Store.CountRejected(d.rej.Code)
			l.reject(rec, d.rej)
			continue
		}
		l.evs = append(l.evs, d.ev)
		if l.opts.Prepare != nil {
			l.opts.Prepare(&l.evs[len(l.evs)-1])
		}
		l.which = append(l.which, int32(i))
	}
	l.applyPending(batch)
}

// applyPending applies the events collected from batch so far.
func (l *Loop) applyPending(batch []decoded) {
	if len(l.evs) == 0 {
		return
	}
	l.batch = batch
	l.opts.Store.ApplyBatch(l.evs, l.appliedFn)
	l.batch = nil
	l.evs, l.which = l.evs[:0], l.which[:0]
}

// appliedOne handles the store's answer for l.evs[i]. It runs under the
// store's writer lock (see features.Store.ApplyBatch); OnApplied must
// not apply events itself.
func (l *Loop) appliedOne(i int, a features.Applied, rej *features.Rejection) {
	if rej != nil {
		l.reject(&l.batch[l.which[i]].rec, rej)
		return
	}
	l.applied.Add(1)
	if l.opts.OnApplied != nil {
		l.opts.OnApplied(&l.evs[i], a)
	}
}

func (l *Loop) reject(rec *kafka.Record, rej *features.Rejection) {
	l.rejected.Add(1)
	if l.opts.OnRejected != nil {
		l.opts.OnRejected(rej.Code)
	}
	l.letters.add(kafka.DeadLetter{Source: *rec, SourceTopic: l.opts.Topic, Reason: string(rej.Code), Field: rej.Field})
}

// futureRef is the instant, in Unix ms, a record's ts is judged against
// for future_ts: the earlier of the record's Kafka timestamp (the
// producer's create time, or the broker's append time when the topic
// says so) and now. Live, a record is read after it was written, so this
// is the record's timestamp, and a replay hours later judges the record
// exactly as the live run did; now only caps a producer whose clock runs
// ahead of ours. A record without a timestamp (before 2000: none was
// set) is judged against now.
func futureRef(rec *kafka.Record, now time.Time) int64 {
	ref := now.UnixMilli()
	if t := rec.Time.UnixMilli(); t >= minRecordTime && t < ref {
		ref = t
	}
	return ref
}

// minRecordTime is 2000-01-01T00:00:00Z in Unix ms: an earlier record
// timestamp is taken for none (Kafka's -1, a zero time).
const minRecordTime = 946684800000

// flushLetters delivers the dead letters queued so far, for a snapshot
// about to cover their records. While Run sends them, it waits for that
// up to wait, and returns at once if the topic is refusing letters
// (periodic snapshots then never hold up the loop); otherwise it sends
// them itself. The error wraps errLettersPending.
func (l *Loop) flushLetters(ctx context.Context, wait time.Duration) error {
	if !l.letters.running.Load() {
		return l.letters.sendAll(ctx)
	}
	mark := l.letters.mark()
	if l.letters.unavailable() != nil && wait < sendTimeout {
		wait = 0 // the topic is refusing letters: do not hold up the loop
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return l.letters.sentThrough(wctx, mark)
}

// snapshotInBackground encodes a snapshot on the loop's goroutine (the
// only time ingest pauses) and writes, syncs and commits it on another, so
// the loop goes on applying while the file is written. If the previous
// snapshot is still being written, this tick is skipped.
func (l *Loop) snapshotInBackground(ctx context.Context) error {
	if l.writing != nil {
		select {
		case <-l.writing:
		default:
			return nil
		}
	}
	data, commit, err := l.encode(ctx, periodicLetterWait)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	l.writing = done
	go func() {
		defer close(done)
		if err := l.install(context.WithoutCancel(ctx), data, commit); err != nil {
			l.opts.Logger.Error("snapshot failed; offsets not committed", "err", err)
		}
	}()
	return nil
}

// waitWriter waits for a background snapshot write to finish.
func (l *Loop) waitWriter() {
	if l.writing != nil {
		<-l.writing
		l.writing = nil
	}
}

// periodicLetterWait bounds how long a periodic snapshot waits on the
// loop's goroutine for the dead letters it covers; a healthy topic takes
// them in milliseconds. Past it the snapshot is postponed to the next
// tick; Snapshot (the final one) waits up to sendTimeout.
const periodicLetterWait = 2 * time.Second

// encode delivers the dead letters (waiting up to letterWait, see
// flushLetters) and renders the state with the offsets it covers. The
// offsets cover only records that are applied or whose dead letter is
// delivered: when letters are pending, nothing is rendered and the error
// wraps errLettersPending.
func (l *Loop) encode(ctx context.Context, letterWait time.Duration) ([]byte, map[int]int64, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	err := l.flushLetters(fctx, letterWait)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("sending dead letters before the snapshot: %w", err)
	}
	if l.opts.BeforeSnapshot != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := l.opts.BeforeSnapshot(fctx)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("before the snapshot: %w", err)
		}
	}
	meta := features.SnapshotMeta{CreatedAt: l.opts.Now().UTC().Format(time.RFC3339Nano), Offsets: map[int32]int64{}}
	commit := make(map[int]int64, len(l.offsets))
	for p, o := range l.offsets {
		meta.Offsets[int32(p)] = o
		commit[p] = o
	}
	var extras map[string][]byte
	if l.opts.Extras != nil {
		extras = l.opts.Extras()
	}
	data, err := l.opts.Store.EncodeSnapshot(meta, extras)
	if err != nil {
		return nil, nil, err
	}
	l.processed = 0
	return data, commit, nil
}

// install makes an encoded snapshot durable, then commits its offsets.
func (l *Loop) install(ctx context.Context, data []byte, commit map[int]int64) error {
	start := time.Now()
	if err := features.WriteFileDurably(l.opts.SnapshotPath, data); err != nil {
		return err
	}
	l.lastSnap.Store(time.Now().UnixMilli())
	l.opts.Logger.Debug("snapshot written", "path", l.opts.SnapshotPath, "took", time.Since(start), "bytes", len(data))
	if len(commit) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.opts.Source.Commit(cctx, commit); err != nil {
		// Not fatal: the snapshot is durable and SkipBelow covers what the
		// group re-delivers; the next snapshot commits again.
		l.opts.Logger.Warn("committing offsets after snapshot", "err", err)
	}
	return nil
}

// Snapshot writes a durable snapshot of the state and then commits the
// offsets it covers. Dead letters are sent first: an offset is committed
// only once every record below it is either applied in the snapshot or
// safely in the dead-letter topic. Call it only from the loop's goroutine
// or while Run is not running.
func (l *Loop) Snapshot(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitWriter()
	data, commit, err := l.encode(ctx, sendTimeout)
	if err != nil {
		return err
	}
	return l.install(ctx, data, commit)
}

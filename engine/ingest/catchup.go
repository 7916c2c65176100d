package ingest

import (
	"math"
	"time"
)

// catchUp merges the partitions by event time while the loop catches up
// with the log.
//
// One customer's events sit in more than one partition (anonymous device
// events are keyed by device, logged-in ones by member). Live, the
// partitions are read in step and a customer's events arrive within the
// allowed lateness of each other. During catch-up the reader delivers each
// partition in fetch-sized blocks, hours or days of event time apart, so
// in arrival order a customer's older events would come after much newer
// ones from another partition and be refused as too_late — a rebuild or a
// restart would not give the state the live run had.
//
// So while catching up the loop does not apply in arrival order: each
// partition's records wait in a FIFO queue (never reordered, so the
// applied offsets of a partition stay contiguous and the snapshot's
// offsets cover exactly what was applied), and the head with the smallest
// event time is applied next — but only while every partition that still
// has backlog (records below the end offset read at start that have not
// arrived yet) has a queued record, since the next one to arrive from it
// could be older. Partitions without backlog never hold the merge back.
// Once no partition has backlog and the queues are empty, the loop applies
// in arrival order again (the live path, which pays nothing for this).
//
// Two valves keep it from stalling or growing without bound, at the price
// of order in a situation that should not occur: when more than maxQueued
// records wait, the smallest head is applied anyway; and when a partition
// with backlog and an empty queue has delivered nothing for
// Options.CatchUpStall while records wait (it is not being delivered:
// reassigned, or records missing below its end offset), the merge stops
// waiting for it (stopWaiting) — whether or not the other partitions
// keep delivering — and merges the others on; its records, if they come,
// are merged with what is queued then, or applied as they arrive once the
// merge is over.
type catchUp struct {
	parts   []partQueue // by partition number
	free    [][]decoded // emptied chunks, for reuse
	queued  int         // records in all queues
	peak    int         // most records queued at once
	backlog int         // partitions whose next offset is below their target
	blocked int         // partitions with backlog and an empty queue
	// skipping counts the partitions the merge stopped waiting for that
	// have not yet delivered up to their end offset read at start.
	skipping int
	forced   int64 // records applied by a valve, out of merged order
}

// partQueue is one partition's queue of fetched, not yet applied
// records: a list of fixed-size chunks, so that growing it never copies
// what is queued, and emptied chunks are reused (see catchUp.free).
type partQueue struct {
	chunks [][]decoded // chunks[0][head:] is the front; each chunk is full but the last
	head   int
	n      int   // records queued
	next   int64 // one past the newest offset fetched (or restored)
	target int64 // the end offset read at start; 0: no backlog
	// since is when the partition last delivered a record or, if later,
	// when its queue ran empty: how long a blocked partition has been
	// holding the merge back.
	since time.Time
	// skippedTo is the target of a partition the merge stopped waiting
	// for, until it has delivered up to it; 0 otherwise.
	skippedTo int64
}

// chunkLen is the records per queue chunk (about 100 KiB).
const chunkLen = 256

const (
	// maxQueued bounds the records held back while merging. The group
	// reader interleaves partitions at fetch-batch granularity, so the
	// queues hold a few fetch batches: BenchmarkCatchUp's 390k-event
	// rebuild peaked at 83k-120k records (+60 MiB of heap). At roughly
	// 1 KiB per queued record this bound is ~256 MiB.
	maxQueued = 1 << 18
	// stallAfter is the default Options.CatchUpStall.
	stallAfter = 5 * time.Second
)

// newCatchUp returns the merge state for the end offsets read at start
// (target) and the offsets restored from the snapshot (next), or nil when
// nothing is behind.
func newCatchUp(target, next map[int]int64, now time.Time) *catchUp {
	m := &catchUp{}
	for p, end := range target {
		if p < 0 || end <= next[p] {
			continue
		}
		q := m.part(p)
		q.target, q.next, q.since = end, next[p], now
		m.backlog++
		m.blocked++
	}
	if m.backlog == 0 {
		return nil
	}
	return m
}

func (m *catchUp) part(p int) *partQueue {
	if p >= len(m.parts) {
		m.parts = append(m.parts, make([]partQueue, p+1-len(m.parts))...)
	}
	return &m.parts[p]
}

// push queues a record fetched at now.
func (m *catchUp) push(d *decoded, now time.Time) {
	q := m.part(d.rec.Partition)
	behind := q.next < q.target
	if behind && q.n == 0 {
		m.blocked--
	}
	last := len(q.chunks) - 1
	if last < 0 || len(q.chunks[last]) == chunkLen {
		var c []decoded
		if k := len(m.free) - 1; k >= 0 {
			c, m.free = m.free[k], m.free[:k]
		} else {
			c = make([]decoded, 0, chunkLen)
		}
		q.chunks = append(q.chunks, c)
		last++
	}
	q.chunks[last] = append(q.chunks[last], *d)
	q.n++
	q.next = max(q.next, d.rec.Offset+1)
	q.since = now
	if behind && q.next >= q.target {
		m.backlog--
	}
	if q.skippedTo > 0 && q.next >= q.skippedTo {
		q.skippedTo = 0
		m.skipping--
	}
	m.queued++
	m.peak = max(m.peak, m.queued)
}

// pop moves the queued head with the smallest event time to out, at now.
// The caller makes sure something is queued.
func (m *catchUp) pop(out []decoded, now time.Time) []decoded {
	best, bestTS := -1, int64(math.MaxInt64)
	for p := range m.parts {
		q := &m.parts[p]
		if q.n == 0 {
			continue
		}
		ts := int64(math.MinInt64) // a refused record holds nothing back
		if h := &q.chunks[0][q.head]; h.rej == nil {
			ts = h.ev.TS
		}
		if best < 0 || ts < bestTS {
			best, bestTS = p, ts
		}
	}
	q := &m.parts[best]
	c := q.chunks[0]
	out = append(out, c[q.head])
	c[q.head] = decoded{} // let the record's memory go
	q.head++
	q.n--
	m.queued--
	if q.head == len(c) {
		// The front chunk is used up (or, if it is the last, empty).
		m.free = append(m.free, c[:0])
		q.chunks[0] = nil
		q.chunks, q.head = q.chunks[1:], 0
	}
	if q.n == 0 && q.next < q.target {
		m.blocked++
		q.since = now
	}
	return out
}

// stopWaiting stops waiting for the partitions with backlog and an empty
// queue that have delivered nothing for longer than after, at now, if
// records wait for them. It calls stopped for each, with the records it
// had not delivered yet (below its end offset read at start).
func (m *catchUp) stopWaiting(now time.Time, after time.Duration, stopped func(partition int, missing int64)) {
	if m.queued == 0 || m.blocked == 0 {
		return
	}
	for p := range m.parts {
		q := &m.parts[p]
		if q.n > 0 || q.next >= q.target || now.Sub(q.since) <= after {
			continue
		}
		q.skippedTo, q.target = q.target, 0
		m.skipping++
		m.backlog--
		m.blocked--
		stopped(p, q.skippedTo-q.next)
	}
}

// release applies, through apply in runs of up to batchMax, every record
// the merge may release at now. It returns the batch buffer for reuse.
func (m *catchUp) release(batch []decoded, now time.Time, apply func([]decoded)) []decoded {
	batch = batch[:0]
	for m.queued > 0 && (m.blocked == 0 || m.queued > maxQueued) {
		if m.blocked > 0 || m.skipping > 0 {
			m.forced++
		}
		batch = m.pop(batch, now)
		if len(batch) == batchMax {
			apply(batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		apply(batch)
	}
	return batch[:0]
}

// done reports whether the catch-up is over: nothing behind, nothing
// queued.
func (m *catchUp) done() bool { return m.backlog == 0 && m.queued == 0 }

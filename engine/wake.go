package engine

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"time"

	"nbo/features"
)

// Wake-ups.
//
// Absence scenarios ("viewed online, then no purchase on any channel
// within 48 h") must fire when the window closes, not when the customer
// happens to come back. After every evaluation the engine asks the scenario
// set when the customer could next newly fire and keeps one pending wake-up
// per customer. A wake-up re-evaluates the customer at the instant it is
// due (its trigger's ts), with the cause "wake@<instant>" in the trigger
// ID, so however it is reached it yields the same trigger ID, and the
// dedup drops a second publication.
//
// Wake-ups are reached two ways:
//
//   - In event time (fireWakes, from OnApplied): when the stream's event
//     time (the newest event time the engine has applied) passes a
//     wake-up. This is what catch-up and replays use, so they are exact:
//     the same events fire the same wake-ups with the same trigger IDs.
//   - On the wall clock (OnIdle, from the ingest loop once it is live and
//     the stream idle, about every second): wake-ups due by the wall clock
//     fire without waiting for the next event, so a quiet stream (at night)
//     still pushes within about a second of a window closing. The stream's
//     event time does not move: later events are applied exactly as
//     before.
//
// The one difference a wall-clock wake-up can make: an event dated before
// the wake-up but delivered after it fired (a late purchase) is not seen
// by that evaluation, where a replay, in event time, would see it.

type wakeEntry struct {
	at       int64
	customer features.Key
	index    int
}

type wakeHeap []*wakeEntry

func (h wakeHeap) Len() int { return len(h) }
func (h wakeHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].customer < h[j].customer
}
func (h wakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *wakeHeap) Push(x any) {
	e := x.(*wakeEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *wakeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// wakeQueue holds one pending wake-up per customer.
type wakeQueue struct {
	h         wakeHeap
	byID      map[features.Key]*wakeEntry
	watermark int64 // newest event time seen
}

func (q *wakeQueue) schedule(k features.Key, at int64) {
	if q.byID == nil {
		q.byID = map[features.Key]*wakeEntry{}
	}
	if e, ok := q.byID[k]; ok {
		if e.at == at {
			return
		}
		e.at = at
		heap.Fix(&q.h, e.index)
		return
	}
	e := &wakeEntry{at: at, customer: k}
	q.byID[k] = e
	heap.Push(&q.h, e)
}

func (q *wakeQueue) cancel(k features.Key) {
	if e, ok := q.byID[k]; ok {
		heap.Remove(&q.h, e.index)
		delete(q.byID, k)
	}
}

// move hands from's pending wake-up to to, for an identity merge that
// folded from into to. A customer holds one wake-up, so to keeps the
// earlier of the two: when it fires, the evaluation of the merged
// customer schedules the next one from both histories (evaluateTriggers).
func (q *wakeQueue) move(from, to features.Key) {
	e, ok := q.byID[from]
	if !ok {
		return
	}
	at := e.at
	q.cancel(from)
	if t, ok := q.byID[to]; ok && t.at <= at {
		return
	}
	q.schedule(to, at)
}

// due pops the earliest wake-up at or before t.
func (q *wakeQueue) due(t int64) (wakeEntry, bool) {
	if len(q.h) == 0 || q.h[0].at > t {
		return wakeEntry{}, false
	}
	e := heap.Pop(&q.h).(*wakeEntry)
	delete(q.byID, e.customer)
	return *e, true
}

// Len is the number of pending wake-ups.
func (q *wakeQueue) Len() int { return len(q.h) }

// fireWakes advances the event-time watermark to ts and re-evaluates every
// customer whose wake-up it passed.
func (e *Engine) fireWakes(ts int64) {
	q := &e.wakes
	if ts <= q.watermark {
		return
	}
	q.watermark = ts
	e.fireDue(ts)
}

// fireDue re-evaluates every customer whose wake-up is at or before ts,
// each at its own instant.
func (e *Engine) fireDue(ts int64) {
	for {
		w, ok := e.wakes.due(ts)
		if !ok {
			return
		}
		e.wake(w)
	}
}

// OnIdle fires the wake-ups due at or before the wall-clock instant now,
// each evaluated at its own instant as fireWakes does, without moving the
// stream's event time. The ingest loop calls it on its goroutine (the one
// OnApplied runs on) while it is live and the stream idle; during catch-up
// it must not be called, so old wake-ups fire in event-time order.
func (e *Engine) OnIdle(now time.Time) {
	if e.opts.Triggers == nil {
		return
	}
	e.fireDue(now.UnixMilli())
}

// wake re-evaluates the customer of a due wake-up at its instant.
func (e *Engine) wake(w wakeEntry) {
	id, ok := e.opts.Store.ResolveKey(w.customer)
	if !ok {
		return // erased
	}
	e.evaluateTriggers(id, w.at, wakeCause(w.at))
}

// wakeCause is the cause, in the trigger ID and the trigger's event_id, of
// a wake-up due at instant at (Unix ms): "wake@<at>".
func wakeCause(at int64) string { return "wake@" + strconv.FormatInt(at, 10) }

// PendingWakes is the number of scheduled wake-ups.
func (e *Engine) PendingWakes() int { return e.wakes.Len() }

var wakeMagic = []byte("NBOW\x01")

// Wakes is the wake-up queue as a snapshot section.
func (e *Engine) Wakes() interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
} {
	return (*wakeSection)(e)
}

type wakeSection Engine

// MarshalBinary encodes the watermark and every pending wake-up, sorted.
func (w *wakeSection) MarshalBinary() ([]byte, error) {
	q := &w.wakes
	entries := make([]*wakeEntry, len(q.h))
	copy(entries, q.h)
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].at != entries[j].at {
			return entries[i].at < entries[j].at
		}
		return entries[i].customer < entries[j].customer
	})
	b := append([]byte(nil), wakeMagic...)
	b = binary.AppendVarint(b, q.watermark)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendVarint(b, e.at)
		b = binary.AppendUvarint(b, uint64(len(e.customer)))
		b = append(b, e.customer...)
	}
	return b, nil
}

// UnmarshalBinary replaces the queue with an encoded one.
func (w *wakeSection) UnmarshalBinary(b []byte) error {
	bad := fmt.Errorf("restoring the wake-up queue: %w", ErrCorruptState)
	if len(b) < len(wakeMagic) || string(b[:len(wakeMagic)]) != string(wakeMagic) {
		return bad
	}
	b = b[len(wakeMagic):]
	wm, n := binary.Varint(b)
	if n <= 0 {
		return bad
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return bad
	}
	b = b[n:]
	q := wakeQueue{watermark: wm}
	for i := uint64(0); i < count; i++ {
		at, n := binary.Varint(b)
		if n <= 0 {
			return bad
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return bad
		}
		q.schedule(features.Key(b[n:n+int(l)]), at)
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return bad
	}
	w.wakes = q
	return nil
}

package engine

import (
	"sync"
	"time"
)

// recordEvery is how long the recorder lets decision records gather
// before it moves them into Stats while requests keep coming.
const recordEvery = time.Millisecond

// recordKick is the number of pending records at which a request wakes the
// recorder early, and recordMax the number at which a request moves the
// pending records into Stats itself (the recorder is not keeping up):
// records are never dropped and the buffer never grows without bound.
const (
	recordKick = 1 << 12
	recordMax  = 1 << 15
)

// decisionRecorder carries the records of decisions served to requests to
// Stats, so a request neither waits for the Stats lock nor wakes another
// goroutine: it appends to a buffer under a short lock, and the recorder
// moves the buffer into Stats every recordEvery. A request wakes the
// recorder only when it is idle (the first decision after a quiet spell)
// or far behind (recordKick), not once per record as a channel would —
// each such wake-up is a futex call on the request's path, and on a
// shared 2-core machine it showed up as a ~50 µs tail in BenchmarkDecide.
type decisionRecorder struct {
	stats *Stats
	every time.Duration // recordEvery; tests slow it down

	mu      sync.Mutex
	pending []DecisionRecord
	idle    bool // the recorder sleeps until kicked

	flushMu sync.Mutex       // one flush at a time, so records keep their order
	spare   []DecisionRecord // under flushMu: the buffer flushed last time

	kick chan struct{} // capacity 1
	stop chan struct{}
	done sync.WaitGroup
}

func newDecisionRecorder(stats *Stats, every time.Duration) *decisionRecorder {
	r := &decisionRecorder{stats: stats, every: every, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	r.done.Add(1)
	go r.run()
	return r
}

// add queues one record. It is called on the request path.
func (r *decisionRecorder) add(rec DecisionRecord) {
	r.mu.Lock()
	r.pending = append(r.pending, rec)
	n := len(r.pending)
	wake := r.idle || n == recordKick
	r.idle = false
	r.mu.Unlock()
	if wake {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	if n >= recordMax {
		r.flush()
	}
}

// flush moves the pending records into Stats and reports how many there
// were; with none it marks the recorder idle, so the next add wakes it.
func (r *decisionRecorder) flush() int {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.pending
	r.pending = r.spare[:0]
	r.idle = len(batch) == 0
	r.mu.Unlock()
	r.stats.RecordDecisions(batch)
	clear(batch) // drop the strings for the collector
	r.spare = batch
	return len(batch)
}

func (r *decisionRecorder) run() {
	defer r.done.Done()
	t := time.NewTimer(r.every)
	defer t.Stop()
	for {
		if r.flush() == 0 {
			select {
			case <-r.kick:
			case <-r.stop:
				r.flush()
				return
			}
		}
		t.Reset(r.every)
		select {
		case <-t.C:
		case <-r.kick:
		case <-r.stop:
			r.flush()
			return
		}
	}
}

// close records what is pending and stops the recorder. add must not be
// called after close.
func (r *decisionRecorder) close() {
	close(r.stop)
	r.done.Wait()
}

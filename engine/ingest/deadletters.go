package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"nbo/features/kafka"
)

// errLettersPending is encode's error when dead letters of records the
// snapshot would cover are not delivered yet: the snapshot is postponed
// (nothing is written or committed) rather than cover records that are
// neither applied nor in the dead-letter topic.
var errLettersPending = errors.New("ingest: dead letters not yet delivered")

// letterQueue holds the dead letters the loop has made and the dead-letter
// topic has not yet acknowledged, and sends them from a goroutine of its
// own (run), so an unreachable topic (missing, an ACL, no leader) never
// holds up the loop: valid events keep flowing while it retries. Nothing
// is dropped. A snapshot may cover a record only once its dead letter is
// delivered (Loop.encode waits for, or postpones on, sentThrough), and the
// loop stops consuming while the queue holds limit bytes or more, so a
// long outage costs bounded memory.
type letterQueue struct {
	sink  DeadLetterSink
	limit int64
	log   *slog.Logger

	running atomic.Bool // run is sending (set by its caller); otherwise sendAll sends inline

	mu      sync.Mutex
	letters []kafka.DeadLetter // not yet delivered, oldest first
	bytes   int64              // letterBytes of letters
	queued  int64              // letters ever queued
	sent    int64              // letters ever delivered: the oldest queued ones
	failing error              // the last send's error; nil after a success
	changed chan struct{}      // closed (and replaced) when sent or failing changes
	wake    chan struct{}      // capacity 1: letters wait for run
}

func newLetterQueue(sink DeadLetterSink, limit int64, log *slog.Logger) *letterQueue {
	return &letterQueue{sink: sink, limit: limit, log: log, changed: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// letterBytes is what a dead letter holds in memory, roughly: the record
// and a fixed allowance for the letter's strings and headers.
func letterBytes(d *kafka.DeadLetter) int64 {
	return int64(len(d.Source.Key)+len(d.Source.Value)+len(d.Field)) + 256
}

// add queues a dead letter. It never blocks on the topic.
func (q *letterQueue) add(d kafka.DeadLetter) {
	q.mu.Lock()
	q.letters = append(q.letters, d)
	q.bytes += letterBytes(&d)
	q.queued++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// full reports whether the queue holds its limit: the loop consumes no more
// until the topic takes some.
func (q *letterQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes >= q.limit
}

// letterStats are the queue's figures for Stats.
type letterStats struct {
	pending, bytes int64
	unavailable    bool
}

func (q *letterQueue) stats() letterStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return letterStats{pending: int64(len(q.letters)), bytes: q.bytes, unavailable: q.failing != nil}
}

// mark returns how many letters were ever queued: once sentThrough reaches
// it, every letter queued so far is delivered.
func (q *letterQueue) mark() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// unavailable returns the last send's error while the topic refuses
// letters, else nil.
func (q *letterQueue) unavailable() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failing
}

// maxSend is the most letters in one Send.
const maxSend = 1024

// sendTimeout bounds one Send; after a failure run waits letterRetry,
// doubling up to letterRetryMax, before trying again.
const (
	sendTimeout    = 10 * time.Second
	letterRetry    = 250 * time.Millisecond
	letterRetryMax = 5 * time.Second
)

// run sends the queued letters, oldest first, until ctx ends, retrying a
// failed send (the same letters) with backoff. It logs a warning when the
// topic stops taking letters and a line when it takes them again. It
// returns when ctx is done; letters not sent stay queued.
//
// The caller sets running before it starts run and clears it after run
// has returned, so that sendAll and run never send at once.
func (q *letterQueue) run(ctx context.Context) {
	pause := letterRetry
	var downSince time.Time
	for {
		batch := q.oldest()
		if len(batch) == 0 {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := q.send(ctx, batch)
		if err != nil && ctx.Err() != nil {
			return // stopping: the letters stay queued
		}
		q.mu.Lock()
		if err == nil {
			q.delivered(batch)
		}
		q.failing = err
		close(q.changed)
		q.changed = make(chan struct{})
		pending := len(q.letters)
		q.mu.Unlock()
		if err == nil {
			if !downSince.IsZero() {
				q.log.Info("the dead-letter topic takes letters again; snapshots resume", "down_for", time.Since(downSince).Round(time.Second), "pending", pending)
				downSince = time.Time{}
			}
			pause = letterRetry
			continue
		}
		if downSince.IsZero() {
			downSince = time.Now()
			q.log.Warn("the dead-letter topic does not take letters; retrying, keeping them in memory, and postponing snapshots and offset commits until it does", "err", err, "pending", pending)
		}
		select {
		case <-time.After(pause):
			pause = min(2*pause, letterRetryMax)
		case <-ctx.Done():
			return
		}
	}
}

// sentThrough waits until the first mark letters ever queued are
// delivered. It returns nil then, or, when ctx ends first, an error
// wrapping errLettersPending and the topic's last error if it has one.
func (q *letterQueue) sentThrough(ctx context.Context, mark int64) error {
	for {
		q.mu.Lock()
		sent, failing, changed := q.sent, q.failing, q.changed
		q.mu.Unlock()
		if sent >= mark {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if failing != nil {
				return fmt.Errorf("%w: %d of them: %w", errLettersPending, mark-sent, failing)
			}
			return fmt.Errorf("%w: %d of them: %w", errLettersPending, mark-sent, ctx.Err())
		}
	}
}

// sendAll sends every queued letter on the caller's goroutine, for a
// snapshot taken while run is not running (before or after Run).
func (q *letterQueue) sendAll(ctx context.Context) error {
	for {
		batch := q.oldest()
		if len(batch) == 0 {
			return nil
		}
		err := q.send(ctx, batch)
		q.mu.Lock()
		if err != nil {
			pending := len(q.letters)
			q.mu.Unlock()
			return fmt.Errorf("%w: %d of them: %w", errLettersPending, pending, err)
		}
		q.delivered(batch)
		q.mu.Unlock()
	}
}

// oldest returns the oldest queued letters, at most maxSend of them.
func (q *letterQueue) oldest() []kafka.DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.letters), maxSend)
	return q.letters[:n:n]
}

// send sends batch to the topic, giving it sendTimeout.
func (q *letterQueue) send(ctx context.Context, batch []kafka.DeadLetter) error {
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	return q.sink.Send(sctx, batch)
}

// delivered drops batch, the oldest queued letters, once the topic has
// them. q.mu must be held.
func (q *letterQueue) delivered(batch []kafka.DeadLetter) {
	for i := range batch {
		q.bytes -= letterBytes(&batch[i])
	}
	// Copy the rest down so the backing array does not keep the sent
	// letters' records alive.
	rest := copy(q.letters, q.letters[len(batch):])
	clear(q.letters[rest:])
	q.letters = q.letters[:rest]
	q.sent += int64(len(batch))
}

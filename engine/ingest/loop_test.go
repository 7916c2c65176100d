package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
	"nbo/features/kafka"
)

// These tests run the Loop against the real embedded Kafka-protocol broker
// (kfake with a data directory), with events produced and dead letters read
// back through the kafka adapter, exactly as `nbo serve` wires them.

// testNow is the wall clock the loops under test see (future_ts checks) and
// the instant every customer's features are compared at. Event times lie in
// the month before it.
var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const lateness = 10 * time.Minute // the store's default allowed lateness

var categories = [...]string{"skincare", "makeup", "baby", "phones", "laptops", "shoes", "apparel", "home", "sports", "grocery", "toys", "beauty"}

// customerIDs returns customer c's identifiers: nine in ten are members
// (a third of them with a linked app device, a quarter with a store card),
// one in ten is an anonymous app device.
func customerIDs(c int) features.IDs {
	if c%10 == 9 {
		return features.IDs{Device: fmt.Sprintf("ios-%08x-%04d", uint32(c)*2654435761, c%10000)}
	}
	ids := features.IDs{Member: fmt.Sprintf("M%09d", c)}
	if c%3 == 0 {
		ids.Device = fmt.Sprintf("and-%08x-%04d", uint32(c)*2246822519, c%10000)
	}
	if c%4 == 1 {
		ids.Card = fmt.Sprintf("CARD-%010d", c)
	}
	return ids
}

// customerKey is the record key producers use: the best identifier.
func customerKey(ids *features.IDs) []byte {
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if v := ids.Get(ns); v != "" {
			return []byte(features.MakeKey(ns, v))
		}
	}
	return nil
}

// mixEvent returns one event of a realistic omnichannel mix for customer c
// at event time ts: product views and searches, carts, orders, store
// visits with dwell, till purchases, offer impressions and clicks. Each
// customer has three favourite categories; encoded, the
// events average about 250 bytes. Store events happen at store.
func mixEvent(r *rand.Rand, c int, ts int64, id, store string) features.Event {
	cat := categories[(c*5+r.IntN(3))%len(categories)]
	ev := features.Event{
		ID: id, TS: ts, IDs: customerIDs(c), Channel: features.ChannelApp, Category: cat,
		SKU: fmt.Sprintf("SKU-%s-%05d", strings.ToUpper(cat[:3]), r.IntN(2000)),
	}
	switch x := r.IntN(100); {
	case x < 30:
		ev.Type = features.ProductView
		ev.Channel = [...]features.Channel{features.ChannelApp, features.ChannelWeb, features.ChannelMiniapp}[r.IntN(3)]
		ev.Attrs = map[string]string{"referrer": "home_banner", "position": strconv.Itoa(r.IntN(20))}
	case x < 40:
		ev.Type, ev.SKU = features.Search, ""
		ev.Query = cat + " " + [...]string{"best seller", "on sale", "new arrivals", "gift set", "compare models"}[r.IntN(5)]
	case x < 48:
		ev.Type, ev.Amount, ev.Quantity = features.AddToCart, int64(990+r.IntN(60000)), int32(1+r.IntN(3))
	case x < 51:
		ev.Type = features.RemoveFromCart
	case x < 55:
		ev.Type, ev.Amount, ev.Quantity = features.Order, int64(1990+r.IntN(90000)), int32(1+r.IntN(3))
	case x < 59:
		ev.Type, ev.Channel, ev.Store, ev.SKU = features.StoreEnter, features.ChannelStore, store, ""
	case x < 67:
		ev.Type, ev.Channel, ev.Store, ev.DwellS = features.Dwell, features.ChannelStore, store, int32(30+r.IntN(1800))
		ev.SKU = ""
	case x < 71:
		ev.Type, ev.Channel, ev.Store = features.PosPurchase, features.ChannelPOS, store
		ev.Amount, ev.Quantity = int64(1990+r.IntN(120000)), int32(1+r.IntN(4))
	case x < 82:
		ev.Type, ev.SKU = features.OfferImpression, ""
		ev.OfferID = fmt.Sprintf("OFFER-%s-%02d", strings.ToUpper(cat[:3]), r.IntN(12))
		ev.DecisionID = fmt.Sprintf("dec-%016x", r.Uint64())
	case x < 85:
		ev.Type, ev.SKU = features.OfferClick, ""
		ev.OfferID = fmt.Sprintf("OFFER-%s-%02d", strings.ToUpper(cat[:3]), r.IntN(12))
		ev.DecisionID = fmt.Sprintf("dec-%016x", r.Uint64())
	default:
		ev.Type, ev.SKU, ev.Category = features.PageView, "", ""
		ev.Attrs = map[string]string{"page": "/" + cat}
	}
	if ev.Channel.Class() == features.Online {
		// Apps and web shops send their session with every event.
		if ev.Attrs == nil {
			ev.Attrs = map[string]string{}
		}
		ev.Attrs["session"] = fmt.Sprintf("s-%012x", uint64(c)<<20|uint64(ts/1800_000)&0xfffff)
	}
	return ev
}

// visitStore is the store of one visit: the customer's home store four
// times in five, else any of 200.
func visitStore(r *rand.Rand, c int) string {
	if r.IntN(5) == 0 {
		return fmt.Sprintf("SH-%03d", r.IntN(200))
	}
	return fmt.Sprintf("SH-%03d", c%200)
}

// journeys returns every customer's events in event-time order: sessions
// of up to `perSession` events within 8 minutes (less than the allowed
// lateness), sessions hours to days apart, event times unique per customer.
func journeys(seed uint64, customers, perCustomer int) [][]features.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	base := testNow.Add(-30 * 24 * time.Hour).UnixMilli()
	out := make([][]features.Event, customers)
	for c := range out {
		ts := base + int64(r.IntN(86400))*1000
		n := perCustomer/2 + r.IntN(perCustomer+1)
		evs := make([]features.Event, 0, n)
		for i := 0; i < n; {
			session := 1 + r.IntN(6)
			store := visitStore(r, c)
			for j := 0; j < session && i < n; j, i = j+1, i+1 {
				ts += int64(1+r.IntN(90)) * 1000 // ≤ 6 gaps of ≤ 90 s: a session spans < 10 min
				evs = append(evs, mixEvent(r, c, ts, fmt.Sprintf("ev-%d-%d", c, i), store))
			}
			ts += int64(3600+r.IntN(2*86400)) * 1000
		}
		out[c] = evs
	}
	return out
}

// interleave merges the customers' event lists into one log, keeping each
// customer's order (as Kafka keeps order per key).
func interleave(seed uint64, perCustomer [][]features.Event) []features.Event {
	r := rand.New(rand.NewPCG(seed, 11))
	next := make([]int, len(perCustomer))
	var live []int
	total := 0
	for c, evs := range perCustomer {
		if len(evs) > 0 {
			live = append(live, c)
			total += len(evs)
		}
	}
	log := make([]features.Event, 0, total)
	for len(live) > 0 {
		k := r.IntN(len(live))
		c := live[k]
		log = append(log, perCustomer[c][next[c]])
		next[c]++
		if next[c] == len(perCustomer[c]) {
			live[k] = live[len(live)-1]
			live = live[:len(live)-1]
		}
	}
	return log
}

// encode turns events into records keyed by their best identifier.
func encode(evs []features.Event) []kafka.Message {
	msgs := make([]kafka.Message, len(evs))
	for i := range evs {
		msgs[i] = kafka.Message{Key: customerKey(&evs[i].IDs), Value: features.EncodeEvent(nil, &evs[i])}
	}
	return msgs
}

// startBroker starts an embedded broker on a free loopback port with a data
// directory and creates nbo's topics.
func startBroker(tb testing.TB, partitions int) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: tb.TempDir(), Partitions: partitions})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = e.Close() })
	require.NoError(tb, kafka.EnsureTopics(ctx, e.Addrs(), kafka.Topics(partitions)))
	return e.Addrs()
}

// produce writes msgs to nbo.events with the adapter's acks=all producer,
// in calls of up to 5000, and returns once all are acknowledged. Within a
// key the records keep msgs' order.
func produce(tb testing.TB, brokers []string, msgs []kafka.Message) {
	tb.Helper()
	p, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEvents})
	require.NoError(tb, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < len(msgs); i += 5000 {
		require.NoError(tb, p.Produce(ctx, msgs[i:min(i+5000, len(msgs))]))
	}
}

// referenceStore is one clean pass: the records decoded and applied in
// order straight into a store, without Kafka.
func referenceStore(tb testing.TB, msgs []kafka.Message) *features.Store {
	tb.Helper()
	s, err := features.NewStore(features.Options{AllowedLateness: lateness})
	require.NoError(tb, err)
	var opts features.DecodeOptions
	var ev features.Event
	for i, m := range msgs {
		require.Nil(tb, features.DecodeEvent(m.Value, testNow.UnixMilli(), &opts, &ev), "record %d", i)
		_, rej := s.Apply(&ev)
		require.Nil(tb, rej, "record %d", i)
	}
	return s
}

// requireSameFeatures checks that got holds exactly want's customers with
// byte-identical canonical JSON features, evaluated at testNow.
func requireSameFeatures(tb testing.TB, want, got *features.Store) {
	tb.Helper()
	list := func(s *features.Store) []features.Key {
		var ks []features.Key
		s.Customers(func(k features.Key) { ks = append(ks, k) })
		slices.Sort(ks)
		return ks
	}
	wantKeys, gotKeys := list(want), list(got)
	require.Equal(tb, wantKeys, gotKeys, "the same customers")
	now := testNow.UnixMilli()
	var wv, gv features.View
	for _, k := range wantKeys {
		require.True(tb, want.ViewKey(k, now, &wv))
		require.True(tb, got.ViewKey(k, now, &gv))
		wj, err := json.Marshal(&wv)
		require.NoError(tb, err)
		gj, err := json.Marshal(&gv)
		require.NoError(tb, err)
		if string(wj) != string(gj) {
			require.JSONEq(tb, string(wj), string(gj), "features of %s", k)
		}
	}
}

// running is a Loop consuming in its own goroutine.
type running struct {
	loop     *Loop
	store    *features.Store
	consumer *kafka.Consumer
	cancel   context.CancelFunc
	done     chan error
}

type loopConfig struct {
	group        string
	snapshotPath string
	store        *features.Store // nil: a new empty store
	// source wraps the consumer (to simulate a crash before a commit).
	source func(*kafka.Consumer) Source
	// endOffsets enables readiness tracking.
	endOffsets bool
	onApplied  AppliedFunc
	onRejected func(features.Reason)
	// onIdle is the loop's OnIdle.
	onIdle func(time.Time)
	// now is the loop's wall clock. Default: testNow, fixed.
	now func() time.Time
	// beforeRun sees the restored loop before Run starts.
	beforeRun func(*Loop)
	// snapshotEvery is the loop's SnapshotEvery. Default: an hour (no
	// snapshot before the final one).
	snapshotEvery time.Duration
	// catchUpStall is the loop's CatchUpStall. Default: the loop's.
	catchUpStall time.Duration
	// logger is the loop's logger. Default: one that discards.
	logger *slog.Logger
}

// startLoop creates a consumer in cfg.group, a dead-letter writer and a
// Loop, restores from cfg.snapshotPath and runs the loop until stop.
func startLoop(tb testing.TB, brokers []string, cfg loopConfig) *running {
	tb.Helper()
	store := cfg.store
	if store == nil {
		var err error
		store, err = features.NewStore(features.Options{AllowedLateness: lateness})
		require.NoError(tb, err)
	}
	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: kafka.TopicEvents, GroupID: cfg.group})
	require.NoError(tb, err)
	dlq, err := kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: brokers})
	require.NoError(tb, err)
	var src Source = cons
	if cfg.source != nil {
		src = cfg.source(cons)
	}
	opts := Options{
		Store: store, Source: src, DeadLetters: dlq,
		SnapshotPath: cfg.snapshotPath, SnapshotEvery: cmp.Or(cfg.snapshotEvery, time.Hour), CatchUpStall: cfg.catchUpStall,
		Now:        func() time.Time { return testNow },
		OnApplied:  cfg.onApplied,
		OnRejected: cfg.onRejected,
		OnIdle:     cfg.onIdle,
		Logger:     cmp.Or(cfg.logger, slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
	if cfg.now != nil {
		opts.Now = cfg.now
	}
	if cfg.endOffsets {
		opts.EndOffsets = func(ctx context.Context) (map[int]int64, error) {
			return kafka.EndOffsets(ctx, brokers, kafka.TopicEvents)
		}
	}
	loop, err := New(opts)
	require.NoError(tb, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	require.NoError(tb, loop.Restore(ctx))
	r := &running{loop: loop, store: store, consumer: cons, cancel: cancel, done: make(chan error, 1)}
	if cfg.beforeRun != nil {
		cfg.beforeRun(loop)
	}
	go func() { r.done <- loop.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		_ = dlq.Close()
		_ = cons.Close()
	})
	return r
}

// waitHandled waits until the loop has applied and rejected n records in
// all, and fails the test after a minute.
func (r *running) waitHandled(tb testing.TB, n int64) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := r.loop.Stats()
		if st.Applied+st.Rejected >= n {
			return
		}
		select {
		case err := <-r.done:
			tb.Fatalf("the loop stopped early after %d applied, %d rejected: %v", st.Applied, st.Rejected, err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waited a minute for %d records; the loop handled %d applied + %d rejected", n, st.Applied, st.Rejected)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the run (final snapshot, commit) and leaves the group.
func (r *running) stop(tb testing.TB) {
	tb.Helper()
	r.cancel()
	require.NoError(tb, <-r.done, "a clean stop writes the final snapshot")
	require.NoError(tb, r.consumer.Close())
}

// readAll consumes n records of topic with a fresh group and returns them.
func readAll(tb testing.TB, brokers []string, topic, group string, n int) []kafka.Record {
	tb.Helper()
	c, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: topic, GroupID: group})
	require.NoError(tb, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make([]kafka.Record, 0, n)
	for len(out) < n {
		rec, err := c.Fetch(ctx)
		require.NoError(tb, err, "read %d of %d records from %s", len(out), n, topic)
		out = append(out, rec)
	}
	return out
}

// logLength is the number of records in topic, from its end offsets.
func logLength(tb testing.TB, brokers []string, topic string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end, err := kafka.EndOffsets(ctx, brokers, topic)
	require.NoError(tb, err)
	var n int64
	for _, o := range end {
		n += o
	}
	return n
}

func TestValidEventsProducedOverKafkaAreAppliedExactly(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t, 4)
	msgs := encode(interleave(1, journeys(1, 300, 10)))
	produce(t, brokers, msgs)

	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap")})
	r.waitHandled(t, int64(len(msgs)))
	r.stop(t)

	st := r.store.Stats()
	require.Equal(t, int64(len(msgs)), st.Applied, "every event applied once")
	require.Empty(t, st.Rejected, "nothing rejected")
	require.Equal(t, Stats{Applied: int64(len(msgs))}, Stats{Applied: r.loop.Stats().Applied, Rejected: r.loop.Stats().Rejected})
	require.Equal(t, 300, r.store.Len())
	requireSameFeatures(t, referenceStore(t, msgs), r.store)
	require.Zero(t, logLength(t, brokers, kafka.TopicEventsDLQ), "no dead letters")
}

// malformed is one kind of bad input and the code it must be rejected with.
type malformed struct {
	name   string
	value  string
	reason features.Reason
	field  string
}

func malformedCorpus() []malformed {
	const head = `"ts":"2026-11-20T10:00:00Z","channel":"app","ids":{"member":"M-BAD"}`
	return []malformed{
		{"a truncated object is bad JSON", `{"event_id":"bad-1","ts":"2026-11-20T10:00:00Z","type":"page_view"`, features.ReasonBadJSON, "type"},
		{"plain text is bad JSON", `hello, kafka`, features.ReasonBadJSON, ""},
		{"two objects in one record are bad JSON", `{"event_id":"bad-3",` + head + `,"type":"page_view"}{}`, features.ReasonBadJSON, ""},
		{"an event without event_id is missing a field", `{` + head + `,"type":"page_view"}`, features.ReasonMissingField, "event_id"},
		{"an event without ids is missing a field", `{"event_id":"bad-5","ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"app"}`, features.ReasonMissingField, "ids"},
		{"an order without an amount is missing a field", `{"event_id":"bad-6",` + head + `,"type":"order"}`, features.ReasonMissingField, "amount"},
		{"an unknown type is refused", `{"event_id":"bad-7",` + head + `,"type":"teleport"}`, features.ReasonUnknownType, "type"},
		{"an unknown channel is refused", `{"event_id":"bad-8","ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"fax","ids":{"member":"M-BAD"}}`, features.ReasonBadChannel, "channel"},
		{"a timestamp that is not RFC 3339 is bad", `{"event_id":"bad-9","ts":"2026/11/20 10:00","type":"page_view","channel":"app","ids":{"member":"M-BAD"}}`, features.ReasonBadTS, "ts"},
		{"an impossible date is bad", `{"event_id":"bad-10","ts":"2026-02-30T10:00:00Z","type":"page_view","channel":"app","ids":{"member":"M-BAD"}}`, features.ReasonBadTS, "ts"},
		{"a timestamp an hour ahead of the clock is in the future", `{"event_id":"bad-11","ts":"2026-11-24T13:00:00Z","type":"page_view","channel":"app","ids":{"member":"M-BAD"}}`, features.ReasonFutureTS, "ts"},
		{"an event over 16 KiB is too large", `{"event_id":"bad-12",` + head + `,"type":"search","query":"` + strings.Repeat("q", 20<<10) + `"}`, features.ReasonTooLarge, ""},
		{"a member ID with a space is a bad identifier", `{"event_id":"bad-13","ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"app","ids":{"member":"M 1"}}`, features.ReasonBadID, "ids.member"},
		{"an amount sent as a string has the wrong type", `{"event_id":"bad-14",` + head + `,"type":"order","amount":"12.50"}`, features.ReasonWrongType, "amount"},
		{"ids sent as a string have the wrong type", `{"event_id":"bad-15","ts":"2026-11-20T10:00:00Z","type":"page_view","channel":"app","ids":"M1"}`, features.ReasonWrongType, "ids"},
		{"a field outside schema v1 is unknown", `{"event_id":"bad-16",` + head + `,"type":"page_view","price":12}`, features.ReasonUnknownField, "price"},
		{"a negative amount is a bad value", `{"event_id":"bad-17",` + head + `,"type":"order","amount":-100}`, features.ReasonBadValue, "amount"},
		{"a dwell longer than a day is a bad value", `{"event_id":"bad-18",` + head + `,"type":"dwell","store":"SH-001","dwell_s":90000}`, features.ReasonBadValue, "dwell_s"},
	}
}

func TestMalformedRecordsGoToTheDeadLetterTopicAndValidOnesAreApplied(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t, 4)
	perCustomer := journeys(2, 200, 8)
	valid := encode(interleave(2, perCustomer))
	corpus := malformedCorpus()

	// Two store-level rejections for a real customer, produced after its
	// events: a repeat of its newest event (the same event_id, ts and
	// type; trailing white space makes the record distinct) and an event
	// older than its newest minus the allowed lateness.
	last := perCustomer[0][len(perCustomer[0])-1]
	repeat := string(features.EncodeEvent(nil, &last)) + " "
	old := perCustomer[0][0]
	old.ID, old.TS = "late-1", last.TS-lateness.Milliseconds()-1
	corpus = append(corpus,
		malformed{"a repeated event is a duplicate", repeat, features.ReasonDuplicate, "event_id"},
		malformed{"an event older than the lateness is too late", string(features.EncodeEvent(nil, &old)), features.ReasonTooLate, "ts"},
	)

	// The log: the valid events with the malformed ones spread among them.
	var msgs []kafka.Message
	bad := map[string]malformed{}
	step := len(valid) / (len(corpus) + 1)
	for i, m := range corpus {
		msgs = append(msgs, valid[i*step:(i+1)*step]...)
		key := []byte(fmt.Sprintf("bad-%d", i))
		if m.reason == features.ReasonDuplicate || m.reason == features.ReasonTooLate {
			key = customerKey(&last.IDs)
		}
		msgs = append(msgs, kafka.Message{Key: key, Value: []byte(m.value)})
		bad[m.value] = m
	}
	msgs = append(msgs, valid[len(corpus)*step:]...)
	produce(t, brokers, msgs)

	var rejectedSeen atomic.Int64
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"),
		onRejected: func(features.Reason) { rejectedSeen.Add(1) }})
	r.waitHandled(t, int64(len(msgs)))
	// Dead letters go out while the loop runs (every 250 ms), not only
	// with a snapshot. Waiting for them also keeps the stop clear of an
	// in-flight send: Run sends with its own context, so a stop cancels
	// the send, and the final snapshot sends the same letters again even
	// when the broker had already taken them (duplicate dead letters).
	deadline := time.Now().Add(30 * time.Second)
	for logLength(t, brokers, kafka.TopicEventsDLQ) < int64(len(corpus)) {
		require.True(t, time.Now().Before(deadline), "dead letters sent within 30 s while the loop runs")
		time.Sleep(20 * time.Millisecond)
	}
	r.stop(t)

	// Counters: exact per reason, and every valid event applied.
	want := map[features.Reason]int64{}
	for _, m := range corpus {
		want[m.reason]++
	}
	st := r.store.Stats()
	require.Equal(t, want, st.Rejected, "rejections by reason")
	require.Equal(t, int64(len(valid)), st.Applied, "every valid event applied")
	require.Equal(t, int64(len(corpus)), r.loop.Stats().Rejected)
	require.Equal(t, int64(len(corpus)), rejectedSeen.Load(), "OnRejected called once per rejected record")
	requireSameFeatures(t, referenceStore(t, valid), r.store)

	// Where each bad record landed in nbo.events, read back independently.
	type position struct {
		partition int
		offset    int64
	}
	source := map[string]position{}
	for _, rec := range readAll(t, brokers, kafka.TopicEvents, "audit", len(msgs)) {
		if _, ok := bad[string(rec.Value)]; ok {
			source[string(rec.Value)] = position{rec.Partition, rec.Offset}
		}
	}
	require.Len(t, source, len(corpus))

	// Every bad record is in the dead-letter topic once, with its source
	// position and reason.
	require.Equal(t, int64(len(corpus)), logLength(t, brokers, kafka.TopicEventsDLQ), "one dead letter per rejected record")
	letters := readAll(t, brokers, kafka.TopicEventsDLQ, "dlq-audit", len(corpus))
	got := map[string]bool{}
	for _, l := range letters {
		h := map[string]string{}
		for _, x := range l.Headers {
			h[x.Key] = string(x.Value)
		}
		m, ok := bad[string(l.Value)]
		require.True(t, ok, "dead letter %q is one of the bad records", excerptOf(l.Value))
		t.Run(m.name, func(t *testing.T) {
			pos := source[m.value]
			require.Equal(t, kafka.TopicEvents, h[kafka.HeaderSourceTopic])
			require.Equal(t, strconv.Itoa(pos.partition), h[kafka.HeaderSourcePartition], "source partition")
			require.Equal(t, strconv.FormatInt(pos.offset, 10), h[kafka.HeaderSourceOffset], "source offset")
			require.Equal(t, string(m.reason), h[kafka.HeaderReason], "reason")
			require.Equal(t, m.field, h[kafka.HeaderField], "field")
			require.Equal(t, strconv.Itoa(len(m.value)), h[kafka.HeaderValueBytes])
		})
		require.False(t, got[m.value], "%s: sent once", m.name)
		got[m.value] = true
	}
}

func excerptOf(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// shuffleWithinLateness reorders each customer's events inside their
// sessions (which span less than the allowed lateness), so every event
// arrives at most a session's span after a newer one.
func shuffleWithinLateness(seed uint64, perCustomer [][]features.Event) [][]features.Event {
	r := rand.New(rand.NewPCG(seed, 13))
	out := make([][]features.Event, len(perCustomer))
	for c, evs := range perCustomer {
		evs = slices.Clone(evs)
		for start := 0; start < len(evs); {
			end := start + 1
			for end < len(evs) && evs[end].TS-evs[start].TS < lateness.Milliseconds() && evs[end].TS-evs[end-1].TS < 3600_000 {
				end++
			}
			s := evs[start:end]
			r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
			start = end
		}
		out[c] = evs
	}
	return out
}

func TestDuplicatesAndLateEventsGiveTheFeaturesOfOneCleanOrderedPass(t *testing.T) {
	t.Parallel()
	perCustomer := journeys(3, 250, 10)
	clean := encode(interleave(3, perCustomer))
	want := referenceStore(t, clean)

	// newest[c] is the event time of customer c's newest event.
	newest := map[string]int64{}
	for _, evs := range perCustomer {
		for i := range evs {
			k := string(customerKey(&evs[i].IDs))
			newest[k] = max(newest[k], evs[i].TS)
		}
	}

	t.Run("the same log three times is applied once", func(t *testing.T) {
		t.Parallel()
		brokers := startBroker(t, 4)
		msgs := slices.Concat(clean, clean, clean)
		produce(t, brokers, msgs)
		r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap")})
		r.waitHandled(t, int64(len(msgs)))
		r.stop(t)

		// A repeat still within the lateness of the customer's newest
		// event is a duplicate; an older one is refused as too late before
		// the duplicate test (the store forgets event IDs past lateness).
		var dup, late int64
		lateMs := lateness.Milliseconds()
		var ev features.Event
		for _, m := range clean {
			require.Nil(t, features.DecodeEvent(m.Value, testNow.UnixMilli(), &features.DecodeOptions{}, &ev))
			if ev.TS < newest[string(m.Key)]-lateMs {
				late += 2
			} else {
				dup += 2
			}
		}
		require.Positive(t, dup)
		require.Positive(t, late)
		st := r.store.Stats()
		require.Equal(t, int64(len(clean)), st.Applied)
		require.Equal(t, map[features.Reason]int64{features.ReasonDuplicate: dup, features.ReasonTooLate: late}, st.Rejected)
		requireSameFeatures(t, want, r.store)
	})

	t.Run("events out of order within the lateness are applied as if in order", func(t *testing.T) {
		t.Parallel()
		brokers := startBroker(t, 4)
		shuffled := shuffleWithinLateness(4, perCustomer)
		moved := 0
		for c := range shuffled {
			for i := range shuffled[c] {
				if shuffled[c][i].ID != perCustomer[c][i].ID {
					moved++
				}
			}
		}
		require.Greater(t, moved, len(clean)/3, "the shuffle moves many events")
		msgs := encode(interleave(5, shuffled))

		// Then, per customer with an even index, one new event just past
		// the lateness: each must be refused too_late and change nothing.
		var late []features.Event
		for c := 0; c < len(perCustomer); c += 2 {
			ev := perCustomer[c][0]
			ev.ID = fmt.Sprintf("past-lateness-%d", c)
			ev.TS = newest[string(customerKey(&ev.IDs))] - lateness.Milliseconds() - 1000
			late = append(late, ev)
		}
		produce(t, brokers, msgs)
		produce(t, brokers, encode(late))

		r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap")})
		r.waitHandled(t, int64(len(msgs)+len(late)))
		r.stop(t)
		st := r.store.Stats()
		require.Equal(t, int64(len(clean)), st.Applied)
		require.Equal(t, map[features.Reason]int64{features.ReasonTooLate: int64(len(late))}, st.Rejected)
		requireSameFeatures(t, want, r.store)
	})
}

// failingCommits is the consumer of a process that dies right after its
// snapshot, before the commit reaches the group.
type failingCommits struct{ *kafka.Consumer }

func (failingCommits) Commit(context.Context, map[int]int64) error {
	return errors.New("simulated crash before the commit")
}

func TestRestartResumesWithoutLossOrDoubleCounting(t *testing.T) {
	t.Parallel()
	perCustomer := journeys(6, 200, 12)
	all := encode(interleave(6, perCustomer))
	a, b, c := all[:len(all)/3], all[len(all)/3:2*len(all)/3], all[2*len(all)/3:]
	want := referenceStore(t, all)

	cases := []struct {
		name string
		// crash runs the second phase, which consumes b after a clean
		// first phase over a; what it leaves behind is what the third
		// phase restarts from. It returns how many of b's records the
		// third phase must apply again.
		crash func(t *testing.T, brokers []string, snap string) int
	}{
		{
			name: "a clean stop resumes after the committed offsets",
			crash: func(t *testing.T, brokers []string, snap string) int {
				r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap})
				r.waitHandled(t, int64(len(b)))
				r.stop(t)
				return 0
			},
		},
		{
			name: "a crash after the snapshot and before the commit skips what the snapshot covers",
			crash: func(t *testing.T, brokers []string, snap string) int {
				r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap,
					source: func(c *kafka.Consumer) Source { return failingCommits{c} }})
				r.waitHandled(t, int64(len(b)))
				r.stop(t) // the snapshot covers b; the group stays at a's end
				return 0
			},
		},
		{
			name: "a crash before the snapshot replays what it did not cover",
			crash: func(t *testing.T, brokers []string, snap string) int {
				before, err := os.ReadFile(snap)
				require.NoError(t, err)
				r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap,
					source: func(c *kafka.Consumer) Source { return failingCommits{c} }})
				r.waitHandled(t, int64(len(b)))
				r.stop(t)
				// The process died before this snapshot: the file on disk
				// is still the first phase's.
				require.NoError(t, os.WriteFile(snap, before, 0o644))
				return len(b)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := startBroker(t, 4)
			snap := filepath.Join(t.TempDir(), "state.snap")

			produce(t, brokers, a)
			first := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap})
			first.waitHandled(t, int64(len(a)))
			first.stop(t)

			produce(t, brokers, b)
			replayed := tc.crash(t, brokers, snap)

			produce(t, brokers, c)
			last := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap})
			last.waitHandled(t, int64(replayed+len(c)))
			last.stop(t)

			require.Equal(t, Stats{Applied: int64(replayed + len(c))}, Stats{Applied: last.loop.Stats().Applied, Rejected: last.loop.Stats().Rejected},
				"the restarted loop applies exactly what its snapshot did not cover")
			require.Empty(t, last.store.Stats().Rejected, "nothing is seen twice (no duplicates, nothing too late)")
			requireSameFeatures(t, want, last.store)
		})
	}
}

func TestReadyFlipsOnlyAfterCatchingUpWithTheLog(t *testing.T) {
	t.Parallel()

	t.Run("an empty log is ready right after restore", func(t *testing.T) {
		t.Parallel()
		brokers := startBroker(t, 4)
		r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true})
		require.True(t, r.loop.Ready())
		r.stop(t)
	})

	t.Run("a backlog is applied before the loop is ready", func(t *testing.T) {
		t.Parallel()
		brokers := startBroker(t, 4)
		msgs := encode(interleave(7, journeys(7, 500, 20)))
		produce(t, brokers, msgs)

		// OnApplied runs on the loop's goroutine: count the events applied
		// while the loop already claimed to be ready.
		var loop *Loop
		var appliedWhileReady, applied atomic.Int64
		r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"), endOffsets: true,
			beforeRun: func(l *Loop) {
				require.False(t, l.Ready(), "not ready after restore with %d records to catch up on", len(msgs))
				loop = l
			},
			onApplied: func(*features.Event, features.Applied) {
				applied.Add(1)
				if loop.Ready() {
					appliedWhileReady.Add(1)
				}
			}})
		deadline := time.Now().Add(time.Minute)
		for !r.loop.Ready() {
			require.True(t, time.Now().Before(deadline), "ready within a minute")
			time.Sleep(time.Millisecond)
		}
		require.Equal(t, int64(len(msgs)), applied.Load(), "ready only once the backlog is applied")
		require.Zero(t, appliedWhileReady.Load())

		// New records after catch-up do not make it unready.
		var newcomers []features.Event
		for c, evs := range journeys(8, 10, 4) {
			for _, ev := range evs {
				ev.ID, ev.IDs = "new-"+ev.ID, customerIDs(1_000_000+c)
				newcomers = append(newcomers, ev)
			}
		}
		more := encode(newcomers)
		produce(t, brokers, more)
		r.waitHandled(t, int64(len(msgs)+len(more)))
		require.True(t, r.loop.Ready())
		r.stop(t)
	})
}

// watchedFetches passes the consumer through and counts the fetches that
// failed because the broker was unavailable.
type watchedFetches struct {
	*kafka.Consumer
	unavailable *atomic.Int64
}

func (w watchedFetches) Fetch(ctx context.Context) (kafka.Record, error) {
	rec, err := w.Consumer.Fetch(ctx)
	if errors.Is(err, kafka.ErrUnavailable) {
		w.unavailable.Add(1)
	}
	return rec, err
}

func TestTheLoopRidesOutABrokerOutage(t *testing.T) {
	t.Parallel()
	// A broker that goes away (a restart, a network blip) must not stop
	// the loop: `nbo serve` exited, taking the offer API down with it.
	// The loop keeps the state it holds and resumes when the broker is back.
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dataDir, Partitions: 2})
	require.NoError(t, err)
	brokers := e.Addrs()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Topics(2)))

	all := encode(interleave(9, journeys(9, 100, 8)))
	before, after := all[:len(all)/2], all[len(all)/2:]
	produce(t, brokers, before)
	var unavailable atomic.Int64
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: filepath.Join(t.TempDir(), "state.snap"),
		source: func(c *kafka.Consumer) Source { return watchedFetches{c, &unavailable} }})
	r.waitHandled(t, int64(len(before)))

	require.NoError(t, e.Close())
	deadline := time.Now().Add(time.Minute)
	for unavailable.Load() == 0 {
		select {
		case err := <-r.done:
			t.Fatalf("the loop stopped when the broker went away: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "Fetch never reported the broker unavailable")
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // time for the loop to act on it
	select {
	case err := <-r.done:
		t.Fatalf("the loop stopped when the broker went away: %v", err)
	default:
	}

	e, err = kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: brokers[0], DataDir: dataDir, Partitions: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	produce(t, brokers, after)
	r.waitHandled(t, int64(len(all)))
	r.stop(t)
	require.Equal(t, int64(len(all)), r.loop.Stats().Applied, "every event applied once")
	requireSameFeatures(t, referenceStore(t, all), r.store)
}

func TestASnapshotTheGroupIsPastIsRefused(t *testing.T) {
	t.Parallel()
	// Moving the snapshot away (as the docs said, to rebuild from the log)
	// or restoring an older copy left a loop that resumed at the group's
	// commits: it never saw the records in between and was never ready.
	brokers := startBroker(t, 2)
	all := encode(interleave(4, journeys(4, 60, 6)))
	a, b := all[:len(all)/2], all[len(all)/2:]
	snap := filepath.Join(t.TempDir(), "state.snap")
	committed := func(group string) func(context.Context) (map[int]int64, error) {
		return func(ctx context.Context) (map[int]int64, error) {
			return kafka.CommittedOffsets(ctx, brokers, kafka.TopicEvents, group)
		}
	}
	restore := func(group, path string) error {
		cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: kafka.TopicEvents, GroupID: group})
		require.NoError(t, err)
		defer cons.Close() // leave the group: a member left in it would take partitions
		store, err := features.NewStore(features.Options{AllowedLateness: lateness})
		require.NoError(t, err)
		loop, err := New(Options{Store: store, Source: cons, DeadLetters: discardLetters{}, SnapshotPath: path,
			CommittedOffsets: committed(group), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return loop.Restore(ctx)
	}

	require.NoError(t, restore("nbo", snap), "a first start: no snapshot, no commits")
	produce(t, brokers, a)
	r := startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap})
	r.waitHandled(t, int64(len(a)))
	r.stop(t) // the final snapshot, then the commit
	older, err := os.ReadFile(snap)
	require.NoError(t, err)
	produce(t, brokers, b)
	r = startLoop(t, brokers, loopConfig{group: "nbo", snapshotPath: snap})
	r.waitHandled(t, int64(len(b)))
	r.stop(t)

	require.NoError(t, restore("nbo", snap), "the newest snapshot matches the group")
	moved := filepath.Join(t.TempDir(), "state.snap")
	err = restore("nbo", moved)
	require.ErrorIs(t, err, ErrSnapshotBehindGroup, "no snapshot, but the group has commits")
	require.ErrorContains(t, err, "there is no snapshot", "it does not speak of a snapshot covering offset 0")
	require.NoError(t, os.WriteFile(moved, older, 0o644))
	err = restore("nbo", moved)
	require.ErrorIs(t, err, ErrSnapshotBehindGroup, "an older snapshot than the group's commits")
	require.ErrorContains(t, err, "covers up to")

	// Rebuilding from the log takes a group without commits.
	r = startLoop(t, brokers, loopConfig{group: "nbo-rebuild", snapshotPath: filepath.Join(t.TempDir(), "state.snap")})
	r.waitHandled(t, int64(len(all)))
	r.stop(t)
	requireSameFeatures(t, referenceStore(t, all), r.store)
}

// discardLetters is a dead-letter sink for loops that are only restored.
type discardLetters struct{}

func (discardLetters) Send(context.Context, []kafka.DeadLetter) error { return nil }

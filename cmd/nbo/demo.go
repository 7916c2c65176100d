package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"nbo/bench"
	"nbo/engine"
	"nbo/engine/ingest"
	"nbo/features"
	"nbo/features/kafka"
)

// demo is `nbo serve --demo` (make run): a simulated retailer streams its
// customers' events into the engine through Kafka, a simulated app asks the
// offer API for offers and the customers respond to what they get (and to
// push triggers) according to their hidden probabilities; a status line
// shows what the engine is doing.
type demo struct {
	sim      *bench.Simulator
	mu       sync.Mutex // guards sim.Respond's rng and Inject ordering
	rng      *rand.Rand
	sampled  sync.Map // event ID → produce time, for freshness
	nsampled atomic.Int64
	fresh    *hdrhistogram.Histogram // µs, guarded by hmu
	lat      *hdrhistogram.Histogram // µs, guarded by hmu
	hmu      sync.Mutex
	produced atomic.Int64
	pushes   atomic.Int64
	live     atomic.Bool    // the stream caught up with the wall clock
	zone     *time.Location // of the first store, for the quiet-hours notice
}

// demoHistory is how much simulated history the demo streams before it
// goes live.
const demoHistory = 3 * 24 * time.Hour

// newDemo simulates 20,000 customers from start on.
func newDemo(start time.Time) (*demo, error) {
	sim, err := bench.New(bench.Options{Seed: 1, Customers: 20_000, Start: start, Days: 30})
	if err != nil {
		return nil, err
	}
	return &demo{
		sim:  sim,
		zone: sim.Stores()[0].Location(),
		// Seeded by the start: a restarted demo (make run resumes from the
		// data dir) must not replay the previous run's draws, which name
		// its response events — the same IDs again would be dropped as
		// duplicates of events the engine already applied.
		rng:   rand.New(rand.NewPCG(uint64(start.UnixNano()), 2)),
		fresh: hdrhistogram.New(1, 60_000_000, 3),
		lat:   hdrhistogram.New(1, 60_000_000, 3),
	}, nil
}

// applied is the ingest loop's hook: it measures produce → applied for
// the sampled events.
func (d *demo) applied(ev *features.Event) {
	if d.nsampled.Load() == 0 {
		return
	}
	if t, ok := d.sampled.LoadAndDelete(ev.ID); ok {
		d.nsampled.Add(-1)
		d.hmu.Lock()
		_ = d.fresh.RecordValue(time.Since(t.(time.Time)).Microseconds())
		d.hmu.Unlock()
	}
}

// trigger delivers a push trigger to the simulated customer.
func (d *demo) trigger(value []byte) {
	t, err := engine.DecodeTrigger(value)
	if err != nil {
		return
	}
	d.pushes.Add(1)
	d.deliver(t.Customer, t.OfferID, t.DecisionID, t.CouponCode, features.ChannelPush, t.TS)
}

func (d *demo) deliver(customer features.Key, offerID, decisionID, coupon string, ch features.Channel, at int64) {
	ns, v, ok := features.ParseKey(string(customer))
	if !ok {
		return
	}
	var ids features.IDs
	ids.Set(ns, v)
	idx, ok := d.sim.CustomerIndex(ids)
	if !ok {
		return
	}
	typ, ok := d.offerType(offerID)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := d.sim.Respond(bench.Delivery{Customer: idx, OfferID: offerID, Type: typ, Channel: ch, DecisionID: decisionID, CouponCode: coupon, At: at}, d.rng)
	if err == nil && len(out.Events) > 0 {
		d.sim.Inject(out.Events...)
	}
}

// offerTypes maps the built-in catalog's offer IDs to the simulator's
// offer types (set by run from the active catalog).
var offerTypes sync.Map

func (d *demo) offerType(id string) (bench.OfferType, bool) {
	if t, ok := offerTypes.Load(id); ok {
		return t.(bench.OfferType), true
	}
	return 0, false
}

// run streams, shops and prints until ctx ends.
func (d *demo) run(ctx context.Context, lib *scenarioLibrary, apiAddr, key string, events *kafka.Producer, store *features.Store, loop *ingest.Loop, eng *engine.Engine, stats *engine.Stats, out io.Writer) error {
	for _, o := range lib.Active().Offers {
		if t, ok := bench.ParseOfferType(o.Type.String()); ok {
			offerTypes.Store(o.ID, t)
		}
	}
	member, err := d.sampleMember()
	if err != nil {
		return err
	}
	curl := fmt.Sprintf(`curl -s -H "Authorization: Bearer $(cat %s)" -d '{"ids":{"member":"%s"},"channel":"app","locale":"en"}' http://%s/v1/decide`,
		"<data-dir>/admin.key", member, apiAddr)
	fmt.Fprintf(out, "\ndemo: a simulated retailer (20,000 customers, %d stores) streams 3 days of history, then live events.\n", len(d.sim.Stores()))
	fmt.Fprintf(out, "  offers:     %s\n", strings.Replace(curl, "<data-dir>", dataDirOf(ctx), 1))
	fmt.Fprintf(out, "  customer:   curl -s -H \"Authorization: Bearer $(cat %s/admin.key)\" http://%s/v1/customers/member:%s\n", dataDirOf(ctx), apiAddr, member)
	fmt.Fprintf(out, "  stats:      curl -s -H \"Authorization: Bearer $(cat %s/admin.key)\" http://%s/v1/stats\n", dataDirOf(ctx), apiAddr)
	fmt.Fprintf(out, "  API docs:   http://%s/openapi.json   (Ctrl-C stops with a final snapshot)\n\n", apiAddr)

	// A restarted demo resumes: the simulated stream is deterministic, so
	// events up to the newest one the store already holds were produced by
	// an earlier run and are skipped rather than sent again.
	var resume int64
	var v features.View
	store.Customers(func(k features.Key) {
		if store.ViewKey(k, time.Now().UnixMilli(), &v) {
			resume = max(resume, v.NewestTS)
		}
	})
	if resume > 0 {
		fmt.Fprintf(out, "resuming the simulated stream after %s (the newest event already applied)\n", time.UnixMilli(resume).Format(time.RFC3339))
	}

	var wg sync.WaitGroup
	wg.Add(2)
	// Every event of a simulated customer under the customer's best
	// identifier, as a producer that knows its customers keys them.
	produce := func(batch []features.Event) error {
		keys := make([]string, len(batch))
		for i := range batch {
			if keys[i] = d.sim.PartitionKey(&batch[i]); keys[i] == "" {
				keys[i] = string(batch[i].IDs.BestKey())
			}
		}
		return produceKeyed(ctx, events, batch, keys)
	}
	go func() { defer wg.Done(); d.pump(ctx, produce, resume, out) }()
	go func() { defer wg.Done(); d.shop(ctx, apiAddr, key) }()
	d.status(ctx, store, loop, eng, stats, out)
	wg.Wait()
	return nil
}

// sampleMember is the member ID the printed curls ask about: of the
// customers with a member ID, the one with the most events in the
// simulated history, so the customer API finds them and the offer API
// has a profile to work with (most customers have no event in the first
// days, and anonymous ones have only a device ID). It replays the history
// with a second simulator of the same options: about 100k events.
func (d *demo) sampleMember() (string, error) {
	sim, err := bench.New(d.sim.Options())
	if err != nil {
		return "", err
	}
	until := sim.Options().Start.Add(demoHistory).UnixMilli()
	counts := map[string]int{}
	best := ""
	var ev features.Event
	for sim.Next(&ev) && ev.TS < until {
		if m := ev.IDs.Member; m != "" {
			counts[m]++
			if counts[m] > counts[best] || counts[m] == counts[best] && m < best {
				best = m
			}
		}
	}
	if best == "" {
		return "", errors.New("demo: no member in the simulated history")
	}
	return best, nil
}

// livePoll bounds how long pump sleeps towards a future simulated event
// before it looks again: the customers' responses to offers are injected
// meanwhile, and must not wait behind tomorrow morning's first journey.
const livePoll = 100 * time.Millisecond

// pump produces the simulated stream through produce: as fast as 5,000
// events/s while catching up with the wall clock, then in real time,
// skipping the events up to resume (an earlier run produced them).
func (d *demo) pump(ctx context.Context, produce func([]features.Event) error, resume int64, out io.Writer) {
	lim := bench.NewLimiter(5000, 500, time.Now())
	batch := make([]features.Event, 0, 500)
	lastSample := time.Now()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := produce(batch); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(out, "\ndemo: %d simulated events not produced: %v\n", len(batch), err)
			}
		} else {
			d.produced.Add(int64(len(batch)))
		}
		batch = batch[:0]
	}
	sleep := func(wait time.Duration) bool {
		select {
		case <-time.After(wait):
			return true
		case <-ctx.Done():
			return false
		}
	}
	quiet := false // said that the customers are asleep
	var ev features.Event
	for ctx.Err() == nil {
		d.mu.Lock()
		ts, ok := d.sim.NextTime()
		d.mu.Unlock()
		if !ok {
			flush()
			return
		}
		if wait := time.Until(time.UnixMilli(ts)); ts > resume && wait > 0 {
			d.live.Store(true)
			flush()
			if wait > time.Minute && !quiet {
				quiet = true
				fmt.Fprintf(out, "\ndemo: the simulated customers are quiet until %s (their stores' local time %s); offer responses still stream\n",
					time.UnixMilli(ts).Format(time.TimeOnly), time.UnixMilli(ts).In(d.zone).Format("15:04 MST"))
			}
			if !sleep(min(wait, livePoll)) {
				return
			}
			continue
		}
		quiet = false
		d.mu.Lock()
		d.sim.Next(&ev)
		d.mu.Unlock()
		if ev.TS <= resume {
			continue
		}
		if wait := lim.Reserve(time.Now(), 1); wait > 0 {
			flush()
			if !sleep(wait) {
				return
			}
		}
		if d.live.Load() && time.Since(lastSample) > 100*time.Millisecond {
			lastSample = time.Now()
			d.sampled.Store(ev.ID, lastSample)
			d.nsampled.Add(1)
		}
		batch = append(batch, ev)
		if len(batch) == cap(batch) || d.live.Load() {
			flush()
		}
	}
}

// shop is the simulated app: 20 offer requests a second for random
// customers, each answered offer delivered to the customer.
func (d *demo) shop(ctx context.Context, apiAddr, key string) {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	r := rand.New(rand.NewPCG(3, 4))
	channels := []features.Channel{features.ChannelApp, features.ChannelApp, features.ChannelMiniapp, features.ChannelWeb, features.ChannelTablet}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		idx := r.IntN(d.sim.Options().Customers)
		ids := d.sim.CustomerIDs(idx)
		ch := channels[r.IntN(len(channels))]
		body, _ := json.Marshal(map[string]any{"ids": ids, "channel": ch.String(), "limit": 2})
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+apiAddr+"/v1/decide", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var dec engine.Decision
		_ = json.NewDecoder(resp.Body).Decode(&dec)
		resp.Body.Close()
		d.hmu.Lock()
		_ = d.lat.RecordValue(time.Since(start).Microseconds())
		d.hmu.Unlock()
		for _, o := range dec.Offers {
			d.deliver(features.Key(dec.Customer), o.OfferID, dec.DecisionID, o.CouponCode, ch, time.Now().UnixMilli())
		}
	}
}

func (d *demo) status(ctx context.Context, store *features.Store, loop *ingest.Loop, eng *engine.Engine, stats *engine.Stats, out io.Writer) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastApplied, lastDecisions, last := loop.Stats().Applied, eng.Counters().Decisions, time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return
		case now := <-tick.C:
			secs := now.Sub(last).Seconds()
			applied, decisions := loop.Stats().Applied, eng.Counters().Decisions
			rep := stats.Snapshot()
			d.hmu.Lock()
			p99, fresh := d.lat.ValueAtQuantile(99), d.fresh.ValueAtQuantile(99)
			d.lat.Reset()
			d.fresh.Reset()
			d.hmu.Unlock()
			phase := "catching up"
			if d.live.Load() {
				phase = "live"
			}
			fmt.Fprintf(out, "\r%-11s events/s %6.0f | customers %6d | decisions/s %4.0f | triggers %5d | response rate %5.1f%% | p99 %6.2f ms | freshness p99 %6.2f ms ",
				phase, float64(applied-lastApplied)/secs, store.Len(), float64(decisions-lastDecisions)/secs,
				eng.Counters().Triggers, 100*rep.Total.ResponseRate, float64(p99)/1000, float64(fresh)/1000)
			lastApplied, lastDecisions, last = applied, decisions, now
		}
	}
}

type dataDirKey struct{}

func dataDirOf(ctx context.Context) string {
	if s, ok := ctx.Value(dataDirKey{}).(string); ok {
		return s
	}
	return "./data"
}

// readKey reads the generated admin key for the demo's own requests.
func readKey(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

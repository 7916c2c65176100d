package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"nbo/engine"
	"nbo/engine/api"
	"nbo/engine/ingest"
	"nbo/features"
	"nbo/features/kafka"
	"nbo/models"
	"nbo/scenarios"
)

// The side-by-side comparisons of `nbo bench` (issue 6): each measured in
// one process run, alternating the variants round by round so the shared
// machine's noise falls on both, with open-loop load at a fixed rate and
// ingest running at the same time.

// CompareOptions configure RunComparisons. Zero fields take the full
// run's defaults, or the quick run's when Quick is set.
type CompareOptions struct {
	// Quick is the short pass (make bench-quick): fewer customers, shorter
	// runs, one round.
	Quick bool
	// Out is the results directory. Default: bench/results.
	Out string
	// Customers in the simulated retailer behind the API comparisons.
	// Default: 50000 (quick: 20000).
	Customers int
	// Rate is the fixed offer-request rate of the latency runs, per
	// second. Default: 10000.
	Rate float64
	// Duration of each fixed-rate run (after a 1 s warm-up). Default: 10s
	// (quick: 4s).
	Duration time.Duration
	// CapacityRate is the offered rate of the throughput runs, far above
	// what the machine serves, so what completes is the capacity. A run
	// that completes 95% of it or more is capped by the offered load, and
	// the report says so. Default: 150000.
	CapacityRate float64
	// CapacityDuration of each throughput run. Default: 5s (quick: 3s).
	CapacityDuration time.Duration
	// Connections is the load generator's keep-alive connections (and
	// concurrent requests) per run. Default: 64.
	Connections int
	// Rounds alternate the variants this many times (the ingest run reads
	// its log this many times with each reader). Default: 3 (quick: 2).
	Rounds int
	// IngestRate is the event rate streamed through the embedded broker
	// into the store while the API runs. Default: 2000 (quick: 1000).
	IngestRate float64
	// FreshRate and FreshDuration are the freshness run's produce rate and
	// length. Default: 20000/s for 10s (quick: 3s).
	FreshRate     float64
	FreshDuration time.Duration
	// IngestEvents is the log length of the raw-vs-loop ingest run.
	// Default: 500000 (quick: 100000).
	IngestEvents int
	// Redis selects the Redis comparison: "auto" starts redis-server from
	// PATH on a free loopback port (skipped with a message when it is not
	// installed), "off" skips it, anything else is the address of a running
	// Redis to use. Default: auto.
	Redis string
	// Quality are the decision-quality options. Default: 10000 customers
	// (quick: 3000) over 56 days, a week of warm-up and seven of offers.
	Quality QualityOptions
	// Only, when set, runs just these parts: "api" (comparisons 1 and 2),
	// "freshness", "ingest", "quality", and writes their reports but not
	// README.md (the summary of a full run). Default: all.
	Only []string
	// Log receives progress lines. Default: io.Discard.
	Log io.Writer
	// Now is the wall clock. Default: time.Now.
	Now func() time.Time
}

// EnsureDefaults fills unset fields with their defaults.
func (o *CompareOptions) EnsureDefaults() {
	pick := func(full, quick int) int {
		if o.Quick {
			return quick
		}
		return full
	}
	if o.Out == "" {
		o.Out = filepath.Join("bench", "results")
	}
	if o.Customers == 0 {
		o.Customers = pick(50_000, 20_000)
	}
	if o.Rate == 0 {
		o.Rate = 10_000
	}
	if o.Duration == 0 {
		o.Duration = time.Duration(pick(10, 4)) * time.Second
	}
	if o.CapacityRate == 0 {
		o.CapacityRate = 150_000
	}
	if o.CapacityDuration == 0 {
		o.CapacityDuration = time.Duration(pick(5, 3)) * time.Second
	}
	if o.Connections == 0 {
		o.Connections = 64
	}
	if o.Rounds == 0 {
		o.Rounds = pick(3, 2)
	}
	if o.IngestRate == 0 {
		o.IngestRate = float64(pick(2000, 1000))
	}
	if o.FreshRate == 0 {
		o.FreshRate = 20_000
	}
	if o.FreshDuration == 0 {
		o.FreshDuration = time.Duration(pick(10, 3)) * time.Second
	}
	if o.IngestEvents == 0 {
		o.IngestEvents = pick(500_000, 100_000)
	}
	if o.Redis == "" {
		o.Redis = "auto"
	}
	if o.Quality.Customers == 0 {
		o.Quality.Customers = pick(10_000, 3000)
	}
	if o.Quality.Days == 0 {
		o.Quality.Days = 56
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports every problem with the options at once.
func (o *CompareOptions) Validate() error {
	var errs []error
	if o.Customers < 100 {
		errs = append(errs, fmt.Errorf("bench: %d customers is too few for the API comparisons; want at least 100", o.Customers))
	}
	if o.Rate <= 0 || o.CapacityRate <= 0 || o.IngestRate <= 0 || o.FreshRate <= 0 {
		errs = append(errs, errors.New("bench: rates must be positive"))
	}
	if o.Duration <= 0 || o.CapacityDuration <= 0 || o.FreshDuration <= 0 {
		errs = append(errs, errors.New("bench: durations must be positive"))
	}
	for _, p := range o.Only {
		if !slices.Contains([]string{"api", "freshness", "ingest", "quality"}, p) {
			errs = append(errs, fmt.Errorf("bench: unknown part %q; want api, freshness, ingest or quality", p))
		}
	}
	if o.Connections < 1 || o.Rounds < 1 || o.IngestEvents < 1000 {
		errs = append(errs, errors.New("bench: connections and rounds must be at least 1, ingest events at least 1000"))
	}
	return errors.Join(errs...)
}

// Verdict is one line of the summary: a measured ratio or figure against
// its target.
type Verdict struct {
	Comparison string
	Measure    string
	Value      float64
	Unit       string // "×", "ms", …
	Target     float64
	AtMost     bool // the target is an upper bound (latency); else a lower bound
	Skipped    string
	Detail     string
	File       string
}

// Met reports whether the value meets the target.
func (v Verdict) Met() bool {
	if v.Skipped != "" {
		return false
	}
	if v.AtMost {
		return v.Value <= v.Target
	}
	return v.Value >= v.Target
}

// Summary is what RunComparisons measured.
type Summary struct {
	Machine  Machine
	Quick    bool
	LoadAvg  [2]string // /proc/loadavg at the start and the end
	Verdicts []Verdict
	Took     time.Duration
	Notes    []string
}

// RunComparisons runs every comparison and writes the reports to opts.Out.
// A comparison that cannot run (Redis not installed) is skipped with its
// reason in the summary; any other failure is returned.
func RunComparisons(ctx context.Context, opts CompareOptions) (Summary, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return Summary{}, fmt.Errorf("running the comparisons: %w", err)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return Summary{}, fmt.Errorf("creating the results directory: %w", err)
	}
	started := opts.Now()
	sum := Summary{Machine: CurrentMachine(started), Quick: opts.Quick, LoadAvg: [2]string{loadAvg(), ""}}
	logf := func(format string, args ...any) { fmt.Fprintf(opts.Log, format+"\n", args...) }

	part := func(name string) bool { return len(opts.Only) == 0 || slices.Contains(opts.Only, name) }
	var fresh *freshResult
	if part("api") || part("freshness") {
		r, err := newRig(ctx, &opts, logf)
		if err != nil {
			return sum, err
		}
		defer r.close()
		sum.Notes = append(sum.Notes, r.notes...)
		if part("api") {
			api, err := r.apiRounds(ctx)
			if err != nil {
				return sum, err
			}
			sum.Verdicts = append(sum.Verdicts, api.verdicts(&opts, r.redisSkipped)...)
			if err := api.write(&opts, sum.Machine, r.redisSkipped); err != nil {
				return sum, err
			}
		}
		if part("freshness") {
			f, err := r.freshness(ctx)
			if err != nil {
				return sum, err
			}
			fresh = &f
		}
		r.close() // the API rig is done; free the CPU for what follows
	}
	var ing *ingestResult
	if part("ingest") {
		i, err := runIngestCompare(ctx, &opts, logf)
		if err != nil {
			return sum, err
		}
		ing = &i
	}
	if ing != nil || fresh != nil {
		sum.Verdicts = append(sum.Verdicts, ingestVerdicts(ing, fresh)...)
		if err := writeIngest(&opts, sum.Machine, ing, fresh); err != nil {
			return sum, err
		}
	}
	if part("quality") {
		logf("decision quality: %d customers over %d simulated days, %d policies", opts.Quality.Customers, opts.Quality.Days, len(QualityPolicies))
		q, err := RunQuality(ctx, opts.Quality)
		if err != nil {
			return sum, err
		}
		sum.Verdicts = append(sum.Verdicts, qualityVerdicts(q)...)
		if err := writeQualityFiles(&opts, sum.Machine, q); err != nil {
			return sum, err
		}
	}

	sum.Took = opts.Now().Sub(started)
	sum.LoadAvg[1] = loadAvg()
	if len(opts.Only) > 0 {
		// A partial run leaves the summary of the last full one alone.
		return sum, nil
	}
	if err := writeSummary(&opts, sum); err != nil {
		return sum, err
	}
	return sum, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// ---- the API rig: broker, store, ingest, two engines, two servers ----

// lookupPlacement routes a request on the engine's server to the bare
// lookup handler (the "cost of deciding" baseline).
const lookupPlacement = "bench_lookup"

type rig struct {
	opts  *CompareOptions
	logf  func(string, ...any)
	dir   string
	notes []string

	emb      *kafka.Embedded
	brokers  []string
	sim      *Simulator
	store    *features.Store
	producer *kafka.Producer
	cons     *kafka.Consumer
	dlq      *kafka.DeadLetters
	loop     *ingest.Loop
	hook     atomic.Pointer[func(*features.Event)]

	redisSrv     *RedisServer
	redis        *RedisViews
	redisSkipped string
	mat          chan features.Key
	matOn        atomic.Bool // materialise only while the API comparisons run
	matDropped   atomic.Int64

	srvMem, srvRedis *api.Server
	engMem, engRedis *engine.Engine
	key              string
	bodies           [][]byte // request bodies (decide), one per customer
	lookups          [][]byte
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	closed           bool
}

func newRig(ctx context.Context, opts *CompareOptions, logf func(string, ...any)) (*rig, error) {
	dir, err := os.MkdirTemp("", "nbo-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating a work directory: %w", err)
	}
	r := &rig{opts: opts, logf: logf, dir: dir}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))

	now := opts.Now()
	const days = 28
	r.sim, err = New(Options{Seed: 1, Customers: opts.Customers, Start: now.Add(-days * 24 * time.Hour), Days: days})
	if err != nil {
		return nil, err
	}
	r.store, err = features.NewStore(features.Options{})
	if err != nil {
		return nil, err
	}
	// History: the first 18 days applied straight to the store (fast); the
	// last 10 are streamed through Kafka during the runs.
	logf("preloading %d customers' first 18 simulated days into the store", opts.Customers)
	until := now.Add(-10 * 24 * time.Hour).UnixMilli()
	var ev features.Event
	var preloaded int
	for r.sim.Now() < until && r.sim.Next(&ev) {
		if _, rej := r.store.Apply(&ev); rej == nil {
			preloaded++
		}
	}
	r.notes = append(r.notes, fmt.Sprintf("API rig: %d simulated customers, %d events of history (18 simulated days) preloaded with Store.Apply; the following simulated days stream through the embedded broker during the runs.", opts.Customers, preloaded))

	// Broker, topics, ingest loop.
	r.emb, err = kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "kafka"), Partitions: 4})
	if err != nil {
		return nil, fmt.Errorf("starting the embedded broker: %w", err)
	}
	r.brokers = r.emb.Addrs()
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	err = kafka.EnsureTopics(tctx, r.brokers, kafka.Topics(4))
	tcancel()
	if err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	// The load's producer sends a few events per call, thousands of calls a
	// second: kafka-go allocates room for BatchSize messages per partition
	// batch, so the default (100, sized for bulk HTTP ingest) would make
	// the load generator itself the largest source of garbage in the
	// process.
	if r.producer, err = kafka.NewProducer(kafka.ProducerOptions{Brokers: r.brokers, Topic: kafka.TopicEvents, BatchSize: 16}); err != nil {
		return nil, err
	}
	if r.cons, err = kafka.NewConsumer(kafka.ConsumerOptions{Brokers: r.brokers, Topic: kafka.TopicEvents, GroupID: "nbo-bench"}); err != nil {
		return nil, err
	}
	if r.dlq, err = kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: r.brokers, Topic: kafka.TopicEventsDLQ}); err != nil {
		return nil, err
	}

	set, err := scenarios.Load(scenarios.Builtin(), now)
	if err != nil {
		return nil, fmt.Errorf("loading the built-in scenarios: %w", err)
	}
	newEngine := func(views func(*features.IDs, int64, *features.View) bool) (*engine.Engine, error) {
		b := engine.NewBudgets()
		b.SetCatalog(set)
		pol, err := engine.NewPolicy(engine.PolicyOptions{})
		if err != nil {
			return nil, err
		}
		return engine.New(engine.Options{
			Store: r.store, Scenarios: func() *scenarios.Set { return set }, Budgets: b, Policy: pol,
			Explorer: &engine.BanditExplorer{Bandit: models.NewBandit()}, Views: views,
		})
	}
	engMem, err := newEngine(nil)
	if err != nil {
		return nil, err
	}
	r.engMem = engMem

	// Redis, materialised from the store.
	switch opts.Redis {
	case "off":
		r.redisSkipped = "turned off (--redis off)"
	case "auto":
		r.redisSrv, err = StartRedis(ctx, filepath.Join(dir, "redis"))
		if err != nil {
			r.redisSkipped = "redis-server could not be started (" + err.Error() + "); `make bench` installs it with apt-get"
			err = nil
		}
	}
	if r.redisSkipped == "" {
		addr := opts.Redis
		if r.redisSrv != nil {
			addr = r.redisSrv.Addr
		}
		r.redis = NewRedisViews(addr, 0)
		if err := r.redis.Ping(ctx); err != nil {
			r.redisSkipped = err.Error()
			r.redis.Close()
			r.redis = nil
		}
	}
	var engRedis *engine.Engine
	if r.redis != nil {
		if engRedis, err = newEngine(r.redis.View); err != nil {
			return nil, err
		}
		r.engRedis = engRedis
		r.mat = make(chan features.Key, 1<<16)
	}

	// The request mix: every known customer, by their canonical ID (so the
	// Redis hash key and the store agree).
	nowMs := now.UnixMilli()
	var v features.View
	var pending int
	for i := 0; i < opts.Customers; i++ {
		ids := r.sim.CustomerIDs(i)
		if !r.store.ViewAt(&ids, nowMs, &v) {
			continue
		}
		ns, val, ok := features.ParseKey(string(v.Customer))
		if !ok {
			continue
		}
		var one features.IDs
		one.Set(ns, val)
		ch := []string{"app", "app", "miniapp", "web"}[i%4]
		idsJSON, _ := json.Marshal(one)
		r.bodies = append(r.bodies, fmt.Appendf(nil, `{"ids":%s,"channel":%q,"limit":3,"locale":"en"}`, idsJSON, ch))
		r.lookups = append(r.lookups, fmt.Appendf(nil, `{"ids":%s,"channel":%q,"limit":3,"locale":"en","placement":%q}`, idsJSON, ch, lookupPlacement))
		if r.redis != nil {
			if err := r.redis.Put(ctx, &v, RedisKey(&one)); err != nil {
				return nil, err
			}
			pending++
		}
	}
	if len(r.bodies) == 0 {
		return nil, errors.New("bench: the simulated history left no known customer to ask about")
	}
	if r.redis != nil {
		logf("materialised %d customers' 30-field hashes into Redis at %s", pending, r.redis.client.Options().Addr)
	}

	loop, err := ingest.New(ingest.Options{
		Store: r.store, Source: r.cons, DeadLetters: r.dlq,
		SnapshotPath: filepath.Join(dir, "state.snap"), SnapshotEvery: time.Minute,
		OnApplied: func(ev *features.Event, a features.Applied) {
			engMem.OnApplied(ev, a)
			if r.mat != nil && r.matOn.Load() {
				select {
				case r.mat <- a.Customer:
				default:
					r.matDropped.Add(1)
				}
			}
			if h := r.hook.Load(); h != nil {
				(*h)(ev)
			}
		},
		Logger: quiet,
	})
	if err != nil {
		return nil, err
	}
	r.loop = loop
	if err := loop.Restore(ctx); err != nil {
		return nil, err
	}
	r.wg.Go(func() { _ = loop.Run(runCtx) })
	if r.mat != nil {
		r.wg.Go(func() { r.materialise(runCtx) })
	}

	// Servers.
	path, key, err := api.GenerateKeyFile(dir)
	if err != nil {
		return nil, err
	}
	keys, err := api.LoadKeys(path)
	if err != nil {
		return nil, err
	}
	r.key = key
	var views sync.Pool
	views.New = func() any { return new(features.View) }
	lookup := func(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error) {
		v := views.Get().(*features.View)
		defer views.Put(v)
		now := time.Now().UnixMilli()
		d := &engine.Decision{DecisionID: "lookup", Group: engine.GroupTreatment, Offers: []engine.OfferResult{}}
		if r.store.ViewAt(&req.IDs, now, v) {
			d.Customer = string(v.Customer)
			if v.NewestTS > 0 {
				d.NewestEventTS = time.UnixMilli(v.NewestTS).UTC()
			}
		}
		return d, nil
	}
	apiOpts := func(d api.Decider) api.Options {
		return api.Options{Addr: "127.0.0.1:0", Keys: keys, RateLimit: 1e9, Logger: quiet, Decider: d}
	}
	r.srvMem, err = api.New(apiOpts(api.DeciderFunc(func(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error) {
		if req.Placement == lookupPlacement {
			return lookup(ctx, req)
		}
		return engMem.Decide(ctx, req)
	})))
	if err != nil {
		return nil, err
	}
	r.wg.Go(func() { _ = r.srvMem.Serve(runCtx) })
	if engRedis != nil {
		if r.srvRedis, err = api.New(apiOpts(engRedis)); err != nil {
			return nil, err
		}
		r.wg.Go(func() { _ = r.srvRedis.Serve(runCtx) })
	}
	ok = true
	return r, nil
}

// materialise keeps Redis up to date with ingest, as a Feast stream
// materialiser would: each applied event rewrites its customer's hash.
func (r *rig) materialise(ctx context.Context) {
	var v features.View
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-r.mat:
			if r.store.ViewKey(k, time.Now().UnixMilli(), &v) {
				_ = r.redis.Put(ctx, &v, "nbo:v:"+string(k))
			}
		}
	}
}

func (r *rig) close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	for _, c := range []io.Closer{r.producer, r.cons, r.dlq} {
		if c != nil && !isNilCloser(c) {
			_ = c.Close()
		}
	}
	if r.redis != nil {
		_ = r.redis.Close()
	}
	r.redisSrv.Stop()
	if r.emb != nil {
		_ = r.emb.Close()
	}
	_ = os.RemoveAll(r.dir)
}

func isNilCloser(c io.Closer) bool {
	switch x := c.(type) {
	case *kafka.Producer:
		return x == nil
	case *kafka.Consumer:
		return x == nil
	case *kafka.DeadLetters:
		return x == nil
	}
	return false
}

// feed streams the simulator's next events into nbo.events at rate per
// second until ctx ends or the simulation does; it returns the count.
func (r *rig) feed(ctx context.Context, rate float64) int64 {
	const tick = 10 * time.Millisecond
	per := rate * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	var sent int64
	var owed float64
	var ev features.Event
	msgs := make([]kafka.Message, 0, int(per)+1)
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-t.C:
		}
		owed += per
		msgs = msgs[:0]
		for owed >= 1 {
			if !r.sim.Next(&ev) {
				return sent
			}
			msgs = append(msgs, eventMessage(r.sim, &ev))
			owed--
		}
		if err := r.producer.Produce(ctx, msgs); err == nil {
			sent += int64(len(msgs))
		}
	}
}

// eventMessage keys an event by its simulated customer, so all of one
// customer's events share a partition whichever identifiers they carry
// (DESIGN: events are partitioned by customer), and a replay that reads one
// partition ahead of another cannot make a customer's events late.
func eventMessage(sim *Simulator, ev *features.Event) kafka.Message {
	if idx, ok := sim.CustomerIndex(ev.IDs); ok {
		return kafka.Message{Key: strconv.AppendInt([]byte("customer-"), int64(idx), 10), Value: features.EncodeEvent(nil, ev)}
	}
	return kafka.Message{Key: []byte(ev.IDs.BestKey()), Value: features.EncodeEvent(nil, ev)}
}

// ---- a small keep-alive HTTP/1.1 load client ----

// httpTarget sends pre-built POST requests over keep-alive connections.
// It is deliberately minimal (a write and a Content-Length read per
// request) so the load generator, which shares the machine with the
// servers, costs as little CPU as possible.
type httpTarget struct {
	name  string
	addr  string
	reqs  [][]byte
	next  atomic.Uint64
	conns chan *httpConn
}

type httpConn struct {
	c net.Conn
	r *bufio.Reader
}

func newHTTPTarget(name, addr, path, key string, bodies [][]byte, conns int) *httpTarget {
	t := &httpTarget{name: name, addr: addr, conns: make(chan *httpConn, conns)}
	for _, b := range bodies {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, addr, key, len(b))
		buf.Write(b)
		t.reqs = append(t.reqs, buf.Bytes())
	}
	return t
}

func (t *httpTarget) close() {
	for {
		select {
		case c := <-t.conns:
			c.c.Close()
		default:
			return
		}
	}
}

// do sends the next request and reads the answer; a non-200 is an error.
func (t *httpTarget) do(ctx context.Context) error {
	var hc *httpConn
	select {
	case hc = <-t.conns:
	default:
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return err
		}
		hc = &httpConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = hc.c.SetDeadline(dl)
	}
	req := t.reqs[t.next.Add(1)%uint64(len(t.reqs))]
	status, err := t.roundTrip(hc, req)
	if err != nil {
		hc.c.Close()
		return err
	}
	select {
	case t.conns <- hc:
	default:
		hc.c.Close()
	}
	if status != 200 {
		return fmt.Errorf("HTTP %d from %s", status, t.name)
	}
	return nil
}

func (t *httpTarget) roundTrip(hc *httpConn, req []byte) (int, error) {
	if _, err := hc.c.Write(req); err != nil {
		return 0, err
	}
	line, err := hc.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := hc.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		name, val, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(val))); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, errors.New("chunked answers are not supported by the bench client")
		}
	}
	if length < 0 {
		return 0, errors.New("answer without Content-Length")
	}
	if _, err := hc.r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

// ---- comparisons 1 and 2: the offer API vs Redis and vs a bare lookup ----

// variant names.
const (
	variantEngine = "offer API (in-memory store)"
	variantRedis  = "same pipeline, features from Redis"
	variantLookup = "bare lookup handler"
)

type apiResults struct {
	fixed    map[string][]Report // by variant, one per round
	capacity map[string][]Report
	order    []string
	ingested int64
	dropped  int64
	rounds   int
	// fallbacks is the share of decisions answered with fallback offers,
	// per engine (how much deciding each side did); emptyMem the share of
	// the in-memory side's that served no offer.
	fallbacksMem, fallbacksRedis, emptyMem float64
}

func (r *rig) apiRounds(ctx context.Context) (*apiResults, error) {
	o := r.opts
	targets := []*httpTarget{newHTTPTarget(variantEngine, r.srvMem.Addr(), "/v1/decide", r.key, r.bodies, o.Connections)}
	if r.srvRedis != nil {
		targets = append(targets, newHTTPTarget(variantRedis, r.srvRedis.Addr(), "/v1/decide", r.key, r.bodies, o.Connections))
	}
	targets = append(targets, newHTTPTarget(variantLookup, r.srvMem.Addr(), "/v1/decide", r.key, r.lookups, o.Connections))
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	res := &apiResults{fixed: map[string][]Report{}, capacity: map[string][]Report{}, rounds: o.Rounds}
	for _, t := range targets {
		res.order = append(res.order, t.name)
		if err := t.do(ctx); err != nil {
			return nil, fmt.Errorf("checking %s at %s: %w", t.name, t.addr, err)
		}
	}

	r.matOn.Store(true)
	defer r.matOn.Store(false)
	fctx, stopFeed := context.WithCancel(ctx)
	var fed atomic.Int64
	var fwg sync.WaitGroup
	fwg.Go(func() { fed.Store(r.feed(fctx, o.IngestRate)) })
	defer func() { stopFeed(); fwg.Wait() }()

	for round := 1; round <= o.Rounds; round++ {
		// Rotate who goes first, and start each run from a collected heap,
		// so neither warm-up effects nor the previous run's garbage land on
		// one variant only.
		order := append(slices.Clone(targets[(round-1)%len(targets):]), targets[:(round-1)%len(targets)]...)
		for _, t := range order {
			runtime.GC()
			r.logf("round %d/%d: %s at %.0f requests/s for %v (ingest %.0f events/s)", round, o.Rounds, t.name, o.Rate, o.Duration, o.IngestRate)
			rep, err := RunLoad(ctx, LoadOptions{Name: fmt.Sprintf("%s, round %d", t.name, round), Rate: o.Rate, Duration: o.Duration, Warmup: time.Second, Connections: o.Connections}, t.do)
			if err != nil {
				return nil, err
			}
			res.fixed[t.name] = append(res.fixed[t.name], rep)
		}
		for _, t := range order {
			runtime.GC()
			r.logf("round %d/%d: %s throughput (offered %.0f/s for %v)", round, o.Rounds, t.name, o.CapacityRate, o.CapacityDuration)
			rep, err := RunLoad(ctx, LoadOptions{Name: fmt.Sprintf("%s, round %d", t.name, round), Rate: o.CapacityRate, Duration: o.CapacityDuration, Connections: o.Connections, Drain: time.Millisecond}, t.do)
			if err != nil {
				return nil, err
			}
			r.logf("  %.0f requests/s", rep.Throughput)
			res.capacity[t.name] = append(res.capacity[t.name], rep)
		}
	}
	stopFeed()
	fwg.Wait()
	res.ingested = fed.Load()
	res.dropped = r.matDropped.Load()
	share := func(e *engine.Engine) float64 {
		if e == nil {
			return 0
		}
		c := e.Counters()
		return ratio(float64(c.Fallbacks), float64(c.Decisions))
	}
	res.fallbacksMem, res.fallbacksRedis = share(r.engMem), share(r.engRedis)
	c := r.engMem.Counters()
	res.emptyMem = ratio(float64(c.Empty), float64(c.Decisions))
	return res, nil
}

// median of f over reports.
func median(reps []Report, f func(*Report) float64) float64 {
	if len(reps) == 0 {
		return 0
	}
	xs := make([]float64, len(reps))
	for i := range reps {
		xs[i] = f(&reps[i])
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func throughputOf(r *Report) float64 { return r.Throughput }
func p99Of(r *Report) float64        { return float64(r.P99) / float64(time.Millisecond) }

func (a *apiResults) verdicts(o *CompareOptions, redisSkipped string) []Verdict {
	capE := median(a.capacity[variantEngine], throughputOf)
	var out []Verdict
	if redisSkipped != "" {
		out = append(out,
			Verdict{Comparison: "1. offer API vs Redis features", Measure: "throughput ratio", Unit: "×", Target: 2.5, Skipped: redisSkipped, File: "redis.md"},
			Verdict{Comparison: "1. offer API vs Redis features", Measure: fmt.Sprintf("p99 at %.0fk/s, Redis minus in-memory", o.Rate/1000), Unit: "ms", Target: 0, Skipped: redisSkipped, File: "redis.md"})
	} else {
		capR := median(a.capacity[variantRedis], throughputOf)
		p99E, p99R := median(a.fixed[variantEngine], p99Of), median(a.fixed[variantRedis], p99Of)
		out = append(out,
			Verdict{Comparison: "1. offer API vs Redis features", Measure: "throughput ratio", Value: ratio(capE, capR), Unit: "×", Target: 2.5,
				Detail: fmt.Sprintf("%.0f vs %.0f requests/s", capE, capR), File: "redis.md"},
			Verdict{Comparison: "1. offer API vs Redis features", Measure: fmt.Sprintf("p99 at %.0fk/s: Redis minus in-memory (must be > 0)", o.Rate/1000), Value: p99R - p99E, Unit: "ms", Target: 0,
				Detail: fmt.Sprintf("p99 %.2f ms vs %.2f ms", p99E, p99R), File: "redis.md"})
		// "lower p99" is a strict inequality; express it as Redis − engine > 0.
		out[len(out)-1].Target = 1e-9
	}
	capL := median(a.capacity[variantLookup], throughputOf)
	out = append(out, Verdict{Comparison: "2. offer API vs bare lookup", Measure: "throughput ratio", Value: ratio(capE, capL), Unit: "×", Target: 0.8,
		Detail: fmt.Sprintf("%.0f vs %.0f requests/s", capE, capL), File: "lookup.md"})
	return out
}

// cappedShare is the share of the offered rate at which a throughput run
// counts as capped by the load generator rather than by the server.
const cappedShare = 0.95

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func (a *apiResults) write(o *CompareOptions, m Machine, redisSkipped string) error {
	common := fmt.Sprintf(`Setup: one process on loopback. The servers are the real HTTP API (engine/api on hertz) with the
real engine (built-in scenarios, Thompson-sampling bandit, 5%% holdout, contact policy and budgets;
no decision cache and no decision log on either side, so each request runs the whole pipeline).
The load generator is bench.RunLoad, open loop (latency from each request's scheduled send time),
over %d keep-alive connections with a minimal HTTP/1.1 client, asking for 3 offers for a random
known customer (app, mini-program or web). Meanwhile the simulated retailer's next days of events
streams through the embedded Kafka-protocol broker into the store at %.0f events/s (%d events during
the runs). Each round runs every variant at %.0f requests/s for %v (after a 1 s warm-up), then at an
offered %.0f requests/s for %v to measure throughput (what completes when the server is saturated).
%d round(s), variants alternated so the shared machine's load falls on each; ratios use the medians.
`, o.Connections, o.IngestRate, a.ingested, o.Rate, o.Duration, o.CapacityRate, o.CapacityDuration, a.rounds)

	section := func(b *strings.Builder, names []string, file string) error {
		var fixed, capacity []Report
		for _, n := range names {
			fixed = append(fixed, a.fixed[n]...)
			capacity = append(capacity, a.capacity[n]...)
		}
		if err := WriteMarkdown(b, fmt.Sprintf("Latency at a fixed %.0f requests/s", o.Rate), m, fixed); err != nil {
			return err
		}
		b.WriteString("\n")
		if err := WriteMarkdown(b, "Throughput (offered far above capacity)", m, capacity); err != nil {
			return err
		}
		b.WriteString("\n(In the throughput runs latency includes the queue the overload builds; only achieved rps matters there.)\n\n")
		for _, r := range capacity {
			if r.Throughput >= cappedShare*o.CapacityRate {
				fmt.Fprintf(b, "**Capped:** %s completed %.0f of the %.0f requests/s offered, so its throughput is the load generator's, not the server's, and a ratio with it understates the gap; offer more (CompareOptions.CapacityRate).\n\n", r.Name, r.Throughput, o.CapacityRate)
			}
		}
		base := strings.TrimSuffix(file, ".md")
		lastRound := func(reps map[string][]Report) []Report {
			var out []Report
			for _, n := range names {
				if rs := reps[n]; len(rs) > 0 {
					r := rs[len(rs)-1]
					r.Name = n
					out = append(out, r)
				}
			}
			return out
		}
		var charts []string
		if err := latencyChart(filepath.Join(o.Out, base+"-latency.png"), fmt.Sprintf("Latency percentiles at %.0f requests/s", o.Rate), lastRound(a.fixed)); err == nil {
			charts = append(charts, fmt.Sprintf("![latency percentiles](%s-latency.png)", base))
		}
		if err := timelineChart(filepath.Join(o.Out, base+"-timeline.png"), fmt.Sprintf("Completed requests per second at %.0f/s offered", o.Rate), lastRound(a.fixed)); err == nil {
			charts = append(charts, fmt.Sprintf("![throughput over time](%s-timeline.png)", base))
		}
		var labels []string
		var vals []float64
		for _, n := range names {
			labels = append(labels, shortName(n))
			vals = append(vals, median(a.capacity[n], throughputOf))
		}
		if err := barChart(filepath.Join(o.Out, base+"-throughput.png"), "Throughput, requests/s (median of rounds)", labels, vals); err == nil {
			charts = append(charts, fmt.Sprintf("![throughput](%s-throughput.png)", base))
		}
		b.WriteString(strings.Join(charts, "\n") + "\n")
		return nil
	}

	// redis.md
	var b strings.Builder
	b.WriteString("# Offer API vs the same pipeline over Redis features\n\n")
	if redisSkipped != "" {
		fmt.Fprintf(&b, "**Skipped:** %s\n", redisSkipped)
	} else {
		capE, capR := median(a.capacity[variantEngine], throughputOf), median(a.capacity[variantRedis], throughputOf)
		p99E, p99R := median(a.fixed[variantEngine], p99Of), median(a.fixed[variantRedis], p99Of)
		fmt.Fprintf(&b, "**Throughput: %.2f× (target ≥ 2.5×); p99 at %.0f/s: %.2f ms vs %.2f ms (target: lower).**\n\n", ratio(capE, capR), o.Rate, p99E, p99R)
		b.WriteString(common)
		fmt.Fprintf(&b, `
The Redis variant is the usual Feast-style online store: one 30-field hash per customer
(bench.RedisFields), one HGETALL per request through go-redis v9 (pool of 10 connections per CPU), the
View built from the hash (bench.DecodeViewHash), then the same engine pipeline. Redis runs on
loopback with persistence off. Hashes are materialised from the store before the runs and rewritten
for each customer an ingested event touches, as a stream materialiser would (%d rewrites dropped
because the materialiser fell behind). A View decoded from the hash has only those 30 fields, so
scenarios that read other features (carts, recent events, per-category windows) fire less often on
that side (%.0f%% of its decisions were answered with fallback offers against %.0f%% with the
in-memory store): if anything this flatters Redis. redis-server shares the two cores with the
servers and the load generator, as it would share a host's CPU budget.

`, a.dropped, 100*a.fallbacksRedis, 100*a.fallbacksMem)
		if err := section(&b, []string{variantEngine, variantRedis}, "redis.md"); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(o.Out, "redis.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing redis.md: %w", err)
	}

	// lookup.md
	b.Reset()
	capE, capL := median(a.capacity[variantEngine], throughputOf), median(a.capacity[variantLookup], throughputOf)
	b.WriteString("# Offer API vs a bare lookup handler (the cost of deciding)\n\n")
	fmt.Fprintf(&b, "**Throughput: %.2f× the bare lookup's (target ≥ 0.8×).**\n\n", ratio(capE, capL))
	b.WriteString(common)
	b.WriteString(`
The bare lookup runs on the same server, behind the same HTTP layer, authentication, validation and
encoder: it resolves the customer, reads the View from the in-memory store and answers with the
customer key and the newest event's time and no offers. Everything else the offer API does
(scenarios, eligibility, contact policy, budgets, scoring, bandit, reasons) is the cost of deciding.
`)
	fmt.Fprintf(&b, `Note: %.0f%% of the offer API's decisions served no scenario's offer, and %.0f%% served no offer at
all. The request mix asks about each simulated customer every few seconds, so the app's contact cap
(10 a day) and the offers' own caps and cooldowns soon refuse every offer; such a decision asks the
contact policy about each offer with one ledger read, evaluates only the scenarios with an offer
left, and draws nothing. A real customer base is far larger per request, so real decisions fire
more scenarios and cost more than measured here: see BenchmarkDecideDefaultPolicy (every decision
serves) against BenchmarkDecideAtTheCap in bench/results/go-bench.txt.

`, 100*a.fallbacksMem, 100*a.emptyMem)
	if err := section(&b, []string{variantEngine, variantLookup}, "lookup.md"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "lookup.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing lookup.md: %w", err)
	}
	return nil
}

func shortName(variant string) string {
	switch variant {
	case variantEngine:
		return "offer API"
	case variantRedis:
		return "Redis features"
	case variantLookup:
		return "bare lookup"
	}
	return variant
}

// ---- comparison 3: freshness while serving, and ingest vs raw reads ----

type freshResult struct {
	produced       int
	applied        int
	rate           float64 // achieved produce rate
	p50, p99, p999 float64 // ms, produce → applied
	max            float64
	ackP99         float64
	schedP99       float64
	windows        []float64 // p99 ms per 100 ms of producing
	windowMax      []float64
	api            Report
	missing        int
	rejected       int
	gcCycles       uint64  // garbage collections that ran while producing
	allocRate      float64 // heap bytes allocated per second while producing
	liveHeap       float64 // bytes live after the collection before the run
}

// freshness produces paced events at FreshRate for FreshDuration while the
// offer API serves Rate requests per second, and measures each event's
// time from the Produce call to the ingest loop having applied it.
func (r *rig) freshness(ctx context.Context) (freshResult, error) {
	o := r.opts
	// The first second is a warm-up at the same rate (the producer's
	// connections, the consumer's fetch sizes); it is not recorded.
	warm := int(o.FreshRate)
	n := warm + int(o.FreshRate*o.FreshDuration.Seconds())
	msgs := make([]kafka.Message, 0, n)
	var ev features.Event
	for len(msgs) < n && r.sim.Next(&ev) {
		ev.ID = "fr-" + strconv.Itoa(len(msgs))
		msgs = append(msgs, eventMessage(r.sim, &ev))
	}
	n = len(msgs)
	if n < warm+1000 {
		return freshResult{}, fmt.Errorf("bench: the simulation ran out of events for the freshness run (%d left)", n)
	}
	rejectedBefore := r.loop.Stats().Rejected
	// Start from a collected heap, as the API runs do: the rig's set-up
	// (history, Redis materialisation) leaves garbage whose collection
	// would otherwise land in this window only. Collections the run's own
	// allocation causes still happen, and are counted in the report.
	runtime.GC()
	gcBefore, allocBefore, live := gcCycles(), heapAllocated(), heapLive()
	epoch := time.Now()
	since := func() int64 { return int64(time.Since(epoch)) }
	producedAt, ackedAt, appliedAt := make([]int64, n), make([]int64, n), make([]int64, n)
	var applied atomic.Int64
	all := make(chan struct{})
	hook := func(ev *features.Event) {
		if !strings.HasPrefix(ev.ID, "fr-") {
			return
		}
		i, err := strconv.Atoi(ev.ID[3:])
		if err != nil || i >= n || appliedAt[i] != 0 {
			return
		}
		appliedAt[i] = since()
		if applied.Add(1) == int64(n) {
			close(all)
		}
	}
	r.hook.Store(&hook)
	defer r.hook.Store(nil)

	target := newHTTPTarget(variantEngine, r.srvMem.Addr(), "/v1/decide", r.key, r.bodies, o.Connections)
	defer target.close()
	var apiRep Report
	var apiErr error
	var lwg sync.WaitGroup
	lwg.Go(func() {
		apiRep, apiErr = RunLoad(ctx, LoadOptions{Name: fmt.Sprintf("offer API during freshness, %.0f/s", o.Rate), Rate: o.Rate, Duration: o.FreshDuration + time.Second, Connections: o.Connections}, target.do)
	})
	r.logf("freshness: producing %d events at %.0f/s while the offer API serves %.0f requests/s", n, o.FreshRate, o.Rate)
	if !sleepUntil(ctx, 500*time.Millisecond) {
		return freshResult{}, ctx.Err()
	}

	type batch struct{ from, to int }
	work := make(chan batch, 4096)
	var pwg sync.WaitGroup
	var produceErr atomic.Pointer[error]
	for range 8 {
		pwg.Go(func() {
			for bt := range work {
				if err := r.producer.Produce(ctx, msgs[bt.from:bt.to]); err != nil {
					produceErr.Store(&err)
				}
				t := since()
				for i := bt.from; i < bt.to; i++ {
					ackedAt[i] = t
				}
			}
		})
	}
	start := since()
	interval := float64(time.Second) / o.FreshRate
	for sent := 0; sent < n; {
		due := min(n, int(float64(since()-start)/interval)+1)
		if due > sent {
			t := since()
			for i := sent; i < due; i++ {
				producedAt[i] = t
			}
			work <- batch{sent, due}
			sent = due
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(work)
	pwg.Wait()
	producedEnd := since()
	gcDuring := gcCycles() - gcBefore
	allocRate := float64(heapAllocated()-allocBefore) / time.Since(epoch).Seconds()
	if perr := produceErr.Load(); perr != nil {
		return freshResult{}, fmt.Errorf("producing the freshness events: %w", *perr)
	}
	// Wait until every event is applied or rejected (the simulator's
	// stream has a few events the store refuses, such as late ones).
	missing := 0
	deadline := time.Now().Add(30 * time.Second)
wait:
	for {
		select {
		case <-all:
			break wait
		case <-ctx.Done():
			return freshResult{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		rejected := r.loop.Stats().Rejected - rejectedBefore
		if applied.Load()+rejected >= int64(n) {
			break wait
		}
		if time.Now().After(deadline) {
			missing = n - int(applied.Load()+rejected)
			break wait
		}
	}
	rejected := int(r.loop.Stats().Rejected - rejectedBefore)
	lwg.Wait()
	if apiErr != nil {
		return freshResult{}, apiErr
	}

	res := freshResult{produced: n - warm, applied: int(applied.Load()), rejected: rejected, missing: missing, api: apiRep, gcCycles: gcDuring, allocRate: allocRate, liveHeap: live}
	res.rate = float64(n-warm) / (float64(producedEnd-producedAt[warm]) / 1e9)
	h := hdrhistogram.New(1, 60_000_000, 3)
	acks := hdrhistogram.New(1, 60_000_000, 3)
	sched := hdrhistogram.New(1, 60_000_000, 3)
	win := hdrhistogram.New(1, 60_000_000, 3)
	winStart := producedAt[warm]
	flush := func() {
		if win.TotalCount() > 0 {
			res.windows = append(res.windows, float64(win.ValueAtQuantile(99))/1000)
			res.windowMax = append(res.windowMax, float64(win.Max())/1000)
		}
		win.Reset()
	}
	for i := warm; i < n; i++ {
		if appliedAt[i] == 0 {
			continue
		}
		us := max(1, (appliedAt[i]-producedAt[i])/1000)
		_ = h.RecordValue(us)
		_ = acks.RecordValue(max(1, (ackedAt[i]-producedAt[i])/1000))
		_ = sched.RecordValue(max(1, (appliedAt[i]-(start+int64(float64(i)*interval)))/1000))
		for producedAt[i]-winStart >= int64(100*time.Millisecond) {
			flush()
			winStart += int64(100 * time.Millisecond)
		}
		_ = win.RecordValue(us)
	}
	flush()
	ms := func(h *hdrhistogram.Histogram, q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	res.p50, res.p99, res.p999, res.max = ms(h, 50), ms(h, 99), ms(h, 99.9), float64(h.Max())/1000
	res.ackP99, res.schedP99 = ms(acks, 99), ms(sched, 99)
	return res, nil
}

func sleepUntil(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

type ingestResult struct {
	events          int
	bytes           int64
	rawRate, rawCPU float64 // records/s, records per CPU-second
	loopRate        float64
	loopCPU         float64
	rejected        int64
	produceRate     float64
	// per round
	raw, rawCPUs, loop, loopCPUs []float64
}

const ingestTopic = "bench.ingest"

// runIngestCompare pre-produces IngestEvents simulated events to a topic
// of the embedded broker, then reads the whole log twice with fresh
// consumer groups: a raw loop over the kafka adapter's Consumer.Fetch (no
// decode, no apply), and the ingest Loop (fetch, decode, validate,
// identity, apply, OnApplied) into an empty store.
func runIngestCompare(ctx context.Context, o *CompareOptions, logf func(string, ...any)) (ingestResult, error) {
	dir, err := os.MkdirTemp("", "nbo-bench-ingest-")
	if err != nil {
		return ingestResult{}, err
	}
	defer os.RemoveAll(dir)
	emb, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "kafka"), Partitions: 4})
	if err != nil {
		return ingestResult{}, fmt.Errorf("starting the embedded broker: %w", err)
	}
	defer emb.Close()
	brokers := emb.Addrs()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = kafka.EnsureTopics(tctx, brokers, append(kafka.Topics(4), kafka.TopicSpec{Name: ingestTopic, Partitions: 4}))
	cancel()
	if err != nil {
		return ingestResult{}, fmt.Errorf("creating topics: %w", err)
	}

	// The log: a simulated retailer big enough for IngestEvents events.
	days := 28
	customers := max(1000, int(float64(o.IngestEvents)/(1.3*float64(days))))
	sim, err := New(Options{Seed: 2, Customers: customers, Start: o.Now().Add(-time.Duration(days) * 24 * time.Hour), Days: days})
	if err != nil {
		return ingestResult{}, err
	}
	msgs := make([]kafka.Message, 0, o.IngestEvents)
	var ev features.Event
	res := ingestResult{}
	for len(msgs) < o.IngestEvents && sim.Next(&ev) {
		m := eventMessage(sim, &ev)
		res.bytes += int64(len(m.Value))
		msgs = append(msgs, m)
	}
	n := len(msgs)
	res.events = n
	logf("ingest: producing %d simulated events to %s", n, ingestTopic)
	p, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: ingestTopic})
	if err != nil {
		return res, err
	}
	// One writer per partition, each in log order, so every customer's
	// events stay in time order (concurrent writers to one partition would
	// reorder them and the store would reject the late ones).
	const partitions, batch = 4, 5000
	byPart := make([][]kafka.Message, partitions)
	for _, m := range msgs {
		pt := kafka.PartitionOf(m.Key, partitions)
		byPart[pt] = append(byPart[pt], m)
	}
	start := time.Now()
	var pwg sync.WaitGroup
	var perr atomic.Pointer[error]
	for _, part := range byPart {
		pwg.Go(func() {
			for i := 0; i < len(part); i += batch {
				if err := p.Produce(ctx, part[i:min(i+batch, len(part))]); err != nil {
					perr.Store(&err)
					return
				}
			}
		})
	}
	pwg.Wait()
	p.Close()
	if e := perr.Load(); e != nil {
		return res, fmt.Errorf("producing the ingest log: %w", *e)
	}
	res.produceRate = float64(n) / time.Since(start).Seconds()
	msgs = nil

	for round := 1; round <= o.Rounds; round++ {
		logf("ingest round %d/%d: raw kafka-go read loop over %d records", round, o.Rounds, n)
		raw, rawCPU, err := rawReads(ctx, brokers, fmt.Sprintf("raw-%d", round), n)
		if err != nil {
			return res, err
		}
		logf("ingest round %d/%d: the ingest loop over the same %d records", round, o.Rounds, n)
		lr, lcpu, rejected, err := loopReads(ctx, brokers, fmt.Sprintf("loop-%d", round), filepath.Join(dir, fmt.Sprintf("state-%d.snap", round)), n)
		if err != nil {
			return res, err
		}
		logf("  raw %.0f/s, loop %.0f/s", raw, lr)
		res.raw, res.rawCPUs = append(res.raw, raw), append(res.rawCPUs, rawCPU)
		res.loop, res.loopCPUs = append(res.loop, lr), append(res.loopCPUs, lcpu)
		res.rejected = rejected
	}
	res.rawRate, res.rawCPU = medianOf(res.raw), medianOf(res.rawCPUs)
	res.loopRate, res.loopCPU = medianOf(res.loop), medianOf(res.loopCPUs)
	return res, nil
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// rawReads reads n records of the ingest topic with a fresh consumer
// group through the kafka adapter's Consumer.Fetch alone; it returns the
// rate from the first record to the last and the rate per CPU-second.
func rawReads(ctx context.Context, brokers []string, group string, n int) (rate, perCPU float64, err error) {
	c, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: ingestTopic, GroupID: group})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := c.Fetch(rctx); err != nil {
		return 0, 0, fmt.Errorf("raw read: %w", err)
	}
	first, firstCPU := time.Now(), cpuTime()
	for i := 1; i < n; i++ {
		if _, err := c.Fetch(rctx); err != nil {
			return 0, 0, fmt.Errorf("raw read of record %d of %d: %w", i, n, err)
		}
	}
	return float64(n-1) / time.Since(first).Seconds(), float64(n-1) / max((cpuTime()-firstCPU).Seconds(), 1e-9), nil
}

// loopReads runs the ingest Loop over n records of the ingest topic with
// a fresh consumer group into an empty store; it returns the rate from
// the first record handled (applied or rejected) to the last, the rate
// per CPU-second and the rejected count.
func loopReads(ctx context.Context, brokers []string, group, snapshot string, n int) (rate, perCPU float64, rejected int64, err error) {
	store, err := features.NewStore(features.Options{})
	if err != nil {
		return 0, 0, 0, err
	}
	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: ingestTopic, GroupID: group})
	if err != nil {
		return 0, 0, 0, err
	}
	defer cons.Close()
	dlq, err := kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEventsDLQ})
	if err != nil {
		return 0, 0, 0, err
	}
	defer dlq.Close()
	var handled atomic.Int64
	var firstAt time.Time
	var firstCPU, lastCPU time.Duration
	done := make(chan time.Time, 1)
	count := func() {
		switch handled.Add(1) {
		case 1:
			firstAt, firstCPU = time.Now(), cpuTime()
		case int64(n):
			lastCPU = cpuTime()
			done <- time.Now()
		}
	}
	loop, err := ingest.New(ingest.Options{
		Store: store, Source: cons, DeadLetters: dlq, Topic: ingestTopic,
		SnapshotPath: snapshot, SnapshotEvery: time.Hour,
		OnApplied:  func(*features.Event, features.Applied) { count() },
		OnRejected: func(features.Reason) { count() },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return 0, 0, 0, err
	}

	if err := loop.Restore(ctx); err != nil {
		return 0, 0, 0, err
	}
	lctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- loop.Run(lctx) }()
	select {
	case last := <-done:
		rate = float64(n-1) / last.Sub(firstAt).Seconds()
		perCPU = float64(n-1) / max((lastCPU-firstCPU).Seconds(), 1e-9)
	case err := <-errc:
		cancel()
		return 0, 0, 0, fmt.Errorf("the ingest loop stopped early: %w", err)
	case <-time.After(10 * time.Minute):
		cancel()
		<-errc
		return 0, 0, 0, fmt.Errorf("the ingest loop handled %d of %d records in 10 minutes", handled.Load(), n)
	}
	cancel()
	<-errc
	return rate, perCPU, loop.Stats().Rejected, nil
}

func ingestVerdicts(ing *ingestResult, fr *freshResult) []Verdict {
	var out []Verdict
	if ing != nil {
		out = append(out, Verdict{Comparison: "3. ingest vs raw kafka-go reads", Measure: "rate ratio", Value: ratio(ing.loopRate, ing.rawRate), Unit: "×", Target: 0.35,
			Detail: fmt.Sprintf("%.0f vs %.0f events/s", ing.loopRate, ing.rawRate), File: "ingest.md"})
	}
	if fr != nil {
		out = append(out, Verdict{Comparison: "3. freshness while serving", Measure: fmt.Sprintf("produce → applied p99 at %.0fk events/s", fr.rate/1000), Value: fr.p99, Unit: "ms", Target: 10, AtMost: true,
			Detail: fmt.Sprintf("p50 %.2f ms, max %.1f ms; API %.0f/s, p99 %s", fr.p50, fr.max, fr.api.Throughput, fmtLatency(fr.api.P99)), File: "ingest.md"})
	}
	return out
}

func writeIngest(o *CompareOptions, m Machine, ing *ingestResult, fr *freshResult) error {
	var b strings.Builder
	b.WriteString("# Ingest: the ingest loop vs raw kafka-go reads, and freshness while serving\n\n")
	fmt.Fprintf(&b, "%s\n\n", machineLine(m))
	if ing != nil {
		fmt.Fprintf(&b, "**Ingest rate: %.2f× the raw read rate (target ≥ 0.35×).**\n\n", ratio(ing.loopRate, ing.rawRate))
	}
	if fr != nil {
		fmt.Fprintf(&b, "**Freshness p99: %.2f ms at %.0f events/s while serving %.0f requests/s (target ≤ 10 ms).**\n\n", fr.p99, fr.rate, fr.api.Throughput)
	}
	if ing != nil {
		b.WriteString("## The ingest loop vs a raw read loop\n\n")
		fmt.Fprintf(&b, `%d simulated events (%.0f bytes each on average) were produced to a 4-partition topic of the embedded
Kafka-protocol broker (kfake, with a data directory, as `+"`nbo serve`"+` runs it; %.0f records/s acknowledged),
then read by fresh consumer groups, alternately, %d time(s) each: the kafka adapter's Consumer.Fetch alone
(kafka-go underneath, no decode, no apply) and the ingest Loop (fetch, decode and validate, identity,
dedup, apply to the store, OnApplied). Rates run from the first record to the last; the table gives
the medians. The broker, the client and the loop share the machine, so rates per CPU-second of the
whole process are given too.

| reader | records/s | records per CPU-second | rejected |
|---|---:|---:|---:|
| raw Consumer.Fetch | %.0f | %.0f | – |
| ingest loop | %.0f | %.0f | %d |
| **ratio** | **%.2f×** | **%.2f×** | |

Per round, raw / loop records/s: %s.

`, ing.events, float64(ing.bytes)/float64(max(ing.events, 1)), ing.produceRate, len(ing.raw), ing.rawRate, ing.rawCPU, ing.loopRate, ing.loopCPU, ing.rejected,
			ratio(ing.loopRate, ing.rawRate), ratio(ing.loopCPU, ing.rawCPU), perRound(ing.raw, ing.loop))
		if err := barChart(filepath.Join(o.Out, "ingest-rate.png"), "Records per second", []string{"raw Fetch", "ingest loop"}, []float64{ing.rawRate, ing.loopRate}); err == nil {
			b.WriteString("![ingest rate](ingest-rate.png)\n\n")
		}
	}
	if fr != nil {
		b.WriteString("## Freshness while serving\n\n")
		fmt.Fprintf(&b, `In the API rig (the store already holding weeks of history), %d simulated events were produced at
a fixed %.0f events/s (achieved %.0f/s; open loop: batches handed to 8 concurrent acknowledged Produce
calls every 200 µs whatever earlier ones took) while the offer API served %.0f requests/s. Freshness is
each event's time from its Produce call to the ingest loop having applied it (OnApplied, keyed by event
ID), when a decision would see it.

| | p50 | p99 | p99.9 | max |
|---|---:|---:|---:|---:|
| produce → applied | %.2f ms | **%.2f ms** | %.2f ms | %.1f ms |

From each event's scheduled produce time the p99 is %.2f ms; the producer's own Produce → acknowledged
p99 is %.2f ms. The first second of producing (%.0f events) warmed up the producer and the consumer
and is not recorded. %d events of the stream were rejected by the store (the simulator's late
events) and %d were neither applied nor rejected within 30 s of the last produce. The run started
from a collected heap (%.0f MB live); the whole process (server, broker, load generators) allocated
%.0f MB/s while producing, and %d garbage collection(s) ran in that time. GOGC is set as `+"`nbo serve`"+`
sets it (gc_percent 400), so at this allocation rate a collection comes about every %.0f s; on two
cores a collection's mark phase takes one of the two Ps for its duration, which is what the
freshness tail over a longer run is made of.

`, fr.produced, o.FreshRate, fr.rate, o.Rate, fr.p50, fr.p99, fr.p999, fr.max, fr.schedP99, fr.ackP99, o.FreshRate, fr.rejected, fr.missing, fr.liveHeap/1e6, fr.allocRate/1e6, fr.gcCycles, 4*fr.liveHeap/max(fr.allocRate, 1))
		if err := WriteMarkdown(&b, "The offer API during the freshness run", m, []Report{fr.api}); err != nil {
			return err
		}
		b.WriteString("\n")
		if err := freshnessChart(filepath.Join(o.Out, "freshness.png"), fr.windows, fr.windowMax); err == nil {
			b.WriteString("![freshness over time](freshness.png)\n")
		}
	}
	if err := os.WriteFile(filepath.Join(o.Out, "ingest.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing ingest.md: %w", err)
	}
	return nil
}

// ---- comparison 4: decision quality ----

func qualityVerdicts(q QualityReport) []Verdict {
	get := func(p string) int64 {
		r, _ := q.Result(p)
		return r.Card.NetRevenue()
	}
	return []Verdict{
		{Comparison: "4. decision quality", Measure: "net revenue vs random", Value: q.NetRatio(PolicyEngine, PolicyRandom), Unit: "×", Target: 1.5,
			Detail: fmt.Sprintf("%s vs %s; engine+model %.2f×; ceilings: the oracle %.2f×, the oracle without the per-customer taste %.2f×", yuan(get(PolicyEngine)), yuan(get(PolicyRandom)),
				q.NetRatio(PolicyEngineModel, PolicyRandom), q.NetRatio(PolicyOracle, PolicyRandom), q.NetRatio(PolicyOracleTraits, PolicyRandom)), File: "quality.md"},
		{Comparison: "4. decision quality", Measure: "net revenue vs oracle", Value: q.NetRatio(PolicyEngine, PolicyOracle), Unit: "×", Target: 0.8,
			Detail: fmt.Sprintf("%s vs %s; engine+model %.2f×, rules only %.2f×", yuan(get(PolicyEngine)), yuan(get(PolicyOracle)), q.NetRatio(PolicyEngineModel, PolicyOracle), q.NetRatio(PolicyRules, PolicyOracle)), File: "quality.md"},
	}
}

func writeQualityFiles(o *CompareOptions, m Machine, q QualityReport) error {
	var b strings.Builder
	b.WriteString("# Decision quality\n\n")
	fmt.Fprintf(&b, "**Engine net revenue: %.2f× random (target ≥ 1.5×), %.2f× the oracle (target ≥ 0.8×).**\n\n",
		q.NetRatio(PolicyEngine, PolicyRandom), q.NetRatio(PolicyEngine, PolicyOracle))
	if o, t := q.NetRatio(PolicyOracle, PolicyRandom), q.NetRatio(PolicyOracleTraits, PolicyRandom); o > 0 && t > 0 {
		fmt.Fprintf(&b, "In this simulated world the oracle itself makes %.2f× random's net revenue, and an oracle that knows every trait but the per-customer taste %.2f×: a policy that learns from behaviour would need %.0f%% of the oracle to make 1.5× random.\n\n",
			o, t, 100*1.5/o)
	}
	if err := WriteQuality(&b, m, q); err != nil {
		return err
	}
	var labels []string
	var vals []float64
	for _, r := range q.Results {
		labels = append(labels, r.Card.Policy)
		vals = append(vals, float64(r.Card.NetRevenue())/100)
	}
	if err := barChart(filepath.Join(o.Out, "quality.png"), "Net revenue, ¥ (revenue from redemptions − offer cost)", labels, vals); err == nil {
		b.WriteString("\n![net revenue by policy](quality.png)\n")
	}
	if err := weeksChart(filepath.Join(o.Out, "quality-weeks.png"), q); err == nil {
		b.WriteString("\n![net revenue over the oracle's, week by week](quality-weeks.png)\n")
	}
	if err := os.WriteFile(filepath.Join(o.Out, "quality.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing quality.md: %w", err)
	}
	return nil
}

// ---- the summary ----

func writeSummary(o *CompareOptions, s Summary) error {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	kind := "full run (`make bench`)"
	if s.Quick {
		kind = "quick run (`make bench-quick`): short runs, fewer customers — indicative only"
	}
	fmt.Fprintf(&b, "Written by `nbo bench`; %s, took %v.\n\n", kind, s.Took.Round(time.Second))
	fmt.Fprintf(&b, "%s\n\n", machineLine(s.Machine))
	fmt.Fprintf(&b, "The machine is shared with other work (load average %s at the start, %s at the end), so absolute numbers are noisy: every comparison is measured side by side in one run, variants alternated, and quoted as a ratio. The load generator runs in the same process as the servers and takes part of the same two cores.\n\n", s.LoadAvg[0], s.LoadAvg[1])
	b.WriteString("| comparison | measure | result | target | met | details |\n|---|---|---:|---:|:---:|---|\n")
	for _, v := range s.Verdicts {
		result, target := fmtValue(v.Value, v.Unit), fmtValue(v.Target, v.Unit)
		if v.AtMost {
			target = "≤ " + target
		} else {
			target = "≥ " + target
		}
		if v.Unit == "ms" && !v.AtMost {
			target = "> 0 ms"
		}
		met := "no"
		if v.Met() {
			met = "yes"
		}
		detail := v.Detail
		if v.Skipped != "" {
			result, met, detail = "skipped", "–", v.Skipped
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s ([%s](%s)) |\n", v.Comparison, v.Measure, result, target, met, mdEscape(detail), v.File, v.File)
	}
	b.WriteString("\n")
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("\nFiles: [redis.md](redis.md), [lookup.md](lookup.md), [ingest.md](ingest.md), [quality.md](quality.md); charts are the PNGs beside them.\n")
	if err := os.WriteFile(filepath.Join(o.Out, "README.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing the results README: %w", err)
	}
	return nil
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- charts (gonum.org/v1/plot) ----

func savePlot(p *plot.Plot, path string) error {
	if err := p.Save(18*vg.Centimeter, 11*vg.Centimeter, path); err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return nil
}

// latencyChart draws each report's latency at the percentiles, on a
// "nines" axis (50%, 90%, 99%, 99.9%, …) with a log latency axis.
func latencyChart(path, title string, reps []Report) error {
	p := newPlot(title, "percentile", "latency, ms (log)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0%"}, {Value: 0.30103, Label: "50%"}, {Value: 1, Label: "90%"}, {Value: 2, Label: "99%"}, {Value: 3, Label: "99.9%"}, {Value: 4, Label: "99.99%"}}
	p.Legend.Left = true
	for i, r := range reps {
		var xys plotter.XYs
		for _, q := range r.Distribution {
			if q.Q >= 1 {
				continue
			}
			x := -math.Log10(1 - q.Q)
			y := math.Max(float64(q.Latency)/float64(time.Millisecond), 0.001)
			xys = append(xys, plotter.XY{X: x, Y: y})
		}
		if err := addSeries(p, i, r.Name, xys, 1.5); err != nil {
			return err
		}
	}
	return savePlot(p, path)
}

// addSeries adds the i-th line of a chart, in the i-th colour, with its
// legend entry; an empty series is skipped. A width of 0 keeps the
// default.
func addSeries(p *plot.Plot, i int, name string, xys plotter.XYs, width float64) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	if width > 0 {
		l.Width = vg.Points(width)
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// timelineChart draws completed requests per second over each run.
func timelineChart(path, title string, reps []Report) error {
	p := newPlot(title, "second of the run", "requests completed per second")
	for i, r := range reps {
		var xys plotter.XYs
		for s, sec := range r.Timeline {
			xys = append(xys, plotter.XY{X: float64(s), Y: float64(sec.Requests)})
		}
		if err := addSeries(p, i, r.Name, xys, 1.5); err != nil {
			return err
		}
	}
	return savePlot(p, path)
}

// barChart draws one bar per label.
func barChart(path, title string, labels []string, values []float64) error {
	p := plot.New()
	p.Title.Text = title
	bars, err := plotter.NewBarChart(plotter.Values(values), vg.Points(40))
	if err != nil {
		return err
	}
	bars.Color = plotutil.Color(0)
	p.Add(bars)
	p.NominalX(labels...)
	return savePlot(p, path)
}

// freshnessChart draws the p99 and the max of produce → applied per 100 ms
// of producing.
func freshnessChart(path string, p99, worst []float64) error {
	p := newPlot("Freshness over time: produce → applied, per 100 ms", "seconds into the run", "ms")
	p.Legend.Left = true
	for i, series := range [][]float64{p99, worst} {
		var xys plotter.XYs
		for j, v := range series {
			xys = append(xys, plotter.XY{X: float64(j) / 10, Y: v})
		}
		if err := addSeries(p, i, []string{"p99", "max"}[i], xys, 0); err != nil {
			return err
		}
	}
	if err := addTarget(p, 0, float64(max(len(p99), 1))/10, 10, "target p99 (10 ms)"); err != nil {
		return err
	}
	return savePlot(p, path)
}

// newPlot is a chart with its title, axis labels and the legend at the top.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	return p
}

// addTarget draws a dashed horizontal line at y from x0 to x1, named in
// the legend.
func addTarget(p *plot.Plot, x0, x1, y float64, name string) error {
	target, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		return err
	}
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(target)
	p.Legend.Add(name, target)
	return nil
}

// weeksChart draws the learning curve: each policy's realised net
// revenue over the oracle's, per week of offers, with the 0.8 target.
func weeksChart(path string, q QualityReport) error {
	oracle, ok := q.Result(PolicyOracle)
	if !ok || len(oracle.Weeks) < 2 {
		return errors.New("no weeks to draw")
	}
	p := newPlot("Net revenue × the oracle's, by week of offers", "week of offers", "× oracle")
	p.Legend.Left = true
	i := 0
	for _, r := range q.Results {
		if isOracle(r.Card.Policy) {
			continue
		}
		var xys plotter.XYs
		for w := range min(len(r.Weeks), len(oracle.Weeks)) {
			if base := oracle.Weeks[w].Net; base > 0 {
				xys = append(xys, plotter.XY{X: float64(w + 1), Y: float64(r.Weeks[w].Net) / float64(base)})
			}
		}
		if err := addSeries(p, i, r.Card.Policy, xys, 0); err != nil {
			return err
		}
		i++
	}
	if err := addTarget(p, 1, float64(len(oracle.Weeks)), 0.8, "target (0.8× oracle)"); err != nil {
		return err
	}
	return savePlot(p, path)
}

func perRound(a, b []float64) string {
	var parts []string
	for i := range a {
		if i < len(b) {
			parts = append(parts, fmt.Sprintf("%.0f / %.0f", a[i], b[i]))
		}
	}
	return strings.Join(parts, "; ")
}

// gcCycles is how many garbage collections the process has completed.
func gcCycles() uint64 { return readUint64Metric("/gc/cycles/total:gc-cycles") }

// heapAllocated is the cumulative count of bytes the process allocated on
// the heap.
func heapAllocated() uint64 { return readUint64Metric("/gc/heap/allocs:bytes") }

// heapLive is the heap in use by live objects as of the last collection,
// bytes.
func heapLive() float64 { return float64(readUint64Metric("/gc/heap/live:bytes")) }

func readUint64Metric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

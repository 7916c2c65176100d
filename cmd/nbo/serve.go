package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"nbo/engine"
	"nbo/engine/api"
	"nbo/engine/cache"
	"nbo/engine/ingest"
	"nbo/features"
	"nbo/features/kafka"
	"nbo/models"
)

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var configFile string
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine: ingest, feature store, offer API",
		Long: `serve runs the whole engine in one process: it consumes nbo.events (from an
external Kafka/Redpanda cluster, or from the embedded Kafka-protocol broker it
starts when no brokers are configured), keeps every customer's features,
answers the HTTP API and publishes triggers. SIGINT/SIGTERM stop it cleanly
with a final snapshot; SIGHUP reloads the scenario files (as POST
/v1/admin/scenarios does) and never stops it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resolved, err := resolveConfig(cmd.Flags(), configFile)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, resolved, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (strict; flags override it)")
	bindConfigFlags(cmd.Flags(), &cfg)
	return cmd
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve builds every component from cfg and runs them until ctx ends.
func serve(ctx context.Context, cfg Config, out io.Writer) error {
	tuneGC(cfg.GCPercent)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	logTo := io.Writer(os.Stderr)
	if cfg.Demo {
		// The terminal shows the demo's status line; logs go to a file.
		f, err := os.OpenFile(filepath.Join(cfg.DataDir, "nbo.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("opening the demo log: %w", err)
		}
		defer f.Close()
		logTo = f
		fmt.Fprintf(out, "logs: %s\n", f.Name())
	}
	log := newLogger(cfg.LogLevel, logTo)

	// API keys: the configured file, or one generated under the data dir.
	keysPath := cfg.APIKeys
	if keysPath == "" {
		path, key, err := api.GenerateKeyFile(cfg.DataDir)
		if err != nil {
			return err
		}
		keysPath = path
		if key != "" {
			keyFile := filepath.Join(cfg.DataDir, "admin.key")
			if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
				return fmt.Errorf("writing the generated admin key: %w", err)
			}
			fmt.Fprintf(out, "generated an admin API key (all scopes): it is in %s; its hash is in %s\n", keyFile, path)
		} else {
			fmt.Fprintf(out, "API keys: %s (the generated admin key is in %s)\n", path, filepath.Join(cfg.DataDir, "admin.key"))
		}
	}
	keys, err := api.LoadKeys(keysPath)
	if err != nil {
		return err
	}

	// Scenarios and offers; budgets follow the catalog on every reload.
	budgets := engine.NewBudgets()
	lib, err := newScenarioLibrary(cfg.Scenarios, budgets.SetCatalog)
	if err != nil {
		return err
	}
	budgets.SetCatalog(lib.Active())
	// A hang-up (an operator's kill -HUP, or the terminal of a foreground
	// serve closing) reloads the scenarios rather than ending the process
	// without a snapshot, which is SIGHUP's default.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Kafka: an external cluster, or the embedded broker.
	brokers := cfg.KafkaBrokers
	if len(brokers) == 0 {
		emb, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{
			Addr:           cfg.EmbeddedKafkaAddr,
			AdvertisedAddr: cfg.EmbeddedKafkaAdvertisedAddr,
			DataDir:        filepath.Join(cfg.DataDir, "kafka"),
			Partitions:     cfg.Partitions,
		})
		if err != nil {
			return fmt.Errorf("starting the embedded Kafka broker: %w", err)
		}
		defer emb.Close()
		brokers = emb.Addrs()
		fmt.Fprintf(out, "embedded Kafka-protocol broker on %s (data in %s)\n", strings.Join(brokers, ","), filepath.Join(cfg.DataDir, "kafka"))
		if w := emb.Warning(); w != "" {
			fmt.Fprintln(out, "warning: "+w)
		}
	} else if cfg.EmbeddedKafkaAdvertisedAddr != "" {
		fmt.Fprintln(out, "warning: embedded_kafka_advertised_addr is ignored: kafka_brokers is set, so the embedded broker does not run")
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = kafka.EnsureTopics(tctx, brokers, kafka.Topics(cfg.Partitions))
	cancel()
	if err != nil {
		if len(cfg.KafkaBrokers) == 0 && cfg.EmbeddedKafkaAdvertisedAddr != "" {
			// nbo's own clients dial the advertised address too.
			return fmt.Errorf("creating topics through the embedded broker's advertised address %s (embedded_kafka_advertised_addr: it must be reachable from this host too): %w", cfg.EmbeddedKafkaAdvertisedAddr, err)
		}
		return fmt.Errorf("creating topics: %w", err)
	}

	store, err := features.NewStore(features.Options{AllowedLateness: cfg.AllowedLateness})
	if err != nil {
		return err
	}
	producer := func(topic string) (*kafka.Producer, error) {
		return kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: topic})
	}
	eventsOut, err := producer(kafka.TopicEvents)
	if err != nil {
		return err
	}
	defer eventsOut.Close()
	triggersOut, err := producer(kafka.TopicTriggers)
	if err != nil {
		return err
	}
	defer triggersOut.Close()
	decisionsOut, err := producer(kafka.TopicDecisions)
	if err != nil {
		return err
	}
	defer decisionsOut.Close()
	triggers := engine.NewTopicPublisher(triggersOut, 4096, log)
	defer triggers.Close()
	var triggerSink engine.Publisher = triggers
	var dm *demo
	if cfg.Demo {
		if dm, err = newDemo(time.Now().Add(-demoHistory)); err != nil {
			return err
		}
		triggerSink = engine.PublisherFunc(func(key, value []byte) {
			triggers.Publish(key, value)
			dm.trigger(value)
		})
	}
	decisions := engine.NewTopicPublisher(decisionsOut, 16384, log)
	defer decisions.Close()

	// The engine and its state.
	zone, _ := time.LoadLocation(cfg.TimeZone) // checked by Validate
	storeZones := make(map[string]*time.Location, len(cfg.StoreTimeZones))
	for store, name := range cfg.StoreTimeZones {
		storeZones[store], _ = time.LoadLocation(name)
	}
	policy, err := engine.NewPolicy(engine.PolicyOptions{
		DefaultZone: zone,
		TimeZone:    func(store string) *time.Location { return storeZones[store] },
	})
	if err != nil {
		return err
	}
	bandit := models.NewBandit()
	dedup := engine.NewTriggerDedup(7*24*time.Hour, 1<<20)
	decisionCache, err := cache.New[*engine.Decision](cache.Options{})
	if err != nil {
		return err
	}
	defer decisionCache.Close()
	models := newModelSet(cfg.DataDir, cfg.ModelsDir)
	stats, err := engine.NewStats(engine.StatsOptions{MaxDecisions: cfg.AttributionRecords})
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{
		Stats: stats,
		Store: store, Scenarios: lib.Active, Budgets: budgets, Policy: policy, Cache: decisionCache, Location: zone,
		Propensity: &engine.RegistryPropensity{Registry: models.propensity},
		Scores:     models.scores,
		Explorer:   &engine.BanditExplorer{Bandit: bandit}, Decisions: decisions, Triggers: triggerSink, TriggerDedup: dedup,
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	snapshotSections := snapshotParts{
		"engine.budgets":  budgets,
		"engine.policy":   policy,
		"engine.triggers": dedup,
		"models.bandit":   bandit,
		"engine.wakes":    eng.Wakes(),
		"engine.stats":    stats,
	}
	replay := &decisionReplay{brokers: brokers, publisher: decisions, eng: eng, log: log, snapPath: filepath.Join(cfg.DataDir, "state.snap")}

	consumer, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: brokers, Topic: kafka.TopicEvents, GroupID: cfg.GroupID})
	if err != nil {
		return err
	}
	defer consumer.Close()
	dlq, err := kafka.NewDeadLetters(kafka.ProducerOptions{Brokers: brokers, Topic: kafka.TopicEventsDLQ})
	if err != nil {
		return err
	}
	defer dlq.Close()

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nbo_events_rejected_total",
		Help: "Events rejected, by reason code.",
	}, []string{"reason"})
	metrics.MustRegister(rejected)
	loop, err := ingest.New(ingest.Options{
		Store:         store,
		Source:        consumer,
		DeadLetters:   dlq,
		SnapshotPath:  filepath.Join(cfg.DataDir, "state.snap"),
		SnapshotEvery: cfg.SnapshotEvery,
		EndOffsets: func(ctx context.Context) (map[int]int64, error) {
			return kafka.EndOffsets(ctx, brokers, kafka.TopicEvents)
		},
		CommittedOffsets: func(ctx context.Context) (map[int]int64, error) {
			return kafka.CommittedOffsets(ctx, brokers, kafka.TopicEvents, cfg.GroupID)
		},
		Prepare: eng.ResolveCoupon,
		OnApplied: func(ev *features.Event, a features.Applied) {
			eng.OnApplied(ev, a)
			if dm != nil {
				dm.applied(ev)
			}
		},
		// Absence wake-ups due by the wall clock fire while the stream is
		// quiet, not only when the next event's time passes them.
		OnIdle:        eng.OnIdle,
		OnRejected:    func(r features.Reason) { rejected.WithLabelValues(string(r)).Inc() },
		Extras:        replay.extras(snapshotSections),
		RestoreExtras: replay.restoreExtras(snapshotSections),
		// The trigger dedup in the snapshot marks queued pushes as sent:
		// they must be on the broker first, or a crash right after the
		// snapshot loses them (the replay would not raise them again).
		BeforeSnapshot: triggers.Flush,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	registerEngineMetrics(metrics, store, loop, eng, bandit, stats)

	httpAPI, err := api.New(api.Options{
		Addr:   cfg.HTTP,
		Keys:   keys,
		Logger: log,
		// Successful requests are logged at debug: at thousands of
		// requests a second an info line each would cost more than the
		// decision. Errors are always logged.
		AccessLogLevel: slog.LevelDebug,
		Registry:       metrics,
		Ingester: api.IngesterFunc(func(ctx context.Context, events []features.Event) error {
			return produceEvents(ctx, eventsOut, events)
		}),
		Decider: eng,
		Customers: api.CustomerReaderFunc(func(ctx context.Context, key features.Key) (any, error) {
			v := new(features.View)
			if !store.ViewKey(key, time.Now().UnixMilli(), v) {
				return nil, api.ErrNotFound
			}
			return v, nil
		}),
		OpenOffers: api.OpenOffersReaderFunc(func(ctx context.Context, key features.Key, locale engine.Locale) (any, error) {
			open, ok := eng.OpenOffers(key, locale, time.Now().UnixMilli())
			if !ok {
				return nil, api.ErrNotFound
			}
			return open, nil
		}),
		Stats: api.StatsReaderFunc(func(ctx context.Context) (any, error) {
			return stats.Snapshot(), nil
		}),
		Scenarios: lib,
		Models: api.ModelAdminFunc(func(ctx context.Context, path string) (any, error) {
			return models.load(path)
		}),
		Bandit: api.BanditAdminFunc(func(ctx context.Context, offerID string) (any, error) {
			if bandit.Reset(offerID) == 0 && lib.Active().Offer(offerID) == nil {
				// Most likely a typo: say so rather than report a reset.
				return nil, &api.Error{Status: 404, Code: api.CodeNotFound, Field: "offer_id",
					Message: fmt.Sprintf("offer %q is not in the catalog and the bandit has learnt nothing of it", offerID)}
			}
			return map[string]string{"reset": offerID}, nil
		}),
		Readiness: api.ReadinessFunc(loop.Ready),
	})
	if err != nil {
		return err
	}
	admin, err := api.NewAdminServer(cfg.Admin, metrics)
	if err != nil {
		return err
	}

	if err := loop.Restore(ctx); err != nil {
		// A rebuild needs a consumer group that has never committed: name
		// one by the day, so a second rebuild does not reuse the first's.
		rebuild := fmt.Sprintf("--group-id %s-rebuild-%s", cfg.GroupID, time.Now().UTC().Format("20060102-1504"))
		switch {
		case errors.Is(err, ingest.ErrSnapshotBehindGroup):
			return fmt.Errorf("%w\nrestore the newest snapshot to resume, or rebuild the state from the log with a consumer group that has no commits, e.g. %s", err, rebuild)
		case errors.Is(err, features.ErrCorruptSnapshot):
			return fmt.Errorf("%w\nmove the snapshot away and restore an older copy, or rebuild the state from the log (everything since its retention start) with a consumer group that has no commits, e.g. %s", err, rebuild)
		}
		return err
	}
	// The state offer requests made after the snapshot, from the decision
	// log: before the events since the snapshot are applied (a redemption
	// finds its reservation) and before the API serves (/readyz).
	replayed, err := replay.replay(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "decision log replayed: %d decisions since the snapshot (%d reservations, %d contacts, %d attribution records restored)\n",
		replayed.Decisions, replayed.Reserved, replayed.Contacts, replayed.Recorded)
	for _, m := range models.restore() {
		fmt.Fprintf(out, "model %s\n", m)
	}
	if w := models.checkSource(cfg.ModelsDir == ""); w != "" {
		fmt.Fprintln(out, w)
	}
	fmt.Fprintf(out, "nbo serving: API http://%s  metrics http://%s/metrics  %d customers restored\n", httpAPI.Addr(), admin.Addr(), store.Len())

	// Run everything; the first to fail (or ctx) stops the rest.
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	errc := make(chan error, 4)
	go func() { errc <- httpAPI.Serve(runCtx) }()
	go func() { errc <- admin.Serve(runCtx) }()
	go func() { errc <- expireLoop(runCtx, budgets) }()
	go func() { errc <- reloadOnHangup(runCtx, hup, lib, log) }()
	if dm != nil {
		dctx := context.WithValue(runCtx, dataDirKey{}, cfg.DataDir)
		key := readKey(filepath.Join(cfg.DataDir, "admin.key"))
		go func() {
			errc <- dm.run(dctx, lib, httpAPI.Addr(), key, eventsOut, store, loop, eng, stats, out)
		}()
	}
	err = loop.Run(runCtx)
	stopAll()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := loop.Stats()
	fmt.Fprintf(out, "nbo stopped: %d events applied, %d rejected, final snapshot written\n", st.Applied, st.Rejected)
	return nil
}

// reloadOnHangup reloads the scenario files on every signal from hup,
// keeping the active set when they do not compile, and logs the outcome.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, lib *scenarioLibrary, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if err := lib.Reload(lib.fsys, time.Now()); err != nil {
				log.Error("SIGHUP: the scenario files do not compile; the previous set stays active", "source", lib.source, "err", err)
				continue
			}
			st := lib.Status()
			log.Info("SIGHUP: scenarios reloaded", "source", lib.source, "version", st.Version, "scenarios", st.Scenarios, "offers", st.Offers)
		}
	}
}

// expireLoop returns unredeemed budget reservations whose time is up.
func expireLoop(ctx context.Context, b *engine.Budgets) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			b.Expire(now.UnixMilli())
		}
	}
}

// produceEvents writes validated events to nbo.events, keyed by the best
// identifier of their customer as far as the batch tells (batchKeys), and
// returns once the broker acknowledged all of them.
func produceEvents(ctx context.Context, p *kafka.Producer, events []features.Event) error {
	return produceKeyed(ctx, p, events, batchKeys(events))
}

// produceKeyed writes events[i] to nbo.events under keys[i].
func produceKeyed(ctx context.Context, p *kafka.Producer, events []features.Event, keys []string) error {
	msgs := make([]kafka.Message, len(events))
	for i := range events {
		msgs[i] = kafka.Message{Key: []byte(keys[i]), Value: features.EncodeEvent(nil, &events[i])}
	}
	if err := p.Produce(ctx, msgs); err != nil {
		if errors.Is(err, kafka.ErrUnavailable) {
			return fmt.Errorf("producing events: %w (%w)", api.ErrUnavailable, err)
		}
		return fmt.Errorf("producing events: %w", err)
	}
	return nil
}

// batchKeys returns each event's partition key: the best identifier
// (member, then card, phone, device, …) among the identifiers the batch
// links to the event's own. An anonymous browse followed by a login in
// one batch — device-only events, then one carrying the member and the
// device — is then keyed by the member throughout and lands in one
// partition in the batch's order. Keyed one by one, the device-only
// events would go to another partition, which the ingest loop may read
// after the member's, and refuse as too_late behind the login. Links
// never join two members (the store never merges them either): on a
// shared device, each member's events keep the member's key.
func batchKeys(events []features.Event) []string {
	keys := make([]string, len(events))
	linked := false
	for i := range events {
		keys[i] = string(events[i].IDs.BestKey())
		linked = linked || idCount(&events[i].IDs) > 1
	}
	if !linked {
		return keys // nothing in the batch links two identifiers
	}
	// Union-find over the batch's identifiers; each set's root is its
	// best identifier: the smallest namespace, then the smallest value.
	type node struct {
		parent features.Key
		ns     features.Namespace
	}
	nodes := map[features.Key]*node{}
	var find func(k features.Key) (features.Key, *node)
	find = func(k features.Key) (features.Key, *node) {
		n := nodes[k]
		if n.parent == k {
			return k, n
		}
		r, rn := find(n.parent)
		n.parent = r
		return r, rn
	}
	for i := range events {
		ids := &events[i].IDs
		var first features.Key
		for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
			v := ids.Get(ns)
			if v == "" {
				continue
			}
			k := features.MakeKey(ns, v)
			if nodes[k] == nil {
				nodes[k] = &node{parent: k, ns: ns}
			}
			if first == "" {
				first = k
				continue
			}
			a, an := find(first)
			b, bn := find(k)
			switch {
			case a == b:
			case an.ns == features.NSMember && bn.ns == features.NSMember:
				// Two members: a shared device or card, not one customer.
			case bn.ns < an.ns || bn.ns == an.ns && b < a:
				an.parent = b
			default:
				bn.parent = a
			}
		}
	}
	for i := range events {
		if keys[i] != "" {
			r, _ := find(features.Key(keys[i]))
			keys[i] = string(r)
		}
	}
	return keys
}

// idCount is how many identifiers the event carries.
func idCount(ids *features.IDs) int {
	n := 0
	for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
		if ids.Get(ns) != "" {
			n++
		}
	}
	return n
}

// snapshotParts are the engine's state sections in the snapshot file.
type snapshotParts map[string]interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func (p snapshotParts) marshal() map[string][]byte {
	out := make(map[string][]byte, len(p))
	for name, part := range p {
		b, err := part.MarshalBinary()
		if err != nil {
			continue
		}
		out[name] = b
	}
	return out
}

func (p snapshotParts) unmarshal(sections map[string][]byte) error {
	for name, part := range p {
		if b, ok := sections[name]; ok {
			if err := part.UnmarshalBinary(b); err != nil {
				return fmt.Errorf("restoring %s: %w", name, err)
			}
		}
	}
	return nil
}

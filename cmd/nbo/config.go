package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"nbo/features/kafka"
)

// Config is the configuration of `nbo serve`. Every field can be set in a
// YAML file (--config, strict: unknown keys are errors) and overridden by
// the flag of the same name (underscores become dashes). It is loaded once
// and passed down read-only.
type Config struct {
	// HTTP is the API listener. Default: 127.0.0.1:8080.
	HTTP string `yaml:"http"`
	// Admin is the listener for /metrics and pprof, loopback by default.
	// Default: 127.0.0.1:9090.
	Admin string `yaml:"admin"`
	// DataDir holds the snapshot, the generated API key file and the
	// embedded broker's log. Default: ./data.
	DataDir string `yaml:"data_dir"`
	// KafkaBrokers is the bootstrap list of an external Kafka or Redpanda
	// cluster. Empty starts the embedded Kafka-protocol broker.
	KafkaBrokers []string `yaml:"kafka_brokers"`
	// EmbeddedKafkaAddr is where the embedded broker listens.
	// Default: 127.0.0.1:9092.
	EmbeddedKafkaAddr string `yaml:"embedded_kafka_addr"`
	// EmbeddedKafkaAdvertisedAddr is the host:port (or host, with the
	// listen port) the embedded broker names in metadata, where every
	// client connects after its bootstrap. Default: the listen address;
	// for a wildcard one (0.0.0.0:19094) this machine's hostname, which
	// clients on other hosts must be able to resolve — set an address
	// they can reach when they cannot.
	EmbeddedKafkaAdvertisedAddr string `yaml:"embedded_kafka_advertised_addr"`
	// Partitions is the partition count of topics nbo creates. Default: 4.
	Partitions int `yaml:"partitions"`
	// GroupID is the consumer group of the events topic. Default: nbo.
	GroupID string `yaml:"group_id"`
	// ModelsDir is the only directory POST /v1/admin/models reads model
	// artifacts from: a relative path is taken inside it, and a path that
	// leads out of it (.., a symbolic link) is refused. Default: "" (the
	// models directory under DataDir, where served models are also kept
	// for restarts).
	ModelsDir string `yaml:"models_dir"`
	// APIKeys is the API key file (keys: [{name, sha256, scopes}]). Empty
	// creates DataDir/api-keys.yaml with one random admin key on first
	// start and prints where it is.
	APIKeys string `yaml:"api_keys"`
	// Scenarios is a directory of scenario and offer files. Empty uses the
	// built-in library.
	Scenarios string `yaml:"scenarios"`
	// AllowedLateness is how far behind a customer's newest event an event
	// may arrive. Default: 10m.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// SnapshotEvery is the interval between snapshots. Default: 30s.
	SnapshotEvery time.Duration `yaml:"snapshot_every"`
	// TimeZone is the IANA zone of hour-of-day rules (hour, weekday,
	// evening: every store's alike) and of the quiet hours of stores not
	// in StoreTimeZones and of customers without a home store. Default:
	// Asia/Shanghai.
	TimeZone string `yaml:"time_zone"`
	// StoreTimeZones maps store IDs to IANA zones, for quiet hours in each
	// store's local time. Default: none (every store in TimeZone).
	StoreTimeZones map[string]string `yaml:"store_time_zones"`
	// GCPercent is the garbage collector's target (GOGC): the heap may grow
	// this many percent over the live data before a collection. Collections
	// are what stretch the offer API's p99 (at 10k requests/s on 2 cores,
	// p99 13 ms at 100 vs 2–8 ms at 400), so the default trades memory for
	// latency. The GOGC environment variable, when set, wins. Default: 400.
	GCPercent int `yaml:"gc_percent"`
	// AttributionRecords bounds the decision records kept for attribution
	// (engine.StatsOptions.MaxDecisions): one per offer served, plus one
	// per holdout decision that served nothing, ~300 B each. A redemption
	// or click whose record was evicted is unattributed, a coupon code
	// the till sends alone no longer resolves, and open offers forget it,
	// so keep at least the records served over the time a coupon takes to
	// be redeemed. Default: 1,000,000 (~300 MB).
	AttributionRecords int `yaml:"attribution_records"`
	// LogLevel is debug, info, warn or error. Default: info.
	LogLevel string `yaml:"log_level"`
	// Demo streams a simulated retailer into the engine and prints a live
	// status line (make run). Default: false.
	Demo bool `yaml:"demo"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		HTTP:               "127.0.0.1:8080",
		Admin:              "127.0.0.1:9090",
		DataDir:            "./data",
		EmbeddedKafkaAddr:  "127.0.0.1:9092",
		Partitions:         4,
		GroupID:            "nbo",
		AllowedLateness:    10 * time.Minute,
		SnapshotEvery:      30 * time.Second,
		TimeZone:           "Asia/Shanghai",
		GCPercent:          400,
		AttributionRecords: 1_000_000,
		LogLevel:           "info",
	}
}

// Validate reports every problem at once, each with how to fix it.
func (c *Config) Validate() error {
	var errs []error
	addr := func(name, v string) {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port (e.g. 127.0.0.1:8080)", name, v))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("%s %q has port %q; use 0..65535", name, v, port))
		}
	}
	addr("http", c.HTTP)
	addr("admin", c.Admin)
	if len(c.KafkaBrokers) == 0 {
		addr("embedded_kafka_addr", c.EmbeddedKafkaAddr)
		if a := c.EmbeddedKafkaAdvertisedAddr; a != "" {
			if err := kafka.CheckAdvertisedAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("embedded_kafka_advertised_addr: %w", err))
			}
		}
	}
	for _, b := range c.KafkaBrokers {
		addr("kafka_brokers", b)
	}
	if c.ModelsDir != "" {
		served, _ := filepath.Abs(filepath.Join(c.DataDir, "served-models"))
		if dir, err := filepath.Abs(c.ModelsDir); err == nil && (dir == served || strings.HasPrefix(dir, served+string(filepath.Separator))) {
			errs = append(errs, fmt.Errorf("models_dir %q is where nbo keeps the models it serves (DATA_DIR/served-models): a load would overwrite them; give another directory", c.ModelsDir))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty; give a directory for the snapshot and broker data"))
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("partitions %d is out of range; use 1..1024", c.Partitions))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("group_id is empty; name the consumer group (e.g. nbo)"))
	}
	if c.AllowedLateness <= 0 {
		errs = append(errs, fmt.Errorf("allowed_lateness %v must be positive (e.g. 10m)", c.AllowedLateness))
	}
	if c.SnapshotEvery < time.Second {
		errs = append(errs, fmt.Errorf("snapshot_every %v is too short; use at least 1s", c.SnapshotEvery))
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		errs = append(errs, fmt.Errorf("time_zone %q is not an IANA time zone (e.g. Asia/Shanghai)", c.TimeZone))
	}
	for store, zone := range c.StoreTimeZones {
		if _, err := time.LoadLocation(zone); err != nil || zone == "" {
			errs = append(errs, fmt.Errorf("store_time_zones: store %s has zone %q, not an IANA time zone (e.g. Asia/Urumqi)", store, zone))
		}
	}
	if c.AttributionRecords < 1_000 || c.AttributionRecords > 100_000_000 {
		errs = append(errs, fmt.Errorf("attribution_records %d is out of range; use 1000..100000000 (~300 B each)", c.AttributionRecords))
	}
	if c.GCPercent < 50 || c.GCPercent > 10_000 {
		errs = append(errs, fmt.Errorf("gc_percent %d is out of range; use 50..10000 (GOGC semantics)", c.GCPercent))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q is unknown; use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// loadConfigFile reads a YAML config strictly over the defaults.
func loadConfigFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file keeps the defaults
		}
		return fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return wholeNumbers(data, path)
}

// wholeNumbers refuses a number with a fraction for an integer key: the
// YAML decoder drops the fraction (attribution_records: 1000.5 read as
// 1000), which hides a typo.
func wholeNumbers(data []byte, path string) error {
	ints := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := range t.NumField() {
		if f := t.Field(i); f.Type.Kind() == reflect.Int {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			ints[name] = true
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // the strict decode above judged the file
	}
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		if k, v := m[i], m[i+1]; ints[k.Value] && v.Tag == "!!float" {
			return fmt.Errorf("config %s: line %d: %s must be a whole number, not %s", path, v.Line, k.Value, v.Value)
		}
	}
	return nil
}

// bindConfigFlags declares one flag per field.
func bindConfigFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.HTTP, "http", c.HTTP, "API listen address")
	fs.StringVar(&c.Admin, "admin", c.Admin, "admin listen address (/metrics, pprof)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the snapshot, keys and embedded broker data")
	fs.StringSliceVar(&c.KafkaBrokers, "kafka-brokers", c.KafkaBrokers, "external Kafka/Redpanda brokers (empty: start the embedded broker)")
	fs.StringVar(&c.EmbeddedKafkaAddr, "embedded-kafka-addr", c.EmbeddedKafkaAddr, "listen address of the embedded broker")
	fs.StringVar(&c.EmbeddedKafkaAdvertisedAddr, "embedded-kafka-advertised-addr", c.EmbeddedKafkaAdvertisedAddr, "address the embedded broker tells clients to connect to (empty: the listen address; for 0.0.0.0, this machine's hostname)")
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partitions of topics nbo creates")
	fs.StringVar(&c.GroupID, "group-id", c.GroupID, "consumer group of the events topic")
	fs.StringVar(&c.ModelsDir, "models-dir", c.ModelsDir, "the only directory POST /v1/admin/models loads from (empty: DATA_DIR/models)")
	fs.StringVar(&c.APIKeys, "api-keys", c.APIKeys, "API key file (empty: generate one under the data dir)")
	fs.StringVar(&c.Scenarios, "scenarios", c.Scenarios, "scenario and offer directory (empty: the built-in library)")
	fs.DurationVar(&c.AllowedLateness, "allowed-lateness", c.AllowedLateness, "how late an event may arrive")
	fs.DurationVar(&c.SnapshotEvery, "snapshot-every", c.SnapshotEvery, "interval between snapshots")
	fs.StringVar(&c.TimeZone, "time-zone", c.TimeZone, "IANA zone of hour-of-day rules, and of quiet hours at stores without their own")
	fs.StringToStringVar(&c.StoreTimeZones, "store-time-zones", c.StoreTimeZones, "per-store IANA zones, e.g. S01=Asia/Urumqi,S02=Asia/Hong_Kong")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "garbage collector target (GOGC); the GOGC environment variable wins")
	fs.IntVar(&c.AttributionRecords, "attribution-records", c.AttributionRecords, "decision records kept for attribution, one per offer served (~300 B each)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "stream a simulated retailer and print live status")
}

// resolveConfig applies defaults, then the file, then the flags the user
// set explicitly.
func resolveConfig(fs *pflag.FlagSet, file string) (Config, error) {
	cfg := DefaultConfig()
	if file != "" {
		if err := loadConfigFile(file, &cfg); err != nil {
			return cfg, err
		}
	}
	over := pflag.NewFlagSet("override", pflag.ContinueOnError)
	bindConfigFlags(over, &cfg)
	var errs []error
	fs.Visit(func(f *pflag.Flag) {
		o := over.Lookup(f.Name)
		if o == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			errs = append(errs, o.Value.(pflag.SliceValue).Replace(sv.GetSlice()))
			return
		}
		if f.Value.Type() == "stringToString" {
			// A map flag's String() is "[k=v,…]", which Set would read
			// back as key "[k" and value "v]": hand Set the pairs, CSV
			// quoted as it reads them.
			m, err := fs.GetStringToString(f.Name)
			if err == nil {
				err = o.Value.Set(stringToStringArg(m))
			}
			errs = append(errs, err)
			return
		}
		errs = append(errs, over.Set(f.Name, f.Value.String()))
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// stringToStringArg renders m as a pflag stringToString argument: k=v
// pairs as one CSV record, sorted by key.
func stringToStringArg(m map[string]string) string {
	pairs := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, k+"="+m[k])
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(pairs) // a strings.Builder does not fail
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

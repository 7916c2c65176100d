package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

func flagsFor(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfg := DefaultConfig()
	bindConfigFlags(fs, &cfg)
	require.NoError(t, fs.Parse(args))
	return fs
}

func TestConfigFilesLoadStrictly(t *testing.T) {
	cases := []struct {
		file string
		want string // substring of the error; "" for a good file
	}{
		{"full.good.yml", ""},
		{"empty.good.yml", ""},
		{"unknown-key.bad.yml", "line 2: field kafka_broker not found"},
		{"bad-values.bad.yml", `http "8080" is not host:port`},
		{"bad-values.bad.yml", "partitions 0 is out of range"},
		{"bad-values.bad.yml", "allowed_lateness -1m0s must be positive"},
		{"bad-values.bad.yml", `log_level "loud" is unknown`},
		{"bad-values.bad.yml", "attribution_records 10 is out of range"},
		{"bad-duration.bad.yml", "soon"},
		{"fraction.bad.yml", "line 1: attribution_records must be a whole number, not 1000.5"},
		{"bad-zone.bad.yml", `time_zone "Mars/Olympus" is not an IANA time zone`},
		{"bad-zone.bad.yml", `store S01 has zone "Nowhere/Town"`},
		{"bad-advertised.bad.yml", `embedded_kafka_advertised_addr: advertised addr "0.0.0.0:19094" is not an address clients can dial`},
	}
	for _, c := range cases {
		t.Run(c.file+" "+c.want, func(t *testing.T) {
			_, err := resolveConfig(flagsFor(t), filepath.Join("testdata", "config", c.file))
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.want)
		})
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	cfg, err := resolveConfig(flagsFor(t, "--partitions", "3", "--kafka-brokers", "a:1,b:2"), filepath.Join("testdata", "config", "full.good.yml"))
	require.NoError(t, err)
	require.Equal(t, 3, cfg.Partitions)
	require.Equal(t, []string{"a:1", "b:2"}, cfg.KafkaBrokers)
	require.Equal(t, 15*time.Minute, cfg.AllowedLateness, "unset flags keep the file's value")
	require.Equal(t, "nbo-prod", cfg.GroupID)
	require.Equal(t, "/var/lib/nbo/incoming-models", cfg.ModelsDir)
	require.Equal(t, 5_000_000, cfg.AttributionRecords)
	cfg, err = resolveConfig(flagsFor(t, "--attribution-records", "2000"), filepath.Join("testdata", "config", "empty.good.yml"))
	require.NoError(t, err)
	require.Equal(t, 2000, cfg.AttributionRecords)
	require.Equal(t, 1_000_000, DefaultConfig().AttributionRecords)
}

func TestSettingsThatContradictEachOtherAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, md := range []string{filepath.Join(dir, "served-models"), filepath.Join(dir, "served-models", "x")} {
		_, err := resolveConfig(flagsFor(t, "--data-dir", dir, "--models-dir", md), "")
		require.ErrorContains(t, err, "is where nbo keeps the models it serves", md)
	}
	_, err := resolveConfig(flagsFor(t, "--data-dir", dir, "--models-dir", filepath.Join(dir, "incoming")), "")
	require.NoError(t, err)
	_, err = resolveConfig(flagsFor(t, "--admin", "127.0.0.1:99999"), "")
	require.ErrorContains(t, err, `admin "127.0.0.1:99999" has port "99999"`, "refused before anything starts")
	_, err = resolveConfig(flagsFor(t, "--http", "127.0.0.1:http"), "")
	require.ErrorContains(t, err, `has port "http"`)
}

func TestTheAdvertisedAddrFlagReachesTheConfig(t *testing.T) {
	cfg, err := resolveConfig(flagsFor(t, "--embedded-kafka-addr", "0.0.0.0:19094", "--embedded-kafka-advertised-addr", "nbo-1.example.com"), "")
	require.NoError(t, err)
	require.Equal(t, "nbo-1.example.com", cfg.EmbeddedKafkaAdvertisedAddr)
	_, err = resolveConfig(flagsFor(t, "--embedded-kafka-advertised-addr", "[::]:19094"), "")
	require.ErrorContains(t, err, "not an address clients can dial")
}

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := resolveConfig(flagsFor(t), "")
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), cfg)
}

func TestStoreTimeZonesFlagOverridesTheFile(t *testing.T) {
	// The flag is a map: its String() form is "[S01=Asia/Urumqi]", which
	// must not be parsed back as store "[S01" in zone "Asia/Urumqi]".
	cfg, err := resolveConfig(flagsFor(t, "--store-time-zones", "S01=Asia/Urumqi,S03=Asia/Hong_Kong"), filepath.Join("testdata", "config", "full.good.yml"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"S01": "Asia/Urumqi", "S03": "Asia/Hong_Kong"}, cfg.StoreTimeZones)

	cfg, err = resolveConfig(flagsFor(t, "--store-time-zones", "S01=Asia/Urumqi"), "")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"S01": "Asia/Urumqi"}, cfg.StoreTimeZones)
}

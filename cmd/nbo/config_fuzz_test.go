package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzConfigFile: whatever a config file holds, loading and validating it
// do not panic, and a file that does not load is refused with an error
// that names the file.
func FuzzConfigFile(f *testing.F) {
	f.Add("http: 127.0.0.1:8081\npartitions: 8\nstore_time_zones: {S01: Asia/Urumqi}\n")
	f.Add("kafka_brokers: [a:9092, b:9092]\nlog_level: debug\nsnapshot_every: 30s\n")
	f.Add("partitions: -1\nnot_a_field: 1\n")
	f.Add("")
	f.Add("{{{")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(dir, "nbo.yaml")
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
		cfg := DefaultConfig()
		if err := loadConfigFile(path, &cfg); err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "config "+path+": "), "%v", err)
			return
		}
		_ = cfg.Validate() // either way, without panicking
	})
}

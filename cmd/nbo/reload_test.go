package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine/api"
	"nbo/scenarios"
)

// brokenRules is a scenario file with a typo on line 3 (and, on line 2,
// a scenario missing its offers, channels, trigger and reason).
const brokenRules = "scenarios:\n  - id: mine\n    priorty: 60\n"

// copyBuiltin writes the built-in library into a new directory.
func copyBuiltin(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rules")
	require.NoError(t, os.CopyFS(dir, scenarios.Builtin()))
	return dir
}

// logLines decodes the JSON log lines in b.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// TestReloadsAreLoggedAlikeWhateverAskedForThem: a POST
// /v1/admin/scenarios logs a reload as SIGHUP does (it logged nothing),
// and a refused one answers one sentence: the problems with file:line
// and the version that keeps serving, said once.
func TestReloadsAreLoggedAlikeWhateverAskedForThem(t *testing.T) {
	dir := copyBuiltin(t)
	lib, err := newScenarioLibrary(dir, nil)
	require.NoError(t, err)
	var logBuf bytes.Buffer
	log := newLogger("info", &logBuf)
	lib.log = log
	admin := lib
	want := lib.Status()

	// A good reload over the API.
	v, err := admin.ReloadScenarios(context.Background())
	require.NoError(t, err)
	require.Equal(t, want.Version, v.(scenarioStatus).Version)

	// The same over SIGHUP.
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- reloadOnHangup(ctx, hup, lib) }()
	hup <- syscall.SIGHUP
	hup <- syscall.SIGHUP // the channel holds one: the first was taken
	cancel()
	require.NoError(t, <-done)

	lines := logLines(t, &logBuf)
	require.GreaterOrEqual(t, len(lines), 2, logBuf.String())
	for i, trigger := range []string{"POST /v1/admin/scenarios", "SIGHUP"} {
		l := lines[i]
		require.Equal(t, "INFO", l["level"])
		require.Equal(t, trigger+": scenarios reloaded", l["msg"])
		require.Equal(t, trigger, l["trigger"])
		require.Equal(t, dir, l["source"])
		require.Equal(t, want.Version, l["version"])
		require.EqualValues(t, want.Scenarios, l["scenarios"])
		require.EqualValues(t, want.Offers, l["offers"])
	}

	// A refused reload over the API.
	logBuf.Reset()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(brokenRules), 0o644))
	_, err = admin.ReloadScenarios(context.Background())
	var apiErr *api.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 422, apiErr.Status)
	require.Equal(t, api.CodeScenariosInvalid, apiErr.Code)
	require.True(t, strings.HasPrefix(apiErr.Message, "the scenario files were refused, set "+want.Version+" keeps serving: mine.yaml:"), apiErr.Message)
	require.Contains(t, apiErr.Message, `mine.yaml:3: unknown key "priorty"`)
	require.Equal(t, 1, strings.Count(apiErr.Message, want.Version), apiErr.Message)
	require.NotContains(t, apiErr.Message, "stays")
	require.Equal(t, want.Version, lib.Status().Version, "the active set keeps serving")

	lines = logLines(t, &logBuf)
	require.Len(t, lines, 1, logBuf.String())
	require.Equal(t, "ERROR", lines[0]["level"])
	require.Equal(t, "POST /v1/admin/scenarios: scenario reload refused", lines[0]["msg"])
	require.Equal(t, want.Version, lines[0]["active_version"])
	require.Contains(t, lines[0]["err"], "mine.yaml:3: ")
}

// TestAStartRefusedForItsScenariosWritesNothing: nbo serve --scenarios
// ./bad generated an admin key before it refused the scenarios, so the
// next start reported a key from a run that never served.
func TestAStartRefusedForItsScenariosWritesNothing(t *testing.T) {
	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "mine.yaml"), []byte(brokenRules), 0o644))

	for _, tc := range []struct {
		name   string
		exists bool
	}{
		{"a data dir that does not exist yet is not created", false},
		{"an existing empty data dir stays empty", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			if tc.exists {
				require.NoError(t, os.Mkdir(cfg.DataDir, 0o755))
			}
			cfg.Scenarios = bad
			cfg.HTTP, cfg.Admin, cfg.EmbeddedKafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := serve(ctx, cfg, &out)
			require.ErrorContains(t, err, "mine.yaml:3: ")
			require.NotContains(t, out.String(), "admin API key")

			entries, err := os.ReadDir(cfg.DataDir)
			if !tc.exists {
				require.ErrorIs(t, err, os.ErrNotExist, "the data dir was created: %v", entries)
				return
			}
			require.NoError(t, err)
			require.Empty(t, entries, "no admin.key, no keys file, no broker data")
		})
	}
}

package scenarios

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

// builtinWith returns the built-in library files with scenarios.yaml
// edited by replace.
func builtinWith(t testing.TB, old, new string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, name := range []string{"offers.yaml", "scenarios.yaml"} {
		data, err := fs.ReadFile(Builtin(), name)
		require.NoError(t, err)
		if name == "scenarios.yaml" && old != "" {
			require.Contains(t, string(data), old)
			data = bytes.Replace(data, []byte(old), []byte(new), 1)
		}
		m[name] = &fstest.MapFile{Data: data}
	}
	return m
}

func TestLibraryReloadKeepsTheOldSetOnError(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(100, 0))
	require.NoError(t, err)
	var swapped []*Set
	lib, err := NewLibrary(set, LibraryOptions{OnSwap: func(s *Set) { swapped = append(swapped, s) }})
	require.NoError(t, err)
	old := set.Version

	err = lib.Reload(builtinWith(t, "priority: 60", "priorty: 60"), time.Unix(200, 0))
	require.Error(t, err)
	require.Contains(t, err.Error(), `unknown key "priorty"`)
	require.True(t, set == lib.Set(), "a broken set must not replace the active one")
	st := lib.Status()
	require.Equal(t, old, st.Version)
	require.Equal(t, int64(1), st.Failures)
	require.Contains(t, st.LastError, "scenarios.yaml:")
	require.Equal(t, time.Unix(200, 0), st.LastErrorAt)

	require.NoError(t, lib.Reload(builtinWith(t, "priority: 60", "priority: 61"), time.Unix(300, 0)))
	st = lib.Status()
	require.NotEqual(t, old, st.Version, "the version is a content hash")
	require.Empty(t, st.LastError)
	require.Equal(t, 11, st.Scenarios)
	require.Equal(t, 11, st.Offers)
	require.Equal(t, time.Unix(300, 0), st.LoadedAt)
	require.Equal(t, 61, lib.Set().Scenario("browsed_online_not_bought").Priority)
	require.Len(t, swapped, 1, "OnSwap sees the good reload only")
	require.True(t, swapped[0] == lib.Set())
}

func TestLoadVersionIsAContentHash(t *testing.T) {
	a, err := Load(builtinWith(t, "", ""), time.Unix(0, 0))
	require.NoError(t, err)
	b, err := LoadBuiltin(time.Unix(5, 0))
	require.NoError(t, err)
	require.Equal(t, a.Version, b.Version, "the same files give the same version")
}

// TestHotReloadUnderLoad evaluates from several goroutines while good and
// broken sets are swapped in. Every evaluation sees exactly one set: all
// its proposals carry that set's priorities. Broken reloads never change
// the active set.
func TestHotReloadUnderLoad(t *testing.T) {
	set, err := LoadBuiltin(time.Unix(0, 0))
	require.NoError(t, err)
	lib, err := NewLibrary(set, LibraryOptions{})
	require.NoError(t, err)
	v, req := busyView(t)
	good := []fstest.MapFS{builtinWith(t, "priority: 70", "priority: 71"), builtinWith(t, "priority: 70", "priority: 72"), builtinWith(t, "", "")}
	broken := builtinWith(t, "priority: 70", "priority: seventy")

	var stop atomic.Bool
	var evals atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []Proposal
			for !stop.Load() {
				s := lib.Set()
				out = s.Evaluate(v, req, out[:0])
				want := s.Scenario("compared_models_try_in_store").Priority
				found := false
				for _, p := range out {
					if p.Scenario.ID == "compared_models_try_in_store" {
						found = true
						if p.Priority != want {
							select {
							case errs <- "a proposal mixed two sets":
							default:
							}
						}
					}
				}
				if !found {
					select {
					case errs <- "the compared-models scenario stopped firing":
					default:
					}
				}
				evals.Add(1)
			}
		}()
	}
	versions := map[string]bool{set.Version: true}
	for i := 0; i < 12; i++ {
		before := lib.Set()
		err := lib.Reload(broken, time.Unix(int64(i), 0))
		require.Error(t, err)
		require.True(t, before == lib.Set(), "a broken set replaced the active one")
		require.NoError(t, lib.Reload(good[i%len(good)], time.Unix(int64(i), 0)))
		versions[lib.Set().Version] = true
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	require.Len(t, versions, 3)
	require.Greater(t, evals.Load(), int64(12), "evaluations kept running during reloads")
	require.Equal(t, int64(12), lib.Status().Reloads)
	require.Equal(t, int64(12), lib.Status().Failures)
}

// FuzzLoad feeds arbitrary bytes to the scenario file parser: it must
// never panic, must report problems as LoadErrors with a file, and a set
// that loads must evaluate without panicking.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"offers.yaml", "scenarios.yaml"} {
		data, err := fs.ReadFile(Builtin(), name)
		require.NoError(f, err)
		f.Add(data)
	}
	bad, _ := fs.Glob(badFS(), "*.yaml")
	for _, name := range bad {
		data, err := fs.ReadFile(badFS(), name)
		require.NoError(f, err)
		f.Add(data)
	}
	v, req := busyView(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Load(fstest.MapFS{"f.yaml": {Data: data}}, time.Unix(0, 0))
		if err != nil {
			les, ok := err.(LoadErrors)
			require.True(t, ok, "errors are LoadErrors: %v", err)
			for _, e := range les {
				require.NotEmpty(t, e.Msg)
				require.True(t, e.File == "f.yaml" || e.File == "", "error names its file: %q", e.Error())
				require.False(t, strings.Contains(e.Msg, "\n"), "one problem per line: %q", e.Msg)
			}
			return
		}
		out := set.Evaluate(v, req, nil)
		for i := range out {
			set.Reason(&out[i], v, req, En)
		}
		set.NextWake(v, req.Now)
	})
}

// TestWatchReloadsOnChange edits a library on disk: a good edit becomes
// active, a broken one is recorded and the good set stays.
func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	files := builtinWith(t, "", "")
	for name, f := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), f.Data, 0o644))
	}
	set, err := Load(os.DirFS(dir), time.Unix(0, 0))
	require.NoError(t, err)
	h, err := Hash(os.DirFS(dir))
	require.NoError(t, err)
	require.Equal(t, set.Version, h, "Hash and Load agree on the version")
	lib, err := NewLibrary(set, LibraryOptions{})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lib.Watch(ctx, os.DirFS(dir), 5*time.Millisecond, time.Now) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}()

	edit := func(old, new string) {
		// Saved the way editors do it safely: write aside, then rename.
		data := bytes.Replace(files["scenarios.yaml"].Data, []byte(old), []byte(new), 1)
		tmp := filepath.Join(dir, ".scenarios.yaml.tmp")
		require.NoError(t, os.WriteFile(tmp, data, 0o644))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, "scenarios.yaml")))
	}
	edit("priority: 20", "priority: 21")
	require.Eventually(t, func() bool { return lib.Set().Scenario("lapsed_60d_winback").Priority == 21 }, 10*time.Second, 5*time.Millisecond)
	good := lib.Set()
	edit("priority: 20", "priority: twenty")
	require.Eventually(t, func() bool { return lib.Status().Failures == 1 }, 10*time.Second, 5*time.Millisecond)
	require.True(t, good == lib.Set(), "the broken edit must not replace the good set")
	require.Equal(t, 11, len(lib.Set().Scenarios))
	require.Contains(t, lib.Status().LastError, `scenarios.yaml:`)
}

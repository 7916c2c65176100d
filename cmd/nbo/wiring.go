package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nbo/engine"
	"nbo/engine/api"
	"nbo/engine/ingest"
	"nbo/features"
	"nbo/models"
	"nbo/scenarios"
)

// scenarioLibrary serves the scenario set for /v1/admin/scenarios: the
// built-in library or a directory, compiled completely and swapped
// atomically by scenarios.Library (a broken set never replaces a good one).
type scenarioLibrary struct {
	*scenarios.Library
	fsys   fs.FS
	source string
}

var _ api.ScenarioAdmin = (*scenarioLibrary)(nil)

func newScenarioLibrary(dir string, onSwap func(*scenarios.Set)) (*scenarioLibrary, error) {
	l := &scenarioLibrary{fsys: scenarios.Builtin(), source: "built-in"}
	if dir != "" {
		l.fsys, l.source = os.DirFS(dir), dir
	}
	set, err := scenarios.Load(l.fsys, time.Now())
	if err != nil {
		return nil, fmt.Errorf("loading scenarios from %s: %w", l.source, err)
	}
	if l.Library, err = scenarios.NewLibrary(set, scenarios.LibraryOptions{OnSwap: onSwap}); err != nil {
		return nil, err
	}
	return l, nil
}

// Active returns the active set (the engine loads it once per decision).
func (l *scenarioLibrary) Active() *scenarios.Set { return l.Set() }

type scenarioStatus struct {
	scenarios.Status
	Source string `json:"source"`
}

// ScenarioStatus reports the active version and the last load error.
func (l *scenarioLibrary) ScenarioStatus(ctx context.Context) (any, error) {
	return scenarioStatus{l.Status(), l.source}, nil
}

// ReloadScenarios recompiles the files and swaps them in, or keeps the
// old set and reports every problem.
func (l *scenarioLibrary) ReloadScenarios(ctx context.Context) (any, error) {
	if err := l.Reload(l.fsys, time.Now()); err != nil {
		return nil, &api.Error{Status: 422, Code: "scenarios_invalid", Message: "the scenario files do not compile; the previous set stays active: " + err.Error()}
	}
	return scenarioStatus{l.Status(), l.source}, nil
}

// registerEngineMetrics exposes the store's, the loop's and the engine's
// counters on the admin listener.
func registerEngineMetrics(reg *prometheus.Registry, store *features.Store, loop *ingest.Loop, eng *engine.Engine) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("nbo_customers", "Customers in the feature store.", func() float64 { return float64(store.Len()) })
	counter("nbo_events_applied_total", "Events applied to the feature store.", func() float64 { return float64(loop.Stats().Applied) })
	gauge("nbo_ready", "1 once the snapshot is restored and the log caught up.", func() float64 {
		if loop.Ready() {
			return 1
		}
		return 0
	})
	gauge("nbo_last_snapshot_timestamp_seconds", "Unix time of the newest durable snapshot.", func() float64 {
		if t := loop.Stats().LastSnapshot; !t.IsZero() {
			return float64(t.Unix())
		}
		return 0
	})
	counter("nbo_decisions_total", "Decisions made.", func() float64 { return float64(eng.Counters().Decisions) })
	counter("nbo_decisions_fallback_total", "Decisions answered with fallback offers.", func() float64 { return float64(eng.Counters().Fallbacks) })
	counter("nbo_decisions_holdout_total", "Decisions for the holdout group.", func() float64 { return float64(eng.Counters().Holdouts) })
	counter("nbo_decision_cache_hits_total", "Decisions served from the cache.", func() float64 { return float64(eng.Counters().CacheHits) })
	counter("nbo_triggers_total", "Push triggers published.", func() float64 { return float64(eng.Counters().Triggers) })
}

// printf is fmt.Fprintf for status lines that may fail harmlessly.
var printf = fmt.Fprintf

// activeModelFile is where the served propensity model is kept under
// DATA_DIR/models, so a restart serves it again.
const activeModelFile = "propensity.json"

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// loadModel loads an artifact into the registry (refusing one trained on
// another feature layout; the old model stays) and keeps a copy in the
// data dir for restarts.
func loadModel(registry *models.Registry, path, dataDir string) (any, error) {
	if err := registry.Load(path, engine.PropensitySchema.Hash()); err != nil {
		return nil, &api.Error{Status: 422, Code: "bad_model", Field: "path", Message: err.Error()}
	}
	m := registry.Active()
	data, err := os.ReadFile(path)
	if err == nil {
		dir := filepath.Join(dataDir, "models")
		if err = os.MkdirAll(dir, 0o755); err == nil {
			tmp := filepath.Join(dir, activeModelFile+".tmp")
			if err = os.WriteFile(tmp, data, 0o644); err == nil {
				err = os.Rename(tmp, filepath.Join(dir, activeModelFile))
			}
		}
	}
	out := map[string]any{"version": m.Version, "algorithm": m.Algorithm, "schema_hash": m.SchemaHash, "metrics": m.Metrics, "path": path}
	if err != nil {
		out["warning"] = "loaded, but not saved for restarts: " + err.Error()
	}
	return out, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
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
	log    *slog.Logger // where reloads are logged; nil: slog.Default()
}

var _ api.ScenarioAdmin = (*scenarioLibrary)(nil)

func newScenarioLibrary(dir string, onSwap func(*scenarios.Set)) (*scenarioLibrary, error) {
	l := &scenarioLibrary{fsys: scenarios.Builtin(), source: "built-in"}
	if dir != "" {
		fsys, err := scenarioDir(dir)
		if err != nil {
			return nil, fmt.Errorf("scenarios: %w", err)
		}
		l.fsys, l.source = fsys, dir
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

// scenarioDir opens a directory of scenario and offer files (nbo rules
// check|test DIR, nbo serve --scenarios DIR). A DIR that is missing or not
// a directory is an error naming it: os.DirFS would fail later with
// "open .", which names nothing the user typed.
func scenarioDir(dir string) (fs.FS, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such directory", dir)
	case err != nil:
		return nil, err // *fs.PathError: names dir
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory; give the directory holding the scenario and offer files", dir)
	}
	return os.DirFS(dir), nil
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

// ReloadScenarios is POST /v1/admin/scenarios: a reload logged like a
// SIGHUP's; a refused one answers 422 with one sentence (the problems,
// file:line each, and the version that keeps serving).
func (l *scenarioLibrary) ReloadScenarios(ctx context.Context) (any, error) {
	st, err := l.reload("POST /v1/admin/scenarios")
	if err != nil {
		msg := err.Error()
		if re, ok := errors.AsType[*scenarios.ReloadError](err); ok {
			msg = fmt.Sprintf("the scenario files were refused, set %s keeps serving: %v", re.Active, re.Err)
		}
		return nil, &api.Error{Status: 422, Code: api.CodeScenariosInvalid, Message: msg}
	}
	return scenarioStatus{st, l.source}, nil
}

// reload recompiles the files and swaps them in, or keeps the active
// set, and logs either outcome with what triggered it ("SIGHUP", "POST
// /v1/admin/scenarios"), so the log shows every change of the rules
// whichever way it was asked for. A refused reload's error is a
// *scenarios.ReloadError.
func (l *scenarioLibrary) reload(trigger string) (scenarios.Status, error) {
	log := l.log
	if log == nil {
		log = slog.Default()
	}
	if err := l.Reload(l.fsys, time.Now()); err != nil {
		attrs := []any{"trigger", trigger, "source", l.source, "err", err}
		if re, ok := errors.AsType[*scenarios.ReloadError](err); ok {
			attrs = append(attrs, "active_version", re.Active)
		}
		log.Error(trigger+": scenario reload refused", attrs...)
		return scenarios.Status{}, err
	}
	st := l.Status()
	log.Info(trigger+": scenarios reloaded", "trigger", trigger, "source", l.source, "version", st.Version, "scenarios", st.Scenarios, "offers", st.Offers)
	return st, nil
}

// registerEngineMetrics exposes the store's, the loop's, the engine's and
// the bandit's counters on the admin listener.
func registerEngineMetrics(reg *prometheus.Registry, store *features.Store, loop *ingest.Loop, eng *engine.Engine, bandit *models.Bandit, stats *engine.Stats) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("nbo_customers", "Customers in the feature store.", func() float64 { return float64(store.Len()) })
	gauge("nbo_bandit_posteriors", "Posteriors the bandit holds (arms and their facet nodes, ~300 B each).", func() float64 { return float64(bandit.Len()) })
	gauge("nbo_attribution_records", "Decision records kept for attribution (at most attribution_records, ~300 B each).", func() float64 {
		held, _ := stats.Records()
		return float64(held)
	})
	counter("nbo_attribution_records_evicted_total", "Decision records dropped to stay within attribution_records (since start).", func() float64 {
		_, evicted := stats.Records()
		return float64(evicted)
	})
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
	gauge("nbo_dead_letters_pending", "Dead letters not yet delivered to nbo.events.dlq; snapshots wait for them.", func() float64 { return float64(loop.Stats().DeadLettersPending) })
	gauge("nbo_dead_letter_bytes", "Bytes the undelivered dead letters hold (ingest pauses at the dead-letter buffer).", func() float64 { return float64(loop.Stats().DeadLetterBytes) })
	gauge("nbo_ingest_paused", "1 while ingest consumes nothing until the dead-letter topic takes letters again.", func() float64 {
		if loop.Stats().Paused {
			return 1
		}
		return 0
	})
	counter("nbo_decisions_total", "Decisions made.", func() float64 { return float64(eng.Counters().Decisions) })
	counter("nbo_decisions_fallback_total", "Decisions answered with fallback offers.", func() float64 { return float64(eng.Counters().Fallbacks) })
	counter("nbo_decisions_empty_total", "Decisions that served no offer (contact policy, budgets or eligibility left none).", func() float64 { return float64(eng.Counters().Empty) })
	counter("nbo_decisions_holdout_total", "Decisions for the holdout group.", func() float64 { return float64(eng.Counters().Holdouts) })
	counter("nbo_decision_cache_hits_total", "Decisions served from the cache.", func() float64 { return float64(eng.Counters().CacheHits) })
	counter("nbo_triggers_total", "Push triggers published.", func() float64 { return float64(eng.Counters().Triggers) })
}

// Models: one propensity model (scored per offer, PropensitySchema) and
// named customer scores (CustomerSchema) such as "purchase_15d", which
// rules read with score(name). Each served model is kept under
// DATA_DIR/served-models/NAME.json so a restart serves it again.
type modelSet struct {
	// mu serialises loads: two at once would share NAME.json.tmp, and one
	// could serve the other's bytes under its own version.
	mu         sync.Mutex
	propensity *models.Registry
	scores     engine.Scores
	dir        string // where served models are kept for restarts
	legacy     string // where they were kept before (dataDir/models): copied to dir once, at the upgrade
	upgrade    bool   // an earlier version ran here (a snapshot, no dir yet)
	// src is the only directory POST /v1/admin/models reads from (see
	// Config.ModelsDir): the route takes a path from a client, and the
	// process may run as a user who can read far more than models.
	src string
	// log gets a line for every model served; nil: slog.Default().
	log *slog.Logger
	// served describes each model in force by name, under mu.
	served map[string]servedModel
}

// servedModel describes a model in force, for the log and for listing
// what is served.
type servedModel struct {
	Name       string         `json:"name"`
	Version    string         `json:"version"`
	Algorithm  models.Algo    `json:"algorithm"`
	SchemaHash string         `json:"schema_hash"`
	Metrics    models.Metrics `json:"metrics"`
	LoadedAt   time.Time      `json:"loaded_at"`
	// Path is the path the load named, or the kept copy a restart served.
	Path string `json:"path"`
}

func newServedModel(name, path string, a *models.Artifact, now time.Time) servedModel {
	return servedModel{Name: name, Version: a.Version, Algorithm: a.Algorithm, SchemaHash: a.SchemaHash, Metrics: a.Metrics, LoadedAt: now.UTC(), Path: path}
}

// list returns the models in force, by name.
func (m *modelSet) list() []servedModel {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]servedModel, 0, len(m.served))
	for _, s := range m.served {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// logServed logs a model just put in force.
func (m *modelSet) logServed(s servedModel, how string) {
	log := m.log
	if log == nil {
		log = slog.Default()
	}
	log.Info("model served", "name", s.Name, "version", s.Version, "algorithm", s.Algorithm, "schema_hash", s.SchemaHash,
		"auc", s.Metrics.AUC, "path", s.Path, "how", how)
}

// scoreNames are the customer scores the built-in rules read.
var scoreNames = []string{"purchase_15d"}

// newModelSet keeps served models under dataDir/served-models and loads
// new ones only from modelsDir (empty: dataDir/models). The two differ so
// that a kept copy (NAME.json) never overwrites an artifact someone put
// in the models directory under that name, as docs/models.md's own
// `nbo train --out propensity.json` would.
func newModelSet(dataDir, modelsDir string) *modelSet {
	dir := filepath.Join(dataDir, "served-models")
	if modelsDir == "" {
		modelsDir = filepath.Join(dataDir, "models")
	}
	if abs, err := filepath.Abs(modelsDir); err == nil {
		modelsDir = abs
	}
	m := &modelSet{propensity: models.NewRegistry(), scores: engine.Scores{}, dir: dir, src: modelsDir, legacy: filepath.Join(dataDir, "models"), served: map[string]servedModel{},
		upgrade: !fileExists(dir) && fileExists(filepath.Join(dataDir, "state.snap"))}
	for _, n := range scoreNames {
		m.scores[n] = models.NewRegistry()
	}
	return m
}

// checkSource readies the models directory at start: the default one
// (under the data directory) is created, so an operator has somewhere to
// copy artifacts; a configured one that is not there gets a warning now
// rather than at the first load.
func (m *modelSet) checkSource(isDefault bool) string {
	if isDefault {
		if err := os.MkdirAll(m.src, 0o755); err != nil {
			return fmt.Sprintf("warning: cannot create the models directory %s: %v", m.src, err)
		}
		return ""
	}
	if fi, err := os.Stat(m.src); err != nil || !fi.IsDir() {
		return fmt.Sprintf("warning: the models directory %s (models_dir) is not a directory nbo can read; POST /v1/admin/models will refuse every load until it is", m.src)
	}
	return ""
}

// restore loads the models saved by earlier runs.
func (m *modelSet) restore() []string {
	var loaded []string
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		loaded = append(loaded, "kept models NOT RESTORED: "+err.Error())
	}
	if m.upgrade {
		// The first start here of a version that keeps served models
		// apart (an earlier one ran: there is a snapshot): what
		// DATA_DIR/models holds under a served name was kept by it, and is
		// copied here once. From then on dir exists, and on a fresh
		// install there was no snapshot, so an artifact an operator copies
		// into the models directory is never mistaken for a kept copy.
		m.upgrade = false
		for name := range m.registries() {
			old := filepath.Join(m.legacy, name+".json")
			if !fileExists(old) {
				continue
			}
			if _, err := models.LoadArtifact(old); err != nil {
				loaded = append(loaded, name+": "+old+" is not a model artifact; not taken as the one an earlier version kept")
				continue
			}
			if err := copyFile(old, filepath.Join(m.dir, name+".json")); err != nil {
				loaded = append(loaded, name+" NOT COPIED from "+old+": "+err.Error())
				continue
			}
			loaded = append(loaded, name+": the copy an earlier version kept in "+old+" is now kept in "+m.dir)
		}
	}
	for name, reg := range m.registries() {
		path := filepath.Join(m.dir, name+".json")
		if !fileExists(path) {
			continue
		}
		a, err := models.LoadArtifact(path) // decoded once, for the registry and the list
		if err != nil {
			err = fmt.Errorf("loading model %s: %w", path, err)
		} else {
			err = reg.serve(a, path)
		}
		if err != nil {
			loaded = append(loaded, name+" NOT LOADED: "+err.Error())
			continue
		}
		loaded = append(loaded, name+" "+reg.Active().Version)
		m.mu.Lock()
		m.served[name] = newServedModel(name, path, a, time.Now())
		m.mu.Unlock()
	}
	sort.Strings(loaded)
	return loaded
}

type namedRegistry struct {
	*models.Registry
	schema string
}

// serve serves an artifact already decoded, as kept at path.
func (r namedRegistry) serve(a *models.Artifact, path string) error {
	return r.Registry.Serve(a, path, r.schema)
}

func (m *modelSet) registries() map[string]namedRegistry {
	out := map[string]namedRegistry{"propensity": {m.propensity, engine.PropensitySchema.Hash()}}
	for n, r := range m.scores {
		out[n] = namedRegistry{r, engine.CustomerSchema.Hash()}
	}
	return out
}

// load serves the artifact at path, a file in the models directory (a
// relative path is read inside it): an offer-propensity model, or a
// customer score named by its label. A model trained on other features is
// refused and the old one stays. Errors never quote the file: a path from
// a client must not read out what the process can see.
func (m *modelSet) load(path string) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	body, err := m.read(path)
	if err != nil {
		return nil, err
	}
	a, err := models.DecodeArtifact(body)
	if err != nil {
		return nil, badModel(path, err)
	}
	name := "propensity"
	if a.SchemaHash != engine.PropensitySchema.Hash() {
		name = a.Label
		if _, ok := m.scores[name]; !ok || a.SchemaHash != engine.CustomerSchema.Hash() {
			return nil, &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: layoutMismatch(a, ok)}
		}
	}
	// Serve the artifact that was checked, decoded once, and keep its
	// bytes as the copy a restart serves: the file changing in between
	// cannot slip something else in.
	saved := filepath.Join(m.dir, name+".json")
	tmp := saved + ".tmp"
	if err := writeFile(tmp, body); err != nil {
		// The copy is what is served: without it nothing changes. Not a
		// bug of nbo's (internal) but the disk (full, read-only): retry
		// once it is fixed.
		_ = os.Remove(tmp)
		return nil, &api.Error{Status: 503, Code: api.CodeUnavailable, Field: "path", Message: fmt.Sprintf(
			"the model %s was not loaded: nbo keeps the copy it serves in %s and cannot write there (%v); free space or fix the permissions and load it again", path, m.dir, errors.Unwrap(err))}
	}
	if err := m.registries()[name].serve(a, saved); err != nil {
		_ = os.Remove(tmp)
		return nil, &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: fmt.Sprintf(
			"the model %s cannot be served: %v; train it again with nbo train", path, errors.Unwrap(err))}
	}
	sm := newServedModel(name, path, a, time.Now())
	m.served[name] = sm
	out := loadedModel{servedModel: sm}
	how := "loaded and kept for restarts"
	if err := os.Rename(tmp, saved); err != nil {
		out.Warning = "loaded, but not kept for restarts (a restart serves the model kept before): " + err.Error()
		how = "loaded, NOT kept for restarts"
	}
	m.logServed(sm, how)
	return out, nil
}

// loadedModel is the answer to POST /v1/admin/models (OpenAPI
// ModelStatus).
type loadedModel struct {
	servedModel
	Warning string `json:"warning,omitempty"`
}

var _ api.ModelAdmin = (*modelSet)(nil)

// LoadModel is POST /v1/admin/models.
func (m *modelSet) LoadModel(ctx context.Context, path string) (any, error) { return m.load(path) }

// ListModels is GET /v1/admin/models: the models in force, by name.
func (m *modelSet) ListModels(ctx context.Context) (any, error) {
	return map[string][]servedModel{"models": m.list()}, nil
}

// layoutMismatch says why a model is neither the offer-propensity model
// nor a customer score, naming the first column or category that differs
// from the layout it was meant for (a customer score's if its label names
// one, else the propensity model's): hashes alone gave a person who
// trained on a CSV nothing to change.
func layoutMismatch(a *models.Artifact, isScore bool) string {
	const advice = "; train it with nbo train on the engine's decision log (--decisions, --events), or from a CSV (nbo train --csv FILE --label …) whose columns are exactly that layout, in order, with every category value (docs/models.md lists it)"
	if !isScore && a.SchemaHash == engine.CustomerSchema.Hash() {
		return fmt.Sprintf("the model has the customer-score layout (engine.CustomerSchema) but its label %.32q names no customer score; the engine serves %v: train it with --label set to one of them",
			a.Label, scoreNames)
	}
	if isScore {
		return fmt.Sprintf("the model (label %.32q) is a customer score but not on the customer features: %s (engine.CustomerSchema, schema %.12s…, the model's %.12s…)%s",
			a.Label, models.SchemaDiff(engine.CustomerSchema, a.Schema), engine.CustomerSchema.Hash(), a.SchemaHash, advice)
	}
	return fmt.Sprintf("the model (label %.32q) is not on the offer-propensity features: %s (engine.PropensitySchema, schema %.12s…, the model's %.12s…); a customer score is named by its label, one of %v%s",
		a.Label, models.SchemaDiff(engine.PropensitySchema, a.Schema), engine.PropensitySchema.Hash(), a.SchemaHash, scoreNames, advice)
}

// read returns the file at path if it lies inside the models directory:
// a relative path is taken inside it, an absolute one must name a file in
// it, and neither ".." nor a symbolic link may lead out of it (os.Root
// refuses both, also when the link is swapped in between).
func (m *modelSet) read(path string) ([]byte, error) {
	outside := &api.Error{Status: 400, Code: api.CodeBadRequest, Field: "path", Message: fmt.Sprintf(
		"path must name a model file inside the models directory %s (models_dir), given relative to it or absolute; copy the artifact there", m.src)}
	rel := filepath.Clean(path)
	if filepath.IsAbs(rel) {
		r, err := filepath.Rel(m.src, rel)
		if err != nil {
			return nil, outside
		}
		rel = r
	}
	if rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || !filepath.IsLocal(rel) {
		return nil, outside
	}
	root, err := os.OpenRoot(m.src)
	if err != nil {
		return nil, &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: fmt.Sprintf(
			"the models directory %s cannot be opened (%v); create it and copy the artifact there", m.src, errors.Unwrap(err))}
	}
	defer root.Close()
	notFile := &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: fmt.Sprintf(
		"%s in the models directory %s is not a regular file; give the model artifact's file", path, m.src)}
	if strings.HasSuffix(path, "/") || strings.HasSuffix(path, string(filepath.Separator)) {
		return nil, notFile // names a directory; Clean dropped the slash that says so
	}
	f, err := root.Open(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: fmt.Sprintf(
			"there is no model %s in the models directory %s; copy the artifact there", rel, m.src)}
	case errors.Is(err, fs.ErrPermission):
		return nil, &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: fmt.Sprintf(
			"the model %s in %s cannot be read (permission denied); let nbo's user read it", rel, m.src)}
	case err != nil:
		return nil, outside // a link out of the directory, or worse
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, notFile
	}
	body, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return body, nil
}

// badModel is the answer to a file that does not decode as an artifact.
// A JSON decoder's message quotes the input (`invalid character 'r'`, an
// unknown field's name), so none of it is told; an artifact's own checks
// (models.Artifact.Validate) describe a model that did decode and are
// passed on, cut short.
func badModel(path string, err error) error {
	msg := fmt.Sprintf("%s is not a model artifact nbo train writes", path)
	if strings.HasPrefix(err.Error(), models.ErrBadArtifact.Error()+": decoding:") {
		msg += " (it does not decode as one: not JSON, an unknown field or a wrong type); train it with nbo train"
	} else {
		detail := strings.TrimPrefix(err.Error(), models.ErrBadArtifact.Error()+": ")
		if len(detail) > 300 {
			detail = detail[:300] + "…"
		}
		msg += ": " + detail + "; train it again with nbo train"
	}
	return &api.Error{Status: 422, Code: api.CodeBadModel, Field: "path", Message: msg}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// copyFile copies a file's bytes to dst (created or replaced).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, b)
}

// writeFile writes data to path, creating its directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// tuneGC sets the collector's target unless GOGC is set in the
// environment (see Config.GCPercent).
func tuneGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}

package models

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Model is an immutable served model: its artifact's identity and its
// compiled scorer. The engine reads it once per request and never locks.
type Model struct {
	// Version is the artifact's version; decisions name it.
	Version    string
	Algorithm  Algo
	SchemaHash string
	Path       string
	Metrics    Metrics
	Scorer     *Scorer
}

// Propensity scores one feature vector laid out by the model's schema.
func (m *Model) Propensity(features []float64) float64 { return m.Scorer.Propensity(features) }

// ErrSchemaMismatch is returned by Registry.Load when an artifact was
// trained on a feature layout other than the live one.
var ErrSchemaMismatch = errors.New("models: schema mismatch")

// Registry holds the active model behind an atomic pointer: Load compiles
// and checks a new artifact completely before swapping it in, so a bad
// artifact leaves the old model serving. Active never blocks.
type Registry struct {
	active atomic.Pointer[Model]
	mu     sync.Mutex // serialises Load so two loads cannot interleave
}

// NewRegistry returns an empty registry: Active returns nil until the first
// successful Load.
func NewRegistry() *Registry { return &Registry{} }

// Load reads the artifact at path, checks that its schema hash equals
// liveSchemaHash (the hash of the feature layout the caller will score
// with, from Schema.Hash), compiles it and makes it the active model. On
// any error the previously active model stays.
func (r *Registry) Load(path, liveSchemaHash string) error {
	a, err := LoadArtifact(path)
	if err != nil {
		return fmt.Errorf("loading model %s: %w", path, err)
	}
	return r.Serve(a, path, liveSchemaHash)
}

// Serve makes an artifact already read and decoded the active model, as
// Load does with the one at path (which the model records as its Path):
// its schema hash must equal liveSchemaHash and it must compile. On any
// error the previously active model stays.
func (r *Registry) Serve(a *Artifact, path, liveSchemaHash string) error {
	if a.SchemaHash != liveSchemaHash {
		return fmt.Errorf("loading model %s (%s): %w: it was trained on feature schema %.12s…, the live features are %.12s…; retrain it on the current features or serve the matching feature set",
			path, a.Version, ErrSchemaMismatch, a.SchemaHash, liveSchemaHash)
	}
	s, err := Compile(a)
	if err != nil {
		return fmt.Errorf("loading model %s: %w", path, err)
	}
	m := &Model{Version: a.Version, Algorithm: a.Algorithm, SchemaHash: a.SchemaHash, Path: path, Metrics: a.Metrics, Scorer: s}
	r.mu.Lock()
	r.active.Store(m)
	r.mu.Unlock()
	return nil
}

// Active returns the active model, or nil if none was loaded. The model
// is immutable; callers keep it for the whole request.
func (r *Registry) Active() *Model { return r.active.Load() }

package api

import (
	"context"

	"nbo/engine"
	"nbo/features"
)

// The components the routes call. Each is declared here, where it is
// used, with a Func adapter so a function (or a test's fake) will do.
// Errors they return are mapped to answers: an *Error as it says,
// ErrUnavailable or a deadline as 503 with Retry-After, ErrNotFound as
// 404, anything else as 500 internal (logged, never shown).

// Ingester produces events to the log of record. Ingest returns only once
// the broker has acknowledged every event (nil), or fails as a whole: an
// error wrapping ErrUnavailable when the broker is unreachable, in which
// case none of the events may count as accepted. It must not keep events
// after it returns. On ctx's end it returns ctx.Err() (wrapped).
type Ingester interface {
	Ingest(ctx context.Context, events []features.Event) error
}

// IngesterFunc adapts a function to Ingester.
type IngesterFunc func(ctx context.Context, events []features.Event) error

func (f IngesterFunc) Ingest(ctx context.Context, events []features.Event) error {
	return f(ctx, events)
}

// Decider chooses the next best offers. The request is validated (see
// engine.DecideRequest). A customer the engine has never seen gets the
// placement's fallback offers, not an error. Decide must not keep req
// after it returns: the HTTP layer reuses the struct for a later request
// (the strings and the context map it holds are never changed and may be
// kept; copy *req to keep the whole).
type Decider interface {
	Decide(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error)

func (f DeciderFunc) Decide(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error) {
	return f(ctx, req)
}

// CustomerReader returns a customer's 360 view — canonical ID, linked
// identifiers, features, newest event time — as a value encoding/json can
// marshal, for the key the client named (phone and email already in
// their stored, hashed form). An unknown customer is ErrNotFound.
type CustomerReader interface {
	Customer(ctx context.Context, key features.Key) (any, error)
}

// CustomerReaderFunc adapts a function to CustomerReader.
type CustomerReaderFunc func(ctx context.Context, key features.Key) (any, error)

func (f CustomerReaderFunc) Customer(ctx context.Context, key features.Key) (any, error) {
	return f(ctx, key)
}

// OpenOffersReader lists the offers served to a customer that they can
// still redeem (GET /v1/customers/{key}/offers), titles in locale, as a
// value encoding/json can marshal (engine.Engine.OpenOffers). An unknown
// customer is ErrNotFound.
type OpenOffersReader interface {
	OpenOffers(ctx context.Context, key features.Key, locale engine.Locale) (any, error)
}

// OpenOffersReaderFunc adapts a function to OpenOffersReader.
type OpenOffersReaderFunc func(ctx context.Context, key features.Key, locale engine.Locale) (any, error)

func (f OpenOffersReaderFunc) OpenOffers(ctx context.Context, key features.Key, locale engine.Locale) (any, error) {
	return f(ctx, key, locale)
}

// StatsReader returns the response-rate, uplift and attribution report
// for GET /v1/stats as a JSON-marshalable value.
type StatsReader interface {
	Stats(ctx context.Context) (any, error)
}

// StatsReaderFunc adapts a function to StatsReader.
type StatsReaderFunc func(ctx context.Context) (any, error)

func (f StatsReaderFunc) Stats(ctx context.Context) (any, error) { return f(ctx) }

// ScenarioAdmin reports the loaded scenario set (GET
// /v1/admin/scenarios) and reloads it from its files (POST). A reload
// that fails to compile should return an *Error (status 422) whose
// message lists the problems; the old set stays in force.
type ScenarioAdmin interface {
	ScenarioStatus(ctx context.Context) (any, error)
	ReloadScenarios(ctx context.Context) (any, error)
}

// ModelAdmin loads a model artifact from a path on the server (POST
// /v1/admin/models {"path": …}) and returns what was loaded (a bad
// artifact should be an *Error, status 422), and lists the models in
// force (GET /v1/admin/models).
type ModelAdmin interface {
	LoadModel(ctx context.Context, path string) (any, error)
	ListModels(ctx context.Context) (any, error)
}

// BanditAdmin resets online learning for one offer (POST
// /v1/admin/bandit/reset {"offer_id": …}): every segment's posterior of the
// offer is forgotten, for example after its creative or terms changed.
type BanditAdmin interface {
	ResetOffer(ctx context.Context, offerID string) (any, error)
}

// BanditAdminFunc adapts a function to BanditAdmin.
type BanditAdminFunc func(ctx context.Context, offerID string) (any, error)

func (f BanditAdminFunc) ResetOffer(ctx context.Context, offerID string) (any, error) {
	return f(ctx, offerID)
}

// Readiness reports whether the engine is ready to serve: state restored
// and caught up with the log. /readyz answers 503 until it is.
type Readiness interface {
	Ready() bool
}

// ReadinessFunc adapts a function to Readiness.
type ReadinessFunc func() bool

func (f ReadinessFunc) Ready() bool { return f() }

var (
	_ Ingester       = IngesterFunc(nil)
	_ Decider        = DeciderFunc(nil)
	_ CustomerReader = CustomerReaderFunc(nil)
	_ StatsReader    = StatsReaderFunc(nil)
	_ BanditAdmin    = BanditAdminFunc(nil)
	_ Readiness      = ReadinessFunc(nil)
)

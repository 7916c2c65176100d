// Package scenarios loads, checks and evaluates the marketing rules and the
// offer catalog: YAML files compiled into an immutable Set that a Library
// swaps atomically on reload (compile everything, then publish; a broken
// edit never replaces a working set).
//
// A scenario says when a customer deserves an offer: a `when` expression
// (expr-lang/expr, type-checked at load against Env, documented in
// FEATURES.md), an optional sequence ("after A, no B within d", which
// fires when the window closes — NextWake gives the engine the timer), a
// for_each expansion over viewed-not-bought categories, cart lines or
// visit departments, the channels and trigger kinds it listens to, a
// priority and a reason template in zh-CN and en. Offers carry type,
// texts, value and cost, channels, stores, validity and campaign phases,
// budgets, caps, cooldown, consent purpose and fulfilment.
//
// Evaluate is the hot path: it fills a pooled environment from a
// features.View and runs every scenario without allocating. The loader
// rewrites feature reads, counters and constant comparisons into typed
// calls because expr boxes every struct field it reads through
// reflection. Reason renders the plain-language explanation lazily, for
// the offers finally chosen.
//
// Scenarios are pure: model scores and stock arrive as data in the
// Request, and the package never imports models or engine. Budgets, caps,
// cooldowns and contact policy are enforced by the engine; this package
// only exposes the offer fields they need and the pure eligibility rules
// (validity, phase, channel, store, consent).
//
// Rule behaviour is specified by golden files (library/testdata/*.txt, see
// RunGolden) run through a real features.Store, and by the strict-load
// error corpus under testdata/bad.
package scenarios
